//! PagerDuty's Events API v2 as a test server (`POST /v2/enqueue`), and PagerDuty's webhooks
//! v3 as it signs them.
//!
//! Checked as PagerDuty documents it (developer.pagerduty.com, "Send an Alert Event",
//! "Events API v2 Overview", "Rate Limits"; the API's OpenAPI document):
//! - `Content-Type: application/json`, a JSON object;
//! - `routing_key`: 32 characters, and the integration's → else `400`;
//! - `event_action`: `trigger`, `acknowledge` or `resolve`; `dedup_key` at most 255
//!   characters, required to acknowledge or resolve;
//! - a trigger's `payload`: `summary` (1 to 1,024 characters), `source`, `severity`
//!   (`critical`, `error`, `warning`, `info`); `links[].href` required;
//! - answers `202 {"status":"success","message":"Event processed","dedup_key":…}`, or `400
//!   {"status":"invalid event","message":"Event object is invalid","errors":[…]}`; a rate limit
//!   is `429` without `Retry-After` (PagerDuty documents none).
//!
//! Incidents are kept by `dedup_key`: triggered, acknowledged, resolved; a trigger of a
//! resolved key opens a new one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use grace_notify::Secret;
use serde_json::{Value, json};

use crate::{Fault, Faults, lock};

/// An incident as PagerDuty keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    /// The last trigger's summary.
    pub summary: String,
    /// The last trigger's payload.
    pub payload: Value,
    /// How many incidents this key opened (a trigger after a resolve opens another).
    pub opened: u32,
}

/// The server.
#[derive(Clone)]
pub struct PagerDutyServer {
    addr: SocketAddr,
    routing_key: String,
    incidents: Arc<Mutex<BTreeMap<String, Incident>>>,
    /// Faults and the request log.
    pub faults: Faults,
}

impl PagerDutyServer {
    /// Starts it on its own runtime, for the integration of `routing_key`.
    pub fn start(routing_key: &str) -> PagerDutyServer {
        let routing_key = routing_key.to_owned();
        crate::on_own_runtime(move || {
            Box::pin(async move {
                let mut server = PagerDutyServer {
                    addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                    routing_key,
                    incidents: Arc::new(Mutex::new(BTreeMap::new())),
                    faults: Faults::default(),
                };
                let router = Router::new()
                    .route("/v2/enqueue", post(enqueue))
                    .with_state(server.clone());
                server.addr = crate::serve(router).await;
                server
            })
        })
    }

    /// The enqueue URL.
    pub fn events_url(&self) -> String {
        format!("http://{}/v2/enqueue", self.addr)
    }

    /// The incidents by `dedup_key`.
    pub fn incidents(&self) -> BTreeMap<String, Incident> {
        lock(&self.incidents).clone()
    }
}

/// A webhook v3 delivery as PagerDuty sends it: headers and body, signed with `secret`.
pub fn webhook(secret: &str, webhook_id: &str, body: &Value) -> (Vec<(String, String)>, Vec<u8>) {
    let body = body.to_string().into_bytes();
    let signature = grace_notify::pagerduty::webhook::sign(&Secret::new(secret), &body);
    (
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("user-agent".to_owned(), "PagerDuty-Webhook/V3.0".to_owned()),
            ("x-webhook-id".to_owned(), webhook_id.to_owned()),
            ("x-webhook-subscription".to_owned(), "PSUBSCR".to_owned()),
            ("x-pagerduty-signature".to_owned(), signature),
        ],
        body,
    )
}

fn invalid(errors: &[String]) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": errors,
        })),
    )
        .into_response()
}

