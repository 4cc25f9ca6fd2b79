//! Helpers shared by the ledger's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use grace_ledger::tables::ENTRIES;
use grace_ledger::{Decision, Durability, Ledger, LedgerError, NewEntry, Tampering};
use serde_json::json;

/// A realistic host call record; `i` varies its contents.
pub fn call(run_id: &str, i: u64) -> NewEntry {
    NewEntry {
        run_id: run_id.to_owned(),
        playbook: "scale-on-latency".to_owned(),
        digest: format!("sha256:{}", "ab".repeat(32)),
        interface: "scaling".to_owned(),
        function: "set-desired-capacity".to_owned(),
        args: json!({ "group": "web-prod", "desired": i % 12, "labels": { "env": "prod", "tier": "web" } }),
        decision: if i % 7 == 3 {
            Decision::denied("no grant covers `web-prod` above 10 instances")
        } else {
            Decision::allowed("grant scaling.set-desired-capacity on `web-prod`")
        },
        result: json!({ "ok": { "name": "web-prod", "desired-capacity": i % 12, "call": i } }),
        at_millis: 1_700_000_000_000 + i,
    }
}

/// A fresh ledger file path in its own temporary directory (kept alive by the returned guard).
pub fn temp_ledger() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("ledger.redb");
    (dir, path)
}

/// Creates a ledger at `path` holding `n` entries, then closes it.
pub fn ledger_with(path: &Path, n: u64) {
    let ledger = Ledger::open(path, Durability::None).expect("open ledger");
    for i in 0..n {
        ledger
            .append_blocking(call(&format!("run-{}", i % 3), i))
            .expect("append");
    }
}

/// Opens the ledger file raw and changes its entries table with `change`, committing.
pub fn tamper(path: &Path, change: impl FnOnce(&mut redb::Table<'_, u64, &'static [u8]>)) {
    let db = redb::Database::open(path).expect("open raw database");
    let txn = db.begin_write().expect("write transaction");
    {
        let mut entries = txn.open_table(ENTRIES).expect("entries table");
        change(&mut entries);
    }
    txn.commit().expect("commit tampering");
}

/// The stored bytes of entry `seq`.
pub fn stored(table: &redb::Table<'_, u64, &'static [u8]>, seq: u64) -> Vec<u8> {
    use redb::ReadableTable;
    table
        .get(seq)
        .expect("read entry")
        .expect("entry exists")
        .value()
        .to_vec()
}

/// Verifies the ledger at `path`, expecting tampering; returns what verification found.
pub fn tampering(path: &Path) -> Tampering {
    let ledger = Ledger::open(path, Durability::None).expect("open ledger");
    match ledger.verify() {
        Err(LedgerError::Tampered(t)) => t,
        other => panic!("expected tampering, got {other:?}"),
    }
}
