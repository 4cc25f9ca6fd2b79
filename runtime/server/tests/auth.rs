//! API authentication and signed uploads, in process: what each kind of caller gets, and which
//! uploads are stored.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use grace_ledger::SigningKey;
use grace_server::auth::{Scope, TokenSpec};
use grace_server::signing::{Signature, TrustRootConfig};
use grace_server::{App, ServeConfig, api};
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    _data: tempfile::TempDir,
    app: Arc<App>,
    key: SigningKey,
}

async fn start() -> Fixture {
    start_with(|_| {}).await
}

async fn start_with(tweak: impl FnOnce(&mut ServeConfig)) -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let key = grace_ledger::generate_key("release-team").unwrap();
    let mut config = ServeConfig {
        simulate: true,
        data_dir: data.path().to_owned(),
        trust_roots: vec![TrustRootConfig {
            name: "release".into(),
            public_key: key.verifier().to_string(),
        }],
        ..ServeConfig::default()
    };
    tweak(&mut config);
    let app = App::start(config).await.unwrap();
    Fixture {
        _data: data,
        app,
        key,
    }
}

impl Fixture {
    fn token(&self, name: &str, scopes: &[Scope]) -> String {
        self.token_expiring(name, scopes, None)
    }

    /// A token of the local principal called `name` (made if missing).
    fn token_expiring(&self, name: &str, scopes: &[Scope], expires_at: Option<u64>) -> String {
        let tokens = &self.app.auth.tokens;
        let principal = tokens.principals().ensure(name, "test").unwrap();
        tokens
            .create(TokenSpec {
                name: name.into(),
                principal: principal.id,
                scopes: scopes.iter().copied().collect(),
                created_by: "test".into(),
                expires_at,
            })
            .unwrap()
            .secret
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body,
        content_type: Option<String>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let response = api::router(self.app.clone())
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(Method::GET, path, token, Body::empty(), None)
            .await;
        (s, v)
    }

    async fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(
                Method::POST,
                path,
                token,
                Body::from(body.to_string()),
                Some("application/json".into()),
            )
            .await;
        (s, v)
    }

    /// `POST /v1/playbooks` with these parts.
    async fn upload(
        &self,
        token: &str,
        manifest: &str,
        component: &[u8],
        signature: Option<&str>,
    ) -> (StatusCode, Value) {
        let boundary = "grace-test-boundary";
        let mut body = Vec::new();
        let mut part = |name: &str, bytes: &[u8]| {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        };
        part("manifest", manifest.as_bytes());
        part("component", component);
        if let Some(s) = signature {
            part("signature", s.as_bytes());
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let (s, _, v) = self
            .call(
                Method::POST,
                "/v1/playbooks",
                Some(token),
                Body::from(body),
                Some(format!("multipart/form-data; boundary={boundary}")),
            )
            .await;
        (s, v)
    }

    fn sign(&self, manifest: &str, component: &[u8]) -> String {
        Signature::sign(&self.key, component, manifest.as_bytes()).to_text()
    }
}

fn echo() -> Vec<u8> {
    grace_testkit::build_guests();
    std::fs::read(grace_testkit::components_dir().join("echo.wasm")).unwrap()
}

