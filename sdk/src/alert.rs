//! [`Alert`]: the typed view of an `alert.firing` or `alert.resolved` event, as GRACE's
//! Alertmanager receiver (`POST /v1/sources/alertmanager`) makes it, and [`AlertError`], why an
//! event cannot be read as one.
//!
//! The receiver turns each alert of a notification into one event: `event_type`
//! `alert.firing` or `alert.resolved`, `source` `alertmanager`, `resource` the first non-empty
//! label of `service`, `job`, `instance`, else `alertname`, and this payload (times in
//! milliseconds since the Unix epoch, `null` when Alertmanager left them unset):
//!
//! ```json
//! { "alertname": "HighLatency", "status": "firing",
//!   "labels": { "alertname": "HighLatency", "service": "api-service", "severity": "page" },
//!   "annotations": { "summary": "p95 above 500 ms", "value": "912.4" },
//!   "fingerprint": "7f0e0e9b2ae8b1f2", "starts_at": 1767225900123, "ends_at": null,
//!   "generator_url": "http://prometheus:9090/graph?g0.expr=...", "group_key": "{}:{...}" }
//! ```
//!
//! Alertmanager carries no number of its own: an alert's value is what its rule wrote into an
//! annotation. [`Alert::value`] reads the annotation [`VALUE_ANNOTATION`] (`value`), which a
//! Prometheus rule fills with `value: "{{ $value }}"`; [`Alert::annotation_f64`] reads any other.

use std::fmt;

use serde::Deserialize;

use crate::{Labels, TriggerEvent};

/// The event type of a firing alert.
pub const FIRING: &str = "alert.firing";
/// The event type of a resolved alert.
pub const RESOLVED: &str = "alert.resolved";
/// The source of the Alertmanager receiver's events.
pub const SOURCE: &str = "alertmanager";
/// The annotation [`Alert::value`] reads: a Prometheus rule sets it with
/// `annotations: { value: "{{ $value }}" }`.
pub const VALUE_ANNOTATION: &str = "value";

/// Whether an alert is active or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Active (`alert.firing`).
    Firing,
    /// Over (`alert.resolved`).
    Resolved,
}

impl AlertStatus {
    /// As Alertmanager spells it: `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One Alertmanager alert, read from the event the receiver made of it.
///
/// ```
/// use grace_sdk::{TriggerEvent, alert::{Alert, AlertStatus}};
/// use serde_json::json;
///
/// let event = TriggerEvent::new("alert.firing", "api-service")
///     .source("alertmanager")
///     .payload(json!({
///         "alertname": "HighLatency", "status": "firing",
///         "labels": { "alertname": "HighLatency", "service": "api-service" },
///         "annotations": { "value": "912.4" },
///         "fingerprint": "7f0e0e9b2ae8b1f2", "starts_at": 1_767_225_900_123u64, "ends_at": null,
///     }));
/// let alert = Alert::from_event(&event)?;
/// assert_eq!(alert.status, AlertStatus::Firing);
/// assert_eq!(alert.alertname.as_deref(), Some("HighLatency"));
/// assert_eq!(alert.label("service"), Some("api-service"));
/// assert_eq!(alert.starts_at, Some(1_767_225_900_123));
/// assert_eq!(alert.value()?, Some(912.4));
/// # Ok::<(), grace_sdk::alert::AlertError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Alert {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// The `alertname` label; `None` when the alert has none (or it is empty).
    pub alertname: Option<String>,
    /// The alert's labels: its identity (`alertname`, `service`, `severity`...).
    pub labels: Labels,
    /// The alert's annotations: its description (`summary`, `value`...).
    pub annotations: Labels,
    /// When it started firing (Alertmanager's `startsAt`), in milliseconds since the Unix epoch;
    /// `None` when unset.
    pub starts_at: Option<u64>,
    /// When it was resolved (`endsAt`), in milliseconds; `None` when unset, as it is while the
    /// alert fires.
    pub ends_at: Option<u64>,
    /// A hash of its labels, the same on every re-send of the alert.
    pub fingerprint: String,
    /// The rule that produced it (`generatorURL`); empty when Alertmanager sent none.
    pub generator_url: String,
    /// The notification group it came in; empty when Alertmanager sent none.
    pub group_key: String,
}

