//! The Kubernetes provider against the test API server (real `apps/v1` JSON, kube unmodified):
//! each operation of the executor trait, and each way the API server can fail it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use grace_executor::kubernetes::restart_stamp;
use grace_executor::{ExecError, KubernetesExecutor};
use grace_kube_testserver::{Fault, ServerConfig, TestServer};
use grace_kubernetes::{Kube, KubeSettings, RESTARTED_AT};
use grace_testkit::fake_endpoint::{Behaviour, FakeEndpoint};

/// The controller's pace in these tests: a rollout of a few replicas takes a few tenths of a second.
const STEP: Duration = Duration::from_millis(40);

fn settings() -> KubeSettings {
    KubeSettings {
        call_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        ..KubeSettings::default()
    }
}

async fn cluster_with(step: Duration, settings: &KubeSettings) -> (TestServer, Kube) {
    let server = TestServer::start(ServerConfig { step }).await.unwrap();
    let kube = Kube::for_url(server.url(), settings).unwrap();
    (server, kube)
}

async fn cluster() -> (TestServer, Kube) {
    cluster_with(STEP, &settings()).await
}

/// The statuses the server answered to `method` on paths ending with `suffix`, in order.
fn answers(server: &TestServer, method: &str, suffix: &str) -> Vec<Option<u16>> {
    server
        .requests()
        .iter()
        .filter(|r| r.is(method, suffix))
        .map(|r| r.status)
        .collect()
}

#[tokio::test]
async fn get_deployment_reads_spec_and_status() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 2);
    let d = kube.get_deployment("shop", "checkout").await.unwrap();
    assert_eq!(
        (d.namespace.as_str(), d.name.as_str()),
        ("shop", "checkout")
    );
    assert_eq!(
        (
            d.replicas,
            d.ready_replicas,
            d.updated_replicas,
            d.available_replicas
        ),
        (2, 2, 2, 2)
    );
    assert_eq!((d.generation, d.observed_generation), (1, 1));
    assert!(d.is_rolled_out());
}

#[tokio::test]
async fn scaling_from_2_to_5_then_waiting_sees_5_ready() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 2);

    let scaled = kube.scale_deployment("shop", "checkout", 5).await.unwrap();
    assert_eq!((scaled.replicas, scaled.generation), (5, 2));
    assert_eq!(
        answers(&server, "PUT", "/deployments/checkout/scale"),
        vec![Some(200)]
    );

    let done = kube
        .wait_for_rollout("shop", "checkout", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(done.is_rolled_out());
    assert_eq!((done.ready_replicas, done.available_replicas), (5, 5));
    assert_eq!(done.observed_generation, 2);
}

#[tokio::test]
async fn scaling_retries_conflicts_on_a_fresh_read_and_succeeds() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 2);
    server.conflict_next_writes("shop", "checkout", 2);

    let scaled = kube.scale_deployment("shop", "checkout", 5).await.unwrap();
    assert_eq!(scaled.replicas, 5);
    // Two writes lost to the other writer, each followed by a fresh read of the scale.
    assert_eq!(
        answers(&server, "PUT", "/deployments/checkout/scale"),
        vec![Some(409), Some(409), Some(200)]
    );
    assert_eq!(
        answers(&server, "GET", "/deployments/checkout/scale").len(),
        3
    );
}

#[tokio::test]
async fn conflicts_beyond_the_retry_budget_are_a_conflict() {
    let budget = KubeSettings {
        conflict_retries: 2,
        ..settings()
    };
    let (server, kube) = cluster_with(STEP, &budget).await;
    server.seed_rolled_out("shop", "checkout", 2);
    server.conflict_next_writes("shop", "checkout", 3);

    let err = kube
        .scale_deployment("shop", "checkout", 5)
        .await
        .unwrap_err();
    let ExecError::Conflict(message) = &err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert!(message.contains("`shop/checkout`"), "{message}");
    assert!(message.contains("3 attempts"), "{message}");
    assert!(err.is_transient());
    assert_eq!(
        answers(&server, "PUT", "/deployments/checkout/scale").len(),
        3
    );
    assert_eq!(
        server.deployment("shop", "checkout").unwrap().spec.replicas,
        Some(2)
    );
}

#[tokio::test]
async fn scaling_to_the_current_count_writes_nothing() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 3);
    let d = kube.scale_deployment("shop", "checkout", 3).await.unwrap();
    assert_eq!((d.replicas, d.generation), (3, 1));
    assert!(answers(&server, "PUT", "/deployments/checkout/scale").is_empty());
}

