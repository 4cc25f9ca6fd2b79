//! The simulated Kubernetes deployments and their rollout timing.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use grace_executor::{Clock, ExecError, KubernetesExecutor};
use grace_sim::{Fleet, Simulation};

const START: u64 = 1_767_225_600_000;

fn default_fleet() -> (Simulation, Arc<dyn KubernetesExecutor>) {
    let sim = Simulation::new(&Fleet::default_fleet());
    let kubernetes = sim
        .executors()
        .kubernetes
        .default_provider()
        .map(|p| p.executor().clone())
        .expect("the simulation has a kubernetes executor");
    (sim, kubernetes)
}

#[tokio::test]
async fn deployments_start_rolled_out() {
    let (_, k8s) = default_fleet();
    let d = k8s
        .get_deployment("shop", "checkout")
        .await
        .expect("exists");
    assert_eq!(
        (
            d.replicas,
            d.ready_replicas,
            d.generation,
            d.observed_generation
        ),
        (2, 2, 1, 1)
    );
    assert!(d.is_rolled_out());
}

#[tokio::test]
async fn scaling_up_keeps_ready_at_the_old_count_until_the_rollout_has_passed() {
    let (sim, k8s) = default_fleet();
    let d = k8s
        .scale_deployment("shop", "checkout", 5)
        .await
        .expect("exists");
    assert_eq!(
        (d.replicas, d.ready_replicas, d.available_replicas),
        (5, 2, 2)
    );
    assert_eq!((d.generation, d.observed_generation), (2, 2));
    assert!(!d.is_rolled_out());

    sim.clock().advance(Duration::from_millis(44_999));
    assert!(
        !k8s.get_deployment("shop", "checkout")
            .await
            .expect("exists")
            .is_rolled_out()
    );
    sim.clock().advance(Duration::from_millis(1));
    let d = k8s
        .get_deployment("shop", "checkout")
        .await
        .expect("exists");
    assert_eq!(
        (d.ready_replicas, d.updated_replicas, d.available_replicas),
        (5, 5, 5)
    );
    assert!(d.is_rolled_out());
}

#[tokio::test]
async fn scaling_down_is_complete_at_once() {
    let (_, k8s) = default_fleet();
    let d = k8s
        .scale_deployment("shop", "checkout", 1)
        .await
        .expect("exists");
    assert_eq!(
        (d.replicas, d.ready_replicas, d.updated_replicas),
        (1, 1, 1)
    );
    assert!(d.is_rolled_out());
}

#[tokio::test]
async fn rollout_restart_has_no_updated_replicas_until_done_and_keeps_ready() {
    let (sim, k8s) = default_fleet();
    let d = k8s
        .rollout_restart("shop", "cart", &grace_executor::kubernetes::restart_stamp())
        .await
        .expect("exists");
    assert_eq!(
        (d.replicas, d.ready_replicas, d.updated_replicas),
        (1, 1, 0)
    );
    assert_eq!((d.generation, d.observed_generation), (2, 2));
    assert!(!d.is_rolled_out());

    sim.clock().advance(Duration::from_secs(30)); // the default rollout
    assert!(
        k8s.get_deployment("shop", "cart")
            .await
            .expect("exists")
            .is_rolled_out()
    );
}

#[tokio::test]
async fn wait_for_rollout_sleeps_virtual_time_exactly_to_completion() {
    let (sim, k8s) = default_fleet();
    k8s.scale_deployment("shop", "checkout", 4)
        .await
        .expect("exists");
    sim.clock().advance(Duration::from_secs(5));
    let d = k8s
        .wait_for_rollout("shop", "checkout", Duration::from_secs(120))
        .await
        .expect("completes");
    assert!(d.is_rolled_out());
    assert_eq!(sim.clock().now_millis(), START + 45_000);
}

#[tokio::test]
async fn wait_for_rollout_times_out_having_slept_the_timeout() {
    let (sim, k8s) = default_fleet();
    k8s.rollout_restart(
        "shop",
        "checkout",
        &grace_executor::kubernetes::restart_stamp(),
    )
    .await
    .expect("exists");
    let error = k8s
        .wait_for_rollout("shop", "checkout", Duration::from_secs(10))
        .await
        .expect_err("the rollout takes 45s");
    assert!(matches!(error, ExecError::TimedOut(_)), "{error:?}");
    assert_eq!(sim.clock().now_millis(), START + 10_000);
}

#[tokio::test]
async fn unknown_deployment_is_not_found() {
    let (_, k8s) = default_fleet();
    assert!(matches!(
        k8s.get_deployment("shop", "nope").await,
        Err(ExecError::NotFound(_))
    ));
    assert!(matches!(
        k8s.get_deployment("other", "checkout").await,
        Err(ExecError::NotFound(_))
    ));
    assert!(matches!(
        k8s.scale_deployment("shop", "nope", 1).await,
        Err(ExecError::NotFound(_))
    ));
    assert!(matches!(
        k8s.rollout_restart("shop", "nope", &grace_executor::kubernetes::restart_stamp())
            .await,
        Err(ExecError::NotFound(_))
    ));
    assert!(matches!(
        k8s.wait_for_rollout("shop", "nope", Duration::from_secs(1))
            .await,
        Err(ExecError::NotFound(_))
    ));
}

#[tokio::test]
async fn replicas_above_the_apis_int32_are_refused_as_invalid() {
    let (_, k8s) = default_fleet();
    let refused = k8s
        .scale_deployment("shop", "checkout", i32::MAX as u32 + 1)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ExecError::InvalidArgument(m) if m.contains("2147483647")),
        "{refused:?}"
    );
    let d = k8s.get_deployment("shop", "checkout").await.unwrap();
    assert_eq!((d.replicas, d.generation), (2, 1), "nothing changed");
    let at_the_limit = k8s
        .scale_deployment("shop", "checkout", i32::MAX as u32)
        .await
        .unwrap();
    assert_eq!(at_the_limit.replicas, i32::MAX as u32);
}
