//! `/v1/outcomes`: what was learnt from runs' outcomes, per playbook and resource (see
//! [`crate::outcomes::learning`]): success rate with its 95 % interval, the latest runs in a
//! row that did not clear their signal, time to recover and capacity-minutes added.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::outcomes::Outcomes;

/// The routes.
pub fn router() -> Router<App> {
    Router::new().route("/", get(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this playbook's.
    playbook: Option<String>,
    /// Only this resource's.
    resource: Option<String>,
}

async fn list(
    State(outcomes): State<Arc<Outcomes>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::field("query", e.body_text()))?;
    let pairs: Vec<_> = outcomes
        .learning()
        .stats()
        .into_iter()
        .filter(|p| q.playbook.as_ref().is_none_or(|n| *n == p.playbook))
        .filter(|p| q.resource.as_ref().is_none_or(|r| *r == p.resource))
        .collect();
    Ok(Json(json!({
        "window_ms": outcomes.window_ms(),
        "outcomes": pairs,
    })))
}
