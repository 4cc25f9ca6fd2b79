//! `/v1/sources`: events from other systems' formats (see [`crate::sources`]), ingested like
//! `POST /v1/events`: all or nothing, durable before `202`, `429` when the queue is full.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use super::events::rejection;
use crate::app::App;
use crate::auth::Caller;
use crate::auth::{Audit, AuditAction};
use crate::error::ApiError;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::sources::alertmanager::{self, DEDUP_CAPACITY, Dedup};
use crate::sources::metrics::{self, Format};
use crate::sources::supervisor::SourceSupervisor;
use crate::store::Store;

/// The routes, with the Alertmanager dedup state they own (one per router, so one per server).
///
/// A push endpoint's path is a static route beside `/{name}`, and a static route takes its
/// whole path from `/{name}` (another method gets `405`): each push route therefore also
/// answers `GET` as `/{name}` would, with its last segment as the name.
pub fn router() -> Router<App> {
    let push: [(&'static str, MethodRouter<App>); 4] = [
        ("alertmanager", post(alertmanager)),
        ("metrics", post(push_metrics)),
        ("github", post(super::integrations::github)),
        ("pagerduty", post(super::integrations::pagerduty)),
    ];
    push.into_iter()
        .fold(
            Router::new()
                .route("/", get(list))
                .route("/{name}", get(show)),
            |router, (name, route)| {
                router.route(
                    &format!("/{name}"),
                    route.get(move |sources: State<Arc<SourceSupervisor>>| {
                        show(sources, Path(name.to_owned()))
                    }),
                )
            },
        )
        .layer(Extension(Arc::new(Dedup::new(DEDUP_CAPACITY))))
}

/// `GET /v1/sources`: every source and its health.
async fn list(State(sources): State<Arc<SourceSupervisor>>) -> Json<Value> {
    Json(json!(sources.health().snapshot()))
}

/// `GET /v1/sources/{name}`: the health of every source, polled or pushed, by its name.
async fn show(
    State(sources): State<Arc<SourceSupervisor>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    sources
        .health()
        .get(&name)
        .map(|s| Json(json!(s.snapshot())))
        .ok_or_else(|| ApiError::not_found(format!("no source `{name}` (see GET /v1/sources)")))
}

/// What a push handler needs: the intake, the source's health, the counters, the audit trail.
#[derive(Clone)]
struct Push {
    intake: Arc<Intake>,
    sources: Arc<SourceSupervisor>,
    metrics: Arc<Metrics>,
    audit: Audit,
}

impl axum::extract::FromRef<App> for Push {
    fn from_ref(app: &App) -> Self {
        Push {
            intake: app.intake.clone(),
            sources: app.sources.clone(),
            metrics: app.metrics.clone(),
            audit: app.audit.clone(),
        }
    }
}

/// Counts a refused body like `POST /v1/events` does, and notes it in the source's health.
fn refused(push: &Push, source: &str, e: ApiError) -> ApiError {
    push.metrics.events_rejected.fetch_add(1, Ordering::Relaxed);
    if let Some(s) = push.sources.health().get(source) {
        s.refused(&e.to_string());
    }
    e
}

/// Notes a push that was accepted.
fn received(push: &Push, source: &str, events: usize) {
    if let Some(s) = push.sources.health().get(source) {
        s.succeeded(events as u64, 0);
    }
}

/// `POST /v1/sources/alertmanager`.
async fn alertmanager(
    State(push): State<Push>,
    State(store): State<Store>,
    caller: Caller,
    Extension(dedup): Extension<Arc<Dedup>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    super::body::require_json(&headers)?;
    let body = body.map_err(rejection)?;
    let alerts = alertmanager::parse(&body)
        .and_then(|n| n.events(push.intake.now_millis()))
        .map_err(|e| refused(&push, "alertmanager", e))?;

    // Held until the fresh alerts are stored, so that a concurrent re-send waits and skips them.
    let mut state = dedup.lock().await;
    if !state.is_seeded() {
        let window = DEDUP_CAPACITY as u64;
        let keys = tokio::task::spawn_blocking(move || {
            alertmanager::recent_keys(&store, window).map_err(|e| e.to_string())
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
        received(&push, "alertmanager", 0);
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "accepted": 0, "skipped_duplicates": skipped, "first_seq": null, "last_seq": null,
            })),
        ));
    }
    let n = events.len();
    let (first, last) = push.intake.ingest_from(events, &caller).await?;
    state.remember(keys);
    received(&push, "alertmanager", n);
    push.audit
        .batch(&caller, AuditAction::SourcesAlertmanager, n, (first, last));
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "accepted": n, "skipped_duplicates": skipped, "first_seq": first, "last_seq": last,
        })),
    ))
}

/// `POST /v1/sources/metrics`.
async fn push_metrics(
    State(push): State<Push>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let format = Format::of(content_type).map_err(|e| refused(&push, "metrics-push", e))?;
    let body = body.map_err(rejection)?;
    let events = metrics::events(format, &body, push.intake.now_millis())
        .map_err(|e| refused(&push, "metrics-push", e))?;
    let n = events.len();
    let (first, last) = push.intake.ingest_from(events, &caller).await?;
    received(&push, "metrics-push", n);
    push.audit
        .batch(&caller, AuditAction::SourcesMetrics, n, (first, last));
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": n, "first_seq": first, "last_seq": last })),
    ))
}
