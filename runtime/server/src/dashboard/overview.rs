//! `/`: what is happening now — active and recent runs, pending approvals, sources, the fleet
//! (or the cluster's replicas and shards), and the ledger.

use std::sync::Arc;

use axum::extract::State;
use grace_ledger::Ledger;
use maud::{Markup, html};

use super::session::Viewer;
use super::view::{self, Nav, badge, live, maybe_time, time};
use super::{LedgerChecks, Page, PageError, runs::run_table};
use crate::app::App;
use crate::runs::{RunRecord, RunState};
use crate::store::RunFilter;
use crate::trust::approvals::{Approval, ApprovalState};

/// How many recent runs the overview shows (the runs page has them all, paginated).
const RECENT: usize = 15;
/// The most active runs, and pending approvals, a page shows.
pub const MAX_SHOWN: usize = 50;

/// `GET /`.
pub async fn show(State(app): State<App>, viewer: Viewer) -> Result<Page, PageError> {
    let store = app.store.clone();
    let (active, active_total, recent) = tokio::task::spawn_blocking(move || {
        let (active, total) = active_runs(&store)?;
        let recent = store.runs(&RunFilter {
            limit: RECENT,
            ..RunFilter::default()
        })?;
        Ok::<_, PageError>((active, total, recent))
    })
    .await
    .map_err(|e| PageError::internal(e.to_string()))??;
    let (pending, pending_total) = pending_approvals(&app, MAX_SHOWN).await?;
    let ledger = ledger_status(&app.ledger, &app.dashboard.ledger_checks).await?;
    let body = html! {
        h1 { "Overview" }
        div class="grid" {
            (live("active-runs", "/", &["runs"], html! {
                h2 { "Active runs" }
                @if active.is_empty() { p class="empty" { "No run is queued, running or waiting." } }
                @else { (run_table(&active)) }
                @if active_total > active.len() {
                    p class="note" { "The newest " (active.len()) " of " (active_total) " shown: " a href="/runs?state=queued" { "all queued runs" } }
                }
            }))
            (live("pending-approvals", "/", &["approvals"], html! {
                h2 { "Pending approvals" }
                @if pending.is_empty() { p class="empty" { "Nothing waits for a person." } }
                @else {
                    ul class="cards" {
                        @for a in &pending {
                            li {
                                a href={ "/approvals#" (a.id) } { (a.action) " on " (a.resource) }
                                " — " (a.approved_by.len()) " of " (a.approvers) " approvals"
                            }
                        }
                    }
                    @if pending_total > pending.len() {
                        p class="note" { "The " (pending.len()) " that expire first of " (pending_total) " shown." }
                    }
                }
            }))
        }
        (live("recent-runs", "/", &["runs"], html! {
            h2 { "Recent runs" }
            @if recent.is_empty() { p class="empty" { "No run yet." } }
            @else { (run_table(&recent)) p { a href="/runs" { "All runs" } } }
        }))
        div class="grid" {
            (live("sources", "/", &["sources"], sources(&app)))
            (live("fleet", "/", &["fleet"], fleet(&app)))
        }
        (live("ledger", "/", &["ledger"], ledger))
    };
    Ok(Page(view::page(
        Some(&viewer),
        "Overview",
        Nav::Overview,
        body,
    )))
}

/// Runs not yet over, newest first, at most [`MAX_SHOWN`] of them, and how many there are:
/// read through the index of unfinished runs, not every run ever stored.
fn active_runs(store: &crate::store::Store) -> Result<(Vec<RunRecord>, usize), PageError> {
    let mut active = store.unfinished_runs(&[
        RunState::WaitingApproval,
        RunState::Running,
        RunState::Queued,
        RunState::Interrupted,
    ])?;
    let total = active.len();
    active.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    active.truncate(MAX_SHOWN);
    Ok((active, total))
}

/// The pending approvals that expire first (at most `max`), and how many are pending.
pub async fn pending_approvals(app: &App, max: usize) -> Result<(Vec<Approval>, usize), PageError> {
    let mut list = app
        .trust
        .approvals()
        .list(Some(ApprovalState::Pending), usize::MAX)
        .await
        .map_err(|e| PageError::internal(e.to_string()))?;
    let total = list.len();
    list.sort_by_key(|a| (a.expires_at, a.created_at));
    list.truncate(max);
    Ok((list, total))
}

