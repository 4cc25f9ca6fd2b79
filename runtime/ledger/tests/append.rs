//! Appending, reading back, and the chain across reopenings and concurrency.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{call, ledger_with, temp_ledger};
use grace_ledger::codec::{self, EncodeError, MAX_JSON_DEPTH};
use grace_ledger::{Durability, Hash, Head, Ledger, LedgerError, Verdict, VerifyReport};
use serde_json::json;

#[tokio::test]
async fn appended_entries_read_back_in_order_with_consecutive_seqs_from_one() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::Immediate).unwrap();
    let mut receipts = Vec::new();
    for i in 0..5 {
        receipts.push(ledger.append(call("run-1", i)).await.unwrap());
    }

    assert_eq!(
        receipts.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let entries = ledger.entries(1, 100).unwrap();
    assert_eq!(entries.len(), 5);
    for (i, (entry, receipt)) in entries.iter().zip(&receipts).enumerate() {
        let expected = call("run-1", i as u64);
        assert_eq!(entry.seq, receipt.seq);
        assert_eq!(entry.hash, receipt.hash);
        assert_eq!(entry.run_id, expected.run_id);
        assert_eq!(entry.playbook, expected.playbook);
        assert_eq!(entry.digest, expected.digest);
        assert_eq!(entry.interface, expected.interface);
        assert_eq!(entry.function, expected.function);
        assert_eq!(entry.args, expected.args);
        assert_eq!(entry.decision, expected.decision);
        assert_eq!(entry.result, expected.result);
        assert_eq!(entry.at_millis, expected.at_millis);
        assert!(entry.recorded_millis > 1_600_000_000_000);
    }
    assert_eq!(
        ledger.head().unwrap(),
        Some(Head {
            seq: 5,
            hash: receipts[4].hash,
            entries: 5
        })
    );
}

#[tokio::test]
async fn each_entry_hash_covers_its_encoding_and_links_to_the_one_before() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    for i in 0..4 {
        ledger.append(call("run-1", i)).await.unwrap();
    }

    let entries = ledger.entries(1, 10).unwrap();
    assert_eq!(entries[0].prev_hash, Hash::ZERO);
    for pair in entries.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for entry in &entries {
        let body = codec::encode_body(entry).unwrap();
        assert_eq!(codec::hash_body(&body), entry.hash);
    }
}

#[test]
fn reopening_the_file_resumes_the_chain_from_the_stored_head() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 3);

    let ledger = Ledger::open(&path, Durability::Immediate).unwrap();
    let head_before = ledger.head().unwrap().unwrap();
    let receipt = ledger.append_blocking(call("run-2", 3)).unwrap();

    assert_eq!(head_before.seq, 3);
    assert_eq!(receipt.seq, 4);
    let fourth = ledger.entries(4, 1).unwrap().remove(0);
    assert_eq!(fourth.prev_hash, head_before.hash);
    assert_eq!(
        ledger.verify().unwrap(),
        VerifyReport {
            entries: 4,
            head: Some(receipt.hash),
            root: ledger.tree_head().unwrap().root,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_appends_from_many_tasks_get_distinct_seqs_and_verify() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::Immediate).unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|task| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let mut receipts = Vec::new();
                for i in 0..20 {
                    let run = format!("run-{task}");
                    receipts.push(ledger.append(call(&run, i)).await.unwrap());
                }
                receipts
            })
        })
        .collect();
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.extend(task.await.unwrap());
    }

    let seqs: BTreeSet<u64> = receipts.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=1000).collect::<BTreeSet<u64>>());
    let report = ledger.verify().unwrap();
    assert_eq!(report.entries, 1000);
    assert_eq!(report.head, Some(ledger.head().unwrap().unwrap().hash));
    let stored = ledger.entries(1, 2000).unwrap();
    for receipt in &receipts {
        assert_eq!(stored[(receipt.seq - 1) as usize].hash, receipt.hash);
    }
    // Concurrent appenders shared commits.
    let stats = ledger.stats();
    assert_eq!(stats.entries, 1000);
    assert!(stats.commits < 1000, "{stats:?}");
}

#[test]
fn blocking_appends_from_many_threads_form_one_chain() {
    let (_dir, path) = temp_ledger();
    let ledger = Arc::new(Ledger::open(&path, Durability::Immediate).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| {
                        ledger
                            .append_blocking(call(&format!("run-{t}"), i))
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for thread in threads {
        seqs.extend(thread.join().unwrap().into_iter().map(|r| r.seq));
    }

    assert_eq!(seqs, (1..=200).collect());
    assert_eq!(ledger.verify().unwrap().entries, 200);
}

#[test]
fn entries_returns_at_most_limit_entries_from_the_given_seq() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 10);
    let ledger = Ledger::open(&path, Durability::None).unwrap();

    let seqs = |from, limit| {
        ledger
            .entries(from, limit)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(4, 3), [4, 5, 6]);
    assert_eq!(seqs(9, 100), [9, 10]);
    assert_eq!(seqs(0, 2), [1, 2]);
    assert!(seqs(11, 5).is_empty());
    assert!(seqs(1, 0).is_empty());
}

