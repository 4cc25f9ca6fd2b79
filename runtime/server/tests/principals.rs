//! Principals and sign-in by OIDC, in process: who a request speaks for, and how the
//! two-person rule counts people, not tokens. OIDC tokens come from a local issuer
//! (`grace_testkit::oidc_issuer`) publishing keys generated here.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use grace_server::auth::oidc::OidcConfig;
use grace_server::auth::{Scope, TokenSpec};
use grace_server::trust::approvals::{Approval, ApprovalState};
use grace_server::{App, ServeConfig, api};
use grace_testkit::oidc_issuer::{IssuerKey, TestIssuer, now_secs};
use serde_json::{Value, json};
use tower::ServiceExt;

const AUDIENCE: &str = "grace-api";

struct Fixture {
    _data: tempfile::TempDir,
    app: Arc<App>,
}

async fn start(oidc: Option<OidcConfig>) -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let mut config = ServeConfig {
        simulate: true,
        data_dir: data.path().to_owned(),
        ..ServeConfig::default()
    };
    config.auth.oidc = oidc;
    let app = App::start(config).await.unwrap();
    Fixture { _data: data, app }
}

/// `[auth.oidc]` for `issuer`, its keys at `jwks_url` (discovery when `None`), fetched again on
/// an unknown `kid` no sooner than `refresh` after the last fetch.
fn oidc(issuer: &TestIssuer, discovery: bool, refresh: &str) -> OidcConfig {
    let text = format!(
        "issuer = \"{}\"\naudience = \"{AUDIENCE}\"\nscopes_claim = \"scope\"\nallow_requested_scopes = true\njwks_refresh = \"{refresh}\"\nclock_skew = \"30s\"\nmax_jwks_bytes = 4096\n{}",
        issuer.url(),
        if discovery {
            String::new()
        } else {
            format!("jwks_url = \"{}\"\n", issuer.jwks_url())
        }
    );
    toml::from_str(&text).unwrap()
}

impl Fixture {
    /// A token of the local principal `principal` (made if missing), called `name`.
    fn token_of(&self, principal: &str, name: &str, scopes: &[Scope]) -> String {
        let tokens = &self.app.auth.tokens;
        let p = tokens.principals().ensure(principal, "test").unwrap();
        tokens
            .create(TokenSpec {
                name: name.into(),
                principal: p.id,
                scopes: scopes.iter().copied().collect(),
                created_by: "test".into(),
                expires_at: None,
            })
            .unwrap()
            .secret
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let response = api::router(self.app.clone())
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A pending approval needing `approvers` people.
    async fn pending(&self, id: &str, approvers: u8) {
        let now = grace_engine::event::system_now_millis();
        self.app
            .trust
            .approvals()
            .ask(&Approval {
                id: id.into(),
                run_id: "run-without-a-run".into(),
                idempotency_key: "k".into(),
                playbook: "p".into(),
                digest: "sha256:00".into(),
                action: "scaling.set-desired-capacity".into(),
                args: json!({"group": "web-prod", "desired_capacity": 8}),
                resource: "group/web-prod".into(),
                approvers,
                reason: "production".into(),
                decision: json!({}),
                state: ApprovalState::Pending,
                created_at: now,
                expires_at: now + 3_600_000,
                decided_at: None,
                approved_by: vec![],
                denied_by: None,
            })
            .await
            .unwrap();
    }

    async fn approve(&self, id: &str, token: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/approvals/{id}/approve"),
            token,
            None,
        )
        .await
    }

    /// The ledger's vote entries.
    async fn votes(&self, admin: &str) -> Vec<Value> {
        let (status, entries) = self
            .call(
                Method::GET,
                "/v1/ledger/entries?run=run-without-a-run",
                admin,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{entries}");
        entries
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["interface"] == "approval")
            .cloned()
            .collect()
    }

