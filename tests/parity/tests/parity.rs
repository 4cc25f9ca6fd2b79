//! Parity: every example playbook runs once against the simulated fleet and once against the
//! real provider its capability uses, from the same starting state, and the resulting states are
//! compared. A playbook that passed its dry-run does the same thing in production.
//!
//! - `scale-on-latency`: simulated Auto Scaling vs AWS Auto Scaling (moto);
//! - `restart-unhealthy-container`: simulated containers vs a Docker-API engine (Podman);
//! - `k8s-scale-deployment`: simulated deployments vs `kube` against the test API server.
//!
//! moto and Podman are installed by `just test`; without them their test is skipped, loudly,
//! unless `GRACE_E2E=required`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{aws_settings, create_group, engine, runtime, sdk_config};

use grace_engine::trust::PassThrough;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use grace_engine::{Guest, RunEnv, RunReport, RunStatus, TriggerEvent};
use grace_executor::{Executors, Labels, SystemClock};
use grace_ledger::{Durability, Ledger};
use grace_sim::{Fleet, Simulation};
use grace_testkit::podman::{Podman, TEST_IMAGE};
use grace_testkit::{build_guests, example, example_manifest, poll_until};
use serde_json::json;

/// An example, its manifest's `[config]` lines optionally replaced (`key =` prefix → line).
fn playbook(name: &str, replace: &[(&str, &str)]) -> Guest {
    build_guests();
    let dir = example(name);
    let manifest = grace_engine::Manifest::parse(&example_manifest(name, replace)).unwrap();
    let bytes = std::fs::read(dir.join(&manifest.component)).unwrap();
    engine().guest(manifest, &bytes, name).unwrap()
}

/// Runs `guest` on `event` with a fresh ledger, and checks the ledger after.
async fn run(guest: &Guest, event: &TriggerEvent, executors: Executors) -> RunReport {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(dir.path().join("grace.redb"), Durability::None).unwrap());
    let report = engine()
        .run_playbook(
            guest,
            event,
            &RunEnv::new(executors, ledger.clone(), Arc::new(PassThrough)),
        )
        .await;
    ledger.flush().await.unwrap();
    ledger.verify().unwrap();
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "{:?}\n{}",
        report.failure,
        report.guest_stderr
    );
    report
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

/// `interface.function` of every change a run made, in order.
fn changes(report: &RunReport) -> Vec<String> {
    report
        .actions()
        .map(|a| format!("{}.{}", a.interface, a.function))
        .collect()
}

// --- scaling --------------------------------------------------------------------------------

#[test]
fn scale_on_latency_leaves_aws_as_it_leaves_the_simulation() {
    let Some(moto) = grace_testkit::moto::Moto::start("scale_on_latency_parity") else {
        return;
    };
    let guest = playbook("scale-on-latency", &[]);
    let slow = event("metrics.latency", "api-service", json!({ "value": 912.0 }));
    let rt = runtime();

    // The simulation: the default fleet, api-asg 2..=12 at 3.
    let sim = Simulation::new(&Fleet::default_fleet());
    let simulated = rt.block_on(run(&guest, &slow, sim.executors()));
    let sim_scaling = sim.executors().scaling.default_provider().unwrap();
    let sim_group = rt.block_on(sim_scaling.describe_group("api-asg")).unwrap();

    // AWS: the same group in moto. Latency still comes from the simulated service (its model
    // does not see moto's capacity): the playbook's decisions depend only on the event and on
    // the group, which is what is compared.
    let settings = aws_settings(moto.endpoint());
    let sdk = rt.block_on(sdk_config(&settings, "parity"));
    rt.block_on(create_group(&sdk, "api-asg", 2, 12, 3));
    let aws = Arc::new(grace_aws::AutoScaling::new(&sdk, &settings));
    let real_sim = Simulation::new(&Fleet::default_fleet());
    let executors = Executors {
        clock: Arc::new(SystemClock),
        scaling: grace_executor::Providers::single("aws", aws.clone()),
        ..real_sim.executors()
    };
    let real = rt.block_on(run(&guest, &slow, executors));
    let aws_group = rt
        .block_on(grace_executor::ScalingExecutor::describe_group(
            aws.as_ref(),
            "api-asg",
        ))
        .unwrap();

    assert_eq!(changes(&simulated), changes(&real));
    assert_eq!(changes(&real), ["scaling.set-desired-capacity"]);
    let shape = |g: &grace_executor::scaling::Group| {
        (
            g.min_size,
            g.max_size,
            g.desired_capacity,
            g.in_service(),
            g.is_settled(),
        )
    };
    assert_eq!(shape(&sim_group), shape(&aws_group));
    assert_eq!(shape(&aws_group), (2, 12, 5, 5, true));
    let detail = |r: &RunReport, k: &str| r.outcome.as_ref().unwrap().details[k].clone();
    for key in ["from", "to", "in_service", "group"] {
        assert_eq!(detail(&simulated, key), detail(&real, key), "{key}");
    }
}

