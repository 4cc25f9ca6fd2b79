//! The health graph: what depends on what, and how healthy each part is, as the host's
//! discovery sees it (the simulated fleet's graph in dry-runs). Read only.
//!
//! Needs `[grants.graph]` in the manifest (`namespaces` limits which services it sees,
//! `max_depth` how far it may walk; see `docs/manifest.md`). Node ids are `<kind>:<key>`:
//! `service:<namespace>/<workload>`, `group:<name>`, `instance:<id>`, `container:<name>`,
//! `target:<job>/<host:port>`.
//!
//! ```no_run
//! // Refuse to restart a service whose dependents are already failing.
//! let unhealthy: Vec<_> = grace_sdk::graph::dependents("service:shop/checkout", 1)?
//!     .into_iter()
//!     .filter(|d| d.health == grace_sdk::graph::Health::Unhealthy)
//!     .collect();
//! # Ok::<(), grace_sdk::Error>(())
//! ```

use crate::bindings::playbook::grace::playbook::graph as wit;
use crate::{Error, Labels, Result, labels};

/// A node's health, by the host's rule (`docs/graph.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Fresh signals, all within bounds.
    Healthy,
    /// Some signal past its degraded bound, or part of it not ready.
    Degraded,
    /// Some signal past its unhealthy bound, or nothing of it ready.
    Unhealthy,
    /// No fresh signal.
    Unknown,
}

/// How a neighbour was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// A request dependency: the caller depends on what it calls.
    Calls,
    /// Membership: a service or group depends on its containers, instances, targets.
    PartOf,
}

/// The golden signals, each as last measured (`None` when nothing measures it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Kpis {
    /// 95th percentile latency, ms.
    pub latency_p95_millis: Option<f64>,
    /// Requests per second.
    pub traffic_rps: Option<f64>,
    /// Failed share of requests, 0 to 1.
    pub error_ratio: Option<f64>,
    /// Fullness of the most constrained resource, 0 to 1.
    pub saturation: Option<f64>,
}

/// One node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Its id.
    pub id: String,
    /// Its health.
    pub health: Health,
    /// The findings behind it.
    pub reasons: Vec<String>,
    /// Its golden signals.
    pub kpis: Kpis,
    /// The discovery sources that see it.
    pub sources: Vec<String>,
    /// What the sources reported of it.
    pub attributes: Labels,
}

/// A node reached by a walk.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    /// Its id.
    pub id: String,
    /// Steps from the node asked about.
    pub depth: u32,
    /// The node it was reached from.
    pub via: String,
    /// How.
    pub relation: Relation,
    /// Its health.
    pub health: Health,
    /// Requests per second along the edge it was reached by.
    pub traffic_rps: Option<f64>,
    /// Failed share of them.
    pub error_ratio: Option<f64>,
}

fn health(h: wit::Health) -> Health {
    match h {
        wit::Health::Healthy => Health::Healthy,
        wit::Health::Degraded => Health::Degraded,
        wit::Health::Unhealthy => Health::Unhealthy,
        wit::Health::Unknown => Health::Unknown,
    }
}

fn neighbours(list: Vec<wit::Neighbour>) -> Vec<Neighbour> {
    list.into_iter()
        .map(|n| Neighbour {
            id: n.id,
            depth: n.depth,
            via: n.via,
            relation: match n.relation {
                wit::Relation::Calls => Relation::Calls,
                wit::Relation::PartOf => Relation::PartOf,
            },
            health: health(n.health),
            traffic_rps: n.traffic_rps,
            error_ratio: n.error_ratio,
        })
        .collect()
}

/// The node `id`.
pub fn node(id: &str) -> Result<Node> {
    let n = wit::get_node(id).map_err(Error::from_host)?;
    Ok(Node {
        id: n.id,
        health: health(n.health),
        reasons: n.reasons,
        kpis: Kpis {
            latency_p95_millis: n.kpis.latency_p95_millis,
            traffic_rps: n.kpis.traffic_rps,
            error_ratio: n.kpis.error_ratio,
            saturation: n.kpis.saturation,
        },
        sources: n.sources,
        attributes: labels::from_wit(n.attributes),
    })
}

/// What depends on `id` (its callers, what it is part of), to `depth` steps.
pub fn dependents(id: &str, depth: u32) -> Result<Vec<Neighbour>> {
    wit::dependents(id, depth)
        .map(neighbours)
        .map_err(Error::from_host)
}

/// What `id` depends on (what it calls, its members), to `depth` steps.
pub fn dependencies(id: &str, depth: u32) -> Result<Vec<Neighbour>> {
    wit::dependencies(id, depth)
        .map(neighbours)
        .map_err(Error::from_host)
}

/// The id of the service `namespace/workload`, as the graph names it.
pub fn service_id(namespace: &str, workload: &str) -> String {
    format!("service:{namespace}/{workload}")
}
