//! The simulated fleet as a health graph source: `Simulation::observe` and the fleet file's
//! `[[dependencies]]`.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use grace_executor::Clock;
use grace_graph::{
    Availability, EdgeKind, GraphSettings, Health, HealthGraph, Identity, Kpi, NodeId, Observation,
    Owner, Walk,
};
use grace_sim::{Fleet, FleetError, Simulation};

/// A group serving `api`, two `web` containers (one unhealthy), a deployment, and calls between
/// them, one to a workload only its dependency names.
const FLEET: &str = r#"
[[groups]]
name = "api-asg"
min_size = 2
max_size = 6
desired_capacity = 3
warmup = "60s"

[[services]]
name = "api"
group = "api-asg"
load_rps = 300
rps_per_instance = 200
base_latency_ms = 100

[[containers]]
name = "web-1"
image = "web:1"
labels = { app = "web" }

[[containers]]
name = "web-2"
image = "web:1"
labels = { app = "web" }
health = "unhealthy"

[[deployments]]
namespace = "shop"
name = "checkout"
replicas = 2
rollout = "30s"

[[dependencies]]
from = "web"
to = "api"
rps = 120
error_ratio = 0.01

[[dependencies]]
from = "shop/checkout"
to = "default/api"
rps = 80

[[dependencies]]
from = "api"
to = "shop/payments"
"#;

const SOURCE: &str = "sim";

fn sim() -> Simulation {
    Simulation::new(&Fleet::from_toml(FLEET).unwrap())
}

fn id(text: &str) -> NodeId {
    NodeId::parse(text).unwrap()
}

fn observe(sim: &Simulation) -> Observation {
    let found = sim.observe(&Identity::default(), usize::MAX);
    assert_eq!(found.left_out, 0);
    found.observation
}

/// The graph after one observation of `sim`.
fn graph(sim: &Simulation) -> HealthGraph {
    let mut graph = HealthGraph::new(GraphSettings::default());
    graph.apply(SOURCE, &observe(sim), sim.clock().now_millis());
    graph
}

/// What a walk of one step from `from` reaches: (node, edge kind).
fn step(graph: &HealthGraph, from: &str, walk: Walk) -> BTreeSet<(String, EdgeKind)> {
    graph
        .walk(&id(from), walk, 1, 100)
        .unwrap()
        .into_iter()
        .map(|r| (r.id.to_string(), r.edge))
        .collect()
}

fn set(items: &[(&str, EdgeKind)]) -> BTreeSet<(String, EdgeKind)> {
    items.iter().map(|(s, k)| ((*s).to_owned(), *k)).collect()
}

fn availability(graph: &HealthGraph, node: &str) -> (u32, u32) {
    let Availability { ready, total } = graph.node(&id(node)).unwrap().availability[SOURCE];
    (ready, total)
}

#[test]
fn an_observed_fleet_shows_who_depends_on_a_service_and_what_it_depends_on() {
    let graph = graph(&sim());
    assert_eq!(
        step(&graph, "service:default/api", Walk::Dependents),
        set(&[
            ("service:default/web", EdgeKind::Calls),
            ("service:shop/checkout", EdgeKind::Calls),
        ])
    );
    assert_eq!(
        step(&graph, "service:default/api", Walk::Dependencies),
        set(&[
            ("group:api-asg", EdgeKind::PartOf),
            ("service:shop/payments", EdgeKind::Calls),
        ])
    );
    assert_eq!(
        step(&graph, "service:default/web", Walk::Dependencies),
        set(&[
            ("container:web-1", EdgeKind::PartOf),
            ("container:web-2", EdgeKind::PartOf),
            ("service:default/api", EdgeKind::Calls),
        ])
    );
    let web = graph
        .walk(&id("service:default/api"), Walk::Dependents, 1, 100)
        .unwrap()
        .into_iter()
        .find(|r| r.id == id("service:default/web"))
        .unwrap();
    assert_eq!((web.rate_rps, web.error_ratio), (Some(120.0), Some(0.01)));
}