// --- containers -----------------------------------------------------------------------------

/// `(name without the test's prefix, state, health)` of every container carrying `selector`.
async fn container_states(
    provider: &dyn grace_executor::ContainerExecutor,
    selector: &Labels,
    prefix: &str,
) -> Vec<(String, String, String)> {
    let mut states: Vec<_> = provider
        .list(selector)
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.name.trim_start_matches(prefix).to_owned(),
                json!(c.state).as_str().unwrap().to_owned(),
                json!(c.health).as_str().unwrap().to_owned(),
            )
        })
        .collect();
    states.sort();
    states
}

#[test]
fn restart_unhealthy_container_leaves_docker_as_it_leaves_the_simulation() {
    let Some(podman) = Podman::start("restart_unhealthy_container_parity") else {
        return;
    };
    let tag = podman.tag().to_owned();
    let prefix = format!("{tag}-");
    let rt = runtime();

    // The simulation's default fleet: web-1 unhealthy, web-2 healthy, cache-1 healthy.
    let sim = Simulation::new(&Fleet::default_fleet());
    let guest = playbook("restart-unhealthy-container", &[]);
    let simulated = rt.block_on(run(
        &guest,
        &event("container.unhealthy", "web-1", json!({})),
        sim.executors(),
    ));
    let web: Labels = [("app".to_owned(), "web".to_owned())].into();
    let sim_containers = sim.executors().containers.default_provider().unwrap();
    let sim_after = rt.block_on(container_states(&*sim_containers, &web, ""));

    // The same three containers on Podman.
    let label = podman.test_label();
    for (name, app, healthy) in [
        ("web-1", "web", false),
        ("web-2", "web", true),
        ("cache-1", "cache", true),
    ] {
        let script = if healthy {
            "trap 'exit 0' TERM; touch /tmp/healthy; sleep 100000 & wait"
        } else {
            // Unhealthy from the start, healthy once restarted (the marker is made on restart).
            "trap 'exit 0' TERM; if [ -f /tmp/started ]; then touch /tmp/healthy; fi; touch /tmp/started; sleep 100000 & wait"
        };
        podman.podman_ok(&[
            "run",
            "-d",
            "--name",
            &format!("{prefix}{name}"),
            "--label",
            &format!("app={app}"),
            "--label",
            &label,
            "--health-cmd",
            "test -f /tmp/healthy",
            "--health-interval",
            "1s",
            TEST_IMAGE,
            "sh",
            "-c",
            script,
        ]);
    }
    let docker = Arc::new(
        grace_docker::Docker::connect(&grace_docker::DockerSettings {
            host: Some(podman.docker_host()),
            call_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(2),
        })
        .unwrap(),
    );
    let ours: Labels = [
        ("app".to_owned(), "web".to_owned()),
        (Podman::TEST_LABEL.to_owned(), tag.clone()),
    ]
    .into();
    // Podman runs health checks from systemd timers, absent here: this thread is the timer.
    let done = AtomicBool::new(false);
    let real_after = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                for name in ["web-1", "web-2", "cache-1"] {
                    let _ = podman.run_healthcheck(&format!("{prefix}{name}"));
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let before = [
                (
                    "web-1".to_owned(),
                    "running".to_owned(),
                    "unhealthy".to_owned(),
                ),
                (
                    "web-2".to_owned(),
                    "running".to_owned(),
                    "healthy".to_owned(),
                ),
            ];
            poll_until(
                "the starting state on Podman",
                Duration::from_secs(60),
                || {
                    let now = rt.block_on(container_states(docker.as_ref(), &ours, &prefix));
                    (now == before).then_some(())
                },
            );
            let guest = playbook(
                "restart-unhealthy-container",
                &[(
                    "selector =",
                    &format!("selector = \"app=web,grace.test={tag}\""),
                )],
            );
            let executors = Executors {
                clock: Arc::new(SystemClock),
                containers: grace_executor::Providers::single("docker", docker.clone()),
                ..Executors::none(Arc::new(SystemClock))
            };
            let real = rt.block_on(run(
                &guest,
                &event("container.unhealthy", &format!("{prefix}web-1"), json!({})),
                executors,
            ));
            assert_eq!(changes(&simulated), changes(&real));
            assert_eq!(changes(&real), ["containers.restart"]);
            // The restarted container passes its next health check.
            poll_until(
                "the state to settle on Podman",
                Duration::from_secs(60),
                || {
                    let now = rt.block_on(container_states(docker.as_ref(), &ours, &prefix));
                    (now == sim_after).then_some(now)
                },
            )
        }));
        done.store(true, Ordering::Relaxed);
        result.unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    assert_eq!(real_after, sim_after);
    assert!(
        real_after
            .iter()
            .all(|(_, state, health)| state == "running" && health == "healthy")
    );
}

