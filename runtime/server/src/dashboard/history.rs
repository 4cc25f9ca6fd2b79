//! The charts' memory: the server's own counters, sampled every [`EVERY`] into a ring of the
//! last hour ([`KEEP`] samples), so that a page opened now shows the last hour at once.
//!
//! Only counters are kept (events accepted, runs by outcome, the latency histograms'
//! cumulative buckets); rates and percentiles are computed per interval when a chart asks. The
//! ring is bounded whatever happens; it starts empty at each start (Prometheus, scraping
//! `/metrics`, is where history longer than an hour belongs).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use crate::app::App;
use crate::metrics::{Histogram, Metrics};
use crate::supervisor::TaskError;

/// How often the counters are sampled.
pub const EVERY: Duration = Duration::from_secs(5);
/// How many samples are kept: an hour.
pub const KEEP: usize = 720;

/// One sample of the counters (all cumulative since the start).
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    at_millis: u64,
    events: u64,
    alarms: u64,
    succeeded: u64,
    failed: u64,
    start_latency: Vec<u64>,
    start_count: u64,
    run_duration: Vec<u64>,
    run_count: u64,
}

impl Sample {
    fn of(metrics: &Metrics, at_millis: u64) -> Sample {
        let transitions = crate::sync::lock(&metrics.run_transitions).clone();
        let count = |state: &str| transitions.get(state).copied().unwrap_or(0);
        Sample {
            at_millis,
            events: metrics.events_accepted.load(Ordering::Relaxed),
            alarms: metrics.anomaly.alarms.load(Ordering::Relaxed),
            succeeded: count("succeeded"),
            failed: count("failed"),
            start_latency: metrics.ingest_to_run_start.cumulative(),
            start_count: metrics.ingest_to_run_start.count(),
            run_duration: metrics.run_duration.cumulative(),
            run_count: metrics.run_duration.count(),
        }
    }
}

/// The ring of samples.
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

/// What the charts draw: one value per interval between two samples (`null` where nothing
/// was observed), times in seconds since the epoch (uPlot's convention).
#[derive(Debug, Serialize, PartialEq)]
pub struct Series {
    /// The end of each interval.
    pub t: Vec<f64>,
    /// Events accepted per second.
    pub events_per_s: Vec<f64>,
    /// Anomaly alarms in the interval.
    pub alarms: Vec<f64>,
    /// Runs that succeeded in the interval.
    pub runs_succeeded: Vec<f64>,
    /// Runs that failed in the interval.
    pub runs_failed: Vec<f64>,
    /// Median time from an event's acceptance to its run starting (ms).
    pub start_p50_ms: Vec<Option<f64>>,
    /// 95th percentile of the same (ms).
    pub start_p95_ms: Vec<Option<f64>>,
    /// 95th percentile of run durations (ms).
    pub run_p95_ms: Vec<Option<f64>>,
}

