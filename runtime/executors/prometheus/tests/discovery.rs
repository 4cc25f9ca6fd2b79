//! Discovery through a real Prometheus: it scrapes the mesh exporter (recorded Istio and Linkerd
//! metric families) and a target that is down; GRACE reads the targets, the mesh edges with
//! their rates and error ratios, and the golden signals, and builds the graph from them.
//!
//! Needs the `prometheus` binary (`just test-servers`): without it the tests skip, loudly,
//! unless `GRACE_E2E=required`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grace_executor::MetricsExecutor;
use grace_graph::{
    EdgeKind, GraphSettings, Health, HealthGraph, Identity, Kpi, NodeId, Observation, Walk,
};
use grace_prometheus::PrometheusMetrics;
use grace_prometheus::discover::{KpiQuery, Mesh};
use grace_testkit::e2e::free_port;
use grace_testkit::mesh_exporter::MeshExporter;
use grace_testkit::prometheus::Prometheus;

fn now() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Prometheus scraping the exporter every second, and a target on a closed port, labelled as
/// part of workload `shop/cart`.
fn scraping(test: &str, exporter: &MeshExporter) -> Option<(Prometheus, PrometheusMetrics)> {
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mesh\n    static_configs:\n      - targets: ['{}']\n  - job_name: cart\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n        labels: {{namespace: shop, app: cart}}\n",
        exporter.address(),
        free_port()
    );
    let prometheus = Prometheus::start(test, &config, &[])?;
    let client = PrometheusMetrics::new(&prometheus.url()).unwrap();
    Some((prometheus, client))
}

