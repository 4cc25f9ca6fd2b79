//! `rollback-on-latency` against the Kubernetes test API server, through `grace run` and
//! `kube`, as an operator would run it: a latency regression right after a deployment rolls the
//! deployment back to its previous revision (its ReplicaSet's template, as `kubectl rollout
//! undo` does); one long after a deployment changes nothing.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::cluster::Cluster;
use common::{grace, path, stderr, stdout};
use grace_testkit::example;
use serde_json::json;

fn image(cluster: &Cluster, name: &str) -> String {
    let d = cluster.server.deployment("shop", name).unwrap();
    d.spec.template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

fn revision(cluster: &Cluster, name: &str) -> String {
    let d = cluster.server.deployment("shop", name).unwrap();
    d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"].clone()
}

/// Waits until the controller has seen `shop/<name>`'s latest spec (a rollback is refused
/// before: its revisions would not say where it is).
fn rolled_out(cluster: &Cluster, name: &str) {
    grace_testkit::poll_until("the controller's look", Duration::from_secs(30), || {
        let d = cluster.server.deployment("shop", name)?;
        let observed = d.status.and_then(|s| s.observed_generation);
        (observed == d.metadata.generation).then_some(())
    });
}

/// `grace run` of the example on a latency event about `shop/<name>` at `at`.
fn run(cluster: &Cluster, data: &Path, name: &str, at: SystemTime) -> (bool, serde_json::Value) {
    let event = data.join(format!("{name}-event.json"));
    std::fs::write(
        &event,
        json!({
            "event_type": "metrics.latency", "source": "tests", "actor": "tests",
            "resource": format!("shop/{name}"), "payload": { "value": 1840.0 },
            "timestamp": humantime::format_rfc3339_seconds(at).to_string(),
        })
        .to_string(),
    )
    .unwrap();
    let config = cluster.config("");
    let playbook = example("rollback-on-latency");
    let out = grace(&[
        "run",
        path(&playbook),
        "--event",
        path(&event),
        "--config",
        path(&config),
        "--data-dir",
        path(data),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.success(), report)
}

#[test]
fn a_regression_right_after_a_deployment_rolls_it_back_and_an_older_one_does_not() {
    let cluster = Cluster::start();
    let data = tempfile::tempdir().unwrap();
    cluster.server.seed_rolled_out("shop", "checkout", 2);
    let first = image(&cluster, "checkout");
    cluster
        .server
        .set_image("shop", "checkout", "registry.invalid/checkout:2")
        .unwrap();
    assert_eq!(revision(&cluster, "checkout"), "2");
    rolled_out(&cluster, "checkout");

    // p95 regresses a minute after revision 2 went out.
    let (ok, report) = run(
        &cluster,
        data.path(),
        "checkout",
        SystemTime::now() + Duration::from_secs(60),
    );
    assert!(ok, "{report:#}");
    let outcome = &report["run"]["outcome"];
    assert_eq!(outcome["changed"], true, "{report:#}");
    assert!(
        outcome["summary"]
            .as_str()
            .unwrap()
            .contains("back from revision 2 to 1"),
        "{outcome}"
    );
    // The template is revision 1's again, and that ReplicaSet is the newest revision.
    assert_eq!(image(&cluster, "checkout"), first);
    assert_eq!(revision(&cluster, "checkout"), "3");
    // No Slack here: the messages were refused as unavailable, and the rollback went on.
    let calls: Vec<&serde_json::Value> = report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["run"]["timeline"].as_array().into_iter().flatten())
        .collect();
    assert!(
        calls
            .iter()
            .any(|c| c["function"] == "rollout-undo" && c["verdict"] == "allowed"),
        "{report:#}"
    );

    // Another deployment, deployed two hours before its regression: left as it is.
    cluster.server.seed_rolled_out("shop", "cart", 2);
    cluster
        .server
        .set_image("shop", "cart", "registry.invalid/cart:2")
        .unwrap();
    rolled_out(&cluster, "cart");
    let (ok, report) = run(
        &cluster,
        data.path(),
        "cart",
        SystemTime::now() + Duration::from_secs(2 * 3600),
    );
    assert!(ok, "{report:#}");
    let summary = report["run"]["outcome"]["summary"].as_str().unwrap();
    assert!(summary.contains("not rolled back"), "{summary}");
    assert_eq!(image(&cluster, "cart"), "registry.invalid/cart:2");
    assert_eq!(revision(&cluster, "cart"), "2");
}
