//! `TriggerEvent`: something that happened, as GRACE sees it, and its validation.
//!
//! Events cross boundaries (files, HTTP bodies, collectors' output), so every one is checked
//! before anything acts on it, and errors name the field. In JSON the payload is an object and
//! the timestamp is RFC 3339 (`2026-01-01T00:05:00Z`) or milliseconds since the epoch; in WIT the
//! payload is that object's JSON text and the timestamp is milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Longest `event_type`.
pub const MAX_EVENT_TYPE_BYTES: usize = 128;
/// Longest `source`, `actor` or `resource`.
pub const MAX_NAME_BYTES: usize = 256;
/// Largest payload, as JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Latest time an event may carry: `9999-12-31T23:59:59.999Z`, the last instant RFC 3339 (four
/// year digits) can write. Every boundary checks timestamps against it with [`check_timestamp`].
pub const MAX_TIMESTAMP_MILLIS: u64 = 253_402_300_799_999;

/// The one rule for a timestamp crossing a boundary (API events, push formats, collectors,
/// Alertmanager, polled sources, `grace run --event`): milliseconds since the epoch, at most
/// [`MAX_TIMESTAMP_MILLIS`]. The error says what is wrong; the caller names the field.
pub fn check_timestamp(millis: u64) -> Result<u64, String> {
    if millis > MAX_TIMESTAMP_MILLIS {
        return Err(format!(
            "`{millis}` ms since the epoch is after 9999-12-31, the latest time an event may carry"
        ));
    }
    Ok(millis)
}

/// The one rule for a sample value crossing a boundary: a finite number (JSON, which events
/// carry, cannot hold NaN or infinities). The caller names the field.
pub fn check_number(value: f64) -> Result<f64, String> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!(
            "`{value}` is not a finite number; events carry JSON numbers, which cannot hold NaN or infinities"
        ))
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerEvent {
    /// Dotted kind, e.g. `metrics.latency`.
    pub event_type: String,
    /// Where it came from, e.g. `prometheus`.
    pub source: String,
    /// Who produced it, e.g. a collector's name.
    pub actor: String,
    /// What it is about, e.g. a service.
    pub resource: String,
    /// Details: always a JSON object.
    pub payload: serde_json::Value,
    /// When it happened, in milliseconds since the Unix epoch.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub timestamp: u64,
}

/// Why an event was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    /// Not JSON, or not the shape of an event.
    #[error("event is not valid: {0}")]
    Syntax(String),
    /// A field is missing, empty, too long or malformed.
    #[error("event field `{field}`: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> EventError {
    EventError::Invalid {
        field,
        message: message.into(),
    }
}

/// Writes RFC 3339 when it can; a time past [`MAX_TIMESTAMP_MILLIS`] (which no boundary lets in,
/// but a record written by an older version might hold) as its number of milliseconds, which
/// reads back as the same time, so that serializing never fails.
fn serialize_rfc3339<S: serde::Serializer>(millis: &u64, s: S) -> Result<S::Ok, S::Error> {
    if *millis > MAX_TIMESTAMP_MILLIS {
        s.serialize_u64(*millis)
    } else {
        s.serialize_str(&format_millis(*millis))
    }
}

/// Formats milliseconds since the epoch as RFC 3339 with milliseconds.
///
/// Total: RFC 3339 cannot write a year past 9999 (formatting one used to panic), so a later
/// time is written as `+<millis>ms`, which no one can mistake for a date.
pub fn format_millis(millis: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if millis <= MAX_TIMESTAMP_MILLIS
        && let Some(time) = UNIX_EPOCH.checked_add(Duration::from_millis(millis))
        && write!(out, "{}", humantime::format_rfc3339_millis(time)).is_ok()
    {
        return out;
    }
    format!("+{millis}ms")
}

/// Parses RFC 3339 into milliseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    let d = time.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(d.as_millis()).ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    event_type: String,
    source: String,
    actor: String,
    resource: String,
    #[serde(default)]
    payload: Option<serde_json::Value>,
    /// Any JSON, so that a wrong kind of timestamp is an error naming the field, not a shape
    /// error about the whole event.
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
}

/// Reads a JSON timestamp: whole milliseconds or RFC 3339 text, in range.
fn timestamp_of(value: &serde_json::Value) -> Result<u64, EventError> {
    let millis = match value {
        serde_json::Value::String(t) => parse_rfc3339(t).ok_or_else(|| {
            invalid(
                "timestamp",
                format!(
                    "`{}` is not an RFC 3339 time like `2026-01-01T00:05:00Z`",
                    shorten(t)
                ),
            )
        })?,
        serde_json::Value::Number(n) => n.as_u64().ok_or_else(|| {
            invalid(
                "timestamp",
                format!("`{n}` is not a whole number of milliseconds since the epoch"),
            )
        })?,
        _ => {
            return Err(invalid(
                "timestamp",
                "must be milliseconds since the epoch or an RFC 3339 time",
            ));
        }
    };
    check_timestamp(millis).map_err(|m| invalid("timestamp", m))
}

