//! What a GRACE run costs, against baselines measured in the same process.
//!
//! `cargo bench -p grace-engine --bench run`. Plain `main`, no harness. Shared machines are
//! noisy, so every figure is measured in several rounds that interleave GRACE and its baselines
//! (the order alternating from round to round), each ratio is taken within a round, and the
//! table reports medians over rounds.
//!
//! 1. Cold-to-result of the `trivial` fixture (returns at once, no host call):
//!    [`Engine::run_playbook`] — fresh store and instance, the run, the drop, and the two
//!    lifecycle ledger appends — against the same component on a raw wasmtime engine configured
//!    exactly as [`Engine::new`] configures its own.
//! 2. A read host call as served: the `read-flood` fixture calls `scaling.describe-group` on a
//!    granted group until `max_host_calls` stops it — each call goes through the real grant
//!    check (the group name by the provider's rules, the manifest's `groups`), the trust core of
//!    `grace-trust` (asked as `grace serve` asks it: the request built from the call, decided off
//!    the guest's fiber), the simulated provider, and a record in a durable ledger
//!    (`Durability::Immediate`, as the server opens it). Per call = (flood run − trivial run on
//!    the same environment) / N. Against a raw wasmtime host function of the same WIT signature
//!    returning the same group (same component, same engine configuration).
//! 3. The cheapest call, `clock.now` (the `host-call-flood` fixture: no grant, no resource, no
//!    trust decision), on a non-durable ledger, against a raw wasmtime host function and raw
//!    redb doing one write transaction with one SHA-256-sealed ~300-byte insert per entry —
//!    inline, and behind a writer thread the way the ledger does it (which tells the ledger's
//!    threading apart from its code: cross-CPU wake-ups are expensive on small VMs).
//! 4. Starting an engine and loading the demo's `scale-on-latency`: compiling it, against
//!    loading it from the compiled-component cache (what `grace replay` and `grace run` pay
//!    before their first run).
//!
//! The trust core is `grace-trust`'s [`TrustCore`] behind [`ServedTrust`], which asks it the
//! way the server's `HostTrust` does for a read (the same request fields; with policies loaded
//! the decision is made on a blocking thread, because Cedar cannot measure the stack left on a
//! guest's fiber); the server's own type is not used because this crate cannot depend on the
//! server.
//!
//! Runs are driven like the CLI drives them: `block_on` on a multi-threaded tokio runtime with
//! two workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

use grace_engine::trust::{Ask, PassThrough, Trust, TrustDecision};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use grace_engine::bindings::playbook::PlaybookPre;
use grace_engine::bindings::scaling;
use grace_engine::bindings::types as wit;
use grace_engine::engine::EpochTicker;
use grace_engine::{Engine, EngineConfig, FailureKind, Guest, RunEnv, RunStatus, TriggerEvent};
use grace_ledger::{Durability, Ledger};
use grace_model::capability::Effect;
use grace_sim::{Fleet, Simulation};
use grace_trust::{Outcome, Principal, Request, TrustConfig, TrustCore};
use sha2::{Digest as _, Sha256};
use tokio::runtime::Runtime;
use wasmtime::component::{Component, Linker};
use wasmtime::{Store, StoreContextMut, Trap, UpdateDeadline};

/// Rounds (each measures everything once); fewer if the time budget runs out.
const ROUNDS: usize = 11;
/// Rounds always completed, whatever the budget.
const MIN_ROUNDS: usize = 3;
/// No new round starts after this much time.
const BUDGET: Duration = Duration::from_secs(60);
/// Trivial runs per round, per non-durable case.
const COLD_RUNS: usize = 300;
/// Trivial runs per round with a durable ledger (two fsyncs each).
const COLD_RUNS_DURABLE: usize = 12;
/// Host calls per flood run with a non-durable ledger, and per raw redb non-durable batch:
/// below the host's bound on recorded calls per run (`RunBounds::max_timeline_entries`, 10,000),
/// which would otherwise stop the flood first.
const CALLS: u32 = 9_000;
/// Host calls per flood run with a durable ledger, and per raw redb durable batch.
const CALLS_DURABLE: u32 = 300;
/// Reads per `read-flood` run (records group-committed: no fsync per read).
const READS: u32 = 5_000;
/// Engine starts and loads per round, each way (compile, cache).
const LOADS: usize = 3;
/// Raw wasmtime flood runs per round (each is only a few milliseconds).
const RAW_FLOODS: usize = 5;
/// Size of the raw redb baseline's value before its hash (a `clock.now` ledger entry is about
/// this big).
const VALUE_BYTES: usize = 300;

