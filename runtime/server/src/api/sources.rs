//! `/v1/sources`: events from other systems' formats (see [`crate::sources`]), ingested like
//! `POST /v1/events`: all or nothing, durable before `202`, `429` when the queue is full.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use super::events::rejection;
use crate::app::App;
use crate::error::ApiError;
use crate::sources::alertmanager::{self, DEDUP_CAPACITY, Dedup};
use crate::sources::metrics::{self, Format};

/// The routes, with the Alertmanager dedup state they own (one per router, so one per server).
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/alertmanager", post(alertmanager))
        .route("/metrics", post(push_metrics))
        .layer(Extension(Arc::new(Dedup::new(DEDUP_CAPACITY))))
}

/// Counts a refused body like `POST /v1/events` does.
fn refused(app: &App, e: ApiError) -> ApiError {
    app.metrics.events_rejected.fetch_add(1, Ordering::Relaxed);
    e
}

/// `POST /v1/sources/alertmanager`.
async fn alertmanager(
    State(app): State<Arc<App>>,
    Extension(dedup): Extension<Arc<Dedup>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(rejection)?;
    let alerts = alertmanager::parse(&body)
        .and_then(|n| n.events(app.now_millis()))
        .map_err(|e| refused(&app, e))?;

    // Held until the fresh alerts are stored, so that a concurrent re-send waits and skips them.
    let mut state = dedup.lock().await;
    if !state.is_seeded() {
        let store_app = app.clone();
        let window = DEDUP_CAPACITY as u64;
        let keys = tokio::task::spawn_blocking(move || {
            alertmanager::recent_keys(&store_app.store, window).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match keys {
            Ok(keys) => state.seed(keys),
            // The trigger mesh's dedup keys and cooldowns still apply: accept alerts rather than
            // refuse them for want of the log's keys.
            Err(e) => {
                tracing::warn!("cannot read recent alerts from the event log: {e}");
                state.seed([]);
            }
        }
    }
    let (keys, events, skipped) = state.fresh(alerts);
    if events.is_empty() {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "accepted": 0, "skipped_duplicates": skipped, "first_seq": null, "last_seq": null,
            })),
        ));
    }
    let n = events.len();
    let (first, last) = app.ingest(events).await?;
    state.remember(keys);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "accepted": n, "skipped_duplicates": skipped, "first_seq": first, "last_seq": last,
        })),
    ))
}

/// `POST /v1/sources/metrics`.
async fn push_metrics(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let format = Format::of(content_type).map_err(|e| refused(&app, e))?;
    let body = body.map_err(rejection)?;
    let events = metrics::events(format, &body, app.now_millis()).map_err(|e| refused(&app, e))?;
    let n = events.len();
    let (first, last) = app.ingest(events).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": n, "first_seq": first, "last_seq": last })),
    ))
}
