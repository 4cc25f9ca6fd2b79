//! Structured logging into the run's timeline and the ledger.
//!
//! The functions return the host's answer: a message longer than the manifest's
//! `limits.max_log_bytes` is refused with
//! [`Error::InvalidArgument`](crate::Error::InvalidArgument), not truncated.
//! The macros ([`info!`](crate::info) and friends) format their arguments like `format!` and
//! ignore that answer, because a remediation should not fail over a log line; call the functions
//! when you want to know.

use crate::Result;
use crate::bindings::playbook::grace::playbook::log as wit;

/// How important a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Fine-grained detail.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// What the playbook is doing.
    Info,
    /// Something unexpected that the playbook works around.
    Warn,
    /// Something failed.
    Error,
}

/// Records `message` at `level`.
pub fn log(level: Level, message: &str) -> Result<()> {
    let level = match level {
        Level::Trace => wit::Level::Trace,
        Level::Debug => wit::Level::Debug,
        Level::Info => wit::Level::Info,
        Level::Warn => wit::Level::Warn,
        Level::Error => wit::Level::Error,
    };
    wit::log(level, message).map_err(crate::Error::from_host)
}

/// Records `message` at [`Level::Trace`].
pub fn trace(message: &str) -> Result<()> {
    log(Level::Trace, message)
}

/// Records `message` at [`Level::Debug`].
pub fn debug(message: &str) -> Result<()> {
    log(Level::Debug, message)
}

/// Records `message` at [`Level::Info`].
pub fn info(message: &str) -> Result<()> {
    log(Level::Info, message)
}

/// Records `message` at [`Level::Warn`].
pub fn warn(message: &str) -> Result<()> {
    log(Level::Warn, message)
}

/// Records `message` at [`Level::Error`].
pub fn error(message: &str) -> Result<()> {
    log(Level::Error, message)
}

/// Formats a message and records it at [`Level::Trace`], ignoring a refusal.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => {{
        let _ = $crate::log::trace(&::std::format!($($arg)+));
    }};
}

/// Formats a message and records it at [`Level::Debug`], ignoring a refusal.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => {{
        let _ = $crate::log::debug(&::std::format!($($arg)+));
    }};
}

/// Formats a message and records it at [`Level::Info`], ignoring a refusal.
///
/// ```no_run
/// let p95 = 912.0;
/// grace_sdk::info!("p95 is {p95} ms");
/// ```
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => {{
        let _ = $crate::log::info(&::std::format!($($arg)+));
    }};
}

/// Formats a message and records it at [`Level::Warn`], ignoring a refusal.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => {{
        let _ = $crate::log::warn(&::std::format!($($arg)+));
    }};
}

/// Formats a message and records it at [`Level::Error`], ignoring a refusal.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => {{
        let _ = $crate::log::error(&::std::format!($($arg)+));
    }};
}