/// The raw redb baseline's table: the same shape as the ledger's entries.
const RAW_TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("raw/entries");

fn main() {
    let started = Instant::now();
    grace_testkit::build_guests();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = EngineConfig::default();
    let grace = Engine::new(&config).unwrap();
    let trivial = grace.load(&grace_testkit::fixture("trivial")).unwrap();
    let flood_guest = grace
        .load(&grace_testkit::fixture("host-call-flood"))
        .unwrap();
    let flood = with_limits(&flood_guest, CALLS);
    let flood_durable = with_limits(&flood_guest, CALLS_DURABLE);
    let reads = with_limits(
        &grace.load(&grace_testkit::fixture("read-flood")).unwrap(),
        READS,
    );
    let raw = Raw::new(
        &config,
        &std::fs::read(&trivial.manifest.component).unwrap(),
        &std::fs::read(&flood_guest.manifest.component).unwrap(),
        &std::fs::read(&reads.manifest.component).unwrap(),
    )
    .unwrap();
    let demo = grace_testkit::example("scale-on-latency");
    let policies =
        std::fs::read_to_string(grace_testkit::playbooks_dir().join("trust/base.cedar")).unwrap();
    let sim = Simulation::new(&Fleet::default_fleet());
    let event = TriggerEvent {
        event_type: "test.bench".into(),
        source: "bench".into(),
        actor: "bench".into(),
        resource: "api-service".into(),
        payload: serde_json::json!({ "value": 912.4 }),
        timestamp: 1_767_225_900_000,
    };
    let wit_event = wit::TriggerEvent {
        event_type: event.event_type.clone(),
        source: event.source.clone(),
        actor: event.actor.clone(),
        resource: event.resource.clone(),
        payload: event.payload_text(),
        timestamp: event.timestamp,
    };
    let trivial_limits = RawLimits {
        fuel: trivial.manifest.limits.fuel,
        timeout: trivial.manifest.limits.timeout,
        host_calls: u64::from(trivial.manifest.limits.max_host_calls),
    };
    let flood_limits = RawLimits {
        fuel: flood.manifest.limits.fuel,
        timeout: flood.manifest.limits.timeout,
        host_calls: u64::from(CALLS),
    };
    let read_limits = RawLimits {
        fuel: reads.manifest.limits.fuel,
        timeout: reads.manifest.limits.timeout,
        host_calls: u64::from(READS),
    };
    // The compiled-component cache the `cached` loads read, filled once.
    let cache_dir = tempfile::tempdir().unwrap();
    engine_load(&demo, Some(cache_dir.path()));
    eprintln!(
        "setup (guest build check, 4 compilations): {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // For profiling (`perf record`): `GRACE_BENCH_ONLY=cold` or `=read` runs only that case,
    // through GRACE, for 10 s.
    if let Ok(only) = std::env::var("GRACE_BENCH_ONLY") {
        let dir = tempfile::tempdir().unwrap();
        let fast = env(&sim, &dir.path().join("none"), Durability::None);
        let served = served_env(&sim, &dir.path().join("served"), None);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            match only.as_str() {
                "cold" => drop(grace_cold(&runtime, &grace, &trivial, &event, &fast, 1000)),
                "read" => drop(grace_flood(
                    &runtime, &grace, &reads, &event, &served, READS,
                )),
                other => panic!("GRACE_BENCH_ONLY: `{other}` is not `cold` or `read`"),
            }
        }
        return;
    }

    // Warm up both engines (pool slots, code pages, the ledger writer).
    {
        let dir = tempfile::tempdir().unwrap();
        let env = env(&sim, dir.path(), Durability::None);
        grace_cold(&runtime, &grace, &trivial, &event, &env, 50);
        raw_cold(&runtime, &raw, &raw.trivial, &wit_event, trivial_limits, 50);
    }

    let mut rounds: Vec<Round> = Vec::new();
    let mut grace_cold_all = Vec::new();
    let mut raw_cold_all = Vec::new();
    let mut durable_cold_all = Vec::new();
    for r in 0..ROUNDS {
        if r >= MIN_ROUNDS && started.elapsed() > BUDGET {
            break;
        }
        let flip = r % 2 == 1;
        let dir = tempfile::tempdir().unwrap();
        let fast = env(&sim, &dir.path().join("none"), Durability::None);
        let durable = env(&sim, &dir.path().join("immediate"), Durability::Immediate);
        let served = served_env(&sim, &dir.path().join("served"), None);
        let served_policies = served_env(&sim, &dir.path().join("policies"), Some(&policies));

        // 1. Cold-to-result.
        let (g, w) = pair(
            flip,
            || grace_cold(&runtime, &grace, &trivial, &event, &fast, COLD_RUNS),
            || {
                raw_cold(
                    &runtime,
                    &raw,
                    &raw.trivial,
                    &wit_event,
                    trivial_limits,
                    COLD_RUNS,
                )
            },
        );
        let d = grace_cold(
            &runtime,
            &grace,
            &trivial,
            &event,
            &durable,
            COLD_RUNS_DURABLE,
        );

        // 2. Host calls, non-durable: GRACE vs raw wasmtime, then vs raw redb.
        let (gf, wf) = pair(
            flip,
            || grace_flood(&runtime, &grace, &flood, &event, &fast, CALLS),
            || {
                let runs: Vec<f64> = (0..RAW_FLOODS)
                    .map(|_| raw_flood(&runtime, &raw, &raw.flood, &wit_event, flood_limits))
                    .collect();
                median(&runs)
            },
        );
        let (redb_fast, redb_threaded) = pair(
            flip,
            || {
                redb_inserts(
                    &dir.path().join("raw-none.redb"),
                    redb::Durability::None,
                    CALLS,
                )
            },
            || redb_inserts_threaded(&runtime, &dir.path().join("raw-threaded.redb"), CALLS),
        );
        // Durable: GRACE vs raw redb.
        let (gd, redb_durable) = pair(
            flip,
            || {
                grace_flood(
                    &runtime,
                    &grace,
                    &flood_durable,
                    &event,
                    &durable,
                    CALLS_DURABLE,
                )
            },
            || {
                redb_inserts(
                    &dir.path().join("raw-immediate.redb"),
                    redb::Durability::Immediate,
                    CALLS_DURABLE,
                )
            },
        );

        // 2. A read as served: grant check, trust core, durable ledger.
        let served_cold = median(&grace_cold(
            &runtime,
            &grace,
            &trivial,
            &event,
            &served,
            COLD_RUNS_DURABLE,
        ));
        let (gr, wr) = pair(
            flip,
            || grace_flood(&runtime, &grace, &reads, &event, &served, READS),
            || {
                let runs: Vec<f64> = (0..RAW_FLOODS)
                    .map(|_| raw_flood(&runtime, &raw, &raw.reads, &wit_event, read_limits))
                    .collect();
                median(&runs)
            },
        );
        let gp = grace_flood(&runtime, &grace, &reads, &event, &served_policies, READS);

        // 4. Engine start and load: compile or cache.
        let (compile, cached) = pair(
            flip,
            || {
                let loads: Vec<f64> = (0..LOADS).map(|_| engine_load(&demo, None).0).collect();
                median(&loads)
            },
            || {
                let loads: Vec<f64> = (0..LOADS)
                    .map(|_| {
                        let (elapsed, hits) = engine_load(&demo, Some(cache_dir.path()));
                        assert_eq!(hits, 1, "loaded from the cache");
                        elapsed
                    })
                    .collect();
                median(&loads)
            },
        );

        let round = Round {
            read_call: (gr - served_cold) / f64::from(READS),
            read_call_policies: (gp - served_cold) / f64::from(READS),
            raw_read_call: (wr - median(&w)) / f64::from(READS),
            load_compile: compile,
            load_cached: cached,
            grace_cold: median(&g),
            raw_cold: median(&w),
            durable_cold: median(&d),
            grace_call: (gf - median(&g)) / f64::from(CALLS),
            raw_call: (wf - median(&w)) / f64::from(CALLS),
            redb_call: redb_fast / f64::from(CALLS),
            redb_threaded_call: redb_threaded / f64::from(CALLS),
            durable_call: (gd - median(&d)) / f64::from(CALLS_DURABLE),
            redb_durable_call: redb_durable / f64::from(CALLS_DURABLE),
        };
        println!(
            "round {:>2}: read as served {} (policies {}) raw {} | load compile {} cached {}",
            r + 1,
            t(round.read_call),
            t(round.read_call_policies),
            t(round.raw_read_call),
            t(round.load_compile),
            t(round.load_cached),
        );
        println!(
            "          cold grace {} raw {} ({:.2}x) durable {} | call grace {} raw wasmtime {} raw redb {} threaded {} | durable call grace {} raw redb {}",
            t(round.grace_cold),
            t(round.raw_cold),
            round.grace_cold / round.raw_cold,
            t(round.durable_cold),
            t(round.grace_call),
            t(round.raw_call),
            t(round.redb_call),
            t(round.redb_threaded_call),
            t(round.durable_call),
            t(round.redb_durable_call),
        );
        rounds.push(round);
        grace_cold_all.extend(g);
        raw_cold_all.extend(w);
        durable_cold_all.extend(d);
        // Ledgers and their directory close here, outside every measurement.
        drop((fast, durable, served, served_policies, dir));
    }

    let m = |f: fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let cold_ratio = m(|r| r.grace_cold / r.raw_cold);
    let verdict = |ratio: f64, target: f64| if ratio <= target { "met" } else { "MISSED" };
    println!();
    println!(
        "GRACE run benchmark: {} rounds, medians over rounds (ratios taken within each round), {:.0} s in all",
        rounds.len(),
        started.elapsed().as_secs_f64()
    );
    let row = |what: &str, grace: String, baseline: &str, base: String, ratio: f64, note: &str| {
        println!(
            "{}",
            format!(
                "{what:<41} grace {grace:<24} {baseline:<22} {base:<24} ratio {:>7}  {note}",
                if ratio >= 100.0 {
                    format!("{ratio:.0}x")
                } else {
                    format!("{ratio:.2}x")
                }
            )
            .trim_end()
        );
    };
    let with_p99 =
        |median: f64, all: &[f64]| format!("{} (p99 {})", t(median), t(percentile(all, 0.99)));
    row(
        "cold-to-result (trivial playbook)",
        with_p99(m(|r| r.grace_cold), &grace_cold_all),
        "raw wasmtime",
        with_p99(m(|r| r.raw_cold), &raw_cold_all),
        cold_ratio,
        &format!("(target <= 1.2x: {})", verdict(cold_ratio, 1.2)),
    );
    // What no run with a record can go below here: the raw run, then one hand-over of a record
    // to a writer thread and its redb commit (GRACE commits its two lifecycle records together).
    let floor_ratio = m(|r| r.grace_cold / (r.raw_cold + r.redb_threaded_call));
    row(
        "  same, vs raw run + one recorded commit",
        t(m(|r| r.grace_cold)),
        "raw wasmtime + raw redb, threaded",
        t(m(|r| r.raw_cold + r.redb_threaded_call)),
        floor_ratio,
        &format!(
            "(the floor of a run whose end is on record; 1.2x the raw run alone is {}: below the floor when the commit costs more than 0.2x the run)",
            t(1.2 * m(|r| r.raw_cold))
        ),
    );
    println!(
        "{:<41} grace {}   (fsync per lifecycle append; no target)",
        "cold-to-result, durable ledger",
        with_p99(m(|r| r.durable_cold), &durable_cold_all),
    );
    let read_call = m(|r| r.read_call);
    row(
        "read call as served vs raw host call",
        t(read_call),
        "raw wasmtime",
        t(m(|r| r.raw_read_call)),
        m(|r| r.read_call / r.raw_read_call),
        &format!(
            "(describe-group: grant check, trust core without policies, durable ledger; target <= 1 µs: {})",
            if read_call <= 1.0 { "met" } else { "MISSED" }
        ),
    );
    row(
        "  same, with a Cedar policy set loaded",
        t(m(|r| r.read_call_policies)),
        "raw wasmtime",
        t(m(|r| r.raw_read_call)),
        m(|r| r.read_call_policies / r.raw_read_call),
        "(playbooks/trust/base.cedar)",
    );
    let grace_call = t(m(|r| r.grace_call));
    row(
        "clock.now (non-durable) vs raw host call",
        grace_call.clone(),
        "raw wasmtime",
        t(m(|r| r.raw_call)),
        m(|r| r.grace_call / r.raw_call),
        "",
    );
    row(
        "clock.now (non-durable) vs raw redb",
        grace_call.clone(),
        "raw redb + SHA-256",
        t(m(|r| r.redb_call)),
        m(|r| r.grace_call / r.redb_call),
        "(records of reads are group-committed, confirmed at the next change or the end)",
    );
    row(
        "  same, redb behind a writer thread",
        grace_call,
        "raw redb, threaded",
        t(m(|r| r.redb_threaded_call)),
        m(|r| r.grace_call / r.redb_threaded_call),
        "(the ledger's threading: std mpsc there, tokio oneshot back)",
    );
    row(
        "clock.now (durable) vs raw redb durable",
        t(m(|r| r.durable_call)),
        "raw redb + SHA-256",
        t(m(|r| r.redb_durable_call)),
        m(|r| r.durable_call / r.redb_durable_call),
        "(1 fsync'ed write txn per entry)",
    );
    let load = m(|r| r.load_cached);
    row(
        "engine start + load, compiled cache",
        t(load),
        "compiling",
        t(m(|r| r.load_compile)),
        m(|r| r.load_cached / r.load_compile),
        &format!(
            "(scale-on-latency; replay/dry-run budget 50 ms: {})",
            if load <= 50_000.0 { "met" } else { "MISSED" }
        ),
    );
    println!(
        "notes: GRACE's own cost per trivial run is {} (store, WASI context, submitting two lifecycle records); \
         per call = (flood run - trivial run) / N, N = {READS} reads as served, {CALLS} `clock.now` ({CALLS_DURABLE} durable); \
         calls that change the world wait for their own durable record: see `cargo bench -p grace-ledger` for append latency",
        t(m(|r| r.grace_cold - r.raw_cold)),
    );
}