#[tokio::test]
async fn scaling_beyond_what_kubernetes_allows_is_an_invalid_argument() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 1);
    let err = kube
        .scale_deployment("shop", "checkout", u32::MAX)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::InvalidArgument(_)), "{err:?}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn rollout_restart_bumps_the_generation_and_rolls_every_replica() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 3);

    let restarted = kube
        .rollout_restart("shop", "checkout", &restart_stamp())
        .await
        .unwrap();
    assert_eq!(restarted.generation, 2);
    assert!(!restarted.is_rolled_out());
    let stored = server.deployment("shop", "checkout").unwrap();
    let annotations = stored.spec.template.metadata.unwrap().annotations.unwrap();
    assert!(annotations[RESTARTED_AT].ends_with('Z'), "{annotations:?}");
    assert_eq!(
        answers(&server, "PATCH", "/deployments/checkout"),
        vec![Some(200)]
    );

    let done = kube
        .wait_for_rollout("shop", "checkout", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (
            done.updated_replicas,
            done.ready_replicas,
            done.observed_generation
        ),
        (3, 3, 2)
    );
}

#[tokio::test]
async fn two_restarts_in_a_row_are_two_rollouts() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 1);
    // Stamps made back to back, within the same millisecond, as two calls in a tight loop.
    let (first, second) = (restart_stamp(), restart_stamp());
    assert_ne!(first, second);
    kube.rollout_restart("shop", "checkout", &first)
        .await
        .unwrap();
    let restarted = kube
        .rollout_restart("shop", "checkout", &second)
        .await
        .unwrap();
    assert_eq!(restarted.generation, 3);
}

#[tokio::test]
async fn a_restart_with_the_stamp_already_there_changes_nothing() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 1);
    let stamp = restart_stamp();
    kube.rollout_restart("shop", "checkout", &stamp)
        .await
        .unwrap();
    let again = kube
        .rollout_restart("shop", "checkout", &stamp)
        .await
        .unwrap();
    assert_eq!(
        again.generation, 2,
        "the same marker is not a second rollout"
    );
}

#[tokio::test]
async fn a_missing_deployment_is_not_found_for_every_operation() {
    let (_server, kube) = cluster().await;
    let errors = [
        kube.get_deployment("shop", "nope").await.unwrap_err(),
        kube.scale_deployment("shop", "nope", 3).await.unwrap_err(),
        kube.rollout_restart("shop", "nope", &restart_stamp())
            .await
            .unwrap_err(),
        kube.wait_for_rollout("shop", "nope", Duration::from_secs(5))
            .await
            .unwrap_err(),
    ];
    for err in errors {
        let ExecError::NotFound(message) = &err else {
            panic!("expected not found, got {err:?}");
        };
        assert!(message.contains("`shop/nope`"), "{message}");
    }
}

#[tokio::test]
async fn waiting_past_the_timeout_names_ready_and_desired_replicas() {
    // A slow controller: one replica per second.
    let (server, kube) = cluster_with(Duration::from_secs(1), &settings()).await;
    server.seed_rolled_out("shop", "checkout", 2);
    kube.scale_deployment("shop", "checkout", 6).await.unwrap();

    let started = std::time::Instant::now();
    let err = kube
        .wait_for_rollout("shop", "checkout", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let ExecError::TimedOut(message) = &err else {
        panic!("expected a time-out, got {err:?}");
    };
    assert!(message.contains("`shop/checkout`"), "{message}");
    assert!(message.contains("of 6 replicas ready"), "{message}");
}

#[tokio::test]
async fn waiting_polls_through_transient_failures() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 2);
    server.fail_next(2, Fault::Status(503));
    let d = kube
        .wait_for_rollout("shop", "checkout", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(d.is_rolled_out());
    assert_eq!(
        answers(&server, "GET", "/deployments/checkout"),
        vec![Some(503), Some(503), Some(200)]
    );
}

#[tokio::test]
async fn a_hanging_server_times_out_within_the_call_timeout() {
    let quick = KubeSettings {
        call_timeout: Duration::from_millis(300),
        ..settings()
    };
    let (server, kube) = cluster_with(STEP, &quick).await;
    server.seed_rolled_out("shop", "checkout", 2);
    server.fail_always(Fault::Hang);

    let started = std::time::Instant::now();
    let err = kube.get_deployment("shop", "checkout").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let ExecError::TimedOut(message) = &err else {
        panic!("expected a time-out, got {err:?}");
    };
    assert!(message.contains("`shop/checkout`"), "{message}");
    assert!(message.contains("300ms"), "{message}");

    let err = kube
        .scale_deployment("shop", "checkout", 4)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::TimedOut(_)), "{err:?}");
}

