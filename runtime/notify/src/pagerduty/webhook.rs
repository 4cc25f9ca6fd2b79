//! PagerDuty webhooks v3, as a source of events: `X-PagerDuty-Signature` holds one or more
//! `v1=<hex HMAC-SHA256 of the raw body>`, comma-separated while a secret is rotated; a request
//! is PagerDuty's when any `v1` matches. PagerDuty signs no timestamp: replays are refused by
//! the caller remembering `X-Webhook-Id` (repeated by PagerDuty's own retries, which are then
//! answered `2xx` without a second event).
//!
//! The body is one event: `{"event": {"id", "event_type", "resource_type", "occurred_at",
//! "data": {…}}}`. Incident events (`incident.triggered`, `incident.resolved`, …) carry the
//! incident in `data`: its `id`, `number`, `title`, `status`, `urgency`, `html_url` and
//! `service` (`id`, `summary`).

use serde_json::Value;

use crate::Secret;
use crate::signature::verify_hex;

/// PagerDuty's signature header.
pub const SIGNATURE_HEADER: &str = "x-pagerduty-signature";
/// The header naming one webhook delivery (the same on PagerDuty's retries).
pub const WEBHOOK_ID_HEADER: &str = "x-webhook-id";
/// PagerDuty's documented best-effort limit for a webhook body (256 KB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Whether `header` (the `X-PagerDuty-Signature` value) signs `body` under `secret`.
pub fn verify(secret: &Secret, header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else {
        return false;
    };
    // At most a few signatures during a rotation; more is not PagerDuty.
    header
        .split(',')
        .take(8)
        .filter_map(|s| s.trim().strip_prefix("v1="))
        .any(|hex| verify_hex(secret.expose().as_bytes(), &[body], hex))
}

/// The `X-PagerDuty-Signature` of `body`, as PagerDuty computes it (for tests).
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(crate::signature::hmac_sha256(
            secret.expose().as_bytes(),
            &[body]
        ))
    )
}

/// One webhook event, as GRACE keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// `event.id`: signed with the body, so what a delivery is taken once by (the
    /// `X-Webhook-Id` header is not signed).
    pub id: String,
    /// `event.event_type` (`incident.triggered`, `pagey.ping`, ...).
    pub event_type: String,
    /// `event.occurred_at` (RFC 3339).
    pub occurred_at: String,
    /// The service the incident is on (`data.service.summary`, else its id), for incident
    /// events.
    pub service: Option<String>,
    /// `event.data`, as sent (bounded by the body's limit).
    pub data: Value,
}

/// Why a body is not a PagerDuty webhook event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct WebhookError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn refuse(field: &'static str, message: &str) -> WebhookError {
    WebhookError {
        field,
        message: message.to_owned(),
    }
}

/// Reads a webhook body.
pub fn parse(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(refuse("event", "larger than 256 KB"));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|_| refuse("event", "the body is not JSON"))?;
    let event = value
        .get("event")
        .filter(|e| e.is_object())
        .ok_or_else(|| refuse("event", "missing"))?;
    let text = |field: &'static str, name: &str, max: usize| -> Result<String, WebhookError> {
        let v = event
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| refuse(field, "missing"))?;
        if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
            return Err(refuse(field, "empty, too long or not printable"));
        }
        Ok(v.to_owned())
    };
    let id = text("event.id", "id", 128)?;
    let event_type = text("event.event_type", "event_type", 128)?;
    if !event_type
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_'))
    {
        return Err(refuse(
            "event.event_type",
            "not an event type (lowercase words joined by `.`)",
        ));
    }
    let occurred_at = text("event.occurred_at", "occurred_at", 64)?;
    let data = event.get("data").cloned().unwrap_or(Value::Null);
    let service = data
        .pointer("/service/summary")
        .or_else(|| data.pointer("/service/id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control))
        .map(str::to_owned);
    Ok(WebhookEvent {
        id,
        event_type,
        occurred_at,
        service,
        data,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn any_v1_signature_in_the_header_may_match() {
        let secret = Secret::new("grace-pd-test-secret");
        let body =
            br#"{"event":{"id":"5ac64822-4adc-4fda-ade0-410becf0de4f","event_type":"pagey.ping"}}"#;
        let good = sign(&secret, body);
        assert_eq!(
            good,
            "v1=bddb7ce00c3024c4da763a65a410cd27a11dc9efdc017479cffa7d64123b5c12"
        );
        assert!(verify(&secret, Some(&good), body));
        assert!(verify(&secret, Some(&format!("v1=00ff, {good}")), body));
        assert!(!verify(&secret, Some("v1=00ff"), body));
        assert!(!verify(&secret, Some(&good.replace("v1=", "v2=")), body));
        assert!(!verify(&secret, None, body));
        assert!(!verify(&Secret::new("other"), Some(&good), body));
    }

    #[test]
    fn an_incident_event_names_its_service() {
        let body =
            br#"{"event":{"id":"01E","event_type":"incident.triggered","resource_type":"incident",
            "occurred_at":"2020-10-02T18:45:22.169Z","agent":null,"client":null,
            "data":{"id":"PGR0VU2","type":"incident","status":"triggered","title":"A bump",
                    "service":{"id":"PF9KMXH","summary":"API Service"},"urgency":"high"}}}"#;
        let e = parse(body).unwrap();
        assert_eq!(e.event_type, "incident.triggered");
        assert_eq!(e.service.as_deref(), Some("API Service"));
        assert_eq!(e.data["id"], "PGR0VU2");
        assert_eq!(parse(b"[]").unwrap_err().field, "event");
        assert_eq!(
            parse(br#"{"event":{"id":"1","event_type":"Incident Triggered","occurred_at":"x"}}"#)
                .unwrap_err()
                .field,
            "event.event_type"
        );
        assert_eq!(
            parse(br#"{"event":{"event_type":"incident.triggered","occurred_at":"x"}}"#)
                .unwrap_err()
                .field,
            "event.id"
        );
    }
}
