//! The one error type of the SDK: what the host reported, or the playbook's own account.

use std::fmt;

use crate::bindings::playbook::grace::playbook::types as wit;

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why something failed.
///
/// Every variant but [`Error::Message`] is an error the host returned from a capability call
/// (the WIT `error` variant); [`Error::Message`] is the guest's own failure, built with
/// [`Error::msg`] or converted from a JSON error or a string. When a playbook returns an `Err`,
/// the host records its [`Display`](fmt::Display) text as the reason the run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The manifest does not grant this call, or the call is outside the granted bounds.
    Denied(String),
    /// An argument is malformed or out of range, whatever the grants say.
    InvalidArgument(String),
    /// The named resource does not exist.
    NotFound(String),
    /// The provider refused the change because of a concurrent change; retrying may succeed.
    Conflict(String),
    /// The provider is unavailable or throttling; retrying later may succeed.
    Unavailable(String),
    /// The operation did not complete within its time limit.
    TimedOut(String),
    /// Anything else the provider reported.
    Other(String),
    /// The playbook's (or collector's) own failure.
    Message(String),
}

impl Error {
    /// The guest's own failure, with a message for the run report.
    ///
    /// ```
    /// let err = grace_sdk::Error::msg(format_args!("group `{}` has no instances", "api-asg"));
    /// assert_eq!(err.to_string(), "group `api-asg` has no instances");
    /// ```
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::Message(message.to_string())
    }

    /// The message without the kind prefix that [`Display`](fmt::Display) adds.
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m)
            | Error::InvalidArgument(m)
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::Unavailable(m)
            | Error::TimedOut(m)
            | Error::Other(m)
            | Error::Message(m) => m,
        }
    }

    /// Whether the host returned this error (rather than the guest making it).
    pub fn is_host_error(&self) -> bool {
        !matches!(self, Error::Message(_))
    }

    /// Whether retrying the same call later may succeed (`conflict`, `unavailable`, `timed-out`).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Conflict(_) | Error::Unavailable(_) | Error::TimedOut(_)
        )
    }

    pub(crate) fn from_host(error: wit::Error) -> Self {
        match error {
            wit::Error::Denied(m) => Error::Denied(m),
            wit::Error::InvalidArgument(m) => Error::InvalidArgument(m),
            wit::Error::NotFound(m) => Error::NotFound(m),
            wit::Error::Conflict(m) => Error::Conflict(m),
            wit::Error::Unavailable(m) => Error::Unavailable(m),
            wit::Error::TimedOut(m) => Error::TimedOut(m),
            wit::Error::Other(m) => Error::Other(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied(m) => write!(f, "denied: {m}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::Conflict(m) => write!(f, "conflict: {m}"),
            Error::Unavailable(m) => write!(f, "unavailable: {m}"),
            Error::TimedOut(m) => write!(f, "timed out: {m}"),
            Error::Other(m) | Error::Message(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Message(format!("invalid JSON: {error}"))
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::Message(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::Message(message.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_display_their_kind_and_message() {
        let err = Error::from_host(wit::Error::Denied("`kubernetes` is not granted".into()));
        assert_eq!(err.to_string(), "denied: `kubernetes` is not granted");
        assert_eq!(err.message(), "`kubernetes` is not granted");
        assert!(err.is_host_error());
    }

    #[test]
    fn own_failures_display_the_bare_message() {
        let err = Error::msg("no series");
        assert_eq!(err.to_string(), "no series");
        assert!(!err.is_host_error());
        assert!(!err.is_transient());
    }

    #[test]
    fn json_errors_convert_with_question_mark() {
        fn parse() -> Result<serde_json::Value> {
            Ok(serde_json::from_str("{")?)
        }
        assert!(
            parse()
                .unwrap_err()
                .to_string()
                .starts_with("invalid JSON: ")
        );
    }
}