/// At most 64 characters of `text`, for error messages.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 64 {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(64).collect::<String>())
    }
}

impl TriggerEvent {
    /// Parses one event from JSON. A missing timestamp becomes `now_millis`.
    pub fn from_json(text: &str, now_millis: u64) -> Result<TriggerEvent, EventError> {
        let raw: RawEvent =
            serde_json::from_str(text).map_err(|e| EventError::Syntax(e.to_string()))?;
        TriggerEvent::from_raw(raw, now_millis)
    }

    /// Parses a JSON value that is one event.
    pub fn from_value(
        value: serde_json::Value,
        now_millis: u64,
    ) -> Result<TriggerEvent, EventError> {
        let raw: RawEvent =
            serde_json::from_value(value).map_err(|e| EventError::Syntax(e.to_string()))?;
        TriggerEvent::from_raw(raw, now_millis)
    }

    fn from_raw(raw: RawEvent, now_millis: u64) -> Result<TriggerEvent, EventError> {
        let timestamp = match &raw.timestamp {
            None => now_millis,
            Some(value) => timestamp_of(value)?,
        };
        let event = TriggerEvent {
            event_type: raw.event_type,
            source: raw.source,
            actor: raw.actor,
            resource: raw.resource,
            payload: raw.payload.unwrap_or_else(|| serde_json::json!({})),
            timestamp,
        };
        event.validate()?;
        Ok(event)
    }

    /// Builds an event from a guest's WIT record (collectors), validating it.
    pub fn from_guest(
        event_type: String,
        source: String,
        actor: String,
        resource: String,
        payload: &str,
        timestamp: u64,
    ) -> Result<TriggerEvent, EventError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(invalid(
                "payload",
                format!(
                    "{} bytes is above the limit of {MAX_PAYLOAD_BYTES}",
                    payload.len()
                ),
            ));
        }
        let payload: serde_json::Value = serde_json::from_str(payload)
            .map_err(|e| invalid("payload", format!("not JSON: {e}")))?;
        let event = TriggerEvent {
            event_type,
            source,
            actor,
            resource,
            payload,
            timestamp,
        };
        event.validate()?;
        Ok(event)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), EventError> {
        let et = &self.event_type;
        if et.is_empty() {
            return Err(invalid("event_type", "must not be empty"));
        }
        if et.len() > MAX_EVENT_TYPE_BYTES {
            return Err(invalid(
                "event_type",
                format!(
                    "is {} bytes, above the limit of {MAX_EVENT_TYPE_BYTES}",
                    et.len()
                ),
            ));
        }
        if !et
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        {
            return Err(invalid(
                "event_type",
                format!("`{et}` may only hold lowercase letters, digits, `.`, `-` and `_`"),
            ));
        }
        for (field, value) in [
            ("source", &self.source),
            ("actor", &self.actor),
            ("resource", &self.resource),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(field, "must not be empty"));
            }
            if value.len() > MAX_NAME_BYTES {
                return Err(invalid(
                    field,
                    format!(
                        "is {} bytes, above the limit of {MAX_NAME_BYTES}",
                        value.len()
                    ),
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(invalid(field, "must not contain control characters"));
            }
        }
        check_timestamp(self.timestamp).map_err(|m| invalid("timestamp", m))?;
        if !self.payload.is_object() {
            return Err(invalid("payload", "must be a JSON object"));
        }
        let size = self.payload_text().len();
        if size > MAX_PAYLOAD_BYTES {
            return Err(invalid(
                "payload",
                format!("is {size} bytes, above the limit of {MAX_PAYLOAD_BYTES}"),
            ));
        }
        Ok(())
    }

    /// The payload as JSON text, as guests receive it.
    pub fn payload_text(&self) -> String {
        self.payload.to_string()
    }

    /// Whether the payload is within [`MAX_PAYLOAD_BYTES`]: what validation (and so every read
    /// of a stored event) requires. For code that adds to a payload after it was validated.
    pub fn payload_fits(&self) -> bool {
        self.payload_text().len() <= MAX_PAYLOAD_BYTES
    }
}

impl<'de> Deserialize<'de> for TriggerEvent {
    /// Reads an event the way [`TriggerEvent::from_value`] does, validating every field; a
    /// missing timestamp is an error here, since there is no clock to default it from.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawEvent::deserialize(d)?;
        if raw.timestamp.is_none() {
            return Err(serde::de::Error::missing_field("timestamp"));
        }
        TriggerEvent::from_raw(raw, 0).map_err(serde::de::Error::custom)
    }
}

