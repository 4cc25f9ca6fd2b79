//! What one discovery source saw in one look: the nodes, edges and KPIs the graph merges
//! ([`crate::HealthGraph::apply`]). A source always reports everything it sees; what it stops
//! reporting ages out of the graph after `forget_after` of the source answering without it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::health::{Availability, Kpi};
use crate::id::NodeId;

/// The most attributes a node keeps, and the longest key and value (longer ones are cut at a
/// character boundary): sources are outside input.
pub const MAX_ATTRIBUTES: usize = 64;
/// The longest attribute key or value kept, in bytes.
pub const MAX_ATTRIBUTE_LEN: usize = 256;
/// The most addresses a node keeps.
pub const MAX_ADDRESSES: usize = 256;

/// How two nodes are related.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// `from` sends requests to `to`: `from` depends on `to`.
    Calls,
    /// `from` (a container, an instance, a target) is part of `to` (a service or group): `to`
    /// depends on it.
    PartOf,
}

impl EdgeKind {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            EdgeKind::Calls => "calls",
            EdgeKind::PartOf => "part-of",
        }
    }
}

/// What a node is part of, as a source knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Owner {
    /// A node the source names.
    Node(NodeId),
    /// Whatever node has this address (an IP another source reported for a service's
    /// endpoints or a container's networks): how a scrape target finds its workload when its
    /// labels do not say.
    Address(String),
}

/// A node as one source sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedNode {
    /// Its id.
    pub id: NodeId,
    /// Facts about it (labels, image, networks, size limits), merged into the node's.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// How much of it is ready, if the source knows.
    #[serde(default)]
    pub availability: Option<Availability>,
    /// The IP addresses it answers on (endpoint addresses, container IPs), for [`Owner::Address`].
    #[serde(default)]
    pub addresses: Vec<String>,
    /// What it is part of.
    #[serde(default)]
    pub part_of: Vec<Owner>,
}

impl ObservedNode {
    /// A node with nothing known but its id.
    pub fn new(id: NodeId) -> Self {
        ObservedNode {
            id,
            attributes: BTreeMap::new(),
            availability: None,
            addresses: Vec::new(),
            part_of: Vec::new(),
        }
    }

    /// Adds an attribute.
    #[must_use]
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Sets its availability.
    #[must_use]
    pub fn available(mut self, ready: u32, total: u32) -> Self {
        self.availability = Some(Availability { ready, total });
        self
    }

    /// Says what it is part of.
    #[must_use]
    pub fn part_of(mut self, owner: Owner) -> Self {
        self.part_of.push(owner);
        self
    }
}

/// An edge as one source sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedEdge {
    /// Where it starts.
    pub from: NodeId,
    /// Where it ends.
    pub to: NodeId,
    /// What it says.
    pub kind: EdgeKind,
    /// Requests per second along it, for mesh edges.
    #[serde(default)]
    pub rate_rps: Option<f64>,
    /// Failed share of those requests.
    #[serde(default)]
    pub error_ratio: Option<f64>,
}

impl ObservedEdge {
    /// `from` calls `to`.
    pub fn calls(from: NodeId, to: NodeId) -> Self {
        ObservedEdge {
            from,
            to,
            kind: EdgeKind::Calls,
            rate_rps: None,
            error_ratio: None,
        }
    }

    /// With its traffic.
    #[must_use]
    pub fn traffic(mut self, rate_rps: f64, error_ratio: Option<f64>) -> Self {
        self.rate_rps = Some(rate_rps);
        self.error_ratio = error_ratio;
        self
    }
}

/// One KPI value of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedKpi {
    /// The node.
    pub node: NodeId,
    /// Which KPI.
    pub kpi: Kpi,
    /// Its value.
    pub value: f64,
}

/// Everything one source saw in one look.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Nodes.
    #[serde(default)]
    pub nodes: Vec<ObservedNode>,
    /// Edges (their ends become nodes seen by the source if no source knows them yet).
    #[serde(default)]
    pub edges: Vec<ObservedEdge>,
    /// KPIs (their nodes too).
    #[serde(default)]
    pub kpis: Vec<ObservedKpi>,
    /// Whether the edges are declared in configuration rather than observed.
    #[serde(default)]
    pub declared: bool,
}

impl Observation {
    /// Adds everything `other` saw.
    pub fn extend(&mut self, other: Observation) {
        self.nodes.extend(other.nodes);
        self.edges.extend(other.edges);
        self.kpis.extend(other.kpis);
    }

    /// The node `id`, if it saw it.
    pub fn node(&self, id: &NodeId) -> Option<&ObservedNode> {
        self.nodes.iter().find(|n| &n.id == id)
    }

    /// How many things it holds.
    pub fn len(&self) -> usize {
        self.nodes.len() + self.edges.len() + self.kpis.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a discovery look found; `left_out`: items beyond the caller's bound, not reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Discovered {
    /// What was seen, at most the caller's bound of items.
    pub observation: Observation,
    /// How many items were seen beyond the bound and left out of `observation`.
    #[serde(default)]
    pub left_out: usize,
}

/// `text` cut to at most `max` bytes at a character boundary.
pub(crate) fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
