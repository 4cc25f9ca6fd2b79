//! The health graph in runs: the `safe-restart` example playbook reads it (`graph.dependents`)
//! and refuses to restart a deployment whose dependents are already unhealthy; the trust core's
//! blast-radius factor weighs the dependents it names; `[grants.graph]` bounds what a playbook
//! sees. Dry runs, on simulated fleets whose `[[dependencies]]` make the graph.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// `shop/cart` (a deployment of 2) is called by `shop/web` (30 rps) and `shop/api` (10 rps),
/// both container workloads; each also calls `shop/cart-eu`. `web_healthy` and
/// `cart_eu_healthy` say whether those workloads' containers are healthy.
fn fleet(dir: &Path, web_healthy: bool, cart_eu_healthy: bool) -> PathBuf {
    let health = |ok: bool| if ok { "healthy" } else { "unhealthy" };
    let text = format!(
        r#"
[[deployments]]
namespace = "shop"
name = "cart"
replicas = 2

[[containers]]
name = "web-1"
image = "localhost/busybox:local"
labels = {{ namespace = "shop", app = "web" }}
health = "{}"

[[containers]]
name = "api-1"
image = "localhost/busybox:local"
labels = {{ namespace = "shop", app = "api" }}

[[containers]]
name = "cart-eu-1"
image = "localhost/busybox:local"
labels = {{ namespace = "shop", app = "cart-eu" }}
health = "{}"

[[dependencies]]
from = "shop/web"
to = "shop/cart"
rps = 30

[[dependencies]]
from = "shop/api"
to = "shop/cart"
rps = 10

[[dependencies]]
from = "shop/web"
to = "shop/cart-eu"
rps = 1

[[dependencies]]
from = "shop/api"
to = "shop/cart-eu"
rps = 1
"#,
        health(web_healthy),
        health(cart_eu_healthy)
    );
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn dry_run_json(playbook: &Path, data: &Path, fleet: &Path) -> Value {
    let event = grace_testkit::example("safe-restart").join("event.json");
    let out = grace(&[
        "run",
        path(playbook),
        "--event",
        path(&event),
        "--dry-run",
        "--data-dir",
        path(data),
        "--fleet",
        path(fleet),
        "--json",
    ]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)))
}

fn calls(report: &Value, function: &str) -> Vec<Value> {
    report["run"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["function"] == function)
        .cloned()
        .collect()
}

fn blast_radius(report: &Value) -> (u64, Value) {
    let restart = &calls(report, "rollout-restart")[0];
    let risk = &restart["trust"]["risk"];
    let factor = risk["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "blast_radius")
        .cloned()
        .unwrap();
    (risk["score"].as_u64().unwrap(), factor)
}

/// The example with its manifest's lines replaced, in a directory of its own.
fn variant(dir: &Path, replace: &[(&str, &str)]) -> PathBuf {
    build_guests_once();
    let component = grace_testkit::components_dir().join("safe_restart.wasm");
    let component_line = format!("component = \"{}\"", component.display());
    let mut all = vec![("component =", component_line.as_str())];
    all.extend_from_slice(replace);
    let manifest = grace_testkit::example_manifest("safe-restart", &all);
    let out = dir.join("variant");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("playbook.toml"), manifest).unwrap();
    out
}

fn build_guests_once() {
    grace_testkit::build_guests();
}

#[test]
fn safe_restart_refuses_when_a_dependent_is_already_unhealthy_and_names_it() {
    build_guests_once();
    let dir = tempfile::tempdir().unwrap();
    let report = dry_run_json(
        &grace_testkit::example("safe-restart"),
        &dir.path().join("data"),
        &fleet(dir.path(), false, true),
    );
    let outcome = &report["run"]["outcome"];
    assert_eq!(outcome["changed"], false, "{report}");
    assert_eq!(
        outcome["summary"],
        "refused to restart shop/cart: its dependents service:shop/web are already unhealthy"
    );
    assert!(calls(&report, "rollout-restart").is_empty());
    let walk = &calls(&report, "dependents")[0];
    assert_eq!(walk["args"]["id"], "service:shop/cart");
}

#[test]
fn safe_restart_restarts_when_its_dependents_are_healthy() {
    build_guests_once();
    let dir = tempfile::tempdir().unwrap();
    let report = dry_run_json(
        &grace_testkit::example("safe-restart"),
        &dir.path().join("data"),
        &fleet(dir.path(), true, true),
    );
    assert_eq!(report["run"]["outcome"]["changed"], true, "{report}");
    assert_eq!(calls(&report, "rollout-restart").len(), 1);
}

