//! `grace run`: one playbook on one event (or one collector pass), once, every call decided by
//! the trust core `grace serve` runs.
//!
//! - `--dry-run`: against the simulated fleet, with a temporary ledger: nothing in the data
//!   directory is written (its policies are read, see [`super::dry_trust`]).
//! - without it: against the backends of `grace.toml` ([`super::run_backends`]), with the
//!   data directory's policies, and recorded in its ledger.
//!
//! With `--event`, the playbook's triggers are checked on the event first
//! ([`super::run_triggers`]); it runs only if one holds, or with `--force`.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use grace_engine::{Engine, EngineConfig, Kind, RunEnv, RunStatus, TriggerEvent};
use grace_executor::Clock;
use grace_ledger::{Durability, Ledger};
use grace_sim::{Fleet, Simulation};
use serde_json::{Value, json};

use super::run_triggers::{self, TriggerCheck};
use super::{Exit, ledger_path};
use crate::cli::RunArgs;
use crate::render;

/// Where a run acts, and what it says about it.
enum Target {
    /// The simulated fleet, and what the event seeded in it.
    Simulated { sim: Simulation, seeded: String },
    /// The backends of `grace.toml`.
    Backends(Box<super::run_backends::Backends>),
}

pub fn run(args: RunArgs) -> Exit {
    let engine = match Engine::new(&EngineConfig {
        max_concurrent_runs: 2,
        compiled_cache: super::compiled_cache_dir(),
        ..EngineConfig::default()
    }) {
        Ok(e) => e,
        Err(e) => return Exit::Internal(e.context("cannot start the wasm engine")),
    };
    let guest = match engine.load(&args.playbook) {
        Ok(g) => g,
        Err(e) => return Exit::Invalid(e.into()),
    };
    let sim = if args.dry_run {
        let fleet = match &args.fleet {
            Some(path) => match Fleet::load(path) {
                Ok(f) => f,
                Err(e) => return Exit::Invalid(anyhow!("fleet `{}`: {e}", path.display())),
            },
            None => Fleet::default_fleet(),
        };
        Some(Simulation::new(&fleet))
    } else {
        None
    };
    // An event without a timestamp happens now: on the simulation's clock, or the wall clock.
    let now = sim
        .as_ref()
        .map_or_else(grace_engine::event::system_now_millis, |s| {
            s.clock().now_millis()
        });
    let event = match read_event(args.event.as_deref(), now) {
        Ok(e) => e,
        Err(e) => return Exit::Invalid(e),
    };
    if guest.manifest.kind == Kind::Playbook && event.is_none() {
        return Exit::Invalid(anyhow!(
            "`{}` is a playbook: give it an event with `--event <file.json>`",
            guest.name()
        ));
    }
    let checks = event.as_ref().map(|e| {
        // In a dry run, conditions on `event.graph` read the simulated fleet's graph.
        let facts = sim
            .as_ref()
            .and_then(|s| s.executors().graph)
            .and_then(|g| g.facts(&e.resource));
        run_triggers::check(&guest.manifest, e, facts.as_ref())
    });
    let holds = checks.as_ref().is_none_or(|c| c.iter().any(|t| t.holds));
    if let (Some(checks), Some(e), false, false) = (&checks, &event, holds, args.force) {
        return not_run(&args, checks, e);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Exit::Internal(anyhow!("cannot start the async runtime: {e}")),
    };
    let (target, ledger, ledger_place, trust, trust_line, _temporary) = match sim {
        Some(sim) => {
            let seeded = match &event {
                Some(e) => seed(&sim, e),
                None => String::new(),
            };
            // Read before anything else opens the database: the policies a server stored there.
            let dry = match super::dry_trust::load(
                &args.trust,
                &ledger_path(&args.data.data_dir),
                sim.executors().graph,
            ) {
                Ok(d) => d,
                Err(exit) => return exit,
            };
            // A dry run writes nothing into the data directory: its ledger is a temporary one.
            let temporary = match tempfile::tempdir() {
                Ok(t) => t,
                Err(e) => {
                    return Exit::Internal(anyhow!(
                        "cannot create a temporary directory for the dry run's ledger: {e}"
                    ));
                }
            };
            let ledger = match Ledger::open(ledger_path(temporary.path()), Durability::None) {
                Ok(l) => Arc::new(l),
                Err(e) => return Exit::Internal(e.into()),
            };
            let place = json!({
                "temporary": true,
                "note": "a temporary ledger, removed when the dry run ends: the data directory is not written",
            });
            (
                Target::Simulated { sim, seeded },
                ledger,
                place,
                dry.trust as Arc<dyn grace_engine::trust::Trust>,
                Some(dry.source),
                Some(temporary),
            )
        }
        None => {
            let backends = match runtime.block_on(super::run_backends::connect(&args)) {
                Ok(b) => b,
                Err(exit) => return exit,
            };
            let ledger = backends.ledger.clone();
            let trust = backends.trust.clone() as Arc<dyn grace_engine::trust::Trust>;
            let place = json!({ "path": ledger_path(&args.data.data_dir), "temporary": false });
            (
                Target::Backends(Box::new(backends)),
                ledger,
                place,
                trust,
                None,
                None,
            )
        }
    };

    let (executors, before) = match &target {
        Target::Simulated { sim, .. } => {
            // The incident happens when its event says: the run clock starts there.
            if let Some(e) = &event {
                let now = sim.clock().now_millis();
                if e.timestamp > now {
                    sim.clock()
                        .advance(std::time::Duration::from_millis(e.timestamp - now));
                }
            }
            (sim.executors(), Some(sim.snapshot()))
        }
        Target::Backends(b) => (b.executors.clone(), None),
    };
    let env = RunEnv::new(executors, ledger.clone(), trust);
    let report = runtime.block_on(async {
        let report = match &event {
            Some(event) => engine.run_playbook(&guest, event, &env).await,
            None => engine.run_collector(&guest, &env).await,
        };
        // The run's `finished` record is submitted, not awaited: have it on record before
        // reporting the ledger's head.
        (report, ledger.flush().await)
    });
    let report = match report {
        (report, Ok(())) => report,
        (_, Err(e)) => return Exit::Internal(anyhow!("the ledger could not record the run: {e}")),
    };
    let head = match ledger.head() {
        Ok(h) => h,
        Err(e) => return Exit::Internal(anyhow!("cannot read the ledger head: {e}")),
    };
    let verdicts = super::dry_trust::verdicts(&report.timeline);
    let forced = args.force && !holds;
    let mode = if args.dry_run { "dry-run" } else { "run" };

    if args.json {
        let actions: Vec<_> = report.actions().collect();
        let mut out = json!({
            "mode": mode,
            "run": &report,
            "actions": actions,
            "ledger": { "head": head },
        });
        merge(&mut out["ledger"], ledger_place);
        if let Some(checks) = &checks {
            out["triggers"] = json!(checks);
            out["forced"] = json!(forced);
        }
        match &target {
            Target::Simulated { sim, seeded } => {
                out["trust"] = json!({ "source": trust_line, "decisions": verdicts });
                out["fleet"] = json!({ "before": before, "after": sim.snapshot() });
                out["seeded"] = json!(seeded);
            }
            Target::Backends(b) => {
                out["trust"] = json!({ "source": b.trust_source(), "decisions": verdicts });
                out["providers"] = json!(b.providers);
            }
        }
        match serde_json::to_string_pretty(&out) {
            Ok(text) => println!("{text}"),
            Err(e) => return Exit::Internal(e.into()),
        }
    } else {
        let mut head_lines = String::new();
        if let (Some(checks), Some(e)) = (&checks, &event) {
            run_triggers::section(&mut head_lines, checks, e);
            if forced {
                head_lines.push_str(
                    "forced   no trigger holds for this event; run anyway because of --force\n",
                );
            }
        }
        let mut trust = String::new();
        let (fleet_after, place) = match &target {
            Target::Simulated { sim, seeded } => {
                if let Some(source) = &trust_line {
                    super::dry_trust::section(&mut trust, source, &verdicts);
                }
                if !seeded.is_empty() {
                    head_lines.push_str(&format!("metrics  {seeded}\n"));
                }
                (
                    Some(sim.snapshot().to_string()),
                    "a temporary ledger, removed when the dry run ends: the data directory is not written".to_owned(),
                )
            }
            Target::Backends(b) => {
                b.trust_section(&mut trust, &verdicts);
                head_lines.push_str(&b.providers_section());
                (None, ledger_path(&args.data.data_dir).display().to_string())
            }
        };
        print!(
            "{}",
            render::run_report(&render::RunReportParts {
                report: &report,
                mode,
                preface: &head_lines,
                trust: &trust,
                fleet_after: fleet_after.as_deref(),
                head: head.as_ref(),
                ledger_place: &place,
            })
        );
    }
    match report.status {
        RunStatus::Succeeded => Exit::Ok,
        _ => Exit::Failed,
    }
}

