//! The health graph: what runs where, what depends on what, and how healthy each part is.
//!
//! Discovery sources (Kubernetes, Docker, AWS, Prometheus targets, Istio and Linkerd metrics,
//! edges declared in `grace.toml`) each report an [`Observation`] of everything they see; the
//! [`HealthGraph`] merges it into one node per thing ([`NodeId`]'s identity rules), one edge per
//! relation, each remembering which sources saw it and when, and forgets what a source has
//! answered without for `forget_after`. Nodes carry the golden signals ([`Kpis`]), from which
//! [`HealthRule`] derives a [`Health`]. The graph answers what depends on a node (to a depth),
//! what it depends on, and what a disruption of it would reach ([`HealthGraph::blast_radius`]),
//! for playbooks (`graph` capability), the trust core's blast-radius factor and the API.
//!
//! No I/O here: the server's discovery task does the looking and the storing.

mod by_source;
mod graph;
mod health;
mod id;
mod observation;
mod view;

pub use by_source::BySource;
pub use graph::{
    Applied, Dependent, Edge, GraphSettings, HealthGraph, MAX_FACT_NEIGHBOURS, Node, Origin,
    Reached, Seen, Snapshot, StoredEdge, Walk,
};
pub use health::{Availability, Bounds, Health, HealthReport, HealthRule, Kpi, Kpis, Measure};
pub use id::{IdError, Identity, MAX_KEY_LEN, NodeId, NodeKind};
pub use observation::{
    Discovered, EdgeKind, MAX_ADDRESSES, MAX_ATTRIBUTE_LEN, MAX_ATTRIBUTES, Observation,
    ObservedEdge, ObservedKpi, ObservedNode, Owner,
};
pub use view::{EdgeView, GraphView, NodeDetail, NodeView};
