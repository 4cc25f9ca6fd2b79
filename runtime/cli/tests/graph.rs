//! The health graph on a running server: `grace serve` with `[graph]` discovers through a real
//! Prometheus (which scrapes the mesh exporter's recorded Istio and Linkerd families), serves
//! `/v1/graph` and `grace graph`, keeps the graph when its source answers garbage, and finds it
//! again after a restart.
//!
//! Needs the `prometheus` binary (`just test-servers`): without it the tests skip, loudly,
//! unless `GRACE_E2E=required`.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use grace_testkit::mesh_exporter::MeshExporter;
use grace_testkit::prometheus::Prometheus;
use grace_testkit::proxy::{Proxy, Upstream};
use serde_json::Value;

const GARBAGE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 20\r\nconnection: close\r\n\r\n<html>oops</html>\r\n";

/// Prometheus scraping the exporter every second, behind a proxy that can turn to garbage.
fn prometheus(test: &str, exporter: &MeshExporter) -> Option<(Prometheus, Proxy)> {
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mesh\n    static_configs:\n      - targets: ['{}']\n",
        exporter.address()
    );
    let prometheus = Prometheus::start(test, &config, &[])?;
    let addr: SocketAddr = prometheus
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = Proxy::start(Upstream::Tcp(addr));
    Some((prometheus, proxy))
}

fn serve(data: &std::path::Path, prometheus_url: &str) -> Server {
    let config = data.join("grace.toml");
    std::fs::write(
        &config,
        format!(
            "prometheus = \"{prometheus_url}\"\n\n[graph]\nrefresh = \"1s\"\ntimeout = \"1s\"\nunhealthy_after = 1\nmesh_window = \"5s\"\npersist_every = \"1s\"\n\n[[graph.edge]]\nfrom = \"service:shop/payments-v1\"\nto = \"service:shop/postgres\"\n"
        ),
    )
    .unwrap();
    Server::start_live(data, &["--config", config.to_str().unwrap()])
}

