//! The graph: nodes and edges merged from every source's observations, each remembering which
//! sources saw it and when, aged out when no source has seen it for `forget_after`.
//!
//! Aging is per source and happens only when the source answers: each answer forgets what that
//! source last saw more than `forget_after` before it. A source that is down (its looks fail,
//! so nothing is applied) forgets nothing, and the graph stays as it was; its first answer after
//! an outage longer than `forget_after` forgets at once what it no longer reports. What only a
//! source that no longer exists reported goes with [`HealthGraph::retain_sources`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use petgraph::Direction;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences, VisitMap, Visitable};
use serde::{Deserialize, Serialize};

use crate::by_source::BySource;
use crate::health::{Availability, Health, HealthReport, HealthRule, Kpi, Kpis, Measure, Signals};
use crate::id::{Identity, NodeId};
use crate::observation::{
    EdgeKind, MAX_ADDRESSES, MAX_ATTRIBUTE_LEN, MAX_ATTRIBUTES, Observation, ObservedEdge,
    ObservedNode, Owner, bounded,
};

/// When a source saw something first and last (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// First seen.
    pub first: u64,
    /// Last seen.
    pub last: u64,
}

impl Seen {
    fn at(now: u64) -> Seen {
        Seen {
            first: now,
            last: now,
        }
    }
}

/// One thing in the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Its id.
    pub id: NodeId,
    /// Facts sources reported (bounded: [`MAX_ATTRIBUTES`]).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The sources that see it.
    pub seen_by: BySource<Seen>,
    /// Each source's count of its ready parts.
    #[serde(default)]
    pub availability: BySource<Availability>,
    /// The addresses it answers on.
    #[serde(default)]
    pub addresses: BTreeSet<String>,
    /// Its golden signals.
    #[serde(default)]
    pub kpis: Kpis,
}

impl Node {
    fn new(id: NodeId) -> Node {
        Node {
            id,
            attributes: BTreeMap::new(),
            seen_by: BySource::default(),
            availability: BySource::default(),
            addresses: BTreeSet::new(),
            kpis: Kpis::default(),
        }
    }

    /// When a source first saw it.
    pub fn first_seen(&self) -> u64 {
        self.seen_by.values().map(|s| s.first).min().unwrap_or(0)
    }

    /// When a source last saw it.
    pub fn last_seen(&self) -> u64 {
        self.seen_by.values().map(|s| s.last).max().unwrap_or(0)
    }
}

/// What one source says of an edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// Declared in configuration, not observed.
    #[serde(default)]
    pub declared: bool,
    /// Requests per second the source measured along it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_rps: Option<f64>,
    /// Failed share of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<f64>,
    /// When.
    pub seen: Seen,
}

/// One relation between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// What it says.
    pub kind: EdgeKind,
    /// Where it came from: each source's view of it.
    pub origins: BySource<Origin>,
}

impl Edge {
    /// Requests per second along it: the largest any source measured (Istio and Linkerd may
    /// both see the same requests; adding them would count them twice).
    pub fn rate_rps(&self) -> Option<f64> {
        self.origins
            .values()
            .filter_map(|o| o.rate_rps)
            .reduce(f64::max)
    }

    /// The failed share, from the source that measured the most traffic.
    pub fn error_ratio(&self) -> Option<f64> {
        self.origins
            .values()
            .filter(|o| o.error_ratio.is_some())
            .max_by(|a, b| {
                a.rate_rps
                    .unwrap_or(0.0)
                    .total_cmp(&b.rate_rps.unwrap_or(0.0))
            })
            .and_then(|o| o.error_ratio)
    }

    /// Whether configuration declares it.
    pub fn declared(&self) -> bool {
        self.origins.values().any(|o| o.declared)
    }
}

