//! The test API server, through kube (the client GRACE's Kubernetes provider uses) and raw HTTP
//! where the exact answer matters: it must behave as a real API server does for deployments.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use grace_kube_testserver::{Fault, ServerConfig, TestServer, deployment};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::ScaleSpec;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};

const STEP: Duration = Duration::from_millis(20);

async fn server() -> TestServer {
    TestServer::start(ServerConfig { step: STEP })
        .await
        .unwrap()
}

fn client(server: &TestServer) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

fn deployments(server: &TestServer, ns: &str) -> Api<Deployment> {
    Api::namespaced(client(server), ns)
}

fn api_status(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv(d: &Deployment) -> String {
    d.metadata.resource_version.clone().unwrap()
}

fn ready(d: &Deployment) -> i32 {
    d.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// Sends a raw request; answers the status code and the JSON body exactly as the server sent it.
async fn raw(
    server: &TestServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .unwrap();
    let response = client(server).send(request).await.unwrap();
    let code = response.status().as_u16();
    let bytes = response.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap())
}

async fn wait_until(
    what: &str,
    api: &Api<Deployment>,
    name: &str,
    done: impl Fn(&Deployment) -> bool,
) -> Deployment {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = api.get(name).await.unwrap();
        if done(&d) {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {d:?}"
        );
        tokio::time::sleep(STEP).await;
    }
}