    /// `GET /v1/runs` with `token`: its status and error message.
    async fn runs_as(&self, token: &str) -> (StatusCode, String) {
        let (status, body) = self.call(Method::GET, "/v1/runs", token, None).await;
        (
            status,
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }
}

// --- Local principals -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tokens_of_one_local_principal_approve_as_one_person() {
    let f = start(None).await;
    let admin = f.token_of("root", "root", &[Scope::Admin]);
    let alice = f.token_of("alice", "alice-desk", &[Scope::Approve]);
    let alice_again = f.token_of("alice", "alice-laptop", &[Scope::Approve]);
    f.pending("ap-local", 2).await;
    let (status, body) = f.approve("ap-local", &alice).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = f.approve("ap-local", &alice_again).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("every token of one principal is one person"),
        "{body}"
    );
    let bob = f.token_of("bob", "bob", &[Scope::Approve]);
    let (status, body) = f.approve("ap-local", &bob).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "approved");
    assert_eq!(body["approved_by"][0]["principal"], "local:alice");
    assert_eq!(body["approved_by"][1]["principal"], "local:bob");
    // The ledger: one entry per counted vote, each naming its principal and token.
    let votes = f.votes(&admin).await;
    assert_eq!(votes.len(), 2, "{votes:?}");
    assert_eq!(votes[0]["args"]["principal"], "local:alice");
    assert_eq!(votes[1]["args"]["principal"], "local:bob");
    assert_eq!(
        votes[1]["result"]["ok"]["approved_by_principals"],
        json!(["local:alice", "local:bob"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_principal_needs_admin_and_is_audited_naming_the_admin() {
    let f = start(None).await;
    let admin = f.token_of("root", "root", &[Scope::Admin]);
    let approver = f.token_of("carol", "carol", &[Scope::Approve]);
    let (status, _) = f
        .call(
            Method::POST,
            "/v1/principals",
            &approver,
            Some(json!({"name": "mallory"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = f
        .call(
            Method::POST,
            "/v1/principals",
            &admin,
            Some(json!({"name": "dave", "display_name": "Dave Ops"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "local:dave");
    assert_eq!(body["kind"], "local");
    assert_eq!(body["created_by"], "local:root");
    let (status, _) = f
        .call(
            Method::POST,
            "/v1/principals",
            &admin,
            Some(json!({"name": "dave"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "one name, one principal");
    let (status, body) = f
        .call(
            Method::POST,
            "/v1/principals",
            &admin,
            Some(json!({"name": "da\u{200B}ve"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (_, entries) = f
        .call(Method::GET, "/v1/ledger/entries?run=api", &admin, None)
        .await;
    let created: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["function"] == "principals.create" && e["result"].get("ok").is_some())
        .collect();
    assert_eq!(created.len(), 1, "{entries}");
    assert_eq!(created[0]["args"]["principal"], "local:root");
    assert_eq!(created[0]["args"]["name"], "dave");

    // Tokens are for existing principals only.
    let (status, body) = f
        .call(
            Method::POST,
            "/v1/tokens",
            &admin,
            Some(json!({"name": "x", "principal": "nobody", "scopes": ["approve"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "principal");
    let (status, body) = f
        .call(
            Method::POST,
            "/v1/tokens",
            &admin,
            Some(json!({"name": "dave-ci", "principal": "dave", "scopes": ["approve"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["principal"], "local:dave");
}

// --- Sign-in by OIDC --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_oidc_token_signs_in_as_issuer_and_subject_with_its_scopes() {
    let es = IssuerKey::es256("es-1");
    let rs = IssuerKey::rs256("rs-1");
    let issuer = TestIssuer::start(&[&es, &rs]);
    let f = start(Some(oidc(&issuer, true, "1h"))).await;
    for key in [&es, &rs] {
        let mut claims = issuer.claims("248289761001", AUDIENCE, "openid email read");
        claims["email"] = json!("jane@example.com");
        let token = TestIssuer::sign(key, &claims);
        let (status, message) = f.runs_as(&token).await;
        assert_eq!(status, StatusCode::OK, "{:?}: {message}", key.alg);
    }
    // Found through discovery, fetched once for both keys.
    assert_eq!(issuer.jwks_requests(), 1);
    // The caller it became: a read-only token cannot approve, and the 403 names the principal.
    let token = TestIssuer::sign(&es, &issuer.claims("248289761001", AUDIENCE, "read"));
    let (status, body) = f
        .call(Method::POST, "/v1/approvals/ap-x/approve", &token, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let token = TestIssuer::sign(&es, &issuer.claims("248289761001", AUDIENCE, "approve"));
    f.pending("ap-oidc-1", 1).await;
    let (status, body) = f.approve("ap-oidc-1", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["approved_by"][0]["principal"],
        format!("oidc:{}#248289761001", issuer.url())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_with_a_wrong_issuer_audience_or_time_are_401() {
    let key = IssuerKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]);
    let f = start(Some(oidc(&issuer, false, "1h"))).await;
    let now = now_secs();
    let good = issuer.claims("u1", AUDIENCE, "read");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "another issuer",
            json!({"iss": "http://127.0.0.1:1"}),
            "`iss`",
        ),
        ("another audience", json!({"aud": "someone-else"}), "`aud`"),
        (
            "expired beyond the skew",
            json!({"exp": now - 120}),
            "`exp`",
        ),
        (
            "not valid yet beyond the skew",
            json!({"nbf": now + 120}),
            "`nbf`",
        ),
        ("no subject", json!({"sub": null}), "`sub`"),
        ("no expiry", json!({"exp": null}), "`exp`"),
    ];
    for (what, change, says) in cases {
        let mut claims = good.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let (status, message) = f.runs_as(&TestIssuer::sign(&key, &claims)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {message}");
        assert!(message.contains(says), "{what}: {message}");
    }
    // Within the skew (30 s) is still fine: clocks differ a little.
    let mut claims = good.clone();
    claims["exp"] = json!(now - 5);
    claims["nbf"] = json!(now + 5);
    assert_eq!(
        f.runs_as(&TestIssuer::sign(&key, &claims)).await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_or_foreign_signed_oidc_token_is_401() {
    let key = IssuerKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]);
    let f = start(Some(oidc(&issuer, false, "1h"))).await;
    let claims = issuer.claims("u1", AUDIENCE, "admin");
    // alg none.
    let (status, message) = f.runs_as(&TestIssuer::unsigned("k1", &claims)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
    // Signed by a key the issuer never published, under the published key's id.
    let mut forged = IssuerKey::es256("k1");
    forged.kid = "k1".into();
    let (status, message) = f.runs_as(&TestIssuer::sign(&forged, &claims)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
    assert!(message.contains("signature"), "{message}");
    // An algorithm the server does not accept (RS256 disabled here) is refused before any key.
    let rs = IssuerKey::rs256("k1");
    let f2 = start(Some({
        let mut c = oidc(&issuer, false, "1h");
        c.algorithms = Some(vec!["ES256".into()]);
        c
    }))
    .await;
    let (status, message) = f2.runs_as(&TestIssuer::sign(&rs, &claims)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
    assert!(message.contains("does not accept"), "{message}");
    // A body of junk with two dots.
    let (status, _) = f.runs_as("a.b.c").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refetches_the_keys_so_rotated_keys_work() {
    let old = IssuerKey::es256("2026-01");
    let issuer = TestIssuer::start(&[&old]);
    let f = start(Some(oidc(&issuer, false, "0s"))).await;
    let claims = issuer.claims("u1", AUDIENCE, "read");
    assert_eq!(
        f.runs_as(&TestIssuer::sign(&old, &claims)).await.0,
        StatusCode::OK
    );
    assert_eq!(issuer.jwks_requests(), 1);
    let new = IssuerKey::rs256("2026-02");
    issuer.publish(&[&new]);
    assert_eq!(
        f.runs_as(&TestIssuer::sign(&new, &claims)).await.0,
        StatusCode::OK,
        "the rotated-in key is found"
    );
    assert_eq!(issuer.jwks_requests(), 2);
    let (status, message) = f.runs_as(&TestIssuer::sign(&old, &claims)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the rotated-out key is gone: {message}"
    );
    assert!(message.contains("`2026-01`"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_refetch_the_keys_at_most_once_per_refresh_interval() {
    let key = IssuerKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]);
    let f = start(Some(oidc(&issuer, false, "1h"))).await;
    let claims = issuer.claims("u1", AUDIENCE, "read");
    assert_eq!(
        f.runs_as(&TestIssuer::sign(&key, &claims)).await.0,
        StatusCode::OK
    );
    for i in 0..5 {
        let made_up = IssuerKey::es256(&format!("made-up-{i}"));
        let (status, _) = f.runs_as(&TestIssuer::sign(&made_up, &claims)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        issuer.jwks_requests(),
        1,
        "made-up key ids do not make the server hammer the issuer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_jwks_is_refused_and_no_key_from_it_is_used() {
    let key = IssuerKey::es256("k1");
    let issuer = TestIssuer::start(&[]);
    // The real key, padded past the configured 4096 bytes with keys of no use.
    let mut keys = vec![key.jwk.clone()];
    for i in 0..40 {
        keys.push(json!({"kty": "oct", "kid": format!("pad-{i}"), "k": "A".repeat(100)}));
    }
    let body = json!({ "keys": keys }).to_string();
    assert!(body.len() > 4096);
    issuer.publish_raw(body);
    let f = start(Some(oidc(&issuer, false, "0s"))).await;
    let claims = issuer.claims("u1", AUDIENCE, "read");
    let (status, message) = f.runs_as(&TestIssuer::sign(&key, &claims)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
    assert!(message.contains("larger than 4096 bytes"), "{message}");
    // Published within the bound, the same key works.
    issuer.publish(&[&key]);
    assert_eq!(
        f.runs_as(&TestIssuer::sign(&key, &claims)).await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_oidc_principals_make_a_two_person_approval_and_one_cannot_vote_twice() {
    let key = IssuerKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]);
    let f = start(Some(oidc(&issuer, false, "1h"))).await;
    let admin = f.token_of("root", "root", &[Scope::Admin]);
    f.pending("ap-two", 2).await;
    let jane = TestIssuer::sign(&key, &issuer.claims("jane", AUDIENCE, "openid approve"));
    // A second sign-in of the same person: another token, same subject.
    let mut again = issuer.claims("jane", AUDIENCE, "approve");
    again["iat"] = json!(now_secs() - 1);
    let jane_again = TestIssuer::sign(&key, &again);
    assert_ne!(jane, jane_again);
    let omar = TestIssuer::sign(&key, &issuer.claims("omar", AUDIENCE, "approve"));

    let (status, body) = f.approve("ap-two", &jane).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("pending"))
    );
    let (status, body) = f.approve("ap-two", &jane_again).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = f.approve("ap-two", &omar).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "approved");
    let votes = f.votes(&admin).await;
    let who: Vec<&str> = votes
        .iter()
        .map(|v| v["args"]["principal"].as_str().unwrap())
        .collect();
    assert_eq!(
        who,
        [
            format!("oidc:{}#jane", issuer.url()),
            format!("oidc:{}#omar", issuer.url())
        ]
    );
}