/// `[graph]` limits of the graph itself.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSettings {
    /// How long a source may answer without something before it is forgotten.
    pub forget_after: Duration,
    /// Most nodes kept; new ones beyond are refused (and counted).
    pub max_nodes: usize,
    /// Most edges kept.
    pub max_edges: usize,
    /// The health rule.
    pub health: HealthRule,
    /// The identity rules (read by discovery; kept here so every user of the graph reads the
    /// same ones).
    pub identity: Identity,
}

impl Default for GraphSettings {
    fn default() -> Self {
        GraphSettings {
            forget_after: Duration::from_secs(600),
            max_nodes: 100_000,
            max_edges: 500_000,
            health: HealthRule::default(),
            identity: Identity::default(),
        }
    }
}

/// What one [`HealthGraph::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Nodes new to the graph.
    pub nodes_added: usize,
    /// Nodes no source sees any more.
    pub nodes_removed: usize,
    /// Edges new to the graph.
    pub edges_added: usize,
    /// Edges no source sees any more.
    pub edges_removed: usize,
    /// Nodes or edges refused because the graph is full.
    pub refused: usize,
    /// KPI values refused as impossible (negative, not finite, a ratio above 1).
    pub invalid_kpis: usize,
    /// `part_of` addresses no node answers on (yet).
    pub unresolved: usize,
}

/// Most upstreams and most dependents [`HealthGraph::facts`] lists.
pub const MAX_FACT_NEIGHBOURS: usize = 50;
/// Most upstreams and most dependents [`HealthGraph::facts`] counts.
pub const MAX_FACT_COUNTED: usize = 10_000;

/// A node reached by a walk, and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reached {
    /// The node.
    pub id: NodeId,
    /// Steps from where the walk started.
    pub depth: u32,
    /// The node it was reached from.
    pub via: NodeId,
    /// The edge it was reached along.
    pub edge: EdgeKind,
    /// Requests per second along that edge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_rps: Option<f64>,
    /// Failed share along that edge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<f64>,
}

/// Which way a walk goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// To what depends on the start: its callers, and what it is part of.
    Dependents,
    /// To what the start depends on: its callees, and its parts.
    Dependencies,
}

/// Something that depends on a node a change would disrupt, as the trust core is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependent {
    /// The dependent.
    pub id: NodeId,
    /// 1 for a direct dependent, more for theirs.
    pub depth: u32,
    /// Its share of the node's incoming requests (direct callers with measured traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_share: Option<f64>,
    /// Its health now.
    pub health: Health,
    /// Whether the node is the only one it depends on (of its kind of dependency: callees for
    /// a caller, members for an owner) that is not unhealthy: disrupting the node leaves it
    /// nothing to fall back on.
    pub only_healthy_upstream: bool,
}

