//! Anomaly scores and forecasts of metric series, as the host's detectors keep them
//! (`docs/anomaly.md`). Read only.
//!
//! Every metric event the host accepts with a numeric `value` is a sample of its series; the
//! host scores each sample for how unusual it is and, for the metrics its `[anomaly.forecast]`
//! names, forecasts the series. A series is named here by its metric and its exact label set
//! (whatever source or resource reported it; when several match, the most recently updated
//! one answers).
//!
//! Needs `[grants.metrics]` in the manifest: the series must be one a
//! `[[grants.metrics.series]]` entry grants, exactly as a query selecting it with `=` on each
//! label would be (see `docs/manifest.md`). Dry runs (`grace run --dry-run`, `grace replay`)
//! have no detector history: every series reads `None` there.
//!
//! ```no_run
//! use grace_sdk::anomaly;
//!
//! let labels = [("service", "checkout")];
//! if let Some(score) = anomaly::score("checkout_latency_ms", labels)? {
//!     if score.alarming {
//!         // Where will it be in ten minutes?
//!         let ahead = anomaly::forecast("checkout_latency_ms", labels, 600)?;
//!         let peak = ahead.and_then(|f| f.max_value());
//!     }
//! }
//! # Ok::<(), grace_sdk::Error>(())
//! ```

use crate::bindings::playbook::grace::playbook::anomaly as wit;
use crate::{Error, Result, labels};

/// The latest score of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesScore {
    /// From 0 (as expected) to 1 (far outside anything the series did), rounded to four
    /// decimals as in events' `anomaly_score`.
    pub value: f64,
    /// What saw it: `level`, `seasonal`, `novel`, `gaussian` or `warmup` (too little history yet).
    pub component: String,
    /// The low end of the range the detector expected the value in, when it had one.
    pub expected_low: Option<f64>,
    /// Its high end.
    pub expected_high: Option<f64>,
    /// The value of the sample scored.
    pub sample_value: f64,
    /// Its time, in milliseconds since the Unix epoch.
    pub sample_millis: u64,
    /// The detector (`grace`, `robust`, `windowed-gaussian`).
    pub detector: String,
    /// Whether the score is at or above the host's alarm threshold (`[anomaly] alarm`).
    pub alarming: bool,
}

/// One forecast step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// When, in milliseconds since the Unix epoch.
    pub millis: u64,
    /// The point forecast.
    pub value: f64,
    /// The prediction interval's low end.
    pub low: f64,
    /// Its high end.
    pub high: f64,
}

/// A series' forecast from its last sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// The model fitted: `MSTL(288)+AutoETS`, `AutoETS`, `flat`.
    pub model: String,
    /// The prediction intervals' coverage, e.g. 0.9.
    pub level: f64,
    /// One sampling interval apart, the first one interval after the last sample.
    pub steps: Vec<Step>,
}

impl Forecast {
    /// The highest point forecast, if there is a step.
    pub fn max_value(&self) -> Option<f64> {
        self.steps.iter().map(|s| s.value).reduce(f64::max)
    }

    /// The prediction interval's highest end: the cautious reading of "may it cross?".
    pub fn max_high(&self) -> Option<f64> {
        self.steps.iter().map(|s| s.high).reduce(f64::max)
    }

    /// The last step: the point forecast at the horizon.
    pub fn at_horizon(&self) -> Option<Step> {
        self.steps.last().copied()
    }
}

/// The latest score of the series of `metric` with exactly `labels`; `None` when the host keeps
/// no such series (or has not scored it yet).
///
/// ```no_run
/// let score = grace_sdk::anomaly::score("service_latency_p95_ms", [("service", "api")])?;
/// let unusual = score.is_some_and(|s| s.value > 0.9);
/// # Ok::<(), grace_sdk::Error>(())
/// ```
pub fn score<K, V>(
    metric: &str,
    labels: impl IntoIterator<Item = (K, V)>,
) -> Result<Option<SeriesScore>>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    wit::score(metric, &labels::to_wit(labels))
        .map(|s| {
            s.map(|s| SeriesScore {
                value: s.value,
                component: s.component,
                expected_low: s.expected_low,
                expected_high: s.expected_high,
                sample_value: s.sample_value,
                sample_millis: s.sample_millis,
                detector: s.detector,
                alarming: s.alarming,
            })
        })
        .map_err(Error::from_host)
}

/// The forecast of the series of `metric` with exactly `labels`, up to `horizon_seconds`
/// (1 to 86,400) after its last sample, at most 1,440 steps; `None` when the series is unknown
/// or has no forecast (its metric is not in the host's `[anomaly.forecast] metrics`, or it is
/// not fitted yet).
///
/// ```no_run
/// // Will p95 cross 500 ms within ten minutes?
/// let ahead = grace_sdk::anomaly::forecast("service_latency_p95_ms", [("service", "api")], 600)?;
/// let crosses = ahead.and_then(|f| f.max_value()).is_some_and(|peak| peak > 500.0);
/// # Ok::<(), grace_sdk::Error>(())
/// ```
pub fn forecast<K, V>(
    metric: &str,
    labels: impl IntoIterator<Item = (K, V)>,
    horizon_seconds: u32,
) -> Result<Option<Forecast>>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    wit::forecast(metric, &labels::to_wit(labels), horizon_seconds)
        .map(|f| {
            f.map(|f| Forecast {
                model: f.model,
                level: f.level,
                steps: f
                    .steps
                    .into_iter()
                    .map(|s| Step {
                        millis: s.millis,
                        value: s.value,
                        low: s.low,
                        high: s.high,
                    })
                    .collect(),
            })
        })
        .map_err(Error::from_host)
}
