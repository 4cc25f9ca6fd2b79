//! Alertmanager's webhook, version 4: one event per alert, and the alerts Alertmanager sends again
//! recognised and skipped.
//!
//! The payload (Alertmanager's `webhook_config` documentation):
//!
//! ```json
//! { "version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
//!   "status": "firing", "receiver": "grace", "groupLabels": {}, "commonLabels": {},
//!   "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
//!   "alerts": [ { "status": "firing", "labels": { "alertname": "HighLatency", ... },
//!                 "annotations": {}, "startsAt": "2026-01-01T00:05:00Z",
//!                 "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://...",
//!                 "fingerprint": "7f0e0e9b2ae8b1f2" } ] }
//! ```
//!
//! Required: `version` (`"4"`, checked first, so that another version is named as such rather
//! than as a missing field), `status`, `receiver`, `alerts`, and each alert's `status` and
//! `labels`. The rest may be absent or `null`; unknown fields are ignored, since Alertmanager adds
//! fields within version 4 (`truncatedAlerts` came that way). A missing `fingerprint` (sent since
//! Alertmanager 0.19) is computed as Alertmanager does, from the labels.
//!
//! Each alert becomes an event `alert.firing` or `alert.resolved` from source `alertmanager`,
//! actor the receiver, resource the first non-empty label of `service`, `job`, `instance`, else
//! `alertname`; timestamped `startsAt` when firing and `endsAt` when resolved (Alertmanager's zero
//! time, `0001-01-01T00:00:00Z`, means unset: then now, on the run clock).
//!
//! Alertmanager re-sends firing alerts every `group_interval`; [`Dedup`] remembers the
//! (fingerprint, status, `startsAt`) of accepted alerts, so each firing and each resolution of an
//! alert becomes one event.

use std::collections::{HashSet, VecDeque};

use grace_engine::TriggerEvent;
use serde_json::{Value, json};

use super::{JsonObject, Labels, Origin, event_problem, parse_time, resource_of};
use crate::error::ApiError;
use crate::store::{Store, StoreError};

/// The one webhook version this module reads.
pub const VERSION: &str = "4";
/// The events' `source`.
pub const SOURCE: &str = "alertmanager";
/// Most alerts in one notification (as many as events in one batch).
pub const MAX_ALERTS: usize = 10_000;
/// How many accepted alerts [`Dedup`] remembers; the oldest are forgotten first.
pub const DEDUP_CAPACITY: usize = 100_000;

/// Alertmanager's zero time: an unset `startsAt` or `endsAt`.
const ZERO_TIME: &str = "0001-01-01T00:00:00";

/// An alert's or a notification's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Active.
    Firing,
    /// Over.
    Resolved,
}

impl Status {
    /// As Alertmanager spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }

    /// The event type of an alert with this status.
    pub fn event_type(self) -> &'static str {
        match self {
            Status::Firing => "alert.firing",
            Status::Resolved => "alert.resolved",
        }
    }

    fn parse(text: &str) -> Option<Status> {
        match text {
            "firing" => Some(Status::Firing),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

/// One webhook notification: a group of alerts for one receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The receiver that sent it (the events' actor).
    pub receiver: String,
    /// `firing` when at least one alert fires.
    pub status: Status,
    /// The group's key.
    pub group_key: String,
    /// Alerts left out because of the receiver's `max_alerts`.
    pub truncated_alerts: u64,
    /// The labels the group is formed by.
    pub group_labels: Labels,
    /// Labels all alerts share.
    pub common_labels: Labels,
    /// Annotations all alerts share.
    pub common_annotations: Labels,
    /// Alertmanager's own URL.
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// One alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Firing or resolved.
    pub status: Status,
    /// Its identity.
    pub labels: Labels,
    /// Its description.
    pub annotations: Labels,
    /// When it started firing, in milliseconds; `None` when unset.
    pub starts_at: Option<u64>,
    /// When it was resolved, in milliseconds; `None` when unset.
    pub ends_at: Option<u64>,
    /// The rule that produced it.
    pub generator_url: String,
    /// A hash of its labels, the same on every re-send.
    pub fingerprint: String,
}

/// What makes an alert the same on re-send: its fingerprint, status and start.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    fingerprint: String,
    status: Status,
    /// 0 when unset.
    starts_at: u64,
}

