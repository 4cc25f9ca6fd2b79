//! `/charts`: the event rate, runs and outcomes over time, decision latencies (from the
//! server's own counters, [`super::history`]), and a chosen series' values, anomaly scores and
//! forecasts (from the stored events, which carry them: `docs/anomaly.md`). Drawn by uPlot from
//! the JSON of `/charts/data` and `/charts/series`; the page says in words what it charts, for
//! readers without the canvas.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use maud::html;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::history::{Series, latency_bounds};
use super::session::Viewer;
use super::view::{self, Nav};
use super::{Page, PageError};
use crate::app::App;
use crate::store::StoredEvent;

/// How many of the newest events are read to find series and their samples.
pub const SCAN: usize = 20_000;
/// And how many bytes of them at most: a store of large payloads is read less far back.
pub const SCAN_BYTES: usize = 16 * 1024 * 1024;
/// The most series offered.
pub const MAX_SERIES: usize = 100;

/// One metric series, as the anomaly detectors name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    event_type: String,
    source: String,
    resource: String,
    metric: String,
}

impl SeriesKey {
    fn of(stored: &StoredEvent) -> Option<SeriesKey> {
        let e = &stored.event;
        e.payload.get("anomaly_score")?;
        Some(SeriesKey {
            event_type: e.event_type.clone(),
            source: e.source.clone(),
            resource: e.resource.clone(),
            metric: e
                .payload
                .get("metric")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        })
    }

    /// As a form value: the four parts joined by a character none of them may hold.
    fn encode(&self) -> String {
        [&self.event_type, &self.source, &self.resource, &self.metric]
            .map(String::as_str)
            .join("\u{1f}")
    }

    fn label(&self) -> String {
        let metric = if self.metric.is_empty() {
            String::new()
        } else {
            format!(" {}", self.metric)
        };
        format!(
            "{} · {}{metric} ({})",
            self.resource, self.event_type, self.source
        )
    }
}

/// `?series=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartsQuery {
    series: Option<String>,
}

/// `GET /charts`.
pub async fn show(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<ChartsQuery>,
) -> Result<Page, PageError> {
    let (scan, events) = recent(&app).await?;
    let mut keys: Vec<SeriesKey> = events.iter().filter_map(SeriesKey::of).collect();
    drop(events);
    drop(scan);
    keys.sort();
    keys.dedup();
    keys.truncate(MAX_SERIES);
    let chosen = match q.series.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.to_owned()),
        None => keys.first().map(SeriesKey::encode),
    };
    let body = html! {
        h1 { "Charts" }
        p class="muted" { "The last hour of this server, sampled every 5 seconds since it started; longer history is in Prometheus, scraping /metrics." }
        section aria-labelledby="rate-h" {
            h2 id="rate-h" { "Events accepted per second" }
            div class="chart" data-chart="events" role="img" aria-label="Events accepted per second over the last hour" {}
        }
        section aria-labelledby="runs-h" {
            h2 id="runs-h" { "Runs finished, by outcome, and anomaly alarms" }
            div class="chart" data-chart="runs" role="img" aria-label="Runs that succeeded and failed, and anomaly alarms, per 5 seconds" {}
        }
        section aria-labelledby="latency-h" {
            h2 id="latency-h" { "Decision latency" }
            p class="muted" { "From an event's acceptance to its run starting (trigger matching, the trust core's admission, scheduling), median and 95th percentile per interval; and the 95th percentile of run durations. Percentiles are bounded by the histogram's buckets, as Prometheus bounds them." }
            div class="chart" data-chart="latency" role="img" aria-label="Decision latency percentiles over the last hour" {}
        }
        section aria-labelledby="series-h" {
            h2 id="series-h" { "A series: values, anomaly scores and forecasts" }
            @if keys.is_empty() {
                p class="empty" { "No scored metric sample among the last " (SCAN) " events." }
            } @else {
                form method="get" action="/charts" class="filters" {
                    label for="series" { "Series" }
                    select id="series" name="series" {
                        @for k in &keys {
                            @let value = k.encode();
                            option value=(value) selected[chosen.as_deref() == Some(value.as_str())] { (k.label()) }
                        }
                    }
                    button type="submit" { "Show" }
                }
                @if let Some(key) = &chosen {
                    div class="chart" data-chart="series" data-series=(key) role="img" aria-label="The chosen series' values, anomaly scores and forecasts" {}
                }
            }
        }
    };
    Ok(Page(view::page(Some(&viewer), "Charts", Nav::Charts, body)))
}