fn edges(graph: &Value) -> Vec<(String, String, String)> {
    graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_owned(),
                e["to"].as_str().unwrap().to_owned(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The graph once the mesh edges of both meshes are in: 2 Istio, 3 Linkerd, 1 declared.
fn graph_with_mesh(server: &Server) -> Value {
    grace_testkit::poll_until(
        "the mesh edges in /v1/graph",
        Duration::from_secs(90),
        || {
            let (status, graph) = server.get("/v1/graph");
            (status == 200
                && edges(&graph)
                    .iter()
                    .filter(|(_, _, kind)| kind == "calls")
                    .count()
                    == 6)
                .then_some(graph)
        },
    )
}

fn source(server: &Server, name: &str) -> Value {
    let (_, sources) = server.get("/v1/sources");
    sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no source {name} in {sources}"))
}

#[test]
fn the_graph_shows_mesh_edges_declared_edges_and_targets_in_the_api_and_the_cli() {
    let exporter = MeshExporter::start();
    let Some((prometheus, _proxy)) = prometheus("graph_api", &exporter) else {
        return;
    };
    let data = data_dir();
    let server = serve(data.path(), &prometheus.url());
    let graph = graph_with_mesh(&server);
    let all = edges(&graph);
    assert!(all.contains(&(
        "service:shop/frontend".into(),
        "service:shop/checkout-v1".into(),
        "calls".into()
    )));
    let declared = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "service:shop/postgres")
        .unwrap();
    assert_eq!(declared["declared"], true);
    let target = format!("target:mesh/{}", exporter.address());
    assert!(
        graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == target.as_str())
    );

    // One node with its KPIs and neighbours.
    let (status, node) = server.get("/v1/graph/nodes/service:shop/checkout-v1");
    assert_eq!(status, 200, "{node}");
    assert_eq!(node["dependents"][0]["id"], "service:shop/frontend");
    assert!(node["kpis"]["traffic_rps"]["value"].as_f64().unwrap() > 0.0);
    assert_eq!(
        node["seen_by"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["istio"]
    );
    let (status, _) = server.get("/v1/graph/nodes/service:shop/nope");
    assert_eq!(status, 404);
    let (status, e) = server.get("/v1/graph/nodes/pod:x");
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("id")));
    let (status, e) = server.get("/v1/graph?depth=99&around=service:shop/frontend");
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("depth")));

    // Around a node, to a depth.
    let (_, around) = server.get("/v1/graph?around=service:shop/frontend&depth=1");
    let ids: Vec<&str> = around["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["service:shop/checkout-v1", "service:shop/frontend"]);
    // A limit keeps the node asked about, whatever its place in the order.
    let (_, one) = server.get("/v1/graph?around=service:shop/frontend&depth=1&limit=1");
    assert_eq!(one["nodes"][0]["id"], "service:shop/frontend", "{one}");
    assert_eq!(one["truncated"], true);

    // The CLI: a table, DOT, one node.
    let out = server.grace_with(&["graph", "show"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("service:booksapp/books") && text.contains("unhealthy"),
        "{text}"
    );
    let out = server.grace_with(&[
        "graph",
        "show",
        "--dot",
        "--around",
        "service:shop/checkout-v1",
        "--depth",
        "2",
    ]);
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph grace {"), "{dot}");
    assert!(
        dot.contains("\"service:shop/frontend\" -> \"service:shop/checkout-v1\""),
        "{dot}"
    );
    assert!(
        dot.contains("\"service:shop/payments-v1\" -> \"service:shop/postgres\" [style=dotted]"),
        "{dot}"
    );
    let out = server.grace_with(&["graph", "node", "service:booksapp/books"]);
    let text = stdout(&out);
    assert!(text.contains("error_ratio"), "{text}");
    assert!(text.contains("service:booksapp/webapp"), "{text}");
}

#[test]
fn a_source_answering_garbage_is_down_and_the_graph_stays_as_it_was_across_a_restart() {
    let exporter = MeshExporter::start();
    let Some((_prometheus, proxy)) = prometheus("graph_garbage", &exporter) else {
        return;
    };
    let data = data_dir();
    let mut server = serve(data.path(), &proxy.url());
    let before = graph_with_mesh(&server);
    let before_edges = edges(&before);

    // Prometheus' targets API answers garbage from now on: that source is down, the graph keeps
    // what it had (nothing ages while its source cannot answer).
    proxy.replace_every_answer_after("/api/v1/targets", GARBAGE);
    grace_testkit::poll_until("the targets source down", Duration::from_secs(30), || {
        (source(&server, "graph:prometheus-targets")["status"] == "down").then_some(())
    });
    let down = source(&server, "graph:prometheus-targets");
    assert_eq!(down["kind"], "graph-discovery");
    assert!(!down["last_error"].as_str().unwrap().is_empty(), "{down}");
    assert_eq!(source(&server, "graph:istio")["status"], "up");
    let target = format!("target:mesh/{}", exporter.address());
    let (status, _) = server.get(&format!("/v1/graph/nodes/{target}"));
    assert_eq!(status, 200, "the target stays in the graph");
    let out = server.grace_with(&["sources"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a down discovery source fails `grace sources`"
    );

    // Stored: after kill -9, the restarted server starts from the graph it had.
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();
    let server = serve(data.path(), &proxy.url());
    let (status, after) = server.get("/v1/graph");
    assert_eq!(status, 200);
    for edge in &before_edges {
        assert!(
            edges(&after).contains(edge),
            "{edge:?} lost in the restart: {after}"
        );
    }
    let (status, _) = server.get(&format!("/v1/graph/nodes/{target}"));
    assert_eq!(status, 200);
}

#[test]
fn without_a_graph_section_the_graph_routes_say_it_is_off() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let (status, e) = server.get("/v1/graph");
    assert_eq!(status, 404);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("[graph]"),
        "{e}"
    );
}

#[test]
fn a_bad_graph_section_stops_the_server_naming_the_key() {
    let data = data_dir();
    let config = data.path().join("grace.toml");
    std::fs::write(&config, "[graph]\nmesh_window = \"5m]) or vector(1\"\n").unwrap();
    let out = grace(&[
        "serve",
        "--simulate",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("graph.mesh_window"),
        "{}",
        stderr(&out)
    );
}
