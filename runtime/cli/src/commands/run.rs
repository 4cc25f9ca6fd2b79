//! `grace run`: one playbook (or one collector pass) against the simulated fleet, every call
//! decided by the trust core `grace serve` runs ([`super::dry_trust`]).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use grace_engine::{Engine, EngineConfig, Kind, RunEnv, RunStatus, TriggerEvent};
use grace_executor::Clock;
use grace_ledger::{Durability, Ledger};
use grace_sim::{Fleet, Simulation};
use serde_json::json;

use super::{Exit, ledger_path};
use crate::cli::RunArgs;
use crate::render;

pub fn run(args: RunArgs) -> Exit {
    if !args.dry_run {
        return Exit::Invalid(anyhow!(
            "running against real providers is not available yet: pass `--dry-run` to run against the simulated fleet"
        ));
    }
    let fleet = match &args.fleet {
        Some(path) => match Fleet::load(path) {
            Ok(f) => f,
            Err(e) => return Exit::Invalid(anyhow!("fleet `{}`: {e}", path.display())),
        },
        None => Fleet::default_fleet(),
    };
    let sim = Simulation::new(&fleet);
    let event = match read_event(args.event.as_deref(), sim.clock().now_millis()) {
        Ok(e) => e,
        Err(e) => return Exit::Invalid(e),
    };
    // The incident happens when its event says: the run clock starts there.
    if let Some(e) = &event {
        let now = sim.clock().now_millis();
        if e.timestamp > now {
            sim.clock()
                .advance(std::time::Duration::from_millis(e.timestamp - now));
        }
    }
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
    if guest.manifest.kind == Kind::Playbook && event.is_none() {
        return Exit::Invalid(anyhow!(
            "`{}` is a playbook: give it an event with `--event <file.json>`",
            guest.name()
        ));
    }
    // Read before the ledger opens the same database: the policies a server stored there.
    let dry = match super::dry_trust::load(&args.trust, &ledger_path(&args.data.data_dir)) {
        Ok(d) => d,
        Err(exit) => return exit,
    };
    let ledger = match open_ledger(&args.data.data_dir) {
        Ok(l) => Arc::new(l),
        Err(e) => return Exit::Internal(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Exit::Internal(anyhow!("cannot start the async runtime: {e}")),
    };

    let before = sim.snapshot();
    let env = RunEnv::new(sim.executors(), ledger.clone(), dry.trust.clone());
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
    let after = sim.snapshot();
    let head = match ledger.head() {
        Ok(h) => h,
        Err(e) => return Exit::Internal(anyhow!("cannot read the ledger head: {e}")),
    };
    let ledger_file = ledger_path(&args.data.data_dir);
    let verdicts = super::dry_trust::verdicts(&report.timeline);

    if args.json {
        let actions: Vec<_> = report.actions().collect();
        let out = json!({
            "mode": "dry-run",
            "run": &report,
            "actions": actions,
            "trust": { "source": &dry.source, "decisions": verdicts },
            "fleet": { "before": before, "after": after },
            "ledger": { "path": ledger_file, "head": head },
        });
        match serde_json::to_string_pretty(&out) {
            Ok(text) => println!("{text}"),
            Err(e) => return Exit::Internal(e.into()),
        }
    } else {
        let mut trust = String::new();
        super::dry_trust::section(&mut trust, &dry.source, &verdicts);
        print!(
            "{}",
            render::run_report(&report, &trust, &after, head.as_ref(), &ledger_file)
        );
    }
    match report.status {
        RunStatus::Succeeded => Exit::Ok,
        _ => Exit::Failed,
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

pub(super) fn open_ledger(data_dir: &Path) -> anyhow::Result<Ledger> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory `{}`", data_dir.display()))?;
    let path = ledger_path(data_dir);
    Ledger::open(&path, Durability::Immediate)
        .with_context(|| format!("cannot open the ledger `{}`", path.display()))
}