#[test]
fn restarting_the_only_healthy_upstream_of_two_services_is_riskier_and_says_whose() {
    build_guests_once();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let example = grace_testkit::example("safe-restart");
    // cart-eu is healthy: web and api have another upstream.
    let (shared_score, shared) = blast_radius(&dry_run_json(
        &example,
        &data,
        &fleet(dir.path(), true, true),
    ));
    // cart-eu is failing: cart is the only healthy upstream of both.
    let (sole_score, sole) = blast_radius(&dry_run_json(
        &example,
        &data,
        &fleet(dir.path(), true, false),
    ));
    assert!(sole_score > shared_score, "{sole_score} vs {shared_score}");
    assert!(sole["value"].as_f64().unwrap() > shared["value"].as_f64().unwrap());
    let why = sole["explanation"].as_str().unwrap();
    assert!(
        why.contains("only healthy upstream of 2 dependents"),
        "{why}"
    );
    assert!(
        why.contains("`service:shop/web` (75% of the requests, its only healthy upstream)"),
        "{why}"
    );
    assert!(
        why.contains("`service:shop/api` (25% of the requests, its only healthy upstream)"),
        "{why}"
    );
}

#[test]
fn a_playbook_without_a_graph_grant_is_denied_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let playbook = variant(dir.path(), &[]);
    let manifest = std::fs::read_to_string(playbook.join("playbook.toml")).unwrap();
    // Everything from `[grants.graph]` on goes.
    let without = &manifest[..manifest.find("[grants.graph]").unwrap()];
    std::fs::write(playbook.join("playbook.toml"), without).unwrap();
    let report = dry_run_json(
        &playbook,
        &dir.path().join("data"),
        &fleet(dir.path(), true, true),
    );
    let walk = &calls(&report, "dependents")[0];
    assert_eq!(walk["verdict"], "denied", "{walk}");
    assert!(
        walk["result"]["error"]
            .to_string()
            .contains("capability `graph` is not granted"),
        "{walk}"
    );
    assert!(calls(&report, "rollout-restart").is_empty());
}

#[test]
fn a_graph_grant_on_other_namespaces_denies_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let playbook = variant(dir.path(), &[("max_depth", "max_depth = 1")]);
    let manifest = std::fs::read_to_string(playbook.join("playbook.toml")).unwrap();
    let other = manifest.replacen(
        "[grants.graph]\nnamespaces = [\"shop\"]",
        "[grants.graph]\nnamespaces = [\"payments\"]",
        1,
    );
    assert_ne!(other, manifest);
    std::fs::write(playbook.join("playbook.toml"), &other).unwrap();
    let report = dry_run_json(
        &playbook,
        &dir.path().join("data"),
        &fleet(dir.path(), true, true),
    );
    let walk = &calls(&report, "dependents")[0];
    assert_eq!(walk["verdict"], "denied", "{walk}");
    assert!(
        walk["result"]["error"]
            .to_string()
            .contains("node `service:shop/cart` is not granted"),
        "{walk}"
    );
}

/// The safe-restart example, triggered only when none of the resource's dependents is
/// unhealthy (`event.graph`), with its component's absolute path.
fn graph_conditioned_manifest() -> String {
    build_guests_once();
    let component = grace_testkit::components_dir().join("safe_restart.wasm");
    grace_testkit::example_manifest(
        "safe-restart",
        &[
            (
                "component =",
                &format!("component = \"{}\"", component.display()),
            ),
            (
                "resource = \"shop/*\"",
                "resource = \"shop/*\"\ncondition = 'event.graph.health != null && event.graph.unhealthy_dependents == 0'",
            ),
        ],
    )
}

#[test]
fn a_dry_run_checks_a_trigger_condition_on_the_simulated_fleets_graph() {
    let dir = tempfile::tempdir().unwrap();
    let playbook = dir.path().join("conditioned");
    std::fs::create_dir_all(&playbook).unwrap();
    std::fs::write(playbook.join("playbook.toml"), graph_conditioned_manifest()).unwrap();
    let event = grace_testkit::example("safe-restart").join("event.json");
    let run = |web_healthy: bool| {
        let sub = dir.path().join(if web_healthy { "ok" } else { "bad" });
        std::fs::create_dir_all(&sub).unwrap();
        grace(&[
            "run",
            path(&playbook),
            "--event",
            path(&event),
            "--dry-run",
            "--data-dir",
            path(&sub.join("data")),
            "--fleet",
            path(&fleet(&sub, web_healthy, true)),
        ])
    };
    let held = run(true);
    assert!(held.status.success(), "{}", stderr(&held));
    assert!(
        stdout(&held).contains("restarted shop/cart"),
        "{}",
        stdout(&held)
    );
    let not = run(false);
    let text = format!("{}{}", stdout(&not), stderr(&not));
    assert!(text.contains("event.graph.unhealthy_dependents"), "{text}");
    assert!(!text.contains("restarted shop/cart"), "{text}");
}