/// The receiver's payload, as sent; `null` and absent read the same.
#[derive(Deserialize)]
struct Payload {
    alertname: Option<String>,
    status: AlertStatus,
    labels: Labels,
    #[serde(default)]
    annotations: Option<Labels>,
    starts_at: Option<u64>,
    ends_at: Option<u64>,
    fingerprint: String,
    #[serde(default)]
    generator_url: Option<String>,
    #[serde(default)]
    group_key: Option<String>,
}

impl Alert {
    /// Whether `event` is one the Alertmanager receiver made: type `alert.firing` or
    /// `alert.resolved` from source `alertmanager`. A collector's events never are: the host
    /// sets their source to the collector's name.
    pub fn is_alert(event: &TriggerEvent) -> bool {
        event.source == SOURCE && (event.event_type == FIRING || event.event_type == RESOLVED)
    }

    /// Reads `event` as an alert.
    ///
    /// Fails with [`AlertError::NotAnAlert`] for any other event (see [`Alert::is_alert`]), and
    /// with [`AlertError::Payload`] when the payload is not the receiver's (a required field
    /// missing or of the wrong type), or when its status disagrees with the event type.
    pub fn from_event(event: &TriggerEvent) -> Result<Alert, AlertError> {
        if !Alert::is_alert(event) {
            return Err(AlertError::NotAnAlert {
                event_type: event.event_type.clone(),
                source: event.source.clone(),
            });
        }
        let payload: Payload = serde_json::from_str(&event.payload).map_err(|e| {
            AlertError::Payload(format!(
                "the payload is not the Alertmanager receiver's: {e}"
            ))
        })?;
        let expected = if event.event_type == FIRING {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        if payload.status != expected {
            return Err(AlertError::Payload(format!(
                "the payload's `status` is `{}` in an `{}` event",
                payload.status.as_str(),
                event.event_type
            )));
        }
        Ok(Alert {
            status: payload.status,
            alertname: payload.alertname.filter(|n| !n.is_empty()),
            labels: payload.labels,
            annotations: payload.annotations.unwrap_or_default(),
            starts_at: payload.starts_at,
            ends_at: payload.ends_at,
            fingerprint: payload.fingerprint,
            generator_url: payload.generator_url.unwrap_or_default(),
            group_key: payload.group_key.unwrap_or_default(),
        })
    }

    /// Whether the alert is firing.
    pub fn is_firing(&self) -> bool {
        self.status == AlertStatus::Firing
    }

    /// The label `name`, if the alert has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// The annotation `name`, if the alert has it.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations.get(name).map(String::as_str)
    }

    /// The alert's value: the number in its [`VALUE_ANNOTATION`] (`value`) annotation.
    ///
    /// `Ok(None)` when the alert has no such annotation (its rule does not set one): the
    /// playbook then measures for itself. See [`Alert::annotation_f64`] for what parses.
    ///
    /// ```
    /// # use grace_sdk::{TriggerEvent, alert::Alert};
    /// # use serde_json::json;
    /// # let event = |annotations| TriggerEvent::new("alert.firing", "api-service")
    /// #     .source("alertmanager")
    /// #     .payload(json!({ "status": "firing", "labels": {}, "annotations": annotations,
    /// #                      "fingerprint": "0", "starts_at": null, "ends_at": null }));
    /// let with = Alert::from_event(&event(json!({ "value": "912.4" })))?;
    /// assert_eq!(with.value()?, Some(912.4));
    /// let without = Alert::from_event(&event(json!({ "summary": "slow" })))?;
    /// assert_eq!(without.value()?, None);
    /// let humanized = Alert::from_event(&event(json!({ "value": "1.2k" })))?;
    /// assert_eq!(
    ///     humanized.value().unwrap_err().to_string(),
    ///     "the alert's annotation `value` is not a number: `1.2k`"
    /// );
    /// # Ok::<(), grace_sdk::alert::AlertError>(())
    /// ```
    pub fn value(&self) -> Result<Option<f64>, AlertError> {
        self.annotation_f64(VALUE_ANNOTATION)
    }

