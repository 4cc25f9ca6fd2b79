//! `/v1/runs`: list, show with timeline, cancel, resume.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::Caller;
use crate::auth::{Audit, AuditAction};
use crate::error::ApiError;
use crate::runs::{RunRecord, RunState, RunSummary};
use crate::scheduler::Scheduler;
use crate::store::RunFilter;
use crate::store::Store;

pub fn router() -> Router<App> {
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
    State(store): State<Store>,
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
    let runs = store.runs(&RunFilter {
        state,
        playbook: q.playbook,
        resource: q.resource,
        limit: q.limit.unwrap_or(100).clamp(1, 10_000),
        before: None,
    })?;
    Ok(Json(runs.iter().map(RunRecord::summary).collect()))
}

/// Timeline entries one answer holds unless asked for fewer.
const DEFAULT_TIMELINE_PAGE: usize = 500;
/// Most timeline entries one answer holds.
const MAX_TIMELINE_PAGE: usize = 5000;
/// Most bytes of timeline one answer holds (at least one entry is always given).
const MAX_TIMELINE_PAGE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    timeline_from: Option<usize>,
    timeline_limit: Option<usize>,
}

/// A run with one page of its timeline.
#[derive(Serialize)]
struct RunPage {
    #[serde(flatten)]
    run: RunRecord,
    /// Entries in the whole timeline.
    timeline_total: usize,
    /// Where the next page starts (`?timeline_from=`), when there is one.
    timeline_next: Option<usize>,
}

/// `GET /v1/runs/{id}`: the run with one page of its timeline (`timeline_from`,
/// `timeline_limit`), so that no answer is larger than a few MiB however long the run was.
async fn show(
    State(store): State<Store>,
    Path(id): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let limit = q.timeline_limit.unwrap_or(DEFAULT_TIMELINE_PAGE);
    if limit == 0 || limit > MAX_TIMELINE_PAGE {
        return Err(ApiError::field(
            "timeline_limit",
            format!("`{limit}` is outside 1..={MAX_TIMELINE_PAGE}"),
        ));
    }
    let mut run = store
        .run(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    let total = run.timeline.len();
    let from = q.timeline_from.unwrap_or(0).min(total);
    let mut bytes = 0u64;
    let page: Vec<_> = run
        .timeline
        .drain(from..)
        .take(limit)
        .enumerate()
        .take_while(|(i, e)| {
            bytes = bytes.saturating_add(serde_json::to_vec(e).map_or(0, |v| v.len() as u64));
            *i == 0 || bytes <= MAX_TIMELINE_PAGE_BYTES
        })
        .map(|(_, e)| e)
        .collect();
    let end = from + page.len();
    run.timeline = page;
    Ok(Json(RunPage {
        run,
        timeline_total: total,
        timeline_next: (end < total).then_some(end),
    }))
}

/// `POST /v1/runs/{id}/cancel`.
async fn cancel(
    State(audit): State<Audit>,
    State(scheduler): State<Arc<Scheduler>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunSummary>, ApiError> {
    let result = scheduler.cancel(&id).await.map_err(ApiError::from);
    audit
        .record(
            &caller,
            AuditAction::RunsCancel,
            serde_json::json!({ "run": id }),
            &result,
        )
        .await;
    result.map(Json)
}

/// `POST /v1/runs/{id}/resume`.
async fn resume(
    State(audit): State<Audit>,
    State(scheduler): State<Arc<Scheduler>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunSummary>, ApiError> {
    let result = scheduler.resume(&id).await.map_err(ApiError::from);
    audit
        .record(
            &caller,
            AuditAction::RunsResume,
            serde_json::json!({ "run": id }),
            &result,
        )
        .await;
    result.map(Json)
}
