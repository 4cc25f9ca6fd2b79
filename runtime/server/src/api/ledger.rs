//! `/v1/ledger`: entries, head, verify.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use grace_ledger::{Entry, LedgerError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/entries", get(entries))
        .route("/head", get(head))
        .route("/verify", get(verify))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    from: Option<u64>,
    limit: Option<usize>,
    run: Option<String>,
}

/// `GET /v1/ledger/entries`.
async fn entries(
    State(app): State<Arc<App>>,
    query: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<Vec<Entry>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let from = q.from.unwrap_or(1);
    let ledger = app.ledger.clone();
    let result = tokio::task::spawn_blocking(move || match q.run {
        Some(run) => ledger.entries_for_run(&run).map(|mut e| {
            e.retain(|e| e.seq >= from);
            e.truncate(limit);
            e
        }),
        None => ledger.entries(from, limit),
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    result
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /v1/ledger/head`.
async fn head(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let head = app
        .ledger
        .head()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(
        serde_json::to_value(head).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// `GET /v1/ledger/verify`.
async fn verify(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let ledger = app.ledger.clone();
    let result = tokio::task::spawn_blocking(move || ledger.verify())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match result {
        Ok(report) => Ok(Json(
            json!({ "ok": true, "entries": report.entries, "head": report.head }),
        )),
        Err(LedgerError::Tampered(t)) => Ok(Json(json!({
            "ok": false, "first_bad_seq": t.seq, "problem": t.to_string()
        }))),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}