/// The graph.
#[derive(Debug, Clone)]
pub struct HealthGraph {
    graph: StableDiGraph<Node, Edge>,
    index: HashMap<NodeId, NodeIndex>,
    /// Address → the node that answers on it.
    addresses: HashMap<String, NodeIndex>,
    settings: GraphSettings,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl HealthGraph {
    /// An empty graph.
    pub fn new(settings: GraphSettings) -> HealthGraph {
        HealthGraph {
            graph: StableDiGraph::new(),
            index: HashMap::new(),
            addresses: HashMap::new(),
            settings,
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &GraphSettings {
        &self.settings
    }

    /// How many nodes.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// How many edges.
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// A node.
    pub fn node(&self, id: &NodeId) -> Option<&Node> {
        self.index.get(id).map(|i| &self.graph[*i])
    }

    /// Every node, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.graph.node_weights()
    }

    /// Every edge: from, to, edge.
    pub fn edges(&self) -> impl Iterator<Item = (&NodeId, &NodeId, &Edge)> {
        (&self.graph).edge_references().map(|e| {
            (
                &self.graph[e.source()].id,
                &self.graph[e.target()].id,
                e.weight(),
            )
        })
    }

    /// The node `address` belongs to.
    pub fn by_address(&self, address: &str) -> Option<&NodeId> {
        self.addresses.get(address).map(|i| &self.graph[*i].id)
    }

    fn ensure(&mut self, id: &NodeId, applied: &mut Applied) -> Option<NodeIndex> {
        if let Some(i) = self.index.get(id) {
            return Some(*i);
        }
        if self.graph.node_count() >= self.settings.max_nodes {
            applied.refused += 1;
            return None;
        }
        let i = self.graph.add_node(Node::new(id.clone()));
        self.index.insert(id.clone(), i);
        applied.nodes_added += 1;
        Some(i)
    }

    fn see(&mut self, i: NodeIndex, source: &str, now: u64) {
        let seen_by = &mut self.graph[i].seen_by;
        match seen_by.get_mut(source) {
            Some(s) => s.last = now,
            None => seen_by.insert(source, Seen::at(now)),
        }
    }

    fn merge_node(&mut self, i: NodeIndex, source: &str, observed: &ObservedNode) {
        let node = &mut self.graph[i];
        for (k, v) in &observed.attributes {
            if node.attributes.len() >= MAX_ATTRIBUTES && !node.attributes.contains_key(k) {
                continue;
            }
            node.attributes
                .insert(bounded(k, MAX_ATTRIBUTE_LEN), bounded(v, MAX_ATTRIBUTE_LEN));
        }
        match observed.availability {
            Some(a) => node.availability.insert(source, a),
            None => {
                node.availability.remove(source);
            }
        }
        if !observed.addresses.is_empty() {
            let old = std::mem::take(&mut node.addresses);
            node.addresses = observed
                .addresses
                .iter()
                .take(MAX_ADDRESSES)
                .map(|a| bounded(a, MAX_ATTRIBUTE_LEN))
                .collect();
            for a in old.difference(&node.addresses.clone()) {
                if self.addresses.get(a) == Some(&i) {
                    self.addresses.remove(a);
                }
            }
            for a in self.graph[i].addresses.clone() {
                self.addresses.insert(a, i);
            }
        }
    }

    fn link(
        &mut self,
        from: NodeIndex,
        to: NodeIndex,
        kind: EdgeKind,
        source: &str,
        origin: Origin,
        applied: &mut Applied,
    ) {
        let existing = self
            .graph
            .edges_connecting(from, to)
            .find(|e| e.weight().kind == kind)
            .map(|e| e.id());
        let e = match existing {
            Some(e) => e,
            None => {
                if self.graph.edge_count() >= self.settings.max_edges {
                    applied.refused += 1;
                    return;
                }
                applied.edges_added += 1;
                self.graph.add_edge(
                    from,
                    to,
                    Edge {
                        kind,
                        origins: BySource::default(),
                    },
                )
            }
        };
        let origins = &mut self.graph[e].origins;
        let first = origins
            .get(source)
            .map_or(origin.seen.first, |o| o.seen.first);
        origins.insert(
            source,
            Origin {
                seen: Seen {
                    first,
                    last: origin.seen.last,
                },
                ..origin
            },
        );
    }

    fn observed_edge(
        &mut self,
        source: &str,
        edge: &ObservedEdge,
        declared: bool,
        now: u64,
        applied: &mut Applied,
    ) {
        let clean =
            |v: Option<f64>, max: f64| v.filter(|v| v.is_finite() && *v >= 0.0 && *v <= max);
        let rate = clean(edge.rate_rps, f64::MAX);
        // A mesh edge whose traffic stopped is not seen: it ages out like a node that is gone.
        if edge.rate_rps.is_some() && rate.is_none_or(|r| r <= 0.0) {
            return;
        }
        if edge.from == edge.to {
            return;
        }
        // Both ends fit, or neither is added: a lone new end would never be seen, so never age.
        let new_ends = usize::from(!self.index.contains_key(&edge.from))
            + usize::from(!self.index.contains_key(&edge.to));
        if self.graph.node_count() + new_ends > self.settings.max_nodes {
            applied.refused += 1;
            return;
        }
        let (Some(from), Some(to)) = (
            self.ensure(&edge.from, applied),
            self.ensure(&edge.to, applied),
        ) else {
            return;
        };
        self.see(from, source, now);
        self.see(to, source, now);
        let origin = Origin {
            declared,
            rate_rps: rate,
            error_ratio: clean(edge.error_ratio, 1.0),
            seen: Seen::at(now),
        };
        self.link(from, to, edge.kind, source, origin, applied);
    }

    /// Merges what `source` saw at `now`, then forgets what `source` has answered without for
    /// longer than `forget_after`.
    pub fn apply(&mut self, source: &str, observation: &Observation, now: u64) -> Applied {
        let mut applied = Applied::default();
        for observed in &observation.nodes {
            let Some(i) = self.ensure(&observed.id, &mut applied) else {
                continue;
            };
            self.see(i, source, now);
            self.merge_node(i, source, observed);
        }
        // Owners after every node, so that an address reported in the same look resolves.
        for observed in &observation.nodes {
            let Some(&member) = self.index.get(&observed.id) else {
                continue;
            };
            for owner in &observed.part_of {
                let owner = match owner {
                    Owner::Node(id) => {
                        let Some(o) = self.ensure(id, &mut applied) else {
                            continue;
                        };
                        self.see(o, source, now);
                        o
                    }
                    Owner::Address(a) => match self.addresses.get(a) {
                        Some(o) => *o,
                        None => {
                            applied.unresolved += 1;
                            continue;
                        }
                    },
                };
                if owner == member {
                    continue;
                }
                let origin = Origin {
                    declared: observation.declared,
                    rate_rps: None,
                    error_ratio: None,
                    seen: Seen::at(now),
                };
                self.link(
                    member,
                    owner,
                    EdgeKind::PartOf,
                    source,
                    origin,
                    &mut applied,
                );
            }
        }
        for edge in &observation.edges {
            self.observed_edge(source, edge, observation.declared, now, &mut applied);
        }
        for kpi in &observation.kpis {
            if !kpi.kpi.accepts(kpi.value) {
                applied.invalid_kpis += 1;
                continue;
            }
            let Some(i) = self.ensure(&kpi.node, &mut applied) else {
                continue;
            };
            self.see(i, source, now);
            *self.graph[i].kpis.slot(kpi.kpi) = Some(Measure {
                value: kpi.value,
                at: now,
                source: source.to_owned(),
            });
        }
        self.forget(source, now, &mut applied);
        applied
    }

    /// Forgets everything only sources `keep` refuses reported: for a source that no longer
    /// exists (a provider removed from the configuration), whose contributions would otherwise
    /// never age, since only a source's own answers age what it reported.
    pub fn retain_sources(&mut self, keep: &dyn Fn(&str) -> bool) -> Applied {
        let mut applied = Applied::default();
        let gone = |origins: &[&str]| origins.iter().any(|s| !keep(s));
        let edges: Vec<EdgeIndex> = self
            .graph
            .edge_indices()
            .filter(|e| gone(&self.graph[*e].origins.keys().collect::<Vec<_>>()))
            .collect();
        for e in edges {
            let origins = &mut self.graph[e].origins;
            let dropped: Vec<String> = origins
                .keys()
                .filter(|s| !keep(s))
                .map(str::to_owned)
                .collect();
            for s in dropped {
                origins.remove(&s);
            }
            if origins.is_empty() {
                self.graph.remove_edge(e);
                applied.edges_removed += 1;
            }
        }
        let nodes: Vec<NodeIndex> = self.graph.node_indices().collect();
        for i in nodes {
            let node = &mut self.graph[i];
            let dropped: Vec<String> = node
                .seen_by
                .keys()
                .filter(|s| !keep(s))
                .map(str::to_owned)
                .collect();
            for s in &dropped {
                node.seen_by.remove(s);
                node.availability.remove(s);
            }
            for k in Kpi::ALL {
                let slot = node.kpis.slot(k);
                if slot.as_ref().is_some_and(|m| !keep(&m.source)) {
                    *slot = None;
                }
            }
            if node.seen_by.is_empty() {
                self.remove(i);
                applied.nodes_removed += 1;
            }
        }
        applied
    }

    /// Forgets what `source` has not seen since `now - forget_after`.
    fn forget(&mut self, source: &str, now: u64, applied: &mut Applied) {
        let horizon = now.saturating_sub(millis(self.settings.forget_after));
        let stale_edges: Vec<EdgeIndex> = self
            .graph
            .edge_indices()
            .filter(|e| {
                self.graph[*e]
                    .origins
                    .get(source)
                    .is_some_and(|o| o.seen.last < horizon)
            })
            .collect();
        for e in stale_edges {
            let origins = &mut self.graph[e].origins;
            origins.remove(source);
            if origins.is_empty() {
                self.graph.remove_edge(e);
                applied.edges_removed += 1;
            }
        }
        let stale_nodes: Vec<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|i| {
                let n = &self.graph[*i];
                n.seen_by.get(source).is_some_and(|s| s.last < horizon)
                    || Kpi::ALL.iter().any(|k| {
                        n.kpis
                            .get(*k)
                            .is_some_and(|m| m.source == source && m.at < horizon)
                    })
            })
            .collect();
        for i in stale_nodes {
            let node = &mut self.graph[i];
            if node.seen_by.get(source).is_some_and(|s| s.last < horizon) {
                node.seen_by.remove(source);
                node.availability.remove(source);
            }
            for k in Kpi::ALL {
                let slot = node.kpis.slot(k);
                if slot
                    .as_ref()
                    .is_some_and(|m| m.source == source && m.at < horizon)
                {
                    *slot = None;
                }
            }
            if node.seen_by.is_empty() {
                self.remove(i);
                applied.nodes_removed += 1;
            }
        }
    }

    fn remove(&mut self, i: NodeIndex) {
        if let Some(node) = self.graph.remove_node(i) {
            self.index.remove(&node.id);
            for a in &node.addresses {
                if self.addresses.get(a) == Some(&i) {
                    self.addresses.remove(a);
                }
            }
        }
    }

    /// Each source's availability of `node`, from sources that saw it within `fresh_for` of
    /// `now`: a count from a source that has been down for long says nothing of now.
    fn fresh_availability<'a>(&self, node: &'a Node, now: u64) -> Vec<(&'a str, Availability)> {
        let fresh_for = millis(self.settings.health.fresh_for);
        node.availability
            .iter()
            .filter(|(s, _)| {
                node.seen_by
                    .get(s)
                    .is_some_and(|seen| now.saturating_sub(seen.last) <= fresh_for)
            })
            .map(|(s, a)| (s, *a))
            .collect()
    }

