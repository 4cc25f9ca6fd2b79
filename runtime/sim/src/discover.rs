//! The simulated fleet as the health graph sees it: [`Simulation::observe`], whose
//! documentation says what becomes which node and edge, and how the answer is bounded.

use std::collections::{BTreeMap, BTreeSet};

use grace_executor::containers::{Container, ContainerState, Health};
use grace_executor::scaling::{Instance, LifecycleState};
use grace_graph::{
    Discovered, Identity, Kpi, MAX_ATTRIBUTES, NodeId, Observation, ObservedEdge, ObservedKpi,
    ObservedNode, Owner,
};

use crate::containers::health_name;
use crate::fleet::DEFAULT_NAMESPACE;
use crate::simulation::{Simulation, World};

/// The attributes of a container node besides its labels (`image`, `state`, `health`): the
/// labels get what the graph keeps beyond these.
const OWN_ATTRIBUTES: usize = 3;

impl Simulation {
    /// The fleet at the simulation's virtual now as one discovery source's observation for
    /// the health graph, so that dry-runs see one. The simulation stands in for every source
    /// (AWS, Docker, Kubernetes, the mesh), so its nodes look like theirs:
    ///
    /// | node | attributes | availability | KPIs | part of |
    /// | --- | --- | --- | --- | --- |
    /// | `service:default/<name>` per `[[services]]` entry | `group` | | `latency_p95_ms`, `traffic_rps` | |
    /// | `service:<namespace>/<name>` per deployment | `replicas` | ready / desired replicas | | |
    /// | `service:<namespace>/<workload>` per workload containers' labels name by `identity` ([`Identity::service`]) | | ready / all of its containers | | |
    /// | `group:<name>` | `min_size`, `max_size`, `desired_capacity` | instances in service and healthy / all its instances | | each `[[services]]` entry it serves |
    /// | `instance:<id>` | `lifecycle_state`, `health_status` (AWS's spelling) | `1/1` in service and healthy, else `0/1` | | its group |
    /// | `container:<name>` | `image`, `state`, `health`, `label:<key>` per label | `1/1` running and healthy (or with no health check), else `0/1` | | the workload its labels name |
    ///
    /// A workload that is several of these (a deployment and containers labelled with its
    /// name, say) is one node: its attributes and its parts add up. A `[[services]]` entry's
    /// KPIs are the simulation's own model, as its built-in metrics answer them:
    /// `latency_p95_ms` is the latency model's p95 at its group's instances in service now
    /// (`service_latency_p95_ms`), `traffic_rps` its offered load (`service_load_rps`). Values
    /// seeded for queries ([`Simulation::seed_series`]) answer queries; they are not the model
    /// and are not reported.
    ///
    /// Each of the fleet file's `[[dependencies]]` is a calls edge from its `from` to its `to`,
    /// with its `rps` and `error_ratio`; reported as observed, not declared, since the
    /// simulation plays the mesh that would measure it.
    ///
    /// At most `max` nodes and edges are reported, in this order: workloads (by id), each group
    /// followed by its instances (groups by name, instances in launch order), containers (by
    /// name), dependencies (in file order); the others are counted in
    /// [`Discovered::left_out`]. Owners come before their parts and edges after every node, so
    /// nothing reported names a node left out: a part is part of its owner only when the owner
    /// is reported, and edges are reported only when every node is. KPIs go with their
    /// workload's node and do not count against the bound. Availability counts every part,
    /// reported or not: a bound on the answer's size must not make a half-stopped workload look
    /// healthy. Names that are no valid node ids (a `[[services]]` name with a `/`, say) are
    /// skipped, a group with its instances.
    pub fn observe(&self, identity: &Identity, max: usize) -> Discovered {
        self.with_world(|world, now| observe(world, identity, max, now))
    }
}

/// One workload node, as far as the fleet makes it up.
#[derive(Default)]
struct Workload {
    attributes: BTreeMap<&'static str, String>,
    /// Ready and all parts, when a deployment or containers make it up.
    parts: Option<(u32, u32)>,
    kpis: Vec<(Kpi, f64)>,
}

impl Workload {
    fn add_parts(&mut self, ready: u32, total: u32) {
        let (r, t) = self.parts.unwrap_or((0, 0));
        self.parts = Some((r.saturating_add(ready), t.saturating_add(total)));
    }
}

