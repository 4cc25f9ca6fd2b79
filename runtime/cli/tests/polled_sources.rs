//! Polled sources that fail: a Prometheus that refuses connections, one that never answers and
//! one that answers garbage are each retried, marked `down` with the reason in `/v1/sources`
//! and in `grace_source_up`, and never block the server or its other sources.
//!
//! The two misbehaving "Prometheus" servers are hand-made loopback listeners: no real Prometheus
//! can be made to hang or to answer garbage. The healthy path runs against a real Prometheus in
//! `prometheus.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use grace_testkit::e2e::free_port;
use grace_testkit::fake_endpoint::{Behaviour, FakeEndpoint};
use grace_testkit::poll_until;
use serde_json::Value;

fn source<'a>(sources: &'a Value, name: &str) -> &'a Value {
    sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no source {name} in {sources:#}"))
}

#[test]
fn down_slow_and_garbage_sources_are_marked_down_and_block_nothing() {
    let refused = free_port(); // nothing listens there
    let hanging = FakeEndpoint::start(Behaviour::Silent);
    let garbage = FakeEndpoint::start(FakeEndpoint::garbage(
        "<html>502 Bad Gateway from a proxy</html>",
    ));
    let data = data_dir();
    let config = data.path().join("grace.toml");
    let mut text = String::new();
    for (name, port) in [
        ("refused", refused),
        ("hanging", hanging.port()),
        ("garbage", garbage.port()),
    ] {
        text.push_str(&format!(
            "[[sources.promql]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}\"\n\
             query = 'up'\nevent_type = \"metrics.up\"\nevery = \"1s\"\ntimeout = \"500ms\"\n\
             unhealthy_after = 2\n\n"
        ));
    }
    std::fs::write(&config, text).unwrap();
    let server = Server::start(&path_of(&data), &["--config", config.to_str().unwrap()]);

    let sources = poll_until(
        "the three failing sources to be marked down",
        Duration::from_secs(30),
        || {
            let (status, sources) = server.get("/v1/sources");
            assert_eq!(status, 200, "{sources}");
            ["refused", "hanging", "garbage"]
                .iter()
                .all(|n| source(&sources, n)["status"] == "down")
                .then_some(sources)
        },
    );
    let error = |name: &str| {
        let s = source(&sources, name);
        assert!(s["consecutive_failures"].as_u64().unwrap() >= 2, "{s:#}");
        assert_eq!(s["successes"], 0, "{s:#}");
        assert!(s["next_poll_at"].as_u64().is_some(), "retried: {s:#}");
        s["last_error"].as_str().unwrap().to_owned()
    };
    let (refused_error, hanging_error, garbage_error) =
        (error("refused"), error("hanging"), error("garbage"));
    assert!(refused_error.starts_with("unavailable"), "{refused_error}");
    assert!(hanging_error.starts_with("timed out"), "{hanging_error}");
    assert!(
        garbage_error.contains("JSON") || garbage_error.contains("json"),
        "{garbage_error}"
    );
    eprintln!("refused: {refused_error}\nhanging: {hanging_error}\ngarbage: {garbage_error}");

    // GRACE's own metrics say so too.
    assert_eq!(server.metric("grace_source_up{source=\"garbage\""), 0.0);
    assert!(server.metric("grace_source_failures_total{source=\"hanging\"") >= 2.0);

    // Meanwhile everything else works: health, pushes, and the push source's health.
    let (status, health) = server.get("/healthz");
    assert_eq!((status, &health["status"]), (200, &Value::from("ok")));
    let (status, body) = server.post_as(
        "/v1/sources/metrics",
        Some("text/plain"),
        "checkout_errors_total{service=\"checkout\"} 3\n",
    );
    assert_eq!(status, 202, "{body}");
    let (_, push) = server.get("/v1/sources/metrics-push");
    assert_eq!(push["status"], "receiving", "{push:#}");
    assert_eq!(push["events"], 1, "{push:#}");
    assert_eq!(
        server.metric("grace_source_up{source=\"metrics-push\""),
        1.0
    );

    // No failing source published anything.
    let events = server.events();
    assert_eq!(events.len(), 1, "{events:#?}");

    let (status, missing) = server.get("/v1/sources/nope");
    assert_eq!(status, 404, "{missing}");

    // `grace sources` shows the same, and exits 1 because a source is down.
    let out = server.grace().args(["sources"]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    let hanging_row = table.lines().find(|l| l.starts_with("hanging")).unwrap();
    assert!(
        hanging_row.contains("down") && hanging_row.contains("timed out"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("metrics-push") && l.contains("receiving")),
        "{table}"
    );
}

#[test]
fn a_collector_cannot_take_a_configured_sources_name() {
    let data = data_dir();
    let config = data.path().join("grace.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources.promql]]\nname = \"latency\"\nurl = \"http://127.0.0.1:{}\"\n\
             query = 'up'\nevent_type = \"metrics.up\"\n",
            free_port()
        ),
    )
    .unwrap();
    let server = Server::start(&path_of(&data), &["--config", config.to_str().unwrap()]);
    let collector = "manifest_version = 1\nname = \"latency\"\nversion = \"1.0.0\"\n\
                     kind = \"collector\"\ncomponent = \"unused.wasm\"\n[schedule]\nevery = \"60s\"\n";
    let (status, body) = server.upload(collector, component("collector_fixture"));
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("grace.toml"), "{body}");
}

#[test]
fn a_bad_source_configuration_stops_the_server_from_starting_naming_the_key() {
    let data = data_dir();
    let config = data.path().join("grace.toml");
    std::fs::write(
        &config,
        "[[sources.promql]]\nname = \"latency\"\nquery = 'up'\nevent_type = \"metrics.up\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_grace"))
        .args([
            "serve",
            "--simulate",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path())
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sources.promql[0].url"), "{stderr}");
}
