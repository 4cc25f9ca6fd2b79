//! Changes whose outcome is unknown, end to end: a playbook's change reaches the real backend
//! (moto, the Kubernetes test API server), the backend makes it, and its answer is lost by a
//! proxy in between (`grace_testkit::proxy`), so the call times out and the run fails. The retry
//! of the run (the same run id, as the server's scheduler retries and resumes runs) reads the
//! resource back before making the change again, finds it made, and does not make it twice: the
//! proxy counts the change requests that reached the backend, and the backend's own state says
//! how many changes it made.
//!
//! moto is installed by `just test`; without it its test is skipped, loudly, unless
//! `GRACE_E2E=required`. The Kubernetes test API server runs in the test process.

#![allow(clippy::unwrap_used)]

mod common;

use common::{aws_settings, create_group, engine, runtime, sdk_config};

use std::sync::Arc;
use std::time::Duration;

use grace_engine::trust::PassThrough;
use grace_engine::{Guest, RunEnv, RunReport, RunStatus, TriggerEvent};
use grace_executor::{Executors, SystemClock};
use grace_ledger::{Durability, Ledger};
use grace_sim::{Fleet, Simulation};
use grace_testkit::proxy::{Proxy, Upstream};
use grace_testkit::{build_guests, example, example_manifest};
use serde_json::json;

fn playbook(name: &str) -> Guest {
    build_guests();
    let manifest = grace_engine::Manifest::parse(&example_manifest(name, &[])).unwrap();
    let bytes = std::fs::read(example(name).join(&manifest.component)).unwrap();
    engine().guest(manifest, &bytes, name).unwrap()
}

fn event(event_type: &str, resource: &str, payload: serde_json::Value) -> TriggerEvent {
    TriggerEvent {
        event_type: event_type.into(),
        source: "parity".into(),
        actor: "tests".into(),
        resource: resource.into(),
        payload,
        timestamp: grace_engine::event::system_now_millis(),
    }
}

/// One attempt of run `run-1`; `retrying` as the scheduler sets it for a retry or a resume.
async fn attempt(
    guest: &Guest,
    event: &TriggerEvent,
    executors: &Executors,
    ledger: &Arc<Ledger>,
    retrying: bool,
) -> RunReport {
    let env =
        RunEnv::new(executors.clone(), ledger.clone(), Arc::new(PassThrough)).retrying(retrying);
    let report = engine().run_playbook_as("run-1", guest, event, &env).await;
    ledger.flush().await.unwrap();
    report
}

/// The first attempt lost its change's answer: it failed on a timed-out change.
fn assert_lost(first: &RunReport) {
    assert_ne!(first.status, RunStatus::Succeeded);
    let change = first.timeline.iter().find(|c| c.change).unwrap();
    assert_eq!(change.result["error"]["kind"], "timed-out", "{change:?}");
}

/// The retry succeeded, its change read back as made by the first attempt.
fn assert_reconciled(retry: &RunReport) {
    assert_eq!(
        retry.status,
        RunStatus::Succeeded,
        "{:?}\n{}",
        retry.failure,
        retry.guest_stderr
    );
    let action = retry.actions().next().unwrap();
    assert!(action.result["reconciled_from"].is_u64(), "{action:?}");
    assert!(action.reason.contains("reconciled"), "{}", action.reason);
}