#[tokio::test]
async fn a_seeded_deployment_reads_back_with_the_real_json_shape() {
    let server = server().await;
    server.seed_rolled_out("shop", "checkout", 2);
    let (code, body) = raw(
        &server,
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/checkout",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["apiVersion"], "apps/v1");
    assert_eq!(body["kind"], "Deployment");
    assert_eq!(body["metadata"]["generation"], 1);
    assert_eq!(body["spec"]["replicas"], 2);
    assert_eq!(body["status"]["readyReplicas"], 2);
    assert_eq!(body["status"]["observedGeneration"], 1);
    assert!(body["metadata"]["resourceVersion"].is_string());
    assert!(body["metadata"]["uid"].is_string());
}

#[tokio::test]
async fn a_missing_deployment_is_a_404_not_found_status() {
    let server = server().await;
    let status = api_status(deployments(&server, "shop").get("nope").await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "deployments.apps \"nope\" not found");
    let (code, body) = raw(
        &server,
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/nope/scale",
        "application/json",
        "",
    )
    .await;
    assert_eq!((code, body["kind"].as_str()), (404, Some("Status")));
}

#[tokio::test]
async fn a_put_with_a_stale_resource_version_gets_409_conflict() {
    let server = server().await;
    server.pause_controller(true);
    server.seed_rolled_out("shop", "checkout", 2);
    let api = deployments(&server, "shop");
    let read = api.get("checkout").await.unwrap();

    let mut first = read.clone();
    first
        .metadata
        .labels
        .get_or_insert_default()
        .insert("writer".into(), "first".into());
    let written = api
        .replace("checkout", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_ne!(rv(&written), rv(&read));

    let mut second = read.clone();
    second
        .metadata
        .labels
        .get_or_insert_default()
        .insert("writer".into(), "second".into());
    let status = api_status(
        api.replace("checkout", &PostParams::default(), &second)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );
    let stored = server.deployment("shop", "checkout").unwrap();
    assert_eq!(stored.metadata.labels.unwrap()["writer"], "first");
}

#[tokio::test]
async fn a_scale_write_with_a_stale_resource_version_conflicts() {
    let server = server().await;
    server.pause_controller(true);
    server.seed_rolled_out("shop", "checkout", 2);
    let api = deployments(&server, "shop");
    let mut scale = api.get_scale("checkout").await.unwrap();
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("app=checkout")
    );
    scale.spec = Some(ScaleSpec { replicas: Some(3) });
    let after = api
        .replace_scale("checkout", &PostParams::default(), &scale)
        .await
        .unwrap();
    assert_eq!(after.spec.unwrap().replicas, Some(3));

    scale.spec = Some(ScaleSpec { replicas: Some(4) });
    let status = api_status(
        api.replace_scale("checkout", &PostParams::default(), &scale)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        server.deployment("shop", "checkout").unwrap().spec.replicas,
        Some(3)
    );
}

#[tokio::test]
async fn injected_conflicts_make_conditional_writes_lose_then_stop() {
    let server = server().await;
    server.pause_controller(true);
    server.seed_rolled_out("shop", "checkout", 2);
    server.conflict_next_writes("shop", "checkout", 1);
    let api = deployments(&server, "shop");
    let mut scale = api.get_scale("checkout").await.unwrap();
    scale.spec = Some(ScaleSpec { replicas: Some(5) });
    let status = api_status(
        api.replace_scale("checkout", &PostParams::default(), &scale)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 409);
    assert_eq!(server.pending_conflicts("shop", "checkout"), 0);

    let mut fresh = api.get_scale("checkout").await.unwrap();
    fresh.spec = Some(ScaleSpec { replicas: Some(5) });
    api.replace_scale("checkout", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(
        server.deployment("shop", "checkout").unwrap().spec.replicas,
        Some(5)
    );
}

#[tokio::test]
async fn generation_grows_with_spec_changes_only() {
    let server = server().await;
    server.pause_controller(true);
    server.seed_rolled_out("shop", "checkout", 2);
    let api = deployments(&server, "shop");
    let start = api.get("checkout").await.unwrap();
    assert_eq!(start.metadata.generation, Some(1));

    // Metadata: a new version, the same generation.
    let labelled = api
        .patch(
            "checkout",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "web"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    assert_ne!(rv(&labelled), rv(&start));

    // The same object again: no write at all.
    let same = api
        .replace("checkout", &PostParams::default(), &labelled)
        .await
        .unwrap();
    assert_eq!(rv(&same), rv(&labelled));

    // Spec: the generation grows.
    let scaled = api
        .patch(
            "checkout",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));

    // Status is not writable through the object, and the controller's writes keep the generation.
    let mut forged = scaled.clone();
    forged.status.as_mut().unwrap().ready_replicas = Some(99);
    let kept = api
        .replace("checkout", &PostParams::default(), &forged)
        .await
        .unwrap();
    assert_eq!(ready(&kept), 2);
    server.pause_controller(false);
    let rolled = wait_until("3 ready", &api, "checkout", |d| ready(d) == 3).await;
    assert_eq!(rolled.metadata.generation, Some(2));
    assert_eq!(rolled.status.unwrap().observed_generation, Some(2));
}

#[tokio::test]
async fn the_controller_rolls_a_new_deployment_out_one_replica_per_step() {
    let server = server().await;
    let api = deployments(&server, "shop");
    let created = api
        .create(&PostParams::default(), &deployment("shop", "cart", 3))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none());
    let done = wait_until("3 ready", &api, "cart", |d| ready(d) == 3).await;
    let status = done.status.unwrap();
    assert_eq!(
        (
            status.updated_replicas,
            status.available_replicas,
            status.observed_generation
        ),
        (Some(3), Some(3), Some(1))
    );
}

#[tokio::test]
async fn a_restart_annotation_rolls_every_replica_while_ready_stays() {
    let server = server().await;
    server.seed_rolled_out("shop", "checkout", 3);
    let api = deployments(&server, "shop");
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}});
    let restarted = api
        .patch(
            "checkout",
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .unwrap();
    assert_eq!(restarted.metadata.generation, Some(2));

    // Every status the controller writes, from the restart on: the watch misses none.
    let params = WatchParams::default()
        .fields("metadata.name=checkout")
        .timeout(10);
    let mut events = api.watch(&params, &rv(&restarted)).await.unwrap().boxed();
    let mut updated_and_ready = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
    {
        let WatchEvent::Modified(d) = event.unwrap() else {
            panic!("only modifications expected");
        };
        let status = d.status.unwrap();
        assert_eq!(status.observed_generation, Some(2));
        updated_and_ready.push((
            status.updated_replicas.unwrap_or(0),
            status.ready_replicas.unwrap_or(0),
        ));
        if status.updated_replicas == Some(3) {
            break;
        }
    }
    assert_eq!(updated_and_ready, vec![(1, 3), (2, 3), (3, 3)]);
}