/// One round's figures, in microseconds.
struct Round {
    read_call: f64,
    read_call_policies: f64,
    raw_read_call: f64,
    load_compile: f64,
    load_cached: f64,
    grace_cold: f64,
    raw_cold: f64,
    durable_cold: f64,
    grace_call: f64,
    raw_call: f64,
    redb_call: f64,
    redb_threaded_call: f64,
    durable_call: f64,
    redb_durable_call: f64,
}

/// Runs `a` then `b`, or `b` then `a` when `flip`, so neither always goes first.
fn pair<A, B>(flip: bool, a: impl FnOnce() -> A, b: impl FnOnce() -> B) -> (A, B) {
    if flip {
        let b = b();
        (a(), b)
    } else {
        let a = a();
        (a, b())
    }
}

/// A ledger in `path` and the default simulated fleet's executors.
fn env(sim: &Simulation, path: &Path, durability: Durability) -> RunEnv {
    std::fs::create_dir_all(path).unwrap();
    let ledger = Arc::new(Ledger::open(path.join("grace.redb"), durability).unwrap());
    RunEnv::new(sim.executors(), ledger, Arc::new(PassThrough))
}

/// A ledger in `path` as the server opens it (durable) and the trust core of `grace-trust`
/// without policies, or with the Cedar `policies`.
fn served_env(sim: &Simulation, path: &Path, policies: Option<&str>) -> RunEnv {
    std::fs::create_dir_all(path).unwrap();
    let ledger = Arc::new(Ledger::open(path.join("grace.redb"), Durability::Immediate).unwrap());
    let core = TrustCore::in_memory(TrustConfig::default()).unwrap();
    if let Some(text) = policies {
        core.policies().add("base", text, "bench").unwrap();
    }
    RunEnv::new(
        sim.executors(),
        ledger,
        Arc::new(ServedTrust {
            core: Arc::new(core),
        }),
    )
}