impl Alert {
    /// Its dedup key.
    pub fn key(&self) -> AlertKey {
        AlertKey {
            fingerprint: self.fingerprint.clone(),
            status: self.status,
            starts_at: self.starts_at.unwrap_or(0),
        }
    }
}

/// Reads a notification, checking every field it uses.
pub fn parse(body: &[u8]) -> Result<Notification, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::body(format!("the body is not JSON: {e}")))?;
    let top = JsonObject::at(
        &value,
        String::new(),
        "an Alertmanager webhook notification (a JSON object)",
    )?;
    match top.required("version")? {
        Value::String(v) if v == VERSION => {}
        other => {
            return Err(top.error(
                "version",
                format_args!(
                    "Alertmanager's webhook version \"{VERSION}\" is supported, not {other}"
                ),
            ));
        }
    }
    let status = status_of(&top)?;
    let receiver = top.string("receiver")?.to_owned();
    let alerts = top
        .required("alerts")?
        .as_array()
        .ok_or_else(|| top.error("alerts", "must be an array of alerts"))?;
    if alerts.is_empty() {
        return Err(top.error("alerts", "holds no alert"));
    }
    if alerts.len() > MAX_ALERTS {
        return Err(ApiError::too_large(format!(
            "a notification holds at most {MAX_ALERTS} alerts; this one has {} (lower the receiver's `max_alerts`)",
            alerts.len()
        )));
    }
    let truncated_alerts = match top.get("truncatedAlerts") {
        None => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| top.error("truncatedAlerts", "must be a whole number"))?,
    };
    Ok(Notification {
        receiver,
        status,
        group_key: top.optional_string("groupKey")?.to_owned(),
        truncated_alerts,
        group_labels: top.labels("groupLabels", false)?,
        common_labels: top.labels("commonLabels", false)?,
        common_annotations: top.labels("commonAnnotations", false)?,
        external_url: top.optional_string("externalURL")?.to_owned(),
        alerts: alerts
            .iter()
            .enumerate()
            .map(|(i, a)| alert(a, i))
            .collect::<Result<_, _>>()?,
    })
}

fn status_of(object: &JsonObject<'_>) -> Result<Status, ApiError> {
    let text = object.string("status")?;
    Status::parse(text).ok_or_else(|| {
        object.error(
            "status",
            format_args!("`{text}` is neither `firing` nor `resolved`"),
        )
    })
}

fn alert(value: &Value, index: usize) -> Result<Alert, ApiError> {
    let object = JsonObject::at(
        value,
        format!("alerts[{index}]"),
        "an alert (a JSON object)",
    )?;
    let status = status_of(&object)?;
    object.required("labels")?;
    let labels = object.labels("labels", false)?;
    let fingerprint = match object.optional_string("fingerprint")? {
        "" => fingerprint(&labels),
        given => given.to_owned(),
    };
    Ok(Alert {
        status,
        annotations: object.labels("annotations", false)?,
        starts_at: time(&object, "startsAt")?,
        ends_at: time(&object, "endsAt")?,
        generator_url: object.optional_string("generatorURL")?.to_owned(),
        fingerprint,
        labels,
    })
}

/// An RFC 3339 time; absent, `null` or the zero time is unset.
fn time(object: &JsonObject<'_>, name: &str) -> Result<Option<u64>, ApiError> {
    let text = object.optional_string(name)?;
    if text.is_empty() || text.starts_with(ZERO_TIME) {
        return Ok(None);
    }
    let millis = parse_time(text).ok_or_else(|| {
        object.error(
            name,
            format_args!("`{text}` is not an RFC 3339 time like `2026-01-01T00:05:00Z`"),
        )
    })?;
    grace_engine::event::check_timestamp(millis)
        .map(Some)
        .map_err(|m| object.error(name, format_args!("`{text}` ({m})")))
}

