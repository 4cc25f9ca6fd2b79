//! Every part that writes the data directory's database leaves it, after its commits, in a state
//! a crash can be recovered from without redb's full repair (docs/architecture.md, "Crash
//! recovery"): each test commits through one part, then opens a copy of the file as a `kill -9`
//! at that moment would leave it, failing if redb starts to repair it.
//!
//! redb skips the repair only if the last commit before the crash recorded its allocator state,
//! which every write transaction begun by `grace_ledger::Database::begin_write` does; these
//! tests catch a part that begins one some other way.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use grace_ledger::{Durability, Ledger, storage::crash_image_needs_repair};
use grace_model::TriggerEvent;
use grace_server::auth::TokenStore;
use grace_server::store::{EventLog, StorageSettings, Store};
use grace_server::supervisor::Supervisor;
use grace_server::trust::{HostTrust, TrustSettings};

/// A data directory's ledger, opened as `grace serve` opens it with `storage`.
fn ledger(dir: &tempfile::TempDir, storage: &StorageSettings) -> Ledger {
    let path = dir.path().join("grace.redb");
    Ledger::open_with(path, Durability::Immediate, storage.recovery()).unwrap()
}

/// Whether a crash now would make the next open repair the whole file.
fn a_crash_now_needs_repair(dir: &tempfile::TempDir) -> bool {
    let live = dir.path().join("grace.redb");
    crash_image_needs_repair(&live, &dir.path().join("crashed.redb")).unwrap()
}

#[test]
fn the_store_commits_for_a_quick_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir, &StorageSettings::default());
    let store = Store::open(ledger.database()).unwrap();
    store.put_simulation(b"fleet").unwrap();
    assert!(!a_crash_now_needs_repair(&dir));
    // A matched batch that fires nothing commits without fsync (the matcher's common case):
    // what a crash leaves then is the last durable commit, which still needs no repair.
    store.put_matched(&[], 1, None, None).unwrap();
    assert!(!a_crash_now_needs_repair(&dir));
    store.put_matched(&[], 2, None, Some(5_000)).unwrap();
    store.put_matched(&[], 3, None, None).unwrap();
    assert!(!a_crash_now_needs_repair(&dir));
}

#[tokio::test]
async fn the_event_log_commits_for_a_quick_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir, &StorageSettings::default());
    // The store creates the event table, as `grace serve` opens it first.
    Store::open(ledger.database()).unwrap();
    let events = EventLog::start(ledger.database(), Arc::new(Supervisor::default())).unwrap();
    let event = TriggerEvent {
        event_type: "test.crash".into(),
        source: "test".into(),
        actor: "test".into(),
        resource: "web".into(),
        payload: serde_json::json!({}),
        timestamp: 1_000,
    };
    events
        .append(Arc::new(vec![event]), Vec::new(), 1_000, None)
        .await
        .unwrap();
    assert!(!a_crash_now_needs_repair(&dir));
}

#[test]
fn principals_and_tokens_commit_for_a_quick_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir, &StorageSettings::default());
    let tokens = TokenStore::open_database(ledger.database()).unwrap();
    tokens.principals().ensure("alice", "test").unwrap();
    assert!(!a_crash_now_needs_repair(&dir));
}

#[test]
fn the_trust_core_commits_for_a_quick_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir, &StorageSettings::default());
    let trust = HostTrust::open(ledger.database(), &TrustSettings::default()).unwrap();
    trust
        .core()
        .policies()
        .add("base", grace_trust::BASELINE, "test")
        .unwrap();
    assert!(!a_crash_now_needs_repair(&dir));
    let web = grace_trust::Resource::group("web-prod");
    trust.core().record_change(&web, 1_000).unwrap();
    assert!(!a_crash_now_needs_repair(&dir));
}

#[tokio::test]
async fn the_ledger_commits_for_a_quick_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir, &StorageSettings::default());
    ledger.append(entry()).await.unwrap();
    assert!(!a_crash_now_needs_repair(&dir));
}

#[tokio::test]
async fn with_quick_repair_off_a_crash_needs_the_full_repair() {
    let dir = tempfile::tempdir().unwrap();
    let off = StorageSettings {
        quick_repair: false,
    };
    let ledger = ledger(&dir, &off);
    ledger.append(entry()).await.unwrap();
    assert!(a_crash_now_needs_repair(&dir));
}

fn entry() -> grace_ledger::NewEntry {
    grace_ledger::NewEntry {
        run_id: "run-1".into(),
        playbook: "p".into(),
        digest: "sha256:00".into(),
        interface: "scaling".into(),
        function: "describe-group".into(),
        args: serde_json::json!({}),
        decision: grace_ledger::Decision::allowed("test"),
        result: serde_json::json!({}),
        at_millis: 1_000,
    }
}
