//! The example playbooks and collector, dry-run against the simulated default fleet.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use grace_engine::{RunStatus, TriggerEvent};
use grace_executor::Clock as _;
use serde_json::json;

fn latency_event(value: f64) -> TriggerEvent {
    let mut e = event("metrics.latency", "api-service", json!({ "value": value }));
    e.source = "prometheus".into();
    e.actor = "latency-collector".into();
    e
}

fn actions(report: &grace_engine::RunReport) -> Vec<(String, serde_json::Value)> {
    report
        .actions()
        .map(|a| (format!("{}.{}", a.interface, a.function), a.args.clone()))
        .collect()
}

#[test]
fn scale_on_latency_raises_capacity_by_its_step_and_waits_for_service() {
    let guest = load(&example("scale-on-latency"));
    let world = World::new();
    let before = world.sim.snapshot();
    let report = world.run(&guest, &latency_event(912.0));
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "{:?}\n{}",
        report.failure,
        report.guest_stderr
    );
    assert_eq!(
        actions(&report),
        vec![(
            "scaling.set-desired-capacity".to_owned(),
            json!({ "group": "api-asg", "desired_capacity": 5 })
        )]
    );
    let outcome = report.outcome.as_ref().unwrap();
    assert!(outcome.changed);
    let after = world.sim.snapshot();
    assert_ne!(before, after);
    let text = after.to_string();
    assert!(text.contains("api-asg"), "{text}");
    // The wait happened in virtual time: 90 s of warm-up passed on the run clock.
    assert!(report.finished_at - report.started_at >= 90_000);
    // The latency after the scale-out is under the threshold, by the playbook's own measure.
    let after_ms: f64 = outcome.details["latency_after_ms"].parse().unwrap();
    assert!(after_ms < 500.0, "{outcome:?}");
    world.ledger.verify().unwrap();
}

#[test]
fn scale_on_latency_does_nothing_below_the_threshold() {
    let guest = load(&example("scale-on-latency"));
    let fleet = grace_sim::Fleet::from_toml(
        &std::fs::read_to_string(playbooks_dir().join("fleet.toml"))
            .unwrap()
            .replace("load_rps = 520", "load_rps = 200"),
    )
    .unwrap();
    let world = World::with_fleet(&fleet);
    let report = world.run(&guest, &latency_event(300.0));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert!(!report.outcome.as_ref().unwrap().changed);
    assert_eq!(report.actions().count(), 0);
}

#[test]
fn dry_runs_are_deterministic() {
    let guest = load(&example("scale-on-latency"));
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let world = World::new();
            let report = world.run(&guest, &latency_event(912.0));
            let timeline: Vec<_> = report
                .timeline
                .iter()
                .map(|e| {
                    // The idempotency key is made from the run's (random) id: all else repeats.
                    let mut result = e.result.clone();
                    if let Some(r) = result.as_object_mut() {
                        r.remove("idempotency_key");
                    }
                    (
                        e.offset_ms,
                        e.interface.clone(),
                        e.function.clone(),
                        e.args.clone(),
                        result,
                    )
                })
                .collect();
            (timeline, report.outcome.clone(), world.sim.snapshot())
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[1], runs[2]);
}

/// An `alert.firing` event as GRACE's Alertmanager receiver makes it, with these annotations.
fn alert_event(resource: &str, annotations: serde_json::Value) -> TriggerEvent {
    let mut e = event(
        "alert.firing",
        resource,
        json!({
            "alertname": "HighLatency", "status": "firing",
            "labels": { "alertname": "HighLatency", "service": resource, "severity": "page" },
            "annotations": annotations,
            "fingerprint": "7f0e0e9b2ae8b1f2", "starts_at": 1_767_225_900_000u64, "ends_at": null,
            "generator_url": "http://prometheus:9090/graph", "group_key": "{}:{alertname=\"HighLatency\"}",
        }),
    );
    e.source = "alertmanager".into();
    e.actor = "grace".into();
    e
}

