//! The one error type every executor returns.

/// Why an executor could not do what it was asked.
///
/// The variants mirror the guest-visible `error` variant of the WIT package (less `denied`,
/// which only grants and the trust core decide), so the engine maps them one to one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ExecError {
    /// An argument is malformed or out of the resource's own range (e.g. above a group's max size).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The named resource does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A concurrent change got there first; retrying may succeed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The provider is down, throttling, or not configured; retrying later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The operation did not finish in time.
    #[error("timed out: {0}")]
    TimedOut(String),
    /// Anything else the provider reported.
    #[error("{0}")]
    Other(String),
    /// The provider's answer was larger than the call may hold (see [`crate::budget`]); it was
    /// not read past the limit.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
}

impl ExecError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ExecError::Conflict(_) | ExecError::Unavailable(_) | ExecError::TimedOut(_)
        )
    }
}
