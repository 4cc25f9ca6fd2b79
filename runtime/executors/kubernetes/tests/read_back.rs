//! Changes whose answer is lost after the API server made them: a proxy in front of the test
//! API server forwards the request and drops the answer, the call times out, and reading the
//! deployment back (`reconcile`) says whether the change is in place, so a retry does not make
//! it twice. The deployment's `generation` counts the spec changes the server made.

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

    let change = Change::Scale {
        namespace: "shop".into(),
        name: "checkout".into(),
        replicas: 4,
        resource_version: before.resource_version.clone(),
    };
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

    let change = Change::Scale {
        namespace: "shop".into(),
        name: "checkout".into(),
        replicas: 4,
        resource_version: before.resource_version.clone(),
    };
    let read = kube.reconcile(&change).await.unwrap();
    let Reconciled::Conflict(message) = read else {
        panic!("expected a conflict, got {read:?}")
    };
    assert!(message.contains("`shop/checkout`"), "{message}");
    // A redo on the version the change was decided on is refused by the server, not forced.
    let redo = kube
        .scale_deployment_at_version(
            "shop",
            "checkout",
            4,
            before.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(redo, ExecError::Conflict(_)), "{redo:?}");
    assert_eq!(proxy.count(SCALE), 1, "one write tried, refused");
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
    let version = before.resource_version.clone().unwrap();
    proxy.count_requests_with(SCALE);

    let change = Change::Scale {
        namespace: "shop".into(),
        name: "checkout".into(),
        replicas: 4,
        resource_version: Some(version.clone()),
    };
    assert_eq!(
        kube.reconcile(&change).await.unwrap(),
        Reconciled::NotApplied
    );
    let redone = kube
        .scale_deployment_at_version("shop", "checkout", 4, &version)
        .await
        .unwrap();
    assert_eq!((redone.replicas, redone.generation), (4, 2));
    assert_eq!(proxy.count(SCALE), 1);
}

#[tokio::test]
async fn a_restart_made_whose_answer_was_lost_reads_back_as_done_by_its_stamp() {
    let (server, proxy, kube) = cluster_behind_proxy().await;
    server.seed_rolled_out("shop", "checkout", 2);
    let stamp = restart_stamp();
    let change = Change::RolloutRestart {
        namespace: "shop".into(),
        name: "checkout".into(),
        stamp: stamp.clone(),
    };
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
    // Another restart (another stamp) is not mistaken for this one.
    let other = Change::RolloutRestart {
        namespace: "shop".into(),
        name: "checkout".into(),
        stamp: restart_stamp(),
    };
    assert_eq!(
        kube.reconcile(&other).await.unwrap(),
        Reconciled::NotApplied
    );
    assert_eq!(proxy.count(PATCH), 1);
    assert_eq!(generation(&server), 2);
}