async fn enqueue(
    State(server): State<PagerDutyServer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The sleep is the behaviour under test: a vendor that answers slowly (`Fault::Delay`),
    // which must hold up only its own notifications. Nothing here waits for a state to appear.
    if let Some(Fault::Delay(ms)) = server.faults.peek() {
        server.faults.next();
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let response = handle(&server, &headers, &body);
    server
        .faults
        .received("POST", "/v2/enqueue", response.status().as_u16());
    response
}

fn handle(server: &PagerDutyServer, headers: &HeaderMap, body: &[u8]) -> Response {
    match server.faults.next() {
        Some(Fault::RateLimited(_)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly. Please retry later."
                })),
            )
                .into_response();
        }
        Some(Fault::Status(s)) => {
            return StatusCode::from_u16(s)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response();
        }
        Some(Fault::Delay(_)) | None => {}
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        server
            .faults
            .violation(format!("content type `{content_type}`"));
        return invalid(&["Content-Type must be application/json".to_owned()]);
    }
    let Ok(event) = serde_json::from_slice::<Value>(body) else {
        server.faults.violation("body not JSON");
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "status": "Unrecognized object",
                "message": "Event object format is unrecognized",
                "errors": ["JSON parse error"],
            })),
        )
            .into_response();
    };
    let mut errors = Vec::new();
    let key = event["routing_key"].as_str().unwrap_or("");
    if key.len() != 32 {
        errors.push("Service key is the wrong length (should be 32 characters)".to_owned());
    } else if key != server.routing_key {
        errors.push("Invalid routing key".to_owned());
    }
    let action = event["event_action"].as_str().unwrap_or("");
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        errors.push(
            "'event_action' is invalid (must be one of trigger, acknowledge, resolve)".to_owned(),
        );
    }
    let dedup = event["dedup_key"].as_str();
    if dedup.is_some_and(|d| d.chars().count() > 255) {
        errors.push("'dedup_key' is too long (max 255)".to_owned());
    }
    if action != "trigger" && dedup.is_none_or(str::is_empty) {
        errors.push("'dedup_key' is required for acknowledge and resolve".to_owned());
    }
    if action == "trigger" {
        let p = &event["payload"];
        let summary = p["summary"].as_str().unwrap_or("");
        if summary.is_empty() || summary.chars().count() > 1024 {
            errors.push("'payload.summary' is missing or longer than 1024".to_owned());
        }
        if p["source"].as_str().is_none_or(str::is_empty) {
            errors.push("'payload.source' is missing".to_owned());
        }
        if !["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap_or(""))
        {
            errors.push("'payload.severity' is invalid".to_owned());
        }
        if let Some(links) = event.get("links").and_then(Value::as_array)
            && links
                .iter()
                .any(|l| l["href"].as_str().is_none_or(str::is_empty))
        {
            errors.push("'links[].href' is required".to_owned());
        }
    } else if event.get("payload").is_some() {
        server
            .faults
            .violation(format!("{action} with a payload (only trigger takes one)"));
    }
    if !errors.is_empty() {
        server.faults.violation(errors.join("; "));
        return invalid(&errors);
    }
    let dedup = dedup.map_or_else(|| "generated-dedup-key".to_owned(), str::to_owned);
    let mut incidents = lock(&server.incidents);
    match action {
        "trigger" => {
            let entry = incidents.entry(dedup.clone()).or_insert(Incident {
                status: "resolved".to_owned(),
                summary: String::new(),
                payload: Value::Null,
                opened: 0,
            });
            if entry.status == "resolved" {
                entry.opened += 1;
                entry.status = "triggered".to_owned();
            }
            entry.summary = event["payload"]["summary"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            entry.payload = event["payload"].clone();
        }
        // Acknowledging or resolving a key with no open incident is accepted and does nothing.
        "acknowledge" => {
            if let Some(i) = incidents
                .get_mut(&dedup)
                .filter(|i| i.status == "triggered")
            {
                i.status = "acknowledged".to_owned();
            }
        }
        _ => {
            if let Some(i) = incidents.get_mut(&dedup) {
                i.status = "resolved".to_owned();
            }
        }
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(
            json!({ "status": "success", "message": "Event processed", "dedup_key": dedup }),
        ),
    )
        .into_response()
}
