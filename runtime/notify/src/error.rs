//! How a delivery failed, as far as retrying it goes.

use std::time::Duration;

/// A delivery that did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The vendor asked to slow down (`429`, Slack's `ratelimited`): the same request may
    /// succeed after `retry_after`.
    #[error("{vendor} is rate limiting: retry after {}", humantime::format_duration(*retry_after))]
    RateLimited {
        /// Who answered.
        vendor: &'static str,
        /// How long the vendor asked to wait (its `Retry-After`, or a default).
        retry_after: Duration,
    },
    /// Worth retrying with backoff: a `5xx`, a timeout, a lost connection.
    #[error("{vendor}: {message}")]
    Transient {
        /// Who answered, or did not.
        vendor: &'static str,
        /// What happened, for people.
        message: String,
    },
    /// Sending it again would be refused again: credentials the vendor rejects, a channel or
    /// project that does not exist, a body the vendor finds invalid.
    #[error("{vendor} refused it: {message}")]
    Rejected {
        /// Who answered.
        vendor: &'static str,
        /// What the vendor said, cut to a bound.
        message: String,
    },
}

impl DeliveryError {
    /// Whether sending it again later may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, DeliveryError::Rejected { .. })
    }

    /// How long the vendor asked to wait, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}
