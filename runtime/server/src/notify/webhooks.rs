//! PagerDuty's and GitHub's webhooks as event sources: `POST /v1/sources/pagerduty` and
//! `POST /v1/sources/github`, authenticated by the vendor's signature of the body (not a
//! bearer token: the vendors cannot send one), each delivery accepted once.
//!
//! | source | event type | resource | timestamp |
//! |---|---|---|---|
//! | GitHub `deployment` | `deployment.created` | `[integrations.github] resources`, else the repository's name | `deployment.created_at` |
//! | GitHub `deployment_status` | `deployment.<state>` (`deployment.success`, `deployment.failure`, ...) | the same | `deployment_status.created_at` |
//! | PagerDuty `incident.triggered`, ... | `pagerduty.incident.triggered`, ... | `[integrations.pagerduty] services`, else the service's name | `occurred_at` |
//!
//! `deployment.*` events are what the trust core's deployment-recency factor reads (see
//! [`crate::trust::HostTrust::observe`]), and what root-cause ranking sees as changes.
//!
//! Neither vendor signs a time, nor the delivery-id header (`X-GitHub-Delivery`,
//! `X-Webhook-Id`): a replay is recognised by what the body, which is signed, identifies
//! (PagerDuty's `event.id`; GitHub's deployment or deployment status id), kept in the event's
//! payload as `delivery_id`. Keys taken are stored (`server/webhook_deliveries`, at least as
//! long as a delivery is taken at all), and a delivery seen before is answered `200` with
//! nothing ingested (the vendors retry on errors; a retry of a delivery that was accepted must
//! not make it fail).
//! A delivery whose signed time is more than [`MAX_DELIVERY_AGE_MS`] (3 days) old is refused,
//! so one captured long ago cannot come back once its key was forgotten.

use std::collections::BTreeMap;

use grace_engine::TriggerEvent;
use grace_notify::Secret;
use serde_json::{Value, json};

use super::config::IntegrationsConfig;
use crate::config_error::ConfigError;

/// The payload key holding the key a delivery is taken once by.
pub const DELIVERY_KEY: &str = "delivery_id";

/// The largest body of the routes vendors sign (read before the signature is checked).
pub const MAX_PUBLIC_BODY_BYTES: usize = 256 * 1024;

/// The routes vendors sign instead of presenting a token.
pub const PUBLIC_ROUTES: [&str; 3] = [
    "/v1/integrations/slack/interactions",
    "/v1/sources/github",
    "/v1/sources/pagerduty",
];

/// Whether `path` is one of [`PUBLIC_ROUTES`].
pub fn is_public(path: &str) -> bool {
    PUBLIC_ROUTES.contains(&path.trim_end_matches('/'))
}

/// How old a delivery may be (its signed time): older ones are refused, so a signed body
/// captured long ago cannot be replayed once its key was forgotten.
pub const MAX_DELIVERY_AGE_MS: u64 = 3 * 24 * 3600 * 1000;

/// How far ahead of this server's clock a delivery's signed time may be (clock skew).
pub const MAX_DELIVERY_AHEAD_MS: u64 = 5 * 60 * 1000;

/// One webhook source: its secret, the resource of each repository or service it lists, and
/// whether it takes the unlisted ones.
pub struct Source {
    /// The secret the vendor signs with.
    pub secret: Secret,
    /// Repository (or service) → GRACE resource.
    pub resources: BTreeMap<String, String>,
    /// Whether an unlisted one is taken, as the resource of its name.
    pub accept_unlisted: bool,
}

/// The webhook sources configured.
pub struct Webhooks {
    /// GitHub's.
    pub github: Option<Source>,
    /// PagerDuty's.
    pub pagerduty: Option<Source>,
    /// Held from a delivery's check to its ingestion, so that two copies of one delivery
    /// racing each other make one event.
    pub taking: tokio::sync::Mutex<()>,
}

impl Webhooks {
    /// Reads the secrets the settings name.
    pub fn new(integrations: &IntegrationsConfig) -> Result<Webhooks, ConfigError> {
        let github = match &integrations.github {
            Some(g) => Some(Source {
                secret: g.webhook_secret.load().map_err(|e| {
                    ConfigError::invalid("integrations.github.webhook_secret", e.to_string())
                })?,
                resources: g.resources.clone(),
                accept_unlisted: g.accept_unlisted,
            }),
            None => None,
        };
        let pagerduty = match integrations.pagerduty.as_ref() {
            Some(p) => match &p.webhook_secret {
                Some(secret) => Some(Source {
                    secret: secret.load().map_err(|e| {
                        ConfigError::invalid("integrations.pagerduty.webhook_secret", e.to_string())
                    })?,
                    resources: p.services.clone(),
                    accept_unlisted: p.accept_unlisted,
                }),
                None => None,
            },
            None => None,
        };
        Ok(Webhooks {
            github,
            pagerduty,
            taking: tokio::sync::Mutex::new(()),
        })
    }
}

