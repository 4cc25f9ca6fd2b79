//! KPIs an application pushes: one `metrics.push` event per sample.
//!
//! Two formats, chosen by `Content-Type`:
//!
//! - `text/plain` (optionally `; version=0.0.4`): the Prometheus text exposition format, read by
//!   [`super::exposition`]; errors name the line;
//! - `application/json`: `{"metrics": [{"name": "checkout_errors", "labels": {"service": "api"},
//!   "value": 3, "timestamp": 1767225900000}]}`, `labels` and `timestamp` (milliseconds or
//!   RFC 3339) optional, unknown fields refused; errors name the path (`metrics[3].name`).
//!
//! Each sample becomes an event `metrics.push` from source `push`, actor the label `job` (else
//! `push`), resource the first non-empty label of `service`, `job`, `instance` (else the metric
//! name), payload `{metric, value, labels}`, timestamped by the sample or now (the run clock).

use grace_engine::TriggerEvent;
use grace_engine::event::{check_number, check_timestamp};
use serde_json::{Value, json};

use super::exposition::{self, ParseError};
use super::{JsonObject, Labels, Origin, event_problem, is_metric_name, parse_time, resource_of};
use crate::error::ApiError;

/// Most samples in one push.
pub const MAX_SAMPLES: usize = 10_000;
/// The events' `event_type`.
pub const EVENT_TYPE: &str = "metrics.push";
/// The events' `source`, and their `actor` when a sample has no `job` label.
pub const SOURCE: &str = "push";

/// The two formats of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text exposition format, 0.0.4.
    Text,
    /// `{"metrics": [...]}`.
    Json,
}

impl Format {
    /// The format a `Content-Type` names.
    pub fn of(content_type: Option<&str>) -> Result<Format, ApiError> {
        const HINT: &str = "push `text/plain; version=0.0.4` (the Prometheus text format) or `application/json` (`{\"metrics\": [...]}`)";
        let Some(content_type) = content_type else {
            return Err(ApiError::media_type(format!(
                "the push has no `Content-Type`: {HINT}"
            )));
        };
        let mut parts = content_type.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let format = match media.as_str() {
            "text/plain" => Format::Text,
            "application/json" => Format::Json,
            _ => {
                return Err(ApiError::media_type(format!(
                    "`{media}` is not a format this endpoint reads: {HINT}"
                )));
            }
        };
        for param in parts.filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            let (key, value) = (
                key.trim().to_ascii_lowercase(),
                value.trim().trim_matches('"'),
            );
            let supported = match key.as_str() {
                "charset" => value.eq_ignore_ascii_case("utf-8"),
                "version" => format == Format::Text && value == "0.0.4",
                _ => true,
            };
            if !supported {
                return Err(ApiError::media_type(format!(
                    "`{key}={value}` is not supported: {HINT}"
                )));
            }
        }
        Ok(format)
    }
}

/// The events of a push in `format`; `now_millis` for samples without a timestamp.
pub fn events(format: Format, body: &[u8], now_millis: u64) -> Result<Vec<TriggerEvent>, ApiError> {
    match format {
        Format::Text => from_text(body, now_millis),
        Format::Json => from_json(body, now_millis),
    }
}

fn too_many() -> ApiError {
    ApiError::too_large(format!(
        "a push holds at most {MAX_SAMPLES} samples; split this one"
    ))
}

/// The Prometheus text format.
pub fn from_text(body: &[u8], now_millis: u64) -> Result<Vec<TriggerEvent>, ApiError> {
    let samples = exposition::parse(body, MAX_SAMPLES).map_err(|e| match e {
        ParseError::TooManySamples { .. } => too_many(),
        other => ApiError::body(other.to_string()),
    })?;
    if samples.is_empty() {
        return Err(ApiError::body(
            "the push holds no samples, only blank lines and comments",
        ));
    }
    samples
        .into_iter()
        .map(|s| {
            let line = s.line;
            event(s.name, s.labels, s.value, s.timestamp.unwrap_or(now_millis))
                .map_err(|(_, message)| ApiError::body(format!("line {line}: {message}")))
        })
        .collect()
}

/// `{"metrics": [...]}`.
pub fn from_json(body: &[u8], now_millis: u64) -> Result<Vec<TriggerEvent>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::body(format!("the body is not JSON: {e}")))?;
    let top = JsonObject::at(&value, String::new(), "an object `{\"metrics\": [...]}`")?;
    top.deny_unknown(&["metrics"])?;
    let metrics = top
        .required("metrics")?
        .as_array()
        .ok_or_else(|| top.error("metrics", "must be an array of samples"))?;
    if metrics.len() > MAX_SAMPLES {
        return Err(too_many());
    }
    if metrics.is_empty() {
        return Err(top.error("metrics", "holds no samples"));
    }
    metrics
        .iter()
        .enumerate()
        .map(|(i, m)| json_sample(m, i, now_millis))
        .collect()
}

