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

/// The journal's records of a run with `host`'s own ledger records of it that the journal
/// missed (an outcome whose journaling failed), each put back where it was: right after
/// `host`'s last record before it (by ledger sequence), so that an intent and its outcome stay
/// in order for [`crate::pipeline::unknown_changes`].
pub fn merge(
    mut journal: Vec<ChangeRecord>,
    local: Vec<ChangeRecord>,
    host: &str,
) -> Vec<ChangeRecord> {
    let mine = |r: &ChangeRecord| r.host.as_deref() == Some(host);
    let kept: std::collections::HashSet<u64> =
        journal.iter().filter(|r| mine(r)).map(|r| r.seq).collect();
    for mut missed in local.into_iter().filter(|r| !kept.contains(&r.seq)) {
        missed.host = Some(host.to_owned());
        let at = journal
            .iter()
            .rposition(|r| mine(r) && r.seq < missed.seq)
            .map_or_else(
                || {
                    journal
                        .iter()
                        .position(|r| mine(r) && r.seq > missed.seq)
                        .unwrap_or(journal.len())
                },
                |i| i + 1,
            );
        journal.insert(at, missed);
    }
    journal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(host: Option<&str>, seq: u64, result: Value) -> ChangeRecord {
        ChangeRecord {
            seq,
            host: host.map(str::to_owned),
            at_millis: seq,
            interface: "scaling".into(),
            args: json!({}),
            verdict: Verdict::Allowed,
            result,
        }
    }

    #[test]
    fn records_the_journal_missed_go_back_in_their_place_and_none_twice() {
        let intent = |key: &str| json!({ "intent": "executing", "idempotency_key": key });
        let done = |key: &str| json!({ "ok": {}, "idempotency_key": key });
        // b began k1 and k2 (journaled); the outcome of k1 (seq 6) did not reach the journal;
        // then a took the run over and completed k2.
        let journal = vec![
            record(Some("b"), 5, intent("k1")),
            record(Some("b"), 7, intent("k2")),
            record(Some("a"), 3, done("k2")),
        ];
        let local = vec![
            record(None, 5, intent("k1")),
            record(None, 6, done("k1")),
            record(None, 7, intent("k2")),
        ];
        let merged = merge(journal, local, "b");
        let order: Vec<(Option<&str>, u64)> =
            merged.iter().map(|r| (r.host.as_deref(), r.seq)).collect();
        assert_eq!(
            order,
            [
                (Some("b"), 5),
                (Some("b"), 6),
                (Some("b"), 7),
                (Some("a"), 3)
            ]
        );
        let completed = crate::pipeline::completed_changes(&merged);
        assert!(completed.contains_key("k1") && completed.contains_key("k2"));
        assert!(crate::pipeline::unknown_changes(&merged).is_empty());
    }

    #[test]
    fn without_a_journal_record_of_this_host_the_missed_ones_follow_the_journal_in_order() {
        let journal = vec![record(Some("a"), 9, json!({}))];
        let local = vec![record(None, 1, json!({})), record(None, 2, json!({}))];
        let merged = merge(journal, local, "b");
        let order: Vec<u64> = merged.iter().map(|r| r.seq).collect();
        assert_eq!(order, [9, 1, 2]);
    }
}
