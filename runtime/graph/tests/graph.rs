//! The health graph's behaviour, as the issue states it: one node per thing, edges with where
//! they came from, aging, dependents, blast radius, storage.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use grace_graph::{
    EdgeKind, GraphSettings, Health, HealthGraph, Kpi, NodeId, Observation, ObservedEdge,
    ObservedKpi, ObservedNode, Owner, Snapshot, Walk,
};

const MIN: u64 = 60_000;

fn svc(name: &str) -> NodeId {
    NodeId::service("shop", name).unwrap()
}

fn nodes(ids: &[NodeId]) -> Observation {
    Observation {
        nodes: ids.iter().cloned().map(ObservedNode::new).collect(),
        ..Observation::default()
    }
}

fn calls(edges: &[(&str, &str, f64)]) -> Observation {
    Observation {
        edges: edges
            .iter()
            .map(|(a, b, rate)| ObservedEdge::calls(svc(a), svc(b)).traffic(*rate, Some(0.0)))
            .collect(),
        ..Observation::default()
    }
}

fn graph() -> HealthGraph {
    HealthGraph::new(GraphSettings {
        forget_after: Duration::from_secs(600),
        ..GraphSettings::default()
    })
}

#[test]
fn the_same_service_seen_by_three_sources_is_one_node_listing_them() {
    let mut g = graph();
    g.apply("kubernetes", &nodes(&[svc("web")]), MIN);
    g.apply("prometheus-targets", &nodes(&[svc("web")]), 2 * MIN);
    g.apply("istio", &calls(&[("web", "db", 5.0)]), 3 * MIN);
    assert_eq!(g.node_count(), 2);
    let web = g.node(&svc("web")).unwrap();
    let sources: Vec<&str> = web.seen_by.keys().collect();
    assert_eq!(sources, ["istio", "kubernetes", "prometheus-targets"]);
    assert_eq!(web.first_seen(), MIN);
    assert_eq!(web.last_seen(), 3 * MIN);
}

#[test]
fn a_node_a_source_stops_reporting_is_forgotten_after_forget_after_of_answers() {
    let mut g = graph();
    g.apply("kubernetes", &nodes(&[svc("web"), svc("db")]), 0);
    g.apply("kubernetes", &nodes(&[svc("db")]), 5 * MIN);
    assert!(
        g.node(&svc("web")).is_some(),
        "gone for 5 of 10 minutes: kept"
    );
    let applied = g.apply("kubernetes", &nodes(&[svc("db")]), 11 * MIN);
    assert!(
        g.node(&svc("web")).is_none(),
        "gone for 11 minutes: forgotten"
    );
    assert_eq!(applied.nodes_removed, 1);
    assert!(g.node(&svc("db")).is_some());
}

#[test]
fn a_source_that_is_down_ages_nothing() {
    let mut g = graph();
    g.apply("kubernetes", &nodes(&[svc("web")]), 0);
    // Docker answers for an hour; Kubernetes is down (nothing applied from it).
    for t in 1..=60 {
        g.apply(
            "docker",
            &nodes(&[NodeId::container("c1").unwrap()]),
            t * MIN,
        );
    }
    assert!(g.node(&svc("web")).is_some());
}

#[test]
fn a_node_seen_by_two_sources_stays_while_one_still_sees_it() {
    let mut g = graph();
    g.apply("kubernetes", &nodes(&[svc("web")]), 0);
    g.apply("istio", &calls(&[("web", "db", 1.0)]), 0);
    g.apply("kubernetes", &Observation::default(), 20 * MIN);
    let web = g.node(&svc("web")).unwrap();
    assert_eq!(web.seen_by.keys().collect::<Vec<_>>(), ["istio"]);
}