/// Alertmanager's fingerprint of a label set (Prometheus' `LabelSet.Fingerprint`): FNV-1a over the
/// labels sorted by name, each name and value followed by the byte 0xff, as 16 hex digits.
pub fn fingerprint(labels: &Labels) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    format!("{hash:016x}")
}

impl Notification {
    /// One validated event per alert, with its dedup key; `now_millis` stands in for unset times.
    pub fn events(&self, now_millis: u64) -> Result<Vec<(AlertKey, TriggerEvent)>, ApiError> {
        if self.truncated_alerts > 0 {
            tracing::warn!(
                group = %self.group_key,
                truncated = self.truncated_alerts,
                "Alertmanager left alerts out of a notification: raise the receiver's `max_alerts`"
            );
        }
        self.alerts
            .iter()
            .enumerate()
            .map(|(i, alert)| Ok((alert.key(), self.event(alert, i, now_millis)?)))
            .collect()
    }

    fn event(
        &self,
        alert: &Alert,
        index: usize,
        now_millis: u64,
    ) -> Result<TriggerEvent, ApiError> {
        let path = format!("alerts[{index}]");
        let alertname = alert.labels.get("alertname").filter(|n| !n.is_empty());
        let (resource, origin) = resource_of(&alert.labels, alertname.map_or("", |n| n.as_str()));
        if resource.is_empty() {
            return Err(ApiError::field(
                format!("{path}.labels"),
                format!(
                    "`{path}.labels`: holds none of `service`, `job`, `instance` and `alertname`, one of which names the event's resource"
                ),
            ));
        }
        let timestamp = match alert.status {
            Status::Firing => alert.starts_at,
            Status::Resolved => alert.ends_at,
        }
        .unwrap_or(now_millis);
        let event = TriggerEvent {
            event_type: alert.status.event_type().to_owned(),
            source: SOURCE.to_owned(),
            actor: self.receiver.clone(),
            resource: resource.to_owned(),
            payload: json!({
                "alertname": alertname,
                "status": alert.status.as_str(),
                "labels": alert.labels,
                "annotations": alert.annotations,
                "fingerprint": alert.fingerprint,
                "starts_at": alert.starts_at,
                "ends_at": alert.ends_at,
                "generator_url": alert.generator_url,
                "group_key": self.group_key,
            }),
            timestamp,
        };
        event.validate().map_err(|e| {
            let (field, message) = event_problem(&e);
            let blamed = match field {
                "actor" => "receiver".to_owned(),
                "resource" => match origin {
                    Origin::Label(label) => format!("{path}.labels.{label}"),
                    Origin::Fallback => format!("{path}.labels.alertname"),
                },
                _ => path.clone(),
            };
            let role = match field {
                "actor" => "the event's actor",
                "resource" => "the event's resource",
                "payload" => "the event's payload (labels, annotations and the rest)",
                _ => "the event",
            };
            ApiError::field(blamed.clone(), format!("`{blamed}`: as {role}, {message}"))
        })?;
        Ok(event)
    }
}

/// The alerts accepted lately, to skip Alertmanager's re-sends.
///
/// Bounded: beyond its capacity the oldest keys are forgotten (an alert firing for longer than
/// that many newer alerts would be accepted once more). Held behind an async lock that a request
/// keeps from its check to its ingest, so two deliveries of one alert cannot both be accepted.
/// Empty at start, it is filled on first use from the alerts among the event log's last
/// [`DEDUP_CAPACITY`] events, so a restart does not accept again the alerts Alertmanager re-sends.
#[derive(Debug)]
pub struct Dedup {
    state: tokio::sync::Mutex<DedupState>,
}

/// The keys [`Dedup`] holds, under its lock.
#[derive(Debug)]
pub struct DedupState {
    seen: HashSet<AlertKey>,
    order: VecDeque<AlertKey>,
    capacity: usize,
    seeded: bool,
}

impl Dedup {
    /// Remembers at most `capacity` alerts.
    pub fn new(capacity: usize) -> Dedup {
        Dedup {
            state: tokio::sync::Mutex::new(DedupState {
                seen: HashSet::new(),
                order: VecDeque::new(),
                capacity: capacity.max(1),
                seeded: false,
            }),
        }
    }

