//! Crash safety, end to end: `grace serve --simulate` on one data directory is killed with
//! SIGKILL at random points while publishers send events, runs run, a reader follows runs, the
//! ledger and its signed checkpoints, and interrupted runs are resumed; after each restart,
//! everything the server acknowledged must still be there, unchanged:
//!
//! - every acknowledged event, with the same content, and exactly one run of the playbook its
//!   trigger fires (none lost, none fired twice);
//! - every run seen, in the state seen if that was final, otherwise final or `interrupted`;
//! - every ledger entry seen, with the same hash; the chain verifies (over the API, and offline
//!   with `grace ledger verify` while the server is down);
//! - every checkpoint the server served still verifies against the ledger (consistency: the
//!   ledger was only ever appended to), offline with `grace ledger verify --checkpoint`;
//! - every acknowledged playbook upload;
//! - every approval request seen, in the state seen once decided; a run waiting for approval is
//!   still waiting, or went on (a policy makes every capacity change of `crash-approvals` wait
//!   for one approver, and the reader approves some of them as it goes).
//!
//! `GRACE_CRASH_KILLS` kill points (default 10; `just crash` runs 100); the seed is printed and
//! `GRACE_CRASH_SEED` replays it. The kill points vary: during ingest, right after an
//! acknowledgement, while a run fired by the last acknowledged event is in flight, and during
//! recovery right after a restart.
//!
//! Each restart's recovery is printed (a figure, not a pass mark: a busy machine is slow): the
//! time to `grace serving on`, the time until every acknowledged firing event has its run, the
//! events the trigger mesh replayed after its checkpoint and the unmatched backlog; the slowest
//! is printed again at the end. Lists the server answers hold the newest 10,000 items, so runs
//! confirmed once are remembered ([`Checked`]) and older items are checked by a rotating sample.
//! So that a long loop stays linear, each restart checks the events, ledger entries and
//! checkpoints acknowledged since the previous check and a rotating sample of older ones, and
//! every one of them every [`FULL_CHECK_EVERY`] kill points and at the end ([`Progress`]); the
//! reader follows the newest 1,000 runs and approvals (it reads every few milliseconds, so it
//! sees each run as it is created; older ones' later states are not followed).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use common::stress::{Http, Rng, checkpointing_config, grace};
use common::*;
use grace_engine::TriggerEvent;
use grace_ledger::{InclusionProof, SignedCheckpoint, VerifierKey};
use grace_testkit::poll_until;
use serde_json::{Value, json};

const PLAYBOOK: &str = "echo-crash";
/// Asks to scale `api-asg` by one: a change that waits for approval.
const APPROVING: &str = "crash-approvals";
const FINAL: &[&str] = &["succeeded", "failed", "cancelled", "timed-out"];
/// Every this many kill points (at the first check from there), and at the end, every
/// acknowledged event, ledger entry and checkpoint is checked; in between, those acknowledged
/// since the last check and a rotating sample of older ones (see [`Progress`]).
const FULL_CHECK_EVERY: u64 = 50;

/// Everything the server acknowledged, as its clients saw it.
#[derive(Default)]
struct Acked {
    /// Event seq → the event as sent.
    events: BTreeMap<u64, Value>,
    /// Resource → seq of an acknowledged event that fires exactly one run of [`PLAYBOOK`].
    firing: BTreeMap<String, u64>,
    /// Run id → the state last seen.
    runs: BTreeMap<String, String>,
    /// Runs whose resume was acknowledged.
    resumed: BTreeSet<String>,
    /// Ledger seq → entry hash.
    entries: BTreeMap<u64, Value>,
    /// Tree size → the signed checkpoint served for it.
    checkpoints: BTreeMap<u64, String>,
    /// Acknowledged uploads: (version, digest).
    uploads: Vec<(String, String)>,
    /// `202`s whose body was lost with the connection (their seqs are unknown).
    blind_acks: usize,
    /// Resource → seq of an acknowledged event that fires exactly one run of [`APPROVING`].
    approving: BTreeMap<String, u64>,
    /// Runs of [`APPROVING`] → the state last seen.
    approving_runs: BTreeMap<String, String>,
    /// Approval id → the state last seen (after an acknowledged vote, the vote's answer).
    approvals: BTreeMap<String, String>,
    /// Acknowledged approvals.
    approved: usize,
}

