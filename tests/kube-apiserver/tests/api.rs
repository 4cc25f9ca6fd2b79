//! The test API server, through kube (the client GRACE's Kubernetes provider uses) and raw HTTP
//! where the exact answer matters: it must behave as a real API server does for deployments,
//! services and endpoint slices.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use grace_kube_testserver::{
    Fault, SERVICE_NAME_LABEL, ServerConfig, SliceEndpoint, TestServer, deployment, endpoint_slice,
    service,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::ScaleSpec;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
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

// Services and endpoint slices.

fn ready_pod<'a>(address: &'a str, pod: &'a str) -> SliceEndpoint<'a> {
    SliceEndpoint {
        address,
        ready: true,
        pod: Some(pod),
    }
}

fn ready_endpoint(address: &str) -> k8s_openapi::api::discovery::v1::Endpoint {
    k8s_openapi::api::discovery::v1::Endpoint {
        addresses: vec![address.to_owned()],
        conditions: Some(k8s_openapi::api::discovery::v1::EndpointConditions {
            ready: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_seeded_service_reads_back_with_the_real_json_shape_and_defaults() {
    let server = server().await;
    server.seed_service("shop", "web", &[("app", "web")], &[8080]);
    let (code, body) = raw(
        &server,
        "GET",
        "/api/v1/namespaces/shop/services/web",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        (body["apiVersion"].as_str(), body["kind"].as_str()),
        (Some("v1"), Some("Service"))
    );
    assert!(body["metadata"]["uid"].is_string());
    assert!(body["metadata"]["creationTimestamp"].is_string());
    assert!(body["metadata"]["resourceVersion"].is_string());
    // Services do not count generations.
    assert!(body["metadata"].get("generation").is_none(), "{body}");
    let spec = &body["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["selector"], json!({"app": "web"}));
    assert_eq!(
        spec["ports"],
        json!([{"port": 8080, "protocol": "TCP", "targetPort": 8080}])
    );
    let ip = spec["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.9"), "{ip}");
    assert_eq!(spec["clusterIPs"], json!([ip]));
    assert_eq!(body["status"], json!({"loadBalancer": {}}));
}

#[tokio::test]
async fn services_are_created_listed_read_and_deleted_through_kube() {
    let server = server().await;
    let shop: Api<Service> = Api::namespaced(client(&server), "shop");
    let mut labelled = service("shop", "web", &[("app", "web")], &[80, 443]);
    labelled.metadata.labels = Some([("tier".to_owned(), "front".to_owned())].into());
    let created = shop
        .create(&PostParams::default(), &labelled)
        .await
        .unwrap();
    let ports = created.spec.as_ref().unwrap().ports.clone().unwrap();
    assert_eq!(
        ports
            .iter()
            .map(|p| p.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["port-80", "port-443"]
    );
    shop.create(
        &PostParams::default(),
        &service("shop", "db", &[("app", "db")], &[5432]),
    )
    .await
    .unwrap();
    server.seed_service("ops", "grafana", &[("app", "grafana")], &[3000]);

    let listed = shop.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&listed.items), ["db", "web"]);
    let everywhere: Api<Service> = Api::all(client(&server));
    let all = everywhere.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&all.items), ["grafana", "db", "web"]);
    assert_eq!(
        all.metadata.resource_version,
        Some(server.resource_version().to_string())
    );
    let front = everywhere
        .list(&ListParams::default().labels("tier=front"))
        .await
        .unwrap();
    assert_eq!(names(&front.items), ["web"]);

    let read = shop.get("web").await.unwrap();
    assert_eq!(read, created);
    // Services answer a delete with the deleted object, as the real server does.
    let deleted = shop.delete("web", &DeleteParams::default()).await.unwrap();
    let gone = deleted.left().expect("the deleted service");
    assert_eq!(gone.metadata.uid, created.metadata.uid);
    assert!(server.service("shop", "web").is_none());
    assert_eq!(
        names(&shop.list(&ListParams::default()).await.unwrap().items),
        ["db"]
    );
}

#[tokio::test]
async fn a_missing_service_is_a_404_and_a_duplicate_a_409_already_exists() {
    let server = server().await;
    let shop: Api<Service> = Api::namespaced(client(&server), "shop");
    let status = api_status(shop.get("nope").await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "services \"nope\" not found");
    let status = api_status(
        shop.delete("nope", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 404);

    server.seed_service("shop", "web", &[("app", "web")], &[80]);
    let status = api_status(
        shop.create(&PostParams::default(), &service("shop", "web", &[], &[81]))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(status.message, "services \"web\" already exists");
    let kept = server.service("shop", "web").unwrap();
    assert_eq!(kept.spec.unwrap().ports.unwrap()[0].port, 80);
}

#[tokio::test]
async fn a_service_replace_keeps_its_cluster_ip_and_a_stale_one_conflicts() {
    let server = server().await;
    let shop: Api<Service> = Api::namespaced(client(&server), "shop");
    let seeded = server.seed_service("shop", "web", &[("app", "web")], &[80]);
    let ip = seeded.spec.as_ref().unwrap().cluster_ip.clone().unwrap();

    // A client that sends no cluster IP keeps the allocated one.
    let mut wanted = service("shop", "web", &[("app", "web-v2")], &[80]);
    wanted.metadata.resource_version = seeded.metadata.resource_version.clone();
    let replaced = shop
        .replace("web", &PostParams::default(), &wanted)
        .await
        .unwrap();
    let spec = replaced.spec.clone().unwrap();
    assert_eq!(spec.cluster_ip, Some(ip));
    assert_eq!(spec.selector.unwrap()["app"], "web-v2");
    assert_ne!(
        replaced.metadata.resource_version,
        seeded.metadata.resource_version
    );

    // The version read before that write is stale now.
    let status = api_status(
        shop.replace("web", &PostParams::default(), &wanted)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));

    let mut moved = replaced.clone();
    moved.spec.as_mut().unwrap().cluster_ip = Some("10.96.200.200".to_owned());
    moved.spec.as_mut().unwrap().cluster_ips = None;
    let status = api_status(
        shop.replace("web", &PostParams::default(), &moved)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn endpoint_slices_of_a_service_are_found_by_their_service_name_label() {
    let server = server().await;
    let web = server.seed_endpoint_slice(
        "shop",
        "web",
        &[
            ready_pod("10.0.0.1", "web-1"),
            SliceEndpoint {
                address: "10.0.0.2",
                ready: false,
                pod: Some("web-2"),
            },
        ],
        8080,
    );
    server.seed_endpoint_slice("shop", "db", &[ready_pod("10.0.1.1", "db-0")], 5432);
    let other = server.seed_endpoint_slice("ops", "web", &[ready_pod("10.0.2.1", "web-a")], 8080);
    let web_name = web.metadata.name.clone().unwrap();
    assert!(
        web_name.starts_with("web-") && web_name.len() == "web-".len() + 5,
        "{web_name}"
    );

    let by_label = ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}=web"));
    let shop: Api<EndpointSlice> = Api::namespaced(client(&server), "shop");
    let found = shop.list(&by_label).await.unwrap();
    assert_eq!(names(&found.items), vec![web_name.clone()]);
    let everywhere: Api<EndpointSlice> = Api::all(client(&server));
    let all_web = everywhere.list(&by_label).await.unwrap();
    assert_eq!(all_web.items.len(), 2);
    assert!(all_web.items.contains(&other));
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(server.endpoint_slices_of("shop", "web"), found.items);

    let slice = shop.get(&web_name).await.unwrap();
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.metadata.generation, Some(1));
    let endpoints = slice.endpoints.unwrap();
    let ready: Vec<_> = endpoints
        .iter()
        .map(|e| e.conditions.as_ref().unwrap().ready)
        .collect();
    assert_eq!(ready, [Some(true), Some(false)]);
    let pod = endpoints[0].target_ref.clone().unwrap();
    assert_eq!(
        (
            pod.kind.as_deref(),
            pod.name.as_deref(),
            pod.namespace.as_deref()
        ),
        (Some("Pod"), Some("web-1"), Some("shop"))
    );
    assert_eq!(slice.ports.unwrap()[0].port, Some(8080));
}

#[tokio::test]
async fn endpoint_slices_are_created_replaced_and_deleted_through_kube() {
    let server = server().await;
    let shop: Api<EndpointSlice> = Api::namespaced(client(&server), "shop");
    let created = shop
        .create(
            &PostParams::default(),
            &endpoint_slice("shop", "web", &[ready_pod("10.0.0.1", "web-1")], 80),
        )
        .await
        .unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("web-"), "{name}");
    assert_eq!(created.metadata.generation, Some(1));

    // A new endpoint: a new generation.
    let mut grown = created.clone();
    grown
        .endpoints
        .as_mut()
        .unwrap()
        .push(ready_endpoint("10.0.0.2"));
    let replaced = shop
        .replace(&name, &PostParams::default(), &grown)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(replaced.endpoints.as_ref().unwrap().len(), 2);
    // An annotation: a new version, the same generation.
    let mut annotated = replaced.clone();
    annotated.metadata.annotations = Some([("note".to_owned(), "x".to_owned())].into());
    let annotated = shop
        .replace(&name, &PostParams::default(), &annotated)
        .await
        .unwrap();
    assert_eq!(annotated.metadata.generation, Some(2));
    assert_ne!(
        annotated.metadata.resource_version,
        replaced.metadata.resource_version
    );
    // The first version read is stale.
    let status = api_status(
        shop.replace(&name, &PostParams::default(), &grown)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));

    let mut duplicate = endpoint_slice("shop", "web", &[], 80);
    duplicate.metadata.name = Some(name.clone());
    let status = api_status(
        shop.create(&PostParams::default(), &duplicate)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(
        status.message,
        format!("endpointslices.discovery.k8s.io \"{name}\" already exists")
    );

    // Endpoint slices answer a delete with a `Status`.
    let deleted = shop.delete(&name, &DeleteParams::default()).await.unwrap();
    let done = deleted.right().expect("a Status");
    assert_eq!(Some(done.details.unwrap().uid), created.metadata.uid);
    let status = api_status(shop.get(&name).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        status.message,
        format!("endpointslices.discovery.k8s.io \"{name}\" not found")
    );
    assert_eq!(status.details.unwrap().group, "discovery.k8s.io");
}

#[tokio::test]
async fn a_body_that_does_not_match_its_path_is_refused() {
    let server = server().await;
    let services = "/api/v1/namespaces/shop/services";
    let web = serde_json::to_value(service("shop", "web", &[("app", "web")], &[80])).unwrap();
    let post = |body: Value| {
        let server = &server;
        async move {
            raw(
                server,
                "POST",
                services,
                "application/json",
                &body.to_string(),
            )
            .await
        }
    };

    let mut wrong_kind = web.clone();
    wrong_kind["kind"] = json!("Deployment");
    let (code, body) = post(wrong_kind).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (400, Some("BadRequest")),
        "{body}"
    );
    let mut wrong_version = web.clone();
    wrong_version["apiVersion"] = json!("apps/v1");
    let (code, body) = post(wrong_version).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (400, Some("BadRequest")),
        "{body}"
    );
    let mut wrong_namespace = web.clone();
    wrong_namespace["metadata"]["namespace"] = json!("ops");
    let (code, body) = post(wrong_namespace).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (400, Some("BadRequest")),
        "{body}"
    );
    let mut unnamed = web.clone();
    unnamed["metadata"]["name"] = Value::Null;
    let (code, body) = post(unnamed).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (422, Some("Invalid")),
        "{body}"
    );
    let mut bad_name = web.clone();
    bad_name["metadata"]["name"] = json!("Web");
    let (code, body) = post(bad_name).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (422, Some("Invalid")),
        "{body}"
    );
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    let no_ports = serde_json::to_value(service("shop", "bare", &[], &[])).unwrap();
    let (code, body) = post(no_ports).await;
    assert_eq!(
        (code, body["details"]["causes"][0]["field"].as_str()),
        (422, Some("spec.ports"))
    );
    assert!(server.service("shop", "web").is_none());

    server.seed_service("shop", "web", &[("app", "web")], &[80]);
    let (code, body) = raw(
        &server,
        "PUT",
        &format!("{services}/other"),
        "application/json",
        &web.to_string(),
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));
    server.seed_service("shop", "other", &[("app", "other")], &[80]);
    let (code, body) = raw(
        &server,
        "PUT",
        &format!("{services}/other"),
        "application/json",
        &web.to_string(),
    )
    .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (400, Some("BadRequest")),
        "{body}"
    );

    let slices = "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices";
    let not_an_ip = SliceEndpoint {
        address: "web-1.shop",
        ready: true,
        pod: None,
    };
    let bad = serde_json::to_string(&endpoint_slice("shop", "web", &[not_an_ip], 80)).unwrap();
    let (code, body) = raw(&server, "POST", slices, "application/json", &bad).await;
    assert_eq!(
        (code, body["details"]["causes"][0]["field"].as_str()),
        (422, Some("endpoints[0].addresses[0]"))
    );
    let (code, body) = raw(
        &server,
        "POST",
        slices,
        "application/json",
        &web.to_string(),
    )
    .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (400, Some("BadRequest")),
        "{body}"
    );
    assert!(server.endpoint_slices_of("shop", "web").is_empty());
}

