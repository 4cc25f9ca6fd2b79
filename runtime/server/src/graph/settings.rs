//! `[graph]` in `grace.toml`: how often discovery looks, how long the graph remembers, which
//! meshes to read, the identity and health rules, declared edges and extra KPI queries.
//!
//! ```toml
//! [graph]
//! refresh = "30s"            # every discovery source, this often
//! timeout = "10s"            # longest one look may take
//! forget_after = "10m"       # a node or edge a source stops reporting goes after this
//! mesh = ["istio", "linkerd"]
//! mesh_window = "5m"         # the rate window of mesh queries
//! persist_every = "60s"
//! refresh_on = ["deploy*", "*.deployed", "*.deployment", "graph.refresh"]  # event types
//!
//! [graph.identity]
//! namespace_labels = ["namespace", "kubernetes_namespace", "com.docker.compose.project"]
//! workload_labels = ["workload", "app.kubernetes.io/name", "app", "com.docker.compose.service"]
//! default_namespace = "default"
//!
//! [graph.health]
//! fresh_for = "5m"
//! errors = { degraded = 0.01, unhealthy = 0.05 }
//!
//! [[graph.edge]]             # a dependency no mesh shows
//! from = "service:shop/checkout"
//! to = "service:shop/postgres"
//!
//! [[graph.kpi]]              # series labelled by the identity rules
//! kpi = "saturation"
//! query = 'max by (namespace, workload) (container_memory_working_set_bytes / container_spec_memory_limit_bytes)'
//! ```

use std::time::Duration;

use grace_graph::{HealthRule, Identity, NodeId};
use grace_prometheus::discover::{KpiQuery, Mesh, valid_window};
use serde::Deserialize;

/// A mesh by name in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshName {
    /// Istio.
    Istio,
    /// Linkerd.
    Linkerd,
}

impl MeshName {
    /// The mesh.
    pub fn mesh(self) -> Mesh {
        match self {
            MeshName::Istio => Mesh::Istio,
            MeshName::Linkerd => Mesh::Linkerd,
        }
    }
}

/// `[[graph.edge]]`: a dependency declared by the operator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredEdge {
    /// The caller.
    pub from: NodeId,
    /// What it calls.
    pub to: NodeId,
}

/// `[graph]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    /// How often each discovery source looks.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
    /// Longest one look may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Failed looks in a row before a source is marked down.
    pub unhealthy_after: u32,
    /// How long a source may answer without something before it is forgotten.
    #[serde(with = "humantime_serde")]
    pub forget_after: Duration,
    /// Most nodes kept.
    pub max_nodes: usize,
    /// Most edges kept.
    pub max_edges: usize,
    /// Most items one look reports.
    pub max_per_look: usize,
    /// The meshes read from the `prometheus` provider.
    pub mesh: Vec<MeshName>,
    /// The rate window of mesh queries (`5m`).
    pub mesh_window: String,
    /// Event types (globs) that make every discovery source look again at once (deployments,
    /// `graph.refresh`): the graph follows a change without waiting for `refresh`.
    pub refresh_on: Vec<String>,
    /// How often the graph is stored.
    #[serde(with = "humantime_serde")]
    pub persist_every: Duration,
    /// `[graph.identity]`.
    pub identity: Identity,
    /// `[graph.health]`.
    pub health: HealthRule,
    /// `[[graph.edge]]`.
    pub edge: Vec<DeclaredEdge>,
    /// `[[graph.kpi]]`.
    pub kpi: Vec<KpiQuery>,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            refresh: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            unhealthy_after: 2,
            forget_after: Duration::from_secs(600),
            max_nodes: 100_000,
            max_edges: 500_000,
            max_per_look: 50_000,
            mesh: vec![MeshName::Istio, MeshName::Linkerd],
            mesh_window: "5m".into(),
            persist_every: Duration::from_secs(60),
            refresh_on: ["deploy*", "*.deployed", "*.deployment", "graph.refresh"]
                .map(str::to_owned)
                .to_vec(),
            identity: Identity::default(),
            health: HealthRule::default(),
            edge: Vec::new(),
            kpi: Vec::new(),
        }
    }
}

