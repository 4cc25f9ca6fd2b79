//! The simulated Auto Scaling groups and the latency model of the services they serve.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use grace_executor::scaling::LifecycleState;
use grace_executor::{Clock, ExecError, ScalingExecutor};
use grace_sim::{Fleet, Simulation};

const START: u64 = 1_767_225_600_000;

fn default_fleet() -> (Simulation, Arc<dyn ScalingExecutor>) {
    let sim = Simulation::new(&Fleet::default_fleet());
    let scaling = sim
        .executors()
        .scaling
        .default_provider()
        .map(|p| p.executor().clone())
        .expect("the simulation has a scaling executor");
    (sim, scaling)
}

fn p95(sim: &Simulation) -> f64 {
    sim.snapshot().services[0].p95_latency_ms
}

#[tokio::test]
async fn scaled_up_instances_are_pending_until_warmup_has_passed_exactly() {
    let (sim, scaling) = default_fleet();
    let group = scaling
        .set_desired_capacity("api-asg", 5)
        .await
        .expect("in range");
    assert_eq!(group.desired_capacity, 5);
    assert_eq!(group.instances.len(), 5);
    assert_eq!(group.in_service(), 3);
    let states: Vec<_> = group.instances.iter().map(|i| i.lifecycle_state).collect();
    use LifecycleState::{InService, Pending};
    assert_eq!(states, [InService, InService, InService, Pending, Pending]);

    sim.clock().advance(Duration::from_millis(89_999));
    assert_eq!(
        scaling
            .describe_group("api-asg")
            .await
            .expect("exists")
            .in_service(),
        3
    );

    sim.clock().advance(Duration::from_millis(1));
    let group = scaling.describe_group("api-asg").await.expect("exists");
    assert_eq!(group.in_service(), 5);
    assert!(group.is_settled());
}

#[tokio::test]
async fn instance_ids_are_deterministic() {
    let (_, scaling) = default_fleet();
    let group = scaling
        .set_desired_capacity("api-asg", 4)
        .await
        .expect("in range");
    let ids: Vec<_> = group.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "i-api-asg-0001",
            "i-api-asg-0002",
            "i-api-asg-0003",
            "i-api-asg-0004"
        ]
    );
}

#[tokio::test]
async fn wait_in_service_advances_virtual_time_by_exactly_the_remaining_warmup() {
    let (sim, scaling) = default_fleet();
    scaling
        .set_desired_capacity("api-asg", 5)
        .await
        .expect("in range");
    sim.clock().advance(Duration::from_secs(30));

    let wall = Instant::now();
    let group = scaling
        .wait_in_service("api-asg", Duration::from_secs(600))
        .await
        .expect("settles within the timeout");
    assert!(
        wall.elapsed() < Duration::from_secs(2),
        "took {:?} of wall time",
        wall.elapsed()
    );
    assert!(group.is_settled());
    assert_eq!(sim.clock().now_millis(), START + 90_000);
}

#[tokio::test]
async fn wait_in_service_on_a_settled_group_returns_at_once() {
    let (sim, scaling) = default_fleet();
    let group = scaling
        .wait_in_service("api-asg", Duration::from_secs(60))
        .await
        .expect("already settled");
    assert_eq!(group.in_service(), 3);
    assert_eq!(sim.clock().now_millis(), START);
}

#[tokio::test]
async fn wait_in_service_times_out_having_slept_the_timeout() {
    let (sim, scaling) = default_fleet();
    scaling
        .set_desired_capacity("api-asg", 5)
        .await
        .expect("in range");
    let error = scaling
        .wait_in_service("api-asg", Duration::from_secs(60))
        .await
        .expect_err("warmup is 90s");
    assert!(matches!(error, ExecError::TimedOut(_)), "{error:?}");
    assert!(error.to_string().contains("3 of 5"), "{error}");
    assert_eq!(sim.clock().now_millis(), START + 60_000);
}

#[tokio::test]
async fn desired_capacity_outside_the_size_limits_is_rejected_naming_the_bounds() {
    let (sim, scaling) = default_fleet();
    for desired in [1, 13] {
        let error = scaling
            .set_desired_capacity("api-asg", desired)
            .await
            .expect_err("out of range");
        let ExecError::InvalidArgument(message) = &error else {
            panic!("expected an invalid argument, got {error:?}");
        };
        assert!(message.contains("min 2, max 12"), "{message}");
    }
    assert_eq!(
        sim.snapshot().groups[0].desired_capacity,
        3,
        "nothing changed"
    );
}

#[tokio::test]
async fn unknown_group_is_not_found() {
    let (_, scaling) = default_fleet();
    assert!(matches!(
        scaling.describe_group("nope").await,
        Err(ExecError::NotFound(_))
    ));
    assert!(matches!(
        scaling.set_desired_capacity("nope", 3).await,
        Err(ExecError::NotFound(_))
    ));
    assert!(matches!(
        scaling
            .wait_in_service("nope", Duration::from_secs(1))
            .await,
        Err(ExecError::NotFound(_))
    ));
}

#[tokio::test]
async fn scaling_down_removes_the_newest_instances_at_once() {
    let (sim, scaling) = default_fleet();
    scaling
        .set_desired_capacity("api-asg", 5)
        .await
        .expect("in range");
    sim.clock().advance(Duration::from_secs(10));
    let group = scaling
        .set_desired_capacity("api-asg", 2)
        .await
        .expect("in range");
    let ids: Vec<_> = group.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i-api-asg-0001", "i-api-asg-0002"]);
    assert!(group.is_settled());
}

#[tokio::test]
async fn p95_latency_falls_from_900_to_250_ms_once_five_instances_are_in_service() {
    let (sim, scaling) = default_fleet();
    assert!((p95(&sim) - 900.0).abs() < 1e-6, "{}", p95(&sim));

    scaling
        .set_desired_capacity("api-asg", 5)
        .await
        .expect("in range");
    assert!(
        (p95(&sim) - 900.0).abs() < 1e-6,
        "pending instances serve nothing"
    );

    scaling
        .wait_in_service("api-asg", Duration::from_secs(300))
        .await
        .expect("settles");
    assert!((p95(&sim) - 250.0).abs() < 1e-6, "{}", p95(&sim));
}

#[tokio::test]
async fn a_group_at_its_minimum_saturates_its_service() {
    let (sim, scaling) = default_fleet();
    scaling
        .set_desired_capacity("api-asg", 2)
        .await
        .expect("in range");
    let service = &sim.snapshot().services[0];
    assert_eq!(service.p95_latency_ms, 120.0 * 20.0, "u = 1.3");
    assert_eq!(service.utilisation, Some(1.3));
}
