//! Append throughput of the ledger, against raw redb doing the same storage work.
//!
//! `cargo bench -p grace-ledger`. One process, a fresh temporary directory per case. The
//! baselines insert the very bytes the ledger stores (canonical encoding plus SHA-256, hashed
//! in the timed loop) with no chaining, no channel and no encoding: what redb alone costs.
//! Both commit with quick repair (`Recovery::Quick`, as `grace serve` does by default: a second
//! fsync per durable commit, for a recovery after a crash that does not walk the whole file),
//! so each pair compares the same storage work.
//! Each case stops at its entry count or its time budget, whichever comes first, so the whole
//! run stays well under a minute even on a slow disk.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use grace_ledger::tables::ENTRIES;
use grace_ledger::{Decision, Durability, Entry, Hash, Ledger, NewEntry, codec};
use serde_json::json;

/// How long one case may run.
const BUDGET: Duration = Duration::from_secs(4);

/// A host call the size of a real one: ~450 bytes of args and result JSON.
fn call(i: u64) -> NewEntry {
    NewEntry {
        run_id: format!("run-{:08x}", i / 16),
        playbook: "scale-on-latency".into(),
        digest: format!("sha256:{}", "3c".repeat(32)),
        interface: "scaling".into(),
        function: "set-desired-capacity".into(),
        args: json!({
            "group": "web-prod-eu-west-1",
            "desired": 8 + i % 8,
            "reason": "p99 latency 840ms above 500ms for 5m",
            "labels": { "env": "prod", "team": "payments", "tier": "web" },
        }),
        decision: Decision::allowed("grant scaling.set-desired-capacity on `web-prod-*` up to 20"),
        result: json!({ "ok": {
            "name": "web-prod-eu-west-1", "min-size": 2, "max-size": 20, "desired-capacity": 8 + i % 8,
            "instances": [
                { "id": "i-0a1b2c3d4e5f60001", "lifecycle-state": "in-service", "healthy": true },
                { "id": "i-0a1b2c3d4e5f60002", "lifecycle-state": "in-service", "healthy": true },
                { "id": "i-0a1b2c3d4e5f60003", "lifecycle-state": "pending", "healthy": false },
            ],
        }}),
        at_millis: 1_700_000_000_000 + i,
    }
}

/// The body the ledger would store for `call(i)` as entry `i + 1`.
fn body(i: u64) -> Vec<u8> {
    let call = call(i);
    let entry = Entry {
        seq: i + 1,
        recorded_millis: 1_700_000_000_000,
        run_id: call.run_id,
        playbook: call.playbook,
        digest: call.digest,
        interface: call.interface,
        function: call.function,
        args: call.args,
        decision: call.decision,
        result: call.result,
        at_millis: call.at_millis,
        prev_hash: Hash([0x5a; 32]),
        hash: Hash::ZERO,
    };
    codec::encode_body(&entry).unwrap()
}

struct Outcome {
    entries: u64,
    elapsed: Duration,
    note: String,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }
}

