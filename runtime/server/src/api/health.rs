//! Health, metrics, the simulated fleet and the API's own description.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::state::Health;
use crate::error::ApiError;
use crate::metrics::Gauges;
use crate::runs::RunState;

/// `GET /healthz`: `200` and `"status": "ok"`, or `503` and `"status": "unhealthy"` while a
/// background task is down (dead and waiting for its restart), with the tasks `down` listed.
pub async fn healthz(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    let down = health.supervisor.down();
    let (status, word) = if down.is_empty() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    };
    let mut body = json!({
        "status": word,
        "mode": if health.sim.is_some() { "simulate" } else { "live" },
        "playbooks": health.registry.enabled_count(),
        "queue_depth": health.intake.queue_depth(),
        "providers": health.providers,
    });
    if !down.is_empty() {
        body["down"] = json!(down);
    }
    if let Some(cluster) = &health.cluster {
        body["cluster"] = json!({
            "replica": cluster.replica(),
            "ready": cluster.ready(),
            "engine_connected": cluster.engine().connected(),
        });
    }
    (status, Json(body))
}

/// `GET /readyz`: `200` when the server can take work: every background task runs and, in a
/// cluster, this replica is connected to the engine with a fresh heartbeat. `503` otherwise,
/// with the reason: a load balancer sends nothing to a replica cut off from the engine, which
/// could accept no event anyway (`/healthz` stays the liveness probe: restarting a replica
/// cut off by the network does not reconnect it).
pub async fn readyz(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    let down = health.supervisor.down();
    let mut reasons: Vec<String> = down
        .iter()
        .map(|d| format!("task `{}` is down: {}", d.task, d.reason))
        .collect();
    if let Some(cluster) = &health.cluster
        && !cluster.ready()
    {
        let status = cluster.status();
        reasons.push(match (status.engine_connected, status.last_error) {
            (false, _) => "not connected to the cluster's engine".to_owned(),
            (true, Some(e)) => format!("not taking part in the cluster: {e}"),
            (true, None) => "not yet registered in the cluster".to_owned(),
        });
    }
    if reasons.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reasons": reasons})),
        )
    }
}

/// `GET /v1/cluster`: this replica's view of the cluster (replicas, shards and their holders,
/// leases, counters); `404` when the server does not run clustered.
pub async fn cluster(
    State(cluster): State<Option<Arc<grace_cluster::Cluster>>>,
) -> Result<Json<grace_cluster::ClusterStatus>, ApiError> {
    let cluster = cluster.ok_or_else(|| {
        ApiError::not_found("the server does not run clustered: it has no [cluster] section")
    })?;
    Ok(Json(cluster.status()))
}

/// `GET /metrics`.
pub async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    let gauges = gauges(&health);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        health.metrics.render(&gauges),
    )
}

/// `GET /v1/fleet`.
pub async fn fleet(State(health): State<Health>) -> Result<Json<Value>, ApiError> {
    let sim = health.sim.as_ref().ok_or_else(|| {
        ApiError::not_found("there is no simulated fleet: the server is not in --simulate mode")
    })?;
    serde_json::to_value(sim.snapshot())
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Metrics read at scrape time.
fn gauges(health: &Health) -> Gauges {
    // Counted with each run's write: a scrape does not read every run ever stored.
    let by_state: HashMap<RunState, u64> = health
        .store
        .run_counts()
        .map(|counts| counts.into_iter().collect())
        .unwrap_or_default();
    Gauges {
        queue_depth: health.intake.queue_depth(),
        queue_capacity: health.intake.capacity(),
        runs_by_state: RunState::ALL
            .into_iter()
            .map(|s| (s, by_state.get(&s).copied().unwrap_or(0)))
            .collect(),
        ledger_entries: health.ledger.head().ok().flatten().map_or(0, |h| h.entries),
        playbooks: health.registry.enabled_count(),
        sources: health.sources.health().snapshot(),
        cluster: health.cluster.as_ref().map(|c| c.status()),
        dashboard_streams: health.dashboard.live.open_streams(),
        transitions_dropped: health.store.transitions_dropped().unwrap_or(0),
    }
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI)
}

/// Anything else.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for `{}` (see /v1/openapi.json)",
        uri.path()
    ))
}

/// A known path with the wrong method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::method(format!(
        "`{method}` is not allowed on `{}` (see /v1/openapi.json)",
        uri.path()
    ))
}
