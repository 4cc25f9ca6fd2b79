//! Changes whose answer is lost after the API server made them: a proxy in front of the test
//! API server forwards the request and drops the answer, the call times out, and reading the
//! deployment back (`reconcile`) says whether the change is in place, so a retry does not make
//! it twice. The deployment's `generation` counts the spec changes the server made. A change
//! read back as not made is redone (`redo`) only on the deployment as its intent found it, with
//! the read's `resourceVersion` as a precondition.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use grace_executor::kubernetes::{Change, restart_stamp};
use grace_executor::{ExecError, KubernetesExecutor, Reconciled};
use grace_kube_testserver::{ServerConfig, TestServer};
use grace_kubernetes::{Kube, KubeSettings};
use grace_testkit::proxy::{Proxy, Upstream};

const SCALE: &str = "PUT /apis/apps/v1/namespaces/shop/deployments/checkout/scale";
const PATCH: &str = "PATCH /apis/apps/v1/namespaces/shop/deployments/checkout";

/// The test API server, and a provider reaching it through a proxy that can lose answers; the
/// provider gives up on an answer after a second.
async fn cluster_behind_proxy() -> (TestServer, Proxy, Kube) {
    let server = TestServer::start(ServerConfig {
        step: Duration::from_millis(40),
    })
    .await
    .unwrap();
    let addr = server.url().trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(Upstream::Tcp(addr));
    let settings = KubeSettings {
        call_timeout: Duration::from_secs(1),
        poll_interval: Duration::from_millis(20),
        ..KubeSettings::default()
    };
    let kube = Kube::for_url(&proxy.url(), &settings).unwrap();
    (server, proxy, kube)
}

/// Scaling `shop/checkout` to 4, decided on spec `generation`.
fn scale_checkout_to_4(generation: u64) -> Change {
    Change::Scale {
        namespace: "shop".into(),
        name: "checkout".into(),
        replicas: 4,
        generation: Some(generation),
    }
}

/// Restarting `shop/checkout` with `stamp`, decided over the marker `before`.
fn restart_checkout(stamp: String, before: Option<String>) -> Change {
    Change::RolloutRestart {
        namespace: "shop".into(),
        name: "checkout".into(),
        stamp,
        before,
    }
}

fn generation(server: &TestServer) -> i64 {
    server
        .deployment("shop", "checkout")
        .unwrap()
        .metadata
        .generation
        .unwrap()
}

#[tokio::test]
async fn a_scale_made_whose_answer_was_lost_reads_back_as_done() {
    let (server, proxy, kube) = cluster_behind_proxy().await;
    server.seed_rolled_out("shop", "checkout", 2);
    let before = kube.get_deployment("shop", "checkout").await.unwrap();

    proxy.lose_answer_after(SCALE);
    let lost = kube
        .scale_deployment("shop", "checkout", 4)
        .await
        .unwrap_err();
    assert!(matches!(lost, ExecError::TimedOut(_)), "{lost:?}");
    assert_eq!(proxy.count(SCALE), 1);
    assert_eq!(generation(&server), 2, "the server made the change");

    let change = scale_checkout_to_4(before.generation);
    let read = kube.reconcile(&change).await.unwrap();
    let Reconciled::Done(deployment) = read else {
        panic!("expected done, got {read:?}")
    };
    assert_eq!(deployment.replicas, 4);
    assert_eq!(proxy.count(SCALE), 1, "reading back wrote nothing");
    assert_eq!(generation(&server), 2);
}

#[tokio::test]
async fn a_scale_not_made_over_which_another_writer_scaled_is_a_conflict_not_a_redo() {
    let (server, proxy, kube) = cluster_behind_proxy().await;
    server.seed_rolled_out("shop", "checkout", 2);
    let before = kube.get_deployment("shop", "checkout").await.unwrap();
    // Someone else scales it to 3 after the change to 4 was decided, which never landed.
    kube.scale_deployment("shop", "checkout", 3).await.unwrap();
    proxy.count_requests_with(SCALE);

    let change = scale_checkout_to_4(before.generation);
    let read = kube.reconcile(&change).await.unwrap();
    let Reconciled::Conflict(message) = read else {
        panic!("expected a conflict, got {read:?}")
    };
    assert!(message.contains("`shop/checkout`"), "{message}");
    // A redo is refused before it writes anything, not forced.
    let redo = kube.redo(&change).await.unwrap_err();
    assert!(matches!(redo, ExecError::Conflict(_)), "{redo:?}");
    assert_eq!(proxy.count(SCALE), 0, "refused before writing anything");
    assert_eq!(
        server.deployment("shop", "checkout").unwrap().spec.replicas,
        Some(3),
        "the other writer's change stands"
    );
}

#[tokio::test]
async fn a_scale_not_made_and_not_overwritten_is_redone_once_on_its_version() {
    let (server, proxy, kube) = cluster_behind_proxy().await;
    server.seed_rolled_out("shop", "checkout", 2);
    let before = kube.get_deployment("shop", "checkout").await.unwrap();
    proxy.count_requests_with(SCALE);

    let change = scale_checkout_to_4(before.generation);
    assert_eq!(
        kube.reconcile(&change).await.unwrap(),
        Reconciled::NotApplied
    );
    let redone = kube.redo(&change).await.unwrap();
    assert_eq!((redone.replicas, redone.generation), (4, 2));
    assert_eq!(proxy.count(SCALE), 1);
}