#[test]
fn scale_on_latency_scales_on_an_alert_carrying_its_value() {
    let guest = load(&example("scale-on-latency"));
    let world = World::new();
    let report = world.run(
        &guest,
        &alert_event(
            "api-service",
            json!({ "value": "912.4", "summary": "slow" }),
        ),
    );
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert_eq!(
        actions(&report),
        vec![(
            "scaling.set-desired-capacity".to_owned(),
            json!({ "group": "api-asg", "desired_capacity": 5 })
        )]
    );
    world.ledger.verify().unwrap();
}

#[test]
fn scale_on_latency_measures_for_itself_on_an_alert_without_a_value() {
    let guest = load(&example("scale-on-latency"));
    let world = World::new();
    let report = world.run(
        &guest,
        &alert_event("api-service", json!({ "summary": "p95 above 500 ms" })),
    );
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    let queries: Vec<_> = report
        .timeline
        .iter()
        .filter(|e| e.interface == "metrics" && e.function == "query")
        .collect();
    assert!(!queries.is_empty(), "the p95 was queried");
    let outcome = report.outcome.as_ref().unwrap();
    assert!(outcome.changed, "{outcome:?}");
    assert_eq!(outcome.details["to"], "5", "{outcome:?}");
}

#[test]
fn scale_on_latency_uses_the_alerts_value_when_its_query_has_none() {
    // No series for `api-gateway` in the simulated fleet: the alert's value decides.
    let guest = load(&example("scale-on-latency"));
    let world = World::new();
    let report = world.run(
        &guest,
        &alert_event("api-gateway", json!({ "value": "912" })),
    );
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert!(report.outcome.as_ref().unwrap().changed);
    assert!(
        report
            .outcome
            .as_ref()
            .unwrap()
            .summary
            .contains("p95 912 ms"),
        "{:?}",
        report.outcome
    );
}

#[test]
fn scale_on_latency_fails_on_an_alert_without_a_value_its_query_cannot_measure() {
    let guest = load(&example("scale-on-latency"));
    let world = World::new();
    let report = world.run(&guest, &alert_event("api-gateway", json!({})));
    assert_eq!(report.status, RunStatus::Failed);
    let message = &report.failure.as_ref().unwrap().message;
    assert!(
        message.contains("no p95 to act on: the alert.firing event carries none"),
        "{message}"
    );
    assert_eq!(report.actions().count(), 0);
}

#[test]
fn scale_on_latency_fails_naming_the_annotation_when_an_alerts_value_is_not_a_number() {
    let guest = load(&example("scale-on-latency"));
    let world = World::new();
    let report = world.run(
        &guest,
        &alert_event("api-service", json!({ "value": "1.2k" })),
    );
    assert_eq!(report.status, RunStatus::Failed);
    let message = &report.failure.as_ref().unwrap().message;
    assert!(
        message.contains("the alert's annotation `value` is not a number: `1.2k`"),
        "{message}"
    );
    assert_eq!(report.actions().count(), 0);
}

#[test]
fn restart_unhealthy_container_restarts_only_the_unhealthy_one() {
    let guest = load(&example("restart-unhealthy-container"));
    let world = World::new();
    let report = world.run(&guest, &event("container.unhealthy", "web-1", json!({})));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    let acts = actions(&report);
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0].0, "containers.restart");
    let text = world.sim.snapshot().to_string();
    let web1 = text.lines().find(|l| l.contains("web-1")).unwrap();
    assert!(
        web1.contains("healthy") && !web1.contains("unhealthy"),
        "{web1}"
    );
}

#[test]
fn k8s_scale_deployment_scales_and_waits_for_the_rollout() {
    let guest = load(&example("k8s-scale-deployment"));
    let world = World::new();
    let report = world.run(
        &guest,
        &event(
            "deployment.saturated",
            "shop/checkout",
            json!({ "replicas": 4 }),
        ),
    );
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert_eq!(
        actions(&report),
        vec![(
            "kubernetes.scale-deployment".to_owned(),
            json!({ "namespace": "shop", "name": "checkout", "replicas": 4 })
        )]
    );
    let text = world.sim.snapshot().to_string();
    let line = text.lines().find(|l| l.contains("shop/checkout")).unwrap();
    assert!(line.contains("ready 4"), "{line}");
    assert!(report.finished_at - report.started_at >= Duration::from_secs(45).as_millis() as u64);
}

