//! Health, metrics, the simulated fleet and the API's own description.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;

/// `GET /healthz`: `200` and `"status": "ok"`, or `503` and `"status": "unhealthy"` while a
/// background task is down (dead and waiting for its restart), with the tasks `down` listed.
pub async fn healthz(State(app): State<Arc<App>>) -> (StatusCode, Json<Value>) {
    let down = app.supervisor.down();
    let (status, word) = if down.is_empty() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    };
    let mut body = json!({
        "status": word,
        "mode": if app.sim.is_some() { "simulate" } else { "live" },
        "playbooks": app.enabled_count(),
        "queue_depth": app.queue_depth(),
        "providers": app.providers,
    });
    if !down.is_empty() {
        body["down"] = json!(down);
    }
    (status, Json(body))
}

/// `GET /metrics`.
pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let gauges = app.gauges();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(&gauges),
    )
}

/// `GET /v1/fleet`.
pub async fn fleet(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let sim = app.sim.as_ref().ok_or_else(|| {
        ApiError::not_found("there is no simulated fleet: the server is not in --simulate mode")
    })?;
    serde_json::to_value(sim.snapshot())
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
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
