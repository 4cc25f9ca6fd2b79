//! Event sources: other systems' formats turned into validated [`TriggerEvent`]s.
//!
//! Each source parses what it receives, checks it completely (errors name the field, the JSON
//! path or the line), and returns events; the API hands them to
//! [`Intake::ingest_from`](crate::intake::Intake::ingest_from), the same all-or-nothing,
//! durable-before-`202` path as `POST /v1/events`. Polled sources send theirs over the
//! [`supervisor`]'s channel to [`Intake::ingest`](crate::intake::Intake::ingest).
//!
//! - [`alertmanager`]: Alertmanager's webhook (version 4), one event per alert, deduplicated;
//! - [`metrics`]: KPIs an application pushes, as Prometheus text or JSON, one event per sample;
//! - [`exposition`]: the Prometheus text exposition format (0.0.4) parser behind [`metrics`];
//! - [`poll`]: polled sources' schedule and retries; [`promql`], [`cloudwatch`], [`containers`]:
//!   the polled sources of `grace.toml` (enabled Wasm collectors are polled too, see
//!   `crate::collectors`);
//! - [`supervisor`]: the polled sources' tasks, their channel to the intake, every source's
//!   health ([`health`]).
//!
//! [`TriggerEvent`]: grace_engine::TriggerEvent

pub mod alertmanager;
pub mod cloudwatch;
mod config;
pub mod containers;
pub mod exposition;
pub mod health;
pub mod metrics;
pub mod poll;
pub mod promql;
pub mod supervisor;

use std::collections::BTreeMap;

use grace_engine::event::{EventError, parse_rfc3339};
use serde_json::{Map, Value};

use crate::error::ApiError;

pub use config::SourcesConfig;

/// A source's setting that cannot be used: its key (`sources.promql[0].every`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SettingError {
    /// The key, under its source's prefix.
    pub key: String,
    /// Why it cannot be used.
    pub message: String,
}

impl SettingError {
    /// `key` cannot be used, because `message`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> SettingError {
        SettingError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Labels, in name order (as events' payloads show them).
pub type Labels = BTreeMap<String, String>;

/// The labels that name an event's resource, most specific first.
const RESOURCE_LABELS: [&str; 3] = ["service", "job", "instance"];

/// Where an event's resource came from: a label, or the fallback (metric or alert name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This label.
    Label(&'static str),
    /// The fallback name.
    Fallback,
}

/// The first non-empty label of `service`, `job`, `instance`; else `fallback`.
///
/// An empty label value counts as absent, as it does in Prometheus.
pub fn resource_of<'a>(labels: &'a Labels, fallback: &'a str) -> (&'a str, Origin) {
    RESOURCE_LABELS
        .iter()
        .find_map(|name| {
            labels
                .get(*name)
                .filter(|v| !v.is_empty())
                .map(|v| (v.as_str(), Origin::Label(name)))
        })
        .unwrap_or((fallback, Origin::Fallback))
}

/// Prometheus' metric and label name rules, as the metrics grants check them: one description
/// for every place that reads a name.
pub use grace_model::grants::metrics::{is_label_name, is_metric_name};

/// Parses an RFC 3339 time into milliseconds since the epoch, with any UTC offset
/// (`2026-01-01T02:05:00+02:00`), lowercase `t`/`z`, and up to nanosecond precision (truncated).
/// `None` for anything else, including times before 1970.
pub fn parse_time(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_uppercase();
    // `[+-]HH:MM` at the end: parse the rest as UTC, then undo the offset. The suffix is checked
    // byte by byte, so it is ASCII and slicing before it cannot split a character.
    let b = text.as_bytes();
    let n = b.len();
    let (utc, offset_secs) = if n >= 25
        && matches!(b[n - 6], b'+' | b'-')
        && b[n - 3] == b':'
        && [n - 5, n - 4, n - 2, n - 1]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
    {
        let digits = |i: usize| i64::from(b[i] - b'0') * 10 + i64::from(b[i + 1] - b'0');
        let (hours, minutes) = (digits(n - 5), digits(n - 2));
        if hours > 23 || minutes > 59 {
            return None;
        }
        let secs = hours * 3600 + minutes * 60;
        (
            format!("{}Z", &text[..n - 6]),
            if b[n - 6] == b'-' { -secs } else { secs },
        )
    } else {
        (text, 0)
    };
    let millis = i64::try_from(parse_rfc3339(&utc)?).ok()?;
    u64::try_from(millis.checked_sub(offset_secs.checked_mul(1000)?)?).ok()
}

/// A JSON object read field by field; every error names the field's path (`alerts[1].labels`).
pub struct JsonObject<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> JsonObject<'a> {
    /// `value` as an object at `path` (empty for the body itself); `what` describes the
    /// expected shape for the error message.
    pub fn at(value: &'a Value, path: String, what: &str) -> Result<JsonObject<'a>, ApiError> {
        match value {
            Value::Object(map) => Ok(JsonObject { map, path }),
            _ if path.is_empty() => Err(ApiError::body(format!("the body must be {what}"))),
            _ => Err(ApiError::field(
                path.clone(),
                format!("`{path}`: must be {what}"),
            )),
        }
    }

    /// The path of one of its fields.
    pub fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// A 400 naming the field `name`.
    pub fn error(&self, name: &str, message: impl std::fmt::Display) -> ApiError {
        let path = self.path_of(name);
        ApiError::field(path.clone(), format!("`{path}`: {message}"))
    }

    /// A field; `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A field that must be present.
    pub fn required(&self, name: &str) -> Result<&'a Value, ApiError> {
        self.get(name)
            .ok_or_else(|| self.error(name, "is required but missing"))
    }