    /// A node's health judged on its own signals (KPIs and availability), members aside.
    fn own_health(&self, i: NodeIndex, now: u64) -> HealthReport {
        let node = &self.graph[i];
        let availability = self.fresh_availability(node, now);
        self.settings.health.evaluate(
            Signals {
                kpis: &node.kpis,
                availability: &availability,
                members: &[],
            },
            now,
        )
    }

    fn health_at(&self, i: NodeIndex, now: u64) -> HealthReport {
        let node = &self.graph[i];
        let members: Vec<Health> = self
            .graph
            .edges_directed(i, Direction::Incoming)
            .filter(|e| e.weight().kind == EdgeKind::PartOf)
            .map(|e| self.own_health(e.source(), now).health)
            .collect();
        let availability = self.fresh_availability(node, now);
        self.settings.health.evaluate(
            Signals {
                kpis: &node.kpis,
                availability: &availability,
                members: &members,
            },
            now,
        )
    }

    /// A node's health at `now`: its own signals and its members' (see [`crate::health`]).
    pub fn health(&self, id: &NodeId, now: u64) -> Option<HealthReport> {
        self.index.get(id).map(|i| self.health_at(*i, now))
    }

    /// The steps out of `i` a walk takes: (neighbour, edge).
    fn steps(&self, i: NodeIndex, walk: Walk) -> impl Iterator<Item = (NodeIndex, &Edge)> {
        // Dependents: callers (incoming calls) and owners (outgoing part-of).
        // Dependencies: callees (outgoing calls) and members (incoming part-of).
        let (calls, part_of) = match walk {
            Walk::Dependents => (Direction::Incoming, Direction::Outgoing),
            Walk::Dependencies => (Direction::Outgoing, Direction::Incoming),
        };
        let far = move |e: petgraph::stable_graph::EdgeReference<'_, Edge>, dir| {
            if dir == Direction::Incoming {
                e.source()
            } else {
                e.target()
            }
        };
        self.graph
            .edges_directed(i, calls)
            .filter(|e| e.weight().kind == EdgeKind::Calls)
            .map(move |e| (far(e, calls), e.weight()))
            .chain(
                self.graph
                    .edges_directed(i, part_of)
                    .filter(|e| e.weight().kind == EdgeKind::PartOf)
                    .map(move |e| (far(e, part_of), e.weight())),
            )
    }

    /// Everything reached from `id` walking `walk`, breadth first, to `depth` steps, at most
    /// `limit` nodes; `None` when `id` is not in the graph.
    pub fn walk(&self, id: &NodeId, walk: Walk, depth: u32, limit: usize) -> Option<Vec<Reached>> {
        self.walk_within(id, walk, depth, limit, &|_| true)
    }

    /// [`Self::walk`] through the nodes `visible` keeps only: the others are neither answered
    /// nor walked through, so nothing of them shows (not even as a `via`), and `limit` counts
    /// only what is answered. For a reader allowed to see part of the graph.
    pub fn walk_within(
        &self,
        id: &NodeId,
        walk: Walk,
        depth: u32,
        limit: usize,
        visible: &dyn Fn(&NodeId) -> bool,
    ) -> Option<Vec<Reached>> {
        let start = *self.index.get(id)?;
        // A bit per node index: far cheaper than a set of indices on walks of thousands.
        let mut seen = self.graph.visit_map();
        seen.visit(start);
        let mut queue = VecDeque::from([(start, 0u32)]);
        let mut out = Vec::new();
        while let Some((i, d)) = queue.pop_front() {
            if d >= depth {
                continue;
            }
            for (next, edge) in self.steps(i, walk) {
                if out.len() >= limit {
                    return Some(out);
                }
                if !seen.visit(next) || !visible(&self.graph[next].id) {
                    continue;
                }
                out.push(Reached {
                    id: self.graph[next].id.clone(),
                    depth: d + 1,
                    via: self.graph[i].id.clone(),
                    edge: edge.kind,
                    rate_rps: edge.rate_rps(),
                    error_ratio: edge.error_ratio(),
                });
                queue.push_back((next, d + 1));
            }
        }
        Some(out)
    }

    /// What a disruption of `id` reaches, to `depth` steps, at most `limit` dependents: each
    /// with its share of `id`'s traffic and whether `id` is its only healthy upstream.
    pub fn blast_radius(&self, id: &NodeId, depth: u32, limit: usize, now: u64) -> Vec<Dependent> {
        let Some(&start) = self.index.get(id) else {
            return Vec::new();
        };
        let Some(reached) = self.walk(id, Walk::Dependents, depth, limit) else {
            return Vec::new();
        };
        let incoming: f64 = self
            .graph
            .edges_directed(start, Direction::Incoming)
            .filter(|e| e.weight().kind == EdgeKind::Calls)
            .filter_map(|e| e.weight().rate_rps())
            .sum();
        reached
            .into_iter()
            .filter_map(|r| {
                let i = *self.index.get(&r.id)?;
                let direct = r.depth == 1;
                let traffic_share = (direct && r.edge == EdgeKind::Calls && incoming > 0.0)
                    .then(|| r.rate_rps.map(|rate| rate / incoming))
                    .flatten();
                let only_healthy_upstream = direct && {
                    // The dependent's other upstreams of the same relation, apart from `id`.
                    let mut others = self
                        .steps(i, Walk::Dependencies)
                        .filter(|(_, e)| e.kind == r.edge)
                        .map(|(o, _)| o)
                        .filter(|o| *o != start);
                    others.all(|o| {
                        let h = if r.edge == EdgeKind::PartOf {
                            self.own_health(o, now).health
                        } else {
                            self.health_at(o, now).health
                        };
                        // A node of unknown health is no fallback either.
                        matches!(h, Health::Unhealthy | Health::Unknown)
                    })
                };
                Some(Dependent {
                    health: self.health_at(i, now).health,
                    id: r.id,
                    depth: r.depth,
                    traffic_share,
                    only_healthy_upstream,
                })
            })
            .collect()
    }

    /// The node an event's resource names: a node id (`service:shop/web`), `namespace/name`
    /// of a service (a Kubernetes deployment), or a bare name: a service of the identity
    /// rules' default namespace, a group, or a container, the first the graph has.
    pub fn resolve(&self, resource: &str) -> Option<NodeId> {
        let mut candidates = Vec::new();
        if let Ok(id) = NodeId::parse(resource) {
            candidates.push(id);
        } else if let Some((ns, name)) = resource.split_once('/') {
            candidates.extend(NodeId::service(ns, name).ok());
        } else {
            let ns = &self.settings.identity.default_namespace;
            candidates.extend(NodeId::service(ns, resource).ok());
            candidates.extend(NodeId::group(resource).ok());
            candidates.extend(NodeId::container(resource).ok());
        }
        candidates
            .into_iter()
            .find(|id| self.index.contains_key(id))
    }

    /// What the graph says at `now` of the node an event's resource names ([`Self::resolve`]),
    /// for trigger conditions (`event.graph`); `None` when it names no node:
    ///
    /// | key | value |
    /// | --- | --- |
    /// | `node` | the node's id |
    /// | `health` | its health: `healthy`, `degraded`, `unhealthy`, `unknown` |
    /// | `upstreams` | what it depends on, one step away: id → health |
    /// | `dependents` | what depends on it, one step away: id → health |
    /// | `unhealthy_upstreams`, `unhealthy_dependents` | how many of those are unhealthy |
    ///
    /// At most [`MAX_FACT_NEIGHBOURS`] of each list, so that what is stored with each event
    /// stays small; the counts are over every neighbour (up to [`MAX_FACT_COUNTED`]).
    pub fn facts(&self, resource: &str, now: u64) -> Option<serde_json::Value> {
        let id = self.resolve(resource)?;
        let health = |id: &NodeId| self.health(id, now).map_or(Health::Unknown, |h| h.health);
        let around = |walk| {
            // Counted over every neighbour (up to MAX_FACT_COUNTED), listed up to the bound:
            // `unhealthy_dependents == 0` must not pass because the unhealthy one was not listed.
            let reached = self
                .walk(&id, walk, 1, MAX_FACT_COUNTED)
                .unwrap_or_default();
            let mut unhealthy = 0usize;
            let mut map = serde_json::Map::new();
            for r in &reached {
                let h = health(&r.id);
                unhealthy += usize::from(h == Health::Unhealthy);
                if map.len() < MAX_FACT_NEIGHBOURS {
                    map.insert(r.id.to_string(), h.name().into());
                }
            }
            (serde_json::Value::Object(map), unhealthy)
        };
        let (upstreams, unhealthy_upstreams) = around(Walk::Dependencies);
        let (dependents, unhealthy_dependents) = around(Walk::Dependents);
        Some(serde_json::json!({
            "node": id.as_str(),
            "health": health(&id).name(),
            "upstreams": upstreams,
            "dependents": dependents,
            "unhealthy_upstreams": unhealthy_upstreams,
            "unhealthy_dependents": unhealthy_dependents,
        }))
    }

    /// Whether `facts` has the shape [`Self::facts`] gives, within its bounds: what a replica
    /// checks before it matches an event on facts another replica computed (the cluster's event
    /// log is outside input like any other).
    pub fn valid_facts(facts: &serde_json::Value) -> bool {
        let Some(map) = facts.as_object() else {
            return false;
        };
        let health = |v: &serde_json::Value| {
            v.as_str().is_some_and(|h| {
                [
                    Health::Healthy,
                    Health::Degraded,
                    Health::Unhealthy,
                    Health::Unknown,
                ]
                .iter()
                .any(|k| k.name() == h)
            })
        };
        let neighbours = |v: Option<&serde_json::Value>| {
            v.and_then(serde_json::Value::as_object).is_some_and(|m| {
                m.len() <= MAX_FACT_NEIGHBOURS
                    && m.iter()
                        .all(|(id, h)| NodeId::parse(id).is_ok() && health(h))
            })
        };
        let count = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_u64).is_some();
        map.len() == 6
            && map
                .get("node")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|id| NodeId::parse(id).is_ok())
            && map.get("health").is_some_and(health)
            && neighbours(map.get("upstreams"))
            && neighbours(map.get("dependents"))
            && count(map.get("unhealthy_upstreams"))
            && count(map.get("unhealthy_dependents"))
    }

    /// `id` and every node within `depth` steps of it either way.
    pub fn around(&self, id: &NodeId, depth: u32, limit: usize) -> Option<BTreeSet<NodeId>> {
        let mut ids = BTreeSet::from([id.clone()]);
        for walk in [Walk::Dependents, Walk::Dependencies] {
            ids.extend(self.walk(id, walk, depth, limit)?.into_iter().map(|r| r.id));
        }
        Some(ids)
    }

    /// Everything the graph holds, for storage.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: Snapshot::VERSION,
            nodes: self.graph.node_weights().cloned().collect(),
            edges: self
                .edges()
                .map(|(from, to, edge)| StoredEdge {
                    from: from.clone(),
                    to: to.clone(),
                    edge: edge.clone(),
                })
                .collect(),
        }
    }

    /// A graph holding what `snapshot` held (within this graph's limits).
    pub fn restore(settings: GraphSettings, snapshot: Snapshot) -> HealthGraph {
        let mut graph = HealthGraph::new(settings);
        let mut applied = Applied::default();
        for node in snapshot.nodes {
            // A stored graph holds each id once; a corrupt one is not trusted to.
            if graph.index.contains_key(&node.id) {
                continue;
            }
            let Some(i) = graph.ensure(&node.id, &mut applied) else {
                break;
            };
            for a in &node.addresses {
                graph.addresses.insert(a.clone(), i);
            }
            graph.graph[i] = node;
        }
        for e in snapshot.edges {
            let (Some(&from), Some(&to)) = (graph.index.get(&e.from), graph.index.get(&e.to))
            else {
                continue;
            };
            if graph.graph.edge_count() >= graph.settings.max_edges {
                break;
            }
            graph.graph.add_edge(from, to, e.edge);
        }
        graph
    }
}

/// An edge as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEdge {
    /// Where it starts.
    pub from: NodeId,
    /// Where it ends.
    pub to: NodeId,
    /// The edge.
    #[serde(flatten)]
    pub edge: Edge,
}

/// The whole graph as stored, so that a restart does not start blind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The format's version.
    pub version: u32,
    /// Every node.
    pub nodes: Vec<Node>,
    /// Every edge.
    pub edges: Vec<StoredEdge>,
}

impl Snapshot {
    /// The version this crate writes and reads.
    pub const VERSION: u32 = 1;
}