fn sources(app: &App) -> Markup {
    let sources = app.sources.health().snapshot();
    html! {
        h2 { "Sources" }
        @if sources.is_empty() { p class="empty" { "No source is configured." } }
        @else {
            table {
                thead { tr { th scope="col" { "Source" } th scope="col" { "Kind" } th scope="col" { "Status" } th scope="col" { "Events" } th scope="col" { "Last success" } th scope="col" { "Last error" } } }
                tbody {
                    @for s in &sources {
                        tr {
                            td { (s.name) }
                            td { (s.kind) }
                            td { (badge(&serde_json::to_value(s.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())) }
                            td class="num" { (s.events) }
                            td { (maybe_time(s.last_success_at)) }
                            td { (view::cut(s.last_error.as_deref().unwrap_or(""), 200)) }
                        }
                    }
                }
            }
        }
    }
}

fn fleet(app: &App) -> Markup {
    if let Some(sim) = &app.sim {
        let snapshot = sim.snapshot();
        return html! {
            h2 { "Fleet (simulated)" }
            table {
                caption { "Groups" }
                thead { tr { th scope="col" { "Group" } th scope="col" { "Desired" } th scope="col" { "In service" } th scope="col" { "Pending" } th scope="col" { "Min–max" } } }
                tbody {
                    @for g in &snapshot.groups {
                        tr { td { (g.name) } td class="num" { (g.desired_capacity) } td class="num" { (g.in_service) } td class="num" { (g.pending) } td { (g.min_size) "–" (g.max_size) } }
                    }
                }
            }
            table {
                caption { "Services" }
                thead { tr { th scope="col" { "Service" } th scope="col" { "p95 latency" } th scope="col" { "Load" } th scope="col" { "Instances" } } }
                tbody {
                    @for s in &snapshot.services {
                        tr { td { (s.name) } td class="num" { (format!("{:.0} ms", s.p95_latency_ms)) } td class="num" { (format!("{:.0} rps", s.load_rps)) } td class="num" { (s.in_service) } }
                    }
                }
            }
        };
    }
    if let Some(cluster) = &app.cluster {
        let status = cluster.status();
        return html! {
            h2 { "Cluster" }
            p { "This replica: " strong { (status.replica) } " · " (badge(if status.ready { "ready" } else { "not ready" })) " · " (status.shards) " shards, " (status.owned.len()) " owned here" }
            @if let Some(e) = &status.last_error { p class="error" { (e) } }
            table {
                caption { "Replicas" }
                thead { tr { th scope="col" { "Replica" } th scope="col" { "Version" } th scope="col" { "Shards held" } th scope="col" { "Last heard" } } }
                tbody {
                    @for r in &status.replicas {
                        tr {
                            td { (r.member.replica) }
                            td { (r.member.version) }
                            td class="num" { (r.shards) }
                            td { (time(r.member.at_millis)) }
                        }
                    }
                }
            }
            p { (status.holders.iter().filter(|h| h.is_none()).count()) " of " (status.holders.len()) " shards without a holder" }
        };
    }
    html! {
        h2 { "Fleet" }
        p class="empty" { "The server acts on real providers; their state is in the providers themselves (see the sources above)." }
    }
}

/// The ledger's head, its last signed checkpoint and its last verification.
pub async fn ledger_status(
    ledger: &Arc<Ledger>,
    checks: &LedgerChecks,
) -> Result<Markup, PageError> {
    let read = ledger.clone();
    let (head, checkpoint) =
        tokio::task::spawn_blocking(move || (read.head(), read.latest_checkpoint()))
            .await
            .map_err(|e| PageError::internal(e.to_string()))?;
    let head = head.map_err(|e| PageError::internal(e.to_string()))?;
    let checkpoint = checkpoint.map_err(|e| PageError::internal(e.to_string()))?;
    let last = checks.last();
    Ok(html! {
        h2 { "Ledger" }
        dl class="facts" {
            dt { "Entries" } dd { (head.as_ref().map_or(0, |h| h.entries)) }
            dt { "Last signed checkpoint" }
            dd {
                @match &checkpoint {
                    Some(c) => { (c.unverified().tree_size) " entries, signed " (time(c.unverified().timestamp_millis)) }
                    None => { "none (set " code { "checkpoint_key" } " in grace.toml)" }
                }
            }
            dt { "Last verification" }
            dd {
                @match &last {
                    Some(check) => {
                        (badge(if check.ok { "ok" } else { "tampered" })) " "
                        @if let Some(n) = check.entries { (n) " entries recomputed " }
                        (time(check.at_millis))
                        @if let Some(problem) = &check.problem { " — " (problem) }
                    }
                    None => { "not since this start" }
                }
            }
        }
        form method="get" action="/ledger/verify" {
            button type="submit" { "Verify the whole ledger now" }
        }
    })
}
