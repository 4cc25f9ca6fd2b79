//! `/v1/tokens` (scope `admin`): create a token (its secret is in this answer only) for an
//! existing local principal, list them (never a secret or a hash), revoke one. Each change is
//! audited with its caller.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::App;
use crate::auth::Authenticator;
use crate::auth::tokens::TokenRecord;
use crate::auth::{Audit, AuditAction};
use crate::auth::{Caller, Scope, TokenError, TokenSpec};
use crate::error::ApiError;
use crate::shared_credentials::SharedCredentials;

pub fn router() -> Router<App> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/{id}", delete(revoke))
}

/// `POST /v1/tokens` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    /// The local principal it belongs to (`alice`); the caller's own when absent.
    #[serde(default)]
    principal: Option<String>,
    scopes: Vec<String>,
    /// A duration such as `30d` or `12h`.
    #[serde(default)]
    expires_in: Option<String>,
}

/// A token as the API shows it: the record, without anything secret.
#[derive(Serialize)]
struct TokenInfo {
    id: String,
    name: String,
    principal: String,
    scopes: crate::auth::Scopes,
    created_at: u64,
    created_by: String,
    expires_at: Option<u64>,
    revoked: bool,
    revoked_at: Option<u64>,
}

impl From<TokenRecord> for TokenInfo {
    fn from(r: TokenRecord) -> Self {
        TokenInfo {
            id: r.id,
            name: r.name,
            principal: r.principal,
            scopes: r.scopes,
            created_at: r.created_at,
            created_by: r.created_by,
            expires_at: r.expires_at,
            revoked: r.revoked,
            revoked_at: r.revoked_at,
        }
    }
}

fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::BadName(_) => ApiError::field("name", e.to_string()),
        TokenError::NoScopes => ApiError::field("scopes", e.to_string()),
        TokenError::Principal(_) => ApiError::field("principal", e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

fn spec(caller: &Caller, body: CreateBody) -> Result<TokenSpec, ApiError> {
    let mut scopes = Vec::new();
    for (i, name) in body.scopes.iter().enumerate() {
        scopes.push(Scope::parse(name).ok_or_else(|| {
            ApiError::field(
                format!("scopes[{i}]"),
                format!("`{name}` is not a scope (one of: read, operate, approve, admin)"),
            )
        })?);
    }
    let expires_at = match &body.expires_in {
        None => None,
        Some(text) => {
            let d = humantime::parse_duration(text).map_err(|e| {
                ApiError::field("expires_in", format!("`{text}` is not a duration ({e})"))
            })?;
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            Some(grace_engine::event::system_now_millis().saturating_add(ms))
        }
    };
    // A token speaks for a principal: the one named, else the caller's own (a token for
    // yourself), which must be a local principal of this server.
    let principal = match &body.principal {
        Some(name) => {
            crate::auth::principals::local_id(name.strip_prefix("local:").unwrap_or(name))
        }
        None if caller.principal.starts_with("local:") => caller.principal.clone(),
        None => {
            return Err(ApiError::field(
                "principal",
                format!(
                    "name the local principal the token is for: `{}` is not a local principal",
                    caller.principal
                ),
            ));
        }
    };
    Ok(TokenSpec {
        name: body.name,
        principal,
        scopes: scopes.into_iter().collect(),
        created_by: caller.principal.clone(),
        expires_at,
    })
}

/// `POST /v1/tokens`.
async fn create(
    State(audit): State<Audit>,
    State(auth): State<Arc<Authenticator>>,
    State(shared): State<Option<Arc<SharedCredentials>>>,
    caller: Caller,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::body(e.body_text()))?;
    let asked = json!({ "name": body.name, "for": body.principal, "scopes": body.scopes, "expires_in": body.expires_in });
    let mut result =
        spec(&caller, body).and_then(|spec| auth.tokens.create(spec).map_err(token_error));
    // Clustered, a token the other replicas do not know is not handed out: it is revoked here
    // again, and the caller asks once the cluster is ready.
    if let (Ok(token), Some(shared)) = (&result, &shared)
        && let Err(e) = shared.publish_token(&token.record.id).await
    {
        let _ = auth.tokens.revoke(&token.record.id);
        result = Err(ApiError::unavailable(format!(
            "the token was not made: the cluster's other replicas could not be told of it ({e}); ask again once the cluster is ready"
        )));
    }
    let shown = result.as_ref().map(|t| TokenInfo::from(t.record.clone()));
    audit
        .record(&caller, AuditAction::TokensCreate, asked, &shown)
        .await;
    let token = result?;
    tracing::info!(caller = %caller.name, token = %token.record.id, name = %token.record.name, principal = %token.record.principal, scopes = %token.record.scopes, "token created");
    let mut body = serde_json::to_value(TokenInfo::from(token.record))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    body["token"] = json!(token.secret);
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1/tokens`.
async fn list(State(auth): State<Arc<Authenticator>>) -> Json<Vec<TokenInfo>> {
    Json(
        auth.tokens
            .list()
            .into_iter()
            .map(TokenInfo::from)
            .collect(),
    )
}

/// `DELETE /v1/tokens/{id}`: the token stops working at once; its record stays, revoked.
async fn revoke(
    State(audit): State<Audit>,
    State(auth): State<Arc<Authenticator>>,
    State(shared): State<Option<Arc<SharedCredentials>>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let mut result = match auth.tokens.revoke(&id) {
        Ok(Some(r)) => Ok(TokenInfo::from(r)),
        Ok(None) => Err(ApiError::not_found(format!("no token `{id}`"))),
        Err(e) => Err(token_error(e)),
    };
    if result.is_ok()
        && let Some(shared) = &shared
        && let Err(e) = shared.publish_token(&id).await
    {
        tracing::error!(token = %id, "a revocation could not be shared with the cluster: {e}");
        result = Err(ApiError::unavailable(format!(
            "revoked on this replica, not yet on the others ({e}): this replica writes the revocation to the cluster again every 30 s until the engine takes it, and the other replicas accept the token until then"
        )));
    }
    audit
        .record(
            &caller,
            AuditAction::TokensRevoke,
            json!({ "token": id }),
            &result,
        )
        .await;
    if result.is_ok() {
        tracing::info!(caller = %caller.name, token = %id, "token revoked");
    }
    result.map(Json)
}
