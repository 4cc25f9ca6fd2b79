//! `grace replay`: what would have happened if these events had reached these playbooks, every
//! call decided by the trust core `grace serve` runs ([`super::dry_trust`]).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use grace_engine::event::format_millis;
use grace_engine::text::{escape, escape_lines};
use grace_engine::{Engine, EngineConfig, Kind, TriggerEvent};
use grace_ledger::{Durability, Ledger};
use grace_server::replay::{ReplayReport, replay};
use grace_sim::{Fleet, Simulation};
use serde_json::Value;

use super::Exit;
use crate::cli::ReplayArgs;
use crate::render;

/// Reads events: a JSON array, one object, or JSON lines; items may be stored events
/// (`{seq, received_at, event}`, as `GET /v1/events` returns them).
pub fn parse_events(text: &str, what: &str) -> anyhow::Result<Vec<TriggerEvent>> {
    let values: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(v @ Value::Object(_)) => vec![v],
        Ok(_) => {
            return Err(anyhow!(
                "{what}: expected an event, an array of events or JSON lines"
            ));
        }
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| format!("{what}: line {}", i + 1))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let v = match v {
                Value::Object(mut m) if m.contains_key("seq") && m.contains_key("event") => {
                    m.remove("event").unwrap_or(Value::Null)
                }
                other => other,
            };
            TriggerEvent::from_value(v, 0).with_context(|| format!("{what}: event {i}"))
        })
        .collect()
}

pub fn run(args: ReplayArgs) -> Exit {
    if !args.dry_run {
        return Exit::Invalid(anyhow!(
            "replay only runs in simulation for now: pass `--dry-run`"
        ));
    }
    if args.playbook.is_empty() {
        return Exit::Invalid(anyhow!(
            "name the playbooks to replay against with `--playbook <dir>` (repeatable)"
        ));
    }
    let text = match std::fs::read_to_string(&args.events) {
        Ok(t) => t,
        Err(e) => return Exit::Invalid(anyhow!("cannot read `{}`: {e}", args.events.display())),
    };
    let events = match parse_events(&text, &format!("`{}`", args.events.display())) {
        Ok(e) => e,
        Err(e) => return Exit::Invalid(e),
    };
    let fleet = match &args.fleet {
        Some(path) => match Fleet::load(path) {
            Ok(f) => f,
            Err(e) => return Exit::Invalid(anyhow!("fleet `{}`: {e}", path.display())),
        },
        None => Fleet::default_fleet(),
    };
    let engine = match Engine::new(&EngineConfig {
        compiled_cache: super::compiled_cache_dir(),
        ..EngineConfig::default()
    }) {
        Ok(e) => e,
        Err(e) => return Exit::Internal(e.context("cannot start the wasm engine")),
    };
    let mut guests = Vec::new();
    for dir in &args.playbook {
        match engine.load(dir) {
            Ok(g) if g.manifest.kind == Kind::Playbook => guests.push(g),
            Ok(g) => {
                return Exit::Invalid(anyhow!(
                    "`{}` is a collector; replay takes playbooks",
                    g.name()
                ));
            }
            Err(e) => return Exit::Invalid(e.into()),
        }
    }

    // A replay must not write into a real ledger: its host calls go to a throwaway one.
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return Exit::Internal(anyhow!("cannot create a scratch directory: {e}")),
    };
    let ledger = match Ledger::open(scratch.path().join("replay.redb"), Durability::None) {
        Ok(l) => Arc::new(l),
        Err(e) => return Exit::Internal(anyhow!("cannot open a scratch ledger: {e}")),
    };
    let sim = Simulation::new(&fleet);
    let dry = match super::dry_trust::load(
        &args.trust,
        &super::ledger_path(&args.data.data_dir),
        sim.executors().graph,
    ) {
        Ok(d) => d,
        Err(exit) => return exit,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Exit::Internal(anyhow!("cannot start the async runtime: {e}")),
    };
    let report = runtime.block_on(replay(
        &engine,
        &guests,
        events,
        &sim,
        ledger,
        dry.trust.clone(),
    ));
    if args.json {
        let mut value = match serde_json::to_value(&report) {
            Ok(v) => v,
            Err(e) => return Exit::Internal(e.into()),
        };
        let decisions: Vec<Value> = report
            .steps
            .iter()
            .enumerate()
            .flat_map(|(i, step)| {
                step.decisions.iter().filter_map(move |d| {
                    let run = d.run.as_ref()?;
                    Some(serde_json::json!({
                        "event": i,
                        "playbook": d.playbook,
                        "run": run.run_id,
                        "decisions": super::dry_trust::verdicts(&run.timeline),
                    }))
                })
            })
            .collect();
        value["trust"] = serde_json::json!({ "source": &dry.source, "runs": decisions });
        match serde_json::to_string_pretty(&value) {
            Ok(t) => println!("{t}"),
            Err(e) => return Exit::Internal(e.into()),
        }
    } else {
        print!("{}", text_report(&report, &dry.source, &args.events));
    }
    Exit::Ok
}

fn text_report(
    report: &ReplayReport,
    source: &super::dry_trust::TrustSource,
    file: &Path,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "replay of `{}` in simulation ({} events)",
        file.display(),
        report.steps.len()
    );
    let _ = writeln!(out, "trust: {}\n", super::dry_trust::source_line(source));
    let mut fired = 0;
    for step in &report.steps {
        let e = &step.event;
        let _ = writeln!(
            out,
            "{}  {} on `{}` {}",
            format_millis(e.timestamp),
            escape(&e.event_type),
            escape(&e.resource),
            render::compact(&e.payload)
        );
        if step.decisions.is_empty() {
            let _ = writeln!(out, "    (no trigger matches)");
        }
        for d in &step.decisions {
            match &d.run {
                Some(run) => {
                    fired += 1;
                    let _ = writeln!(
                        out,
                        "    {}#{}: FIRED -> run {}",
                        d.playbook, d.trigger, run.status
                    );
                    for a in run
                        .timeline
                        .iter()
                        .filter(|t| t.change || t.verdict == grace_ledger::Verdict::Denied)
                    {
                        let _ = writeln!(
                            out,
                            "        {:<8} {}.{} {}{}",
                            if a.verdict == grace_ledger::Verdict::Denied {
                                "DENIED"
                            } else {
                                "action"
                            },
                            escape(&a.interface),
                            escape(&a.function),
                            render::args(&a.args),
                            if a.verdict == grace_ledger::Verdict::Denied {
                                format!("  ({})", escape(&a.reason))
                            } else {
                                String::new()
                            }
                        );
                    }
                    for v in super::dry_trust::verdicts(&run.timeline) {
                        let _ = writeln!(
                            out,
                            "        trust    #{} {} {}: {}",
                            v.seq,
                            escape(&v.call),
                            render::args(&v.args),
                            escape(&v.summary)
                        );
                    }
                    if let Some(o) = &run.outcome {
                        let _ = writeln!(out, "        outcome: {}", escape(&o.summary));
                    }
                    if let Some(f) = &run.failure {
                        let _ = writeln!(out, "        failure: {}", escape(&f.message));
                    }
                }
                None => {
                    let _ = writeln!(
                        out,
                        "    {}#{}: {}",
                        escape(&d.playbook),
                        d.trigger,
                        escape(d.detail.as_deref().unwrap_or(&d.decision))
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{fired} run(s) fired\n\nfleet after the replay\n{}",
        report.fleet_after
    );
    escape_lines(&out).into_owned()
}