#[test]
fn a_capacity_change_aws_made_whose_answer_was_lost_is_made_once_across_the_retry() {
    let Some(moto) = grace_testkit::moto::Moto::start("capacity_change_answer_lost") else {
        return;
    };
    let rt = runtime();
    let guest = playbook("scale-on-latency");
    let slow = event("metrics.latency", "api-service", json!({ "value": 912.0 }));
    let proxy = Proxy::start(Upstream::Tcp(
        format!("127.0.0.1:{}", moto.port()).parse().unwrap(),
    ));
    // Through the proxy the provider gives up on an answer after 2 s; moto, loading a service
    // on its first request, gets longer directly.
    let settings = |endpoint: String, call_timeout: Duration| grace_aws::AwsSettings {
        call_timeout,
        ..aws_settings(endpoint)
    };
    let sdk =
        |settings: grace_aws::AwsSettings| async move { sdk_config(&settings, "parity").await };
    let direct = rt.block_on(sdk(settings(moto.endpoint(), Duration::from_secs(60))));
    rt.block_on(create_group(&direct, "api-asg", 2, 12, 3));
    let through_proxy = settings(proxy.url(), Duration::from_secs(2));
    let aws = Arc::new(grace_aws::AutoScaling::new(
        &rt.block_on(sdk(through_proxy.clone())),
        &through_proxy,
    ));
    // Latency comes from the simulated service, as in the parity suite; the group is moto's.
    let sim = Simulation::new(&Fleet::default_fleet());
    let executors = Executors {
        clock: Arc::new(SystemClock),
        scaling: grace_executor::Providers::single("aws", aws),
        ..sim.executors()
    };
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(dir.path().join("grace.redb"), Durability::None).unwrap());
    let update = "Action=UpdateAutoScalingGroup";

    proxy.lose_answer_after(update);
    let first = rt.block_on(attempt(&guest, &slow, &executors, &ledger, false));
    assert_lost(&first);
    assert_eq!(proxy.count(update), 1);
    assert_eq!(rt.block_on(desired(&direct, "api-asg")), 5, "moto made it");

    // The retry's playbook reads 5 and would ask for 7; the change is read back instead.
    let retry = rt.block_on(attempt(&guest, &slow, &executors, &ledger, true));
    assert_reconciled(&retry);
    assert_eq!(proxy.count(update), 1, "no second UpdateAutoScalingGroup");
    assert_eq!(rt.block_on(desired(&direct, "api-asg")), 5);
    ledger.verify().unwrap();
}

async fn desired(sdk: &aws_config::SdkConfig, name: &str) -> i32 {
    aws_sdk_autoscaling::Client::new(sdk)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .desired_capacity()
        .unwrap()
}

#[test]
fn a_deployment_scale_the_cluster_made_whose_answer_was_lost_is_made_once_across_the_retry() {
    let rt = runtime();
    // No `replicas` in the payload: the playbook adds a step to what it reads, so a retry that
    // made the change again would scale 3 → 4.
    let guest = playbook("k8s-scale-deployment");
    let saturated = event("deployment.saturated", "shop/checkout", json!({}));
    let server = rt
        .block_on(grace_kube_testserver::TestServer::start(
            grace_kube_testserver::ServerConfig {
                step: Duration::from_millis(50),
            },
        ))
        .unwrap();
    server.seed_rolled_out("shop", "checkout", 2);
    let proxy = Proxy::start(Upstream::Tcp(
        server.url().trim_start_matches("http://").parse().unwrap(),
    ));
    let kube = rt
        .block_on(async {
            grace_kubernetes::Kube::for_url(
                &proxy.url(),
                &grace_kubernetes::KubeSettings {
                    call_timeout: Duration::from_secs(1),
                    poll_interval: Duration::from_millis(50),
                    ..grace_kubernetes::KubeSettings::default()
                },
            )
        })
        .unwrap();
    let executors = Executors {
        clock: Arc::new(SystemClock),
        kubernetes: grace_executor::Providers::single("kubernetes", Arc::new(kube)),
        ..Executors::none(Arc::new(SystemClock))
    };
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(dir.path().join("grace.redb"), Durability::None).unwrap());
    let scale = "PUT /apis/apps/v1/namespaces/shop/deployments/checkout/scale";
    let spec = || {
        let d = server.deployment("shop", "checkout").unwrap();
        (d.spec.replicas, d.metadata.generation)
    };

    proxy.lose_answer_after(scale);
    let first = rt.block_on(attempt(&guest, &saturated, &executors, &ledger, false));
    assert_lost(&first);
    assert_eq!(spec(), (Some(3), Some(2)), "the cluster made it");

    // The retry's playbook reads 3 and asks for 4; what is in place, and on record, is 3.
    let retry = rt.block_on(attempt(&guest, &saturated, &executors, &ledger, true));
    assert_reconciled(&retry);
    assert_eq!(retry.actions().next().unwrap().args["replicas"], 3);
    assert_eq!(proxy.count(scale), 1, "no second write of the scale");
    assert_eq!(spec(), (Some(3), Some(2)), "one spec change in all");
    ledger.verify().unwrap();
    rt.block_on(server.shutdown());
}
