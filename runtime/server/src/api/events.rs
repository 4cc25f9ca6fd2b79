//! `/v1/events`: publish one event or a batch; read stored events back.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use grace_engine::TriggerEvent;
use grace_engine::event::EventError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::auth::{Audit, AuditAction};
use crate::error::ApiError;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::StoredEvent;

/// Most events in one batch.
pub const MAX_BATCH: usize = 10_000;

pub fn router() -> Router<App> {
    Router::new().route("/", post(publish).get(list))
}

/// Turns a body rejection into our error shape.
pub fn rejection(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!("the body is larger than the server's limit ({r})"))
    } else {
        ApiError::body(r.body_text())
    }
}

fn event_error(index: Option<usize>, e: EventError) -> ApiError {
    let prefix = index.map_or(String::new(), |i| format!("events[{i}]"));
    match e {
        EventError::Invalid { field, message } => {
            let name = if prefix.is_empty() {
                field.to_owned()
            } else {
                format!("{prefix}.{field}")
            };
            ApiError::field(name.clone(), format!("`{name}`: {message}"))
        }
        other => {
            let message = if prefix.is_empty() {
                other.to_string()
            } else {
                format!("{prefix}: {other}")
            };
            ApiError::body(message)
        }
    }
}

/// Parses a body holding one event or an array of them.
pub fn parse_events(body: &[u8], now_millis: u64) -> Result<Vec<TriggerEvent>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::body(format!("the body is not JSON: {e}")))?;
    match value {
        Value::Array(items) => {
            if items.len() > MAX_BATCH {
                return Err(ApiError::too_large(format!(
                    "a batch holds at most {MAX_BATCH} events; this one has {}",
                    items.len()
                )));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    TriggerEvent::from_value(v, now_millis).map_err(|e| event_error(Some(i), e))
                })
                .collect()
        }
        v @ Value::Object(_) => Ok(vec![
            TriggerEvent::from_value(v, now_millis).map_err(|e| event_error(None, e))?,
        ]),
        _ => Err(ApiError::body(
            "the body must be an event object or an array of events",
        )),
    }
}

/// `POST /v1/events`: audited once per accepted batch.
async fn publish(
    State(audit): State<Audit>,
    State(metrics): State<Arc<Metrics>>,
    State(intake): State<Arc<Intake>>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    super::body::require_json(&headers)?;
    let body = body.map_err(rejection)?;
    let events = match parse_events(&body, intake.now_millis()) {
        Ok(e) => e,
        Err(e) => {
            metrics
                .events_rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(e);
        }
    };
    let n = events.len();
    let (first, last) = intake.ingest_from(events, &caller).await?;
    audit.batch(&caller, AuditAction::EventsPublish, n, (first, last));
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": n, "first_seq": first, "last_seq": last })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/events`.
async fn list(
    State(store): State<Store>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<StoredEvent>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    Ok(Json(store.events(q.from.unwrap_or(1), limit)?))
}
