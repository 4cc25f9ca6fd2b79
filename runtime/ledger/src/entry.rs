//! What the ledger records: one entry per host call or run lifecycle event.

use serde::{Deserialize, Serialize};

use crate::Hash;

/// A record to append, as the engine sees it: everything but its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// The run the call belongs to.
    pub run_id: String,
    /// The playbook's name.
    pub playbook: String,
    /// The playbook component's digest, `sha256:<hex>`.
    pub digest: String,
    /// The WIT interface called, e.g. `scaling`, or `run` for lifecycle records.
    pub interface: String,
    /// The function called, e.g. `set-desired-capacity`, or `started`/`finished`.
    pub function: String,
    /// The call's arguments.
    pub args: serde_json::Value,
    /// Whether the call was allowed, and why.
    pub decision: Decision,
    /// What the call returned to the guest (or the error it got).
    pub result: serde_json::Value,
    /// When the call happened, in milliseconds on the run clock (virtual in simulation).
    pub at_millis: u64,
}

/// Whether a host call was allowed to act on the world, and why.
///
/// Not exhaustive, so that fields can be added without breaking callers. Build one with
/// [`Decision::allowed`] or [`Decision::denied`], and attach the trust core's details with
/// [`Decision::with_trust`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Decision {
    /// Allowed or denied.
    pub verdict: Verdict,
    /// Why, for humans: the grant that matched, or the one that was missing.
    pub reason: String,
    /// The trust core's details of the decision (risk score and factors, deciding policies,
    /// guardrail, approval), as a JSON object whose shape the engine decides.
    ///
    /// The ledger stores it opaquely, as canonical JSON in an encoding version 2 entry
    /// ([`crate::codec`]); it must be an object, or the append fails. `None` for decisions
    /// made without the trust core, whose entries keep encoding version 1 and their JSON form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<serde_json::Value>,
}

impl Decision {
    /// The call was allowed, for `reason`.
    pub fn allowed(reason: impl Into<String>) -> Self {
        Decision {
            verdict: Verdict::Allowed,
            reason: reason.into(),
            trust: None,
        }
    }

    /// The call was denied, for `reason`.
    pub fn denied(reason: impl Into<String>) -> Self {
        Decision {
            verdict: Verdict::Denied,
            reason: reason.into(),
            trust: None,
        }
    }

    /// The same decision, carrying the trust core's details (a JSON object, see
    /// [`Decision::trust`]).
    #[must_use]
    pub fn with_trust(mut self, trust: serde_json::Value) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Whether the call was allowed.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allowed
    }
}

/// The outcome of checking a host call against the grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The call went through to the executor.
    Allowed,
    /// The call was refused before reaching the executor.
    Denied,
}

/// A recorded entry, as stored: the [`NewEntry`] plus its place in the hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the ledger, from 1, without gaps.
    pub seq: u64,
    /// Wall-clock time of the append, in milliseconds since the Unix epoch.
    pub recorded_millis: u64,
    /// The run the call belongs to.
    pub run_id: String,
    /// The playbook's name.
    pub playbook: String,
    /// The playbook component's digest, `sha256:<hex>`.
    pub digest: String,
    /// The WIT interface called, or `run` for lifecycle records.
    pub interface: String,
    /// The function called.
    pub function: String,
    /// The call's arguments.
    pub args: serde_json::Value,
    /// Whether the call was allowed, and why.
    pub decision: Decision,
    /// What the call returned to the guest.
    pub result: serde_json::Value,
    /// When the call happened, in milliseconds on the run clock.
    pub at_millis: u64,
    /// The hash of entry `seq - 1`, or [`Hash::ZERO`] for entry 1.
    pub prev_hash: Hash,
    /// SHA-256 over this entry's canonical encoding, `prev_hash` included (see [`crate::codec`]).
    pub hash: Hash,
}

/// Proof that an entry was committed: where it landed and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's hash.
    pub hash: Hash,
}

/// The end of the chain, as recorded with every commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The last entry's sequence number.
    pub seq: u64,
    /// The last entry's hash.
    pub hash: Hash,
    /// How many entries the ledger holds.
    pub entries: u64,
}
