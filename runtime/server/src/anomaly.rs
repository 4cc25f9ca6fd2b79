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

use std::time::Duration;

use grace_anomaly::forecast::{Forecast, ForecastSettings, Forecaster, Step};
use grace_anomaly::{Detector, DetectorKind, Rejected, Score};
use grace_model::TriggerEvent;
use grace_model::glob::Glob;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Likely causes an alarm carries (its incident's, ranked as it stands at the alarm).
pub const CAUSES_ON_ALARM: usize = 3;

/// How far ahead of the clock a sample may be stamped and still be scored.
pub const MAX_AHEAD_MS: u64 = 15 * 60_000;

/// A batch after scoring: its events with the alarms and clearings they raised, each just
/// before its sample, and how many of those were dropped for want of room in the queue.
pub struct ScoredBatch {
    /// The events, in order.
    pub events: Vec<TriggerEvent>,
    /// Alarms and clearings not added.
    pub dropped: usize,
}

/// The event type of an alarm.
pub const ALARM_EVENT_TYPE: &str = "anomaly";
/// The event type of an alarm's end: the series is back in the range it was expected in
/// before the alarm.
pub const CLEARED_EVENT_TYPE: &str = "anomaly.cleared";

/// The default `alarm`: the threshold NAB's standard profile optimises to for the `grace`
/// detector on the development corpus (`just bench`), rounded down so the sample it was picked
/// at alarms.
pub const DEFAULT_ALARM: f64 = 0.7642;

/// `[anomaly]` in grace.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Score metric events at all (default true).
    pub enabled: bool,
    /// The detector every series gets (default `grace`).
    pub detector: DetectorKind,
    /// The score at which an `anomaly` event fires (default 0.7642: the threshold NAB's
    /// standard profile optimises to for the default detector on the development corpus).
    pub alarm: f64,
    /// Series kept at most (default 10,000; about 20 KB each with the default detector).
    pub max_series: usize,
    /// `[anomaly.forecast]`: forecasts for the series of some metrics.
    pub forecast: ForecastConfig,
    /// `[anomaly.incidents]`: when an incident is over, how far back causes are looked for.
    pub incidents: crate::incidents::IncidentConfig,
}

/// `[anomaly.forecast]`: which series get forecasts, and how far ahead.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Globs on the payload's `metric`; a series of a matching metric is forecast. Empty (the
    /// default): nothing is forecast (each fit costs milliseconds; choose the series).
    pub metrics: Vec<String>,
    /// The horizons summarised in each event's `forecast` (at most 8, each up to a day):
    /// `forecast["10m"].max > 500` reads them.
    pub horizons: Vec<String>,
    /// The prediction intervals' coverage (default 0.9).
    pub level: f64,
    /// Samples between fits (default 12).
    pub refit_every: usize,
    /// Values kept and fitted on (default 1,008: three and a half days at five-minute samples).
    pub history: usize,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        let d = ForecastSettings::default();
        ForecastConfig {
            metrics: Vec::new(),
            horizons: vec!["10m".to_owned(), "30m".to_owned(), "1h".to_owned()],
            level: d.level,
            refit_every: d.refit_every,
            history: d.history,
        }
    }
}

/// Horizons at most.
const MAX_HORIZONS: usize = 8;
/// The longest horizon.
const MAX_HORIZON: Duration = Duration::from_secs(86_400);
/// Steps a forecast holds at most, whatever the horizons and sampling interval.
const MAX_FORECAST_STEPS: usize = 1_440;