#[test]
fn latency_collector_emits_a_latency_event_for_the_service() {
    let guest = load(&example("latency-collector"));
    let world = World::new();
    let report = world.collect(&guest);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert_eq!(report.events.len(), 1, "{:?}", report.events);
    let e = &report.events[0];
    assert_eq!(e.event_type, "metrics.latency");
    assert_eq!(e.resource, "api-service");
    assert_eq!(e.actor, "latency-collector", "the host sets the actor");
    let value = e.payload["value"].as_f64().unwrap();
    assert!(value > 500.0, "{value}");
}

#[test]
fn the_collectors_event_drives_the_playbook_end_to_end() {
    let collector = load(&example("latency-collector"));
    let playbook = load(&example("scale-on-latency"));
    let world = World::new();
    let collected = world.collect(&collector);
    let event = collected.events.into_iter().next().expect("one event");
    let report = world.run(&playbook, &event);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert_eq!(report.actions().count(), 1);
    world.ledger.verify().unwrap();
}

#[test]
fn echo_receives_the_event_and_its_config() {
    let guest = load(&fixture("echo"));
    let world = World::new();
    let ev = event(
        "test.echo",
        "api-service",
        json!({ "value": 42, "note": "hi" }),
    );
    let report = world.run(&guest, &ev);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    let d = &report.outcome.as_ref().unwrap().details;
    assert_eq!(d["event_type"], "test.echo");
    assert_eq!(d["resource"], "api-service");
    assert_eq!(d["source"], "test");
    assert_eq!(d["actor"], "tests");
    assert_eq!(d["timestamp"], ev.timestamp.to_string());
    let payload: serde_json::Value = serde_json::from_str(&d["payload"]).unwrap();
    assert_eq!(payload, ev.payload);
    assert!(d.contains_key("greeting"));
}

#[test]
fn a_minimal_collector_emits_one_event_per_series_with_the_host_as_actor() {
    let guest = load(&fixture("collector-fixture"));
    let world = World::new();
    let report = world.collect(&guest);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert_eq!(report.events.len(), 1, "one service in the default fleet");
    assert_eq!(report.events[0].actor, "collector-fixture");
    assert_eq!(report.timeline[0].interface, "metrics");
}

#[test]
fn rollback_on_latency_rolls_back_a_fresh_deployment_once_and_tells_ops() {
    let guest = load(&example("rollback-on-latency"));
    let world = World::new();
    let kube = world.sim.executors().kubernetes;
    let provider = kube.route("shop/checkout").unwrap();
    let at = |offset_ms: u64| world.sim.clock().now_millis() + offset_ms;
    // A new pod template (revision 2) goes out, then p95 regresses a minute later.
    let before = runtime()
        .block_on(provider.get_deployment("shop", "checkout"))
        .unwrap()
        .template_hash;
    runtime()
        .block_on(provider.rollout_restart("shop", "checkout", "deployed-v2"))
        .unwrap();
    let mut regression = event(
        "metrics.latency",
        "shop/checkout",
        json!({ "value": 1840.0 }),
    );
    regression.timestamp = at(60_000);
    let report = world.run(&guest, &regression);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    let outcome = report.outcome.as_ref().unwrap();
    assert!(outcome.changed, "{outcome:?}");
    assert!(
        outcome.summary.contains("back from revision 2 to 1"),
        "{outcome:?}"
    );
    let after = runtime()
        .block_on(provider.get_deployment("shop", "checkout"))
        .unwrap();
    assert_eq!(after.template_hash, before, "revision 1's template again");
    let messages = world.sim.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].text.contains("rolling back to revision 1"),
        "{messages:?}"
    );

    // The same incident again: the current revision is revision 1's template, deployed long
    // before, so nothing is rolled back a second time.
    let mut again = regression.clone();
    again.timestamp = at(120_000);
    let report = world.run(&guest, &again);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    let outcome = report.outcome.as_ref().unwrap();
    assert!(!outcome.changed, "{outcome:?}");
    assert!(outcome.summary.contains("not rolled back"), "{outcome:?}");
}
