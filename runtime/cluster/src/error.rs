//! The errors of clustered mode.

/// A refused `[cluster]` value; `field` is the key under `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster.{field}: {message}")]
pub struct SettingsError {
    /// The key.
    pub field: &'static str,
    /// Why.
    pub message: String,
}

impl SettingsError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> SettingsError {
        SettingsError {
            field,
            message: message.into(),
        }
    }
}

/// Why a request to the engine failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The settings were refused.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// No connection to the engine could be made.
    #[error("cannot connect to the engine ({urls}): {message}")]
    Connect {
        /// The URLs tried.
        urls: String,
        /// Why.
        message: String,
    },
    /// A stream or bucket could not be created, or exists with other settings than this
    /// replica's (another replica was started with other `[cluster]` values, or the server
    /// ignored an option).
    #[error("engine stream `{stream}`: {message}")]
    Schema {
        /// The stream.
        stream: String,
        /// Why.
        message: String,
    },
    /// This replica's `[cluster]` disagrees with what the cluster was created with.
    #[error("cluster.{field}: this replica has {ours}, the cluster was created with {theirs}")]
    Mismatch {
        /// The key.
        field: &'static str,
        /// This replica's value.
        ours: String,
        /// The cluster's.
        theirs: String,
    },
    /// Another replica holds the key (a create or a compare-and-set lost).
    #[error("`{key}` is held by another writer")]
    Conflict {
        /// The key.
        key: String,
    },
    /// A request failed or its outcome is unknown (timed out, no connection, the stream
    /// electing a new leader); it may be retried.
    #[error("engine request `{op}` failed: {message}")]
    Unavailable {
        /// What was asked.
        op: &'static str,
        /// Why.
        message: String,
    },
    /// A value read from the engine is not what GRACE writes there.
    #[error("`{key}` holds a value GRACE cannot read: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
}

impl ClusterError {
    pub(crate) fn unavailable(op: &'static str, e: impl std::fmt::Display) -> ClusterError {
        ClusterError::Unavailable {
            op,
            message: e.to_string(),
        }
    }

    pub(crate) fn schema(stream: &str, e: impl std::fmt::Display) -> ClusterError {
        ClusterError::Schema {
            stream: stream.to_owned(),
            message: e.to_string(),
        }
    }
}