/// No trigger holds and no `--force`: say why, run nothing, exit 1.
fn not_run(args: &RunArgs, checks: &[TriggerCheck], event: &TriggerEvent) -> Exit {
    if args.json {
        let out = json!({
            "mode": if args.dry_run { "dry-run" } else { "run" },
            "ran": false,
            "triggers": checks,
        });
        match serde_json::to_string_pretty(&out) {
            Ok(text) => println!("{text}"),
            Err(e) => return Exit::Internal(e.into()),
        }
    } else {
        let mut out = String::new();
        run_triggers::section(&mut out, checks, event);
        out.push_str(
            "not run  no trigger of the playbook holds for this event: pass --force to run it anyway\n",
        );
        print!("{}", grace_engine::text::escape_lines(&out));
    }
    Exit::Failed
}

/// Seeds the series the event names (`payload.query`) with its value (`payload.value`) from
/// its time; says what was done, or that the simulation's own values are read.
fn seed(sim: &Simulation, event: &TriggerEvent) -> String {
    let query = event.payload.get("query").and_then(Value::as_str);
    let value = event.payload.get("value").and_then(Value::as_f64);
    match (query, value) {
        (Some(query), Some(value)) => {
            sim.seed_series(query, value, event.timestamp);
            format!(
                "`{query}` reads the event's value {value} from its time until the run changes the fleet; then the simulation's model answers"
            )
        }
        _ => "the event names no series (`query` and a numeric `value` in its payload): queries read the simulation's own values".to_owned(),
    }
}

/// `a`'s object with `b`'s keys added.
fn merge(a: &mut Value, b: Value) {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
}

fn read_event(path: Option<&Path>, now_millis: u64) -> anyhow::Result<Option<TriggerEvent>> {
    let Some(path) = path else { return Ok(None) };
    // One event is at most a 64 KiB payload and a few names: a bound keeps a huge file unread.
    const MAX_EVENT_FILE_BYTES: u64 = 1024 * 1024;
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_EVENT_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .context("cannot read the event from stdin")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_EVENT_FILE_BYTES + 1).read_to_string(&mut text))
            .with_context(|| format!("cannot read event file `{}`", path.display()))?;
    }
    if text.len() as u64 > MAX_EVENT_FILE_BYTES {
        anyhow::bail!(
            "`{}`: an event file is at most {MAX_EVENT_FILE_BYTES} bytes",
            path.display()
        );
    }
    let event = TriggerEvent::from_json(&text, now_millis)
        .with_context(|| format!("in `{}`", path.display()))?;
    Ok(Some(event))
}
