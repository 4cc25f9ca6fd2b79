//! Text for people: run reports (a dry-run's, or a run as the server keeps it), their timelines,
//! ledger entries, tables.
//!
//! Almost everything shown here comes from outside: guests write log lines, outcomes, errors and
//! call arguments, events come from publishers, names and descriptions from manifests. So every
//! field goes through [`grace_engine::text::escape`] (control and invisible formatting characters
//! shown as escapes, `\n` included, so a field stays on its line), and every block this module
//! returns through [`escape_lines`] as well, which leaves only its own line breaks raw.

use std::fmt::Write as _;

use grace_engine::event::format_millis;
use grace_engine::run::Outcome;
use grace_engine::text::{escape, escape_lines};
use grace_engine::{Failure, FailureKind, RunReport, RunStatus, TimelineEntry};
use grace_ledger::{Entry, Head, Verdict};
use serde_json::Value;

use crate::client;

/// Longest rendering of a value in a timeline line.
const WIDTH: usize = 110;

/// Compact JSON, shortened for one line.
pub fn compact(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    shorten(&text, WIDTH)
}

/// A JSON value in a table's cell: strings escaped and cut to 60 characters, `null` as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => shorten(s, 60),
        Value::Null => "-".to_owned(),
        other => shorten(&other.to_string(), 60),
    }
}

/// A time in milliseconds since the epoch as RFC 3339 (`-` when absent), or the number where it
/// is past year 9999 (humantime formats four-digit years only).
pub fn millis(v: &Value) -> String {
    const LAST_MS: u64 = 253_402_300_799_999;
    match v.as_u64() {
        None => "-".to_owned(),
        Some(ms) if ms > LAST_MS => format!("{ms} ms"),
        Some(ms) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string(),
    }
}