/// Raw redb: `batch` entries per write transaction, up to `max` entries.
fn raw(path: &Path, durability: redb::Durability, batch: usize, max: u64) -> Outcome {
    let db = grace_ledger::Database::create(path, grace_ledger::Recovery::Quick).unwrap();
    let bodies: Vec<Vec<u8>> = (0..1024).map(body).collect();
    let started = Instant::now();
    let mut seq = 0u64;
    while seq < max && started.elapsed() < BUDGET {
        let mut txn = db.begin_write().unwrap();
        txn.set_durability(durability).unwrap();
        {
            let mut table = txn.open_table(ENTRIES).unwrap();
            for _ in 0..batch {
                let body = &bodies[(seq % 1024) as usize];
                seq += 1;
                let mut value = Vec::with_capacity(body.len() + 32);
                value.extend_from_slice(body);
                value.extend_from_slice(&codec::hash_body(body).0);
                table.insert(seq, value.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    Outcome {
        entries: seq,
        elapsed: started.elapsed(),
        note: format!("{batch} per commit"),
    }
}

/// The ledger, one appender calling `append_blocking` in a loop, up to `max` entries.
fn ledger_sequential(path: &Path, durability: Durability, max: u64) -> Outcome {
    let ledger = Ledger::open(path, durability).unwrap();
    let calls: Vec<NewEntry> = (0..1024).map(call).collect();
    let started = Instant::now();
    let mut n = 0u64;
    while n < max && started.elapsed() < BUDGET {
        ledger
            .append_blocking(calls[(n % 1024) as usize].clone())
            .unwrap();
        n += 1;
    }
    let elapsed = started.elapsed();
    let stats = ledger.stats();
    Outcome {
        entries: n,
        elapsed,
        note: format!(
            "{:.1} per commit",
            stats.entries as f64 / stats.commits as f64
        ),
    }
}

/// The ledger, `appenders` tokio tasks appending concurrently, `per_appender` entries each (or
/// until the budget runs out).
fn ledger_concurrent(
    path: &Path,
    durability: Durability,
    appenders: u64,
    per_appender: u64,
) -> (Outcome, usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let ledger = Ledger::open(path, durability).unwrap();
    let calls: Arc<Vec<NewEntry>> = Arc::new((0..1024).map(call).collect());
    let started = Instant::now();
    let entries: u64 = runtime.block_on(async {
        let tasks: Vec<_> = (0..appenders)
            .map(|task| {
                let (ledger, calls) = (ledger.clone(), Arc::clone(&calls));
                tokio::spawn(async move {
                    let mut n = 0;
                    while n < per_appender && started.elapsed() < BUDGET {
                        let call = calls[((task * per_appender + n) % 1024) as usize].clone();
                        ledger.append(call).await.unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        total
    });
    let elapsed = started.elapsed();
    let stats = ledger.stats();
    let average = stats.entries as f64 / stats.commits as f64;
    let outcome = Outcome {
        entries,
        elapsed,
        note: format!(
            "{average:.1} per commit on average, {} at most",
            stats.largest_batch
        ),
    };
    (outcome, average.round().max(1.0) as usize)
}

/// Proofs read O(log n) stored subtrees: their cost barely grows with the ledger, unlike
/// verification, which hashes every entry. Measured on a ledger of 200,000 entries.
fn proofs() {
    const ENTRIES: u64 = 200_000;
    const PROOFS: u64 = 2_000;
    let (_dir, path) = fresh();
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    let calls: Vec<NewEntry> = (0..1024).map(call).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut pending = Vec::with_capacity(1024);
        for i in 0..ENTRIES {
            pending.push(ledger.submit(calls[(i % 1024) as usize].clone()).unwrap());
            if pending.len() == 1024 {
                for p in pending.drain(..) {
                    p.await.unwrap();
                }
            }
        }
        for p in pending {
            p.await.unwrap();
        }
    });
    let head = ledger.tree_head().unwrap();
    // A fixed pseudo-random sequence of positions, the same every run.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        1 + state % bound
    };
    let started = Instant::now();
    for _ in 0..PROOFS {
        let proof = ledger.prove_inclusion(next(ENTRIES), None).unwrap();
        assert_eq!(proof.root_hash, head.root);
    }
    let inclusion = started.elapsed() / PROOFS as u32;
    let started = Instant::now();
    for _ in 0..PROOFS {
        ledger.prove_consistency(next(ENTRIES), None).unwrap();
    }
    let consistency = started.elapsed() / PROOFS as u32;
    let started = Instant::now();
    ledger.verify().unwrap();
    let verify = started.elapsed();
    println!(
        "\nproofs on a ledger of {ENTRIES} entries: inclusion {:.0} us, consistency {:.0} us each (with entry hash and roots); full verify {:.2} s",
        inclusion.as_secs_f64() * 1e6,
        consistency.as_secs_f64() * 1e6,
        verify.as_secs_f64()
    );
}

fn fresh() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.redb");
    (dir, path)
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored: there are few cases.
    let total = Instant::now();
    let sample = body(0);
    let json_bytes = codec::canonical_json(&call(0).args).unwrap().len()
        + codec::canonical_json(&call(0).result).unwrap().len();
    println!(
        "grace-ledger append benchmark: {} bytes per stored entry ({json_bytes} bytes of args/result JSON)\n",
        sample.len() + 32
    );

    let run = |name: &str, f: &dyn Fn(&Path) -> Outcome| {
        let (_dir, path) = fresh();
        let outcome = f(&path);
        println!(
            "{name:<52} {:>10.0} entries/s  ({} entries in {:.2} s, {})",
            outcome.rate(),
            outcome.entries,
            outcome.elapsed.as_secs_f64(),
            outcome.note
        );
        outcome
    };
    let run_concurrent = |name: &str, durability: Durability, appenders: u64, per: u64| {
        let (_dir, path) = fresh();
        let (outcome, batch) = ledger_concurrent(&path, durability, appenders, per);
        println!(
            "{name:<52} {:>10.0} entries/s  ({} entries in {:.2} s, {})",
            outcome.rate(),
            outcome.entries,
            outcome.elapsed.as_secs_f64(),
            outcome.note
        );
        (outcome, batch)
    };

    let raw_none = run("raw redb, non-durable, 1 entry per commit", &|p| {
        raw(p, redb::Durability::None, 1, 50_000)
    });
    let raw_durable = run("raw redb, durable, 1 entry per commit", &|p| {
        raw(p, redb::Durability::Immediate, 1, 20_000)
    });
    let ledger_none = run("ledger, Durability::None, 1 appender", &|p| {
        ledger_sequential(p, Durability::None, 50_000)
    });
    let ledger_durable_1 = run("ledger, Durability::Immediate, 1 appender", &|p| {
        ledger_sequential(p, Durability::Immediate, 20_000)
    });
    let (ledger_64, batch_64) = run_concurrent(
        "ledger, Durability::Immediate, 64 concurrent appenders",
        Durability::Immediate,
        64,
        2_000,
    );
    let (ledger_256, batch_256) = run_concurrent(
        "ledger, Durability::Immediate, 256 concurrent appenders",
        Durability::Immediate,
        256,
        800,
    );
    // Not a baseline: the ceiling the CPU sets when no fsync is waited for.
    run_concurrent(
        "ledger, Durability::None, 64 concurrent appenders",
        Durability::None,
        64,
        2_000,
    );
    let raw_batched_64 = run(
        &format!("raw redb, durable, {batch_64} per commit (as the ledger at 64)"),
        &|p| raw(p, redb::Durability::Immediate, batch_64, 200_000),
    );
    let raw_batched_256 = run(
        &format!("raw redb, durable, {batch_256} per commit (as the ledger at 256)"),
        &|p| raw(p, redb::Durability::Immediate, batch_256, 300_000),
    );

    println!();
    let ratio = |name: &str, a: &Outcome, b: &Outcome| {
        println!("{name:<75} {:>6.2}x", a.rate() / b.rate());
    };
    ratio(
        "ledger non-durable sequential vs raw redb non-durable per-entry:",
        &ledger_none,
        &raw_none,
    );
    ratio(
        "ledger durable, 1 appender vs raw redb durable per-entry:",
        &ledger_durable_1,
        &raw_durable,
    );
    ratio(
        "ledger durable group-commit (64) vs raw redb durable per-entry:",
        &ledger_64,
        &raw_durable,
    );
    ratio(
        "ledger durable group-commit (256) vs raw redb durable per-entry:",
        &ledger_256,
        &raw_durable,
    );
    ratio(
        "ledger durable group-commit (64) vs raw redb durable, same batches:",
        &ledger_64,
        &raw_batched_64,
    );
    ratio(
        "ledger durable group-commit (256) vs raw redb durable, same batches:",
        &ledger_256,
        &raw_batched_256,
    );

    proofs();

    let best = ledger_64.rate().max(ledger_256.rate());
    println!(
        "\ntarget: durable appends >= 50,000 entries/s with group commit: {} (best {best:.0} entries/s)",
        if best >= 50_000.0 { "met" } else { "NOT met" }
    );
    println!("total bench time: {:.1} s", total.elapsed().as_secs_f64());
}