impl History {
    /// Takes a sample now.
    pub fn sample(&self, metrics: &Metrics, at_millis: u64) {
        let sample = Sample::of(metrics, at_millis);
        let mut samples = crate::sync::lock(&self.samples);
        if samples.len() == KEEP {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The charts' series over the kept samples.
    pub fn series(&self, bounds: &[f64]) -> Series {
        let samples = crate::sync::lock(&self.samples);
        let mut out = Series {
            t: Vec::new(),
            events_per_s: Vec::new(),
            alarms: Vec::new(),
            runs_succeeded: Vec::new(),
            runs_failed: Vec::new(),
            start_p50_ms: Vec::new(),
            start_p95_ms: Vec::new(),
            run_p95_ms: Vec::new(),
        };
        for (before, after) in samples.iter().zip(samples.iter().skip(1)) {
            let secs = after.at_millis.saturating_sub(before.at_millis) as f64 / 1000.0;
            let delta = |f: fn(&Sample) -> u64| f(after).saturating_sub(f(before)) as f64;
            out.t.push(after.at_millis as f64 / 1000.0);
            out.events_per_s.push(if secs > 0.0 {
                delta(|s| s.events) / secs
            } else {
                0.0
            });
            out.alarms.push(delta(|s| s.alarms));
            out.runs_succeeded.push(delta(|s| s.succeeded));
            out.runs_failed.push(delta(|s| s.failed));
            let starts = after.start_count.saturating_sub(before.start_count);
            let runs = after.run_count.saturating_sub(before.run_count);
            let (b, a) = (&before.start_latency, &after.start_latency);
            out.start_p50_ms
                .push(quantile_ms(bounds, b, a, starts, 0.5));
            out.start_p95_ms
                .push(quantile_ms(bounds, b, a, starts, 0.95));
            let (b, a) = (&before.run_duration, &after.run_duration);
            out.run_p95_ms.push(quantile_ms(bounds, b, a, runs, 0.95));
        }
        out
    }
}

/// The `q` quantile (ms) of the `total` observations made between two cumulative bucket
/// counts: the upper bound of the first bucket holding it, as Prometheus' `histogram_quantile`
/// bounds it; `None` when nothing was observed. Observations beyond the last bucket are in the
/// total but in no bucket: a quantile among them is shown as infinite (`null` in JSON, no
/// point), never as the last bound.
fn quantile_ms(bounds: &[f64], before: &[u64], after: &[u64], total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let at = after
        .iter()
        .zip(before)
        .position(|(a, b)| a.saturating_sub(*b) >= rank)?;
    bounds.get(at).map(|secs| secs * 1000.0)
}

/// The sampler: a supervised background task.
pub async fn sample(app: App) -> Result<(), TaskError> {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        app.dashboard
            .history
            .sample(&app.metrics, grace_engine::event::system_now_millis());
    }
}

/// The bounds of the latency histograms the history samples.
pub fn latency_bounds(metrics: &Metrics) -> &'static [f64] {
    Histogram::bounds(&metrics.ingest_to_run_start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_percentiles_are_per_interval() {
        let metrics = Metrics::default();
        let history = History::default();
        history.sample(&metrics, 10_000);
        metrics.events_accepted.fetch_add(50, Ordering::Relaxed);
        for ms in [1, 2, 3, 4, 5, 6, 7, 8, 9, 200] {
            metrics
                .ingest_to_run_start
                .observe(Duration::from_millis(ms));
        }
        metrics.transition(crate::runs::RunState::Succeeded);
        history.sample(&metrics, 15_000);
        let series = history.series(latency_bounds(&metrics));
        assert_eq!(series.t, vec![15.0]);
        assert_eq!(series.events_per_s, vec![10.0]);
        assert_eq!(series.runs_succeeded, vec![1.0]);
        // Half the starts took at most 5 ms; the slowest, 200 ms, is in the 250 ms bucket.
        assert_eq!(series.start_p50_ms, vec![Some(5.0)]);
        assert_eq!(series.start_p95_ms, vec![Some(250.0)]);
        assert_eq!(series.run_p95_ms, vec![None]);
    }

    #[test]
    fn a_percentile_beyond_the_last_bucket_is_not_the_last_bound() {
        let metrics = Metrics::default();
        let history = History::default();
        history.sample(&metrics, 0);
        // Runs that waited an hour for approval: beyond the 300 s bucket.
        for _ in 0..3 {
            metrics.run_duration.observe(Duration::from_secs(3600));
        }
        metrics.run_duration.observe(Duration::from_secs(1));
        history.sample(&metrics, 5000);
        let series = history.series(latency_bounds(&metrics));
        assert_eq!(series.run_p95_ms, vec![None]);
        assert_eq!(series.start_p95_ms, vec![None]);
    }

    #[test]
    fn the_ring_keeps_the_last_hour_only() {
        let metrics = Metrics::default();
        let history = History::default();
        for i in 0..(KEEP as u64 + 10) {
            history.sample(&metrics, i * 5000);
        }
        let series = history.series(latency_bounds(&metrics));
        assert_eq!(series.t.len(), KEEP - 1);
        assert_eq!(series.t.first(), Some(&55.0));
    }
}
