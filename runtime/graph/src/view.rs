//! The graph as people and programs read it: nodes with their health, edges with their
//! traffic (`GET /v1/graph`, `grace graph show`), and the same in Graphviz DOT.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::graph::{HealthGraph, Node, Origin, Reached, Walk};
use crate::health::HealthReport;
use crate::id::{NodeId, NodeKind};
use crate::observation::EdgeKind;

/// A node with its health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Its kind.
    pub kind: NodeKind,
    /// First seen by any source.
    pub first_seen: u64,
    /// Last seen by any source.
    pub last_seen: u64,
    /// Health, with the findings.
    #[serde(flatten)]
    pub health: HealthReport,
    /// The node.
    #[serde(flatten)]
    pub node: Node,
}

/// An edge with what it carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeView {
    /// Where it starts.
    pub from: NodeId,
    /// Where it ends.
    pub to: NodeId,
    /// What it says.
    pub kind: EdgeKind,
    /// Declared in configuration.
    pub declared: bool,
    /// Requests per second (the largest any source measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_rps: Option<f64>,
    /// Failed share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<f64>,
    /// First seen by any source.
    pub first_seen: u64,
    /// Last seen by any source.
    pub last_seen: u64,
    /// Each source's view of it.
    pub origins: crate::BySource<Origin>,
}

/// The graph, or part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphView {
    /// Nodes, by id.
    pub nodes: Vec<NodeView>,
    /// Edges between them, by ends.
    pub edges: Vec<EdgeView>,
}

/// One node with its neighbours (`GET /v1/graph/nodes/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeDetail {
    /// The node.
    #[serde(flatten)]
    pub node: NodeView,
    /// What depends on it, one step away.
    pub dependents: Vec<Reached>,
    /// What it depends on, one step away.
    pub dependencies: Vec<Reached>,
}

impl HealthGraph {
    fn node_view(&self, node: &Node, now: u64) -> NodeView {
        NodeView {
            kind: node.id.kind(),
            first_seen: node.first_seen(),
            last_seen: node.last_seen(),
            health: self.health(&node.id, now).unwrap_or_else(|| HealthReport {
                health: crate::Health::Unknown,
                reasons: Vec::new(),
            }),
            node: node.clone(),
        }
    }

    /// The whole graph, or the nodes of `only` and the edges between them, at `now`.
    pub fn view(&self, now: u64, only: Option<&BTreeSet<NodeId>>) -> GraphView {
        let keep = |id: &NodeId| only.is_none_or(|o| o.contains(id));
        let mut nodes: Vec<NodeView> = self
            .nodes()
            .filter(|n| keep(&n.id))
            .map(|n| self.node_view(n, now))
            .collect();
        nodes.sort_by(|a, b| a.node.id.cmp(&b.node.id));
        let mut edges: Vec<EdgeView> = self
            .edges()
            .filter(|(from, to, _)| keep(from) && keep(to))
            .map(|(from, to, e)| EdgeView {
                from: from.clone(),
                to: to.clone(),
                kind: e.kind,
                declared: e.declared(),
                rate_rps: e.rate_rps(),
                error_ratio: e.error_ratio(),
                first_seen: e.origins.values().map(|o| o.seen.first).min().unwrap_or(0),
                last_seen: e.origins.values().map(|o| o.seen.last).max().unwrap_or(0),
                origins: e.origins.clone(),
            })
            .collect();
        edges.sort_by(|a, b| (&a.from, &a.to, a.kind).cmp(&(&b.from, &b.to, b.kind)));
        GraphView { nodes, edges }
    }

    /// One node with its health and its neighbours, at `now`; at most `limit` of each.
    pub fn detail(&self, id: &NodeId, now: u64, limit: usize) -> Option<NodeDetail> {
        let node = self.node(id)?;
        Some(NodeDetail {
            node: self.node_view(node, now),
            dependents: self.walk(id, Walk::Dependents, 1, limit)?,
            dependencies: self.walk(id, Walk::Dependencies, 1, limit)?,
        })
    }
}

/// `text` quoted for DOT: inside double quotes, `"` and `\` escaped, anything not printable
/// written as a Unicode escape (ids are checked, attributes come from outside).
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c if c.is_control() || crate::id::invisible(c) => {
                out.push_str(&c.escape_unicode().to_string());
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl GraphView {
    /// The view in Graphviz DOT: nodes coloured by health, edges labelled with their traffic,
    /// `part-of` edges dashed, declared edges dotted.
    pub fn to_dot(&self) -> String {
        let mut out =
            String::from("digraph grace {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
        for n in &self.nodes {
            let colour = match n.health.health {
                crate::Health::Healthy => "darkgreen",
                crate::Health::Degraded => "orange",
                crate::Health::Unhealthy => "red",
                crate::Health::Unknown => "grey",
            };
            let label = format!("{}\n{}", n.node.id, n.health.health.name());
            let _ = writeln!(
                out,
                "  {} [label={}, color={colour}];",
                quoted(n.node.id.as_str()),
                quoted(&label)
            );
        }
        for e in &self.edges {
            let mut attrs = Vec::new();
            if let Some(r) = e.rate_rps {
                let errors = e
                    .error_ratio
                    .map(|x| format!(", {:.1}% errors", x * 100.0))
                    .unwrap_or_default();
                attrs.push(format!("label={}", quoted(&format!("{r:.2} rps{errors}"))));
            }
            if e.kind == EdgeKind::PartOf {
                attrs.push("style=dashed".to_owned());
            } else if e.declared {
                attrs.push("style=dotted".to_owned());
            }
            let attrs = if attrs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", attrs.join(", "))
            };
            let _ = writeln!(
                out,
                "  {} -> {}{attrs};",
                quoted(e.from.as_str()),
                quoted(e.to.as_str())
            );
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_quotes_what_it_cannot_trust() {
        assert_eq!(quoted(r#"group:a"b\c"#), r#""group:a\"b\\c""#);
        assert_eq!(quoted("x\ny\u{1b}"), "\"x\\ny\\u{1b}\"");
    }
}
