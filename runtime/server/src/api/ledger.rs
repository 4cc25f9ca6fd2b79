//! `/v1/ledger`: entries, head, verify, the latest signed checkpoint, inclusion proofs, and the
//! tree head and consistency proofs a client needs to verify the ledger without trusting the
//! server (`grace ledger verify --server`, `grace_ledger::audit`).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use grace_ledger::{Entry, LedgerError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use grace_ledger::Ledger;

pub fn router() -> Router<App> {
    Router::new()
        .route("/entries", get(entries))
        .route("/head", get(head))
        .route("/verify", get(verify))
        .route("/checkpoint", get(checkpoint))
        .route("/proof/{seq}", get(proof))
        .route("/tree-head", get(tree_head))
        .route("/consistency", get(consistency))
}

/// The most entries one `GET /v1/ledger/entries` returns.
pub const MAX_ENTRIES_PAGE: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    from: Option<u64>,
    limit: Option<usize>,
    run: Option<String>,
}

/// `GET /v1/ledger/entries`.
async fn entries(
    State(ledger): State<Arc<Ledger>>,
    query: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<Vec<Entry>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_ENTRIES_PAGE);
    let from = q.from.unwrap_or(1);
    let ledger = ledger.clone();
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
async fn head(State(ledger): State<Arc<Ledger>>) -> Result<Json<Value>, ApiError> {
    let head = ledger
        .head()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(
        serde_json::to_value(head).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// `GET /v1/ledger/verify`.
async fn verify(
    State(ledger): State<Arc<Ledger>>,
    State(checks): State<Arc<crate::dashboard::LedgerChecks>>,
) -> Result<Json<Value>, ApiError> {
    let ledger = ledger.clone();
    let result = tokio::task::spawn_blocking(move || ledger.verify())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    checks.record(&result);
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

/// `GET /v1/ledger/checkpoint`: the latest signed checkpoint, in the signed-note text format.
async fn checkpoint(State(ledger): State<Arc<Ledger>>) -> Result<impl IntoResponse, ApiError> {
    let ledger = ledger.clone();
    let latest = tokio::task::spawn_blocking(move || ledger.latest_checkpoint())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let signed = latest.ok_or_else(|| {
        ApiError::not_found(
            "no checkpoint signed yet: set `checkpoint_key` in grace.toml (grace keys generate)",
        )
    })?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        signed.as_str().to_owned(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofQuery {
    tree_size: Option<u64>,
}

/// `GET /v1/ledger/proof/{seq}?tree_size=N`: the entry's inclusion proof in the tree of
/// `tree_size` entries (default: all of them).
async fn proof(
    State(ledger): State<Arc<Ledger>>,
    Path(seq): Path<u64>,
    query: Result<Query<ProofQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let ledger = ledger.clone();
    let proof = tokio::task::spawn_blocking(move || ledger.prove_inclusion(seq, q.tree_size))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| match e {
            LedgerError::NotInTree { .. } | LedgerError::BeyondHead { .. } => {
                ApiError::not_found(e.to_string())
            }
            other => ApiError::internal(other.to_string()),
        })?;
    serde_json::to_value(&proof)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /v1/ledger/tree-head`: the size and Merkle root of the tree of every committed entry.
async fn tree_head(State(ledger): State<Arc<Ledger>>) -> Result<Json<Value>, ApiError> {
    let ledger = ledger.clone();
    let head = tokio::task::spawn_blocking(move || ledger.tree_head())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    serde_json::to_value(head)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    old_size: u64,
    new_size: Option<u64>,
}

/// `GET /v1/ledger/consistency?old_size=M&new_size=N`: the proof that the tree of `new_size`
/// entries (default: all of them) extends the tree of `old_size` unchanged, with both roots.
async fn consistency(
    State(ledger): State<Arc<Ledger>>,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let ledger = ledger.clone();
    let proof =
        tokio::task::spawn_blocking(move || ledger.prove_consistency(q.old_size, q.new_size))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| match e {
                LedgerError::BeyondHead { .. } | LedgerError::SizesOutOfOrder { .. } => {
                    ApiError::not_found(e.to_string())
                }
                other => ApiError::internal(other.to_string()),
            })?;
    serde_json::to_value(&proof)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}
