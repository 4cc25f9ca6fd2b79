//! Metric queries (Prometheus, or the simulated fleet's series).
//!
//! Needs `[grants.metrics]` in the manifest: every selector of the query must match one of its
//! `[[grants.metrics.series]]` entries, and what it reads must lie within its `max_range` (see
//! `docs/manifest.md`).

use std::time::Duration;

use crate::bindings::playbook::grace::playbook::metrics as wit;
use crate::clock::millis;
use crate::{Error, Labels, Result, labels};

/// One value at one time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The value.
    pub value: f64,
}

/// A labelled series of samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// Its samples, oldest first.
    pub samples: Vec<Sample>,
}

impl Series {
    /// The newest sample, if any.
    pub fn latest(&self) -> Option<Sample> {
        self.samples.last().copied()
    }

    /// The value of label `key`, if the series has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// Evaluates `query` at the current time on the run clock: one sample per series.
pub fn query(query: &str) -> Result<Vec<Series>> {
    wit::query(query).map(series).map_err(Error::from_host)
}

/// Evaluates `query` over `[start, end]` (milliseconds since the Unix epoch) every `step`.
pub fn query_range(query: &str, start: u64, end: u64, step: Duration) -> Result<Vec<Series>> {
    wit::query_range(query, start, end, millis(step))
        .map(series)
        .map_err(Error::from_host)
}

/// The current value of a query that selects one series: `None` when it selects none (or the
/// series has no sample), an error when it selects several.
///
/// ```no_run
/// let p95 = grace_sdk::metrics::query_value(r#"service_latency_p95_ms{service="api-service"}"#)?;
/// # Ok::<(), grace_sdk::Error>(())
/// ```
pub fn query_value(q: &str) -> Result<Option<f64>> {
    let series = query(q)?;
    match series.as_slice() {
        [] => Ok(None),
        [one] => Ok(one.latest().map(|s| s.value)),
        many => Err(Error::msg(format_args!(
            "query `{q}` selects {} series, expected at most one",
            many.len()
        ))),
    }
}

fn series(series: Vec<wit::Series>) -> Vec<Series> {
    series
        .into_iter()
        .map(|s| Series {
            labels: labels::from_wit(s.labels),
            samples: s
                .samples
                .into_iter()
                .map(|x| Sample {
                    timestamp: x.timestamp,
                    value: x.value,
                })
                .collect(),
        })
        .collect()
}
