//! `grace graph`: a running server's health graph (docs/graph.md).
//!
//! `show` lists the nodes with their health and KPIs and the edges with their traffic, whole
//! or around one node (`--around NODE --depth N`), or prints Graphviz DOT (`--dot`, for
//! `dot -Tsvg`); `node` shows one node with its KPIs, the findings behind its health and its
//! neighbours. Every field comes from outside (discovery, metrics labels): all of it is escaped.

use serde_json::Value;

use super::{Exit, client};
use crate::cli::{GraphCommand, Server};
use crate::render;

/// Largest DOT answer printed.
const MAX_DOT_BYTES: usize = 64 * 1024 * 1024;

pub fn run(command: GraphCommand) -> Exit {
    match command {
        GraphCommand::Show {
            dot,
            json,
            around,
            depth,
            limit,
            server,
        } => show(&server, dot, json, around, depth, limit),
        GraphCommand::Node { id, json, server } => node(&server, &id, json),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => render::shorten(s, 60),
        Value::Null => String::new(),
        other => render::shorten(&other.to_string(), 60),
    }
}

/// A KPI's value, or `-`.
fn kpi(node: &Value, name: &str, scale: f64, unit: &str) -> String {
    node["kpis"][name]["value"]
        .as_f64()
        .map_or_else(|| "-".to_owned(), |v| format!("{:.1}{unit}", v * scale))
}

fn rate(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

fn show(
    server: &Server,
    dot: bool,
    json: bool,
    around: Option<String>,
    depth: Option<u32>,
    limit: Option<usize>,
) -> Exit {
    let result = (|| {
        let client = client(&server.url)?;
        let mut query = Vec::new();
        if let Some(a) = around {
            query.push(("around", a));
        }
        if let Some(d) = depth {
            query.push(("depth", d.to_string()));
        }
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        if dot {
            query.push(("format", "dot".to_owned()));
            let bytes = client
                .get_bounded(&["v1", "graph"], &query, MAX_DOT_BYTES)
                .map_err(|e| e.into_exit())?;
            // The server quotes ids and labels for DOT; what reaches the terminal is escaped
            // again here (a server is outside input too), line breaks kept.
            print!(
                "{}",
                grace_engine::text::escape_lines(&String::from_utf8_lossy(&bytes))
            );
            return Ok(Exit::Ok);
        }
        let graph = client
            .get_value(&["v1", "graph"], &query)
            .map_err(|e| e.into_exit())?;
        if json {
            println!("{graph}");
            return Ok(Exit::Ok);
        }
        let list = |key: &str| graph[key].as_array().cloned().unwrap_or_default();
        let nodes: Vec<Vec<String>> = list("nodes")
            .iter()
            .map(|n| {
                let sources: Vec<&str> = n["seen_by"]
                    .as_object()
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                vec![
                    text(&n["id"]),
                    text(&n["health"]),
                    kpi(n, "latency_p95_ms", 1.0, " ms"),
                    kpi(n, "traffic_rps", 1.0, ""),
                    kpi(n, "error_ratio", 100.0, "%"),
                    kpi(n, "saturation", 100.0, "%"),
                    render::shorten(&sources.join(","), 50),
                ]
            })
            .collect();
        print!(
            "{}",
            render::table(
                &[
                    "NODE",
                    "HEALTH",
                    "P95",
                    "RPS",
                    "ERRORS",
                    "SATURATION",
                    "SEEN BY"
                ],
                &nodes
            )
        );
        let edges: Vec<Vec<String>> = list("edges")
            .iter()
            .map(|e| {
                let origins: Vec<&str> = e["origins"]
                    .as_object()
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                vec![
                    text(&e["from"]),
                    text(&e["to"]),
                    text(&e["kind"]),
                    rate(&e["rate_rps"]),
                    e["error_ratio"]
                        .as_f64()
                        .map_or_else(|| "-".to_owned(), |x| format!("{:.1}%", x * 100.0)),
                    render::shorten(&origins.join(","), 40),
                ]
            })
            .collect();
        if !edges.is_empty() {
            println!();
            print!(
                "{}",
                render::table(
                    &["FROM", "TO", "KIND", "RPS", "ERRORS", "FROM SOURCES"],
                    &edges
                )
            );
        }
        if graph["truncated"] == Value::Bool(true) {
            println!(
                "\n{} of {} nodes shown (--limit)",
                nodes.len(),
                graph["node_count"]
            );
        }
        Ok(Exit::Ok)
    })();
    result.unwrap_or_else(|exit| exit)
}

fn node(server: &Server, id: &str, json: bool) -> Exit {
    let result = (|| {
        let client = client(&server.url)?;
        let n = client
            .get_value(&["v1", "graph", "nodes", id], &[])
            .map_err(|e| e.into_exit())?;
        if json {
            println!("{n}");
            return Ok(Exit::Ok);
        }
        println!("{}  {}", text(&n["id"]), text(&n["health"]));
        for reason in n["reasons"].as_array().cloned().unwrap_or_default() {
            println!("  - {}", text(&reason));
        }
        println!(
            "  p95 {}  rps {}  errors {}  saturation {}",
            kpi(&n, "latency_p95_ms", 1.0, " ms"),
            kpi(&n, "traffic_rps", 1.0, ""),
            kpi(&n, "error_ratio", 100.0, "%"),
            kpi(&n, "saturation", 100.0, "%")
        );
        if let Some(seen) = n["seen_by"].as_object() {
            let sources: Vec<String> = seen.keys().map(|s| render::shorten(s, 40)).collect();
            println!("  seen by {}", sources.join(", "));
        }
        for (heading, key) in [
            ("dependents", "dependents"),
            ("dependencies", "dependencies"),
        ] {
            let list = n[key].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                continue;
            }
            println!("{heading}:");
            for r in list {
                println!(
                    "  {}  ({}, {} rps)",
                    text(&r["id"]),
                    text(&r["edge"]),
                    rate(&r["rate_rps"])
                );
            }
        }
        Ok(Exit::Ok)
    })();
    result.unwrap_or_else(|exit| exit)
}
