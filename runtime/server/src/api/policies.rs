//! `/v1/policies`: the trust core's Cedar policy sets, validated against GRACE's schema when
//! they are stored, every version kept.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use grace_trust::{PolicySetVersion, TrustError};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::Caller;
use crate::auth::{Audit, AuditAction};
use crate::error::ApiError;
use crate::shared_policies::SharedPolicies;
use crate::trust::HostTrust;

pub fn router() -> Router<App> {
    Router::new()
        .route("/", get(list))
        .route("/{name}", get(show).put(put).delete(remove))
}

/// A policy set in a list: its current version, without the text.
#[derive(Debug, Serialize)]
struct Summary {
    name: String,
    version: u64,
    revision: u64,
    policies: usize,
    by: String,
    at_millis: u64,
}

/// `GET /v1/policies`: the active sets.
async fn list(State(trust): State<Arc<HostTrust>>) -> Json<Vec<Summary>> {
    let store = trust.core().policies();
    let active = store.active();
    Json(
        store
            .list()
            .into_iter()
            .map(|v| Summary {
                policies: active
                    .iter()
                    .filter(|p| p.id.starts_with(&format!("{}/", v.name)))
                    .count(),
                name: v.name,
                version: v.version,
                revision: v.revision,
                by: v.by,
                at_millis: v.at_millis,
            })
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// Every version, oldest first.
    history: Option<bool>,
    /// One version.
    version: Option<u64>,
}

fn trust_error(e: TrustError) -> ApiError {
    match e {
        TrustError::Policy(p) => ApiError::field("text", p.to_string()),
        TrustError::NotFound { .. } => ApiError::not_found(e.to_string()),
        TrustError::AlreadyExists { .. } => ApiError::conflict(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// `GET /v1/policies/{name}[?history=true|?version=N]`.
async fn show(
    State(trust): State<Arc<HostTrust>>,
    Path(name): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let store = trust.core().policies();
    let value = if q.history.unwrap_or(false) {
        serde_json::to_value(store.history(&name).map_err(trust_error)?)
    } else if let Some(v) = q.version {
        serde_json::to_value(store.version(&name, v).map_err(trust_error)?)
    } else {
        serde_json::to_value(store.get(&name).map_err(trust_error)?)
    };
    value
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The body of `PUT /v1/policies/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    /// The Cedar text of the whole set.
    text: String,
}

/// `PUT /v1/policies/{name}`: adds the set, or replaces it with a new version.
async fn put(
    State(audit): State<Audit>,
    State(trust): State<Arc<HostTrust>>,
    State(shared): State<Option<Arc<SharedPolicies>>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Json<PutBody>, JsonRejection>,
) -> Result<Json<PolicySetVersion>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::body(e.body_text()))?;
    let exists = trust.core().policies().get(&name).is_ok();
    let write = |store: &grace_trust::PolicyStore| {
        if exists {
            store.replace(&name, &body.text, &caller.name)
        } else {
            store.add(&name, &body.text, &caller.name)
        }
    };
    let stored = changed(shared.as_deref(), &trust, &name, write).await;
    let args = serde_json::json!({ "name": name, "text": body.text });
    let function = if exists {
        AuditAction::PoliciesReplace
    } else {
        AuditAction::PoliciesAdd
    };
    audit.record(&caller, function, args, &stored).await;
    stored.map(Json)
}

/// Makes `change` to set `name` on this replica's store and, clustered, shares exactly that
/// version with the other replicas. The change stands here either way; when it cannot be
/// shared, the caller is told to make it again.
async fn changed(
    shared: Option<&SharedPolicies>,
    trust: &HostTrust,
    name: &str,
    change: impl FnOnce(&grace_trust::PolicyStore) -> Result<PolicySetVersion, TrustError>,
) -> Result<PolicySetVersion, ApiError> {
    let Some(shared) = shared else {
        return change(trust.core().policies()).map_err(trust_error);
    };
    // A name the cluster's engine cannot hold is refused before anything is stored.
    if !grace_cluster::policies::valid_name(name) {
        return Err(ApiError::field(
            "name",
            format!(
                "`{}` cannot be shared with the cluster: use lowercase letters, digits, `-`, `_` and `.`, starting with a letter or digit, without `..` or a final `.`",
                name.escape_debug()
            ),
        ));
    }
    match shared.change(name, change).await {
        Ok(Ok(version)) => Ok(version),
        Ok(Err(e)) => Err(ApiError::unavailable(format!(
            "done on this replica, but not shared with the cluster's other replicas: {e}; do it again once the cluster is ready"
        ))),
        Err(e) => Err(trust_error(e)),
    }
}

/// `DELETE /v1/policies/{name}`: the set stops applying (its history is kept).
async fn remove(
    State(audit): State<Audit>,
    State(trust): State<Arc<HostTrust>>,
    State(shared): State<Option<Arc<SharedPolicies>>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<PolicySetVersion>, ApiError> {
    let removed = changed(shared.as_deref(), &trust, &name, |store| {
        store.remove(&name, &caller.name)
    })
    .await;
    audit
        .record(
            &caller,
            AuditAction::PoliciesRemove,
            serde_json::json!({ "name": name }),
            &removed,
        )
        .await;
    removed.map(Json)
}
