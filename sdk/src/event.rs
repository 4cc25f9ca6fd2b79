//! [`TriggerEvent`]: what starts a playbook, and what a collector emits.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::playbook::grace::playbook::types as wit;
use crate::{Error, Result};

/// Something that happened, as seen by GRACE: a metric crossing a threshold, an alert firing,
/// a container turning unhealthy.
///
/// A playbook receives the event that matched its trigger. A collector builds events with
/// [`TriggerEvent::new`] and returns them from [`Collector::collect`](crate::Collector::collect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerEvent {
    /// What kind of event this is, dotted, e.g. `metrics.latency` or `alert.firing`.
    pub event_type: String,
    /// Where it came from, e.g. `prometheus`, `alertmanager`, `collector`.
    pub source: String,
    /// Who or what produced it, e.g. a collector's name or a user.
    pub actor: String,
    /// The resource it is about, e.g. a service, a group, a container.
    pub resource: String,
    /// Event details as a JSON document, usually an object with a `value`.
    pub payload: String,
    /// When it happened, in milliseconds since the Unix epoch (UTC).
    pub timestamp: u64,
}

impl TriggerEvent {
    /// A new event about `resource`, for a collector to emit.
    ///
    /// The payload starts as `{}`; set it with [`payload`](Self::payload). The source starts as
    /// `collector` and the actor empty: the host sets both the source and the actor of every
    /// event a collector emits to the collector's name, whatever the guest wrote, so a collector
    /// cannot pose as another source (`alertmanager`) or actor. The timestamp starts at 0, which means "now": the SDK stamps such events with the
    /// run clock's time when `collect` returns. Set it with [`timestamp`](Self::timestamp) to
    /// date an event by its sample instead.
    ///
    /// ```
    /// use grace_sdk::TriggerEvent;
    /// use serde_json::json;
    ///
    /// let event = TriggerEvent::new("metrics.latency", "api-service")
    ///     .payload(json!({ "value": 912.0 }))
    ///     .timestamp(1_767_225_900_000);
    /// assert_eq!(event.payload_f64("value").unwrap(), 912.0);
    /// ```
    #[must_use]
    pub fn new(event_type: impl Into<String>, resource: impl Into<String>) -> Self {
        TriggerEvent {
            event_type: event_type.into(),
            source: "collector".to_owned(),
            actor: String::new(),
            resource: resource.into(),
            payload: "{}".to_owned(),
            timestamp: 0,
        }
    }

    /// Sets the payload to a JSON document (usually built with [`serde_json::json!`]).
    #[must_use]
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload.to_string();
        self
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn timestamp(mut self, millis: u64) -> Self {
        self.timestamp = millis;
        self
    }

    /// Sets the source. For a collector's events the host replaces it with the collector's name
    /// (see [`new`](Self::new)); put the system the collector read in the payload instead.
    #[must_use]
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Sets the actor (the host replaces it with the collector's name for collector events).
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// The payload, parsed. An empty payload reads as `{}`.
    pub fn payload_json(&self) -> Result<Value> {
        if self.payload.trim().is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_str(&self.payload)
            .map_err(|e| Error::msg(format_args!("event payload is not valid JSON: {e}")))
    }

    /// The payload, deserialized into `T`.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.payload_json()?).map_err(|e| {
            Error::msg(format_args!(
                "event payload does not have the expected shape: {e}"
            ))
        })
    }

    /// The number at `key` in the payload: a JSON number, or a string holding one.
    ///
    /// `key` is a top-level field name, or a JSON pointer such as `/labels/p95` when it starts
    /// with `/`.
    pub fn payload_f64(&self, key: &str) -> Result<f64> {
        match self.payload_field(key)? {
            Value::Number(n) => n.as_f64().ok_or_else(|| {
                Error::msg(format_args!("event payload field `{key}` is out of range"))
            }),
            Value::String(s) => s.trim().parse().map_err(|_| {
                Error::msg(format_args!(
                    "event payload field `{key}` is not a number: `{s}`"
                ))
            }),
            other => Err(Error::msg(format_args!(
                "event payload field `{key}` is not a number: `{other}`"
            ))),
        }
    }

    /// The string at `key` in the payload (a number or boolean is given as its JSON text).
    ///
    /// `key` is a top-level field name, or a JSON pointer when it starts with `/`.
    pub fn payload_str(&self, key: &str) -> Result<String> {
        match self.payload_field(key)? {
            Value::String(s) => Ok(s),
            v @ (Value::Number(_) | Value::Bool(_)) => Ok(v.to_string()),
            other => Err(Error::msg(format_args!(
                "event payload field `{key}` is not a string: `{other}`"
            ))),
        }
    }

    fn payload_field(&self, key: &str) -> Result<Value> {
        let mut payload = self.payload_json()?;
        let field = if key.starts_with('/') {
            payload.pointer_mut(key)
        } else {
            payload.get_mut(key)
        };
        match field {
            Some(Value::Null) | None => Err(Error::msg(format_args!(
                "event payload has no field `{key}`"
            ))),
            Some(v) => Ok(v.take()),
        }
    }

    pub(crate) fn from_wit(event: wit::TriggerEvent) -> Self {
        TriggerEvent {
            event_type: event.event_type,
            source: event.source,
            actor: event.actor,
            resource: event.resource,
            payload: event.payload,
            timestamp: event.timestamp,
        }
    }

    pub(crate) fn into_wit(self) -> wit::TriggerEvent {
        wit::TriggerEvent {
            event_type: self.event_type,
            source: self.source,
            actor: self.actor,
            resource: self.resource,
            payload: self.payload,
            timestamp: self.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(payload: Value) -> TriggerEvent {
        TriggerEvent::new("metrics.latency", "api-service").payload(payload)
    }

    #[test]
    fn new_events_default_to_the_collector_source_and_an_empty_object() {
        let e = TriggerEvent::new("metrics.latency", "api-service");
        assert_eq!(e.source, "collector");
        assert_eq!(e.payload_json().unwrap(), json!({}));
        assert_eq!(e.timestamp, 0);
    }

    #[test]
    fn payload_f64_reads_numbers_and_numeric_strings() {
        let e = event(json!({ "value": 912.5, "text": "250", "nested": { "p95": 3 } }));
        assert_eq!(e.payload_f64("value").unwrap(), 912.5);
        assert_eq!(e.payload_f64("text").unwrap(), 250.0);
        assert_eq!(e.payload_f64("/nested/p95").unwrap(), 3.0);
    }

    #[test]
    fn payload_errors_name_the_key() {
        let e = event(json!({ "value": "high" }));
        assert_eq!(
            e.payload_f64("value").unwrap_err().to_string(),
            "event payload field `value` is not a number: `high`"
        );
        assert_eq!(
            e.payload_str("missing").unwrap_err().to_string(),
            "event payload has no field `missing`"
        );
    }

    #[test]
    fn payload_as_deserializes_the_whole_payload() {
        #[derive(serde::Deserialize)]
        struct Latency {
            value: f64,
        }
        let e = event(json!({ "value": 912.0, "metric": "p95_latency_ms" }));
        assert_eq!(e.payload_as::<Latency>().unwrap().value, 912.0);
    }
}