/// A delivery id as either vendor sends it: 1 to 128 letters, digits and `-`.
pub fn valid_delivery_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The event of a GitHub deployment delivery; `None` for a repository `source` does not list
/// and does not accept unlisted.
pub fn github_event(
    d: &grace_notify::github::Deployment,
    source: &Source,
    now: u64,
) -> Option<TriggerEvent> {
    let listed = source
        .resources
        .get(&format!("{}@{}", d.repository, d.environment))
        .or_else(|| source.resources.get(&d.repository))
        .cloned();
    let resource = match listed {
        Some(r) => r,
        None if source.accept_unlisted => d
            .repository
            .rsplit_once('/')
            .map_or(d.repository.clone(), |(_, name)| name.to_owned()),
        None => return None,
    };
    let delivery = d.signed_key();
    let event_type = match &d.state {
        Some(state) => format!("deployment.{}", state.replace('_', "-")),
        None => "deployment.created".to_owned(),
    };
    Some(TriggerEvent {
        event_type,
        source: "github".to_owned(),
        actor: d.sender.clone().unwrap_or_else(|| "github".to_owned()),
        resource,
        payload: json!({
            DELIVERY_KEY: delivery,
            "repository": d.repository,
            "environment": d.environment,
            "deployment_id": d.id,
            "sha": d.sha,
            "ref": d.git_ref,
            "state": d.state,
        }),
        timestamp: crate::sources::parse_time(&d.at).unwrap_or(now),
    })
}

/// The event of a PagerDuty webhook delivery; `None` for a service `source` does not list and
/// does not accept unlisted.
pub fn pagerduty_event(
    e: &grace_notify::pagerduty::WebhookEvent,
    source: &Source,
    now: u64,
) -> Option<TriggerEvent> {
    let delivery = e.id.as_str();
    let text = |pointer: &str, max: usize| -> Value {
        e.data
            .pointer(pointer)
            .and_then(Value::as_str)
            .map_or(Value::Null, |s| {
                json!(grace_notify::text::cut(
                    &grace_notify::text::printable(s),
                    max
                ))
            })
    };
    let service_id = e
        .data
        .pointer("/service/id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let resource = match source.resources.get(service_id) {
        Some(r) => r.clone(),
        None if source.accept_unlisted => e.service.clone()?,
        None => return None,
    };
    Some(TriggerEvent {
        event_type: format!("pagerduty.{}", e.event_type),
        source: "pagerduty".to_owned(),
        actor: "pagerduty".to_owned(),
        resource,
        payload: json!({
            DELIVERY_KEY: delivery,
            "event_id": e.id,
            "pagerduty_incident": text("/id", 64),
            "number": e.data.get("number").and_then(Value::as_u64),
            "title": text("/title", 500),
            "status": text("/status", 40),
            "urgency": text("/urgency", 40),
            "html_url": text("/html_url", 500),
            "service_id": text("/service/id", 64),
            "service": text("/service/summary", 255),
        }),
        timestamp: crate::sources::parse_time(&e.occurred_at).unwrap_or(now),
    })
}

/// Refuses a delivery whose signed time (`field`, `at`) is more than [`MAX_DELIVERY_AGE_MS`]
/// before `now`, or not a time.
pub fn check_age(field: &'static str, at: &str, now: u64) -> Result<(), (&'static str, String)> {
    match crate::sources::parse_time(at) {
        Some(t) if t > now.saturating_add(MAX_DELIVERY_AHEAD_MS) => Err((
            field,
            "more than 5 minutes ahead of this server's clock".to_owned(),
        )),
        Some(t) if now.saturating_sub(t) <= MAX_DELIVERY_AGE_MS => Ok(()),
        Some(_) => Err((
            field,
            "older than 3 days: a delivery this old is refused, as a replay might be".to_owned(),
        )),
        None => Err((field, "not an RFC 3339 time".to_owned())),
    }
}