fn json_sample(value: &Value, index: usize, now_millis: u64) -> Result<TriggerEvent, ApiError> {
    let path = format!("metrics[{index}]");
    let sample = JsonObject::at(
        value,
        path.clone(),
        "a sample `{\"name\", \"labels\", \"value\", \"timestamp\"}`",
    )?;
    sample.deny_unknown(&["name", "labels", "value", "timestamp"])?;
    let name = sample.string("name")?;
    if !is_metric_name(name) {
        return Err(sample.error(
            "name",
            format_args!("`{name}` is not a metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`)"),
        ));
    }
    let labels = sample.labels("labels", true)?;
    let number = sample.required("value")?;
    let value = number
        .as_f64()
        .ok_or_else(|| sample.error("value", "must be a number"))?;
    let value = check_number(value).map_err(|m| sample.error("value", m))?;
    let timestamp = match sample.get("timestamp") {
        None => now_millis,
        Some(Value::String(text)) => parse_time(text).ok_or_else(|| {
            sample.error(
                "timestamp",
                format_args!("`{text}` is not an RFC 3339 time like `2026-01-01T00:05:00Z`"),
            )
        })?,
        Some(ms) => ms.as_u64().ok_or_else(|| {
            sample.error(
                "timestamp",
                "must be milliseconds since the epoch (a whole number) or an RFC 3339 time",
            )
        })?,
    };
    let timestamp = check_timestamp(timestamp).map_err(|m| sample.error("timestamp", m))?;
    event(name.to_owned(), labels, value, timestamp).map_err(|(blamed, message)| {
        let field = sample.path_of(&blamed);
        ApiError::field(field.clone(), format!("`{field}`: {message}"))
    })
}