impl ForecastConfig {
    /// The horizons, parsed; the error names the key.
    fn horizons(&self) -> Result<Vec<(String, Duration)>, (&'static str, String)> {
        if self.horizons.len() > MAX_HORIZONS {
            return Err((
                "forecast.horizons",
                format!("at most {MAX_HORIZONS} horizons"),
            ));
        }
        self.horizons
            .iter()
            .map(|text| match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() && d <= MAX_HORIZON => Ok((text.clone(), d)),
                Ok(_) => Err((
                    "forecast.horizons",
                    format!("`{text}` must be above zero and at most a day"),
                )),
                Err(e) => Err((
                    "forecast.horizons",
                    format!("`{text}` is not a duration like `10m` or `1h`: {e}"),
                )),
            })
            .collect()
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        self.horizons()?;
        if self.metrics.iter().any(|m| m.is_empty() || m.len() > 256) {
            return Err((
                "forecast.metrics",
                "each glob must be 1 to 256 bytes".to_owned(),
            ));
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(("forecast.level", format!("{} is not in (0, 1)", self.level)));
        }
        if !(1..=10_000).contains(&self.refit_every) {
            return Err((
                "forecast.refit_every",
                format!("{} is not between 1 and 10000", self.refit_every),
            ));
        }
        if !(24..=4_096).contains(&self.history) {
            return Err((
                "forecast.history",
                format!("{} is not between 24 and 4096", self.history),
            ));
        }
        Ok(())
    }
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: true,
            detector: DetectorKind::Grace,
            alarm: DEFAULT_ALARM,
            max_series: 10_000,
            forecast: ForecastConfig::default(),
            incidents: crate::incidents::IncidentConfig::default(),
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
        self.forecast.validate()?;
        self.incidents.validate()
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
    /// Series dropped, the least recently heard from, to make room for a new one beyond
    /// `max_series`.
    pub over_limit: AtomicU64,
    /// `anomaly` events raised.
    pub alarms: AtomicU64,
    /// Samples stamped more than 15 minutes ahead of the clock, not scored.
    pub future: AtomicU64,
}

struct Series {
    detector: Detector,
    alarming: bool,
    /// For series of the metrics `[anomaly.forecast]` names.
    forecaster: Option<Box<Forecaster>>,
    /// Since an alarm: the range the series was expected in before it, until a value is back
    /// in it.
    episode: Option<grace_anomaly::Expected>,
    /// Its name and latest scored sample, for runs' `anomaly` reads.
    latest: Latest,
}

/// Every series' detector.
pub struct Anomalies {
    config: AnomalyConfig,
    horizons: Vec<(String, Duration)>,
    forecast_metrics: Vec<Glob>,
    series: Mutex<HashMap<String, Series>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Incidents, fed the same events in the same order.
    incidents: Mutex<crate::incidents::Incidents>,
}

/// What one sample's scoring gave: its score, whether it raised an alarm or cleared one, its
/// series' forecast summary.
enum Outcome {
    Scored(Score, Transition, Option<Value>),
    Skipped,
}

/// A series' alarm state change on one sample.
#[derive(Clone, Copy, PartialEq)]
enum Transition {
    None,
    Alarm,
    /// Back in the range expected before the alarm.
    Cleared(grace_anomaly::Expected),
}