#[tokio::test]
async fn every_write_of_every_kind_takes_the_next_global_resource_version() {
    let server = server().await;
    server.pause_controller(true);
    let rv = |v: &Option<String>| v.as_deref().unwrap().parse::<u64>().unwrap();
    let d = server.seed_rolled_out("shop", "checkout", 1);
    let s = server.seed_service("shop", "checkout", &[("app", "checkout")], &[80]);
    let e = server.seed_endpoint_slice("shop", "checkout", &[ready_pod("10.0.0.1", "c-1")], 80);
    // The ReplicaSet made for the deployment's template took the version between.
    assert_eq!(
        rv(&s.metadata.resource_version),
        rv(&d.metadata.resource_version) + 2
    );
    assert_eq!(
        rv(&e.metadata.resource_version),
        rv(&s.metadata.resource_version) + 1
    );
    let deleted = server.delete_service("shop", "checkout").unwrap();
    assert_eq!(
        rv(&deleted.metadata.resource_version),
        rv(&e.metadata.resource_version) + 1
    );
    assert_eq!(
        server.resource_version(),
        rv(&deleted.metadata.resource_version)
    );
    // A deployment list reports the version of the last write, whatever its kind.
    let list = deployments(&server, "shop")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        list.metadata.resource_version,
        Some(server.resource_version().to_string())
    );
}

