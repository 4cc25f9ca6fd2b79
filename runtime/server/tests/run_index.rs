//! The store's index of unfinished and recently failed runs: what a restart reads instead of
//! every run, kept with each run's write, and built once for a data directory written before
//! it.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use grace_engine::event::system_now_millis;
use grace_server::runs::{RunRecord, RunState};
use grace_server::store::Store;
use grace_server::store::run_index::RECENT_FAILURES_MS;
use grace_server::store::tables::RUNS;
use redb::Database;

/// A run `id` of playbook `playbook` in `state`, finished at `finished_at` if final.
fn run(id: &str, playbook: &str, state: RunState, finished_at: Option<u64>) -> RunRecord {
    serde_json::from_value(serde_json::json!({
        "id": id, "playbook": playbook, "version": "1.0.0", "digest": "sha256:00", "trigger": 0,
        "event_seq": 1, "event": {
            "event_type": "test.x", "source": "t", "actor": "t", "resource": "r",
            "payload": {}, "timestamp": 1
        },
        "resource": "r", "dedup_key": null, "locks": [], "key": null, "state": state,
        "attempts": 1, "created_at": 0, "ingested_at": 0, "started_at": null,
        "finished_at": finished_at, "outcome": null, "failure": null, "approval": null,
        "timeline": [], "attempts_log": []
    }))
    .unwrap()
}

fn database(dir: &tempfile::TempDir) -> Arc<Database> {
    Arc::new(Database::create(dir.path().join("grace.redb")).unwrap())
}

fn ids(runs: &[RunRecord]) -> BTreeSet<String> {
    runs.iter().map(|r| r.id.clone()).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// Many finished runs and a few unfinished ones, as a long-lived server would have.
fn history(store: &Store) {
    let now = system_now_millis();
    for i in 0..2_000 {
        let state = [RunState::Succeeded, RunState::Cancelled, RunState::TimedOut][i % 3];
        store
            .put_run(&run(&format!("done-{i}"), "p", state, Some(now)))
            .unwrap();
    }
}

#[test]
fn startup_finds_exactly_the_unfinished_runs_among_many_finished_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(database(&dir)).unwrap();
    history(&store);
    for (id, state) in [
        ("queued", RunState::Queued),
        ("running", RunState::Running),
        ("waiting", RunState::WaitingApproval),
        ("interrupted", RunState::Interrupted),
    ] {
        store.put_run(&run(id, "p", state, None)).unwrap();
    }
    assert_eq!(
        ids(&store.unfinished_runs().unwrap()),
        set(&["queued", "running", "waiting", "interrupted"])
    );
}

#[test]
fn a_run_made_final_leaves_the_index_in_the_same_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(database(&dir)).unwrap();
    store
        .put_run(&run("a", "p", RunState::Running, None))
        .unwrap();
    store
        .put_run(&run("b", "p", RunState::Queued, None))
        .unwrap();
    store
        .put_run(&run(
            "a",
            "p",
            RunState::Succeeded,
            Some(system_now_millis()),
        ))
        .unwrap();
    assert_eq!(ids(&store.unfinished_runs().unwrap()), set(&["b"]));
}

#[test]
fn runs_created_by_a_matched_batch_are_indexed_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(database(&dir)).unwrap();
    store
        .put_matched(&[run("fired", "p", RunState::Queued, None)], 1, None, None)
        .unwrap();
    assert_eq!(ids(&store.unfinished_runs().unwrap()), set(&["fired"]));
}

#[test]
fn only_the_failures_of_the_last_day_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(database(&dir)).unwrap();
    let now = system_now_millis();
    let old = now - RECENT_FAILURES_MS - 60_000;
    store
        .put_run(&run("old", "p", RunState::Failed, Some(old)))
        .unwrap();
    store
        .put_run(&run("new", "q", RunState::Failed, Some(now)))
        .unwrap();
    store
        .put_run(&run("ok", "p", RunState::Succeeded, Some(now)))
        .unwrap();
    let since = now - RECENT_FAILURES_MS;
    assert_eq!(
        store.failures_since(since).unwrap(),
        vec![("q".to_owned(), now)]
    );
}

#[test]
fn a_data_directory_written_before_the_index_is_indexed_once_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let now = system_now_millis();
    // What a server before the index left: runs, and no index or index version.
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx.open_table(RUNS).unwrap();
        for r in [
            run("done", "p", RunState::Succeeded, Some(now)),
            run("failed", "p", RunState::Failed, Some(now)),
            run(
                "stale-failure",
                "p",
                RunState::Failed,
                Some(now - 2 * RECENT_FAILURES_MS),
            ),
            run("running", "p", RunState::Running, None),
            run("waiting", "p", RunState::WaitingApproval, None),
        ] {
            table
                .insert(r.id.as_str(), serde_json::to_vec(&r).unwrap().as_slice())
                .unwrap();
        }
    }
    tx.commit().unwrap();

    let store = Store::open(db.clone()).unwrap();
    assert_eq!(
        ids(&store.unfinished_runs().unwrap()),
        set(&["running", "waiting"])
    );
    assert_eq!(
        store.failures_since(now - RECENT_FAILURES_MS).unwrap(),
        vec![("p".to_owned(), now)]
    );
}

#[test]
fn the_migration_is_recorded_and_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let store = Store::open(db.clone()).unwrap();
    store
        .put_run(&run("a", "p", RunState::Queued, None))
        .unwrap();
    // A run written behind the index's back (as no server does): a second open that scanned
    // again would find it; one that trusts the recorded index does not.
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx.open_table(RUNS).unwrap();
        let r = run("unindexed", "p", RunState::Queued, None);
        table
            .insert(r.id.as_str(), serde_json::to_vec(&r).unwrap().as_slice())
            .unwrap();
    }
    tx.commit().unwrap();
    let store = Store::open(db).unwrap();
    assert_eq!(ids(&store.unfinished_runs().unwrap()), set(&["a"]));
}
