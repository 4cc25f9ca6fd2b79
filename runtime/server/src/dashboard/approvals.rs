//! `/approvals`: each change waiting for people, with why it waits (the trust core's risk score
//! and factors, the deciding policies), the votes so far and what the two-person rule still
//! needs; approve and deny (with a comment) for tokens with the `approve` scope.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::overview::{MAX_SHOWN, pending_approvals};
use super::runs::votes;
use super::session::Viewer;
use super::view::{self, Nav, badge, json, live, time};
use super::{Page, PageError};
use crate::app::App;
use crate::auth::Scope;
use crate::trust::approvals::Approval;

/// Decided approvals shown below the pending ones.
const RECENT: usize = 20;

/// `GET /approvals`.
pub async fn list(State(app): State<App>, viewer: Viewer) -> Result<Page, PageError> {
    let (pending, pending_total) = pending_approvals(&app, MAX_SHOWN).await?;
    let mut recent = app
        .trust
        .approvals()
        .list(None, RECENT + pending.len())
        .await
        .map_err(|e| PageError::internal(e.to_string()))?;
    recent.retain(|a| a.state.name() != "pending");
    recent.truncate(RECENT);
    let body = html! {
        h1 { "Approvals" }
        @if !viewer.may(Scope::Approve) {
            p class="note" { "Your token has no " code { "approve" } " scope: you can see what waits, not decide it." }
        }
        (live("pending", "/approvals", &["approvals"], html! {
            h2 { "Pending" }
            @if pending.is_empty() { p class="empty" { "Nothing waits for a person." } }
            @for a in &pending { (pending_card(&viewer, a)) }
            @if pending_total > pending.len() {
                p class="note" { "The " (pending.len()) " that expire first of " (pending_total) " shown; decide these and the next appear." }
            }
        }))
        (live("decided", "/approvals", &["approvals"], html! {
            h2 { "Recently decided" }
            @if recent.is_empty() { p class="empty" { "None yet." } }
            @else {
                table {
                    thead { tr { th scope="col" { "Change" } th scope="col" { "Run" } th scope="col" { "State" } th scope="col" { "Decided" } th scope="col" { "Votes" } } }
                    tbody {
                        @for a in &recent {
                            tr {
                                td { (a.action) " on " (a.resource) }
                                td { a href={ "/runs/" (a.run_id) } { code { (a.run_id) } } }
                                td { (badge(a.state.name())) }
                                td { (view::maybe_time(a.decided_at)) }
                                td { (votes(a)) }
                            }
                        }
                    }
                }
            }
        }))
    };
    Ok(Page(view::page(
        Some(&viewer),
        "Approvals",
        Nav::Approvals,
        body,
    )))
}

fn pending_card(viewer: &Viewer, a: &Approval) -> Markup {
    let risk = a.decision.get("risk");
    let heading = format!("approval-{}", a.id);
    html! {
        article class="card" id=(a.id) aria-labelledby=(heading) {
            h3 id=(heading) { (a.action) " on " (a.resource) }
            dl class="facts" {
                dt { "Playbook" } dd { (a.playbook) }
                dt { "Run" } dd { a href={ "/runs/" (a.run_id) } { code { (a.run_id) } } }
                dt { "Why it waits" } dd { (view::cut(&a.reason, 1000)) }
                @if let Some(score) = risk.and_then(|r| r.get("score")).and_then(|s| s.as_f64()) {
                    dt { "Risk" } dd { (format!("{score:.2}")) }
                }
                dt { "Asked" } dd { (time(a.created_at)) }
                dt { "Expires" } dd { (time(a.expires_at)) }
                dt { "Two-person rule" } dd { (a.approved_by.len()) " of " (a.approvers) " distinct people have approved" }
            }
            @if let Some(factors) = risk.and_then(|r| r.get("factors")).and_then(|f| f.as_array()) {
                table {
                    caption { "Risk factors" }
                    thead { tr { th scope="col" { "Factor" } th scope="col" { "Adds" } th scope="col" { "Why" } } }
                    tbody {
                        @for f in factors.iter().take(50) {
                            tr {
                                td { (view::cut(f.get("kind").and_then(|v| v.as_str()).unwrap_or("?"), 100)) }
                                td class="num" { (format!("{:+.0}", f.get("contribution").and_then(|v| v.as_f64()).unwrap_or(0.0))) }
                                td { (view::cut(f.get("explanation").and_then(|v| v.as_str()).unwrap_or(""), 500)) }
                            }
                        }
                    }
                }
            }
            details {
                summary { "The change's arguments and the full decision" }
                (json(&a.args, 2000))
                (json(&a.decision, 4000))
            }
            (votes(a))
            @if viewer.may(Scope::Approve) {
                // The server's own rule: one person is their principal, whatever their tokens.
                @let already = a.approved_by.iter().any(|v| v.principal_id() == viewer.caller.principal);
                div class="decide" {
                    @if already {
                        p class="note" { "You have approved this change; another person must too." }
                    } @else {
                        form method="post" action={ "/approvals/" (a.id) "/approve" } {
                            (viewer.csrf_field())
                            label for={ "approve-comment-" (a.id) } { "Comment (optional)" }
                            input type="text" id={ "approve-comment-" (a.id) } name="comment" maxlength="2000";
                            button type="submit" class="approve" { "Approve" }
                        }
                    }
                    form method="post" action={ "/approvals/" (a.id) "/deny" } {
                        (viewer.csrf_field())
                        label for={ "deny-comment-" (a.id) } { "Why deny (required)" }
                        input type="text" id={ "deny-comment-" (a.id) } name="comment" required maxlength="2000";
                        button type="submit" class="deny" { "Deny" }
                    }
                }
            }
        }
    }
}

/// A vote's form.
#[derive(Debug, Deserialize)]
pub struct VoteForm {
    #[allow(dead_code)]
    csrf: String,
    #[serde(default)]
    comment: String,
}

/// `POST /approvals/{id}/approve`.
pub async fn approve(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<VoteForm>,
) -> Response {
    decide(&app, &viewer, &id, true, form.comment).await
}

/// `POST /approvals/{id}/deny`.
pub async fn deny(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<VoteForm>,
) -> Response {
    decide(&app, &viewer, &id, false, form.comment).await
}

async fn decide(app: &App, viewer: &Viewer, id: &str, approve: bool, comment: String) -> Response {
    let comment = Some(comment).filter(|c| !c.trim().is_empty());
    match crate::api::approvals::vote(&app.scheduler, &viewer.caller, id, approve, comment).await {
        Ok(_) => {
            Redirect::to(&format!("/approvals#{}", super::session::urlencode(id))).into_response()
        }
        Err(e) => PageError::from(e)
            .with_viewer(viewer.clone())
            .into_response(),
    }
}