#[tokio::test]
async fn seeded_services_and_slices_disappear_when_the_test_deletes_them() {
    let server = server().await;
    server.seed_service("shop", "web", &[("app", "web")], &[80]);
    let slice = server.seed_endpoint_slice("shop", "web", &[ready_pod("10.0.0.1", "web-1")], 80);
    let slice_name = slice.metadata.name.clone().unwrap();
    let services: Api<Service> = Api::namespaced(client(&server), "shop");
    let slices: Api<EndpointSlice> = Api::namespaced(client(&server), "shop");
    services.get("web").await.unwrap();
    slices.get(&slice_name).await.unwrap();

    assert!(server.delete_endpoint_slice("shop", &slice_name).is_some());
    assert!(server.delete_service("shop", "web").is_some());
    assert_eq!(api_status(services.get("web").await.unwrap_err()).code, 404);
    assert_eq!(
        api_status(slices.get(&slice_name).await.unwrap_err()).code,
        404
    );
    let by_label = ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}=web"));
    assert!(slices.list(&by_label).await.unwrap().items.is_empty());
    assert!(server.delete_service("shop", "web").is_none());
    assert!(server.delete_endpoint_slice("shop", &slice_name).is_none());
}

#[tokio::test]
async fn a_watch_of_services_is_refused_rather_than_answered_with_a_list() {
    let server = server().await;
    let (code, body) = raw(
        &server,
        "GET",
        "/api/v1/namespaces/shop/services?watch=true",
        "application/json",
        "",
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = raw(
        &server,
        "PATCH",
        "/api/v1/namespaces/shop/services/web",
        "application/merge-patch+json",
        "{}",
    )
    .await;
    assert_eq!(code, 405);
}

/// The images of `d`'s containers.
fn set_image(d: &mut Deployment, image: &str) {
    if let Some(spec) = d.spec.template.spec.as_mut() {
        spec.containers[0].image = Some(image.to_owned());
    }
}

fn revision(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"].clone()
}

#[tokio::test]
async fn each_pod_template_is_a_revision_kept_as_a_replica_set_owned_by_the_deployment() {
    let server = server().await;
    // Status updates would make each write below race the controller.
    server.pause_controller(true);
    let api = deployments(&server, "shop");
    let rs_api: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client(&server), "shop");
    let mut d = api
        .create(&PostParams::default(), &deployment("shop", "web", 2))
        .await
        .unwrap();
    assert_eq!(revision(&d.metadata), "1");
    let first_image = d.spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    for image in ["web:2", "web:3"] {
        set_image(&mut d, image);
        d = api
            .replace("web", &PostParams::default(), &d)
            .await
            .unwrap();
    }
    assert_eq!(revision(&d.metadata), "3");
    // A scale is no new revision.
    d.spec.replicas = Some(4);
    d = api
        .replace("web", &PostParams::default(), &d)
        .await
        .unwrap();
    assert_eq!(revision(&d.metadata), "3");
    let list = rs_api.list(&ListParams::default()).await.unwrap().items;
    let mut revisions: Vec<(String, Option<i32>)> = list
        .iter()
        .map(|rs| (revision(&rs.metadata), rs.spec.replicas))
        .collect();
    revisions.sort();
    assert_eq!(
        revisions,
        [
            ("1".into(), Some(0)),
            ("2".into(), Some(0)),
            ("3".into(), Some(4))
        ]
    );
    for rs in &list {
        let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.uid, d.metadata.uid.clone().unwrap());
        let hash = &rs.metadata.labels.as_ref().unwrap()["pod-template-hash"];
        assert!(rs.metadata.name.as_ref().unwrap().ends_with(hash.as_str()));
    }
    // Back to the first template, as `kubectl rollout undo` does: its ReplicaSet is reused and
    // becomes the newest revision.
    set_image(&mut d, &first_image);
    d = api
        .replace("web", &PostParams::default(), &d)
        .await
        .unwrap();
    assert_eq!(revision(&d.metadata), "4");
    let list = rs_api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 3);
    // Deleting the deployment deletes its ReplicaSets.
    api.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(
        rs_api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