impl GraphConfig {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, why: &str| Err((format!("graph.{key}"), why.to_owned()));
        if self.refresh < Duration::from_secs(1) || self.refresh > Duration::from_secs(24 * 3600) {
            return bad("refresh", "must be within 1s..=24h");
        }
        if self.timeout.is_zero() || self.timeout > self.refresh {
            return bad("timeout", "must be more than 0 and at most `refresh`");
        }
        if !(1..=100).contains(&self.unhealthy_after) {
            return bad("unhealthy_after", "must be within 1..=100");
        }
        if self.forget_after < self.refresh {
            return bad(
                "forget_after",
                "must be at least `refresh`: a node would be forgotten between two looks",
            );
        }
        if !(1..=10_000_000).contains(&self.max_nodes) {
            return bad("max_nodes", "must be within 1..=10000000");
        }
        if !(1..=50_000_000).contains(&self.max_edges) {
            return bad("max_edges", "must be within 1..=50000000");
        }
        if !(1..=10_000_000).contains(&self.max_per_look) {
            return bad("max_per_look", "must be within 1..=10000000");
        }
        if !valid_window(&self.mesh_window) {
            return bad(
                "mesh_window",
                "must be a Prometheus duration in s, m or h (e.g. `5m`)",
            );
        }
        for (i, t) in self.refresh_on.iter().enumerate() {
            if t.trim().is_empty() || t.len() > 256 {
                return bad(
                    &format!("refresh_on[{i}]"),
                    "an event-type glob of 1 to 256 bytes",
                );
            }
        }
        if self.persist_every < Duration::from_secs(1) {
            return bad("persist_every", "must be at least 1s");
        }
        self.identity
            .validate()
            .map_err(|m| ("graph.identity".to_owned(), m))?;
        self.health
            .validate()
            .map_err(|m| ("graph.health".to_owned(), m))?;
        for (i, e) in self.edge.iter().enumerate() {
            if e.from == e.to {
                return bad(&format!("edge[{i}]"), "`from` and `to` are the same node");
            }
        }
        for (i, k) in self.kpi.iter().enumerate() {
            if let Err(e) = promql_parser::parser::parse(&k.query) {
                return Err((format!("graph.kpi[{i}].query"), format!("not PromQL: {e}")));
            }
        }
        Ok(())
    }

    /// The graph's own settings.
    pub fn graph_settings(&self) -> grace_graph::GraphSettings {
        grace_graph::GraphSettings {
            forget_after: self.forget_after,
            max_nodes: self.max_nodes,
            max_edges: self.max_edges,
            health: self.health.clone(),
            identity: self.identity.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GraphConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_example_reads_and_validates() {
        let doc = include_str!("settings.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let table: toml::Table = toml::from_str(&example).unwrap();
        let graph = table["graph"].clone();
        let config: GraphConfig = graph.try_into().unwrap();
        config.validate().unwrap();
        assert_eq!(config.edge.len(), 1);
        assert_eq!(config.kpi.len(), 1);
    }

    #[test]
    fn bad_settings_name_their_key() {
        let e = parse("edge = [{ from = \"pod:x\", to = \"service:a/b\" }]").unwrap_err();
        assert!(e.contains("not a node id"), "{e}");
        let c = parse("mesh_window = \"5m]) or vector(1\"").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "graph.mesh_window");
        let c = parse("forget_after = \"10s\"").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "graph.forget_after");
        let c = parse("kpi = [{ kpi = \"saturation\", query = \"sum(\" }]").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "graph.kpi[0].query");
        assert!(parse("mesh = [\"consul\"]").is_err());
        assert!(parse("refreshh = \"1s\"").is_err());
    }
}