#[test]
fn an_instances_dependents_reach_the_callers_of_the_service_its_group_serves() {
    let graph = graph(&sim());
    let reached: BTreeSet<String> = graph
        .walk(&id("instance:i-api-asg-0001"), Walk::Dependents, 3, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(
        reached,
        [
            "group:api-asg",
            "service:default/api",
            "service:default/web",
            "service:shop/checkout",
        ]
        .map(str::to_owned)
        .into()
    );
}

#[test]
fn a_services_kpis_are_the_latency_model_and_its_offered_load() {
    let sim = sim();
    let graph = graph(&sim);
    let now = sim.clock().now_millis();
    let kpis = &graph.node(&id("service:default/api")).unwrap().kpis;
    let model = &sim.snapshot().services[0];
    // 3 instances of 200 rps for 300 rps: u = 0.5, p95 = 100 / (1 - 0.5).
    assert_eq!(model.p95_latency_ms, 200.0);
    assert_eq!(
        kpis.fresh(Kpi::LatencyP95Ms, now, Duration::from_secs(1)),
        Some(model.p95_latency_ms)
    );
    assert_eq!(
        kpis.fresh(Kpi::TrafficRps, now, Duration::from_secs(1)),
        Some(300.0)
    );
}

#[tokio::test]
async fn scaling_a_group_changes_its_availability_on_the_next_observe() {
    let sim = sim();
    let mut graph = graph(&sim);
    assert_eq!(availability(&graph, "group:api-asg"), (3, 3));
    let scaling = sim.executors().scaling.default_provider().unwrap();
    scaling
        .executor()
        .set_desired_capacity("api-asg", 5)
        .await
        .unwrap();

    let now = sim.clock().now_millis();
    graph.apply(SOURCE, &observe(&sim), now);
    assert_eq!(availability(&graph, "group:api-asg"), (3, 5));
    assert_eq!(availability(&graph, "instance:i-api-asg-0005"), (0, 1));
    let group = graph.node(&id("group:api-asg")).unwrap();
    assert_eq!(group.attributes["desired_capacity"], "5");
    assert_eq!(
        graph.health(&id("group:api-asg"), now).unwrap().health,
        Health::Degraded
    );

    sim.clock().advance(Duration::from_secs(60));
    let now = sim.clock().now_millis();
    graph.apply(SOURCE, &observe(&sim), now);
    assert_eq!(availability(&graph, "group:api-asg"), (5, 5));
    assert_eq!(
        graph
            .node(&id("instance:i-api-asg-0005"))
            .unwrap()
            .attributes["lifecycle_state"],
        "InService"
    );
    // The latency model sees the new capacity too: u = 0.3, p95 = 100 / 0.7.
    let p95 = graph
        .node(&id("service:default/api"))
        .unwrap()
        .kpis
        .fresh(Kpi::LatencyP95Ms, now, Duration::from_secs(1))
        .unwrap();
    assert!((p95 - 100.0 / 0.7).abs() < 1e-9, "{p95}");
}

#[tokio::test]
async fn containers_are_ready_only_running_and_healthy_and_make_up_their_workload() {
    let sim = sim();
    let graph = graph(&sim);
    assert_eq!(availability(&graph, "container:web-1"), (1, 1));
    assert_eq!(availability(&graph, "container:web-2"), (0, 1));
    assert_eq!(availability(&graph, "service:default/web"), (1, 2));
    let web2 = graph.node(&id("container:web-2")).unwrap();
    assert_eq!(
        (
            web2.attributes["image"].as_str(),
            web2.attributes["state"].as_str(),
            web2.attributes["health"].as_str(),
            web2.attributes["label:app"].as_str(),
        ),
        ("web:1", "running", "unhealthy", "web")
    );

    let containers = sim.executors().containers.default_provider().unwrap();
    containers.executor().stop("web-1").await.unwrap();
    let graph = self::graph(&sim);
    assert_eq!(availability(&graph, "container:web-1"), (0, 1));
    assert_eq!(availability(&graph, "service:default/web"), (0, 2));
    assert_eq!(
        graph
            .health(&id("service:default/web"), sim.clock().now_millis())
            .unwrap()
            .health,
        Health::Unhealthy
    );
}

#[tokio::test]
async fn a_deployments_availability_is_its_ready_over_desired_replicas() {
    let sim = sim();
    assert_eq!(availability(&graph(&sim), "service:shop/checkout"), (2, 2));
    let kubernetes = sim.executors().kubernetes.default_provider().unwrap();
    kubernetes
        .executor()
        .scale_deployment("shop", "checkout", 4)
        .await
        .unwrap();
    assert_eq!(availability(&graph(&sim), "service:shop/checkout"), (2, 4));
    sim.clock().advance(Duration::from_secs(30));
    assert_eq!(availability(&graph(&sim), "service:shop/checkout"), (4, 4));
}

#[test]
fn observe_reports_at_most_max_nodes_and_edges_and_counts_the_rest() {
    let sim = sim();
    let all = observe(&sim);
    // api, checkout, web; the group and its 3 instances; 2 containers; 3 calls.
    let total = all.nodes.len() + all.edges.len();
    assert_eq!((all.nodes.len(), all.edges.len()), (9, 3));
    for max in 0..=total + 1 {
        let found = sim.observe(&Identity::default(), max);
        let o = &found.observation;
        let reported = o.nodes.len() + o.edges.len();
        assert_eq!(reported, max.min(total), "max {max}");
        assert_eq!(found.left_out, total - reported, "max {max}");
        // Nothing reported names a node left out: applied, the graph holds only what was
        // reported.
        let mut graph = HealthGraph::new(GraphSettings::default());
        graph.apply(SOURCE, o, sim.clock().now_millis());
        // Edges come after every node: only `shop/payments`, which only an edge names, is
        // added by one.
        let ids: BTreeSet<&NodeId> = o
            .nodes
            .iter()
            .map(|n| &n.id)
            .chain(o.edges.iter().flat_map(|e| [&e.from, &e.to]))
            .collect();
        assert!(o.edges.is_empty() || o.nodes.len() == all.nodes.len());
        assert_eq!(graph.node_count(), ids.len(), "max {max}");
        for node in &o.nodes {
            for owner in &node.part_of {
                let Owner::Node(owner) = owner else {
                    panic!("the simulation names owners by id: {owner:?}")
                };
                assert!(o.nodes.iter().any(|n| n.id == *owner), "max {max}: {owner}");
            }
        }
    }
}

#[test]
fn the_default_fleet_observes_its_dependencies() {
    let sim = Simulation::new(&Fleet::default_fleet());
    let graph = graph(&sim);
    assert_eq!(
        step(&graph, "service:default/api-service", Walk::Dependents),
        set(&[("service:default/web", EdgeKind::Calls)])
    );
    assert_eq!(
        step(&graph, "service:shop/cart", Walk::Dependents),
        set(&[("service:shop/checkout", EdgeKind::Calls)])
    );
}

/// The field and message of a fleet with `dependency` as its one `[[dependencies]]` entry.
fn refused(dependency: &str) -> (String, String) {
    match Fleet::from_toml(&format!("[[dependencies]]\n{dependency}")) {
        Err(FleetError::Invalid { field, message }) => (field, message),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn a_dependency_with_an_unknown_field_is_refused_naming_it() {
    let (field, message) = refused("from = \"a\"\nto = \"b\"\nweight = 3\n");
    assert_eq!(field, "dependencies[0].weight");
    assert!(message.contains("unknown field `weight`"), "{message}");
}

#[test]
fn a_dependency_error_ratio_above_one_is_refused_naming_it() {
    let (field, message) = refused("from = \"a\"\nto = \"b\"\nerror_ratio = 2.0\n");
    assert_eq!(field, "dependencies[0].error_ratio");
    assert_eq!(message, "`2` is above 1: a ratio is 0 to 1");
}

#[test]
fn a_dependency_with_negative_or_infinite_rps_is_refused_naming_it() {
    let (field, _) = refused("from = \"a\"\nto = \"b\"\nrps = -1.0\n");
    assert_eq!(field, "dependencies[0].rps");
    let (field, _) = refused("from = \"a\"\nto = \"b\"\nrps = inf\n");
    assert_eq!(field, "dependencies[0].rps");
}

#[test]
fn a_dependency_with_an_empty_name_is_refused_naming_it() {
    let (field, message) = refused("from = \"a\"\nto = \"\"\n");
    assert_eq!(field, "dependencies[0].to");
    assert_eq!(message, "must not be empty");
    let (field, _) = refused("from = \" \"\nto = \"b\"\n");
    assert_eq!(field, "dependencies[0].from");
}

#[test]
fn a_dependency_end_that_is_no_workload_is_refused_naming_it() {
    for bad in ["a/b/c", "/b", "shop/", "we b", "a:b"] {
        let (field, message) = refused(&format!("from = \"{bad}\"\nto = \"b\"\n"));
        assert_eq!(field, "dependencies[0].from", "{bad}");
        assert!(message.contains("is not a workload"), "{bad}: {message}");
    }
}

#[test]
fn a_dependency_on_itself_or_listed_twice_is_refused() {
    let (field, message) = refused("from = \"api\"\nto = \"default/api\"\n");
    assert_eq!(field, "dependencies[0].to");
    assert!(message.contains("does not call itself"), "{message}");
    let twice = "[[dependencies]]\nfrom = \"a\"\nto = \"b\"\n[[dependencies]]\nfrom = \"default/a\"\nto = \"b\"\n";
    let error = Fleet::from_toml(twice).unwrap_err();
    assert_eq!(
        error.to_string(),
        "dependencies[1].to: another dependency goes from `default/a` to `default/b`"
    );
}

#[test]
fn a_bare_dependency_name_is_a_workload_in_namespace_default() {
    let fleet = Fleet::from_toml(
        "[[dependencies]]\nfrom = \"web\"\nto = \"shop/checkout\"\nerror_ratio = 0.5\n",
    )
    .unwrap();
    let d = &fleet.dependencies()[0];
    assert_eq!(
        (d.from.as_str(), d.to.as_str(), d.rps, d.error_ratio),
        (
            "service:default/web",
            "service:shop/checkout",
            None,
            Some(0.5)
        )
    );
}
