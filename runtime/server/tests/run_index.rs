//! The store's indexes of runs: the unfinished and recently failed ones, what a restart reads
//! instead of every run, and every run by creation time, what a listing of the newest reads;
//! kept with each run's write, and built once for a data directory written before them.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use grace_engine::event::system_now_millis;
use grace_ledger::{Database, Recovery};
use grace_server::runs::{RunRecord, RunState};
use grace_server::store::run_index::RECENT_FAILURES_MS;
use grace_server::store::tables::{
    META, RUN_COUNT_PREFIX, RUN_INDEX_VERSION, RUNS, UNFINISHED_RUNS, UNFINISHED_RUNS_BY_ID,
};
use grace_server::store::{RunFilter, Store};
use redb::{ReadableDatabase, ReadableTable};

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
    Arc::new(Database::create(dir.path().join("grace.redb"), Recovery::Quick).unwrap())
}

/// The unfinished runs, in every state that is not final.
fn unfinished(store: &Store) -> Vec<RunRecord> {
    let states: Vec<RunState> = RunState::ALL
        .into_iter()
        .filter(|s| !s.is_final())
        .collect();
    store.unfinished_runs(&states).unwrap()
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
        ids(&unfinished(&store)),
        set(&["queued", "running", "waiting", "interrupted"])
    );
}

#[test]
fn a_restart_reads_only_the_states_it_acts_on_and_each_run_under_its_current_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(database(&dir)).unwrap();
    // Interrupted runs pile up until someone resumes them; a restart does nothing with them.
    for i in 0..500 {
        store
            .put_run(&run(&format!("left-{i}"), "p", RunState::Interrupted, None))
            .unwrap();
    }
    // One run through its life: running, interrupted by a crash, resumed (queued again).
    for state in [
        RunState::Queued,
        RunState::Running,
        RunState::Interrupted,
        RunState::Queued,
    ] {
        store.put_run(&run("resumed", "p", state, None)).unwrap();
    }
    store
        .put_run(&run("waiting", "p", RunState::WaitingApproval, None))
        .unwrap();

    let in_flight = store
        .unfinished_runs(&[RunState::Queued, RunState::Running])
        .unwrap();
    assert_eq!(ids(&in_flight), set(&["resumed"]));
    assert_eq!(in_flight[0].state, RunState::Queued);
    assert_eq!(
        ids(&store.unfinished_runs(&[RunState::WaitingApproval]).unwrap()),
        set(&["waiting"])
    );
    let interrupted = store.unfinished_runs(&[RunState::Interrupted]).unwrap();
    assert_eq!(interrupted.len(), 500);
    assert!(!ids(&interrupted).contains("resumed"));
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
    assert_eq!(ids(&unfinished(&store)), set(&["b"]));
}

#[test]
fn runs_created_by_a_matched_batch_are_indexed_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(database(&dir)).unwrap();
    store
        .put_matched(&[run("fired", "p", RunState::Queued, None)], 1, None, None)
        .unwrap();
    assert_eq!(ids(&unfinished(&store)), set(&["fired"]));
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
            insert_raw(&mut table, &r);
        }
    }
    tx.commit().unwrap();

    let store = Store::open(db.clone()).unwrap();
    assert_eq!(ids(&unfinished(&store)), set(&["running", "waiting"]));
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
    // The run made final behind the index's back (as no server does), the number of runs
    // unchanged: a second open that scanned again would drop it from the index; one that
    // trusts the recorded index keeps it.
    raw_put(&db, &run("a", "p", RunState::Succeeded, Some(1)));
    let store = Store::open(db.clone()).unwrap();
    assert!(indexed(&db).contains(&("queued".to_owned(), "a".to_owned())));
    // A restart acts on the run as stored, not on the index: the finished run is not among
    // those to interrupt.
    assert!(unfinished(&store).is_empty());
}