#[test]
fn mesh_edges_carry_their_traffic_and_origin_and_age_out_when_traffic_stops() {
    let mut g = graph();
    g.apply("istio", &calls(&[("web", "db", 12.5)]), 0);
    let (_, _, edge) = g.edges().next().unwrap();
    assert_eq!(edge.kind, EdgeKind::Calls);
    assert_eq!(edge.rate_rps(), Some(12.5));
    assert!(edge.origins.contains_key("istio"));
    assert!(!edge.declared());
    // The rate query answers 0 from now on: the edge is not seen and goes after forget_after.
    g.apply("istio", &calls(&[("web", "db", 0.0)]), 5 * MIN);
    assert_eq!(g.edge_count(), 1);
    g.apply("istio", &calls(&[("web", "db", 0.0)]), 11 * MIN);
    assert_eq!(g.edge_count(), 0);
}

#[test]
fn declared_edges_are_marked_declared() {
    let mut g = graph();
    let mut o = calls(&[("web", "cache", 1.0)]);
    o.edges[0].rate_rps = None;
    o.declared = true;
    g.apply("declared", &o, 0);
    let view = g.view(0, None);
    assert!(view.edges[0].declared);
    assert!(view.to_dot().contains("style=dotted"));
}

#[test]
fn dependents_and_dependencies_walk_calls_and_membership_to_the_depth_asked() {
    let mut g = graph();
    // gateway → web → api → db; container c1 is part of api.
    g.apply(
        "istio",
        &calls(&[
            ("gateway", "web", 1.0),
            ("web", "api", 1.0),
            ("api", "db", 1.0),
        ]),
        0,
    );
    let c1 = NodeId::container("c1").unwrap();
    g.apply(
        "docker",
        &Observation {
            nodes: vec![ObservedNode::new(c1.clone()).part_of(Owner::Node(svc("api")))],
            ..Observation::default()
        },
        0,
    );
    let ids = |walk, depth| {
        g.walk(&svc("api"), walk, depth, 100)
            .unwrap()
            .into_iter()
            .map(|r| (r.id.to_string(), r.depth))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(Walk::Dependents, 1), [("service:shop/web".into(), 1)]);
    assert_eq!(
        ids(Walk::Dependents, 3),
        [
            ("service:shop/web".into(), 1),
            ("service:shop/gateway".into(), 2)
        ]
    );
    assert_eq!(
        ids(Walk::Dependencies, 1),
        [("service:shop/db".into(), 1), ("container:c1".into(), 1)]
    );
    // The container's dependents: the service it is part of, then that service's callers.
    let up: Vec<String> = g
        .walk(&c1, Walk::Dependents, 3, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(
        up,
        [
            "service:shop/api",
            "service:shop/web",
            "service:shop/gateway"
        ]
    );
    assert!(g.walk(&svc("nope"), Walk::Dependents, 1, 100).is_none());
    assert_eq!(
        g.walk(&svc("api"), Walk::Dependents, 3, 1).unwrap().len(),
        1
    );
}

#[test]
fn a_target_finds_its_workload_by_address() {
    let mut g = graph();
    let mut web = ObservedNode::new(svc("web"));
    web.addresses = vec!["10.0.0.5".into()];
    g.apply(
        "kubernetes",
        &Observation {
            nodes: vec![web],
            ..Observation::default()
        },
        0,
    );
    let target = NodeId::target("web", "10.0.0.5:8080").unwrap();
    let applied = g.apply(
        "prometheus-targets",
        &Observation {
            nodes: vec![
                ObservedNode::new(target.clone())
                    .available(0, 1)
                    .part_of(Owner::Address("10.0.0.5".into())),
            ],
            ..Observation::default()
        },
        0,
    );
    assert_eq!(applied.unresolved, 0);
    let parts = g.walk(&svc("web"), Walk::Dependencies, 1, 10).unwrap();
    assert_eq!(parts[0].id, target);
    assert_eq!(parts[0].edge, EdgeKind::PartOf);
    // Its only member is down: the service is unhealthy, and says why.
    let h = g.health(&svc("web"), 0).unwrap();
    assert_eq!(h.health, Health::Unhealthy);
    assert!(
        h.reasons.iter().any(|r| r == "1 of 1 members unhealthy"),
        "{h:?}"
    );
}

#[test]
fn kpis_make_health_and_impossible_values_are_refused() {
    let mut g = graph();
    let kpi = |kpi, value| ObservedKpi {
        node: svc("web"),
        kpi,
        value,
    };
    let applied = g.apply(
        "istio",
        &Observation {
            kpis: vec![
                kpi(Kpi::TrafficRps, 40.0),
                kpi(Kpi::ErrorRatio, 0.2),
                kpi(Kpi::Saturation, f64::NAN),
            ],
            ..Observation::default()
        },
        MIN,
    );
    assert_eq!(applied.invalid_kpis, 1);
    let web = g.node(&svc("web")).unwrap();
    assert_eq!(web.kpis.traffic_rps.as_ref().unwrap().value, 40.0);
    assert!(web.kpis.saturation.is_none());
    assert_eq!(
        g.health(&svc("web"), MIN).unwrap().health,
        Health::Unhealthy
    );
    // Ten minutes later the KPIs are stale: nothing is known.
    assert_eq!(
        g.health(&svc("web"), 11 * MIN).unwrap().health,
        Health::Unknown
    );
}

/// `a` and `b` both call `x` and `y`; `y` is failing. Restarting `x` takes down the only healthy
/// upstream of both.
fn two_services_with_one_healthy_upstream() -> HealthGraph {
    let mut g = graph();
    g.apply(
        "istio",
        &calls(&[
            ("a", "x", 30.0),
            ("b", "x", 10.0),
            ("a", "y", 1.0),
            ("b", "y", 1.0),
        ]),
        0,
    );
    g.apply(
        "kubernetes",
        &Observation {
            nodes: vec![
                ObservedNode::new(svc("x")).available(2, 2),
                ObservedNode::new(svc("y")).available(0, 2),
                ObservedNode::new(svc("a")).available(1, 1),
                ObservedNode::new(svc("b")).available(1, 1),
            ],
            ..Observation::default()
        },
        0,
    );
    g
}

#[test]
fn blast_radius_names_dependents_with_traffic_share_and_sole_healthy_upstream() {
    let g = two_services_with_one_healthy_upstream();
    let mut radius = g.blast_radius(&svc("x"), 2, 100, 0);
    radius.sort_by(|p, q| p.id.cmp(&q.id));
    assert_eq!(radius.len(), 2);
    assert_eq!(radius[0].id, svc("a"));
    assert_eq!(radius[0].traffic_share, Some(0.75));
    assert!(radius[0].only_healthy_upstream);
    assert_eq!(radius[1].traffic_share, Some(0.25));
    assert!(radius[1].only_healthy_upstream);
    // `y` is not their only healthy upstream: `x` is healthy.
    let radius = g.blast_radius(&svc("y"), 2, 100, 0);
    assert!(
        radius.iter().all(|d| !d.only_healthy_upstream),
        "{radius:?}"
    );
}

#[test]
fn a_full_graph_refuses_new_nodes_and_counts_them() {
    let mut g = HealthGraph::new(GraphSettings {
        max_nodes: 2,
        ..GraphSettings::default()
    });
    let applied = g.apply("kubernetes", &nodes(&[svc("a"), svc("b"), svc("c")]), 0);
    assert_eq!(applied.nodes_added, 2);
    assert_eq!(applied.refused, 1);
    assert_eq!(g.node_count(), 2);
}

#[test]
fn a_snapshot_restores_the_same_graph() {
    let g = two_services_with_one_healthy_upstream();
    let json = serde_json::to_vec(&g.snapshot()).unwrap();
    let back: Snapshot = serde_json::from_slice(&json).unwrap();
    let restored = HealthGraph::restore(GraphSettings::default(), back);
    assert_eq!(restored.view(0, None), g.view(0, None));
    assert_eq!(restored.blast_radius(&svc("x"), 2, 100, 0).len(), 2);
}

#[test]
fn a_snapshot_with_a_bad_id_is_refused() {
    let json = r#"{"version":1,"nodes":[{"id":"pod:x","seen_by":{}}],"edges":[]}"#;
    assert!(serde_json::from_str::<Snapshot>(json).is_err());
}

#[test]
fn a_walk_within_a_view_neither_answers_nor_passes_through_hidden_nodes() {
    let mut g = graph();
    let node = |ns: &str, name: &str| NodeId::service(ns, name).unwrap();
    // shop/front → pay/billing → shop/cart, and shop/web → shop/cart.
    g.apply(
        "istio",
        &Observation {
            edges: vec![
                ObservedEdge::calls(node("shop", "front"), node("pay", "billing"))
                    .traffic(1.0, None),
                ObservedEdge::calls(node("pay", "billing"), node("shop", "cart"))
                    .traffic(1.0, None),
                ObservedEdge::calls(node("shop", "web"), node("shop", "cart")).traffic(1.0, None),
            ],
            ..Observation::default()
        },
        0,
    );
    let shop_only = |id: &NodeId| id.namespace() == Some("shop");
    let reached = g
        .walk_within(&node("shop", "cart"), Walk::Dependents, 3, 100, &shop_only)
        .unwrap();
    let ids: Vec<String> = reached.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(
        ids,
        ["service:shop/web"],
        "front is reached only through billing"
    );
    assert!(reached.iter().all(|r| shop_only(&r.via)));
    // The limit counts what is answered, not what was hidden: billing comes first in the
    // unfiltered walk, and a limit of 1 still answers web.
    let all = g
        .walk(&node("shop", "cart"), Walk::Dependents, 3, 100)
        .unwrap();
    assert_eq!(all.len(), 3);
    let one = g
        .walk_within(&node("shop", "cart"), Walk::Dependents, 3, 1, &shop_only)
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].id, node("shop", "web"));
}

