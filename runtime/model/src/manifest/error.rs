//! Why a manifest was refused: [`ManifestError`], naming the file or the field it is about.

use std::path::PathBuf;

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest `{path}`: {source}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid TOML, or has unknown or mistyped keys.
    #[error("{0}")]
    Syntax(String),
    /// A value is out of range or inconsistent.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as a TOML path (e.g. `grants.scaling.max_step`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ManifestError {
    /// The error for `field`, with what is wrong with it.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ManifestError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
