//! `grace ledger verify --cluster [--server URL] [--key PUB] [--max-age D]`: every replica's
//! ledger of a cluster, verified here through one replica, and the chains checked against each
//! other.
//!
//! Each replica keeps its own hash chain and publishes its size, root and latest signed
//! checkpoint to the engine (`GET /v1/cluster/ledgers`). For each replica listed, the audit of
//! `grace ledger verify --server` runs on its chain, read through `/v1/cluster/ledgers/<replica>/…`
//! (the replica passing it on can withhold, not forge: every hash, root and signature is checked
//! here), and the chain must extend the checkpoint the replica published to the engine: a
//! replica whose ledger was rolled back or rewritten since is caught even when it signs its new
//! history itself.
//!
//! Then across chains: a run taken over by another replica has entries in both chains, but each
//! change is made once: every change's outcome that made it (not replayed from an earlier
//! attempt, not found already in place) appears once in all the chains together, and every
//! change-journal record is claimed by one ledger entry.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::anyhow;
use grace_ledger::{Entry, SignedCheckpoint, VerifierKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ledger_audit::{
    Earlier, Finding, Source, Stop, audit, load_key, print_verified, tree_head,
};
use super::{Exit, client};

/// The most bytes of the list of published ledgers.
const LIST_BYTES: usize = 8 * 1024 * 1024;

/// What the user asked for.
pub struct Request {
    /// A replica's base URL.
    pub server: String,
    /// The checkpoint signer's public key.
    pub key: Option<PathBuf>,
    /// The oldest each replica's newest signed checkpoint may be.
    pub max_age: Option<std::time::Duration>,
    /// Machine-readable output.
    pub json: bool,
}

/// A replica's ledger as it published it to the engine.
#[derive(Debug, Deserialize)]
struct Published {
    replica: String,
    tree_size: u64,
    root: String,
    checkpoint: Option<String>,
}

/// Where a ledger entry is: replica and sequence number.
type At = (String, u64);

/// What the chains say about changes, gathered entry by entry.
#[derive(Default)]
struct Changes {
    /// Each change that was made, by (run, idempotency key): where its outcome is, and whether
    /// it was made again knowingly (an earlier attempt's outcome was unknown, and the resource
    /// read back showed it not made).
    made: BTreeMap<(String, String), Vec<(At, bool)>>,
    /// Each change-journal record, by sequence: the entries that claim it.
    journal: BTreeMap<u64, Vec<At>>,
}

impl Changes {
    fn see(&mut self, replica: &str, entry: &Entry) {
        let result = &entry.result;
        let Some(key) = result.get("idempotency_key").and_then(Value::as_str) else {
            return;
        };
        let at = (replica.to_owned(), entry.seq);
        if let Some(journal) = result.get("journal").and_then(Value::as_u64) {
            self.journal.entry(journal).or_default().push(at.clone());
        }
        let made = result.get("ok").is_some()
            && result.get("replayed_from").is_none()
            && result.get("reconciled_from").is_none();
        if made {
            let read_back = result.get(grace_engine::pipeline::READ_BACK_FROM).is_some();
            self.made
                .entry((entry.run_id.clone(), key.to_owned()))
                .or_default()
                .push((at, read_back));
        }
    }

    /// What does not hold across the chains, and the changes made again knowingly.
    fn findings(&self) -> (Vec<String>, Vec<String>) {
        let places = |ats: &mut dyn Iterator<Item = &At>| {
            ats.map(|(r, s)| format!("{r}#{s}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        for ((run, key), ats) in &self.made {
            let blind = ats.iter().filter(|(_, read_back)| !read_back).count();
            if blind > 1 {
                out.push(format!(
                    "change `{key}` of run {run} was made {} times: {}",
                    ats.len(),
                    places(&mut ats.iter().map(|(at, _)| at))
                ));
            } else if ats.len() > 1 {
                notes.push(format!(
                    "change `{key}` of run {run} was made again after a read-back showed it not made (an earlier attempt's outcome was unknown): {}",
                    places(&mut ats.iter().map(|(at, _)| at))
                ));
            }
        }
        for (journal, ats) in &self.journal {
            if ats.len() > 1 {
                out.push(format!(
                    "change-journal record {journal} is claimed by {} ledger entries: {}",
                    ats.len(),
                    places(&mut ats.iter())
                ));
            }
        }
        (out, notes)
    }
}

/// The checkpoint `replica` published to the engine, checked against `key`: its chain must
/// extend it.
fn published_checkpoint(text: &str, key: &VerifierKey, replica: &str) -> Result<Earlier, Stop> {
    let signed = SignedCheckpoint::parse(text).map_err(|e| {
        Finding::NotVerified(format!(
            "the checkpoint it published to the engine cannot be read: {e}"
        ))
    })?;
    let checkpoint = signed
        .verify(key)
        .map_err(|e| {
            Finding::NotSigned(format!(
                "the checkpoint it published to the engine is not signed by your key `{}`: {e}",
                key.name()
            ))
        })?
        .clone();
    Ok(Earlier {
        checkpoint,
        audit: None,
        source: format!("the checkpoint replica `{replica}` published to the engine"),
    })
}

/// `grace ledger verify --cluster`.
pub fn run(request: Request) -> Exit {
    let client = match client(&request.server) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let server = client.server().to_owned();
    let key = match load_key(request.key.as_deref()) {
        Ok(k) => k,
        Err(Stop::Exit(exit)) => return exit,
        Err(Stop::Finding(f)) => return f.report(&server, request.json),
    };
    let listed = match client.get_bounded(&["v1", "cluster", "ledgers"], &[], LIST_BYTES) {
        Ok(bytes) => bytes,
        Err(e) => return e.into_exit(),
    };
    let published: Vec<Published> = match serde_json::from_slice(&listed) {
        Ok(p) => p,
        Err(e) => {
            return Finding::NotVerified(format!(
                "its list of the cluster's ledgers cannot be read: {e}"
            ))
            .report(&server, request.json);
        }
    };
    if published.is_empty() {
        return Finding::NotVerified(
            "no replica has published its ledger to the engine yet (each does at start and every `checkpoint_every`)".to_owned(),
        )
        .report(&server, request.json);
    }

    let mut changes = Changes::default();
    let mut worst = Worst::default();
    // A live replica that has not published its ledger would otherwise go unaudited.
    match client.get_bounded(&["v1", "cluster"], &[], LIST_BYTES) {
        Ok(bytes) => {
            let live: Vec<String> = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|status| {
                    status["replicas"].as_array().map(|replicas| {
                        replicas
                            .iter()
                            .filter_map(|r| r["replica"].as_str().map(str::to_owned))
                            .collect()
                    })
                })
                .unwrap_or_default();
            for name in live {
                if !published.iter().any(|p| p.replica == name) {
                    worst.note(
                        Stop::Finding(Finding::NotVerified(
                            "it is live but has published no ledger to the engine, so its chain cannot be audited here".to_owned(),
                        )),
                        &format!("replica `{name}` via {server}"),
                        request.json,
                    );
                }
            }
        }
        Err(e) => return e.into_exit(),
    }
    for p in &published {
        let label = format!("replica `{}` via {server}", p.replica);
        let source = Source::replica(&client, &p.replica);
        let mut seen = |entry: &Entry| changes.see(&p.replica, entry);
        let verified = replica_chain(&source, p, key.as_ref(), request.max_age, &mut seen);
        match verified {
            Ok(verified) => print_verified(&label, &verified, request.json),
            Err(stop) => worst.note(stop, &label, request.json),
        }
    }
    let (findings, notes) = changes.findings();
    for (kind, message) in notes
        .iter()
        .map(|n| ("note", n))
        .chain(findings.iter().map(|f| ("problem", f)))
    {
        if request.json {
            let what = if kind == "note" {
                "made-again-after-read-back"
            } else {
                "changes-across-chains"
            };
            println!(
                "{}",
                json!({ "ok": kind == "note", "server": server, kind: what, "message": message })
            );
        } else if kind == "note" {
            println!("note: {message}");
        } else {
            println!("cluster INCONSISTENT: {message}");
        }
    }
    worst.failed |= !findings.is_empty();
    let made: usize = changes.made.len();
    let ok = !worst.failed && worst.unreadable.is_none() && !worst.stale;
    if request.json {
        println!(
            "{}",
            json!({ "ok": ok, "server": server, "replicas": published.len(), "changes_made": made })
        );
    } else if ok {
        println!(
            "cluster verified ({server}): {} replicas' chains, {made} changes made, each once in all the chains",
            published.len()
        );
    }
    worst.exit()
}

/// Audits replica `p`'s chain read through `source`: at least as long as it published, and,
/// with `key`, extending the checkpoint it published.
fn replica_chain(
    source: &Source<'_>,
    p: &Published,
    key: Option<&VerifierKey>,
    max_age: Option<std::time::Duration>,
    seen: &mut dyn FnMut(&Entry),
) -> Result<super::ledger_audit::Verified, Stop> {
    let earlier = match (key, &p.checkpoint) {
        (Some(key), Some(text)) => Some(published_checkpoint(text, key, &p.replica)?),
        // No signature to check: the chain must still extend the root it published.
        _ if p.tree_size > 0 => Some(Earlier {
            checkpoint: grace_ledger::Checkpoint {
                origin: format!("published by replica `{}`", p.replica),
                tree_size: p.tree_size,
                root_hash: p.root.parse().map_err(|e| {
                    Stop::Finding(Finding::NotVerified(format!(
                        "the root it published to the engine cannot be read: {e}"
                    )))
                })?,
                timestamp_millis: 0,
            },
            audit: None,
            source: format!("what replica `{}` published to the engine", p.replica),
        }),
        _ => None,
    };
    // Fewer entries than it published: rolled back or rewritten, whether or not it signs
    // checkpoints (again).
    let head = tree_head(source)?;
    if head.size < p.tree_size {
        return Err(Stop::Finding(Finding::Rewritten(format!(
            "its chain has {} entries, fewer than the {} it published to the engine: it was rolled back or rewritten",
            head.size, p.tree_size
        ))));
    }
    audit(source, key, earlier, max_age, seen)
}

/// The worst outcome so far: tampered (1) over unreadable (3) over stale (4).
#[derive(Default)]
struct Worst {
    failed: bool,
    unreadable: Option<Exit>,
    stale: bool,
}

impl Worst {
    /// Reports a replica that did not verify, and keeps the worst outcome.
    fn note(&mut self, stop: Stop, label: &str, as_json: bool) {
        match stop {
            Stop::Finding(finding) => match finding.report(label, as_json) {
                Exit::Stale => self.stale = true,
                _ => self.failed = true,
            },
            Stop::Exit(exit) => {
                let message = match &exit {
                    Exit::Invalid(e) | Exit::Internal(e) => e.to_string(),
                    _ => String::new(),
                };
                if as_json {
                    println!(
                        "{}",
                        json!({ "ok": false, "server": label, "problem": "unreadable", "message": message })
                    );
                } else {
                    println!("ledger NOT READ ({label}): {message}");
                }
                if self.unreadable.is_none() {
                    self.unreadable = Some(match exit {
                        Exit::Invalid(_) => Exit::Invalid(anyhow!("{label}: {message}")),
                        _ => Exit::Internal(anyhow!("{label}: {message}")),
                    });
                }
            }
        }
    }

    fn exit(self) -> Exit {
        if self.failed {
            Exit::Failed
        } else if let Some(exit) = self.unreadable {
            exit
        } else if self.stale {
            Exit::Stale
        } else {
            Exit::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, run: &str, result: Value) -> Entry {
        Entry {
            seq,
            recorded_millis: 0,
            run_id: run.into(),
            playbook: "scaler".into(),
            digest: "sha256:00".into(),
            interface: "scaling".into(),
            function: "set-desired-capacity".into(),
            args: json!({}),
            decision: grace_ledger::Decision::allowed("test"),
            result,
            at_millis: 0,
            prev_hash: grace_ledger::Hash::ZERO,
            hash: grace_ledger::Hash::ZERO,
        }
    }

    #[test]
    fn a_change_made_on_two_replicas_is_a_finding_and_a_replay_is_not() {
        let mut c = Changes::default();
        c.see(
            "a",
            &entry(
                3,
                "r1",
                json!({"intent": "executing", "idempotency_key": "k"}),
            ),
        );
        c.see(
            "a",
            &entry(
                4,
                "r1",
                json!({"ok": {}, "idempotency_key": "k", "journal": 10}),
            ),
        );
        // b took the run over and replayed it: not made again.
        c.see(
            "b",
            &entry(
                7,
                "r1",
                json!({"ok": {}, "idempotency_key": "k", "replayed_from": 4}),
            ),
        );
        // Another run's change, found in place after an unknown outcome: not made again either.
        c.see(
            "b",
            &entry(
                8,
                "r2",
                json!({"ok": {}, "idempotency_key": "k", "reconciled_from": 2}),
            ),
        );
        assert_eq!(c.findings(), (vec![], vec![]));

        c.see(
            "b",
            &entry(
                9,
                "r1",
                json!({"ok": {}, "idempotency_key": "k", "journal": 11}),
            ),
        );
        let (findings, _) = c.findings();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].contains("a#4, b#9"), "{findings:?}");
    }

    #[test]
    fn a_change_made_again_after_a_read_back_is_noted_not_failed() {
        let mut c = Changes::default();
        c.see(
            "a",
            &entry(
                4,
                "r1",
                json!({"ok": {}, "idempotency_key": "k", "journal": 10}),
            ),
        );
        c.see(
            "b",
            &entry(
                9,
                "r1",
                json!({"ok": {}, "idempotency_key": "k", "journal": 12, "read_back_from": 3}),
            ),
        );
        let (findings, notes) = c.findings();
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(notes.len(), 1);
        // Twice without a read-back, beside one with: a finding.
        c.see(
            "c",
            &entry(
                2,
                "r1",
                json!({"ok": {}, "idempotency_key": "k", "journal": 13}),
            ),
        );
        assert_eq!(c.findings().0.len(), 1);
    }

    #[test]
    fn a_journal_record_claimed_by_two_entries_is_a_finding() {
        let mut c = Changes::default();
        c.see(
            "a",
            &entry(
                4,
                "r1",
                json!({"error": {}, "idempotency_key": "k", "journal": 10}),
            ),
        );
        c.see(
            "b",
            &entry(
                5,
                "r2",
                json!({"error": {}, "idempotency_key": "j", "journal": 10}),
            ),
        );
        let (findings, _) = c.findings();
        assert_eq!(findings.len(), 1);
        assert!(findings[0].contains("record 10"), "{findings:?}");
    }
}
