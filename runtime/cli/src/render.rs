//! Text for people: run reports, timelines, ledger entries.

use std::fmt::Write as _;
use std::path::Path;

use grace_engine::event::format_millis;
use grace_engine::{RunReport, RunStatus, TimelineEntry};
use grace_ledger::{Entry, Head, Verdict};
use serde_json::Value;

/// Longest rendering of a value in a timeline line.
const WIDTH: usize = 110;

/// Compact JSON, shortened for one line.
fn compact(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    shorten(&text, WIDTH)
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// The arguments of a call, as `key=value` pairs.
fn args(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => String::new(),
        Value::Object(map) => shorten(
            &map.iter()
                .map(|(k, v)| format!("{k}={}", compact(v)))
                .collect::<Vec<_>>()
                .join(" "),
            WIDTH,
        ),
        other => compact(other),
    }
}

/// A one-line summary of the resources the capabilities return, where the shape is known.
fn summary(ok: &Value) -> Option<String> {
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let name = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
    if let Some(instances) = ok.get("instances").and_then(Value::as_array) {
        let in_service = instances
            .iter()
            .filter(|i| i["lifecycle_state"] == "in-service" && i["healthy"] == true)
            .count();
        return Some(format!(
            "group {}: desired {}, in service {in_service}/{}",
            name(ok, "name"),
            num(ok, "desired_capacity"),
            instances.len()
        ));
    }
    if ok.get("ready_replicas").is_some() {
        return Some(format!(
            "deployment {}/{}: replicas {}, ready {}, updated {}",
            name(ok, "namespace"),
            name(ok, "name"),
            num(ok, "replicas"),
            num(ok, "ready_replicas"),
            num(ok, "updated_replicas")
        ));
    }
    let describe_container = |c: &Value| {
        format!(
            "{} {} {}",
            name(c, "name"),
            name(c, "state"),
            name(c, "health")
        )
    };
    if ok.get("health").is_some() {
        return Some(format!("container {}", describe_container(ok)));
    }
    let items = ok.as_array()?;
    if items.iter().all(|c| c.get("health").is_some()) {
        let list: Vec<_> = items.iter().map(describe_container).collect();
        return Some(format!("{} container(s): {}", items.len(), list.join(", ")));
    }
    if items.iter().all(|s| s.get("samples").is_some()) {
        let list: Vec<_> = items
            .iter()
            .map(|s| {
                let labels = s["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                let samples = s["samples"].as_array().map_or(0, Vec::len);
                let last = s["samples"]
                    .as_array()
                    .and_then(|v| v.last())
                    .and_then(|p| p["value"].as_f64())
                    .map_or("-".to_owned(), |v| format!("{v:.1}"));
                if samples > 1 {
                    format!("{{{labels}}} {samples} samples, last {last}")
                } else {
                    format!("{{{labels}}} {last}")
                }
            })
            .collect();
        return Some(format!("{} series: {}", items.len(), list.join("; ")));
    }
    None
}

/// A call's result: the value, or the error kind and message.
fn result(value: &Value) -> String {
    if let Some(ok) = value.get("ok") {
        if ok.is_null() {
            return "ok".into();
        }
        return summary(ok).map_or_else(|| compact(ok), |s| shorten(&s, WIDTH));
    }
    if let Some(err) = value.get("error") {
        let kind = err.get("kind").and_then(Value::as_str).unwrap_or("error");
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        return shorten(&format!("{kind}: {message}"), WIDTH);
    }
    compact(value)
}

fn timeline_line(out: &mut String, e: &TimelineEntry) {
    let verdict = match e.verdict {
        Verdict::Allowed => "allowed",
        Verdict::Denied => "DENIED ",
    };
    let marker = if e.is_effective_action() {
        "  <- action"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "  +{:>8.3}s  #{:<5} {:<30} {verdict}  {}{marker}",
        e.offset_ms as f64 / 1000.0,
        e.seq,
        format!("{}.{}", e.interface, e.function),
        args(&e.args),
    );
    let _ = writeln!(
        out,
        "  {:>10}  {:<6} {:<30} -> {}",
        "",
        "",
        "",
        result(&e.result)
    );
    if e.verdict == Verdict::Denied {
        let _ = writeln!(
            out,
            "  {:>10}  {:<6} {:<30}    why: {}",
            "", "", "", e.reason
        );
    }
}

/// The whole report of a dry-run.
pub fn run_report(
    report: &RunReport,
    fleet_after: &impl std::fmt::Display,
    head: Option<&Head>,
    ledger_file: &Path,
) -> String {
    let mut out = String::new();
    let g = &report.guest;
    let _ = writeln!(
        out,
        "dry-run of {} {} {} ({})",
        g.kind,
        g.name,
        g.version,
        shorten(&g.digest, 23)
    );
    let _ = writeln!(out, "run      {}", report.run_id);
    if let Some(ev) = &report.event {
        let _ = writeln!(
            out,
            "event    {} on `{}` from {} ({}) at {}",
            ev.event_type,
            ev.resource,
            ev.source,
            ev.actor,
            format_millis(ev.timestamp)
        );
        let _ = writeln!(out, "payload  {}", compact(&ev.payload));
    }
    let _ = writeln!(
        out,
        "\ntimeline (run clock, from {})",
        format_millis(report.started_at)
    );
    for e in &report.timeline {
        timeline_line(&mut out, e);
    }
    if report.timeline.is_empty() {
        let _ = writeln!(out, "  (no host calls)");
    }
    let _ = writeln!(out);
    match (&report.status, &report.outcome, &report.failure) {
        (RunStatus::Succeeded, Some(o), _) => {
            let changed = if o.changed { "changed" } else { "unchanged" };
            let _ = writeln!(out, "outcome  succeeded ({changed}): {}", o.summary);
            for (k, v) in &o.details {
                let _ = writeln!(out, "         {k} = {v}");
            }
        }
        (RunStatus::Succeeded, None, _) => {
            let _ = writeln!(
                out,
                "outcome  succeeded: {} event(s) collected",
                report.events.len()
            );
            for e in &report.events {
                let _ = writeln!(
                    out,
                    "         {} on `{}` {}",
                    e.event_type,
                    e.resource,
                    compact(&e.payload)
                );
            }
        }
        (status, _, Some(f)) => {
            let _ = writeln!(out, "outcome  {status} ({:?}): {}", f.kind, f.message);
        }
        (status, _, None) => {
            let _ = writeln!(out, "outcome  {status}");
        }
    }
    let actions: Vec<_> = report.actions().collect();
    let denied = report.denials().count();
    let _ = writeln!(
        out,
        "actions  {} taken, {denied} denied, {} host calls, {} fuel",
        actions.len(),
        report.host_calls,
        report.fuel_consumed
    );
    for a in actions {
        let _ = writeln!(
            out,
            "         {}.{} {}",
            a.interface,
            a.function,
            args(&a.args)
        );
    }
    let _ = writeln!(out, "\nfleet after the run\n{fleet_after}");
    match head {
        Some(h) => {
            let _ = writeln!(
                out,
                "ledger   {} entries, head {} ({})",
                h.entries,
                shorten(&h.hash.to_string(), 17),
                ledger_file.display()
            );
        }
        None => {
            let _ = writeln!(out, "ledger   empty ({})", ledger_file.display());
        }
    }
    out
}

/// One ledger entry on one line (plus its decision when denied).
pub fn ledger_entry(e: &Entry) -> String {
    let verdict = match e.decision.verdict {
        Verdict::Allowed => "allowed",
        Verdict::Denied => "DENIED ",
    };
    let mut line = format!(
        "#{:<6} {} {:<20} {:<8} {:<30} {verdict} {} -> {}",
        e.seq,
        format_millis(e.at_millis),
        shorten(&e.playbook, 20),
        shorten(&e.run_id, 8),
        format!("{}.{}", e.interface, e.function),
        args(&e.args),
        result(&e.result),
    );
    if e.decision.verdict == Verdict::Denied {
        let _ = write!(line, "\n        why: {}", e.decision.reason);
    }
    line
}