/// The trust core asked as the server's `HostTrust` asks it about a read: calls that act on no
/// resource are allowed without a decision; for the others the request is built from the call
/// (principal, action, resource, time) and decided — inline when no policy is loaded (no
/// Cedar), else on a blocking thread.
struct ServedTrust {
    core: Arc<TrustCore>,
}

#[async_trait::async_trait]
impl Trust for ServedTrust {
    async fn decide(&self, ask: &Ask<'_>) -> TrustDecision {
        let descriptor = ask.call.descriptor;
        if descriptor.effect == Effect::Local {
            return TrustDecision::allow("acts on no resource");
        }
        let (Some(action), Some(resource)) = (
            descriptor.action(),
            ask.proposal
                .map(|p| p.resource.clone())
                .or_else(|| ask.call.resource.clone()),
        ) else {
            return TrustDecision::deny("undecidable");
        };
        let principal = Principal::playbook(
            ask.guest.name.clone(),
            ask.guest.digest.clone(),
            ask.guest.version.clone(),
        );
        let request = Request::new(principal, action, resource, ask.at_millis);
        let policies = self.core.policies().active();
        let decision = if policies.is_empty() {
            self.core.decide_with(&policies, &request)
        } else {
            let core = self.core.clone();
            tokio::task::spawn_blocking(move || core.decide_with(&policies, &request))
                .await
                .unwrap()
        };
        let details = serde_json::json!({
            "outcome": decision.outcome,
            "risk": decision.risk,
            "policies": decision.policies,
            "policy_revision": decision.policy_revision,
        });
        match decision.outcome {
            Outcome::Allow => TrustDecision::allow(decision.reason).with_details(details),
            _ => TrustDecision::deny(decision.reason).with_details(details),
        }
    }
}

