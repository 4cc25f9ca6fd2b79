//! [`Outcome`]: what a playbook reports back when it finishes.

use std::fmt;

use crate::bindings::playbook::grace::playbook::types as wit;

/// What a playbook did, for the run report.
///
/// ```
/// use grace_sdk::Outcome;
///
/// let outcome = Outcome::changed("scaled api-asg from 3 to 5")
///     .detail("group", "api-asg")
///     .detail("from", 3)
///     .detail("to", 5);
/// assert!(outcome.changed);
/// assert_eq!(outcome.details[1], ("from".to_owned(), "3".to_owned()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// One line for humans: what was done, or why nothing was done.
    pub summary: String,
    /// Whether the playbook changed anything in the world.
    pub changed: bool,
    /// Extra facts for the run report, in the order they were added.
    pub details: Vec<(String, String)>,
}

impl Outcome {
    /// The playbook changed something; `summary` says what.
    #[must_use]
    pub fn changed(summary: impl Into<String>) -> Self {
        Outcome {
            summary: summary.into(),
            changed: true,
            details: Vec::new(),
        }
    }

    /// The playbook changed nothing; `summary` says why.
    #[must_use]
    pub fn unchanged(summary: impl Into<String>) -> Self {
        Outcome {
            summary: summary.into(),
            changed: false,
            details: Vec::new(),
        }
    }

    /// Adds a fact to the report; any [`Display`](fmt::Display) value is written as text.
    #[must_use]
    pub fn detail(mut self, key: impl Into<String>, value: impl fmt::Display) -> Self {
        self.details.push((key.into(), value.to_string()));
        self
    }

    pub(crate) fn into_wit(self) -> wit::Outcome {
        wit::Outcome {
            summary: self.summary,
            changed: self.changed,
            details: self
                .details
                .into_iter()
                .map(|(key, value)| wit::Label { key, value })
                .collect(),
        }
    }
}