fn manifest(name: &str) -> String {
    format!(
        "manifest_version = 1\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"echo.wasm\"\n[[triggers]]\nevent_type = \"test.echo\"\n"
    )
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_token_is_401_with_a_bearer_challenge() {
    let f = start().await;
    let (status, headers, body) = f
        .call(Method::GET, "/v1/runs", None, Body::empty(), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"),
        "{headers:?}"
    );
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = f.get("/v1/runs", Some("grace_not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_public_and_metrics_need_read() {
    let f = start().await;
    assert_eq!(f.get("/healthz", None).await.0, StatusCode::OK);
    assert_eq!(f.get("/metrics", None).await.0, StatusCode::UNAUTHORIZED);
    let read = f.token("prometheus", &[Scope::Read]);
    assert_eq!(f.get("/metrics", Some(&read)).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_scope_is_403_naming_the_scope() {
    let f = start().await;
    let read = f.token("viewer", &[Scope::Read]);
    assert_eq!(f.get("/v1/runs", Some(&read)).await.0, StatusCode::OK);
    let (status, body) = f
        .post_json("/v1/events", Some(&read), serde_json::json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(message(&body).contains("`operate` scope"), "{body}");
    let (status, body) = f.get("/v1/tokens", Some(&read)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(message(&body).contains("`admin` scope"), "{body}");
    // Approving is its own scope: an operator cannot approve (once the route exists, the table
    // already says so).
    let operate = f.token("ops", &[Scope::Operate]);
    assert_eq!(
        grace_server::auth::routes::required(&Method::POST, "/v1/approvals/{id}/approve"),
        Some(grace_server::auth::Access::Scope(Scope::Approve))
    );
    let (status, _) = f.get("/v1/runs", Some(&operate)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "operate does not imply read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_cannot_upload() {
    let f = start().await;
    let read = f.token("viewer", &[Scope::Read]);
    let m = manifest("echo-test");
    let c = echo();
    let (status, body) = f.upload(&read, &m, &c, Some(&f.sign(&m, &c))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("`operate` scope"), "{body}");
    let admin = f.token("admin", &[Scope::Admin]);
    let (_, list) = f.get("/v1/playbooks", Some(&admin)).await;
    assert_eq!(list, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_tokens_are_401() {
    let f = start().await;
    let admin = f.token("admin", &[Scope::Admin]);
    let (status, created) = f
        .post_json(
            "/v1/tokens",
            Some(&admin),
            serde_json::json!({ "name": "short-lived", "scopes": ["read"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap().to_owned();
    assert_eq!(f.get("/v1/runs", Some(&secret)).await.0, StatusCode::OK);
    let id = created["id"].as_str().unwrap();
    let (status, _, revoked) = f
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&admin),
            Body::empty(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revoked["revoked"], true);
    let (status, body) = f.get("/v1/runs", Some(&secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message(&body).contains("revoked"), "{body}");

    let expired = f.token_expiring("old", &[Scope::Read], Some(1));
    let (status, body) = f.get("/v1/runs", Some(&expired)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message(&body).contains("expired"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_list_never_shows_a_secret_or_a_hash() {
    let f = start().await;
    let admin = f.token("admin", &[Scope::Admin]);
    let (_, created) = f
        .post_json(
            "/v1/tokens",
            Some(&admin),
            serde_json::json!({ "name": "ci", "scopes": ["operate", "read"], "expires_in": "30d" }),
        )
        .await;
    let secret = created["token"].as_str().unwrap();
    assert!(secret.starts_with("grace_"));
    let (status, list) = f.get("/v1/tokens", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let text = list.to_string();
    for s in [secret, admin.as_str()] {
        assert!(!text.contains(&s["grace_".len()..]), "{text}");
        assert!(
            !text.contains(&grace_server::auth::tokens::hash(s)),
            "{text}"
        );
    }
    let ci = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap();
    assert_eq!(ci["scopes"], serde_json::json!(["read", "operate"]));
    assert_eq!(ci["created_by"], "local:admin");
    assert_eq!(
        ci["principal"], "local:admin",
        "the caller's own by default"
    );
    assert!(ci["expires_at"].as_u64().is_some());
    // The ledger's audit entry for the creation holds no secret either.
    let (_, entries) = f.get("/v1/ledger/entries?run=api", Some(&admin)).await;
    assert!(!entries.to_string().contains(&secret["grace_".len()..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_upload_is_refused_unless_unsigned_uploads_are_allowed() {
    let f = start().await;
    let ops = f.token("ops", &[Scope::Operate, Scope::Read]);
    let (status, body) = f.upload(&ops, &manifest("echo-test"), &echo(), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "signature");
    assert!(message(&body).contains("not signed"), "{body}");

    let dev = start_with(|c| c.allow_unsigned_playbooks = true).await;
    let ops = dev.token("ops", &[Scope::Operate]);
    let (status, body) = dev
        .upload(&ops, &manifest("echo-test"), &echo(), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["signed"], false);
    assert_eq!(body["signed_by"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_by_an_unknown_key_is_refused_naming_the_key() {
    let f = start().await;
    let ops = f.token("ops", &[Scope::Operate]);
    let stranger = grace_ledger::generate_key("mallory").unwrap();
    let (m, c) = (manifest("echo-test"), echo());
    let sig = Signature::sign(&stranger, &c, m.as_bytes());
    let (status, body) = f.upload(&ops, &m, &c, Some(&sig.to_text())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        message(&body).contains(&sig.key)
            && message(&body).contains("not among the server's trust roots"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_changed_after_signing_is_refused() {
    let f = start().await;
    let ops = f.token("ops", &[Scope::Operate]);
    let (m, c) = (manifest("echo-test"), echo());
    let sig = f.sign(&m, &c);
    // More grants or another trigger under the same signature.
    let tampered = m.replace("test.echo", "test.anything");
    let (status, body) = f.upload(&ops, &tampered, &c, Some(&sig)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        message(&body).contains("manifest was changed after signing"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_swapped_after_signing_is_refused() {
    let f = start().await;
    let ops = f.token("ops", &[Scope::Operate]);
    let (m, c) = (manifest("echo-test"), echo());
    let sig = f.sign(&m, &c);
    let other = std::fs::read(grace_testkit::components_dir().join("trivial.wasm")).unwrap();
    let (status, body) = f.upload(&ops, &m, &other, Some(&sig)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        message(&body).contains("component was changed after signing"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_signature_is_accepted_shown_and_the_upload_audited_with_its_caller() {
    let f = start().await;
    let ops = f.token("release-bot", &[Scope::Operate, Scope::Read]);
    let (m, c) = (manifest("echo-test"), echo());
    let (status, body) = f.upload(&ops, &m, &c, Some(&f.sign(&m, &c))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["signed"], true);
    assert_eq!(body["signed_by"]["trust_root"], "release");
    assert!(
        body["signed_by"]["key"]
            .as_str()
            .unwrap()
            .starts_with("release-team+")
    );
    let (_, shown) = f.get("/v1/playbooks/echo-test", Some(&ops)).await;
    assert_eq!(shown["versions"][0]["signed_by"]["trust_root"], "release");

    let (_, entries) = f.get("/v1/ledger/entries?run=api", Some(&ops)).await;
    let upload = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["function"] == "playbooks.upload")
        .unwrap_or_else(|| panic!("no audit entry: {entries}"));
    assert_eq!(upload["interface"], "api");
    assert_eq!(upload["args"]["caller"], "release-bot");
    assert!(
        upload["args"]["token_id"]
            .as_str()
            .unwrap()
            .starts_with("tok_")
    );
    assert_eq!(upload["playbook"], "echo-test");
    assert_eq!(upload["digest"], body["digest"]);
    assert_eq!(upload["decision"]["verdict"], "allowed");
    assert!(upload["result"]["ok"].is_object(), "{upload}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_and_a_published_batch_are_audited_too() {
    let f = start().await;
    let ops = f.token("ops", &[Scope::Operate, Scope::Read]);
    let (status, _) = f.upload(&ops, &manifest("echo-test"), &echo(), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let events = serde_json::json!([
        { "event_type": "a", "source": "s", "actor": "x", "resource": "r" },
        { "event_type": "a", "source": "s", "actor": "x", "resource": "r" },
    ]);
    let (status, accepted) = f.post_json("/v1/events", Some(&ops), events).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    f.app.ledger.flush().await.unwrap();
    let (_, entries) = f.get("/v1/ledger/entries?run=api", Some(&ops)).await;
    let entries = entries.as_array().unwrap();
    let refused = entries
        .iter()
        .find(|e| e["function"] == "playbooks.upload")
        .unwrap();
    assert!(
        refused["result"]["error"]
            .as_str()
            .unwrap()
            .contains("not signed")
    );
    let batch = entries
        .iter()
        .find(|e| e["function"] == "events.publish")
        .unwrap();
    assert_eq!(batch["args"]["count"], 2);
    assert_eq!(batch["args"]["first_seq"], accepted["first_seq"]);
    assert_eq!(batch["args"]["caller"], "ops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_no_auth_lets_everyone_in_as_anonymous() {
    let f = start_with(|c| {
        c.insecure_no_auth = true;
        c.allow_unsigned_playbooks = true;
    })
    .await;
    assert_eq!(f.get("/v1/tokens", None).await.0, StatusCode::OK);
    let (status, _) = f
        .post_json(
            "/v1/events",
            None,
            serde_json::json!({ "event_type": "a", "source": "s", "actor": "x", "resource": "r" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    f.app.ledger.flush().await.unwrap();
    let (_, entries) = f.get("/v1/ledger/entries?run=api", None).await;
    assert_eq!(entries[0]["args"]["caller"], grace_server::auth::ANONYMOUS);
}

/// The router's own route list (its `Debug` output is the only place axum shows it), every
/// route tried with every method: none may be refused as missing from the auth table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_router_has_an_entry_in_the_auth_table() {
    let f = start().await;
    let admin = f.token("admin", &[Scope::Admin]);
    let listing = format!("{:?}", api::router(f.app.clone()));
    let mut paths: Vec<String> = listing
        .split('"')
        .filter(|s| s.starts_with('/') && !s.contains("__private__axum"))
        .map(str::to_owned)
        .collect();
    paths.sort();
    paths.dedup();
    assert!(paths.len() >= 25, "the router lists {paths:?}");
    assert!(
        paths.contains(&"/v1/runs/{id}/cancel".to_owned()),
        "{paths:?}"
    );
    let mut routed = 0;
    for pattern in &paths {
        // The dashboard's event stream never ends: its entry is checked, not its answer.
        if pattern == "/ui/stream" {
            assert!(grace_server::auth::routes::required(&Method::GET, pattern).is_some());
            continue;
        }
        let concrete: String = pattern
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let (status, _, body) = f
                .call(method.clone(), &concrete, Some(&admin), Body::empty(), None)
                .await;
            assert_ne!(
                body["error"]["code"], "route_without_scope",
                "{method} {pattern} is routed but has no entry in grace_server::auth::routes::ROUTES"
            );
            let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
                || body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("no route for"));
            if !unrouted {
                routed += 1;
                assert!(
                    grace_server::auth::routes::required(&method, pattern).is_some(),
                    "{method} {pattern}"
                );
            }
        }
    }
    assert!(routed >= 29, "only {routed} operations routed");
}

#[test]
fn the_openapi_document_names_the_scope_of_every_operation_as_the_route_table_does() {
    let doc: Value = serde_json::from_str(api::OPENAPI).unwrap();
    let mut checked = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, op) in operations.as_object().unwrap() {
            let Ok(m) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if !matches!(
                m,
                Method::GET | Method::POST | Method::PUT | Method::DELETE | Method::PATCH
            ) {
                continue;
            }
            let documented = &op["security"];
            let expected = match grace_server::auth::routes::required(&m, path) {
                Some(grace_server::auth::Access::Public) => serde_json::json!([]),
                Some(grace_server::auth::Access::Scope(s)) => {
                    serde_json::json!([{ "bearer": [s.name()] }])
                }
                None => panic!("{method} {path} is documented but not in the route table"),
            };
            assert_eq!(
                documented, &expected,
                "{method} {path}: give the operation `\"security\": {expected}` in openapi.json, as grace_server::auth::routes::ROUTES says"
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked}");
}