/// An observation filling up to its bound.
struct Bounded {
    max: usize,
    observation: Observation,
    /// The nodes reported so far, for owners.
    reported: BTreeSet<NodeId>,
    left_out: usize,
}

impl Bounded {
    /// Whether one more node or edge fits; counts it as left out if not.
    fn room(&mut self) -> bool {
        let fits = self.observation.nodes.len() + self.observation.edges.len() < self.max;
        if !fits {
            self.left_out = self.left_out.saturating_add(1);
        }
        fits
    }

    /// Adds `node`, part of those of `owners` that are reported, if it fits.
    fn node(&mut self, mut node: ObservedNode, owners: &[NodeId]) -> bool {
        if !self.room() {
            return false;
        }
        for owner in owners.iter().filter(|o| self.reported.contains(*o)) {
            node = node.part_of(Owner::Node(owner.clone()));
        }
        self.reported.insert(node.id.clone());
        self.observation.nodes.push(node);
        true
    }

    fn edge(&mut self, edge: ObservedEdge) {
        if self.room() {
            self.observation.edges.push(edge);
        }
    }
}

/// The observation of `world` at `now` (see [`Simulation::observe`]).
fn observe(world: &World, identity: &Identity, max: usize, now: u64) -> Discovered {
    let mut workloads = BTreeMap::<NodeId, Workload>::new();
    // Group name → the `[[services]]` entries it serves.
    let mut served = BTreeMap::<&str, Vec<NodeId>>::new();
    for s in &world.services {
        let Ok(id) = NodeId::service(DEFAULT_NAMESPACE, &s.name) else {
            tracing::debug!(
                service = s.name,
                "a service whose name is no node id is not observed"
            );
            continue;
        };
        // As the snapshot and the built-in metrics read it.
        let in_service = world.group(&s.group).map_or(0, |g| g.in_service_at(now));
        let w = workloads.entry(id.clone()).or_default();
        w.attributes.insert("group", s.group.clone());
        w.kpis
            .push((Kpi::LatencyP95Ms, s.p95_latency_ms(in_service)));
        w.kpis.push((Kpi::TrafficRps, s.load_rps));
        served.entry(s.group.as_str()).or_default().push(id);
    }
    for d in &world.deployments {
        let Ok(id) = NodeId::service(&d.namespace, &d.name) else {
            continue;
        };
        let status = d.status(now);
        let w = workloads.entry(id).or_default();
        w.attributes.insert("replicas", status.replicas.to_string());
        w.add_parts(status.ready_replicas, status.replicas);
    }
    let containers: Vec<(Container, Option<NodeId>)> = world
        .containers
        .all()
        .into_iter()
        .map(|c| {
            let service = identity.service(&c.labels);
            (c, service)
        })
        .collect();
    for (c, service) in &containers {
        if let Some(service) = service {
            workloads
                .entry(service.clone())
                .or_default()
                .add_parts(u32::from(container_ready(c)), 1);
        }
    }

    let mut out = Bounded {
        max,
        observation: Observation::default(),
        reported: BTreeSet::new(),
        left_out: 0,
    };
    for (id, w) in workloads {
        let mut node = ObservedNode::new(id.clone());
        for (key, value) in w.attributes {
            node = node.attribute(key, value);
        }
        if let Some((ready, total)) = w.parts {
            node = node.available(ready, total);
        }
        if out.node(node, &[]) {
            out.observation
                .kpis
                .extend(w.kpis.into_iter().map(|(kpi, value)| ObservedKpi {
                    node: id.clone(),
                    kpi,
                    value,
                }));
        }
    }
    for g in &world.groups {
        let Ok(id) = NodeId::group(&g.name) else {
            tracing::debug!(
                group = g.name,
                "a group whose name is no node id is not observed"
            );
            continue;
        };
        let group = g.describe(now);
        let node = ObservedNode::new(id.clone())
            .attribute("min_size", group.min_size.to_string())
            .attribute("max_size", group.max_size.to_string())
            .attribute("desired_capacity", group.desired_capacity.to_string())
            .available(group.in_service(), count(group.instances.len()));
        let services = served.get(g.name.as_str()).map_or(&[][..], Vec::as_slice);
        out.node(node, services);
        let owner = [id];
        for instance in &group.instances {
            let Ok(id) = NodeId::instance(&instance.id) else {
                continue;
            };
            let node = ObservedNode::new(id)
                .attribute("lifecycle_state", lifecycle_state(instance.lifecycle_state))
                .attribute(
                    "health_status",
                    if instance.healthy {
                        "Healthy"
                    } else {
                        "Unhealthy"
                    },
                )
                .available(u32::from(serving(instance)), 1);
            out.node(node, &owner);
        }
    }
    for (c, service) in containers {
        let Ok(id) = NodeId::container(&c.name) else {
            continue;
        };
        let mut node = ObservedNode::new(id)
            .attribute("image", c.image.as_str())
            .attribute("state", state_name(c.state))
            .attribute("health", health_name(c.health))
            .available(u32::from(container_ready(&c)), 1);
        for (key, value) in c
            .labels
            .iter()
            .take(MAX_ATTRIBUTES.saturating_sub(OWN_ATTRIBUTES))
        {
            node = node.attribute(format!("label:{key}"), value.as_str());
        }
        out.node(node, service.as_slice());
    }
    for d in &world.dependencies {
        let mut edge = ObservedEdge::calls(d.from.clone(), d.to.clone());
        match d.rps {
            Some(rps) => edge = edge.traffic(rps, d.error_ratio),
            None => edge.error_ratio = d.error_ratio,
        }
        out.edge(edge);
    }
    Discovered {
        observation: out.observation,
        left_out: out.left_out,
    }
}

