//! Secrets (tokens, signing secrets, routing keys) read from a file or an environment
//! variable, never written in `grace.toml` itself, and never shown: `Debug` prints
//! `Secret(..)`, and errors name where a secret comes from, not what it is.

use std::path::PathBuf;

use serde::Deserialize;

/// The largest secret accepted (a Slack token is about 60 bytes, a Jira API token 200).
pub const MAX_SECRET_BYTES: usize = 4096;

/// Where a secret comes from: `{ file = "/etc/grace/slack-token" }` or `{ env = "SLACK_TOKEN" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// A file holding the secret (surrounding white space is ignored).
    pub file: Option<PathBuf>,
    /// An environment variable holding it.
    pub env: Option<String>,
}

/// A secret's value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A secret given as is (tests, or a value read by the caller).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Its value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A secret that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Neither or both of `file` and `env`.
    #[error("give exactly one of `file` and `env`")]
    Source,
    /// The file could not be read.
    #[error("cannot read the secret file `{path}`: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The variable is not set, or not Unicode.
    #[error("the environment variable `{0}` is not set")]
    Env(String),
    /// Empty, too long, or holding control characters.
    #[error("the secret from {from} is {problem}")]
    Invalid {
        /// Where it came from.
        from: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl SecretSource {
    /// Checks the source without reading it.
    pub fn validate(&self) -> Result<(), SecretError> {
        match (&self.file, &self.env) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(SecretError::Source),
        }
    }

    /// Reads the secret.
    pub fn load(&self) -> Result<Secret, SecretError> {
        self.validate()?;
        let (raw, from) = match (&self.file, &self.env) {
            (Some(path), None) => {
                let from = format!("`{}`", path.display());
                let file_error = |message: String| SecretError::File {
                    path: path.display().to_string(),
                    message,
                };
                let meta = std::fs::metadata(path).map_err(|e| file_error(e.to_string()))?;
                if meta.len() > MAX_SECRET_BYTES as u64 {
                    return Err(SecretError::Invalid {
                        from,
                        problem: "longer than 4096 bytes",
                    });
                }
                let raw = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
                (raw, from)
            }
            (None, Some(var)) => {
                let raw = std::env::var(var).map_err(|_| SecretError::Env(var.clone()))?;
                (raw, format!("`${var}`"))
            }
            _ => return Err(SecretError::Source),
        };
        let value = raw.trim();
        let problem = if value.is_empty() {
            Some("empty")
        } else if value.len() > MAX_SECRET_BYTES {
            Some("longer than 4096 bytes")
        } else if value.chars().any(char::is_control) {
            Some("holding control characters")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(SecretError::Invalid { from, problem }),
            None => Ok(Secret(value.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let s = Secret::new("xoxb-1234-secret");
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(s.expose(), "xoxb-1234-secret");
    }

    #[test]
    fn a_file_secret_is_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("grace-notify-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "xoxb-abc\n").unwrap();
        let source = SecretSource {
            file: Some(path.clone()),
            env: None,
        };
        assert_eq!(source.load().unwrap().expose(), "xoxb-abc");
        std::fs::write(&path, "  \n").unwrap();
        assert!(matches!(
            source.load(),
            Err(SecretError::Invalid {
                problem: "empty",
                ..
            })
        ));
        std::fs::write(&path, "a\u{7}b").unwrap();
        assert!(matches!(source.load(), Err(SecretError::Invalid { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
        let error = source.load().unwrap_err();
        assert!(error.to_string().contains("token"), "{error}");
    }

    #[test]
    fn exactly_one_source_is_given() {
        let both = SecretSource {
            file: Some("/x".into()),
            env: Some("X".into()),
        };
        assert_eq!(both.validate(), Err(SecretError::Source));
        let none = SecretSource {
            file: None,
            env: None,
        };
        assert_eq!(none.validate(), Err(SecretError::Source));
        let unset = SecretSource {
            file: None,
            env: Some("GRACE_NOTIFY_TEST_UNSET_VARIABLE".into()),
        };
        assert_eq!(
            unset.load(),
            Err(SecretError::Env("GRACE_NOTIFY_TEST_UNSET_VARIABLE".into()))
        );
    }
}
