//! `/runs` (every run, paginated) and `/runs/{id}`: one run's triggering event, attempts, and
//! its timeline — each host call in order, with the grant and trust decisions, risk factors,
//! approvals and results.

use axum::extract::{Path, Query, State};
use grace_engine::run::TimelineEntry;
use grace_ledger::Verdict;
use maud::{Markup, html};
use serde::Deserialize;

use super::session::{Viewer, urlencode};
use super::view::{self, Nav, badge, duration, json, live, maybe_time, pager, time};
use super::{Page, PageError};
use crate::app::App;
use crate::runs::{RunRecord, RunState};
use crate::store::RunFilter;

/// Runs per page.
pub const PAGE_SIZE: usize = 50;
/// Timeline entries shown on a run's page; the API pages through longer ones.
pub const MAX_TIMELINE: usize = 500;
/// Characters of JSON shown per argument, result or decision.
const JSON_CHARS: usize = 2000;

/// A table of runs, linking to each.
pub fn run_table(runs: &[RunRecord]) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Run" } th scope="col" { "Playbook" } th scope="col" { "Resource" } th scope="col" { "State" } th scope="col" { "Created" } th scope="col" { "Outcome" } } }
            tbody {
                @for r in runs {
                    tr {
                        td { a href={ "/runs/" (r.id) } { code { (r.id) } } }
                        td { (r.playbook) " " span class="muted" { (r.version) } }
                        td { (r.resource) }
                        td { (badge(r.state.name())) }
                        td { (time(r.created_at)) }
                        td { (view::cut(&r.summary().summary.unwrap_or_default(), 120)) }
                    }
                }
            }
        }
    }
}

/// `?state=&before=`: `before` is where the previous page ended (`<created_at>:<id>`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    before: Option<String>,
}

/// The cursor `<created_at>:<id>` of a page's end.
fn cursor(text: &str) -> Result<(u64, String), PageError> {
    let bad = || {
        PageError::field(
            "before",
            "must be `<created_at>:<run id>`, as the pages link it",
        )
    };
    let (at, id) = text.split_once(':').ok_or_else(bad)?;
    let at = at.parse().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 128 {
        return Err(bad());
    }
    Ok((at, id.to_owned()))
}

/// `GET /runs`: a page of runs, newest first; each page reads only its own runs.
pub async fn list(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Result<Page, PageError> {
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(RunState::parse(s).ok_or_else(|| {
            PageError::field(
                "state",
                format!(
                    "`{}` is not a run state (one of: {})",
                    s.escape_debug(),
                    RunState::ALL.map(RunState::name).join(", ")
                ),
            )
        })?),
        None => None,
    };
    let before = q.before.as_deref().map(cursor).transpose()?;
    let filter = RunFilter {
        state,
        limit: PAGE_SIZE + 1,
        before: before.clone(),
        ..RunFilter::default()
    };
    let store = app.store.clone();
    let mut runs = tokio::task::spawn_blocking(move || store.runs(&filter))
        .await
        .map_err(|e| PageError::internal(e.to_string()))??;
    let has_next = runs.len() > PAGE_SIZE;
    runs.truncate(PAGE_SIZE);
    let next = has_next
        .then(|| runs.last().map(|r| format!("{}:{}", r.created_at, r.id)))
        .flatten();
    let query = state
        .map(|s| format!("state={}", s.name()))
        .unwrap_or_default();
    let url = match &before {
        Some((at, id)) => format!("/runs?{query}&before={}", urlencode(&format!("{at}:{id}"))),
        None => format!("/runs?{query}"),
    };
    let body = html! {
        h1 { "Runs" }
        form method="get" action="/runs" class="filters" {
            label for="state" { "State" }
            select id="state" name="state" {
                option value="" selected[state.is_none()] { "any" }
                @for s in RunState::ALL {
                    option value=(s.name()) selected[state == Some(s)] { (s.name()) }
                }
            }
            button type="submit" { "Show" }
        }
        (live("runs", &url, &["runs"], html! {
            @if runs.is_empty() { p class="empty" { "No run." } }
            @else { (run_table(&runs)) }
            (pager("/runs", &query, before.is_none(), next.as_deref()))
        }))
    };
    Ok(Page(view::page(Some(&viewer), "Runs", Nav::Runs, body)))
}