/// One sample's event, validated; on error, the sample's part to blame (`name`, `labels`,
/// `labels.service`...) and why.
fn event(
    name: String,
    labels: Labels,
    value: f64,
    timestamp: u64,
) -> Result<TriggerEvent, (String, String)> {
    let (resource, origin) = resource_of(&labels, &name);
    let actor = labels
        .get("job")
        .filter(|j| !j.is_empty())
        .map_or(SOURCE, String::as_str);
    let event = TriggerEvent {
        event_type: EVENT_TYPE.to_owned(),
        source: SOURCE.to_owned(),
        actor: actor.to_owned(),
        resource: resource.to_owned(),
        payload: json!({ "metric": name, "value": value, "labels": labels }),
        timestamp,
    };
    match event.validate() {
        Ok(()) => Ok(event),
        Err(e) => {
            let (field, message) = event_problem(&e);
            Err(match (field, origin) {
                ("resource", Origin::Label(label)) => (
                    format!("labels.{label}"),
                    format!("the label `{label}`, as the event's resource, {message}"),
                ),
                ("resource", Origin::Fallback) => (
                    "name".to_owned(),
                    format!("the metric name, as the event's resource, {message}"),
                ),
                ("actor", _) => (
                    "labels.job".to_owned(),
                    format!("the label `job`, as the event's actor, {message}"),
                ),
                ("payload", _) => (
                    "labels".to_owned(),
                    format!("the sample's event payload {message}"),
                ),
                _ => (
                    String::new(),
                    format!("the sample makes an invalid event: {e}"),
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_choose_the_format() {
        for (ct, format) in [
            ("text/plain", Format::Text),
            ("text/plain; version=0.0.4; charset=utf-8", Format::Text),
            ("Text/Plain;charset=UTF-8", Format::Text),
            ("application/json", Format::Json),
            ("application/json; charset=utf-8", Format::Json),
        ] {
            assert_eq!(Format::of(Some(ct)).unwrap(), format, "{ct}");
        }
        for ct in [
            None,
            Some("application/openmetrics-text; version=1.0.0"),
            Some("text/plain; version=1.0.0"),
            Some("text/plain; charset=latin1"),
            Some("application/json; version=0.0.4"),
            Some(""),
        ] {
            assert_eq!(Format::of(ct).unwrap_err().status(), 415, "{ct:?}");
        }
    }

    #[test]
    fn a_text_sample_becomes_an_event() {
        let events = from_text(
            b"# TYPE checkout_errors_total counter\ncheckout_errors_total{job=\"shop\",service=\"checkout\"} 7 1767225900000\nqueue_depth 3\n",
            5,
        )
        .unwrap();
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!(
            (e.event_type.as_str(), e.source.as_str(), e.actor.as_str()),
            ("metrics.push", "push", "shop")
        );
        assert_eq!(e.resource, "checkout");
        assert_eq!(e.timestamp, 1_767_225_900_000);
        assert_eq!(
            e.payload,
            json!({"metric": "checkout_errors_total", "value": 7.0,
                   "labels": {"job": "shop", "service": "checkout"}})
        );
        let e = &events[1];
        assert_eq!(
            (e.actor.as_str(), e.resource.as_str()),
            ("push", "queue_depth")
        );
        assert_eq!(e.timestamp, 5, "now, when the sample has no timestamp");
    }

    #[test]
    fn text_errors_name_the_line() {
        let e = from_text(b"ok 1\nbad NaN\n", 0).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().starts_with("line 2: the value `NaN`"), "{e}");
        let e = from_text(b"ok 1\nbad{service=\"a\\nb\"} 1\n", 0).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 2: the label `service`, as the event's resource, must not contain control characters"),
            "{e}"
        );
        let e = from_text(b"# only a comment\n", 0).unwrap_err();
        assert!(e.to_string().contains("no samples"), "{e}");
        let e = from_text("x 1\n".repeat(MAX_SAMPLES + 1).as_bytes(), 0).unwrap_err();
        assert_eq!(e.status(), 413);
        assert_eq!(
            from_text("x 1\n".repeat(MAX_SAMPLES).as_bytes(), 0)
                .unwrap()
                .len(),
            MAX_SAMPLES
        );
    }

    #[test]
    fn a_json_sample_becomes_an_event() {
        let body = json!({"metrics": [
            {"name": "checkout_latency_ms", "labels": {"instance": "i-1"}, "value": 912.5,
             "timestamp": "2026-01-01T00:05:00Z"},
            {"name": "orders", "value": 3, "timestamp": 1_767_225_960_000u64},
            {"name": "up", "value": 1, "labels": null}
        ]});
        let events = from_json(body.to_string().as_bytes(), 9).unwrap();
        assert_eq!(events[0].resource, "i-1");
        assert_eq!(events[0].payload["value"], 912.5);
        assert_eq!(events[0].timestamp, 1_767_225_900_000);
        assert_eq!(events[1].resource, "orders");
        assert_eq!(events[1].timestamp, 1_767_225_960_000);
        assert_eq!(events[2].timestamp, 9);
    }

    #[test]
    fn json_errors_name_the_path() {
        let good = json!({"name": "x", "value": 1});
        let cases = [
            (json!({"metric": []}), "metric"),
            (json!({}), "metrics"),
            (json!({"metrics": []}), "metrics"),
            (json!({"metrics": {}}), "metrics"),
            (json!({"metrics": [good, 5]}), "metrics[1]"),
            (json!({"metrics": [good, {"value": 1}]}), "metrics[1].name"),
            (
                json!({"metrics": [good, {"name": "a-b", "value": 1}]}),
                "metrics[1].name",
            ),
            (
                json!({"metrics": [good, {"name": "a", "value": "1"}]}),
                "metrics[1].value",
            ),
            (
                json!({"metrics": [good, {"name": "a"}]}),
                "metrics[1].value",
            ),
            (
                json!({"metrics": [good, {"name": "a", "value": 1, "labels": {"a:b": "c"}}]}),
                "metrics[1].labels.a:b",
            ),
            (
                json!({"metrics": [good, {"name": "a", "value": 1, "labels": {"a": 1}}]}),
                "metrics[1].labels.a",
            ),
            (
                json!({"metrics": [good, {"name": "a", "value": 1, "labels": ["a"]}]}),
                "metrics[1].labels",
            ),
            (
                json!({"metrics": [good, {"name": "a", "value": 1, "timestamp": -1}]}),
                "metrics[1].timestamp",
            ),
            (
                json!({"metrics": [good, {"name": "a", "value": 1, "timestamp": 1.5}]}),
                "metrics[1].timestamp",
            ),
            (
                json!({"metrics": [good, {"name": "a", "value": 1, "timestamp": "soon"}]}),
                "metrics[1].timestamp",
            ),
            (
                json!({"metrics": [good, {"name": "a", "value": 1, "unit": "ms"}]}),
                "metrics[1].unit",
            ),
            (
                json!({"metrics": [good, {"name": "a", "value": 1, "labels": {"job": " "}}]}),
                "metrics[1].labels.job",
            ),
            (
                json!({"metrics": [good, {"name": "a".repeat(300), "value": 1}]}),
                "metrics[1].name",
            ),
        ];
        for (body, field) in cases {
            let e = from_json(body.to_string().as_bytes(), 0).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert!(
                e.to_string().starts_with(&format!("`{field}`: ")),
                "{body}: {e}"
            );
        }
        assert!(
            from_json(b"[]", 0)
                .unwrap_err()
                .to_string()
                .contains("must be an object")
        );
        let many: Vec<Value> = (0..=MAX_SAMPLES)
            .map(|_| json!({"name": "x", "value": 1}))
            .collect();
        let e = from_json(json!({"metrics": many}).to_string().as_bytes(), 0).unwrap_err();
        assert_eq!(e.status(), 413);
    }
}