/// A fresh engine (optionally with a compiled-component cache) loading `dir`: the wall time in
/// µs and how many components came from the cache.
fn engine_load(dir: &Path, cache: Option<&Path>) -> (f64, u64) {
    let start = Instant::now();
    let engine = Engine::new(&EngineConfig {
        max_concurrent_runs: 2,
        compiled_cache: cache.map(Path::to_owned),
        ..EngineConfig::default()
    })
    .unwrap();
    engine.load(dir).unwrap();
    (micros(start.elapsed()), engine.compiled_cache_hits())
}

/// The flood guest with a host-call limit of `calls`, and a deadline and fuel that never stop
/// it first.
fn with_limits(guest: &Guest, calls: u32) -> Guest {
    let mut manifest = (*guest.manifest).clone();
    manifest.limits.max_host_calls = calls;
    manifest.limits.timeout = Duration::from_secs(120);
    manifest.limits.fuel = 1 << 40;
    Guest {
        manifest: Arc::new(manifest),
        component: guest.component.clone(),
    }
}

/// `runs` trivial runs through GRACE; each one's wall time in µs.
fn grace_cold(
    rt: &Runtime,
    engine: &Engine,
    guest: &Guest,
    event: &TriggerEvent,
    env: &RunEnv,
    runs: usize,
) -> Vec<f64> {
    rt.block_on(async {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let report = engine.run_playbook(guest, event, env).await;
            times.push(micros(start.elapsed()));
            assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
        }
        times
    })
}