#[test]
fn entries_for_run_returns_only_that_runs_entries_in_order() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 10); // runs run-0, run-1, run-2 in turn
    let ledger = Ledger::open(&path, Durability::None).unwrap();

    let run_1 = ledger.entries_for_run("run-1").unwrap();
    assert_eq!(run_1.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 5, 8]);
    assert!(run_1.iter().all(|e| e.run_id == "run-1"));
    assert!(ledger.entries_for_run("run-9").unwrap().is_empty());
}

#[test]
fn an_empty_ledger_has_no_head_and_verifies() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::Immediate).unwrap();

    assert_eq!(ledger.head().unwrap(), None);
    assert!(ledger.entries(1, 10).unwrap().is_empty());
    assert_eq!(
        ledger.verify().unwrap(),
        VerifyReport {
            entries: 0,
            head: None,
            root: grace_ledger::merkle::empty_root(),
        }
    );
}

#[test]
fn entries_appended_without_durability_survive_a_clean_close() {
    let (_dir, path) = temp_ledger();
    {
        let ledger = Ledger::open(&path, Durability::None).unwrap();
        for i in 0..50 {
            ledger.append_blocking(call("run-1", i)).unwrap();
        }
    }

    let ledger = Ledger::open(&path, Durability::None).unwrap();
    assert_eq!(ledger.head().unwrap().map(|h| h.seq), Some(50));
    assert_eq!(ledger.verify().unwrap().entries, 50);
}

#[test]
fn an_entry_nested_too_deeply_is_refused_and_takes_no_seq() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    let mut deep = json!("bottom");
    for _ in 0..=MAX_JSON_DEPTH {
        deep = json!([deep]);
    }
    let mut entry = call("run-1", 0);
    entry.args = deep;

    let err = ledger.append_blocking(entry).unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::InvalidEntry {
                source: EncodeError::TooDeep { field: "args" }
            }
        ),
        "{err:?}"
    );
    assert_eq!(ledger.append_blocking(call("run-1", 1)).unwrap().seq, 1);
}

#[test]
fn dropping_the_last_handle_stops_the_writer_and_releases_the_file() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::Immediate).unwrap();
    let clone = ledger.clone();
    ledger.append_blocking(call("run-1", 0)).unwrap();

    // The file is locked while any handle is alive...
    drop(ledger);
    let second = Ledger::open(&path, Durability::Immediate);
    assert!(
        matches!(second, Err(LedgerError::Open { .. })),
        "{second:?}"
    );
    // ...and free once the last one is gone.
    drop(clone);
    let reopened = Ledger::open(&path, Durability::Immediate).unwrap();
    assert_eq!(reopened.head().unwrap().map(|h| h.seq), Some(1));
}

#[test]
fn entries_serialize_with_hex_hashes_and_kebab_case_verdicts() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 4);
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    let entry = ledger.entries(4, 1).unwrap().remove(0);
    assert_eq!(entry.decision.verdict, Verdict::Denied);

    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(json["hash"], json!(entry.hash.to_string()));
    assert_eq!(json["prev_hash"].as_str().unwrap().len(), 64);
    assert_eq!(json["decision"]["verdict"], json!("denied"));
    let back: grace_ledger::Entry = serde_json::from_value(json).unwrap();
    assert_eq!(back, entry);
}

#[test]
fn ledgers_and_their_errors_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Ledger>();
    shareable::<LedgerError>();
    shareable::<grace_ledger::Entry>();
}

#[tokio::test]
async fn submitted_entries_are_recorded_without_being_awaited_and_flush_waits_for_them() {
    let (_dir, path) = common::temp_ledger();
    let ledger = grace_ledger::Ledger::open(&path, grace_ledger::Durability::Immediate).unwrap();
    for i in 0..10 {
        // Receipts dropped on purpose: the entries are queued all the same.
        drop(ledger.submit(common::call("run-s", i)).unwrap());
    }
    ledger.flush().await.unwrap();
    assert_eq!(ledger.head().unwrap().unwrap().entries, 10);
    ledger.verify().unwrap();
}

#[tokio::test]
async fn flush_on_an_idle_ledger_returns_at_once() {
    let (_dir, path) = common::temp_ledger();
    let ledger = grace_ledger::Ledger::open(&path, grace_ledger::Durability::None).unwrap();
    ledger.flush().await.unwrap();
    assert!(ledger.head().unwrap().is_none());
}

#[test]
fn runs_without_end_are_the_runs_started_and_not_finished() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    let lifecycle = |run: &str, function: &str| {
        let mut e = call(run, 0);
        e.interface = "run".into();
        e.function = function.into();
        ledger.append_blocking(e).unwrap();
    };
    lifecycle("a", "started");
    lifecycle("b", "started");
    ledger.append_blocking(call("b", 1)).unwrap();
    lifecycle("a", "finished");
    lifecycle("c", "started");
    // A second attempt of `a` that never ended.
    lifecycle("a", "started");
    assert_eq!(ledger.runs_without_end().unwrap(), ["b", "c", "a"]);
}
