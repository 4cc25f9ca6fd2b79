//! Metric queries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ExecError, Labels};

/// One value at one time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The value.
    pub value: f64,
}

/// A labelled series of samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// Its samples, oldest first.
    pub samples: Vec<Sample>,
}

/// Answers metric queries.
#[async_trait::async_trait]
pub trait MetricsExecutor: Send + Sync {
    /// Evaluates `query` at `at` (milliseconds since the epoch): one sample per series.
    async fn query(&self, query: &str, at: u64) -> Result<Vec<Series>, ExecError>;
    /// Evaluates `query` over `[start, end]` every `step`.
    async fn query_range(
        &self,
        query: &str,
        start: u64,
        end: u64,
        step: Duration,
    ) -> Result<Vec<Series>, ExecError>;
}