/// `GET /runs/{id}`.
pub async fn show(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Page, PageError> {
    let store = app.store.clone();
    let wanted = id.clone();
    let run = tokio::task::spawn_blocking(move || store.run(&wanted))
        .await
        .map_err(|e| PageError::internal(e.to_string()))??
        .ok_or_else(|| PageError::not_found(format!("no run `{}`", id.escape_debug())))?;
    let url = format!("/runs/{}", urlencode(&run.id));
    let title = format!("Run {}", run.id);
    let body = html! {
        h1 { "Run " code { (run.id) } }
        (live("run", &url, &["runs", "ledger", "approvals"], run_body(&app, &run).await))
    };
    Ok(Page(view::page(Some(&viewer), &title, Nav::Runs, body)))
}

async fn run_body(app: &App, run: &RunRecord) -> Markup {
    let approval = match &run.approval {
        Some(id) => app.trust.approvals().get(id).await.ok().flatten(),
        None => None,
    };
    let total = run.timeline.len();
    html! {
        dl class="facts" {
            dt { "Playbook" } dd { (run.playbook) " " (run.version) " " span class="muted" { code { (view::cut(&run.digest, 19)) } } }
            dt { "Resource" } dd { (run.resource) }
            dt { "State" } dd { (badge(run.state.name())) }
            dt { "Created" } dd { (time(run.created_at)) }
            dt { "Started" } dd { (maybe_time(run.started_at)) }
            dt { "Finished" } dd { (maybe_time(run.finished_at)) }
            @if let Some(outcome) = &run.outcome {
                dt { "Outcome" } dd { (outcome.summary) @if outcome.changed { " (changed the world)" } }
            }
            @if let Some(failure) = &run.failure {
                dt { "Failure" } dd class="error" { (view::cut(&failure.message, 2000)) }
            }
            @if let Some(incident) = run.event.payload.get("incident_id").and_then(|v| v.as_str()) {
                dt { "Incident" } dd { code { (incident) } }
            }
        }
        @if let Some(a) = &approval {
            section aria-labelledby="approval-h" {
                h2 id="approval-h" { "Approval" }
                p {
                    (badge(a.state.name())) " " (a.action) " on " (a.resource) ": "
                    (a.approved_by.len()) " of " (a.approvers) " approvals"
                    @if a.state.name() == "pending" { " — " a href={ "/approvals#" (a.id) } { "decide" } }
                }
                (votes(a))
            }
        }
        section aria-labelledby="timeline-h" {
            h2 id="timeline-h" { "Timeline" }
            p class="muted" { (total) " host calls" @if total > MAX_TIMELINE { ", the first " (MAX_TIMELINE) " shown (the API pages through the rest)" } }
            (strip(&run.timeline))
            ol class="timeline" {
                @for entry in run.timeline.iter().take(MAX_TIMELINE) {
                    (timeline_entry(entry))
                }
            }
        }
        section aria-labelledby="event-h" {
            h2 id="event-h" { "Triggering event" }
            dl class="facts" {
                dt { "Type" } dd { (run.event.event_type) }
                dt { "Source" } dd { (run.event.source) }
                dt { "Actor" } dd { (run.event.actor) }
                dt { "Resource" } dd { (run.event.resource) }
                dt { "Time" } dd { (time(run.event.timestamp)) }
                dt { "Sequence" } dd { (run.event_seq) }
            }
            (json(&run.event.payload, JSON_CHARS))
        }
        @if !run.attempts_log.is_empty() {
            section aria-labelledby="attempts-h" {
                h2 id="attempts-h" { "Attempts" }
                table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "State" } th scope="col" { "Started" } th scope="col" { "Took" } th scope="col" { "Host calls" } th scope="col" { "Failure" } } }
                    tbody {
                        @for a in &run.attempts_log {
                            tr {
                                td class="num" { (a.attempt) }
                                td { (badge(a.state.name())) }
                                td { (time(a.started_at)) }
                                td class="num" { (duration(a.finished_at.saturating_sub(a.started_at))) }
                                td class="num" { (a.host_calls) }
                                td { @if let Some(f) = &a.failure { (view::cut(&f.message, 300)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The votes on an approval, and what the two-person rule still needs.
pub fn votes(a: &crate::trust::approvals::Approval) -> Markup {
    let missing = usize::from(a.approvers).saturating_sub(a.approved_by.len());
    html! {
        ul class="votes" {
            @for v in &a.approved_by {
                li { "✔ approved by " strong { (v.by) } " " (time(v.at)) @if let Some(c) = &v.comment { ": “" (view::cut(c, 500)) "”" } }
            }
            @if let Some(v) = &a.denied_by {
                li { "✘ denied by " strong { (v.by) } " " (time(v.at)) @if let Some(c) = &v.comment { ": “" (view::cut(c, 500)) "”" } }
            }
            @if a.state.name() == "pending" && missing > 0 {
                li class="muted" {
                    @if a.approvers > 1 { "Needs " (missing) " more approval" @if missing > 1 { "s" } " from different people (each person counts once, whatever their tokens)" }
                    @else { "Needs one approval" }
                }
            }
        }
    }
}

/// The timeline at a glance: one mark per host call along the run's time, coloured (and
/// shaped) by what happened. SVG attributes, not styles: the CSP allows no inline style.
fn strip(timeline: &[TimelineEntry]) -> Markup {
    let end = timeline
        .iter()
        .map(|e| e.offset_ms)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    html! {
        svg class="strip" viewBox="0 0 1000 40" preserveAspectRatio="none" role="img" aria-label="Host calls along the run's time" {
            line x1="0" y1="20" x2="1000" y2="20" class="axis" {}
            @for e in timeline.iter().take(MAX_TIMELINE) {
                @let x = format!("{:.1}", 5.0 + 990.0 * e.offset_ms as f64 / end);
                @let class = mark_class(e);
                @if e.change {
                    rect x=(x) y="8" width="6" height="24" class=(class) { title { (e.interface) "." (e.function) " at +" (duration(e.offset_ms)) } }
                } @else {
                    circle cx=(x) cy="20" r="5" class=(class) { title { (e.interface) "." (e.function) " at +" (duration(e.offset_ms)) } }
                }
            }
        }
    }
}

fn mark_class(e: &TimelineEntry) -> &'static str {
    match (e.verdict, e.result.get("error").is_some()) {
        (Verdict::Denied, _) => "mark bad",
        (_, true) => "mark warn",
        _ => "mark good",
    }
}

fn timeline_entry(e: &TimelineEntry) -> Markup {
    let verdict = match e.verdict {
        Verdict::Allowed => "allowed",
        Verdict::Denied => "denied",
    };
    let risk = e.trust.as_ref().and_then(|t| t.get("risk"));
    html! {
        li class={ "call " @if e.change { "change" } } {
            div class="call-head" {
                span class="offset" { "+" (duration(e.offset_ms)) }
                code { (e.interface) "." (e.function) }
                " " (badge(verdict))
                @if e.change { " " span class="badge neutral" { "change" } }
                @if let Some(score) = risk.and_then(|r| r.get("score")).and_then(|s| s.as_f64()) {
                    " " span class="badge neutral" { "risk " (format!("{score:.2}")) }
                }
                " " span class="muted" { "ledger #" (e.seq) }
            }
            p class="reason" { (view::cut(&e.reason, 1000)) }
            details {
                summary { "Arguments, decision and result" }
                h3 { "Arguments" } (json(&e.args, JSON_CHARS))
                @if let Some(trust) = &e.trust { h3 { "Trust decision" } (json(trust, JSON_CHARS)) }
                h3 { "Result" } (json(&e.result, JSON_CHARS))
            }
        }
    }
}