    /// Takes the lock: hold it from [`DedupState::fresh`] until [`DedupState::remember`].
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, DedupState> {
        self.state.lock().await
    }
}

impl DedupState {
    /// Whether [`DedupState::seed`] was called.
    pub fn is_seeded(&self) -> bool {
        self.seeded
    }

    /// Remembers keys accepted before (from the event log), oldest first.
    pub fn seed(&mut self, keys: impl IntoIterator<Item = AlertKey>) {
        self.seeded = true;
        self.remember(keys);
    }

    /// Splits `alerts` into the ones not accepted before (also not earlier in the same batch) and
    /// the number of duplicates.
    pub fn fresh(
        &self,
        alerts: Vec<(AlertKey, TriggerEvent)>,
    ) -> (Vec<AlertKey>, Vec<TriggerEvent>, usize) {
        let mut keys = Vec::new();
        let mut events = Vec::new();
        let mut batch = HashSet::new();
        let mut skipped = 0;
        for (key, event) in alerts {
            if self.seen.contains(&key) || !batch.insert(key.clone()) {
                skipped += 1;
            } else {
                keys.push(key);
                events.push(event);
            }
        }
        (keys, events, skipped)
    }

    /// Remembers accepted keys, forgetting the oldest beyond the capacity.
    pub fn remember(&mut self, keys: impl IntoIterator<Item = AlertKey>) {
        for key in keys {
            if self.seen.insert(key.clone()) {
                self.order.push_back(key);
            }
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The keys of the alerts among the last `window` matched events and everything after them,
/// oldest first: what [`Dedup`] is seeded with.
pub fn recent_keys(store: &Store, window: u64) -> Result<Vec<AlertKey>, StoreError> {
    const PAGE: usize = 10_000;
    let mut from = store.matched_through()?.saturating_sub(window) + 1;
    let mut keys = Vec::new();
    loop {
        let page = store.events(from, PAGE)?;
        let Some(last) = page.last() else {
            break;
        };
        from = last.seq + 1;
        keys.extend(page.iter().filter_map(|e| key_of(&e.event)));
        if page.len() < PAGE {
            break;
        }
    }
    Ok(keys)
}

/// The dedup key of an event this module made, from its payload.
fn key_of(event: &TriggerEvent) -> Option<AlertKey> {
    if event.source != SOURCE {
        return None;
    }
    let p = &event.payload;
    Some(AlertKey {
        fingerprint: p["fingerprint"].as_str()?.to_owned(),
        status: Status::parse(p["status"].as_str()?)?,
        starts_at: p["starts_at"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notification as Alertmanager 0.27 sends it: two alerts of one group, firing.
    pub const FIRING: &str = r#"{
      "receiver": "grace",
      "status": "firing",
      "alerts": [
        {
          "status": "firing",
          "labels": {"alertname": "HighLatency", "service": "api-service", "severity": "page", "instance": "10.0.0.1:9100"},
          "annotations": {"summary": "p95 latency above 500 ms"},
          "startsAt": "2026-01-01T00:05:00.123456789Z",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
          "fingerprint": "7f0e0e9b2ae8b1f2"
        },
        {
          "status": "firing",
          "labels": {"alertname": "HighLatency", "job": "checkout", "severity": "page"},
          "annotations": {},
          "startsAt": "2026-01-01T02:06:00+02:00",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "",
          "fingerprint": "1b3c7d2e9f001122"
        }
      ],
      "groupLabels": {"alertname": "HighLatency"},
      "commonLabels": {"alertname": "HighLatency", "severity": "page"},
      "commonAnnotations": {},
      "externalURL": "http://alertmanager:9093",
      "version": "4",
      "groupKey": "{}:{alertname=\"HighLatency\"}",
      "truncatedAlerts": 0
    }"#;

    fn with(path: &[&str], value: Value) -> Vec<u8> {
        let mut doc: Value = serde_json::from_str(FIRING).unwrap();
        let mut at = &mut doc;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                match (key.parse::<usize>(), value.is_null()) {
                    (Ok(n), _) => at[n] = value.clone(),
                    (Err(_), true) => {
                        at.as_object_mut().unwrap().remove(*key);
                    }
                    (Err(_), false) => at[*key] = value.clone(),
                }
                break;
            }
            at = match key.parse::<usize>() {
                Ok(n) => &mut at[n],
                Err(_) => &mut at[*key],
            };
        }
        doc.to_string().into_bytes()
    }

    /// The message of the 400 a body gets.
    fn refusal(body: &[u8]) -> String {
        let e = parse(body)
            .and_then(|n| n.events(0).map(|_| ()))
            .unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        e.to_string()
    }

    #[test]
    fn each_alert_becomes_an_event() {
        let n = parse(FIRING.as_bytes()).unwrap();
        assert_eq!(n.receiver, "grace");
        assert_eq!(n.common_labels.len(), 2);
        let events = n.events(99).unwrap();
        assert_eq!(events.len(), 2);
        let (_, first) = &events[0];
        assert_eq!(first.event_type, "alert.firing");
        assert_eq!(first.source, "alertmanager");
        assert_eq!(first.actor, "grace");
        assert_eq!(first.resource, "api-service");
        assert_eq!(first.timestamp, 1_767_225_900_123);
        assert_eq!(
            first.payload,
            json!({
                "alertname": "HighLatency", "status": "firing",
                "labels": {"alertname": "HighLatency", "service": "api-service", "severity": "page", "instance": "10.0.0.1:9100"},
                "annotations": {"summary": "p95 latency above 500 ms"},
                "fingerprint": "7f0e0e9b2ae8b1f2", "starts_at": 1_767_225_900_123u64, "ends_at": null,
                "generator_url": "http://prometheus:9090/graph?g0.expr=latency",
                "group_key": "{}:{alertname=\"HighLatency\"}",
            })
        );
        let (_, second) = &events[1];
        assert_eq!(
            second.resource, "checkout",
            "`job` when there is no `service`"
        );
        assert_eq!(second.timestamp, 1_767_225_960_000, "the offset is applied");
    }

    #[test]
    fn a_resolved_alert_is_timestamped_at_its_end_and_unset_times_are_now() {
        let body = with(&["alerts", "0", "status"], json!("resolved"));
        let body: Value = serde_json::from_slice(&body).unwrap();
        let mut body = body;
        body["alerts"][0]["endsAt"] = json!("2026-01-01T00:09:00Z");
        body["alerts"][1]["startsAt"] = json!("0001-01-01T00:00:00Z");
        let events = parse(body.to_string().as_bytes())
            .unwrap()
            .events(42)
            .unwrap();
        assert_eq!(events[0].1.event_type, "alert.resolved");
        assert_eq!(events[0].1.timestamp, 1_767_226_140_000);
        assert_eq!(events[0].1.payload["ends_at"], 1_767_226_140_000u64);
        assert_eq!(events[1].1.timestamp, 42);
        assert_eq!(events[1].1.payload["starts_at"], Value::Null);
    }

    #[test]
    fn the_resource_falls_back_to_the_alertname() {
        let body = with(&["alerts", "1", "labels"], json!({"alertname": "Watchdog"}));
        let events = parse(&body).unwrap().events(0).unwrap();
        assert_eq!(events[1].1.resource, "Watchdog");
        let body = with(&["alerts", "1", "labels"], json!({"severity": "none"}));
        assert!(refusal(&body).contains("alerts[1].labels"));
    }

    #[test]
    fn another_version_is_refused_naming_version() {
        for version in [json!("5"), json!(4), json!(null)] {
            let body = with(&["version"], version.clone());
            let e = parse(&body).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(refusal(&body).contains("version"), "{version}");
        }
    }

    #[test]
    fn missing_or_malformed_fields_are_named() {
        let cases: &[(&[&str], Value, &str)] = &[
            (&["receiver"], Value::Null, "`receiver`: is required"),
            (&["status"], Value::Null, "`status`: is required"),
            (
                &["status"],
                json!("pending"),
                "`status`: `pending` is neither",
            ),
            (&["alerts"], Value::Null, "`alerts`: is required"),
            (&["alerts"], json!([]), "`alerts`: holds no alert"),
            (&["alerts"], json!({}), "`alerts`: must be an array"),
            (&["alerts", "1"], json!(7), "`alerts[1]`: must be an alert"),
            (
                &["alerts", "1", "status"],
                Value::Null,
                "`alerts[1].status`: is required",
            ),
            (
                &["alerts", "0", "labels"],
                Value::Null,
                "`alerts[0].labels`: is required",
            ),
            (
                &["alerts", "0", "labels"],
                json!([]),
                "`alerts[0].labels`: must be an object",
            ),
            (
                &["alerts", "0", "labels", "service"],
                json!(1),
                "`alerts[0].labels.service`: must be a string",
            ),
            (
                &["alerts", "0", "startsAt"],
                json!("yesterday"),
                "`alerts[0].startsAt`: `yesterday` is not an RFC 3339 time",
            ),
            (
                &["alerts", "0", "fingerprint"],
                json!(5),
                "`alerts[0].fingerprint`",
            ),
            (&["truncatedAlerts"], json!(-1), "`truncatedAlerts`"),
            (&["receiver"], json!(""), "`receiver`: as the event's actor"),
            (
                &["alerts", "0", "labels", "service"],
                json!("a\nb"),
                "`alerts[0].labels.service`: as the event's resource",
            ),
        ];
        for (path, value, expected) in cases {
            let text = refusal(&with(path, value.clone()));
            assert!(text.contains(expected), "{path:?}: {text}");
        }
        assert!(parse(b"[1]").is_err());
        assert!(parse(b"{not json").is_err());
    }

    #[test]
    fn the_computed_fingerprint_is_alertmanagers() {
        // prometheus/common model: LabelsToSignature and LabelSet.Fingerprint test vectors.
        assert_eq!(
            fingerprint(&Labels::new()),
            format!("{:016x}", 14_695_981_039_346_656_037u64)
        );
        let labels: Labels = [("name", "garland, briggs"), ("fear", "love is not enough")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            fingerprint(&labels),
            format!("{:016x}", 5_799_056_148_416_392_346u64)
        );
        let body = with(&["alerts", "0", "fingerprint"], Value::Null);
        let n = parse(&body).unwrap();
        assert_eq!(n.alerts[0].fingerprint, fingerprint(&n.alerts[0].labels));
    }

    #[test]
    fn dedup_skips_re_sends_and_forgets_the_oldest() {
        let events = parse(FIRING.as_bytes()).unwrap().events(0).unwrap();
        let dedup = Dedup::new(2);
        let mut state = dedup.state.try_lock().unwrap();
        let (keys, fresh, skipped) = state.fresh(events.clone());
        assert_eq!((fresh.len(), skipped), (2, 0));
        state.remember(keys);
        let (_, fresh, skipped) = state.fresh(events.clone());
        assert_eq!((fresh.len(), skipped), (0, 2));

        // The same alert resolved is new; a new start of it is new too.
        let mut resolved = events[0].clone();
        resolved.0.status = Status::Resolved;
        let mut restarted = events[0].clone();
        restarted.0.starts_at += 1;
        let (keys, fresh, _) = state.fresh(vec![resolved.clone(), restarted, resolved]);
        assert_eq!(
            fresh.len(),
            2,
            "a duplicate within one batch is skipped too"
        );
        state.remember(keys);
        assert_eq!(state.len(), 2, "bounded");
        let (_, fresh, _) = state.fresh(events);
        assert_eq!(fresh.len(), 2, "the oldest were forgotten");
    }

    #[test]
    fn stored_events_give_back_their_keys() {
        let events = parse(FIRING.as_bytes()).unwrap().events(0).unwrap();
        for (key, event) in events {
            assert_eq!(key_of(&event), Some(key));
        }
        let other = TriggerEvent {
            source: "push".to_owned(),
            ..parse(FIRING.as_bytes()).unwrap().events(0).unwrap()[0]
                .1
                .clone()
        };
        assert_eq!(key_of(&other), None);
    }
}
