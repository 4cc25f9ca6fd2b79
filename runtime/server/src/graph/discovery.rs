//! The discovery sources: one per configured provider and view of it, each a polled source of
//! the source supervisor (its schedule, time limit, backoff, health in `GET /v1/sources` as
//! `graph:<name>`, restart when it dies). A look that fails applies nothing: the source is marked
//! down and the graph stays as it was (that source forgets nothing until it answers again).
//! At start, what sources no longer configured reported is forgotten.
//!
//! | source | from | what |
//! | --- | --- | --- |
//! | `kubernetes` (or the `[[providers]]` name) | the Kubernetes API | deployments, Services, EndpointSlices |
//! | `docker` | the Docker Engine API | containers, their networks, Compose services |
//! | `aws` | Auto Scaling | groups and their instances |
//! | `prometheus-targets` | `/api/v1/targets` | scrape targets, up or down, and their workloads |
//! | `istio`, `linkerd` | the mesh's metric families | dependency edges with rate and error ratio, golden signals |
//! | `kpi-queries` | `[[graph.kpi]]` | the operator's KPI queries |
//! | `declared` | `[[graph.edge]]` | dependencies the operator declares |
//! | `sim` | the simulated fleet (`--simulate`) | its groups, services, containers, deployments, dependencies |

use std::sync::Arc;

use grace_executor::ExecError;
use grace_graph::{Discovered, Observation, ObservedEdge};
use grace_prometheus::PrometheusMetrics;
use grace_prometheus::discover::Mesh;

use super::Graph;
use crate::sources::poll::{Polled, Poller, Schedule};
use crate::sources::supervisor::SourceSupervisor;

/// A provider discovery can look through.
#[derive(Clone)]
pub enum Provider {
    /// A Prometheus server: targets, meshes, KPI queries.
    Prometheus(Arc<PrometheusMetrics>),
    /// A Docker-compatible engine.
    Docker(Arc<grace_docker::Docker>),
    /// A Kubernetes cluster.
    Kubernetes(Arc<grace_kubernetes::Kube>),
    /// AWS Auto Scaling.
    Aws(Arc<grace_aws::AutoScaling>),
    /// The simulated fleet.
    Simulated(Arc<grace_sim::Simulation>),
}

/// What one source looks at.
enum View {
    Provider(Provider),
    Targets(Arc<PrometheusMetrics>),
    Mesh(Arc<PrometheusMetrics>, Mesh),
    Kpis(Arc<PrometheusMetrics>),
    Declared(Observation),
}

/// One discovery source.
struct Look {
    graph: Arc<Graph>,
    name: String,
    view: View,
}

impl Look {
    async fn look(&self, now: u64) -> Result<Discovered, ExecError> {
        let config = self.graph.config();
        let (identity, max) = (&config.identity, config.max_per_look);
        match &self.view {
            View::Provider(Provider::Docker(d)) => d.discover(identity, max).await,
            View::Provider(Provider::Kubernetes(k)) => k.discover(identity, max).await,
            View::Provider(Provider::Aws(a)) => a.discover(identity, max).await,
            View::Provider(Provider::Simulated(s)) => Ok(s.observe(identity, max)),
            View::Provider(Provider::Prometheus(p)) | View::Targets(p) => {
                p.targets(identity, max).await
            }
            View::Mesh(p, mesh) => p.mesh(*mesh, &config.mesh_window, now, max).await,
            View::Kpis(p) => p.kpis(&config.kpi, identity, now, max).await,
            View::Declared(o) => Ok(Discovered {
                observation: o.clone(),
                left_out: 0,
            }),
        }
    }
}

#[async_trait::async_trait]
impl Poller for Look {
    async fn poll(&self) -> Result<Polled, ExecError> {
        let now = grace_engine::event::system_now_millis();
        let found = self.look(now).await?;
        // Merging and aging walk the whole graph under its write lock: blocking work.
        let (graph, name) = (self.graph.clone(), self.name.clone());
        let (found, applied) = tokio::task::spawn_blocking(move || {
            let applied = graph.apply(&name, &found.observation, now);
            (found, applied)
        })
        .await
        .map_err(|e| ExecError::Other(format!("merging the look failed: {e}")))?;
        if found.left_out > 0 || applied.refused > 0 {
            tracing::warn!(
                source = %self.name,
                left_out = found.left_out,
                refused = applied.refused,
                "graph discovery saw more than its bounds allow (graph.max_per_look, graph.max_nodes, graph.max_edges)"
            );
        }
        tracing::debug!(source = %self.name, ?applied, "graph discovery applied");
        Ok(Polled::default())
    }
}

