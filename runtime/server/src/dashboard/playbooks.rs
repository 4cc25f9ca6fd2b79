//! `/playbooks`: each playbook's versions, signatures and triggers; enable and disable for
//! tokens with the `operate` scope (the API's own code path, audited the same way).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::session::Viewer;
use super::view::{self, Nav, badge, live, time};
use super::{Page, PageError};
use crate::api::playbooks::{set_enabled, summary};
use crate::app::App;
use crate::auth::Scope;

/// `GET /playbooks`.
pub async fn list(State(app): State<App>, viewer: Viewer) -> Result<Page, PageError> {
    let records = app.registry.playbooks()?;
    let body = html! {
        h1 { "Playbooks" }
        @if !viewer.may(Scope::Operate) {
            p class="note" { "Your token has no " code { "operate" } " scope: you can see playbooks, not enable or disable them." }
        }
        (live("playbooks", "/playbooks", &["playbooks"], html! {
            @if records.is_empty() { p class="empty" { "No playbook is uploaded (" code { "grace playbook upload" } ")." } }
            @for record in &records {
                @let s = summary(record);
                article class="card" id={ "playbook-" (s.name) } aria-labelledby={ "playbook-h-" (s.name) } {
                    h2 id={ "playbook-h-" (s.name) } { (s.name) " " span class="muted" { (s.active_version) } " " (badge(if s.enabled { "enabled" } else { "disabled" })) }
                    dl class="facts" {
                        dt { "Kind" } dd { (serde_json::to_value(s.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                        dt { "Component" } dd { code { (s.digest) } }
                        dt { "Signature" }
                        dd {
                            @match &s.signed_by {
                                Some(by) => { "signed by " code { (by.key) } " (trust root " (by.trust_root) ")" }
                                None => { (badge("unsigned")) }
                            }
                        }
                        dt { "Triggers" }
                        dd {
                            @if s.triggers.is_empty() { "none" }
                            ul { @for t in &s.triggers { li { code { (t) } } } }
                        }
                    }
                    @if viewer.may(Scope::Operate) {
                        form method="post" action={ "/playbooks/" (s.name) (if s.enabled { "/disable" } else { "/enable" }) } {
                            (viewer.csrf_field())
                            button type="submit" { (if s.enabled { "Disable" } else { "Enable" }) " " (s.name) }
                        }
                    }
                    details {
                        summary { (record.versions.len()) " version" @if record.versions.len() != 1 { "s" } }
                        table {
                            thead { tr { th scope="col" { "Version" } th scope="col" { "Uploaded" } th scope="col" { "Digest" } th scope="col" { "Signed by" } } }
                            tbody {
                                @for v in record.versions.iter().rev() {
                                    tr {
                                        td { (v.version) @if v.version == record.active_version { " (active)" } }
                                        td { (time(v.uploaded_at)) }
                                        td { code { (view::cut(&v.digest, 23)) } }
                                        td { @match &v.signed_by { Some(by) => { code { (by.key) } } None => { "unsigned" } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }))
    };
    Ok(Page(view::page(
        Some(&viewer),
        "Playbooks",
        Nav::Playbooks,
        body,
    )))
}

/// `POST /playbooks/{name}/enable`.
pub async fn enable(State(app): State<App>, viewer: Viewer, Path(name): Path<String>) -> Response {
    toggle(&app, &viewer, name, true).await
}

/// `POST /playbooks/{name}/disable`.
pub async fn disable(State(app): State<App>, viewer: Viewer, Path(name): Path<String>) -> Response {
    toggle(&app, &viewer, name, false).await
}

async fn toggle(app: &App, viewer: &Viewer, name: String, enabled: bool) -> Response {
    let anchor = format!("/playbooks#playbook-{}", super::session::urlencode(&name));
    match set_enabled(
        &app.registry,
        app.shared_playbooks.as_deref(),
        &app.audit,
        &viewer.caller,
        name,
        enabled,
    )
    .await
    {
        Ok(_) => Redirect::to(&anchor).into_response(),
        Err(e) => PageError::from(e)
            .with_viewer(viewer.clone())
            .into_response(),
    }
}