#[tokio::test]
async fn a_restart_made_whose_answer_was_lost_reads_back_as_done_by_its_stamp() {
    let (server, proxy, kube) = cluster_behind_proxy().await;
    server.seed_rolled_out("shop", "checkout", 2);
    let stamp = restart_stamp();
    let change = restart_checkout(stamp.clone(), None);
    assert_eq!(
        kube.reconcile(&change).await.unwrap(),
        Reconciled::NotApplied
    );

    proxy.lose_answer_after(PATCH);
    let lost = kube
        .rollout_restart("shop", "checkout", &stamp)
        .await
        .unwrap_err();
    assert!(matches!(lost, ExecError::TimedOut(_)), "{lost:?}");
    assert_eq!(generation(&server), 2, "the server restarted it");

    let read = kube.reconcile(&change).await.unwrap();
    assert!(matches!(read, Reconciled::Done(_)), "{read:?}");
    // Another restart (another stamp), decided over the same marker, is not mistaken for this
    // one: someone else's restart got there first.
    let other = restart_checkout(restart_stamp(), None);
    let read = kube.reconcile(&other).await.unwrap();
    assert!(matches!(read, Reconciled::Conflict(_)), "{read:?}");
    assert_eq!(proxy.count(PATCH), 1);
    assert_eq!(generation(&server), 2);
}

#[tokio::test]
async fn a_scale_not_made_over_which_only_the_status_changed_is_not_applied_and_is_redone() {
    let (server, proxy, kube) = cluster_behind_proxy().await;
    // Seeded with no replica ready: the controller's status updates bump its resourceVersion.
    server
        .seed(grace_kube_testserver::deployment("shop", "checkout", 2))
        .unwrap();
    let before = kube.get_deployment("shop", "checkout").await.unwrap();
    let rolled = kube
        .wait_for_rollout("shop", "checkout", Duration::from_secs(10))
        .await
        .unwrap();
    assert_ne!(rolled.resource_version, before.resource_version);
    assert_eq!(rolled.generation, before.generation, "no spec change");
    proxy.count_requests_with(SCALE);

    let change = scale_checkout_to_4(before.generation);
    assert_eq!(
        kube.reconcile(&change).await.unwrap(),
        Reconciled::NotApplied
    );
    let redone = kube.redo(&change).await.unwrap();
    assert_eq!(redone.replicas, 4);
    assert_eq!(proxy.count(SCALE), 1);
}

#[tokio::test]
async fn a_restart_over_which_someone_else_restarted_is_a_conflict_and_is_not_redone() {
    let (server, proxy, kube) = cluster_behind_proxy().await;
    server.seed_rolled_out("shop", "checkout", 2);
    let before = kube.get_deployment("shop", "checkout").await.unwrap();
    let ours = restart_stamp();
    // Someone else restarts it after ours was decided; ours never reached the server.
    let theirs = restart_stamp();
    kube.rollout_restart("shop", "checkout", &theirs)
        .await
        .unwrap();
    proxy.count_requests_with(PATCH);

    let change = restart_checkout(ours, before.restarted_at.clone());
    let read = kube.reconcile(&change).await.unwrap();
    let Reconciled::Conflict(message) = read else {
        panic!("expected a conflict, got {read:?}")
    };
    assert!(message.contains(&theirs), "{message}");
    let redo = kube.redo(&change).await.unwrap_err();
    assert!(matches!(redo, ExecError::Conflict(_)), "{redo:?}");
    assert_eq!(proxy.count(PATCH), 0, "nothing written over theirs");
    let read = kube.get_deployment("shop", "checkout").await.unwrap();
    assert_eq!(read.restarted_at.as_deref(), Some(theirs.as_str()));
}

#[tokio::test]
async fn a_restart_not_made_is_redone_once_over_the_marker_it_read() {
    let (server, proxy, kube) = cluster_behind_proxy().await;
    server.seed_rolled_out("shop", "checkout", 2);
    kube.rollout_restart("shop", "checkout", &restart_stamp())
        .await
        .unwrap();
    let before = kube.get_deployment("shop", "checkout").await.unwrap();
    proxy.count_requests_with(PATCH);

    let ours = restart_stamp();
    let change = restart_checkout(ours.clone(), before.restarted_at.clone());
    assert_eq!(
        kube.reconcile(&change).await.unwrap(),
        Reconciled::NotApplied
    );
    let redone = kube.redo(&change).await.unwrap();
    assert_eq!(redone.restarted_at.as_deref(), Some(ours.as_str()));
    assert_eq!(redone.generation, before.generation + 1);
    assert_eq!(proxy.count(PATCH), 1);
}

#[tokio::test]
async fn a_redo_meeting_a_write_made_after_its_read_is_a_conflict_not_an_overwrite() {
    let (server, proxy, kube) = cluster_behind_proxy().await;
    server.seed_rolled_out("shop", "checkout", 2);
    let before = kube.get_deployment("shop", "checkout").await.unwrap();
    proxy.count_requests_with(PATCH);
    let scale = scale_checkout_to_4(before.generation);
    let restart = restart_checkout(restart_stamp(), before.restarted_at.clone());
    for change in [scale, restart] {
        // Another writer writes between the redo's read and its write.
        server.conflict_next_writes("shop", "checkout", 1);
        let redo = kube.redo(&change).await.unwrap_err();
        assert!(
            matches!(redo, ExecError::Conflict(_)),
            "{change:?}: {redo:?}"
        );
    }
    let now = server.deployment("shop", "checkout").unwrap();
    assert_eq!(now.spec.replicas, Some(2));
    assert_eq!(now.metadata.generation, Some(1), "neither redo landed");
}
