//! The integrations' HTTP side (see [`crate::notify`] and `docs/integrations.md`):
//! - `GET /v1/notifications`, `GET /v1/notifications/{id}`: what was told where, and how its
//!   delivery went (`read`);
//! - `POST /v1/integrations/slack/interactions`: Slack's Approve / Deny buttons (signed by
//!   Slack; no token);
//! - `POST /v1/sources/github`, `POST /v1/sources/pagerduty`: deployment and incident
//!   webhooks as events (signed by the vendor; no token).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::events::rejection;
use crate::app::App;
use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::notify::webhooks::{self, valid_delivery_id};
use crate::scheduler::Scheduler;
use crate::store::Store;
use crate::store::outbox::NotificationState;

/// `/v1/notifications`.
pub fn notifications_router() -> Router<App> {
    Router::new()
        .route("/", get(list))
        .route("/{id}", get(show))
}

/// Query of `GET /v1/notifications`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `pending`, `delivered` or `failed`.
    state: Option<String>,
    /// Only ids below this (the previous page's last).
    before: Option<u64>,
    /// At most this many (1 to 500, default 100).
    limit: Option<usize>,
}

async fn list(
    State(store): State<Store>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::field("query", e.body_text()))?;
    let state =
        match q.state.as_deref() {
            None => None,
            Some(s) => Some(NotificationState::parse(s).ok_or_else(|| {
                ApiError::field("state", "one of `pending`, `delivered`, `failed`")
            })?),
        };
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "between 1 and 500"));
    }
    let before = q.before;
    let records = tokio::task::spawn_blocking(move || store.notifications(state, before, limit))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))??;
    let next = (records.len() == limit)
        .then(|| records.last().map(|r| r.id))
        .flatten();
    Ok(Json(
        json!({ "notifications": records, "next_before": next }),
    ))
}

async fn show(State(store): State<Store>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::field("id", "a notification id is a number"))?;
    let record = tokio::task::spawn_blocking(move || store.notification(id))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))??
        .ok_or_else(|| ApiError::not_found(format!("no notification {id}")))?;
    Ok(Json(json!(record)))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn now_secs() -> u64 {
    grace_engine::event::system_now_millis() / 1000
}

/// `POST /v1/integrations/slack/interactions`.
pub async fn slack_interactions(
    State(notifier): State<Arc<Notifier>>,
    State(scheduler): State<Arc<Scheduler>>,
    State(auth): State<Arc<Authenticator>>,
    State(metrics): State<Arc<Metrics>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    use grace_notify::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, verify};
    let (slack, secret) = notifier
        .slack_in
        .as_ref()
        .and_then(|s| s.secret.as_ref().map(|secret| (s, secret)))
        .ok_or_else(|| {
            ApiError::not_found(
                "Slack interactivity over HTTP is not configured ([integrations.slack] signing_secret)",
            )
        })?;
    let body = body.map_err(rejection)?;
    let now = now_secs();
    let signature = header(&headers, SIGNATURE_HEADER);
    if let Err(e) = verify(
        secret,
        header(&headers, TIMESTAMP_HEADER),
        signature,
        &body,
        now,
    ) {
        metrics.webhook("slack", "refused");
        tracing::warn!(error = %e, "a request to Slack's interactivity URL was refused");
        let field = match e {
            grace_notify::slack::signature::SignatureError::Missing(h) => h,
            grace_notify::slack::signature::SignatureError::BadTimestamp
            | grace_notify::slack::signature::SignatureError::Stale(_) => TIMESTAMP_HEADER,
            grace_notify::slack::signature::SignatureError::Mismatch => SIGNATURE_HEADER,
        };
        return Err(ApiError::bad_signature(field, e.to_string()));
    }
    let signature = signature.unwrap_or_default();
    let at = header(&headers, TIMESTAMP_HEADER)
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(now);
    if !slack.first_time(signature, at, now) {
        metrics.webhook("slack", "replayed");
        return Err(ApiError::bad_signature(
            SIGNATURE_HEADER,
            "this signed request was already taken",
        ));
    }
    let press = grace_notify::slack::parse_form(&body).map_err(|e| {
        metrics.webhook("slack", "refused");
        ApiError::field(e.field, e.message)
    })?;
    crate::notify::slack_in::take(press, &notifier, &scheduler, &auth.tokens, &metrics).await;
    Ok(StatusCode::OK)
}

/// Ingests the event of one signed delivery, once: a delivery taken before (PagerDuty's and
/// GitHub's retries, or a replay) ingests nothing and answers `200`. The lock is held from the
/// check to the ingest, so two copies of one delivery racing each other make one event.
async fn ingest_once(
    notifier: &Notifier,
    intake: &Arc<Intake>,
    store: &Store,
    metrics: &Metrics,
    source: &'static str,
    delivery: &str,
    event: grace_engine::TriggerEvent,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    event.validate().map_err(|e| {
        let (field, message) = crate::sources::event_problem(&e);
        ApiError::field(field, message)
    })?;
    let _taking = notifier.webhooks.taking.lock().await;
    let (check, source_name, key) = (store.clone(), source, delivery.to_owned());
    let taken = tokio::task::spawn_blocking(move || check.delivery_taken(source_name, &key))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))??;
    if taken {
        metrics.webhook(source, "replayed");
        return Ok((
            StatusCode::OK,
            Json(json!({ "accepted": 0, "duplicate": true })),
        ));
    }
    let (first, _) = intake.ingest(vec![event]).await?;
    // After the event is stored: a crash between the two takes the delivery again when the
    // vendor retries it (at least once, never lost).
    let (remember, key, now) = (store.clone(), delivery.to_owned(), intake.now_millis());
    tokio::task::spawn_blocking(move || remember.take_delivery(source, &key, now))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))??;
    metrics.webhook(source, "accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": 1, "seq": first })),
    ))
}

