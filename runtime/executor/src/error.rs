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
    /// The provider answered that it refused the request itself (no permission, credentials it
    /// rejects: a `401` or `403`): nothing was changed, and the same call will be refused again.
    #[error("refused: {0}")]
    Refused(String),
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

    /// Whether the failure of a change proves the change was not made: the provider answered
    /// and its answer rejects the request (invalid, not found, a conflicting writer, refused).
    /// Any other failure (no answer in time, a transport error, a server error, an answer that
    /// could not be read) leaves the change's outcome unknown: the provider may have made it.
    pub fn proves_not_applied(&self) -> bool {
        matches!(
            self,
            ExecError::InvalidArgument(_)
                | ExecError::NotFound(_)
                | ExecError::Conflict(_)
                | ExecError::Refused(_)
        )
    }

    /// This failure, met after the change (or part of it) was made: by a read of the result,
    /// or a later step of a change made in several. One that would prove the change not made
    /// becomes [`ExecError::Other`] saying so, since something was changed: a retry then reads
    /// the resource back instead of making the change again. Other failures leave the outcome
    /// unknown as they are.
    pub fn after_change(self) -> ExecError {
        if self.proves_not_applied() {
            ExecError::Other(format!(
                "the change was (at least partly) made, then a later step failed: {self}"
            ))
        } else {
            self
        }
    }
}