/// The names of the built-in discovery sources.
const RESERVED: [&str; 5] = [
    "prometheus-targets",
    "istio",
    "linkerd",
    "kpi-queries",
    "declared",
];

/// The discovery source of the provider `name` of `kind`: its name, or `<name>@<kind>` when
/// that is a built-in source's.
fn source_name(name: &str, kind: &str) -> String {
    if RESERVED.contains(&name) {
        format!("{name}@{kind}")
    } else {
        name.to_owned()
    }
}

impl Provider {
    /// Its kind, as `[[providers]]` names it.
    fn kind(&self) -> &'static str {
        match self {
            Provider::Prometheus(_) => "prometheus",
            Provider::Docker(_) => "docker",
            Provider::Kubernetes(_) => "kubernetes",
            Provider::Aws(_) => "aws",
            Provider::Simulated(_) => "sim",
        }
    }
}

/// The kind shown for discovery sources in `GET /v1/sources`.
pub const KIND: &str = "graph-discovery";

/// Starts a discovery source for each of `providers` (name, provider) and for the declared
/// edges, on every replica (each keeps its own graph: discovery only reads).
pub fn start(graph: &Arc<Graph>, sources: &SourceSupervisor, providers: &[(String, Provider)]) {
    let config = graph.config();
    let schedule = Schedule {
        every: config.refresh,
        timeout: config.timeout,
        retry_initial: std::time::Duration::from_secs(1).min(config.refresh),
        unhealthy_after: config.unhealthy_after,
    };
    let mut looks: Vec<(String, String, View)> = Vec::new();
    for (name, provider) in providers {
        match provider {
            Provider::Prometheus(p) => {
                let base = p.base_url().to_string();
                // One source per view, so that one failing query family does not hide another.
                let suffix = |s: &str| {
                    if name == "prometheus" {
                        s.to_owned()
                    } else {
                        format!("{s}@{name}")
                    }
                };
                looks.push((
                    suffix("prometheus-targets"),
                    base.clone(),
                    View::Targets(p.clone()),
                ));
                for mesh in &config.mesh {
                    let mesh = mesh.mesh();
                    looks.push((
                        suffix(mesh.name()),
                        base.clone(),
                        View::Mesh(p.clone(), mesh),
                    ));
                }
                if !config.kpi.is_empty() {
                    looks.push((suffix("kpi-queries"), base, View::Kpis(p.clone())));
                }
            }
            other => {
                // A provider named like a built-in source gets its kind after its name, so that
                // two sources never share one name (their health and their aging would mix).
                let source = source_name(name, other.kind());
                looks.push((source, name.clone(), View::Provider(other.clone())));
            }
        }
    }
    if !config.edge.is_empty() {
        let observation = Observation {
            edges: config
                .edge
                .iter()
                .map(|e| ObservedEdge::calls(e.from.clone(), e.to.clone()))
                .collect(),
            declared: true,
            ..Observation::default()
        };
        looks.push((
            "declared".into(),
            "[[graph.edge]]".into(),
            View::Declared(observation),
        ));
    }
    // A provider removed from the configuration never answers again, so nothing of it would
    // age: what only it reported goes now.
    let names: std::collections::BTreeSet<String> =
        looks.iter().map(|(name, _, _)| name.clone()).collect();
    let dropped = graph.retain_sources(&|s| names.contains(s));
    if dropped.nodes_removed + dropped.edges_removed > 0 {
        tracing::info!(
            nodes = dropped.nodes_removed,
            edges = dropped.edges_removed,
            "forgot what discovery sources no longer configured reported"
        );
    }
    for (name, target, view) in looks {
        let look = Look {
            graph: graph.clone(),
            name: name.clone(),
            view,
        };
        sources.poll_everywhere(
            &format!("graph:{name}"),
            KIND,
            target,
            Arc::new(look),
            schedule,
            graph.wake(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_named_like_a_built_in_source_gets_its_kind_after_its_name() {
        assert_eq!(source_name("docker-eu", "docker"), "docker-eu");
        assert_eq!(source_name("istio", "docker"), "istio@docker");
        assert_eq!(source_name("declared", "aws"), "declared@aws");
    }
}