/// One flood run through GRACE, stopped after `calls` host calls; its wall time in µs.
fn grace_flood(
    rt: &Runtime,
    engine: &Engine,
    guest: &Guest,
    event: &TriggerEvent,
    env: &RunEnv,
    calls: u32,
) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        let report = engine.run_playbook(guest, event, env).await;
        let elapsed = micros(start.elapsed());
        let failure = report.failure.expect("the flood is stopped");
        assert_eq!(
            failure.kind,
            FailureKind::HostCallLimit,
            "{}",
            failure.message
        );
        assert_eq!(report.host_calls, calls + 1);
        elapsed
    })
}

/// A raw wasmtime engine configured exactly like [`Engine::new`] configures GRACE's (pooling
/// allocator with the same sizes, fuel, epoch interruption with the same ticker and yielding
/// callback, the same `max_wasm_stack`), with the same components pre-instantiated on a minimal
/// host: `clock.now` returns a counter and traps past a limit, every other import is a trapping
/// stub. The difference from GRACE is GRACE's own overhead, not wasmtime's.
struct Raw {
    engine: wasmtime::Engine,
    trivial: PlaybookPre<RawHost>,
    flood: PlaybookPre<RawHost>,
    reads: PlaybookPre<RawHost>,
    _ticker: EpochTicker,
}

/// The raw host's store data.
struct RawHost {
    calls: u64,
    limit: u64,
}

