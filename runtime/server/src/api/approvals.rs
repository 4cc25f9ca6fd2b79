//! `/v1/approvals`: changes waiting for people, and their votes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::scheduler::Scheduler;
use crate::trust::HostTrust;
use crate::trust::approvals::{Approval, ApprovalState};

pub fn router() -> Router<App> {
    Router::new()
        .route("/", get(list))
        .route("/{id}", get(show))
        .route("/{id}/approve", post(approve))
        .route("/{id}/deny", post(deny))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/approvals[?state=pending]`.
async fn list(
    State(trust): State<Arc<HostTrust>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Approval>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let state = match q.state.as_deref() {
        Some(s) => Some(ApprovalState::parse(s).ok_or_else(|| {
            ApiError::field(
                "state",
                format!(
                    "`{s}` is not an approval state (one of: {})",
                    ApprovalState::ALL.map(ApprovalState::name).join(", ")
                ),
            )
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    trust
        .approvals()
        .list(state, limit)
        .await
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /v1/approvals/{id}`.
async fn show(
    State(trust): State<Arc<HostTrust>>,
    Path(id): Path<String>,
) -> Result<Json<Approval>, ApiError> {
    trust
        .approvals()
        .get(&id)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no approval `{id}`")))
}

/// The body of a vote: an optional comment (required to deny: say why).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    comment: Option<String>,
}

/// An empty body is a vote without a comment; anything else must be the JSON object.
fn body(body: &[u8]) -> Result<VoteBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(VoteBody::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::body(format!("not a vote ({{\"comment\": \"...\"}}): {e}")))
}

/// `POST /v1/approvals/{id}/approve`.
async fn approve(
    State(scheduler): State<Arc<Scheduler>>,
    caller: Caller,
    Path(id): Path<String>,
    vote_body: Bytes,
) -> Result<Json<Approval>, ApiError> {
    let vote_body = body(&vote_body)?;
    vote(&scheduler, &caller, &id, true, vote_body.comment)
        .await
        .map(Json)
}

/// `POST /v1/approvals/{id}/deny`.
async fn deny(
    State(scheduler): State<Arc<Scheduler>>,
    caller: Caller,
    Path(id): Path<String>,
    vote_body: Bytes,
) -> Result<Json<Approval>, ApiError> {
    let vote_body = body(&vote_body)?;
    vote(&scheduler, &caller, &id, false, vote_body.comment)
        .await
        .map(Json)
}

/// One person's vote, from the API or the dashboard: a denial must say why.
pub(crate) async fn vote(
    scheduler: &Scheduler,
    caller: &Caller,
    id: &str,
    approve: bool,
    comment: Option<String>,
) -> Result<Approval, ApiError> {
    if !approve && comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(ApiError::field(
            "comment",
            "say why the change is denied: the playbook's run and the ledger record it",
        ));
    }
    scheduler
        .vote(id, caller, approve, comment)
        .await
        .map_err(ApiError::from)
}
