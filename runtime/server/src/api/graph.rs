//! `/v1/graph`: the health graph (see [`crate::graph`]), whole or around a node, as JSON or
//! Graphviz DOT; `/v1/graph/nodes/{id}`: one node with its KPIs, health and neighbours.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use grace_graph::{GraphView, NodeDetail, NodeId};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::ApiError;
use crate::graph::Graph;

/// Deepest `depth` a request may ask for.
pub const MAX_DEPTH: u32 = 10;
/// Most nodes one answer holds, and the default.
pub const MAX_NODES: usize = 100_000;
const DEFAULT_NODES: usize = 10_000;
/// Most neighbours listed each way for one node.
const MAX_NEIGHBOURS: usize = 1_000;

/// The routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/", get(show))
        .route("/nodes/{*id}", get(node))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// `json` (default) or `dot`.
    format: Option<String>,
    /// Only this node and what is within `depth` of it, either way.
    around: Option<String>,
    /// Steps from `around` (default 1).
    depth: Option<u32>,
    /// Most nodes (default 10,000).
    limit: Option<usize>,
}

/// The graph or part of it, with whether nodes were left out.
#[derive(Debug, Serialize)]
struct Shown {
    #[serde(flatten)]
    view: GraphView,
    /// Nodes in the graph in all.
    node_count: usize,
    /// Edges in the graph in all.
    edge_count: usize,
    /// Whether `limit` left nodes out.
    truncated: bool,
}

fn graph(graph: Option<Arc<Graph>>) -> Result<Arc<Graph>, ApiError> {
    graph.ok_or_else(|| {
        ApiError::not_found(
            "the health graph is off: add a [graph] section to grace.toml (docs/graph.md)",
        )
    })
}

fn node_id(field: &str, text: &str) -> Result<NodeId, ApiError> {
    NodeId::parse(text).map_err(|e| ApiError::field(field, e.to_string()))
}

/// `GET /v1/graph[?format=dot][&around=ID&depth=N][&limit=N]`.
async fn show(
    State(g): State<Option<Arc<Graph>>>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let g = graph(g)?;
    let Query(q) = query.map_err(|e| ApiError::body(e.body_text()))?;
    let dot = match q.format.as_deref() {
        None | Some("json") => false,
        Some("dot") => true,
        Some(other) => {
            return Err(ApiError::field(
                "format",
                format!(
                    "`{}` is not a format: `json` or `dot`",
                    other.escape_debug()
                ),
            ));
        }
    };
    let depth = q.depth.unwrap_or(1);
    if depth > MAX_DEPTH {
        return Err(ApiError::field("depth", format!("at most {MAX_DEPTH}")));
    }
    let limit = q.limit.unwrap_or(DEFAULT_NODES);
    if !(1..=MAX_NODES).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be within 1..={MAX_NODES}"),
        ));
    }
    let around = q
        .around
        .as_deref()
        .map(|a| node_id("around", a))
        .transpose()?;
    let now = grace_engine::event::system_now_millis();
    let shown = g.read(|graph| {
        let mut only = match &around {
            Some(id) => Some(graph.around(id, depth, limit).ok_or_else(|| {
                ApiError::not_found(format!("no node `{id}` in the health graph"))
            })?),
            None => None,
        };
        let total = only.as_ref().map_or(graph.node_count(), |o| o.len());
        let truncated = total > limit;
        if truncated {
            let mut ids: Vec<NodeId> = match only.take() {
                Some(o) => o.into_iter().collect(),
                None => graph.nodes().map(|n| n.id.clone()).collect(),
            };
            ids.sort();
            // The node asked about stays whatever its place in the order.
            if let Some(centre) = &around {
                ids.retain(|id| id != centre);
                ids.truncate(limit.saturating_sub(1));
                ids.push(centre.clone());
            } else {
                ids.truncate(limit);
            }
            only = Some(ids.into_iter().collect());
        }
        Ok::<_, ApiError>(Shown {
            view: graph.view(now, only.as_ref()),
            node_count: graph.node_count(),
            edge_count: graph.edge_count(),
            truncated,
        })
    })?;
    if dot {
        return Ok((
            [(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
            shown.view.to_dot(),
        )
            .into_response());
    }
    Ok(Json(shown).into_response())
}

/// `GET /v1/graph/nodes/{id}`: the node, its KPIs and health, and its neighbours.
async fn node(
    State(g): State<Option<Arc<Graph>>>,
    Path(id): Path<String>,
) -> Result<Json<NodeDetail>, ApiError> {
    let g = graph(g)?;
    let id = node_id("id", &id)?;
    let now = grace_engine::event::system_now_millis();
    g.read(|graph| graph.detail(&id, now, MAX_NEIGHBOURS))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no node `{id}` in the health graph")))
}