#[tokio::test]
async fn server_errors_and_throttling_are_unavailable_without_hidden_retries() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 2);
    for code in [503, 500, 429] {
        server.fail_next(1, Fault::Status(code));
        let err = kube.get_deployment("shop", "checkout").await.unwrap_err();
        let ExecError::Unavailable(message) = &err else {
            panic!("expected unavailable for {code}, got {err:?}");
        };
        assert!(message.contains(&code.to_string()), "{message}");
    }
    // One request per call: kube's own retry of 429/503 is off.
    assert_eq!(
        answers(&server, "GET", "/deployments/checkout"),
        vec![Some(503), Some(500), Some(429)]
    );

    server.fail_always(Fault::Status(503));
    let err = kube
        .scale_deployment("shop", "checkout", 3)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Unavailable(_)), "{err:?}");
    let err = kube
        .rollout_restart("shop", "checkout", &restart_stamp())
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let port = grace_testkit::e2e::free_port();
    let kube = Kube::for_url(&format!("http://127.0.0.1:{port}"), &settings()).unwrap();
    let err = kube.get_deployment("shop", "checkout").await.unwrap_err();
    let ExecError::Unavailable(message) = &err else {
        panic!("expected unavailable, got {err:?}");
    };
    assert!(message.contains(&port.to_string()), "{message}");
}

#[tokio::test]
async fn an_answer_that_is_not_a_deployment_is_other() {
    // A failure mode no real API server produces, but a proxy in front of one can: `200`,
    // JSON by its content type, HTML by its body.
    let proxy = FakeEndpoint::start(Behaviour::Answer {
        status: "200 OK",
        content_type: "application/json",
        body: "<html>proxy says hi</html>".to_owned(),
    });
    let kube = Kube::for_url(&proxy.endpoint(), &settings()).unwrap();
    let err = kube.get_deployment("shop", "checkout").await.unwrap_err();
    let ExecError::Other(message) = &err else {
        panic!("expected other, got {err:?}");
    };
    assert!(message.contains("`shop/checkout`"), "{message}");
    assert!(!err.is_transient());
}

/// The image `shop/checkout` runs, as stored.
fn image_of(server: &TestServer) -> Option<String> {
    let d = server.deployment("shop", "checkout").unwrap();
    d.spec.template.spec.unwrap().containers[0].image.clone()
}

/// The rollback of `shop/checkout` to its revision 1, as the engine plans it from the history.
async fn plan_undo(kube: &Kube) -> grace_executor::kubernetes::Change {
    let d = kube.get_deployment("shop", "checkout").await.unwrap();
    let history = kube.rollout_history("shop", "checkout").await.unwrap();
    let target = history.iter().find(|r| r.revision == 1).unwrap();
    grace_executor::kubernetes::Change::RolloutUndo {
        namespace: "shop".into(),
        name: "checkout".into(),
        revision: 1,
        to: target.template_hash.clone(),
        before: d.template_hash.clone().unwrap(),
        generation: d.generation,
    }
}

#[tokio::test]
async fn a_rollback_puts_the_old_revisions_template_back_through_status_churn() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 2);
    server
        .set_image("shop", "checkout", "registry.invalid/checkout:2")
        .unwrap();
    let history = kube.rollout_history("shop", "checkout").await.unwrap();
    let revisions: Vec<(u64, &str)> = history
        .iter()
        .map(|r| (r.revision, r.images[0].as_str()))
        .collect();
    assert_eq!(
        revisions,
        [
            (2, "registry.invalid/checkout:2"),
            (1, "registry.invalid/checkout:1")
        ]
    );
    let undo = plan_undo(&kube).await;
    // Two writes by others (status updates during the rollout) land first: read again, twice.
    server.conflict_next_writes("shop", "checkout", 2);
    let d = kube.rollout_undo(&undo).await.unwrap();
    assert_eq!(
        d.template_hash.as_deref(),
        Some(history[1].template_hash.as_str())
    );
    let image = image_of(&server);
    assert_eq!(image.as_deref(), Some("registry.invalid/checkout:1"));
    // Made: the same rollback again reads as done and writes nothing.
    let puts = answers(&server, "PUT", "/deployments/checkout").len();
    kube.rollout_undo(&undo).await.unwrap();
    assert_eq!(answers(&server, "PUT", "/deployments/checkout").len(), puts);
}

#[tokio::test]
async fn a_rollback_never_overwrites_a_template_someone_changed_since_it_was_decided() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 2);
    server
        .set_image("shop", "checkout", "registry.invalid/checkout:2")
        .unwrap();
    let undo = plan_undo(&kube).await;
    // Someone deploys a fix meanwhile.
    server
        .set_image("shop", "checkout", "registry.invalid/checkout:3")
        .unwrap();
    let e = kube.rollout_undo(&undo).await.unwrap_err();
    assert!(matches!(e, ExecError::Conflict(_)), "{e}");
    // ...or deploys 3 and goes back to 2 (A→B→A): the template it was decided on, written again.
    server
        .set_image("shop", "checkout", "registry.invalid/checkout:2")
        .unwrap();
    let e = kube.rollout_undo(&undo).await.unwrap_err();
    assert!(matches!(e, ExecError::Conflict(_)), "{e}");
    let image = image_of(&server);
    assert_eq!(image.as_deref(), Some("registry.invalid/checkout:2"));
}