    /// A string field that must be present.
    pub fn string(&self, name: &str) -> Result<&'a str, ApiError> {
        self.required(name)?
            .as_str()
            .ok_or_else(|| self.error(name, "must be a string"))
    }

    /// A string field that may be absent (then empty).
    pub fn optional_string(&self, name: &str) -> Result<&'a str, ApiError> {
        match self.get(name) {
            None => Ok(""),
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.error(name, "must be a string")),
        }
    }

    /// An object of strings that may be absent (then empty); with `label_names`, its keys must be
    /// Prometheus label names.
    pub fn labels(&self, name: &str, label_names: bool) -> Result<Labels, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(Labels::new());
        };
        let map = value
            .as_object()
            .ok_or_else(|| self.error(name, "must be an object of strings"))?;
        let mut labels = Labels::new();
        for (key, v) in map {
            let path = format!("{name}.{key}");
            if label_names && !is_label_name(key) {
                return Err(self.error(
                    &path,
                    format_args!("`{key}` is not a label name (`[a-zA-Z_][a-zA-Z0-9_]*`)"),
                ));
            }
            let v = v
                .as_str()
                .ok_or_else(|| self.error(&path, "must be a string"))?;
            labels.insert(key.clone(), v.to_owned());
        }
        Ok(labels)
    }

    /// Refuses fields other than `known`.
    pub fn deny_unknown(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => {
                let expected = known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(self.error(
                    key,
                    format_args!("unknown field; expected one of {expected}"),
                ))
            }
        }
    }
}

/// The event field a validation error names (empty when it names none), and what is wrong with it.
pub fn event_problem(e: &EventError) -> (&'static str, String) {
    match e {
        EventError::Invalid { field, message } => (field, message.clone()),
        other => ("", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_offsets_and_fractions_parse_to_utc_millis() {
        let utc = 1_767_225_900_000; // 2026-01-01T00:05:00Z
        for text in [
            "2026-01-01T00:05:00Z",
            "2026-01-01t00:05:00z",
            "2026-01-01T00:05:00+00:00",
            "2026-01-01T02:05:00+02:00",
            "2025-12-31T19:35:00-04:30",
            "2026-01-01T00:05:00.000999999Z",
        ] {
            assert_eq!(parse_time(text), Some(utc), "{text}");
        }
        assert_eq!(
            parse_time("2026-01-01T02:05:00.123456789+02:00"),
            Some(utc + 123)
        );
    }

    #[test]
    fn malformed_or_pre_epoch_times_are_refused() {
        for text in [
            "",
            "yesterday",
            "0001-01-01T00:00:00Z",
            "2026-01-01T00:05:00+2:00",
            "2026-01-01T00:05:00+24:00",
            "2026-01-01T00:05:00+0a:00",
            "2026-01-01T00:05:00+00:60",
            "1970-01-01T00:00:00+00:01",
            "2026-13-01T00:05:00Z",
            "+00:00",
            "é2026-01-01T00:05:00+00:00",
        ] {
            assert_eq!(parse_time(text), None, "{text}");
        }
    }

    #[test]
    fn names_follow_prometheus_rules() {
        for good in ["a", "_", ":a", "http_requests_total", "job:rate5m", "A9_"] {
            assert!(is_metric_name(good), "{good}");
        }
        for bad in ["", "9a", "a-b", "a.b", "é", "a b"] {
            assert!(!is_metric_name(bad), "{bad}");
        }
        for good in ["a", "_", "le", "__name__", "A9_"] {
            assert!(is_label_name(good), "{good}");
        }
        for bad in ["", "9a", ":a", "a:b", "a-b", "é"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_resource_is_the_first_non_empty_of_service_job_instance() {
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let l = labels(&[("instance", "10.0.0.1:9100"), ("job", "node")]);
        assert_eq!(resource_of(&l, "up"), ("node", Origin::Label("job")));
        let l = labels(&[("service", ""), ("instance", "i-1")]);
        assert_eq!(resource_of(&l, "up"), ("i-1", Origin::Label("instance")));
        let l = labels(&[("env", "prod")]);
        assert_eq!(resource_of(&l, "up"), ("up", Origin::Fallback));
    }
}
