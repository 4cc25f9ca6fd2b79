//! The OpenAPI document describes the API that is served: every documented operation is routed.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use grace_server::{App, ServeConfig, api};
use serde_json::Value;
use tower::ServiceExt;

/// A server's shared state in simulation mode, on a fresh data directory.
async fn start(
    dir: &tempfile::TempDir,
    simulate: bool,
) -> Result<std::sync::Arc<App>, grace_server::StartError> {
    App::start(ServeConfig {
        simulate,
        data_dir: dir.path().to_owned(),
        ..ServeConfig::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let data = tempfile::tempdir().unwrap();
    let app = start(&data, true).await.unwrap();
    let doc: Value = serde_json::from_str(api::OPENAPI).unwrap();
    assert_eq!(
        doc["openapi"].as_str().unwrap().split('.').next(),
        Some("3")
    );
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        paths.len() >= 15,
        "the document lists {} paths",
        paths.len()
    );
    let mut checked = 0;
    for (path, operations) in paths {
        // Path parameters get placeholder values: the route must exist, whatever it answers.
        let concrete = path
            .replace("{name}", "no-such-playbook")
            .replace("{version}", "1.0.0")
            .replace("{id}", "no-such-run");
        const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];
        for method in operations.as_object().unwrap().keys() {
            if !METHODS.contains(&method.as_str()) {
                continue; // `parameters`, `summary`: not operations
            }
            let method: Method = method.to_uppercase().parse().unwrap();
            let response = api::router(app.clone())
                .oneshot(
                    Request::builder()
                        .method(method.clone())
                        .uri(&concrete)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && !text.contains("no route for"),
                "{method} {path} is documented but not routed: {status} {text}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 18, "only {checked} operations checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undocumented_route_is_a_json_404() {
    let data = tempfile::tempdir().unwrap();
    let app = start(&data, true).await.unwrap();
    let response = api::router(app)
        .oneshot(
            Request::builder()
                .uri("/v2/everything")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_simulate_the_server_refuses_to_start_with_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let err = start(&data, false).await.err().unwrap();
    assert!(err.to_string().contains("--simulate"), "{err}");
}
