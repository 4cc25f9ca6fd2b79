//! Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`): `trigger`, `acknowledge`
//! and `resolve`, all naming one `dedup_key`, so that what GRACE resolved is resolved in
//! PagerDuty. The `routing_key` in the body is the credential (no header).
//!
//! PagerDuty answers `202 {"status":"success","message":"Event processed","dedup_key":…}`;
//! `400` (an invalid event) is final; `429` and `5xx` are retried. PagerDuty documents no
//! `Retry-After`, so a `429` waits [`crate::http::DEFAULT_RETRY_AFTER`] (30 s, as its rate-limit
//! page advises).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::VENDOR;
use crate::http::Http;
use crate::text::{cut, cut_bytes, printable};
use crate::{DeliveryError, Secret};

/// `dedup_key`'s limit, in characters.
pub const MAX_DEDUP_KEY: usize = 255;
/// `payload.summary`'s limit, in characters.
pub const MAX_SUMMARY: usize = 1024;
/// The largest event PagerDuty takes (512 KB); GRACE's stay far below: custom details are cut
/// to this.
pub const MAX_DETAILS_BYTES: usize = 16 * 1024;

/// What to do to the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open it (or add to it).
    Trigger,
    /// Someone is on it.
    Acknowledge,
    /// It is over.
    Resolve,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
        }
    }
}

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `critical`.
    Critical,
    /// `error`.
    Error,
    /// `warning`.
    Warning,
    /// `info`.
    Info,
}

/// What a `trigger` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// One line (cut to 1,024 characters).
    pub summary: String,
    /// The affected resource (`payload.source`).
    pub source: String,
    /// How bad.
    pub severity: Severity,
    /// `payload.component` (the playbook).
    pub component: Option<String>,
    /// `payload.group`.
    pub group: Option<String>,
    /// `payload.class` (the event type).
    pub class: Option<String>,
    /// `payload.custom_details` (cut to [`MAX_DETAILS_BYTES`] when serialized).
    pub details: Map<String, Value>,
    /// A link to the run.
    pub link: Option<String>,
}

/// The client of one PagerDuty service's Events API v2 integration.
#[derive(Debug, Clone)]
pub struct EventsClient {
    http: Http,
    routing_key: Secret,
    url: String,
}

#[derive(Deserialize)]
struct Accepted {
    status: String,
}

/// Checks a `dedup_key`: 1 to 255 printable characters.
pub fn validate_dedup_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > MAX_DEDUP_KEY || key.chars().any(char::is_control) {
        Err("a dedup_key is 1 to 255 printable characters".to_owned())
    } else {
        Ok(())
    }
}

impl EventsClient {
    /// A client sending to `url` (`https://events.pagerduty.com/v2/enqueue` unless testing)
    /// with the integration's `routing_key` (32 characters).
    pub fn new(http: Http, routing_key: Secret, url: &str) -> Result<EventsClient, String> {
        let key = routing_key.expose();
        if key.len() != 32 || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("a PagerDuty routing key is 32 letters and digits".to_owned());
        }
        Ok(EventsClient {
            http,
            routing_key,
            url: url.to_owned(),
        })
    }

    /// Sends `action` for the incident `dedup_key`; a `trigger` needs `trigger`.
    pub async fn send(
        &self,
        action: Action,
        dedup_key: &str,
        trigger: Option<&Trigger>,
    ) -> Result<(), DeliveryError> {
        validate_dedup_key(dedup_key).map_err(|message| DeliveryError::Rejected {
            vendor: VENDOR,
            message,
        })?;
        let mut body = json!({
            "routing_key": self.routing_key.expose(),
            "event_action": action.name(),
            "dedup_key": dedup_key,
        });
        if action == Action::Trigger {
            let Some(t) = trigger else {
                return Err(DeliveryError::Rejected {
                    vendor: VENDOR,
                    message: "a trigger needs a summary, a source and a severity".to_owned(),
                });
            };
            body["payload"] = payload(t);
            body["client"] = json!("GRACE");
            if let Some(link) = &t.link {
                body["client_url"] = json!(link);
                body["links"] = json!([{ "href": link, "text": "The run in GRACE" }]);
            }
        }
        let request = self
            .http
            .client()
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_string());
        let answer = self.http.send(request).await?;
        let accepted: Accepted = answer.json(VENDOR)?;
        if accepted.status == "success" {
            Ok(())
        } else {
            Err(DeliveryError::Transient {
                vendor: VENDOR,
                message: format!(
                    "answered {} with status `{}`",
                    answer.status,
                    cut(&printable(&accepted.status), 100)
                ),
            })
        }
    }
}

fn payload(t: &Trigger) -> Value {
    let mut payload = json!({
        "summary": cut(&printable(&t.summary), MAX_SUMMARY),
        "source": cut(&printable(&t.source), 255),
        "severity": t.severity,
    });
    for (key, value) in [
        ("component", &t.component),
        ("group", &t.group),
        ("class", &t.class),
    ] {
        if let Some(value) = value {
            payload[key] = json!(cut(&printable(value), 255));
        }
    }
    if !t.details.is_empty() {
        let details = Value::Object(t.details.clone());
        let text = details.to_string();
        payload["custom_details"] = if text.len() <= MAX_DETAILS_BYTES {
            details
        } else {
            json!({ "truncated": cut_bytes(&text, MAX_DETAILS_BYTES) })
        };
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_payload_has_what_pagerduty_requires_cut_to_its_limits() {
        let t = Trigger {
            summary: "s".repeat(5000),
            source: "web-1".to_owned(),
            severity: Severity::Critical,
            component: Some("restart-web".to_owned()),
            group: None,
            class: Some("alert.firing".to_owned()),
            details: Map::from_iter([("outcome".to_owned(), json!("x".repeat(100_000)))]),
            link: None,
        };
        let p = payload(&t);
        assert_eq!(
            p["summary"].as_str().unwrap_or("").chars().count(),
            MAX_SUMMARY
        );
        assert_eq!(p["severity"], "critical");
        assert_eq!(p["component"], "restart-web");
        assert!(p.get("group").is_none());
        assert!(p["custom_details"].to_string().len() <= MAX_DETAILS_BYTES + 64);
    }

    #[test]
    fn dedup_keys_and_routing_keys_are_checked() {
        assert!(validate_dedup_key("grace/incident/inc-7").is_ok());
        assert!(validate_dedup_key("").is_err());
        assert!(validate_dedup_key(&"k".repeat(256)).is_err());
        assert!(validate_dedup_key("a\nb").is_err());
        let http = Http::new(VENDOR, std::time::Duration::from_secs(1));
        let Ok(http) = http else { panic!("no client") };
        assert!(EventsClient::new(http.clone(), Secret::new("short"), "http://x").is_err());
        assert!(
            EventsClient::new(
                http,
                Secret::new("e93facc04764012d7bfb002500d5d1a6"),
                "http://x"
            )
            .is_ok()
        );
    }
}
