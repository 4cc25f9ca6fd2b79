//! The `graph` capability's reader: the health graph as the host keeps it, the server's
//! discovered graph or the simulated fleet's.
//!
//! Unlike the other capabilities there is one graph per host, not a provider per resource: the
//! graph already merges what every provider discovered. Reads are in memory and answer at once.

use grace_graph::{Dependent, Health, Identity, NodeDetail, NodeId, Reached, Walk};
use grace_model::capability::ResourceKind;
use grace_model::resource::{Downstream, Resource};

/// How far down the trust core looks for dependents.
pub const DOWNSTREAM_DEPTH: u32 = 2;
/// Most dependents the trust core is told of.
pub const MAX_DOWNSTREAM: usize = 100;

/// A health graph a run can read.
pub trait GraphReader: Send + Sync {
    /// The node with its health now and at most `limit` neighbours each way; `None` when the
    /// graph has no such node.
    fn node(&self, id: &NodeId, limit: usize) -> Option<NodeDetail>;

    /// What a walk from `id` reaches through the nodes `visible` keeps, to `depth` steps, at
    /// most `limit` nodes, each with its health now; `None` when the graph has no such node
    /// (see [`grace_graph::HealthGraph::walk_within`]).
    fn walk(
        &self,
        id: &NodeId,
        walk: Walk,
        depth: u32,
        limit: usize,
        visible: &dyn Fn(&NodeId) -> bool,
    ) -> Option<Vec<(Reached, Health)>>;

    /// What a disruption of `id` reaches, to `depth` steps, at most `limit` dependents (see
    /// [`grace_graph::HealthGraph::blast_radius`]); `None` when the graph has no such node.
    fn blast_radius(&self, id: &NodeId, depth: u32, limit: usize) -> Option<Vec<Dependent>>;

    /// The identity rules the graph's nodes were named by.
    fn identity(&self) -> Identity;

    /// What the graph says now of the node an event's resource names, for trigger conditions
    /// (see [`grace_graph::HealthGraph::facts`]).
    fn facts(&self, resource: &str) -> Option<serde_json::Value>;
}

/// The graph nodes a resource the trust core decides about may be, most likely first: a group
/// is `group:<name>`, a container `container:<name>` (or its id), a deployment
/// `service:<namespace>/<name>`, a label-selected service the workload its labels name by the
/// identity rules, a graph node itself. A query is no node.
pub fn nodes_of(resource: &Resource, identity: &Identity) -> Vec<NodeId> {
    match resource.kind {
        ResourceKind::Group => NodeId::group(&resource.id).ok().into_iter().collect(),
        ResourceKind::Container => [resource.display_name(), resource.id.as_str()]
            .into_iter()
            .filter_map(|n| NodeId::container(n.trim_start_matches('/')).ok())
            .collect(),
        ResourceKind::Deployment => resource
            .namespace
            .as_deref()
            .and_then(|ns| NodeId::service(ns, &resource.name).ok())
            .into_iter()
            .collect(),
        ResourceKind::Service => identity.service(&resource.labels).into_iter().collect(),
        ResourceKind::Node => NodeId::parse(&resource.id).ok().into_iter().collect(),
        ResourceKind::Query | ResourceKind::Channel => Vec::new(),
    }
}

/// What depends on `resource`, as `graph` knows it (direct dependents and theirs, at most
/// [`MAX_DOWNSTREAM`]): what the trust core's blast-radius factor weighs. Empty when the graph
/// does not know the resource.
pub fn downstream(graph: &dyn GraphReader, resource: &Resource) -> Vec<Downstream> {
    let candidates = nodes_of(resource, &graph.identity());
    let Some(found) = candidates
        .iter()
        .find_map(|id| graph.blast_radius(id, DOWNSTREAM_DEPTH, MAX_DOWNSTREAM))
    else {
        return Vec::new();
    };
    found
        .into_iter()
        .map(|d| Downstream {
            id: d.id.to_string(),
            depth: d.depth,
            // A share is 0 to 1: the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            traffic_permille: d
                .traffic_share
                .map(|s| (s.clamp(0.0, 1.0) * 1000.0).round() as u16),
            health: d.health.name().to_owned(),
            only_healthy_upstream: d.only_healthy_upstream,
        })
        .collect()
}

/// [`GraphReader::walk`] for a graph held in memory, read at the time `now` gives.
pub fn read_walk(
    graph: &grace_graph::HealthGraph,
    id: &NodeId,
    walk: Walk,
    depth: u32,
    limit: usize,
    visible: &dyn Fn(&NodeId) -> bool,
    now: u64,
) -> Option<Vec<(Reached, Health)>> {
    let reached = graph.walk_within(id, walk, depth, limit, visible)?;
    Some(
        reached
            .into_iter()
            .map(|r| {
                let health = graph
                    .health(&r.id, now)
                    .map_or(Health::Unknown, |h| h.health);
                (r, health)
            })
            .collect(),
    )
}
