//! `/graph`: the health graph's nodes with their health, and its edges (`docs/graph.md`).

use axum::extract::State;
use maud::html;

use super::session::Viewer;
use super::view::{self, Nav, badge, live, time};
use super::{Page, PageError};
use crate::app::App;

/// The most nodes shown (the API and `grace graph show --around` narrow larger graphs).
pub const MAX_NODES: usize = 300;

/// `GET /graph`.
pub async fn show(State(app): State<App>, viewer: Viewer) -> Result<Page, PageError> {
    let Some(graph) = &app.graph else {
        let body = html! {
            h1 { "Health graph" }
            p class="empty" { "The health graph is off: add a [graph] section to grace.toml (docs/graph.md)." }
        };
        return Ok(Page(view::page(
            Some(&viewer),
            "Health graph",
            Nav::Graph,
            body,
        )));
    };
    let now = grace_engine::event::system_now_millis();
    let (view, total) = graph.read(|g| {
        let mut ids: Vec<_> = g.nodes().map(|n| n.id.clone()).collect();
        ids.sort();
        ids.truncate(MAX_NODES);
        let only = ids.into_iter().collect();
        (g.view(now, Some(&only)), g.node_count())
    });
    let body = html! {
        h1 { "Health graph" }
        (live("graph", "/graph", &["sources", "runs"], html! {
            p class="muted" { (total) " nodes" @if total > MAX_NODES { ", the first " (MAX_NODES) " shown" } }
            table {
                caption { "Nodes" }
                thead { tr { th scope="col" { "Node" } th scope="col" { "Kind" } th scope="col" { "Health" } th scope="col" { "Why" } th scope="col" { "Last seen" } } }
                tbody {
                    @for n in &view.nodes {
                        tr {
                            td { code { (n.node.id) } }
                            td { (n.kind) }
                            td { (badge(&serde_json::to_value(n.health.health).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())) }
                            td { (view::cut(&n.health.reasons.join("; "), 300)) }
                            td { (time(n.last_seen)) }
                        }
                    }
                }
            }
            table {
                caption { "Edges" }
                thead { tr { th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Kind" } th scope="col" { "Traffic" } th scope="col" { "Errors" } } }
                tbody {
                    @for e in &view.edges {
                        tr {
                            td { code { (e.from) } }
                            td { code { (e.to) } }
                            td { (serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) @if e.declared { " (declared)" } }
                            td class="num" { @if let Some(r) = e.rate_rps { (format!("{r:.1} rps")) } }
                            td class="num" { @if let Some(r) = e.error_ratio { (format!("{:.1} %", r * 100.0)) } }
                        }
                    }
                }
            }
        }))
    };
    Ok(Page(view::page(
        Some(&viewer),
        "Health graph",
        Nav::Graph,
        body,
    )))
}