#[derive(Clone, Copy)]
struct RawLimits {
    fuel: u64,
    timeout: Duration,
    host_calls: u64,
}

impl Raw {
    fn new(
        config: &EngineConfig,
        trivial: &[u8],
        flood: &[u8],
        reads: &[u8],
    ) -> anyhow::Result<Raw> {
        // The same settings as `Engine::new`: this isolates GRACE's overhead from wasmtime's.
        let wasm = config.wasmtime_config()?;
        let engine = wasmtime::Engine::new(&wasm)?;

        // An async host function, as GRACE's bindings generate (`imports: async`).
        let mut linker = Linker::<RawHost>::new(&engine);
        linker
            .instance("grace:playbook/clock@0.1.0")?
            .func_wrap_async("now", |mut store: StoreContextMut<'_, RawHost>, (): ()| {
                Box::new(async move {
                    let host = store.data_mut();
                    host.calls += 1;
                    if host.calls > host.limit {
                        return Err(wasmtime::Error::msg("host call limit reached"));
                    }
                    Ok((host.calls,))
                })
            })?;
        // `describe-group` returning what the simulated fleet's `api-asg` holds, and `config.get`.
        linker
            .instance("grace:playbook/scaling@0.1.0")?
            .func_wrap_async(
                "describe-group",
                |mut store: StoreContextMut<'_, RawHost>, (name,): (String,)| {
                    Box::new(async move {
                        let host = store.data_mut();
                        host.calls += 1;
                        if host.calls > host.limit {
                            return Err(wasmtime::Error::msg("host call limit reached"));
                        }
                        Ok((Ok::<_, wit::Error>(raw_group(name)),))
                    })
                },
            )?;
        linker
            .instance("grace:playbook/config@0.1.0")?
            .func_wrap_async(
                "get",
                |_: StoreContextMut<'_, RawHost>, (_key,): (String,)| {
                    Box::new(async move { Ok((Some("api-asg".to_owned()),)) })
                },
            )?;
        let mut pre = |bytes: &[u8]| -> anyhow::Result<PlaybookPre<RawHost>> {
            let component = Component::new(&engine, bytes)?;
            linker.define_unknown_imports_as_traps(&component)?;
            Ok(PlaybookPre::new(linker.instantiate_pre(&component)?)?)
        };
        let trivial = pre(trivial)?;
        let flood = pre(flood)?;
        let reads = pre(reads)?;

        // The same epoch ticker as GRACE's.
        let ticker = EpochTicker::start(&engine, config.epoch_tick)?;
        Ok(Raw {
            engine,
            trivial,
            flood,
            reads,
            _ticker: ticker,
        })
    }

    /// Store, instance, `run`, drop — with the same fuel, deadline and epoch callback as a GRACE
    /// run. Returns the result and the host calls made.
    async fn run(
        &self,
        pre: &PlaybookPre<RawHost>,
        event: &wit::TriggerEvent,
        limits: RawLimits,
    ) -> (wasmtime::Result<Result<wit::Outcome, String>>, u64) {
        let mut store = Store::new(
            &self.engine,
            RawHost {
                calls: 0,
                limit: limits.host_calls,
            },
        );
        let wall_deadline = Instant::now() + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= wall_deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let result = async {
            store.set_fuel(limits.fuel)?;
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, event).await
        }
        .await;
        let calls = store.data().calls;
        (result, calls)
    }
}

/// `runs` trivial runs on the raw engine; each one's wall time in µs.
fn raw_cold(
    rt: &Runtime,
    raw: &Raw,
    pre: &PlaybookPre<RawHost>,
    event: &wit::TriggerEvent,
    limits: RawLimits,
    runs: usize,
) -> Vec<f64> {
    rt.block_on(async {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let (result, _) = raw.run(pre, event, limits).await;
            times.push(micros(start.elapsed()));
            assert!(matches!(result, Ok(Ok(_))), "{result:?}");
        }
        times
    })
}

/// The group the raw baseline's `describe-group` returns: three instances in service, like the
/// simulated fleet's `api-asg`.
fn raw_group(name: String) -> scaling::Group {
    scaling::Group {
        name,
        min_size: 2,
        max_size: 12,
        desired_capacity: 3,
        instances: (1..=3)
            .map(|i| scaling::Instance {
                id: format!("i-api-asg-{i:04}"),
                lifecycle_state: scaling::LifecycleState::InService,
                healthy: true,
            })
            .collect(),
    }
}

