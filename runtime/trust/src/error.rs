//! The errors of the trust core: rejected policies (with line and column), storage failures and
//! invalid configuration. Decisions themselves never fail: [`TrustCore::decide`] always answers,
//! and denies when it cannot decide safely.
//!
//! [`TrustCore::decide`]: crate::TrustCore::decide

use std::fmt;

/// Where in a policy set's text a problem is, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// Line, from 1 (0 when Cedar gave no position).
    pub line: u32,
    /// Column, from 1, counted in characters (0 when Cedar gave no position).
    pub column: u32,
    /// The policy the problem is in, when known (its id within the set).
    pub policy: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        f.write_str(&self.message)?;
        if let Some(policy) = &self.policy {
            write!(f, " (policy `{policy}`)")?;
        }
        Ok(())
    }
}

/// The problems of a rejected policy set, joined for a one-line message.
struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Why a policy set was rejected. Nothing of a rejected set is stored or becomes active.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text is not Cedar.
    #[error("policy set `{set}` does not parse: {}", Problems(.problems))]
    Syntax {
        /// The policy set's name.
        set: String,
        /// Every problem Cedar found, each with line and column.
        problems: Vec<Problem>,
    },
    /// The text is Cedar but does not fit GRACE's schema (an unknown action, attribute or
    /// entity type, a type error, an optional attribute read without `has`...).
    #[error("policy set `{set}` does not match the GRACE schema: {}", Problems(.problems))]
    Schema {
        /// The policy set's name.
        set: String,
        /// Every problem the validator found.
        problems: Vec<Problem>,
    },
    /// The policies are valid Cedar but break a GRACE rule: an unknown `@decision`, a bad
    /// `@approvers`, a duplicate `@id`, a template.
    #[error("policy set `{set}` is rejected: {}", Problems(.problems))]
    Rejected {
        /// The policy set's name.
        set: String,
        /// What is wrong, policy by policy.
        problems: Vec<Problem>,
    },
    /// The policy set's name is not allowed.
    #[error("invalid policy set name `{name}`: {reason}")]
    Name {
        /// The name given.
        name: String,
        /// What a name may be.
        reason: &'static str,
    },
}

impl PolicyError {
    /// The problems found, each with line and column when Cedar gave a position.
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Syntax { problems, .. }
            | PolicyError::Schema { problems, .. }
            | PolicyError::Rejected { problems, .. } => problems,
            PolicyError::Name { .. } => &[],
        }
    }
}

/// Why a trust core operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A policy set was rejected.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// `add` of a policy set that exists.
    #[error("policy set `{name}` already exists (version {version}); replace it instead")]
    AlreadyExists {
        /// The policy set.
        name: String,
        /// Its current version.
        version: u64,
    },
    /// `replace`, `remove` or `get` of a policy set that does not exist (or was removed).
    #[error("policy set `{name}` does not exist")]
    NotFound {
        /// The policy set.
        name: String,
    },
    /// The database failed.
    #[error("trust store cannot {operation}: {source}")]
    Storage {
        /// What was being done, e.g. `record a change of group/web`.
        operation: String,
        /// What redb reported.
        source: redb::Error,
    },
    /// A stored record cannot be read back: the database was written outside GRACE or by an
    /// incompatible version.
    #[error("trust store record {what} is unreadable: {message}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        message: String,
    },
    /// The risk model or guardrail configuration is invalid.
    #[error("invalid trust configuration: {0}")]
    Config(String),
}

impl TrustError {
    /// A storage failure while doing `operation`.
    pub(crate) fn storage(operation: impl Into<String>, source: impl Into<redb::Error>) -> Self {
        TrustError::Storage {
            operation: operation.into(),
            source: source.into(),
        }
    }
}