/// Milliseconds since the epoch, now, by the system clock.
pub fn system_now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"event_type":"metrics.latency","source":"prometheus","actor":"latency-collector",
        "resource":"api-service","payload":{"value":912.5},"timestamp":"2026-01-01T00:05:00Z"}"#;

    #[test]
    fn a_well_formed_event_parses() {
        let e = TriggerEvent::from_json(GOOD, 0).unwrap();
        assert_eq!(e.event_type, "metrics.latency");
        assert_eq!(e.payload["value"], 912.5);
        assert_eq!(e.timestamp, 1_767_225_900_000);
        assert_eq!(format_millis(e.timestamp), "2026-01-01T00:05:00.000Z");
    }

    #[test]
    fn timestamp_may_be_millis_or_missing() {
        let e = TriggerEvent::from_json(
            r#"{"event_type":"a","source":"s","actor":"x","resource":"r","timestamp":5}"#,
            0,
        )
        .unwrap();
        assert_eq!(e.timestamp, 5);
        let e = TriggerEvent::from_json(
            r#"{"event_type":"a","source":"s","actor":"x","resource":"r"}"#,
            77,
        )
        .unwrap();
        assert_eq!(e.timestamp, 77);
        assert_eq!(e.payload, serde_json::json!({}));
    }

    #[test]
    fn bad_events_name_the_field() {
        let cases = [
            (GOOD.replace("metrics.latency", ""), "event_type"),
            (
                GOOD.replace("metrics.latency", "Metrics Latency"),
                "event_type",
            ),
            (GOOD.replace("\"prometheus\"", "\"  \""), "source"),
            (GOOD.replace("{\"value\":912.5}", "[1,2]"), "payload"),
            (
                GOOD.replace("2026-01-01T00:05:00Z", "yesterday"),
                "timestamp",
            ),
        ];
        for (text, field) in cases {
            match TriggerEvent::from_json(&text, 0) {
                Err(EventError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("expected an error about `{field}`, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_and_garbage_are_syntax_errors() {
        let e = TriggerEvent::from_json(&GOOD.replace("\"actor\"", "\"actr\""), 0).unwrap_err();
        assert!(e.to_string().contains("actr"), "{e}");
        assert!(matches!(
            TriggerEvent::from_json("{", 0),
            Err(EventError::Syntax(_))
        ));
    }

    #[test]
    fn oversized_payloads_are_refused() {
        let big = "x".repeat(MAX_PAYLOAD_BYTES + 1);
        let text = GOOD.replace("{\"value\":912.5}", &format!("{{\"blob\":\"{big}\"}}"));
        assert!(matches!(
            TriggerEvent::from_json(&text, 0),
            Err(EventError::Invalid {
                field: "payload",
                ..
            })
        ));
    }

    #[test]
    fn a_timestamp_after_year_9999_is_refused_naming_the_field() {
        for ts in [
            "253402300800000".to_owned(),
            u64::MAX.to_string(),
            "\"9999-12-31T23:59:59-23:59\"".to_owned(),
        ] {
            let text = GOOD.replace("\"2026-01-01T00:05:00Z\"", &ts);
            match TriggerEvent::from_json(&text, 0) {
                Err(EventError::Invalid {
                    field: "timestamp",
                    message,
                }) => assert!(
                    message.contains("after 9999-12-31") || message.contains("RFC 3339"),
                    "{message}"
                ),
                other => panic!("{ts}: expected a timestamp error, got {other:?}"),
            }
        }
        let last = GOOD.replace(
            "\"2026-01-01T00:05:00Z\"",
            &MAX_TIMESTAMP_MILLIS.to_string(),
        );
        let e = TriggerEvent::from_json(&last, 0).unwrap();
        assert_eq!(format_millis(e.timestamp), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_timestamp_of_the_wrong_kind_is_an_error_naming_the_field() {
        for ts in ["-1", "1.5", "true", "{}"] {
            let text = GOOD.replace("\"2026-01-01T00:05:00Z\"", ts);
            assert!(
                matches!(
                    TriggerEvent::from_json(&text, 0),
                    Err(EventError::Invalid {
                        field: "timestamp",
                        ..
                    })
                ),
                "{ts}"
            );
        }
    }

    #[test]
    fn formatting_any_time_is_total() {
        assert_eq!(format_millis(u64::MAX), format!("+{}ms", u64::MAX));
        assert_eq!(
            format_millis(MAX_TIMESTAMP_MILLIS + 1),
            "+253402300800000ms"
        );
        let event = TriggerEvent {
            timestamp: u64::MAX,
            ..TriggerEvent::from_json(GOOD, 0).unwrap()
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(&u64::MAX.to_string()), "{json}");
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        assert!(check_number(f64::NAN).is_err());
        assert!(check_number(f64::INFINITY).is_err());
        assert_eq!(check_number(-1.5), Ok(-1.5));
    }
}