/// One flood run of `pre` on the raw engine, trapped after `limits.host_calls`; its wall time
/// in µs.
fn raw_flood(
    rt: &Runtime,
    raw: &Raw,
    pre: &PlaybookPre<RawHost>,
    event: &wit::TriggerEvent,
    limits: RawLimits,
) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        let (result, calls) = raw.run(pre, event, limits).await;
        let elapsed = micros(start.elapsed());
        assert!(result.is_err(), "the raw flood is stopped");
        assert_eq!(calls, limits.host_calls + 1);
        elapsed
    })
}

/// Raw redb: `n` entries, each a ~300-byte value sealed with its SHA-256, one write transaction
/// per entry, on the calling thread. Total wall time in µs. Durable commits pay quick repair's
/// second fsync, as the server's ledger does (`grace_ledger::Recovery::Quick`).
fn redb_inserts(path: &Path, durability: redb::Durability, n: u32) -> f64 {
    let db = grace_ledger::Database::create(path, grace_ledger::Recovery::Quick).unwrap();
    {
        let txn = db.begin_write().unwrap();
        txn.open_table(RAW_TABLE).unwrap();
        txn.commit().unwrap();
    }
    let mut body: Vec<u8> = (0..VALUE_BYTES).map(|i| b'a' + (i % 26) as u8).collect();
    let start = Instant::now();
    for seq in 1..=u64::from(n) {
        body[..8].copy_from_slice(&seq.to_le_bytes());
        let mut value = Vec::with_capacity(VALUE_BYTES + 32);
        value.extend_from_slice(&body);
        value.extend_from_slice(Sha256::digest(&body).as_slice());
        let mut txn = db.begin_write().unwrap();
        txn.set_durability(durability).unwrap();
        {
            let mut table = txn.open_table(RAW_TABLE).unwrap();
            table.insert(seq, value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    micros(start.elapsed())
}

/// Raw redb as the ledger does it, minus the ledger: each ~300-byte value is sent to a writer
/// thread (std mpsc), which seals it with its SHA-256, inserts it in its own non-durable write
/// transaction and answers (tokio oneshot); the appender awaits the answer on the runtime. Total
/// wall time of `n` appends in µs.
fn redb_inserts_threaded(rt: &Runtime, path: &Path, n: u32) -> f64 {
    let db = redb::Database::create(path).unwrap();
    {
        let txn = db.begin_write().unwrap();
        txn.open_table(RAW_TABLE).unwrap();
        txn.commit().unwrap();
    }
    let (queue, requests) =
        std::sync::mpsc::channel::<(u64, Vec<u8>, tokio::sync::oneshot::Sender<()>)>();
    let writer = std::thread::Builder::new()
        .name("raw-redb-writer".into())
        .spawn(move || {
            while let Ok((seq, body, reply)) = requests.recv() {
                let mut value = body;
                let hash = Sha256::digest(&value);
                value.extend_from_slice(hash.as_slice());
                let mut txn = db.begin_write().unwrap();
                txn.set_durability(redb::Durability::None).unwrap();
                {
                    let mut table = txn.open_table(RAW_TABLE).unwrap();
                    table.insert(seq, value.as_slice()).unwrap();
                }
                txn.commit().unwrap();
                let _ = reply.send(());
            }
        })
        .unwrap();
    let mut body: Vec<u8> = (0..VALUE_BYTES).map(|i| b'a' + (i % 26) as u8).collect();
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        for seq in 1..=u64::from(n) {
            body[..8].copy_from_slice(&seq.to_le_bytes());
            let mut value = Vec::with_capacity(VALUE_BYTES + 32);
            value.extend_from_slice(&body);
            let (reply, answer) = tokio::sync::oneshot::channel();
            queue.send((seq, value, reply)).unwrap();
            answer.await.unwrap();
        }
        micros(start.elapsed())
    });
    drop(queue);
    writer.join().unwrap();
    elapsed
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

/// Nearest-rank percentile (`q` in 0..=1).
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A duration in µs, in readable units.
fn t(us: f64) -> String {
    if us < 1.0 {
        format!("{:.0} ns", us * 1e3)
    } else if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1e3)
    }
}