    /// The number in the annotation `name`; `Ok(None)` when the alert has no such annotation.
    ///
    /// The text, trimmed, must be a finite decimal number as Prometheus' `{{ $value }}` writes
    /// it (`912.4`, `-3`, `1.5e+06`); anything else, `NaN`, `+Inf` or a humanized `1.2k`
    /// included, is [`AlertError::Value`] naming the annotation, never a silent `None`.
    pub fn annotation_f64(&self, name: &str) -> Result<Option<f64>, AlertError> {
        let Some(text) = self.annotation(name) else {
            return Ok(None);
        };
        match text.trim().parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(Some(value)),
            _ => Err(AlertError::Value {
                annotation: name.to_owned(),
                text: text.chars().take(MAX_QUOTED_CHARS).collect(),
            }),
        }
    }
}

/// The most characters of an annotation an error quotes.
const MAX_QUOTED_CHARS: usize = 64;

impl TriggerEvent {
    /// This event read as an Alertmanager alert: see [`Alert::from_event`].
    pub fn alert(&self) -> Result<Alert, AlertError> {
        Alert::from_event(self)
    }
}

/// Why an event could not be read as an alert, or an alert's value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlertError {
    /// The event is not one of the Alertmanager receiver's.
    NotAnAlert {
        /// Its type.
        event_type: String,
        /// Its source.
        source: String,
    },
    /// The payload is not the receiver's: what is wrong with it.
    Payload(String),
    /// An annotation that should hold a number does not.
    Value {
        /// The annotation's name.
        annotation: String,
        /// Its text (at most 64 characters of it).
        text: String,
    },
}

impl fmt::Display for AlertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertError::NotAnAlert { event_type, source } => write!(
                f,
                "the event is not an alert: type `{event_type}` from source `{source}` \
                 (alerts are `{FIRING}` or `{RESOLVED}` from `{SOURCE}`)"
            ),
            AlertError::Payload(message) => write!(f, "alert event: {message}"),
            AlertError::Value { annotation, text } => write!(
                f,
                "the alert's annotation `{annotation}` is not a number: `{text}`"
            ),
        }
    }
}

impl std::error::Error for AlertError {}