/// The unfinished-run index as stored: (state, id).
fn indexed(db: &Database) -> BTreeSet<(String, String)> {
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(UNFINISHED_RUNS).unwrap();
    table
        .iter()
        .unwrap()
        .map(|row| {
            let (k, _) = row.unwrap();
            let (state, id) = k.value();
            (state.to_owned(), id.to_owned())
        })
        .collect()
}

#[test]
fn an_older_server_run_here_since_makes_the_next_open_rebuild_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let store = Store::open(db.clone()).unwrap();
    store
        .put_run(&run("a", "p", RunState::Running, None))
        .unwrap();
    drop(store);
    // What a server of index version 2 leaves when run here: its index by id recreated, a run
    // it finished (the counts it keeps still add up), and one it started.
    let tx = db.begin_write().unwrap();
    tx.open_table(UNFINISHED_RUNS_BY_ID)
        .unwrap()
        .insert("b", ())
        .unwrap();
    {
        // It counts its runs as this layout does: only the index by state is left behind.
        let mut meta = tx.open_table(META).unwrap();
        let key = format!("{RUN_COUNT_PREFIX}running");
        let running = meta.get(key.as_str()).unwrap().unwrap().value();
        meta.insert(key.as_str(), running + 1).unwrap();
    }
    tx.commit().unwrap();
    raw_put(&db, &run("a", "p", RunState::Succeeded, Some(1)));
    raw_put(&db, &run("b", "p", RunState::Running, None));

    let store = Store::open(db.clone()).unwrap();
    assert_eq!(ids(&unfinished(&store)), set(&["b"]));
    assert_eq!(
        indexed(&db),
        BTreeSet::from([("running".to_owned(), "b".to_owned())])
    );
    let tx = db.begin_read().unwrap();
    assert!(tx.open_table(UNFINISHED_RUNS_BY_ID).is_err());
}

#[test]
fn runs_written_without_the_index_since_it_was_built_make_the_next_open_rebuild_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let store = Store::open(db.clone()).unwrap();
    store
        .put_run(&run("a", "p", RunState::Succeeded, Some(1)))
        .unwrap();
    // What an older server, run on this directory after a newer one, leaves: a run the
    // indexes do not know. The counts no longer add up to the runs stored.
    raw_put(&db, &run("left-running", "p", RunState::Running, None));
    let store = Store::open(db).unwrap();
    assert_eq!(ids(&unfinished(&store)), set(&["left-running"]));
    let counts: Vec<(RunState, u64)> = store
        .run_counts()
        .unwrap()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(counts, [(RunState::Running, 1), (RunState::Succeeded, 1)]);
}

#[test]
fn the_counts_by_state_follow_every_write_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(database(&dir)).unwrap();
    let count = |state: RunState| {
        store
            .run_counts()
            .unwrap()
            .into_iter()
            .find(|(s, _)| *s == state)
            .unwrap()
            .1
    };
    store
        .put_run(&run("a", "p", RunState::Queued, None))
        .unwrap();
    store
        .put_run(&run("b", "p", RunState::Queued, None))
        .unwrap();
    assert_eq!(count(RunState::Queued), 2);
    store
        .put_run(&run("a", "p", RunState::Running, None))
        .unwrap();
    store
        .put_run(&run("a", "p", RunState::Running, None))
        .unwrap();
    store
        .put_run(&run("a", "p", RunState::Failed, Some(5)))
        .unwrap();
    assert_eq!(count(RunState::Queued), 1);
    assert_eq!(count(RunState::Running), 0);
    assert_eq!(count(RunState::Failed), 1);
    let total: u64 = store.run_counts().unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(total, 2);
}

/// Inserts `r` into the runs table `table` as stored, touching no index.
fn insert_raw(table: &mut redb::Table<&str, &[u8]>, r: &RunRecord) {
    table
        .insert(r.id.as_str(), serde_json::to_vec(r).unwrap().as_slice())
        .unwrap();
}

