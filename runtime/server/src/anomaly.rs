//! Anomaly scores on metric events (`docs/anomaly.md`).
//!
//! Every accepted event whose payload has a numeric `value` is a sample of one series: its
//! source, resource, `metric` and `labels`. Each series has its own detector
//! ([`grace_anomaly::Detector`], the `[anomaly] detector`), which scores the sample before the
//! event is stored. The score goes into the payload as `anomaly` (score, detector, component,
//! expected range) and as `anomaly_score` unless the sender set one: trigger conditions
//! (`anomaly_score > 0.9`) and the trust core's signal confidence read it. When a series'
//! score reaches `[anomaly] alarm` from below, an `anomaly` event joins the batch.
//!
//! State: at most `max_series` series are kept; a sample of a new series beyond that is not
//! scored, and counted. After a restart the detectors are rebuilt from the stored event log
//! ([`Anomalies::learn`]), so they answer as they would have without the restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use grace_anomaly::{Detector, DetectorKind, Rejected, Score};
use grace_model::TriggerEvent;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The event type of an alarm.
pub const ALARM_EVENT_TYPE: &str = "anomaly";

/// The default `alarm`: the threshold NAB's standard profile optimises to for the `grace`
/// detector on the development corpus (`just bench`).
pub const DEFAULT_ALARM: f64 = 0.6374;

/// `[anomaly]` in grace.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Score metric events at all (default true).
    pub enabled: bool,
    /// The detector every series gets (default `grace`).
    pub detector: DetectorKind,
    /// The score at which an `anomaly` event fires (default 0.6374: the threshold NAB's
    /// standard profile optimises to for the default detector on the development corpus).
    pub alarm: f64,
    /// Series kept at most (default 10,000; about 15 KB each with the default detector).
    pub max_series: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: true,
            detector: DetectorKind::Grace,
            alarm: DEFAULT_ALARM,
            max_series: 10_000,
        }
    }
}

impl AnomalyConfig {
    /// Checks the ranges; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.alarm > 0.0 && self.alarm <= 1.0) {
            return Err(("alarm", format!("{} is not in (0, 1]", self.alarm)));
        }
        if !(1..=1_000_000).contains(&self.max_series) {
            return Err((
                "max_series",
                format!("{} is not between 1 and 1000000", self.max_series),
            ));
        }
        Ok(())
    }
}

/// Counts over every series, in [`crate::metrics::Metrics`] for `/metrics`.
#[derive(Debug, Default)]
pub struct AnomalyCounts {
    /// Samples scored.
    pub scored: AtomicU64,
    /// Samples refused: NaN or infinite values.
    pub not_finite: AtomicU64,
    /// Samples refused: older than, or at the time of, the series' last sample.
    pub out_of_order: AtomicU64,
    /// Samples of new series not scored because `max_series` series are kept.
    pub over_limit: AtomicU64,
    /// `anomaly` events raised.
    pub alarms: AtomicU64,
}

struct Series {
    detector: Detector,
    alarming: bool,
}

