//! `/v1/cluster/ledgers`: every replica's published ledger state, and any replica's ledger read
//! through this one (`grace ledger verify --cluster`), with the answers `/v1/ledger` gives.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use grace_cluster::Cluster;
use grace_cluster::ledgers::AskError;
use serde::Deserialize;
use serde_json::Value;

use crate::app::App;
use crate::cluster_ledger::{Answer, Published, Question, ask, published};
use crate::error::ApiError;

pub fn router() -> Router<App> {
    Router::new()
        .route("/", get(list))
        .route("/{replica}/tree-head", get(tree_head))
        .route("/{replica}/checkpoint", get(checkpoint))
        .route("/{replica}/entries", get(entries))
        .route("/{replica}/consistency", get(consistency))
}

fn clustered(cluster: Option<Arc<Cluster>>) -> Result<Arc<Cluster>, ApiError> {
    cluster.ok_or_else(|| {
        ApiError::not_found(
            "this server runs alone (no [cluster]): its ledger is `/v1/ledger`, verified with `grace ledger verify --server`",
        )
    })
}

/// `GET /v1/cluster/ledgers`.
async fn list(
    State(cluster): State<Option<Arc<Cluster>>>,
) -> Result<Json<Vec<Published>>, ApiError> {
    let cluster = clustered(cluster)?;
    published(&cluster)
        .await
        .map(Json)
        .map_err(|e| ApiError::unavailable(format!("cannot read the published ledgers: {e}")))
}

/// Asks `replica` through the engine, after checking its name.
async fn asked(
    cluster: Option<Arc<Cluster>>,
    replica: &str,
    question: Question,
) -> Result<Value, ApiError> {
    let cluster = clustered(cluster)?;
    grace_cluster::settings::check_replica_name(replica)
        .map_err(|m| ApiError::field("replica", m))?;
    match ask(&cluster, replica, &question).await {
        Ok(Answer::Ok(value)) => Ok(value),
        Ok(Answer::NotFound(m)) => Err(ApiError::not_found(format!("replica `{replica}`: {m}"))),
        Ok(Answer::TooLarge(m)) => Err(ApiError::too_large(format!("replica `{replica}`: {m}"))),
        Ok(Answer::Failed(m)) => Err(ApiError::internal(format!(
            "replica `{replica}` cannot read its ledger: {m}"
        ))),
        Err(e @ AskError::NoAnswer(_)) => Err(ApiError::unavailable(e.to_string())),
        Err(e) => Err(ApiError::unavailable(format!(
            "cannot ask replica `{replica}`: {e}"
        ))),
    }
}

/// `GET /v1/cluster/ledgers/{replica}/tree-head`.
async fn tree_head(
    State(cluster): State<Option<Arc<Cluster>>>,
    Path(replica): Path<String>,
) -> Result<Json<Value>, ApiError> {
    asked(cluster, &replica, Question::TreeHead {})
        .await
        .map(Json)
}

/// `GET /v1/cluster/ledgers/{replica}/checkpoint`: as text, like `/v1/ledger/checkpoint`.
async fn checkpoint(
    State(cluster): State<Option<Arc<Cluster>>>,
    Path(replica): Path<String>,
) -> Result<Response, ApiError> {
    match asked(cluster, &replica, Question::Checkpoint {}).await? {
        Value::String(text) => Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            text,
        )
            .into_response()),
        _ => Err(ApiError::internal(format!(
            "replica `{replica}` answered a checkpoint that is not text"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/cluster/ledgers/{replica}/entries?from=&limit=`: a page that may be cut short to fit
/// one message of the engine; ask again from where it ends.
async fn entries(
    State(cluster): State<Option<Arc<Cluster>>>,
    Path(replica): Path<String>,
    query: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let question = Question::Entries {
        from: q.from.unwrap_or(1).max(1),
        limit: q
            .limit
            .unwrap_or(100)
            .clamp(1, crate::cluster_ledger::MAX_ENTRIES_ASKED),
    };
    asked(cluster, &replica, question).await.map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    old_size: u64,
    new_size: Option<u64>,
}

/// `GET /v1/cluster/ledgers/{replica}/consistency?old_size=&new_size=`.
async fn consistency(
    State(cluster): State<Option<Arc<Cluster>>>,
    Path(replica): Path<String>,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let question = Question::Consistency {
        old_size: q.old_size,
        new_size: q.new_size,
    };
    asked(cluster, &replica, question).await.map(Json)
}
