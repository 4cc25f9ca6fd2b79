//! `/v1/incidents`: incidents, newest first; `/v1/incidents/{id}`: one, with the runs its events
//! triggered; `/v1/incidents/{id}/causes`: its likely causes, ranked (see [`crate::incidents`]).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::anomaly::Anomalies;
use crate::app::App;
use crate::error::ApiError;
use crate::store::{RunFilter, Store};

/// Most incidents one answer lists, and the default.
const MAX_LIST: usize = 1_000;
const DEFAULT_LIST: usize = 100;
/// Runs scanned (newest first) for an incident's runs.
const RUNS_SCANNED: usize = 10_000;

/// The routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/", get(list))
        .route("/{id}", get(one))
        .route("/{id}/causes", get(causes))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Most incidents (default 100, at most 1,000).
    limit: Option<usize>,
}

async fn list(
    State(anomalies): State<Arc<Anomalies>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::field("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("`limit` must be between 1 and {MAX_LIST}"),
        ));
    }
    // The tracker's lock is shared with intake: waited for off the async workers.
    let listed = tokio::task::spawn_blocking(move || anomalies.incidents(limit))
        .await
        .map_err(|_| ApiError::internal("listing incidents failed"))?;
    Ok(Json(json!(listed)))
}

/// An incident id as the tracker makes them: checked before it is looked up or echoed.
fn checked(id: &str) -> Result<&str, ApiError> {
    let ok = id.len() <= 64
        && id.starts_with("inc-")
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(id)
    } else {
        Err(ApiError::field(
            "id",
            "an incident id looks like `inc-20260101T0005-1a2b3c4d`",
        ))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no incident `{id}`"))
}

async fn one(
    State(anomalies): State<Arc<Anomalies>>,
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = checked(&id)?.to_owned();
    let wanted_id = id.clone();
    let incident = tokio::task::spawn_blocking(move || anomalies.incident(&wanted_id))
        .await
        .map_err(|_| ApiError::internal("reading the incident failed"))?
        .ok_or_else(|| not_found(&id))?;
    // The runs its events triggered: their events carry its id, or the id of an incident
    // merged into it.
    let mut wanted: Vec<String> = incident.merged.clone();
    wanted.push(incident.id.clone());
    let runs = tokio::task::spawn_blocking(move || {
        store.runs(&RunFilter {
            limit: RUNS_SCANNED,
            ..RunFilter::default()
        })
    })
    .await
    .map_err(|_| ApiError::internal("listing runs failed"))??
    .into_iter()
    .filter(|r| {
        r.event
            .payload
            .get("incident_id")
            .and_then(Value::as_str)
            .is_some_and(|i| wanted.iter().any(|w| w == i))
    })
    .map(|r| {
        json!({"id": r.id, "playbook": r.playbook, "state": r.state, "resource": r.resource,
               "created_at": r.created_at})
    })
    .collect::<Vec<_>>();
    let mut out = json!(incident);
    out["runs"] = json!(runs);
    Ok(Json(out))
}

async fn causes(
    State(anomalies): State<Arc<Anomalies>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = checked(&id)?.to_owned();
    let wanted_id = id.clone();
    let causes = tokio::task::spawn_blocking(move || anomalies.causes(&wanted_id))
        .await
        .map_err(|_| ApiError::internal("ranking causes failed"))?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(json!(causes)))
}