/// Every series' detector.
pub struct Anomalies {
    config: AnomalyConfig,
    series: Mutex<HashMap<String, Series>>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// What one sample's scoring gave.
enum Outcome {
    Scored(Score, bool),
    Skipped,
}

impl Anomalies {
    /// Detectors as `config` says.
    pub fn new(config: AnomalyConfig, metrics: Arc<crate::metrics::Metrics>) -> Anomalies {
        Anomalies {
            config,
            series: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn counts(&self) -> &AnomalyCounts {
        &self.metrics.anomaly
    }

    /// Rebuilds the detectors from the events stored in `store`, oldest first, a page at a
    /// time; answers how many events were read.
    pub fn rebuild(&self, store: &crate::store::Store) -> Result<u64, crate::store::StoreError> {
        const PAGE: usize = 10_000;
        let (mut from, mut read) = (0u64, 0u64);
        if !self.config.enabled {
            return Ok(0);
        }
        loop {
            let page = store.events(from, PAGE)?;
            let Some(last) = page.last().map(|e| e.seq) else {
                return Ok(read);
            };
            for stored in &page {
                self.learn(&stored.event);
            }
            read += page.len() as u64;
            from = last + 1;
        }
    }

    /// Series kept now.
    pub fn series(&self) -> usize {
        self.series.lock().map_or(0, |s| s.len())
    }

    /// Scores the metric events of `events` in place and returns the `anomaly` events their
    /// alarms raise (to be accepted with them).
    pub fn score(&self, events: &mut [TriggerEvent]) -> Vec<TriggerEvent> {
        let mut alarms = Vec::new();
        if !self.config.enabled {
            return alarms;
        }
        for event in events.iter_mut() {
            let Some((key, value)) = sample(event) else {
                continue;
            };
            let Outcome::Scored(score, alarm) = self.update(key, event.timestamp, value) else {
                continue;
            };
            // Too little history yet: no score rather than a score of 0.
            if score.component == grace_anomaly::Component::Warmup {
                continue;
            }
            annotate(event, &score, self.config.detector);
            if alarm {
                self.counts().alarms.fetch_add(1, Ordering::Relaxed);
                alarms.push(alarm_event(event, value, &score, self.config.detector));
            }
        }
        alarms
    }

    /// Feeds a stored event to its series without annotating or alarming: how the detectors
    /// are rebuilt from the event log after a restart.
    pub fn learn(&self, event: &TriggerEvent) {
        if self.config.enabled
            && let Some((key, value)) = sample(event)
        {
            self.update(key, event.timestamp, value);
        }
    }

    fn update(&self, key: String, timestamp: u64, value: f64) -> Outcome {
        let Ok(mut series) = self.series.lock() else {
            return Outcome::Skipped;
        };
        let limit = self.config.max_series;
        let len = series.len();
        let s = match series.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                if len >= limit {
                    self.counts().over_limit.fetch_add(1, Ordering::Relaxed);
                    return Outcome::Skipped;
                }
                v.insert(Series {
                    detector: Detector::new(self.config.detector),
                    alarming: false,
                })
            }
        };
        let millis = i64::try_from(timestamp).unwrap_or(i64::MAX);
        match s.detector.update(millis, value) {
            Ok(score) => {
                self.counts().scored.fetch_add(1, Ordering::Relaxed);
                let high = score.value >= self.config.alarm;
                let alarm = high && !s.alarming;
                s.alarming = high;
                Outcome::Scored(score, alarm)
            }
            Err(Rejected::NotFinite) => {
                self.counts().not_finite.fetch_add(1, Ordering::Relaxed);
                Outcome::Skipped
            }
            Err(Rejected::OutOfOrder | Rejected::Repeated) => {
                self.counts().out_of_order.fetch_add(1, Ordering::Relaxed);
                Outcome::Skipped
            }
        }
    }
}

/// The series and value of a metric event: a payload object with a numeric `value` (alarms
/// themselves are not samples).
fn sample(event: &TriggerEvent) -> Option<(String, f64)> {
    if event.event_type == ALARM_EVENT_TYPE {
        return None;
    }
    let payload = event.payload.as_object()?;
    let value = payload.get("value")?.as_f64()?;
    let metric = payload.get("metric").and_then(Value::as_str).unwrap_or("");
    // serde_json's map keeps keys sorted: the same labels give the same key in any order.
    let labels = payload
        .get("labels")
        .filter(|l| l.is_object())
        .map_or_else(String::new, Value::to_string);
    // Event fields hold no NUL (validated): it cannot be forged into another series' key.
    let key = format!(
        "{}\0{}\0{}\0{}",
        event.source, event.resource, metric, labels
    );
    Some((key, value))
}

fn score_json(score: &Score, detector: DetectorKind) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("score".into(), json!(round(score.value)));
    m.insert("detector".into(), json!(detector.name()));
    m.insert("component".into(), json!(score.component.to_string()));
    if let Some(e) = score.expected
        && e.low.is_finite()
        && e.high.is_finite()
    {
        m.insert("expected".into(), json!({"low": e.low, "high": e.high}));
    }
    m
}

/// Four decimals: what a condition or a reader needs, without float noise in every payload.
fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Adds `anomaly` (and `anomaly_score`, unless the sender set one) to the payload, unless that
/// would take it over the event size limit.
fn annotate(event: &mut TriggerEvent, score: &Score, detector: DetectorKind) {
    let Some(payload) = event.payload.as_object_mut() else {
        return;
    };
    if payload.contains_key("anomaly") {
        return;
    }
    let added_score = !payload.contains_key("anomaly_score");
    payload.insert("anomaly".into(), Value::Object(score_json(score, detector)));
    if added_score {
        payload.insert("anomaly_score".into(), json!(round(score.value)));
    }
    let fits = serde_json::to_vec(&event.payload)
        .is_ok_and(|b| b.len() <= grace_model::event::MAX_PAYLOAD_BYTES);
    if !fits && let Some(payload) = event.payload.as_object_mut() {
        payload.remove("anomaly");
        if added_score {
            payload.remove("anomaly_score");
        }
    }
}

fn alarm_event(
    sample: &TriggerEvent,
    value: f64,
    score: &Score,
    detector: DetectorKind,
) -> TriggerEvent {
    let mut payload = score_json(score, detector);
    payload.insert("value".into(), json!(value));
    payload.insert("anomaly_score".into(), json!(round(score.value)));
    payload.insert("sample_event_type".into(), json!(sample.event_type));
    for key in ["metric", "labels"] {
        if let Some(v) = sample.payload.get(key) {
            payload.insert(key.into(), v.clone());
        }
    }
    TriggerEvent {
        event_type: ALARM_EVENT_TYPE.to_owned(),
        source: sample.source.clone(),
        actor: sample.actor.clone(),
        resource: sample.resource.clone(),
        payload: Value::Object(payload),
        timestamp: sample.timestamp,
    }
}