#[test]
fn facts_count_every_neighbour_and_a_forged_shape_is_not_facts() {
    let g = two_services_with_one_healthy_upstream();
    let facts = g.facts("shop/y", 0).unwrap();
    assert_eq!(facts["node"], "service:shop/y");
    assert_eq!(facts["health"], "unhealthy");
    assert_eq!(facts["dependents"]["service:shop/a"], "healthy");
    assert!(HealthGraph::valid_facts(&facts));
    for forged in [
        serde_json::json!({ "health": "unhealthy", "unhealthy_dependents": 0 }),
        serde_json::json!({ "node": "pod:x", "health": "healthy", "upstreams": {}, "dependents": {},
            "unhealthy_upstreams": 0, "unhealthy_dependents": 0 }),
        serde_json::json!({ "node": "service:a/b", "health": "fine", "upstreams": {}, "dependents": {},
            "unhealthy_upstreams": 0, "unhealthy_dependents": 0 }),
        serde_json::json!("healthy"),
    ] {
        assert!(!HealthGraph::valid_facts(&forged), "{forged}");
    }
    assert!(g.facts("nothing-here", 0).is_none());
}

#[test]
fn what_only_a_source_that_no_longer_exists_reported_is_forgotten() {
    let mut g = graph();
    g.apply("kubernetes", &nodes(&[svc("web"), svc("db")]), 0);
    g.apply("docker", &nodes(&[svc("web")]), 0);
    g.apply("istio", &calls(&[("web", "db", 2.0)]), 0);
    let applied = g.retain_sources(&|s| s != "kubernetes" && s != "istio");
    assert_eq!((applied.nodes_removed, applied.edges_removed), (1, 1));
    let web = g.node(&svc("web")).unwrap();
    assert_eq!(web.seen_by.keys().collect::<Vec<_>>(), ["docker"]);
    assert!(g.node(&svc("db")).is_none());
}
