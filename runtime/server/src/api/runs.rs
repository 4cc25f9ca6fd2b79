//! `/v1/runs`: list, show with timeline, cancel, resume.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::runs::{RunRecord, RunState, RunSummary};
use crate::store::RunFilter;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(list))
        .route("/{id}", get(show))
        .route("/{id}/cancel", post(cancel))
        .route("/{id}/resume", post(resume))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    playbook: Option<String>,
    resource: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/runs`.
async fn list(
    State(app): State<Arc<App>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let state = match q.state.as_deref() {
        Some(s) => Some(RunState::parse(s).ok_or_else(|| {
            ApiError::field(
                "state",
                format!(
                    "`{s}` is not a run state (one of: {})",
                    RunState::ALL.map(RunState::name).join(", ")
                ),
            )
        })?),
        None => None,
    };
    let runs = app.store.runs(&RunFilter {
        state,
        playbook: q.playbook,
        resource: q.resource,
        limit: q.limit.unwrap_or(100).clamp(1, 10_000),
    })?;
    Ok(Json(runs.iter().map(RunRecord::summary).collect()))
}

/// `GET /v1/runs/{id}`.
async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<RunRecord>, ApiError> {
    app.store
        .run(&id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))
}

/// `POST /v1/runs/{id}/cancel`.
async fn cancel(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunSummary>, ApiError> {
    let result = app.cancel(&id).await;
    app.audit(
        &caller,
        "runs.cancel",
        serde_json::json!({ "run": id }),
        &result,
    )
    .await;
    result.map(Json)
}

/// `POST /v1/runs/{id}/resume`.
async fn resume(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunSummary>, ApiError> {
    let result = app.resume(&id).await;
    app.audit(
        &caller,
        "runs.resume",
        serde_json::json!({ "run": id }),
        &result,
    )
    .await;
    result.map(Json)
}
