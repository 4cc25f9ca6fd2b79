//! `/v1/principals` (scope `admin`): the local principals tokens belong to. Creating one is an
//! admin action recorded in the ledger naming the admin (`principals.create`); listing them
//! shows who may hold tokens. OIDC principals are not listed: the identity provider holds them.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::auth::Authenticator;
use crate::auth::Caller;
use crate::auth::principals::{Principal, PrincipalError};
use crate::auth::{Audit, AuditAction};
use crate::error::ApiError;
use crate::shared_credentials::SharedCredentials;

pub fn router() -> Router<App> {
    Router::new().route("/", get(list).post(create))
}

/// `POST /v1/principals` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// `alice`: the principal's id becomes `local:alice`.
    name: String,
    /// How people see it (default: the name).
    #[serde(default)]
    display_name: Option<String>,
}

fn principal_error(e: PrincipalError) -> ApiError {
    match e {
        PrincipalError::BadName { field, .. } => ApiError::field(field, e.to_string()),
        PrincipalError::Exists(_) => ApiError::conflict(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// `POST /v1/principals`.
async fn create(
    State(audit): State<Audit>,
    State(auth): State<Arc<Authenticator>>,
    State(shared): State<Option<Arc<SharedCredentials>>>,
    caller: Caller,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Principal>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::body(e.body_text()))?;
    let asked = json!({ "name": body.name, "display_name": body.display_name });
    let mut result = auth
        .tokens
        .principals()
        .create(&body.name, body.display_name.as_deref(), &caller.principal)
        .map_err(principal_error);
    if let (Ok(p), Some(shared)) = (&result, &shared)
        && let Err(e) = shared.publish_principal(&p.id).await
    {
        result = Err(ApiError::unavailable(format!(
            "made on this replica only: the other replicas could not be told of it ({e}); it is shared when this replica next starts following the cluster"
        )));
    }
    audit
        .record(&caller, AuditAction::PrincipalsCreate, asked, &result)
        .await;
    let principal = result?;
    tracing::info!(caller = %caller.principal, principal = %principal.id, "principal created");
    Ok((StatusCode::CREATED, Json(principal)))
}

/// `GET /v1/principals`.
async fn list(State(auth): State<Arc<Authenticator>>) -> Json<Vec<Principal>> {
    Json(auth.tokens.principals().list())
}