impl Anomalies {
    /// Detectors as `config` says.
    pub fn new(
        config: AnomalyConfig,
        metrics: Arc<crate::metrics::Metrics>,
        graph: Option<Arc<dyn grace_executor::graph::GraphReader>>,
    ) -> Anomalies {
        // Checked when the configuration was read; a horizon that slipped through is dropped.
        let horizons = config.forecast.horizons().unwrap_or_default();
        let forecast_metrics = config.forecast.metrics.iter().map(Glob::new).collect();
        Anomalies {
            incidents: Mutex::new(crate::incidents::Incidents::new(
                config.incidents.clone(),
                graph,
            )),
            horizons,
            forecast_metrics,
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
    pub fn score(&self, events: Vec<TriggerEvent>, room: usize, now: u64) -> ScoredBatch {
        let mut out = ScoredBatch {
            events: Vec::with_capacity(events.len()),
            dropped: 0,
        };
        let Ok(mut incidents) = self.incidents.lock() else {
            out.events = events;
            return out;
        };
        let mut room = room;
        // A sample stamped further ahead than this is neither scored nor tracked: it would
        // make every later sample of its series look out of order.
        let horizon = now.saturating_add(MAX_AHEAD_MS);
        for mut event in events {
            if event.timestamp > horizon {
                if sample(&event).is_some() {
                    self.counts().future.fetch_add(1, Ordering::Relaxed);
                }
                out.events.push(event);
                continue;
            }
            // With scoring off, alerts still make incidents.
            let change = if self.config.enabled {
                self.score_one(&mut event)
            } else {
                None
            };
            if let Some(mut change) = change {
                if room > 0 {
                    room -= 1;
                    if change.event_type == ALARM_EVENT_TYPE {
                        self.counts().alarms.fetch_add(1, Ordering::Relaxed);
                    }
                    // Stored, and observed, just before its sample: a rebuild from the log
                    // sees them in the order they were taken in.
                    incidents.observe(&mut change);
                    if change.event_type == ALARM_EVENT_TYPE {
                        incidents.attach_causes(&mut change, CAUSES_ON_ALARM);
                    }
                    out.events.push(change);
                } else {
                    out.dropped += 1;
                }
            }
            incidents.observe(&mut event);
            out.events.push(event);
        }
        out
    }

    /// Scores one event if it is a metric sample; answers the alarm it raises or the clearing
    /// of one.
    fn score_one(&self, event: &mut TriggerEvent) -> Option<TriggerEvent> {
        let sample = sample(event)?;
        let Outcome::Scored(score, transition, forecast) =
            self.update(&sample, event.timestamp, true)
        else {
            return None;
        };
        // Too little history yet: no score rather than a score of 0.
        let score = (score.component != grace_anomaly::Component::Warmup).then_some(score);
        annotate(event, score.as_ref(), forecast, self.config.detector);
        match transition {
            Transition::None => None,
            Transition::Alarm => Some(bounded(alarm_event(
                event,
                sample.value,
                &score?,
                self.config.detector,
            ))),
            Transition::Cleared(range) => Some(bounded(cleared_event(event, sample.value, range))),
        }
    }

    /// Feeds a stored event to its series and to the incidents without annotating or alarming:
    /// how both are rebuilt from the event log after a restart.
    pub fn learn(&self, event: &TriggerEvent) {
        if self.config.enabled
            && let Some(sample) = sample(event)
        {
            self.update(&sample, event.timestamp, false);
        }
        if let Ok(mut incidents) = self.incidents.lock() {
            // Stored events carry their incident ids already; the copy's stamp is dropped.
            incidents.observe(&mut event.clone());
        }
    }

    /// Every incident, open ones first (newest first), at most `limit`.
    pub fn incidents(&self, limit: usize) -> Vec<crate::incidents::Incident> {
        self.incidents.lock().map_or_else(
            |_| Vec::new(),
            |i| i.list().into_iter().take(limit).cloned().collect(),
        )
    }

    /// One incident.
    pub fn incident(&self, id: &str) -> Option<crate::incidents::Incident> {
        self.incidents.lock().ok()?.get(id).cloned()
    }

    /// An incident's likely causes, ranked.
    pub fn causes(&self, id: &str) -> Option<crate::incidents::Causes> {
        self.incidents.lock().ok()?.causes(id)
    }

    /// Feeds one sample to its series (made if there is room). `live`: a sample being accepted
    /// now, counted and answered with its series' forecast summary (not one relearnt from the
    /// log).
    fn update(&self, sample: &Sample, timestamp: u64, live: bool) -> Outcome {
        let Ok(mut series) = self.series.lock() else {
            return Outcome::Skipped;
        };
        // Full: the series heard from least recently makes room (pods come and go).
        if series.len() >= self.config.max_series && !series.contains_key(&sample.key) {
            let idle = series
                .iter()
                .min_by_key(|(_, s)| s.latest.scored.map_or(i64::MIN, |l| l.millis))
                .map(|(k, _)| k.clone());
            if let Some(idle) = idle {
                series.remove(&idle);
                if live {
                    self.counts().over_limit.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let forecast = !self.horizons.is_empty()
            && self
                .forecast_metrics
                .iter()
                .any(|g| g.matches(&sample.metric));
        let s = match series.entry(sample.key.clone()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Series {
                detector: Detector::new(self.config.detector),
                alarming: false,
                forecaster: forecast.then(|| Box::new(Forecaster::new(self.settings()))),
                episode: None,
                latest: Latest::new(&sample.key, &sample.metric),
            }),
        };
        let millis = i64::try_from(timestamp).unwrap_or(i64::MAX);
        match s.detector.update(millis, sample.value) {
            Ok(score) => {
                if live {
                    self.counts().scored.fetch_add(1, Ordering::Relaxed);
                }
                let high = score.value >= self.config.alarm;
                let warm = score.component != grace_anomaly::Component::Warmup;
                let mut transition = Transition::None;
                if let Some(range) = s.episode
                    && (range.low..=range.high).contains(&sample.value)
                {
                    s.episode = None;
                    transition = Transition::Cleared(range);
                }
                if high && !s.alarming && warm {
                    transition = Transition::Alarm;
                    s.episode = score.expected;
                }
                s.alarming = high;
                s.latest.scored = Some(Scored {
                    score,
                    value: sample.value,
                    millis,
                });
                let interval = s.detector.interval();
                let summary = s.forecaster.as_mut().and_then(|f| {
                    f.update(millis, sample.value, interval);
                    live.then(|| f.forecast().map(|fc| self.summary(&fc, millis)))
                        .flatten()
                });
                Outcome::Scored(score, transition, summary)
            }
            Err(rejected) => {
                if live {
                    let counter = match rejected {
                        Rejected::NotFinite => &self.counts().not_finite,
                        Rejected::OutOfOrder | Rejected::Repeated => &self.counts().out_of_order,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Skipped
            }
        }
    }
}

impl Anomalies {
    fn settings(&self) -> ForecastSettings {
        let f = &self.config.forecast;
        let longest = self
            .horizons
            .iter()
            .map(|(_, d)| *d)
            .max()
            .unwrap_or_default();
        ForecastSettings {
            history: f.history,
            refit_every: f.refit_every,
            // Enough steps for the longest horizon at one-minute samples, within the bound;
            // coarser series use fewer.
            horizon_steps: usize::try_from(longest.as_secs() / 60)
                .unwrap_or(MAX_FORECAST_STEPS)
                .clamp(1, MAX_FORECAST_STEPS),
            level: f.level,
            ..ForecastSettings::default()
        }
    }

    /// Per horizon: the point forecast at its end, the highest and lowest point forecasts up
    /// to it, and the prediction interval's extremes up to it.
    fn summary(&self, forecast: &Forecast, last: i64) -> Value {
        let mut out = Map::new();
        out.insert("model".into(), json!(forecast.model));
        out.insert("level".into(), json!(forecast.level));
        for (name, horizon) in &self.horizons {
            let ms = i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX);
            let steps = forecast.within(last, ms);
            let Some(end) = steps.last() else { continue };
            // A forecast that stops short of the horizon says nothing of it: left out (null),
            // not summarised over less.
            let interval = forecast
                .steps
                .first()
                .map_or(i64::MAX, |s| s.millis.saturating_sub(last));
            if end.millis.saturating_add(interval) <= last.saturating_add(ms) {
                continue;
            }
            let fold = |f: fn(&Step) -> f64, pick: fn(f64, f64) -> f64| {
                steps.iter().map(f).fold(f(end), pick)
            };
            out.insert(
                name.clone(),
                json!({
                    "value": end.value,
                    "max": fold(|s| s.value, f64::max),
                    "min": fold(|s| s.value, f64::min),
                    "high": fold(|s| s.high, f64::max),
                    "low": fold(|s| s.low, f64::min),
                }),
            );
        }
        Value::Object(out)
    }
}

/// A metric event as a sample of its series.
struct Sample {
    key: String,
    metric: String,
    value: f64,
}

/// The series and value of a metric event: a payload object with a numeric `value` (alarms and
/// their clearings are not samples).
fn sample(event: &TriggerEvent) -> Option<Sample> {
    if event.event_type == ALARM_EVENT_TYPE || event.event_type == CLEARED_EVENT_TYPE {
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
    // The event type too: `disk.usage` and `cpu.usage` samples without a `metric` on one
    // resource are two series.
    let key = format!(
        "{}\0{}\0{}\0{}\0{}",
        event.event_type, event.source, event.resource, metric, labels
    );
    Some(Sample {
        key,
        metric: metric.to_owned(),
        value,
    })
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

/// Adds `anomaly` (and `anomaly_score`, unless the sender set one) and `forecast` to the
/// payload where there are, unless that would take it over the event size limit. A sender's own
/// `anomaly` or `forecast` is kept.
fn annotate(
    event: &mut TriggerEvent,
    score: Option<&Score>,
    forecast: Option<Value>,
    detector: DetectorKind,
) {
    let Some(payload) = event.payload.as_object_mut() else {
        return;
    };
    let mut added: Vec<&'static str> = Vec::new();
    if let Some(score) = score
        && !payload.contains_key("anomaly")
    {
        payload.insert("anomaly".into(), Value::Object(score_json(score, detector)));
        added.push("anomaly");
        if !payload.contains_key("anomaly_score") {
            payload.insert("anomaly_score".into(), json!(round(score.value)));
            added.push("anomaly_score");
        }
    }
    if let Some(forecast) = forecast
        && !payload.contains_key("forecast")
    {
        payload.insert("forecast".into(), forecast);
        added.push("forecast");
    }
    if !event.payload_fits()
        && let Some(payload) = event.payload.as_object_mut()
    {
        for key in added {
            payload.remove(key);
        }
    }
}

/// `event` within the stored events' size limit: its copied `labels` dropped if they take it
/// over (they are the sample's, on the sample).
fn bounded(mut event: TriggerEvent) -> TriggerEvent {
    if !event.payload_fits()
        && let Some(payload) = event.payload.as_object_mut()
    {
        payload.remove("labels");
        payload.insert("labels_left_out".into(), json!(true));
    }
    event
}

fn cleared_event(
    sample: &TriggerEvent,
    value: f64,
    range: grace_anomaly::Expected,
) -> TriggerEvent {
    let mut payload = Map::new();
    payload.insert("value".into(), json!(value));
    if range.low.is_finite() && range.high.is_finite() {
        payload.insert(
            "expected".into(),
            json!({"low": range.low, "high": range.high}),
        );
    }
    payload.insert("sample_event_type".into(), json!(sample.event_type));
    for key in ["metric", "labels"] {
        if let Some(v) = sample.payload.get(key) {
            payload.insert(key.into(), v.clone());
        }
    }
    TriggerEvent {
        event_type: CLEARED_EVENT_TYPE.to_owned(),
        source: sample.source.clone(),
        actor: sample.actor.clone(),
        resource: sample.resource.clone(),
        payload: Value::Object(payload),
        timestamp: sample.timestamp,
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

// --- What runs read: the `anomaly` capability (`grace_executor::AnomalyReader`) -------------

/// One series' name, and its latest scored sample: what a run's `anomaly.score` answers.
struct Latest {
    metric: String,
    /// The payload's labels, each value as written (a string) or as its JSON text.
    labels: grace_model::Labels,
    scored: Option<Scored>,
}

/// A scored sample.
#[derive(Clone, Copy)]
struct Scored {
    score: Score,
    value: f64,
    millis: i64,
}

impl Latest {
    /// The name of the series of `key` (its last part is the payload's labels as JSON text,
    /// which holds no NUL).
    fn new(key: &str, metric: &str) -> Latest {
        let labels = key
            .rsplit('\0')
            .next()
            .and_then(|text| serde_json::from_str::<Map<String, Value>>(text).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| match value {
                Value::String(text) => (name, text),
                other => (name, other.to_string()),
            })
            .collect();
        Latest {
            metric: metric.to_owned(),
            labels,
            scored: None,
        }
    }
}

impl Anomalies {
    /// `read` of the most recently scored series of `metric` with exactly `labels` (whatever
    /// its source and resource).
    fn read_latest<T>(
        &self,
        metric: &str,
        labels: &grace_model::Labels,
        read: impl FnOnce(&Series, Scored) -> Option<T>,
    ) -> Option<T> {
        let series = self.series.lock().ok()?;
        let (s, scored) = series
            .values()
            .filter(|s| s.latest.metric == metric && &s.latest.labels == labels)
            .filter_map(|s| s.latest.scored.map(|scored| (s, scored)))
            .max_by_key(|(_, scored)| scored.millis)?;
        read(s, scored)
    }
}

impl grace_executor::AnomalyReader for Anomalies {
    fn score(
        &self,
        metric: &str,
        labels: &grace_model::Labels,
    ) -> Option<grace_executor::anomaly::SeriesScore> {
        let detector = self.config.detector;
        self.read_latest(
            metric,
            labels,
            |_,
             Scored {
                 score,
                 value,
                 millis,
             }| {
                let expected = score
                    .expected
                    .filter(|e| e.low.is_finite() && e.high.is_finite());
                Some(grace_executor::anomaly::SeriesScore {
                    // Rounded as in events' payloads: a run reads what a trigger condition saw.
                    value: round(score.value),
                    component: score.component.to_string(),
                    expected_low: expected.map(|e| e.low),
                    expected_high: expected.map(|e| e.high),
                    sample_value: value,
                    sample_millis: u64::try_from(millis).unwrap_or(0),
                    detector: detector.name().to_owned(),
                    alarming: score.value >= self.config.alarm,
                })
            },
        )
    }

    fn forecast(
        &self,
        metric: &str,
        labels: &grace_model::Labels,
        horizon_ms: u64,
    ) -> Option<grace_executor::anomaly::Forecast> {
        self.read_latest(metric, labels, |s, _| {
            let forecaster = s.forecaster.as_ref()?;
            let (forecast, last) = (forecaster.forecast()?, forecaster.last_millis()?);
            let horizon = i64::try_from(horizon_ms).unwrap_or(i64::MAX);
            let steps = forecast
                .within(last, horizon)
                .iter()
                .take(grace_executor::anomaly::MAX_FORECAST_STEPS)
                .map(|step| grace_executor::anomaly::Step {
                    millis: u64::try_from(step.millis).unwrap_or(0),
                    value: step.value,
                    low: step.low,
                    high: step.high,
                })
                .collect();
            Some(grace_executor::anomaly::Forecast {
                model: forecast.model,
                level: forecast.level,
                steps,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_600_000;
    const FIVE_MIN: u64 = 300_000;

    fn sample(at: u64, value: f64) -> TriggerEvent {
        TriggerEvent {
            event_type: "metrics.push".to_owned(),
            source: "push".to_owned(),
            actor: "push".to_owned(),
            resource: "checkout".to_owned(),
            payload: json!({"metric": "latency_ms", "value": value}),
            timestamp: at,
        }
    }

    fn anomalies() -> Anomalies {
        Anomalies::new(
            AnomalyConfig::default(),
            Arc::new(crate::metrics::Metrics::default()),
            None,
        )
    }

    #[test]
    fn a_sample_stamped_far_ahead_is_not_scored_and_does_not_blind_its_series() {
        let a = anomalies();
        let now = T0 + 200 * FIVE_MIN;
        let ordinary: Vec<TriggerEvent> = (0..200)
            .map(|i| sample(T0 + i * FIVE_MIN, 100.0 + (i % 7) as f64))
            .collect();
        a.score(ordinary, 100, now);
        let ahead = a.score(vec![sample(now + 365 * 86_400_000, 5.0)], 100, now);
        assert!(ahead.events[0].payload.get("anomaly_score").is_none());
        assert_eq!(a.counts().future.load(Ordering::Relaxed), 1);
        let next = a.score(vec![sample(now, 103.0)], 100, now);
        assert!(
            next.events[0].payload.get("anomaly_score").is_some(),
            "{:?}",
            next.events
        );
    }

    #[test]
    fn an_alarm_comes_just_before_its_sample_and_is_dropped_without_room() {
        let a = anomalies();
        let ordinary: Vec<TriggerEvent> = (0..300)
            .map(|i| sample(T0 + i * FIVE_MIN, 100.0 + (i % 7) as f64))
            .collect();
        a.score(ordinary, 0, T0 + 300 * FIVE_MIN);
        let spike = || {
            vec![
                sample(T0 + 300 * FIVE_MIN, 900.0),
                sample(T0 + 301 * FIVE_MIN, 101.0),
            ]
        };
        let with_room = anomalies();
        with_room.score(
            (0..300)
                .map(|i| sample(T0 + i * FIVE_MIN, 100.0 + (i % 7) as f64))
                .collect(),
            0,
            T0 + 300 * FIVE_MIN,
        );
        let kinds = |b: &ScoredBatch| {
            b.events
                .iter()
                .map(|e| e.event_type.clone())
                .collect::<Vec<_>>()
        };
        let roomy = with_room.score(spike(), 10, T0 + 302 * FIVE_MIN);
        assert_eq!(
            kinds(&roomy),
            ["anomaly", "metrics.push", "anomaly.cleared", "metrics.push"],
            "{:?}",
            roomy.events
        );
        let tight = a.score(spike(), 0, T0 + 302 * FIVE_MIN);
        assert_eq!(kinds(&tight), ["metrics.push", "metrics.push"]);
        assert_eq!(tight.dropped, 2);
    }
}
