//! Crash durability: an append acknowledged with `Durability::Immediate` survives the process
//! being killed at any moment.
//!
//! The test re-runs its own binary as a child process, selecting the ignored helper test
//! `crash_writer_child`, which appends from several threads as fast as it can and prints every
//! acknowledged sequence number. The parent kills it with SIGKILL after a varying number of
//! acknowledgements, reopens the ledger and checks every acknowledged entry is there and the
//! chain verifies. Works the same under `cargo test` and cargo-nextest, which both run test
//! binaries with libtest's arguments.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::{call, temp_ledger};
use grace_ledger::{Durability, Ledger};

/// Tells the helper test which ledger file to write; without it, the helper does nothing.
const CHILD_ENV: &str = "GRACE_LEDGER_CRASH_CHILD_PATH";
/// How long one round may take before the test gives up on the child.
const ROUND_DEADLINE: Duration = Duration::from_secs(60);
/// The helper stops by itself after this many appends, should its parent be gone.
const CHILD_MAX_APPENDS: u64 = 50_000;

#[test]
fn acknowledged_appends_survive_sigkill_at_varying_points() {
    let (_dir, path) = temp_ledger();
    let mut acknowledged = BTreeSet::new();
    for kill_after in [150, 233, 307, 419, 512] {
        let round = run_child_until(&path, kill_after);
        assert!(round.len() >= kill_after, "child stopped early");

        let ledger = Ledger::open(&path, Durability::Immediate).unwrap();
        let head = ledger
            .head()
            .unwrap()
            .expect("a head after acknowledged appends");
        let report = ledger.verify().unwrap();
        assert_eq!(report.entries, head.seq);
        for &seq in &round {
            let found = ledger.entries(seq, 1).unwrap();
            assert_eq!(
                found.first().map(|e| e.seq),
                Some(seq),
                "acknowledged entry {seq} was lost (killed after {kill_after} acknowledgements)"
            );
        }
        // Earlier rounds' entries are still there too, and the chain resumed after each crash.
        assert!(acknowledged.iter().all(|&seq| seq <= head.seq));
        assert!(round.iter().all(|seq| !acknowledged.contains(seq)));
        acknowledged.extend(round);
    }
}

#[test]
fn reopening_after_sigkill_loads_the_recorded_allocator_state_instead_of_a_full_repair() {
    let (_dir, path) = temp_ledger();
    for kill_after in [150, 419] {
        run_child_until(&path, kill_after);
        // redb calls the repair callback only when it repairs: never, if the last commit before
        // the kill recorded the allocator state (`grace_ledger::Recovery::Quick`).
        let repairs = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&repairs);
        let db = redb::Builder::new()
            .set_repair_callback(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            })
            .open(&path)
            .unwrap();
        drop(db);
        assert_eq!(
            repairs.load(Ordering::SeqCst),
            0,
            "the open after a kill (after {kill_after} acknowledgements) walked the whole file"
        );
        let ledger = Ledger::open(&path, Durability::Immediate).unwrap();
        assert!(ledger.head().unwrap().is_some());
    }
}

/// Runs the helper on `path`, kills it once it acknowledged `kill_after` appends, and returns
/// every sequence number it acknowledged before dying.
fn run_child_until(path: &Path, kill_after: usize) -> BTreeSet<u64> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args(["crash_writer_child", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the crash writer");
    let lines = read_lines(&mut child);
    let deadline = Instant::now() + ROUND_DEADLINE;
    let mut acks = BTreeSet::new();

    while acks.len() < kill_after {
        let timeout = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(timeout) {
            Ok(line) => acks.extend(parse_ack(&line)),
            Err(e) => {
                kill(&mut child);
                panic!("child gave {} acknowledgements, then: {e}", acks.len());
            }
        }
    }
    kill(&mut child);
    // Acknowledgements already in the pipe count too: their appends had returned.
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        acks.extend(parse_ack(&line));
    }
    acks
}

/// Forwards the child's stdout, line by line, until it closes.
fn read_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn kill(child: &mut Child) {
    // SIGKILL on Unix: no destructor, no flush, no clean close of the database.
    let _ = child.kill();
    let _ = child.wait();
}

fn parse_ack(line: &str) -> Option<u64> {
    // libtest's own output shares the pipe; acknowledgements have their own prefix.
    line.strip_prefix("ack ")?.trim().parse().ok()
}

#[test]
#[ignore = "helper process of the crash tests above"]
fn crash_writer_child() {
    let Some(path) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        eprintln!("{CHILD_ENV} is not set: nothing to do outside the crash test");
        return;
    };
    let ledger = Ledger::open(&path, Durability::Immediate).unwrap();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                for i in 0..CHILD_MAX_APPENDS {
                    let receipt = ledger
                        .append_blocking(call(&format!("run-{t}"), i))
                        .unwrap();
                    // The acknowledgement goes out only after the append returned.
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "ack {}", receipt.seq)
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return; // the parent is gone
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}