impl From<AlertError> for crate::Error {
    fn from(error: AlertError) -> Self {
        crate::Error::Message(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// An event as the receiver makes it (`runtime/server/src/sources/alertmanager.rs`).
    fn firing() -> Value {
        json!({
            "alertname": "HighLatency", "status": "firing",
            "labels": { "alertname": "HighLatency", "service": "api-service", "severity": "page" },
            "annotations": { "summary": "p95 above 500 ms", "value": "912.4" },
            "fingerprint": "7f0e0e9b2ae8b1f2", "starts_at": 1_767_225_900_123u64, "ends_at": null,
            "generator_url": "http://prometheus:9090/graph", "group_key": "{}:{alertname=\"HighLatency\"}",
        })
    }

    fn event(event_type: &str, payload: Value) -> TriggerEvent {
        TriggerEvent::new(event_type, "api-service")
            .source("alertmanager")
            .actor("grace")
            .payload(payload)
    }

    #[test]
    fn a_firing_alert_is_read_with_every_field() {
        let alert = event(FIRING, firing()).alert().unwrap();
        assert_eq!(alert.status, AlertStatus::Firing);
        assert!(alert.is_firing());
        assert_eq!(alert.alertname.as_deref(), Some("HighLatency"));
        assert_eq!(alert.label("severity"), Some("page"));
        assert_eq!(alert.label("team"), None);
        assert_eq!(alert.annotation("summary"), Some("p95 above 500 ms"));
        assert_eq!(alert.starts_at, Some(1_767_225_900_123));
        assert_eq!(alert.ends_at, None);
        assert_eq!(alert.fingerprint, "7f0e0e9b2ae8b1f2");
        assert_eq!(alert.generator_url, "http://prometheus:9090/graph");
        assert_eq!(alert.group_key, "{}:{alertname=\"HighLatency\"}");
        assert_eq!(alert.value().unwrap(), Some(912.4));
    }

    #[test]
    fn a_resolved_alert_has_its_end() {
        let mut payload = firing();
        payload["status"] = json!("resolved");
        payload["ends_at"] = json!(1_767_226_140_000u64);
        let alert = event(RESOLVED, payload).alert().unwrap();
        assert_eq!(alert.status, AlertStatus::Resolved);
        assert!(!alert.is_firing());
        assert_eq!(alert.ends_at, Some(1_767_226_140_000));
    }

    #[test]
    fn optional_fields_may_be_null_or_absent() {
        let payload = json!({
            "alertname": null, "status": "firing", "labels": { "job": "checkout" },
            "annotations": null, "fingerprint": "1b3c7d2e9f001122", "starts_at": null,
            "ends_at": null, "generator_url": null,
        });
        let alert = event(FIRING, payload).alert().unwrap();
        assert_eq!(alert.alertname, None);
        assert!(alert.annotations.is_empty());
        assert_eq!(alert.starts_at, None);
        assert_eq!(
            (alert.generator_url.as_str(), alert.group_key.as_str()),
            ("", "")
        );
        assert_eq!(alert.value().unwrap(), None);
    }

    #[test]
    fn other_events_are_not_alerts() {
        let metric = TriggerEvent::new("metrics.latency", "api-service")
            .source("prometheus")
            .payload(json!({ "value": 912.0 }));
        assert!(!Alert::is_alert(&metric));
        assert_eq!(
            metric.alert().unwrap_err().to_string(),
            "the event is not an alert: type `metrics.latency` from source `prometheus` \
             (alerts are `alert.firing` or `alert.resolved` from `alertmanager`)"
        );
        // The right type from another source (a collector, a user) is not the receiver's.
        let posed = event(FIRING, firing()).source("push");
        assert!(matches!(
            posed.alert(),
            Err(AlertError::NotAnAlert { source, .. }) if source == "push"
        ));
    }

    #[test]
    fn a_payload_that_is_not_the_receivers_is_refused_naming_the_field() {
        let mut payload = firing();
        payload.as_object_mut().unwrap().remove("labels");
        let e = event(FIRING, payload).alert().unwrap_err();
        assert!(matches!(e, AlertError::Payload(_)), "{e:?}");
        assert!(e.to_string().contains("missing field `labels`"), "{e}");

        let mut payload = firing();
        payload["starts_at"] = json!("2026-01-01T00:05:00Z");
        let e = event(FIRING, payload).alert().unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");

        let e = event(RESOLVED, firing()).alert().unwrap_err();
        assert_eq!(
            e.to_string(),
            "alert event: the payload's `status` is `firing` in an `alert.resolved` event"
        );
    }

    #[test]
    fn values_parse_as_prometheus_writes_them() {
        for (text, value) in [
            ("912.4", 912.4),
            (" 3 ", 3.0),
            ("-0.5", -0.5),
            ("1.5e+06", 1.5e6),
        ] {
            let mut payload = firing();
            payload["annotations"]["value"] = json!(text);
            let alert = event(FIRING, payload).alert().unwrap();
            assert_eq!(alert.value().unwrap(), Some(value), "{text}");
        }
    }

    #[test]
    fn a_value_that_does_not_parse_is_an_error_naming_the_annotation() {
        for text in ["1.2k", "", "NaN", "+Inf", "912 ms"] {
            let mut payload = firing();
            payload["annotations"]["value"] = json!(text);
            let alert = event(FIRING, payload).alert().unwrap();
            assert_eq!(
                alert.value(),
                Err(AlertError::Value {
                    annotation: "value".into(),
                    text: text.into()
                }),
                "{text}"
            );
        }
        let alert = event(FIRING, firing()).alert().unwrap();
        assert_eq!(
            alert.annotation_f64("summary").unwrap_err().to_string(),
            "the alert's annotation `summary` is not a number: `p95 above 500 ms`"
        );
        assert_eq!(alert.annotation_f64("p99").unwrap(), None);
    }

    #[test]
    fn a_long_annotation_is_quoted_in_part() {
        let mut payload = firing();
        payload["annotations"]["value"] = json!("x".repeat(10_000));
        let e = event(FIRING, payload).alert().unwrap().value().unwrap_err();
        assert!(matches!(&e, AlertError::Value { text, .. } if text.len() == MAX_QUOTED_CHARS));
    }

    #[test]
    fn alert_errors_convert_to_the_sdk_error_with_question_mark() {
        fn value(event: &TriggerEvent) -> crate::Result<Option<f64>> {
            Ok(event.alert()?.value()?)
        }
        let metric = TriggerEvent::new("metrics.latency", "api");
        assert!(
            value(&metric)
                .unwrap_err()
                .to_string()
                .starts_with("the event is not an alert")
        );
    }
}