#[tokio::test]
async fn a_watch_streams_modified_events_as_the_rollout_progresses() {
    let server = server().await;
    server.seed_rolled_out("shop", "checkout", 2);
    server.seed_rolled_out("shop", "other", 1);
    let api = deployments(&server, "shop");
    let version = rv(&api.get("checkout").await.unwrap());
    let params = WatchParams::default()
        .fields("metadata.name=checkout")
        .timeout(10);
    let mut events = api.watch(&params, &version).await.unwrap().boxed();

    api.patch_scale(
        "checkout",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    api.patch(
        "other",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();

    let mut seen_ready = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
    {
        match event.unwrap() {
            WatchEvent::Modified(d) => {
                assert_eq!(d.metadata.name.as_deref(), Some("checkout"));
                assert_eq!(d.spec.replicas, Some(4));
                seen_ready.push(ready(&d));
                if ready(&d) == 4 {
                    break;
                }
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    // The spec change, then one event per replica the controller brought up.
    assert_eq!(seen_ready, vec![2, 3, 4]);
}

#[tokio::test]
async fn a_watch_without_a_version_starts_with_the_objects_and_sees_deletions() {
    let server = server().await;
    server.seed_rolled_out("shop", "checkout", 1);
    let api = deployments(&server, "shop");
    let mut events = api
        .watch(&WatchParams::default().timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    let first = events.next().await.unwrap().unwrap();
    assert!(
        matches!(first, WatchEvent::Added(ref d) if d.metadata.name.as_deref() == Some("checkout"))
    );

    api.delete("checkout", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = events.next().await.unwrap().unwrap();
    assert!(
        matches!(deleted, WatchEvent::Deleted(ref d) if d.metadata.name.as_deref() == Some("checkout"))
    );
    assert!(server.deployment("shop", "checkout").is_none());
}

#[tokio::test]
async fn lists_filter_by_namespace_and_labels() {
    let server = server().await;
    server.seed_rolled_out("shop", "checkout", 1);
    server.seed_rolled_out("shop", "cart", 1);
    server.seed_rolled_out("ops", "grafana", 1);
    let shop = deployments(&server, "shop")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(shop.items.len(), 2);
    let everywhere: Api<Deployment> = Api::all(client(&server));
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    let one = everywhere
        .list(&ListParams::default().labels("app=grafana"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert_eq!(
        one.metadata.resource_version,
        Some(server.resource_version().to_string())
    );
}

#[tokio::test]
async fn invalid_objects_are_422_and_undecodable_bodies_400() {
    let server = server().await;
    let api = deployments(&server, "shop");
    let status = api_status(
        api.create(&PostParams::default(), &deployment("shop", "bad", -1))
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains("spec.replicas"),
        "{}",
        status.message
    );

    let mut mismatched = deployment("shop", "mismatched", 1);
    mismatched.spec.template.metadata.as_mut().unwrap().labels = None;
    let status = api_status(
        api.create(&PostParams::default(), &mismatched)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 422);

    server.seed_rolled_out("shop", "checkout", 1);
    let path = "/apis/apps/v1/namespaces/shop/deployments/checkout";
    let (code, body) = raw(&server, "PUT", path, "application/json", "{not json").await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = raw(
        &server,
        "PATCH",
        &format!("{path}/scale"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":-2}}"#,
    )
    .await;
    assert_eq!(code, 422);
    let (code, body) = raw(&server, "PATCH", path, "application/apply-patch+yaml", "{}").await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let (code, _) = raw(
        &server,
        "POST",
        "/apis/apps/v1/namespaces/shop/deployments",
        "application/json",
        &serde_json::to_string(&deployment("shop", "checkout", 1)).unwrap(),
    )
    .await;
    assert_eq!(code, 409);
}

#[tokio::test]
async fn a_json_patch_applies_and_names_a_version_precondition() {
    let server = server().await;
    server.pause_controller(true);
    server.seed_rolled_out("shop", "checkout", 1);
    let path = "/apis/apps/v1/namespaces/shop/deployments/checkout";
    let (code, body) = raw(
        &server,
        "PATCH",
        path,
        "application/json-patch+json",
        r#"[{"op":"replace","path":"/spec/replicas","value":6}]"#,
    )
    .await;
    assert_eq!((code, body["spec"]["replicas"].as_i64()), (200, Some(6)));
    let stale = r#"[{"op":"replace","path":"/metadata/resourceVersion","value":"1"},{"op":"replace","path":"/spec/replicas","value":7}]"#;
    let (code, _) = raw(&server, "PATCH", path, "application/json-patch+json", stale).await;
    assert_eq!(code, 409);
}

#[tokio::test]
async fn injected_faults_answer_the_status_asked_and_are_logged() {
    let server = server().await;
    server.seed_rolled_out("shop", "checkout", 1);
    server.fail_next(1, Fault::Status(503));
    let api = deployments(&server, "shop");
    let status = api_status(api.get("checkout").await.unwrap_err());
    assert_eq!(
        (status.code, status.reason.as_str()),
        (503, "ServiceUnavailable")
    );
    api.get("checkout").await.unwrap();
    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|r| r.is("GET", "/deployments/checkout")));
    assert_eq!(log[0].status, Some(503));
    assert_eq!(log[1].status, Some(200));
}

#[tokio::test]
async fn a_hanging_request_is_released_when_the_server_stops() {
    let server = server().await;
    server.fail_always(Fault::Hang);
    let api = deployments(&server, "shop");
    let pending = tokio::spawn(async move { api.get("checkout").await });
    // The request has reached the server and hangs there.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !server.requests().iter().any(|r| r.status.is_none()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request never arrived"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!pending.is_finished());
    server.shutdown().await;
    let answer = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(api_status(answer.unwrap_err()).code, 503);
}

#[tokio::test]
async fn it_listens_on_loopback_only() {
    let outside = "0.0.0.0:0".parse().unwrap();
    assert!(
        TestServer::bind(outside, ServerConfig::default())
            .await
            .is_err()
    );
}
