//! The journal a host may keep of each run's changes outside its own ledger: in a cluster, in
//! the shared engine, so that the replica that takes a run over after its owner died knows
//! which changes were begun (an intent on record) and which were completed, and replays or
//! reads them back instead of making them twice.
//!
//! What is journaled is what the pipeline reads back for a retry ([`ChangeRecord`]): each
//! change's intent, before the provider is called (a change whose intent the journal could not
//! keep is not made), and its outcome once recorded. A retried run reads its earlier attempts
//! from the journal when there is one, from the host's ledger otherwise.

use grace_ledger::Verdict;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A record of a change as the pipeline reads it back: an intent or an outcome, under the
/// change's idempotency key (in `result`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The ledger sequence number of the record, in the ledger of the host that wrote it.
    pub seq: u64,
    /// The host that wrote it (in a cluster, the replica), when not this one's ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// On the run clock, milliseconds since the epoch.
    pub at_millis: u64,
    /// The WIT interface.
    pub interface: String,
    /// The call's arguments.
    pub args: Value,
    /// Whether the call was allowed.
    pub verdict: Verdict,
    /// What was recorded as its result (`intent`, `ok` or `error`, `idempotency_key`, …).
    pub result: Value,
}

impl ChangeRecord {
    /// Whether the call was allowed.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allowed
    }

    /// The change's idempotency key, when the record is one of a change.
    pub fn key(&self) -> Option<&str> {
        self.result.get("idempotency_key").and_then(Value::as_str)
    }
}

impl From<&grace_ledger::Entry> for ChangeRecord {
    fn from(e: &grace_ledger::Entry) -> Self {
        ChangeRecord {
            seq: e.seq,
            host: None,
            at_millis: e.at_millis,
            interface: e.interface.clone(),
            args: e.args.clone(),
            verdict: e.decision.verdict,
            result: e.result.clone(),
        }
    }
}

/// Where a host keeps its runs' change records beside its ledger.
#[async_trait::async_trait]
pub trait Journal: Send + Sync {
    /// The name this host's records carry in the journal ([`ChangeRecord::host`]).
    fn host(&self) -> &str;

    /// Keeps `record` of run `run_id` durably; answers where it is kept (in a cluster, the
    /// engine's stream sequence), which the ledger records with the change.
    async fn record(&self, run_id: &str, record: &ChangeRecord) -> Result<u64, String>;

    /// Every record kept for run `run_id`, in the order they were kept.
    async fn records(&self, run_id: &str) -> Result<Vec<ChangeRecord>, String>;
}