/// `POST /v1/sources/github`.
pub async fn github(
    State(notifier): State<Arc<Notifier>>,
    State(intake): State<Arc<Intake>>,
    State(store): State<Store>,
    State(metrics): State<Arc<Metrics>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use grace_notify::github::webhook::{
        DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, WebhookError, parse, verify,
    };
    let source = notifier.webhooks.github.as_ref().ok_or_else(|| {
        ApiError::not_found("GitHub's webhook is not configured ([integrations.github])")
    })?;
    let body = body.map_err(rejection)?;
    if !verify(&source.secret, header(&headers, SIGNATURE_HEADER), &body) {
        metrics.webhook("github", "refused");
        return Err(ApiError::bad_signature(
            SIGNATURE_HEADER,
            "the signature does not match the webhook's secret",
        ));
    }
    // Not signed, so only for the log: the content's own id is what a delivery is taken once by.
    let delivery = header(&headers, DELIVERY_HEADER).filter(|d| valid_delivery_id(d));
    let event =
        header(&headers, EVENT_HEADER).ok_or_else(|| ApiError::field(EVENT_HEADER, "missing"))?;
    let content_type = header(&headers, "content-type").unwrap_or("application/json");
    let deployment = match parse(event, content_type, &body) {
        Ok(d) => d,
        Err(WebhookError::Ignored(what)) => {
            metrics.webhook("github", "ignored");
            return Ok((
                StatusCode::OK,
                Json(json!({ "accepted": 0, "ignored": what })),
            ));
        }
        Err(WebhookError::Invalid { field, message }) => {
            metrics.webhook("github", "refused");
            return Err(ApiError::field(field, message));
        }
    };
    let now = intake.now_millis();
    let when = if deployment.status_id.is_some() {
        "deployment_status.created_at"
    } else {
        "deployment.created_at"
    };
    // The vendor's signed time is its wall clock, whatever the run clock (simulated or not).
    let wall = grace_engine::event::system_now_millis();
    webhooks::check_age(when, &deployment.at, wall).map_err(|(field, message)| {
        metrics.webhook("github", "refused");
        ApiError::field(field, message)
    })?;
    let Some(event) = webhooks::github_event(&deployment, source, now) else {
        metrics.webhook("github", "ignored");
        tracing::warn!(repository = %deployment.repository, delivery = ?delivery, "a GitHub deployment of a repository [integrations.github] resources does not list was ignored");
        return Ok((
            StatusCode::OK,
            Json(
                json!({ "accepted": 0, "ignored": "a repository [integrations.github] resources does not list" }),
            ),
        ));
    };
    let key = deployment.signed_key();
    ingest_once(&notifier, &intake, &store, &metrics, "github", &key, event).await
}

/// `POST /v1/sources/pagerduty`.
pub async fn pagerduty(
    State(notifier): State<Arc<Notifier>>,
    State(intake): State<Arc<Intake>>,
    State(store): State<Store>,
    State(metrics): State<Arc<Metrics>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use grace_notify::pagerduty::webhook::{SIGNATURE_HEADER, parse, verify};
    let source = notifier.webhooks.pagerduty.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "PagerDuty's webhook is not configured ([integrations.pagerduty] webhook_secret)",
        )
    })?;
    let body = body.map_err(rejection)?;
    if !verify(&source.secret, header(&headers, SIGNATURE_HEADER), &body) {
        metrics.webhook("pagerduty", "refused");
        return Err(ApiError::bad_signature(
            SIGNATURE_HEADER,
            "no v1 signature matches the subscription's secret",
        ));
    }
    let event = parse(&body).map_err(|e| {
        metrics.webhook("pagerduty", "refused");
        ApiError::field(e.field, e.message)
    })?;
    let now = intake.now_millis();
    let wall = grace_engine::event::system_now_millis();
    webhooks::check_age("event.occurred_at", &event.occurred_at, wall).map_err(
        |(field, message)| {
            metrics.webhook("pagerduty", "refused");
            ApiError::field(field, message)
        },
    )?;
    let Some(ingested) = webhooks::pagerduty_event(&event, source, now) else {
        metrics.webhook("pagerduty", "ignored");
        return Ok((
            StatusCode::OK,
            Json(
                json!({ "accepted": 0, "ignored": "a service [integrations.pagerduty] services does not list" }),
            ),
        ));
    };
    ingest_once(
        &notifier,
        &intake,
        &store,
        &metrics,
        "pagerduty",
        &event.id,
        ingested,
    )
    .await
}