/// Writes `r` into the runs table directly, as a server without the indexes did.
fn raw_put(db: &Database, r: &RunRecord) {
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx.open_table(RUNS).unwrap();
        insert_raw(&mut table, r);
    }
    tx.commit().unwrap();
}

/// A finished run `id` about `resource`, created at `created_at`.
fn created(id: &str, resource: &str, created_at: u64) -> RunRecord {
    let mut r = run(id, "p", RunState::Succeeded, Some(created_at));
    r.resource = resource.to_owned();
    r.created_at = created_at;
    r
}

fn listed(store: &Store, resource: Option<&str>, limit: usize) -> Vec<String> {
    store
        .runs(&RunFilter {
            resource: resource.map(str::to_owned),
            limit,
            ..RunFilter::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

#[test]
fn the_newest_runs_are_listed_newest_first_up_to_the_limit_as_a_full_read_would_list_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(database(&dir)).unwrap();
    // Written out of creation order, two created in the same millisecond (ordered by id).
    for (id, resource, at) in [
        ("c", "web", 30),
        ("a", "db", 10),
        ("e", "db", 50),
        ("d2", "web", 40),
        ("d1", "db", 40),
        ("b", "web", 20),
    ] {
        store.put_run(&created(id, resource, at)).unwrap();
    }
    // A run written again (its state changing) keeps its place.
    let mut again = created("c", "web", 30);
    again.state = RunState::Failed;
    store.put_run(&again).unwrap();

    assert_eq!(listed(&store, None, 3), ["e", "d2", "d1"]);
    assert_eq!(listed(&store, Some("web"), 2), ["d2", "c"]);
    assert_eq!(listed(&store, Some("db"), 10), ["e", "d1", "a"]);
    let everything = listed(&store, None, 0);
    assert_eq!(everything, ["e", "d2", "d1", "c", "b", "a"]);
    assert_eq!(listed(&store, None, 100), everything);
}

#[test]
fn a_data_directory_indexed_by_id_alone_is_indexed_by_state_once_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    // What a server with the second version of the index left: the unfinished runs by id,
    // and the version 2.
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx.open_table(RUNS).unwrap();
        let mut by_id = tx.open_table(UNFINISHED_RUNS_BY_ID).unwrap();
        for r in [
            run("running", "p", RunState::Running, None),
            run("left", "p", RunState::Interrupted, None),
            run("done", "p", RunState::Succeeded, Some(1)),
        ] {
            insert_raw(&mut table, &r);
            if !r.state.is_final() {
                by_id.insert(r.id.as_str(), ()).unwrap();
            }
        }
        tx.open_table(META)
            .unwrap()
            .insert(RUN_INDEX_VERSION, 2u64)
            .unwrap();
    }
    tx.commit().unwrap();

    let store = Store::open(db.clone()).unwrap();
    assert_eq!(
        ids(&store.unfinished_runs(&[RunState::Running]).unwrap()),
        set(&["running"])
    );
    assert_eq!(ids(&unfinished(&store)), set(&["running", "left"]));
    // The old index is gone, not left to go stale.
    let tx = db.begin_read().unwrap();
    assert!(tx.open_table(UNFINISHED_RUNS_BY_ID).is_err());
}

#[test]
fn a_data_directory_indexed_before_the_creation_index_gains_it_once_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    // What a server with the first version of the index left: runs, the version 1, and no
    // index by creation time.
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx.open_table(RUNS).unwrap();
        for r in [created("old", "web", 10), created("new", "web", 20)] {
            insert_raw(&mut table, &r);
        }
        tx.open_table(META)
            .unwrap()
            .insert(RUN_INDEX_VERSION, 1u64)
            .unwrap();
    }
    tx.commit().unwrap();

    let store = Store::open(db).unwrap();
    assert_eq!(listed(&store, None, 10), ["new", "old"]);
}