/// `GET /charts/data`: the server's counters, per interval.
pub async fn data(State(app): State<App>) -> Json<Series> {
    Json(app.dashboard.history.series(latency_bounds(&app.metrics)))
}

/// One series' samples.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct SeriesData {
    /// Sample times (seconds since the epoch).
    pub t: Vec<f64>,
    /// Values.
    pub value: Vec<f64>,
    /// Anomaly scores in [0, 1].
    pub score: Vec<Option<f64>>,
    /// Forecasts, by horizon: where each forecast lands (`t` + horizon), the point forecast
    /// and its interval.
    pub forecasts: BTreeMap<String, Forecast>,
}

/// One horizon's forecasts.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Forecast {
    /// When each forecast is for.
    pub t: Vec<f64>,
    /// The point forecast.
    pub value: Vec<f64>,
    /// The interval's low end.
    pub low: Vec<Option<f64>>,
    /// The interval's high end.
    pub high: Vec<Option<f64>>,
}

/// `GET /charts/series?series=`: the chosen series among the newest events.
pub async fn series(
    State(app): State<App>,
    Query(q): Query<ChartsQuery>,
) -> Result<Json<SeriesData>, PageError> {
    let wanted = q
        .series
        .ok_or_else(|| PageError::field("series", "name a series"))?;
    let (_scan, mut events) = recent(&app).await?;
    events.reverse();
    let mut out = SeriesData::default();
    for stored in &events {
        if SeriesKey::of(stored).is_none_or(|k| k.encode() != wanted) {
            continue;
        }
        let payload = &stored.event.payload;
        let Some(value) = payload.get("value").and_then(Value::as_f64) else {
            continue;
        };
        let t = stored.event.timestamp as f64 / 1000.0;
        out.t.push(t);
        out.value.push(value);
        out.score
            .push(payload.get("anomaly_score").and_then(Value::as_f64));
        if let Some(forecasts) = payload.get("forecast").and_then(Value::as_object) {
            for (horizon, f) in forecasts {
                let (Ok(ahead), Some(v)) = (
                    humantime::parse_duration(horizon),
                    f.get("value").and_then(Value::as_f64),
                ) else {
                    continue;
                };
                let entry = out.forecasts.entry(horizon.clone()).or_default();
                entry.t.push(t + ahead.as_secs_f64());
                entry.value.push(v);
                entry.low.push(f.get("low").and_then(Value::as_f64));
                entry.high.push(f.get("high").and_then(Value::as_f64));
            }
        }
    }
    Ok(Json(out))
}

/// The newest events, read by one request at a time (the memory of a scan is bounded, and
/// so is the number of scans).
/// The permit is held until the caller is done with the events.
async fn recent(
    app: &App,
) -> Result<(tokio::sync::SemaphorePermit<'_>, Vec<StoredEvent>), PageError> {
    let one_at_a_time = app
        .dashboard
        .scans
        .acquire()
        .await
        .map_err(|e| PageError::internal(e.to_string()))?;
    let store = app.store.clone();
    let events = tokio::task::spawn_blocking(move || store.recent_events(SCAN, SCAN_BYTES))
        .await
        .map_err(|e| PageError::internal(e.to_string()))??;
    Ok((one_at_a_time, events))
}