#[test]
fn a_served_trigger_matches_on_the_graph_facts_stored_with_each_event() {
    let dir = tempfile::tempdir().unwrap();
    // shop/cart's caller web is failing; shop/orders' caller api is fine.
    let fleet = fleet(dir.path(), false, true);
    let mut text = std::fs::read_to_string(&fleet).unwrap();
    text.push_str(
        "\n[[deployments]]\nnamespace = \"shop\"\nname = \"orders\"\nreplicas = 1\n\n[[dependencies]]\nfrom = \"shop/api\"\nto = \"shop/orders\"\nrps = 5\n",
    );
    std::fs::write(&fleet, text).unwrap();
    let config = dir.path().join("grace.toml");
    std::fs::write(&config, "[graph]\nrefresh = \"1s\"\ntimeout = \"1s\"\n").unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--config", path(&config), "--fleet", path(&fleet)]);
    grace_testkit::poll_until(
        "the simulated fleet in the graph",
        std::time::Duration::from_secs(30),
        || {
            let (status, web) = server.get("/v1/graph/nodes/service:shop/web");
            (status == 200 && web["health"] == "unhealthy").then_some(())
        },
    );
    let (status, body) = server.upload(&graph_conditioned_manifest(), component("safe_restart"));
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.post(
        "/v1/events",
        serde_json::json!([
            event("deployment.unhealthy", "shop/cart", 300, 1.0),
            event("deployment.unhealthy", "shop/orders", 301, 1.0),
        ]),
    );
    assert_eq!(status, 202, "{body}");
    server.wait_matched(2);
    let runs = server.runs_of("safe-restart");
    let resources: Vec<&str> = runs
        .iter()
        .map(|r| r["resource"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(resources, ["shop/orders"], "{runs:?}");
    // The facts are stored with the events: matching them again decides the same.
    let (_, stored) = server.get("/v1/events?limit=10");
    let cart = stored
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["resource"] == "shop/cart")
        .unwrap();
    assert_eq!(cart["graph"]["node"], "service:shop/cart", "{cart}");
    assert_eq!(cart["graph"]["dependents"]["service:shop/web"], "unhealthy");
    assert_eq!(cart["graph"]["unhealthy_dependents"], 1);
}

#[test]
fn a_published_event_cannot_bring_its_own_graph_facts() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let mut e = event("deployment.unhealthy", "shop/cart", 300, 1.0);
    e["graph"] = serde_json::json!({ "health": "healthy" });
    let (status, body) = server.post("/v1/events", e);
    assert_eq!(status, 400, "{body}");
}

#[test]
fn a_deployment_event_makes_discovery_look_again_before_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet(dir.path(), true, true);
    let config = dir.path().join("grace.toml");
    // Looks once at start, then not for an hour, unless an event says something changed.
    std::fs::write(
        &config,
        "[graph]\nrefresh = \"1h\"\nforget_after = \"2h\"\n",
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", path(&config), "--fleet", path(&fleet)],
    );
    let looks = || {
        let (_, sources) = server.get("/v1/sources/graph:sim");
        sources["successes"].as_u64().unwrap_or(0)
    };
    grace_testkit::poll_until("the first look", std::time::Duration::from_secs(30), || {
        (looks() == 1).then_some(())
    });
    let (status, body) = server.post(
        "/v1/events",
        event("payments.latency", "shop/cart", 300, 1.0),
    );
    assert_eq!(status, 202, "{body}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(looks(), 1, "an event of another type wakes nothing");
    let (status, body) = server.post("/v1/events", event("shop.deployed", "shop/cart", 301, 1.0));
    assert_eq!(status, 202, "{body}");
    grace_testkit::poll_until(
        "a look after the deployment",
        std::time::Duration::from_secs(10),
        || (looks() >= 2).then_some(()),
    );
}
