//! The `anomaly` capability's reader: the anomaly scores and forecasts of metric series, as the
//! host's detectors keep them (the server's per-series detectors, `docs/anomaly.md`).
//!
//! Like the graph, there is one reader per host, not a provider per resource: the detectors
//! score every metric event the host accepts, whatever sent it. Reads are in memory and answer
//! at once. A series is named by its metric and its exact label set; the source and resource
//! that reported it do not matter, and when several series match, the most recently updated one
//! answers.
//!
//! Where no detector has seen any sample (dry runs, `grace run`, replays) the reader is
//! [`NoDetectorHistory`], which answers `None` for every series: a dry run has no detector
//! history, and making one up from the simulated fleet would score samples nobody sent.

use grace_model::Labels;
use serde::{Deserialize, Serialize};

/// Most steps a forecast answers, whatever the horizon asked.
pub const MAX_FORECAST_STEPS: usize = 1_440;

/// The latest score of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesScore {
    /// From 0 (as expected) to 1.
    pub value: f64,
    /// What saw it: `level`, `seasonal`, `novel`, `gaussian` or `warmup`.
    pub component: String,
    /// The low end of the range the detector expected, when it had one.
    pub expected_low: Option<f64>,
    /// Its high end.
    pub expected_high: Option<f64>,
    /// The value of the sample scored.
    pub sample_value: f64,
    /// Its time, in milliseconds since the epoch.
    pub sample_millis: u64,
    /// The detector (`grace`, `robust`, `windowed-gaussian`).
    pub detector: String,
    /// Whether the score is at or above the host's alarm threshold.
    pub alarming: bool,
}

/// One forecast step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// When, in milliseconds since the epoch.
    pub millis: u64,
    /// The point forecast.
    pub value: f64,
    /// The prediction interval's low end.
    pub low: f64,
    /// Its high end.
    pub high: f64,
}

/// A series' forecast from its last sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// The model fitted (`MSTL(288)+AutoETS`, `AutoETS`, `flat`).
    pub model: String,
    /// The prediction intervals' coverage.
    pub level: f64,
    /// The steps up to the horizon asked, at most [`MAX_FORECAST_STEPS`].
    pub steps: Vec<Step>,
}

/// The anomaly scores and forecasts a run can read.
pub trait AnomalyReader: Send + Sync {
    /// The latest score of the series of `metric` with exactly `labels`; `None` when no such
    /// series is kept or it has not been scored yet.
    fn score(&self, metric: &str, labels: &Labels) -> Option<SeriesScore>;

    /// The series' forecast up to `horizon_ms` after its last sample, at most
    /// [`MAX_FORECAST_STEPS`] steps; `None` when no such series is kept or it has no forecast.
    fn forecast(&self, metric: &str, labels: &Labels, horizon_ms: u64) -> Option<Forecast>;
}

/// The reader of a host whose detectors have seen nothing: dry runs, `grace run` and replays.
/// Every series reads `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDetectorHistory;

impl AnomalyReader for NoDetectorHistory {
    fn score(&self, _metric: &str, _labels: &Labels) -> Option<SeriesScore> {
        None
    }

    fn forecast(&self, _metric: &str, _labels: &Labels, _horizon_ms: u64) -> Option<Forecast> {
        None
    }
}
