//! Providers as the vocabulary knows them: the capabilities that act through named providers,
//! and what a provider's name may be. Which provider serves a resource, and the providers
//! themselves, belong to `grace-executor` (`providers`, `routing`); grants name a provider by
//! these rules (`provider = "aws-eu"`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest provider name.
pub const MAX_PROVIDER_NAME_LEN: usize = 63;

/// A capability of the WIT package that acts through providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Groups of instances (`scaling`).
    Scaling,
    /// Containers (`containers`).
    Containers,
    /// Kubernetes deployments (`kubernetes`).
    Kubernetes,
    /// Metric queries (`metrics`).
    Metrics,
}

impl Capability {
    /// Every capability, in WIT order.
    pub const ALL: [Capability; 4] = [
        Capability::Scaling,
        Capability::Containers,
        Capability::Kubernetes,
        Capability::Metrics,
    ];

    /// The WIT interface name.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Scaling => "scaling",
            Capability::Containers => "containers",
            Capability::Kubernetes => "kubernetes",
            Capability::Metrics => "metrics",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a provider name (in configuration and in grants): 1 to 63 lowercase letters,
/// digits and `-`, starting with a letter, so that it reads the same in TOML, logs and the
/// ledger. `Err` says why, in words.
pub fn check_provider_name(name: &str) -> Result<(), String> {
    let well_formed = name.len() <= MAX_PROVIDER_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a provider name: use 1 to {MAX_PROVIDER_NAME_LEN} lowercase letters, digits and `-`, starting with a letter",
            name.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capability_is_a_described_interface() {
        for c in Capability::ALL {
            assert!(
                crate::capability::INTERFACES
                    .iter()
                    .any(|i| i.name == c.as_str()),
                "{c}"
            );
        }
    }

    #[test]
    fn provider_names_are_lowercase_words() {
        assert!(check_provider_name("aws-eu").is_ok());
        for bad in ["", "AWS", "1aws", "aws_eu", "aws eu", &"a".repeat(64)] {
            assert!(check_provider_name(bad).is_err(), "{bad:?}");
        }
    }
}
