//! `graph`: reads of the health graph, within `[grants.graph]` (namespaces, depth), from the
//! graph the host keeps (the server's discovered graph, or the simulated fleet's).
//!
//! The node id is parsed by the graph's own rules before anything else; the grant is checked
//! on the parsed id (kind and namespace), and walks leave out what the grant does not show.
//! Answers are bounded: at most [`MAX_NEIGHBOURS`] neighbours per walk, and text the sources
//! reported was bounded by the graph when it took it in.

use grace_executor::{ExecError, GraphReader};
use grace_graph::{EdgeKind, Health as GraphHealth, NodeDetail, NodeId, Reached, Walk};
use grace_model::capability;
use grace_model::grants::GraphGrant;
use grace_model::resource::Resource;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::bindings::graph::{Health, Host, Kpis, Neighbour, Node, Relation};
use crate::bindings::types::{Error, Label};
use crate::grants::not_granted;
use crate::host::HostState;
use crate::pipeline::{Call, Refusal, Scope, check_text, preview};

/// Most neighbours one walk answers.
pub const MAX_NEIGHBOURS: usize = 1_000;

fn grant(scope: &Scope) -> Result<&GraphGrant, Refusal> {
    scope
        .grants
        .graph
        .as_ref()
        .ok_or_else(|| not_granted("graph", &scope.guest).into())
}

/// The node id, parsed, and granted.
fn checked(scope: &Scope, id: &str) -> Result<(Arc<dyn GraphReader>, NodeId), Refusal> {
    check_text("id", id)?;
    let node = NodeId::parse(id).map_err(|e| Refusal::Invalid(e.to_string()))?;
    grant(scope)?.check_node(node.as_str(), node.kind().name(), node.namespace())?;
    let reader = scope.executors.graph.clone().ok_or_else(|| {
        Refusal::Failed(ExecError::Unavailable(
            "this host keeps no health graph (add [graph] to grace.toml)".into(),
        ))
    })?;
    Ok((reader, node))
}

/// A node as the ledger records it and the guest receives it.
#[derive(Debug, Serialize, Deserialize)]
struct NodeRecord {
    id: String,
    health: GraphHealth,
    reasons: Vec<String>,
    latency_p95_millis: Option<f64>,
    traffic_rps: Option<f64>,
    error_ratio: Option<f64>,
    saturation: Option<f64>,
    sources: Vec<String>,
    attributes: BTreeMap<String, String>,
}

/// A neighbour as the ledger records it and the guest receives it.
#[derive(Debug, Serialize, Deserialize)]
struct NeighbourRecord {
    id: String,
    depth: u32,
    via: String,
    relation: EdgeKind,
    health: GraphHealth,
    traffic_rps: Option<f64>,
    error_ratio: Option<f64>,
}

fn health(h: GraphHealth) -> Health {
    match h {
        GraphHealth::Healthy => Health::Healthy,
        GraphHealth::Degraded => Health::Degraded,
        GraphHealth::Unhealthy => Health::Unhealthy,
        GraphHealth::Unknown => Health::Unknown,
    }
}

fn node_record(detail: NodeDetail) -> NodeRecord {
    let view = detail.node;
    let kpi = |m: Option<&grace_graph::Measure>| m.map(|m| m.value);
    let kpis = &view.node.kpis;
    NodeRecord {
        id: view.node.id.to_string(),
        health: view.health.health,
        reasons: view.health.reasons,
        latency_p95_millis: kpi(kpis.latency_p95_ms.as_ref()),
        traffic_rps: kpi(kpis.traffic_rps.as_ref()),
        error_ratio: kpi(kpis.error_ratio.as_ref()),
        saturation: kpi(kpis.saturation.as_ref()),
        sources: view.node.seen_by.keys().map(str::to_owned).collect(),
        attributes: view.node.attributes,
    }
}