/// Whether an instance serves: in service and healthy, as
/// [`grace_executor::scaling::Group::in_service`] counts.
fn serving(instance: &Instance) -> bool {
    instance.lifecycle_state == LifecycleState::InService && instance.healthy
}

/// Whether a container is ready: running, and healthy if it has a health check.
fn container_ready(c: &Container) -> bool {
    c.state == ContainerState::Running && matches!(c.health, Health::Healthy | Health::None)
}

/// AWS's name of a lifecycle state, as the AWS discovery source reports it.
fn lifecycle_state(state: LifecycleState) -> &'static str {
    match state {
        LifecycleState::Pending => "Pending",
        LifecycleState::InService => "InService",
        LifecycleState::Terminating => "Terminating",
    }
}

/// Docker's name of a run state, as the Docker discovery source reports it.
fn state_name(state: ContainerState) -> &'static str {
    match state {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Paused => "paused",
        ContainerState::Restarting => "restarting",
        ContainerState::Exited => "exited",
        ContainerState::Dead => "dead",
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The simulated fleet's health graph, for the `graph` capability in dry-runs: built from
/// [`Simulation::observe`] at the virtual now on every read, so that it follows what the run
/// changed (a fleet is small; at most [`SIM_GRAPH_MAX`] nodes and edges).
pub(crate) struct SimGraph {
    pub(crate) sim: Simulation,
}

/// The most nodes and edges the simulated graph holds.
pub const SIM_GRAPH_MAX: usize = 100_000;

impl SimGraph {
    fn graph(&self) -> (grace_graph::HealthGraph, u64) {
        use grace_executor::Clock as _;
        let found = self.sim.observe(&Identity::default(), SIM_GRAPH_MAX);
        let now = self.sim.clock().now_millis();
        let mut graph = grace_graph::HealthGraph::new(grace_graph::GraphSettings::default());
        graph.apply(crate::PROVIDER, &found.observation, now);
        (graph, now)
    }
}

impl grace_executor::GraphReader for SimGraph {
    fn node(&self, id: &NodeId, limit: usize) -> Option<grace_graph::NodeDetail> {
        let (graph, now) = self.graph();
        graph.detail(id, now, limit)
    }

    fn walk(
        &self,
        id: &NodeId,
        walk: grace_graph::Walk,
        depth: u32,
        limit: usize,
        visible: &dyn Fn(&NodeId) -> bool,
    ) -> Option<Vec<(grace_graph::Reached, grace_graph::Health)>> {
        let (graph, now) = self.graph();
        grace_executor::graph::read_walk(&graph, id, walk, depth, limit, visible, now)
    }

    fn blast_radius(
        &self,
        id: &NodeId,
        depth: u32,
        limit: usize,
    ) -> Option<Vec<grace_graph::Dependent>> {
        let (graph, now) = self.graph();
        graph
            .node(id)
            .map(|_| graph.blast_radius(id, depth, limit, now))
    }

    fn identity(&self) -> Identity {
        Identity::default()
    }

    fn facts(&self, resource: &str) -> Option<serde_json::Value> {
        let (graph, now) = self.graph();
        graph.facts(resource, now)
    }
}
