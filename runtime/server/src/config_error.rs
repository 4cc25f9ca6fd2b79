//! The error of the configuration, shared by every module that checks its own section of
//! `grace.toml` (auth, limits, TLS, sources, ...): a leaf, so that those modules need not import
//! [`crate::config`], which imports them.

use std::path::PathBuf;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file is not valid TOML, or not a `grace.toml`: an unknown key, a value of the wrong
    /// type, a duration that is not one (the message names the key and shows its line).
    #[error("`{path}` is not a valid configuration: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why, with the line.
        message: String,
    },
    /// A value is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// Why.
        message: String,
    },
}

impl ConfigError {
    /// A refused value of `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field,
            message: message.into(),
        }
    }
}