/// Where in the server's life the kill lands.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// At a random time while events stream in.
    DuringIngest(Duration),
    /// The instant the `n`th batch is acknowledged.
    AfterAck(u64),
    /// Shortly after an event that fires a run is acknowledged, while the run is in flight.
    DuringRun(Duration),
    /// Right after the restart, while recovery matches the backlog; no traffic.
    DuringRecovery(Duration),
}

impl Moment {
    fn pick(rng: &mut Rng) -> Moment {
        match rng.range(0..=9) {
            0..=3 => Moment::DuringIngest(Duration::from_millis(rng.range(20..=900))),
            4..=5 => Moment::AfterAck(rng.range(1..=40)),
            6..=8 => Moment::DuringRun(Duration::from_millis(rng.range(0..=15))),
            _ => Moment::DuringRecovery(Duration::from_millis(rng.range(0..=40))),
        }
    }
}

/// What a publisher tells the killer.
enum Ack {
    Batch,
    Firing,
}

#[test]
fn every_acknowledged_event_run_and_ledger_entry_survives_sigkill() {
    let kills: u64 = std::env::var("GRACE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut rng = Rng::from_env("GRACE_CRASH_SEED");
    let data = data_dir();
    let keys = tempfile::tempdir().unwrap();
    let config = checkpointing_config(keys.path(), "grace.test/crash");
    let config = config.to_str().unwrap().to_owned();
    let public_key = keys.path().join("ledger.key.pub");
    let key = VerifierKey::load(&public_key).unwrap();
    let start = || Server::start(&path_of(&data), &["--config", &config]);

    let acked = Mutex::new(Acked::default());
    let started = Instant::now();
    let mut survived = 0;
    let mut server = start();
    upload(&server, "1.0.0", &acked);
    require_approval(&server);
    let mut checked = Checked::default();
    let mut restarted = Instant::now();
    let mut serving = Duration::ZERO;
    let mut slowest: Option<Recovery> = None;
    let mut next_full = FULL_CHECK_EVERY;
    for kill in 1..=kills {
        let moment = Moment::pick(&mut rng);
        if kill > 1 && !matches!(moment, Moment::DuringRecovery(_)) {
            // The first check at or after each multiple (a kill point during recovery checks
            // nothing, so a multiple can be skipped).
            let full = kill >= next_full;
            if full {
                next_full += FULL_CHECK_EVERY;
            }
            let matched =
                check_recovered(&server, &key, &acked, &mut checked, kill, restarted, full);
            let recovery = Recovery::measure(&server, kill - 1, serving, matched, data.path());
            eprintln!(
                "{recovery}; checked{} in {:.2} s",
                if full { " in full" } else { "" },
                restarted.elapsed().as_secs_f64()
            );
            if slowest
                .as_ref()
                .is_none_or(|s| recovery.total() > s.total())
            {
                slowest = Some(recovery);
            }
        }
        if kill % 7 == 0 && !matches!(moment, Moment::DuringRecovery(_)) {
            upload(&server, &format!("1.0.{kill}"), &acked);
        }
        let seeds: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        drive_and_kill(&mut server, moment, kill, &seeds, &acked);
        eprintln!("kill {kill}: {moment:?}");
        // Offline, before the server reopens the database: the recovery is then the CLI's. It
        // reads the whole ledger, so past the first kill points only every tenth does it.
        if kill % 2 == 1 && (kill < 20 || kill % 10 == 1) {
            let offline = Instant::now();
            check_offline(data.path(), &public_key, &acked);
            eprintln!(
                "kill {kill}: verified offline in {:.2} s",
                offline.elapsed().as_secs_f64()
            );
        }
        restarted = Instant::now();
        server = start();
        serving = restarted.elapsed();
        survived += 1;
    }
    let matched = check_recovered(
        &server,
        &key,
        &acked,
        &mut checked,
        kills + 1,
        restarted,
        true,
    );
    let recovery = Recovery::measure(&server, kills, serving, matched, data.path());
    eprintln!("{recovery}");
    if slowest
        .as_ref()
        .is_none_or(|s| recovery.total() > s.total())
    {
        slowest = Some(recovery);
    }
    server.kill9();
    check_offline(data.path(), &public_key, &acked);

    let a = acked.lock().unwrap();
    eprintln!(
        "crash test: {survived} kill points survived, {} events, {} runs, {} approval requests ({} approved), {} ledger entries, {} checkpoints checked ({} acknowledgements lost with the connection) in {:.1} s",
        a.events.len(),
        a.runs.len() + a.approving_runs.len(),
        a.approvals.len(),
        a.approved,
        a.entries.len(),
        a.checkpoints.len(),
        a.blind_acks,
        started.elapsed().as_secs_f64()
    );
    if let Some(slowest) = slowest {
        eprintln!("crash test: slowest {slowest}");
    }
    assert!(!a.events.is_empty() && !a.runs.is_empty() && !a.entries.is_empty());
    assert!(
        !a.approvals.is_empty(),
        "no approval request was exercised: {} approving events, runs {:?}",
        a.approving.len(),
        a.approving_runs
    );
}

fn upload(server: &Server, version: &str, acked: &Mutex<Acked>) {
    let manifest = manifest(PLAYBOOK, "[[triggers]]\nevent_type = \"crash.fire\"\n")
        .replace("version = \"1.0.0\"", &format!("version = \"{version}\""));
    let (status, body) = server.upload(&manifest, component("echo"));
    assert!(status == 201 || status == 200, "{status} {body}");
    acked.lock().unwrap().uploads.push((
        version.to_owned(),
        body["digest"].as_str().unwrap().to_owned(),
    ));
}

/// Policies: everything within grants, and one approver for capacity changes; and the playbook
/// making them (`guardrail-prober`, one step per run).
fn require_approval(server: &Server) {
    for (name, text) in [
        ("base", grace_trust::BASELINE),
        (
            "approvals",
            r#"@id("one-approver") @decision("require_approval")
               permit(principal, action in Grace::Action::"capacity", resource);"#,
        ),
    ] {
        let (status, body) = common::rt()
            .block_on(common::send(
                &client_with_token(&server.token),
                reqwest::Method::PUT,
                &format!("{}/v1/policies/{name}", server.url),
                Some((
                    Some("application/json"),
                    json!({ "text": text }).to_string().into_bytes(),
                )),
            ))
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let manifest = std::fs::read_to_string(
        grace_testkit::playbooks_dir().join("fixtures/guardrail-prober/playbook.toml"),
    )
    .unwrap()
    .replace(
        "name = \"guardrail-prober\"",
        &format!("name = \"{APPROVING}\""),
    )
    .replace("event_type = \"test.*\"", "event_type = \"crash.approve\"")
    .replace("attempts = 10", "attempts = 1");
    let (status, body) = server.upload(&manifest, component("guardrail_prober"));
    assert!(status == 201 || status == 200, "{status} {body}");
}

/// Publishers and a reader against the server until the kill, which lands at `moment`.
fn drive_and_kill(
    server: &mut Server,
    moment: Moment,
    kill: u64,
    seeds: &[u64],
    acked: &Mutex<Acked>,
) {
    if let Moment::DuringRecovery(after) = moment {
        std::thread::sleep(after);
        server.kill9();
        return;
    }
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let (url, token) = (server.url.clone(), server.token.clone());
    std::thread::scope(|scope| {
        for (publisher, seed) in seeds[..3].iter().enumerate() {
            let (tx, http, stop) = (tx.clone(), (url.clone(), token.clone()), &stop);
            scope.spawn(move || publish(http, kill, publisher, *seed, acked, stop, tx));
        }
        let (http, reader_stop, reader_seed) = ((url.clone(), token.clone()), &stop, seeds[3]);
        scope.spawn(move || read(http, reader_seed, acked, reader_stop));
        drop(tx);
        match moment {
            Moment::DuringIngest(after) => std::thread::sleep(after),
            Moment::AfterAck(n) => {
                let _ = rx.iter().nth(usize::try_from(n - 1).unwrap());
            }
            Moment::DuringRun(after) => {
                let _ = rx.iter().find(|a| matches!(a, Ack::Firing));
                std::thread::sleep(after);
            }
            Moment::DuringRecovery(_) => unreachable!(),
        }
        server.kill9();
        stop.store(true, Ordering::Relaxed);
    });
}

/// Sends batches of events until the server goes away, recording what it acknowledges.
fn publish(
    (url, token): (String, String),
    kill: u64,
    publisher: usize,
    seed: u64,
    acked: &Mutex<Acked>,
    stop: &AtomicBool,
    tx: mpsc::Sender<Ack>,
) {
    let http = Http::new(&url, &token);
    let mut rng = Rng::from_seed(seed);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<Value> = (0..rng.range(1..=8))
            .map(|_| {
                n += 1;
                let firing = rng.chance(25);
                let approving = !firing && rng.chance(8);
                json!({
                    "event_type": if firing { "crash.fire" } else if approving { "crash.approve" } else { "crash.noise" },
                    "source": "crash-test",
                    "actor": format!("publisher-{publisher}"),
                    "resource": format!("k{kill}-p{publisher}-e{n}"),
                    "payload": { "n": n, "pad": "x".repeat(usize::try_from(rng.range(0..=300)).unwrap()) },
                    "timestamp": 1_767_225_600_000u64 + kill * 3_600_000 + n * 1000,
                })
            })
            .collect();
        let Ok((status, body)) = http.post("/v1/events", &Value::Array(batch.clone())) else {
            return;
        };
        match status {
            202 => {
                let mut a = acked.lock().unwrap();
                let Some(first) = body["first_seq"].as_u64() else {
                    a.blind_acks += 1;
                    return;
                };
                let mut fired = false;
                for (seq, event) in (first..).zip(batch) {
                    if event["event_type"] == "crash.fire" {
                        fired = true;
                        a.firing
                            .insert(event["resource"].as_str().unwrap().to_owned(), seq);
                    }
                    if event["event_type"] == "crash.approve" {
                        a.approving
                            .insert(event["resource"].as_str().unwrap().to_owned(), seq);
                    }
                    // A sequence number acknowledged twice means the first event was lost.
                    let first = a.events.insert(seq, event);
                    assert!(first.is_none(), "event {seq} acknowledged twice: {first:?}");
                }
                drop(a);
                let _ = tx.send(if fired { Ack::Firing } else { Ack::Batch });
            }
            429 => std::thread::sleep(Duration::from_millis(20)),
            _ => panic!("publishing events: {status} {body}"),
        }
    }
}

/// Follows runs, ledger entries and checkpoints, and resumes interrupted runs, recording what
/// the server says, until it goes away.
fn read((url, token): (String, String), seed: u64, acked: &Mutex<Acked>, stop: &AtomicBool) {
    let http = Http::new(&url, &token);
    let mut rng = Rng::from_seed(seed);
    while !stop.load(Ordering::Relaxed) {
        // The ledger first: a kill point lands within a second, and the lists below are long.
        let from = acked
            .lock()
            .unwrap()
            .entries
            .keys()
            .last()
            .map_or(1, |s| s + 1);
        let Ok((200, entries)) = http.get(&format!("/v1/ledger/entries?from={from}&limit=1000"))
        else {
            return;
        };
        let mut a = acked.lock().unwrap();
        for e in entries.as_array().unwrap() {
            a.entries
                .insert(e["seq"].as_u64().unwrap(), e["hash"].clone());
        }
        drop(a);
        match http.get_text("/v1/ledger/checkpoint") {
            Ok((200, text)) => {
                let signed = SignedCheckpoint::parse(&text).unwrap();
                let (size, root) = (signed.unverified().tree_size, signed.unverified().root_hash);
                let mut a = acked.lock().unwrap();
                // Signed again later (an idle server re-signs), but never for another tree.
                if let Some(earlier) = a.checkpoints.insert(size, text) {
                    let earlier = SignedCheckpoint::parse(&earlier).unwrap();
                    assert_eq!(
                        earlier.unverified().root_hash,
                        root,
                        "two checkpoints of {size} entries with different roots"
                    );
                }
            }
            Ok((404, _)) => {}
            Ok((status, text)) => panic!("checkpoint: {status} {text}"),
            Err(_) => return,
        }
        let Ok((200, runs)) = http.get(&format!("/v1/runs?playbook={PLAYBOOK}&limit=1000")) else {
            return;
        };
        let runs = runs.as_array().unwrap().clone();
        for run in &runs {
            let (id, state) = (run["id"].as_str().unwrap(), run["state"].as_str().unwrap());
            acked
                .lock()
                .unwrap()
                .runs
                .insert(id.to_owned(), state.to_owned());
        }
        if let Some(run) = runs.iter().find(|r| r["state"] == "interrupted")
            && rng.chance(30)
        {
            let id = run["id"].as_str().unwrap();
            match http.post(&format!("/v1/runs/{id}/resume"), &Value::Null) {
                Ok((200, summary)) => {
                    let mut a = acked.lock().unwrap();
                    a.resumed.insert(id.to_owned());
                    a.runs
                        .insert(id.to_owned(), summary["state"].as_str().unwrap().to_owned());
                }
                Ok((409, _)) => {}
                Ok((status, body)) => panic!("resume {id}: {status} {body}"),
                Err(_) => return,
            }
        }
        let Ok((200, waiting)) = http.get(&format!("/v1/runs?playbook={APPROVING}&limit=1000"))
        else {
            return;
        };
        for run in waiting.as_array().unwrap() {
            let (id, state) = (run["id"].as_str().unwrap(), run["state"].as_str().unwrap());
            acked
                .lock()
                .unwrap()
                .approving_runs
                .insert(id.to_owned(), state.to_owned());
        }
        let Ok((200, approvals)) = http.get("/v1/approvals?limit=1000") else {
            return;
        };
        for approval in approvals.as_array().unwrap() {
            let (id, state) = (
                approval["id"].as_str().unwrap(),
                approval["state"].as_str().unwrap(),
            );
            acked
                .lock()
                .unwrap()
                .approvals
                .insert(id.to_owned(), state.to_owned());
            if state == "pending" && rng.chance(40) {
                match http.post(&format!("/v1/approvals/{id}/approve"), &json!({})) {
                    Ok((200, answer)) => {
                        let mut a = acked.lock().unwrap();
                        a.approved += 1;
                        a.approvals
                            .insert(id.to_owned(), answer["state"].as_str().unwrap().to_owned());
                    }
                    Ok((409, _)) => {}
                    Ok((status, body)) => panic!("approve {id}: {status} {body}"),
                    Err(_) => return,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Everything acknowledged is there after the restart, unchanged, and the ledger verifies:
/// what was acknowledged since the last check, a sample of the rest, and all of it when `full`.
///
/// Returns the time from `restarted` until every acknowledged firing event had its run (checked
/// first, so that the other checks' reading does not count).
fn check_recovered(
    server: &Server,
    key: &VerifierKey,
    acked: &Mutex<Acked>,
    checked: &mut Checked,
    kill: u64,
    restarted: Instant,
    full: bool,
) -> Duration {
    let a = acked.lock().unwrap();
    // Each firing event has exactly one run, once the backlog is matched; every run seen is
    // there, in the state seen if that was final, otherwise final or `interrupted`.
    let runs = one_run_per_event(server, PLAYBOOK, &a.firing, &mut checked.firing);
    let matched = restarted.elapsed();
    check_states(server, "/v1/runs", &a.runs, &runs, kill, |seen, state| {
        if FINAL.contains(&seen) {
            assert_eq!(state, seen, "a run was {seen}");
        } else {
            assert!(
                FINAL.contains(&state) || state == "interrupted",
                "a run was {seen}, is {state} after the restart"
            );
        }
    });

    // Runs that wait for approval: one per acknowledged event, none lost; waiting ones still
    // wait or went on. Approval requests: none lost, decided ones unchanged.
    let approving = one_run_per_event(server, APPROVING, &a.approving, &mut checked.approving);
    check_states(
        server,
        "/v1/runs",
        &a.approving_runs,
        &approving,
        kill,
        |seen, state| {
            if FINAL.contains(&seen) {
                assert_eq!(state, seen, "a run was {seen}");
            } else if seen == "waiting-approval" {
                assert!(
                    ["waiting-approval", "queued", "running", "interrupted"].contains(&state)
                        || FINAL.contains(&state),
                    "a run was waiting for approval, is {state} after the restart"
                );
            }
        },
    );
    let (_, approvals) = server.get("/v1/approvals?limit=10000");
    let approvals: BTreeMap<String, String> = approvals
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (id_of(x), x["state"].as_str().unwrap().to_owned()))
        .collect();
    check_states(
        server,
        "/v1/approvals",
        &a.approvals,
        &approvals,
        kill,
        |seen, state| {
            if seen != "pending" {
                assert_eq!(state, seen, "an approval was {seen}");
            }
        },
    );

    // The server verifies the whole chain: seconds once the ledger is large (2 s at 1.2 GB), so
    // only at full checks and every tenth kill point. In between, the new entries' hashes are
    // compared with what was served and the new checkpoints proven.
    if full || kill.is_multiple_of(10) {
        let (_, verify) = server.get("/v1/ledger/verify");
        assert_eq!(verify["ok"], true, "{verify}");
    }
    let events = checked.events.window(&a.events, full, kill);
    for (seq, stored) in items(server, "/v1/events", events, |e| e["seq"].as_u64().unwrap()) {
        let sent = &a.events[&seq];
        let stored = stored.unwrap_or_else(|| panic!("acknowledged event {seq} is lost: {sent}"));
        assert_eq!(
            TriggerEvent::from_value(stored["event"].clone(), 0).unwrap(),
            TriggerEvent::from_value(sent.clone(), 0).unwrap(),
            "event {seq} changed"
        );
    }
    let entries = checked.entries.window(&a.entries, full, kill);
    for (seq, stored) in items(server, "/v1/ledger/entries", entries, |e| {
        e["seq"].as_u64().unwrap()
    }) {
        let stored = stored.unwrap_or_else(|| panic!("ledger entry {seq} is lost"));
        assert_eq!(
            stored["hash"], a.entries[&seq],
            "ledger entry {seq} changed"
        );
    }

    // Served checkpoints: the stored tree still proves them (offline, the CLI recomputes).
    for size in checked.checkpoints.window(&a.checkpoints, full, kill) {
        let cp = SignedCheckpoint::parse(&a.checkpoints[&size]).unwrap();
        let cp = cp.verify(key).unwrap();
        let (status, proof) = server.get(&format!("/v1/ledger/proof/{size}?tree_size={size}"));
        assert_eq!(status, 200, "{proof}");
        let proof: InclusionProof = serde_json::from_value(proof).unwrap();
        proof
            .verify_against(cp)
            .unwrap_or_else(|e| panic!("checkpoint of {size} entries: {e}"));
    }

    let (_, playbook) = server.get(&format!("/v1/playbooks/{PLAYBOOK}"));
    for (version, digest) in &a.uploads {
        assert!(
            playbook["versions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["version"] == version.as_str() && v["digest"] == digest.as_str()),
            "upload {version} is lost: {playbook:#}"
        );
    }
    matched
}

/// Runs confirmed after a restart, kept across kill points: a list the server answers holds
/// the newest 10,000 items only, so runs older than that are checked against this record.
#[derive(Default)]
struct Checked {
    /// Resource of an acknowledged firing event → its one run.
    firing: BTreeMap<String, String>,
    /// Resource of an acknowledged approving event → its one run.
    approving: BTreeMap<String, String>,
    /// Acknowledged events checked so far (by seq).
    events: Progress<2_000>,
    /// Ledger entries checked so far (by seq).
    entries: Progress<2_000>,
    /// Served checkpoints checked so far (by tree size; each is one proof read).
    checkpoints: Progress<32>,
}

/// How far the checks of a growing record (acknowledged items by key) have come. A check covers
/// every item acknowledged since the previous one, and a rotating window of `SAMPLE` older
/// items, which an earlier check already confirmed; a full check covers them all. This keeps
/// each restart's checks bounded as history grows (checking everything at every kill point made
/// a long loop quadratic), and still catches a later crash losing an old item: the next full
/// check reads every item, and what is lost does not come back (an event's sequence number
/// handed out again is caught when it is acknowledged, a checkpoint's size signed with another
/// root when it is read).
#[derive(Default)]
struct Progress<const SAMPLE: usize> {
    /// Keys from here on have not been checked yet.
    from: u64,
}

impl<const SAMPLE: usize> Progress<SAMPLE> {
    /// The keys of `acked` to check now, ascending.
    fn window<V>(&mut self, acked: &BTreeMap<u64, V>, full: bool, kill: u64) -> Vec<u64> {
        let mut keys: Vec<u64> = if full {
            acked.keys().copied().collect()
        } else {
            let older: Vec<u64> = acked.range(..self.from).map(|(k, _)| *k).collect();
            rotating_sample(&older, SAMPLE, kill)
                .copied()
                .chain(acked.range(self.from..).map(|(k, _)| *k))
                .collect()
        };
        keys.sort_unstable();
        self.from = acked.keys().next_back().map_or(self.from, |k| k + 1);
        keys
    }
}

fn id_of(item: &Value) -> String {
    item["id"].as_str().unwrap().to_owned()
}

/// Waits until every acknowledged event of `playbook` (`events`: resource → seq) not yet in
/// `confirmed` has a run among the newest listed (as long as runs keep appearing), then checks that each has exactly one, and
/// that no confirmed event fired another; returns the newest runs (id → state).
fn one_run_per_event(
    server: &Server,
    playbook: &str,
    events: &BTreeMap<String, u64>,
    confirmed: &mut BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    // Matching the backlog can take long (in simulation each event's runs finish before the
    // next event is matched), so this waits as long as runs keep appearing, and fails once a
    // minute passes without a new run for any of the events still missing one: a lost run.
    let mut missing_before = usize::MAX;
    let runs = loop {
        let (runs, missing) = poll_until(
            &format!("a new run for one of the acknowledged events firing {playbook}"),
            Duration::from_secs(60),
            || {
                let (_, runs) = server.get(&format!("/v1/runs?playbook={playbook}&limit=10000"));
                let runs = runs.as_array().unwrap().clone();
                let resources: BTreeSet<&str> = runs
                    .iter()
                    .map(|r| r["resource"].as_str().unwrap())
                    .collect();
                let missing = events
                    .keys()
                    .filter(|r| !confirmed.contains_key(*r) && !resources.contains(r.as_str()))
                    .count();
                (missing == 0 || missing < missing_before).then_some((runs, missing))
            },
        );
        if missing == 0 {
            break runs;
        }
        missing_before = missing;
    };
    let mut per_resource: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for run in &runs {
        per_resource
            .entry(run["resource"].as_str().unwrap())
            .or_default()
            .push(id_of(run));
    }
    for (resource, ids) in per_resource {
        let Some(seq) = events.get(resource) else {
            continue;
        };
        match confirmed.get(resource) {
            Some(id) => assert_eq!(
                ids,
                std::slice::from_ref(id),
                "event {seq} ({resource}) fired another run after a restart"
            ),
            None => {
                assert_eq!(ids.len(), 1, "event {seq} ({resource}) fired {ids:?}");
                confirmed.insert(resource.to_owned(), ids[0].clone());
            }
        }
    }
    runs.iter()
        .map(|r| (id_of(r), r["state"].as_str().unwrap().to_owned()))
        .collect()
}

/// Checks the state of every item seen (`seen`: id → state last seen) with `rule(seen, now)`:
/// those among the newest listed (`newest`), and a rotating sample of 64 older ones, read one
/// by one from `{path}/{id}`.
fn check_states(
    server: &Server,
    path: &str,
    seen: &BTreeMap<String, String>,
    newest: &BTreeMap<String, String>,
    kill: u64,
    rule: impl Fn(&str, &str),
) {
    const SAMPLE: usize = 64;
    let mut older = Vec::new();
    for (id, was) in seen {
        match newest.get(id) {
            Some(now) => rule(was, now),
            None => older.push((id, was)),
        }
    }
    for (id, was) in rotating_sample(&older, SAMPLE, kill) {
        let (status, item) = server.get(&format!("{path}/{id}"));
        assert_eq!(status, 200, "{path}/{id} ({was}) is lost: {item}");
        rule(was, item["state"].as_str().unwrap());
    }
}

/// `n` of `items` (all of them if fewer), starting where kill point `kill`'s turn falls and
/// wrapping around, so that successive kill points sample successive windows.
fn rotating_sample<T>(items: &[T], n: usize, kill: u64) -> impl Iterator<Item = &T> {
    let start = usize::try_from(kill).unwrap() * n % items.len().max(1);
    items.iter().cycle().skip(start).take(n.min(items.len()))
}

/// How one restart went: a figure to read, not a pass mark (a busy machine is slow).
struct Recovery {
    kill: u64,
    /// From the restart to `grace serving on`.
    serving: Duration,
    /// From the restart to a run for every acknowledged firing event.
    matched: Duration,
    /// Matched events the trigger mesh replayed after its checkpoint.
    replayed: f64,
    /// Unmatched events queued again.
    backlog: f64,
    data_bytes: u64,
}

impl Recovery {
    fn measure(
        server: &Server,
        kill: u64,
        serving: Duration,
        matched: Duration,
        data: &Path,
    ) -> Recovery {
        Recovery {
            kill,
            serving,
            matched,
            replayed: server.metric("grace_recovery_events_replayed"),
            backlog: server.metric("grace_recovery_backlog_events"),
            data_bytes: dir_size(data),
        }
    }

    fn total(&self) -> Duration {
        self.serving.max(self.matched)
    }
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recovery after kill {}: serving in {:.2} s, a run for every acknowledged firing event in {:.2} s; {} events replayed after the mesh checkpoint, {} unmatched queued again; data dir {:.1} MB",
            self.kill,
            self.serving.as_secs_f64(),
            self.matched.as_secs_f64(),
            self.replayed,
            self.backlog,
            self.data_bytes as f64 / 1e6
        )
    }
}

/// Bytes in the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map_while(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The stored items of `path` (a list paged by `from` and `limit`, ascending by `key`) with
/// these `keys` (ascending), `None` for one not stored; reads only the pages that hold them.
fn items(
    server: &Server,
    path: &str,
    keys: Vec<u64>,
    key: impl Fn(&Value) -> u64,
) -> Vec<(u64, Option<Value>)> {
    const PAGE: usize = 10_000;
    let mut page: BTreeMap<u64, Value> = BTreeMap::new();
    // Keys below this were in a page read already (all of them, after a short page).
    let mut read_to = 0;
    let mut found = Vec::with_capacity(keys.len());
    for k in keys {
        if k >= read_to {
            let (status, list) = server.get(&format!("{path}?from={k}&limit={PAGE}"));
            assert_eq!(status, 200, "{list}");
            let list = list.as_array().unwrap();
            read_to = match list.last() {
                Some(last) if list.len() == PAGE => key(last) + 1,
                _ => u64::MAX,
            };
            page = list.iter().map(|item| (key(item), item.clone())).collect();
        }
        found.push((k, page.remove(&k)));
    }
    found
}

/// With the server down: the chain verifies, and so does the newest served checkpoint,
/// recomputed from the entries (`grace ledger verify --checkpoint`).
fn check_offline(data: &Path, public_key: &Path, acked: &Mutex<Acked>) {
    let data = data.to_str().unwrap();
    let (code, out) = grace(&["ledger", "verify", "--data-dir", data]);
    assert_eq!(code, 0, "{out}");
    let a = acked.lock().unwrap();
    if let Some(text) = a.checkpoints.values().last() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let (code, out) = grace(&[
            "ledger",
            "verify",
            "--checkpoint",
            file.path().to_str().unwrap(),
            "--key",
            public_key.to_str().unwrap(),
            "--data-dir",
            data,
        ]);
        assert_eq!(code, 0, "{out}");
    }
}