fn svc(ns: &str, name: &str) -> NodeId {
    NodeId::service(ns, name).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Waits until Prometheus has scraped the exporter for a whole 5 s rate window (a rate over a
/// window the series started in is extrapolated from too little).
fn full_window(client: &PrometheusMetrics) {
    let rt = runtime();
    grace_testkit::poll_until("7 scrapes of the exporter", Duration::from_secs(60), || {
        let series = rt
            .block_on(client.query(r#"count_over_time(up{job="mesh"}[7s])"#, now()))
            .ok()?;
        let count = series.first()?.samples.last()?.value;
        (count >= 7.0).then_some(())
    });
}

/// The mesh's observation once Prometheus has a whole rate window of it.
fn mesh_when_ready(client: &PrometheusMetrics, mesh: Mesh, edges: usize) -> Observation {
    full_window(client);
    let rt = runtime();
    grace_testkit::poll_until("the mesh edges", Duration::from_secs(60), || {
        let found = rt.block_on(client.mesh(mesh, "5s", now(), 1000)).ok()?;
        (found.observation.edges.len() == edges && found.observation.kpis.len() >= 2)
            .then_some(found.observation)
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.15 * b.max(0.01)
}

#[test]
fn istio_edges_are_weighted_by_rate_and_error_ratio_without_counting_both_reporters() {
    let exporter = MeshExporter::start();
    let Some((_prometheus, client)) = scraping("istio_edges", &exporter) else {
        return;
    };
    let istio = mesh_when_ready(&client, Mesh::Istio, 2);
    let edge = |from, to| {
        istio
            .edges
            .iter()
            .find(|e| e.from == svc("shop", from) && e.to == svc("shop", to))
            .unwrap_or_else(|| panic!("no edge {from} → {to} in {:?}", istio.edges))
    };
    let checkout = edge("frontend", "checkout-v1");
    assert!(close(checkout.rate_rps.unwrap(), 20.0), "{checkout:?}");
    assert!(close(checkout.error_ratio.unwrap(), 0.05), "{checkout:?}");
    let payments = edge("checkout-v1", "payments-v1");
    assert!(close(payments.rate_rps.unwrap(), 10.0), "{payments:?}");
    assert_eq!(payments.error_ratio, Some(0.0));
    let kpi = |node: &NodeId, kpi| {
        istio
            .kpis
            .iter()
            .find(|k| &k.node == node && k.kpi == kpi)
            .map(|k| k.value)
    };
    let checkout = svc("shop", "checkout-v1");
    assert!(close(kpi(&checkout, Kpi::TrafficRps).unwrap(), 20.0));
    assert!(close(kpi(&checkout, Kpi::ErrorRatio).unwrap(), 0.05));
    assert!(
        close(kpi(&checkout, Kpi::LatencyP95Ms).unwrap(), 100.0),
        "{:?}",
        istio.kpis
    );
}

#[test]
fn linkerd_edges_read_deployments_and_statefulsets_at_both_ends() {
    let exporter = MeshExporter::start();
    let Some((_prometheus, client)) = scraping("linkerd_edges", &exporter) else {
        return;
    };
    let linkerd = mesh_when_ready(&client, Mesh::Linkerd, 3);
    let mut graph = HealthGraph::new(GraphSettings::default());
    graph.apply("linkerd", &linkerd, now());
    let books = svc("booksapp", "books");
    let callers = graph.walk(&books, Walk::Dependents, 1, 10).unwrap();
    assert_eq!(callers.len(), 1);
    assert_eq!(callers[0].id, svc("booksapp", "webapp"));
    assert!(close(callers[0].rate_rps.unwrap(), 8.0), "{callers:?}");
    assert!(close(callers[0].error_ratio.unwrap(), 0.25), "{callers:?}");
    let authors_callers = graph
        .walk(&svc("booksapp", "authors"), Walk::Dependents, 1, 10)
        .unwrap();
    assert_eq!(authors_callers.len(), 2, "{authors_callers:?}");
    // books serves 25 % failures: unhealthy by the default rule, and says so.
    let h = graph.health(&books, now()).unwrap();
    assert_eq!(h.health, Health::Unhealthy, "{h:?}");
    assert!(
        h.reasons.iter().any(|r| r.starts_with("error_ratio 0.2")),
        "{h:?}"
    );
}

#[test]
fn a_mesh_edge_whose_traffic_stops_ages_out_of_the_graph() {
    let exporter = MeshExporter::start();
    let Some((_prometheus, client)) = scraping("edge_ages_out", &exporter) else {
        return;
    };
    let mut graph = HealthGraph::new(GraphSettings {
        forget_after: Duration::from_secs(2),
        ..GraphSettings::default()
    });
    graph.apply("istio", &mesh_when_ready(&client, Mesh::Istio, 2), now());
    assert_eq!(graph.edge_count(), 2);
    exporter.stop_traffic();
    let rt = runtime();
    grace_testkit::poll_until("the edges to age out", Duration::from_secs(60), || {
        let found = rt
            .block_on(client.mesh(Mesh::Istio, "5s", now(), 1000))
            .ok()?;
        graph.apply("istio", &found.observation, now());
        (graph.edge_count() == 0).then_some(())
    });
}

#[test]
fn targets_are_nodes_that_are_part_of_their_workload_and_say_when_they_are_down() {
    let exporter = MeshExporter::start();
    let Some((_prometheus, client)) = scraping("targets", &exporter) else {
        return;
    };
    let rt = runtime();
    let identity = Identity::default();
    let found = grace_testkit::poll_until("both targets scraped", Duration::from_secs(30), || {
        let found = rt.block_on(client.targets(&identity, 100)).ok()?;
        let scraped = found
            .observation
            .nodes
            .iter()
            .filter(|n| n.availability.is_some())
            .count();
        (scraped == 2).then_some(found)
    });
    let mut graph = HealthGraph::new(GraphSettings::default());
    graph.apply("prometheus-targets", &found.observation, now());
    let cart = svc("shop", "cart");
    let members = graph.walk(&cart, Walk::Dependencies, 1, 10).unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].edge, EdgeKind::PartOf);
    assert_eq!(
        graph.health(&cart, now()).unwrap().health,
        Health::Unhealthy
    );
    let mesh = NodeId::target("mesh", &exporter.address()).unwrap();
    assert_eq!(
        graph.node(&mesh).unwrap().availability["prometheus-targets"].ready,
        1
    );
}

#[test]
fn operator_kpi_queries_map_series_to_workloads_by_the_identity_rules() {
    let exporter = MeshExporter::start();
    let Some((_prometheus, client)) = scraping("kpi_queries", &exporter) else {
        return;
    };
    full_window(&client);
    let rt = runtime();
    let queries = [KpiQuery {
        kpi: Kpi::Saturation,
        query: r#"label_replace(vector(0.5), "workload", "cart", "", "")"#.into(),
    }];
    let found = rt
        .block_on(client.kpis(&queries, &Identity::default(), now(), 100))
        .unwrap();
    assert_eq!(found.observation.kpis.len(), 1);
    assert_eq!(found.observation.kpis[0].node, svc("default", "cart"));
    assert_eq!(found.observation.kpis[0].value, 0.5);
}

#[test]
fn an_exporter_answering_garbage_fails_its_scrape_and_the_target_reads_down() {
    let exporter = MeshExporter::start();
    let Some((_prometheus, client)) = scraping("garbage_exporter", &exporter) else {
        return;
    };
    exporter.answer_garbage();
    let rt = runtime();
    let mesh = NodeId::target("mesh", &exporter.address()).unwrap();
    grace_testkit::poll_until("the mesh target down", Duration::from_secs(30), || {
        let found = rt
            .block_on(client.targets(&Identity::default(), 100))
            .ok()?;
        let node = found.observation.nodes.into_iter().find(|n| n.id == mesh)?;
        (node.availability?.ready == 0).then_some(())
    });
}

#[test]
fn a_prometheus_that_is_not_there_is_an_error_not_an_empty_graph() {
    let client = PrometheusMetrics::new(&format!("http://127.0.0.1:{}", free_port())).unwrap();
    let rt = runtime();
    assert!(
        rt.block_on(client.targets(&Identity::default(), 10))
            .is_err()
    );
    assert!(
        rt.block_on(client.mesh(Mesh::Istio, "5m", now(), 10))
            .is_err()
    );
}