fn node_to_guest(n: NodeRecord) -> Node {
    Node {
        id: n.id,
        health: health(n.health),
        reasons: n.reasons,
        kpis: Kpis {
            latency_p95_millis: n.latency_p95_millis,
            traffic_rps: n.traffic_rps,
            error_ratio: n.error_ratio,
            saturation: n.saturation,
        },
        sources: n.sources,
        attributes: n
            .attributes
            .into_iter()
            .map(|(key, value)| Label { key, value })
            .collect(),
    }
}

fn neighbour_to_guest(n: NeighbourRecord) -> Neighbour {
    Neighbour {
        id: n.id,
        depth: n.depth,
        via: n.via,
        relation: match n.relation {
            EdgeKind::Calls => Relation::Calls,
            EdgeKind::PartOf => Relation::PartOf,
        },
        health: health(n.health),
        traffic_rps: n.traffic_rps,
        error_ratio: n.error_ratio,
    }
}

/// A walk's answer, for the guest (the walk went only through what the grant shows).
fn records(reached: Vec<(Reached, GraphHealth)>) -> Vec<NeighbourRecord> {
    reached
        .into_iter()
        .map(|(r, h)| NeighbourRecord {
            id: r.id.to_string(),
            depth: r.depth,
            via: r.via.to_string(),
            relation: r.edge,
            health: h,
            traffic_rps: r.rate_rps,
            error_ratio: r.error_ratio,
        })
        .collect()
}

impl HostState {
    async fn walk(
        &mut self,
        descriptor: &'static capability::Function,
        walk: Walk,
        id: String,
        depth: u32,
    ) -> wasmtime::Result<Result<Vec<Neighbour>, Error>> {
        let call = Call::read(descriptor, json!({ "id": preview(&id), "depth": depth }))
            .on(Resource::node(preview(&id).as_str().unwrap_or_default()));
        self.run
            .perform_on(
                call,
                move |scope| async move {
                    let (reader, node) = checked(&scope, &id)?;
                    let grant = grant(&scope)?.clone();
                    grant.check_depth(depth)?;
                    let resource = Resource::node(node.as_str());
                    Ok(((reader, node, grant), resource))
                },
                move |_, (reader, node, grant)| async move {
                    // Only through what the grant shows: a hidden node is neither answered nor
                    // walked through, so it cannot show up as the `via` of a visible one.
                    let visible = |id: &NodeId| grant.visible(id.kind().name(), id.namespace());
                    let reached = reader
                        .walk(&node, walk, depth, MAX_NEIGHBOURS, &visible)
                        .ok_or_else(|| {
                            ExecError::NotFound(format!("no node `{node}` in the health graph"))
                        })?;
                    Ok(records(reached))
                },
            )
            .await
            .map(|r| r.map(|list| list.into_iter().map(neighbour_to_guest).collect()))
    }
}

impl Host for HostState {
    async fn get_node(&mut self, id: String) -> wasmtime::Result<Result<Node, Error>> {
        let call = Call::read(&capability::graph::GET_NODE, json!({ "id": preview(&id) }))
            .on(Resource::node(preview(&id).as_str().unwrap_or_default()));
        self.run
            .perform_on(
                call,
                move |scope| async move {
                    let (reader, node) = checked(&scope, &id)?;
                    let resource = Resource::node(node.as_str());
                    Ok(((reader, node), resource))
                },
                |_, (reader, node)| async move {
                    // The node alone: its neighbours are the walks' (and their grant's) business.
                    reader.node(&node, 0).map(node_record).ok_or_else(|| {
                        ExecError::NotFound(format!("no node `{node}` in the health graph"))
                    })
                },
            )
            .await
            .map(|r| r.map(node_to_guest))
    }

    async fn dependents(
        &mut self,
        id: String,
        depth: u32,
    ) -> wasmtime::Result<Result<Vec<Neighbour>, Error>> {
        self.walk(&capability::graph::DEPENDENTS, Walk::Dependents, id, depth)
            .await
    }

    async fn dependencies(
        &mut self,
        id: String,
        depth: u32,
    ) -> wasmtime::Result<Result<Vec<Neighbour>, Error>> {
        self.walk(
            &capability::graph::DEPENDENCIES,
            Walk::Dependencies,
            id,
            depth,
        )
        .await
    }
}