// --- kubernetes -----------------------------------------------------------------------------

#[test]
fn k8s_scale_deployment_leaves_a_cluster_as_it_leaves_the_simulation() {
    let rt = runtime();
    let guest = playbook("k8s-scale-deployment", &[]);
    let saturated = event(
        "deployment.saturated",
        "shop/checkout",
        json!({ "replicas": 4 }),
    );

    let sim = Simulation::new(&Fleet::default_fleet());
    let simulated = rt.block_on(run(&guest, &saturated, sim.executors()));
    let sim_k8s = sim.executors().kubernetes.default_provider().unwrap();
    let sim_after = rt
        .block_on(sim_k8s.get_deployment("shop", "checkout"))
        .unwrap();

    let server = rt
        .block_on(grace_kube_testserver::TestServer::start(
            grace_kube_testserver::ServerConfig {
                step: Duration::from_millis(50),
            },
        ))
        .unwrap();
    // As the simulated fleet has it: 2 replicas, rolled out.
    server.seed_rolled_out("shop", "checkout", 2);
    let kube = rt
        .block_on(async {
            grace_kubernetes::Kube::for_url(
                server.url(),
                &grace_kubernetes::KubeSettings {
                    poll_interval: Duration::from_millis(50),
                    ..grace_kubernetes::KubeSettings::default()
                },
            )
        })
        .unwrap();
    let kube = Arc::new(kube);
    let executors = Executors {
        clock: Arc::new(SystemClock),
        kubernetes: grace_executor::Providers::single("kubernetes", kube.clone()),
        ..Executors::none(Arc::new(SystemClock))
    };
    let real = rt.block_on(run(&guest, &saturated, executors));
    let real_after = rt
        .block_on(grace_executor::KubernetesExecutor::get_deployment(
            kube.as_ref(),
            "shop",
            "checkout",
        ))
        .unwrap();

    assert_eq!(changes(&simulated), changes(&real));
    let shape = |d: &grace_executor::kubernetes::Deployment| {
        (
            d.replicas,
            d.ready_replicas,
            d.available_replicas,
            d.updated_replicas,
            d.is_rolled_out(),
        )
    };
    assert_eq!(shape(&sim_after), shape(&real_after));
    assert_eq!(shape(&real_after), (4, 4, 4, 4, true));
    let detail = |r: &RunReport| r.outcome.as_ref().unwrap().details.clone();
    assert_eq!(detail(&simulated), detail(&real));
    rt.block_on(server.shutdown());
}
