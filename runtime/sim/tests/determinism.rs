//! The same fleet driven by the same calls gives the same results, byte for byte.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use grace_executor::Labels;
use grace_sim::{Fleet, FleetSnapshot, Simulation};

/// A small incident: latency is high, the group scales out, a container is restarted and
/// scaled, a deployment scales, and a range query looks back over all of it. Returns every
/// result, printed, and the final snapshot.
async fn incident(sim: &Simulation) -> (String, FleetSnapshot) {
    let executors = sim.executors();
    let scaling = executors.scaling.default_provider().expect("scaling");
    let containers = executors.containers.default_provider().expect("containers");
    let kubernetes = executors.kubernetes.default_provider().expect("kubernetes");
    let metrics = executors.metrics.default_provider().expect("metrics");
    let mut log = Vec::new();

    let start = executors.clock.now_millis();
    log.push(format!(
        "{:?}",
        metrics.query("service_latency_p95_ms", start).await
    ));
    log.push(format!(
        "{:?}",
        scaling.set_desired_capacity("api-asg", 5).await
    ));
    log.push(format!("{:?}", containers.restart("web-1").await));
    let web = Labels::from([("app".to_owned(), "web".to_owned())]);
    log.push(format!("{:?}", containers.scale(&web, 3).await));
    log.push(format!(
        "{:?}",
        kubernetes.scale_deployment("shop", "checkout", 4).await
    ));
    log.push(format!(
        "{:?}",
        scaling
            .wait_in_service("api-asg", Duration::from_secs(300))
            .await
    ));
    log.push(format!(
        "{:?}",
        kubernetes
            .wait_for_rollout("shop", "checkout", Duration::from_secs(300))
            .await
    ));
    let end = executors.clock.now_millis();
    log.push(format!(
        "{:?}",
        metrics
            .query_range(
                "service_latency_p95_ms",
                start,
                end,
                Duration::from_secs(10)
            )
            .await
    ));
    (log.join("\n"), sim.snapshot())
}

#[tokio::test]
async fn two_simulations_driven_by_the_same_calls_give_equal_results_and_snapshots() {
    let fleet = Fleet::default_fleet();
    let (first_log, first) = incident(&Simulation::new(&fleet)).await;
    let (second_log, second) = incident(&Simulation::new(&fleet)).await;
    assert_eq!(first_log, second_log);
    assert_eq!(first, second);
    assert_eq!(
        serde_json::to_string(&first).expect("serializes"),
        serde_json::to_string(&second).expect("serializes")
    );
    assert_eq!(first.to_string(), second.to_string());
    // The incident did happen: the runs agree on a changed fleet, not on an untouched one.
    assert_ne!(first, Simulation::new(&fleet).snapshot());
    assert_eq!(first.time, "2026-01-01T00:01:30Z");
}

#[tokio::test]
async fn snapshot_survives_a_json_round_trip() {
    let sim = Simulation::new(&Fleet::default_fleet());
    let (_, snapshot) = incident(&sim).await;
    let json = serde_json::to_string(&snapshot).expect("serializes");
    let back: FleetSnapshot = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, snapshot);
}

#[test]
fn snapshot_prints_one_aligned_line_per_resource() {
    let sim = Simulation::new(&Fleet::default_fleet());
    let text = sim.snapshot().to_string();
    let expected = "\
fleet at 2026-01-01T00:00:00Z
group       api-asg        desired 3  in service 3/3  (min 2, max 12)
group       batch-asg      desired 1  in service 1/1  (min 1, max 4)
service     api-service    p95 900 ms  utilisation 87%  load 520 rps
container   cache-1        running  healthy  app=cache
container   web-1          running  unhealthy  app=web,tier=frontend
container   web-2          running  healthy  app=web,tier=frontend
deployment  shop/cart      replicas 1  ready 1  updated 1
deployment  shop/checkout  replicas 2  ready 2  updated 2";
    assert_eq!(text, expected);
}

#[tokio::test]
async fn snapshot_shows_pending_instances_and_rollouts_in_progress() {
    let sim = Simulation::new(&Fleet::default_fleet());
    let executors = sim.executors();
    let scaling = executors.scaling.default_provider().expect("scaling");
    let kubernetes = executors.kubernetes.default_provider().expect("kubernetes");
    scaling
        .set_desired_capacity("api-asg", 5)
        .await
        .expect("in range");
    kubernetes
        .scale_deployment("shop", "cart", 3)
        .await
        .expect("exists");
    let text = sim.snapshot().to_string();
    assert!(
        text.contains("desired 5  in service 3/5  pending 2  (min 2, max 12)"),
        "{text}"
    );
    assert!(
        text.contains("replicas 3  ready 1  updated 3  (rolling out)"),
        "{text}"
    );
}