/// `text` on one line (escaped), cut to `max` characters with an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    let text = escape(text);
    if text.chars().count() <= max {
        return text.into_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// The arguments of a call, as `key=value` pairs.
pub fn args(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => String::new(),
        Value::Object(map) => {
            // Sorted: serde_json keeps insertion order when a dependency asks it to
            // (`preserve_order`), and the same call should read the same way everywhere.
            let mut pairs: Vec<_> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            shorten(
                &pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={}", compact(v)))
                    .collect::<Vec<_>>()
                    .join(" "),
                WIDTH,
            )
        }
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
    // Graph nodes and neighbours (`graph.*`): ids with their health.
    let describe_node = |n: &Value| format!("{} {}", name(n, "id"), name(n, "health"));
    if ok.get("id").is_some() && ok.get("reasons").is_some() {
        return Some(format!("node {}", describe_node(ok)));
    }
    if let Some(items) = ok.as_array()
        && !items.is_empty()
        && items
            .iter()
            .all(|n| n.get("id").is_some() && n.get("relation").is_some())
    {
        let list: Vec<_> = items.iter().map(describe_node).collect();
        return Some(format!("{} node(s): {}", items.len(), list.join(", ")));
    }
    // Anomaly scores and forecasts (`anomaly.*`).
    if ok.get("component").is_some() && ok.get("alarming").is_some() {
        return Some(format!(
            "score {:.4} ({}){}",
            ok["value"].as_f64().unwrap_or(0.0),
            name(ok, "component"),
            if ok["alarming"] == true {
                ", alarming"
            } else {
                ""
            }
        ));
    }
    if let Some(steps) = ok.get("steps").and_then(Value::as_array)
        && ok.get("model").is_some()
    {
        let last = steps
            .last()
            .and_then(|s| s["value"].as_f64())
            .map_or("-".to_owned(), |v| format!("{v:.1}"));
        return Some(format!(
            "forecast {}: {} step(s), last {last}",
            name(ok, "model"),
            steps.len()
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
        escape(&format!("{}.{}", e.interface, e.function)),
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
    // Changes and refusals say why; reads allowed by the grants need no paragraph each.
    if e.verdict == Verdict::Denied || (e.change && e.trust.is_some()) {
        let _ = writeln!(
            out,
            "  {:>10}  {:<6} {:<30}    why: {}",
            "",
            "",
            "",
            escape(&e.reason)
        );
    }
    if let Some(line) = e
        .trust
        .as_ref()
        .filter(|_| e.change || e.verdict == Verdict::Denied)
        .and_then(trust_line)
    {
        let _ = writeln!(
            out,
            "  {:>10}  {:<6} {:<30}    {}",
            "",
            "",
            "",
            escape(&line)
        );
    }
}

/// The trust core's decision in one line: risk score and its largest factors, the deciding
/// policies, the approvers.
fn trust_line(trust: &Value) -> Option<String> {
    let risk = trust.get("risk")?;
    let score = risk.get("score").and_then(Value::as_u64)?;
    let mut factors: Vec<(f64, String)> = risk
        .get("factors")
        .and_then(Value::as_array)
        .map(|fs| {
            fs.iter()
                .filter_map(|f| {
                    let c = f.get("contribution").and_then(Value::as_f64)?;
                    let k = f.get("kind").and_then(Value::as_str)?;
                    (c >= 0.5).then(|| (c, format!("{k} {c:.0}")))
                })
                .collect()
        })
        .unwrap_or_default();
    factors.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut line = format!("risk {score}/100");
    if !factors.is_empty() {
        let top: Vec<String> = factors.into_iter().take(3).map(|(_, f)| f).collect();
        let _ = write!(line, " ({})", top.join(", "));
    }
    if let Some(p) = trust.get("policies").and_then(Value::as_array)
        && !p.is_empty()
    {
        let ids: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
        let _ = write!(line, "; policies {}", ids.join(", "));
    }
    if let Some(g) = trust
        .get("guardrail")
        .and_then(|g| g.get("guardrail"))
        .and_then(Value::as_str)
    {
        let _ = write!(line, "; guardrail `{g}`");
    }
    if let Some(a) = trust.get("approval") {
        let id = a.get("id").and_then(Value::as_str).unwrap_or("?");
        let state = a.get("state").and_then(Value::as_str).unwrap_or("?");
        let by: Vec<&str> = a
            .get("approved_by")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.get("by").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(line, "; approval {id} {state}");
        if !by.is_empty() {
            let _ = write!(line, " by {}", by.join(", "));
        }
    }
    Some(line)
}

/// The timeline of a run's host calls under `heading`, with the run clock's start when known.
pub fn timeline(out: &mut String, heading: &str, start: Option<u64>, entries: &[TimelineEntry]) {
    let heading = escape(heading);
    match start {
        Some(start) => {
            let _ = writeln!(out, "{heading} (run clock, from {})", format_millis(start));
        }
        None => {
            let _ = writeln!(out, "{heading}");
        }
    }
    for e in entries {
        timeline_line(out, e);
    }
    if entries.is_empty() {
        let _ = writeln!(out, "  (no host calls)");
    }
}

/// A failure kind as the API names it (`guest-error`).
pub fn failure_kind(kind: FailureKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

/// How a run ended: the playbook's outcome and its details, or why it failed.
pub fn outcome(
    out: &mut String,
    state: &str,
    outcome: Option<&Outcome>,
    failure: Option<&Failure>,
) {
    match (outcome, failure) {
        (Some(o), _) => {
            let changed = if o.changed { "changed" } else { "unchanged" };
            let _ = writeln!(
                out,
                "outcome  {} ({changed}): {}",
                escape(state),
                escape(&o.summary)
            );
            for (k, v) in &o.details {
                let _ = writeln!(out, "         {} = {}", escape(k), escape(v));
            }
        }
        (None, Some(f)) => {
            let _ = writeln!(
                out,
                "outcome  {} ({}): {}",
                escape(state),
                failure_kind(f.kind),
                escape(&f.message)
            );
        }
        (None, None) => {
            let _ = writeln!(out, "outcome  {}", escape(state));
        }
    }
}

/// Whether the run's signal cleared and what it cost, or what it is still watching for.
fn recovery_line(run: &client::Run) -> Option<String> {
    if let Some(r) = &run.recovery {
        let cost = if r.cost.capacity_added == 0 && r.cost.capacity_minutes == 0.0 {
            String::new()
        } else {
            format!(
                "; cost {:+} instance(s), {:.1} instance-minutes",
                r.cost.capacity_added, r.cost.capacity_minutes
            )
        };
        return Some(format!(
            "{}: {}{cost}",
            escape(&r.verdict),
            escape(&r.reason)
        ));
    }
    let w = run.watch.as_ref()?;
    let what = match &w.unless {
        Some(c) => format!("`{}` back within `{}`", escape(&w.event_type), escape(c)),
        None => format!("`{}`", escape(&w.event_type)),
    };
    Some(format!(
        "watching for {what} until {}",
        format_millis(w.until)
    ))
}

/// A run as the server keeps it: what fired it, how it ended, its attempts and the timeline of
/// its last attempt.
pub fn run_detail(run: &client::Run) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run      {}", escape(&run.id));
    let _ = writeln!(
        out,
        "playbook {} {} ({})",
        escape(&run.playbook),
        escape(&run.version),
        shorten(&run.digest, 23)
    );
    let _ = writeln!(
        out,
        "state    {}, {} attempt(s)",
        escape(&run.state),
        run.attempts
    );
    if let Some(a) = &run.approval {
        let a = escape(a);
        let hint = if run.state == "waiting-approval" {
            format!(
                ": decide with `grace approvals approve {a}` or `grace approvals deny {a} --comment ...`"
            )
        } else {
            String::new()
        };
        let _ = writeln!(out, "approval {a}{hint}");
    }
    let ev = &run.event;
    let _ = writeln!(
        out,
        "event    {} on `{}` from {} ({}) at {} (trigger {})",
        escape(&ev.event_type),
        escape(&ev.resource),
        escape(&ev.source),
        escape(&ev.actor),
        format_millis(ev.timestamp),
        run.trigger + 1
    );
    let _ = writeln!(out, "payload  {}", compact(&ev.payload));
    let mut times = format!("created {}", format_millis(run.created_at));
    if let Some(t) = run.started_at {
        let _ = write!(times, ", started {}", format_millis(t));
    }
    if let Some(t) = run.finished_at {
        let _ = write!(times, ", finished {}", format_millis(t));
    }
    let _ = writeln!(out, "times    {times}");
    if let Some(line) = recovery_line(run) {
        let _ = writeln!(out, "recovery {line}");
    }
    let _ = writeln!(out);
    let heading = if run.attempts > 1 {
        format!("timeline of attempt {}", run.attempts)
    } else {
        "timeline".to_owned()
    };
    // The run clock's start: the first call's time less its offset.
    let start = run
        .timeline
        .first()
        .map(|e| e.at.saturating_sub(e.offset_ms));
    timeline(&mut out, &heading, start, &run.timeline);
    if let Some(total) = run.timeline_total.filter(|t| *t > run.timeline.len()) {
        let _ = writeln!(
            out,
            "  … {} more calls not shown (GET /v1/runs/{}?timeline_from={}, or `grace ledger show`)",
            total - run.timeline.len(),
            run.id,
            run.timeline.len()
        );
    }
    let _ = writeln!(out);
    outcome(
        &mut out,
        &run.state,
        run.outcome.as_ref(),
        run.failure.as_ref(),
    );
    let actions = run
        .timeline
        .iter()
        .filter(|e| e.is_effective_action())
        .count();
    let denied = run
        .timeline
        .iter()
        .filter(|e| e.verdict == Verdict::Denied)
        .count();
    let _ = writeln!(
        out,
        "actions  {actions} taken, {denied} denied, {} host calls",
        run.timeline.len()
    );
    if run.attempts_log.len() > 1 {
        let _ = writeln!(out, "\nattempts");
        for a in &run.attempts_log {
            let why = a.failure.as_ref().map_or(String::new(), |f| {
                format!(": {} {}", failure_kind(f.kind), shorten(&f.message, WIDTH))
            });
            let _ = writeln!(
                out,
                "  #{:<3} {:<16} {}  {} host calls{why}",
                a.attempt,
                escape(&a.state),
                format_millis(a.started_at),
                a.host_calls
            );
        }
    }
    escape_lines(&out).into_owned()
}

/// Rows under headers, in columns as wide as their widest cell; the last column is not padded.
/// Cells are escaped: a table shows one row per line.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let headers: Vec<String> = headers.iter().map(|h| escape(h).into_owned()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| escape(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            if i + 1 < widths.len() {
                let pad = w.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let mut text = text.trim_end().to_owned();
        text.push('\n');
        text
    };
    let mut out = line(&mut headers.iter().map(String::as_str));
    for row in &rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// `sha256:` and the first 12 hex digits: enough to tell digests apart in a table.
pub fn short_digest(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

/// What a `grace run` report is made of.
#[derive(Clone, Copy)]
pub struct RunReportParts<'a> {
    /// The run.
    pub report: &'a RunReport,
    /// `dry-run` or `run`.
    pub mode: &'a str,
    /// Lines after the event: trigger checks, what was seeded, the backends.
    pub preface: &'a str,
    /// The trust section.
    pub trust: &'a str,
    /// The simulated fleet after the run, in a dry run.
    pub fleet_after: Option<&'a str>,
    /// The ledger's head after the run.
    pub head: Option<&'a Head>,
    /// Where the ledger is (a path, or a temporary ledger).
    pub ledger_place: &'a str,
}

/// The whole report of a `grace run` (or dry run): the trust section is printed after the
/// actions.
pub fn run_report(parts: &RunReportParts<'_>) -> String {
    let RunReportParts {
        report,
        mode,
        preface,
        trust,
        fleet_after,
        head,
        ledger_place,
    } = *parts;
    let mut out = String::new();
    let g = &report.guest;
    let _ = writeln!(
        out,
        "{mode} of {} {} {} ({})",
        g.kind,
        escape(&g.name),
        escape(&g.version),
        shorten(&g.digest, 23)
    );
    let _ = writeln!(out, "run      {}", report.run_id);
    if let Some(ev) = &report.event {
        let _ = writeln!(
            out,
            "event    {} on `{}` from {} ({}) at {}",
            escape(&ev.event_type),
            escape(&ev.resource),
            escape(&ev.source),
            escape(&ev.actor),
            format_millis(ev.timestamp)
        );
        let _ = writeln!(out, "payload  {}", compact(&ev.payload));
    }
    out.push_str(preface);
    let _ = writeln!(out);
    timeline(
        &mut out,
        "timeline",
        Some(report.started_at),
        &report.timeline,
    );
    let _ = writeln!(out);
    match (&report.status, &report.outcome) {
        (RunStatus::Succeeded, None) => {
            let _ = writeln!(
                out,
                "outcome  succeeded: {} event(s) collected",
                report.events.len()
            );
            for e in &report.events {
                let _ = writeln!(
                    out,
                    "         {} on `{}` {}",
                    escape(&e.event_type),
                    escape(&e.resource),
                    compact(&e.payload)
                );
            }
        }
        (status, o) => outcome(
            &mut out,
            &status.to_string(),
            o.as_ref(),
            report.failure.as_ref(),
        ),
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
            "         {} {}",
            escape(&format!("{}.{}", a.interface, a.function)),
            args(&a.args)
        );
    }
    out.push_str(trust);
    if let Some(fleet_after) = fleet_after {
        let _ = writeln!(out, "\nfleet after the run\n{fleet_after}");
    }
    match head {
        Some(h) => {
            let _ = writeln!(
                out,
                "ledger   {} entries, head {} ({ledger_place})",
                h.entries,
                shorten(&h.hash.to_string(), 17),
            );
        }
        None => {
            let _ = writeln!(out, "ledger   empty ({ledger_place})");
        }
    }
    escape_lines(&out).into_owned()
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
        escape(&format!("{}.{}", e.interface, e.function)),
        args(&e.args),
        result(&e.result),
    );
    if e.decision.verdict == Verdict::Denied {
        let _ = write!(line, "\n        why: {}", escape(&e.decision.reason));
    }
    escape_lines(&line).into_owned()
}
