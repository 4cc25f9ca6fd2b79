//! Hostile events and hostile collectors against a real `grace serve`: out-of-range timestamps
//! are refused at every boundary naming the field and ingestion goes on; the host names a
//! collector's events; a collector's output per pass and a manifest's size are capped; a
//! background task that dies turns `/healthz` unhealthy until its restart.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use grace_testkit::{build_guests, fixture, poll_until};
use serde_json::{Value, json};

/// The first millisecond of year 10000.
const YEAR_10000: u64 = 253_402_300_800_000;

/// A 400 naming `field`, with a message saying the time is past year 9999.
fn assert_refused_past_9999(answer: (u16, Value), field: &str) {
    let (status, body) = answer;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("after 9999-12-31"), "{message}");
}

fn alert_starting_at(starts_at: &str) -> Value {
    json!({
        "receiver": "grace", "status": "firing",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "HighLatency", "service": "checkout"},
            "annotations": {}, "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": "a3f1c2d4e5b60718"
        }],
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "version": "4",
        "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0
    })
}

#[test]
fn hostile_timestamps_past_year_9999_are_refused_at_every_boundary_and_ingestion_goes_on() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let m = manifest(
        "on-latency",
        "[[triggers]]\nevent_type = \"test.latency\"\n",
    );
    assert_eq!(server.upload(&m, component("echo")).0, 201);

    let mut batch: Vec<Value> = (0..5)
        .map(|i| event("test.latency", "api", i, 1.0))
        .collect();
    batch[3]["timestamp"] = json!(YEAR_10000);
    assert_refused_past_9999(
        server.post("/v1/events", json!(batch)),
        "events[3].timestamp",
    );
    let mut one = event("test.latency", "api", 0, 1.0);
    one["timestamp"] = json!(u64::MAX);
    assert_refused_past_9999(server.post("/v1/events", one), "timestamp");

    let (status, body) = server.post_as(
        "/v1/sources/metrics",
        Some("text/plain"),
        format!("latency_ms{{service=\"api\"}} 1 {YEAR_10000}\n"),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("line 1") && message.contains("after 9999-12-31"),
        "{message}"
    );
    assert_refused_past_9999(
        server.post(
            "/v1/sources/metrics",
            json!({"metrics": [{"name": "latency_ms", "value": 1, "timestamp": YEAR_10000}]}),
        ),
        "metrics[0].timestamp",
    );
    // RFC 3339 has four year digits, but an offset can still carry a time past 9999.
    assert_refused_past_9999(
        server.alertmanager(&alert_starting_at("9999-12-31T23:59:59-23:59")),
        "alerts[0].startsAt",
    );
    assert!(server.events().is_empty(), "nothing was stored");

    let (status, body) = server.post("/v1/events", event("test.latency", "api", 1, 1.0));
    assert_eq!(status, 202, "later good events are accepted: {body}");
    let runs = poll_until("the good event's run", Duration::from_secs(30), || {
        let runs = server.runs_of("on-latency");
        (!runs.is_empty()).then_some(runs)
    });
    assert_eq!(runs.len(), 1);
    let (status, health) = server.get("/healthz");
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
}

#[test]
fn events_published_with_a_token_record_the_token_and_pushed_ones_have_a_fixed_source() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let token = server.token_with("deploy-bot", &["operate", "read"]);
    let client = client_with_token(&token);
    let url = format!("{}/v1/events", server.url);
    let (status, body) = rt()
        .block_on(send(
            &client,
            reqwest::Method::POST,
            &url,
            Some((
                Some("application/json"),
                event("test.deploy", "api", 0, 1.0).to_string().into_bytes(),
            )),
        ))
        .unwrap();
    assert_eq!(status, 202, "{body}");
    let (status, body) = server.post(
        "/v1/sources/metrics",
        json!({"metrics": [{"name": "latency_ms", "value": 1}]}),
    );
    assert_eq!(status, 202, "{body}");

    let (_, stored) = server.get("/v1/events");
    let stored = stored.as_array().unwrap();
    assert_eq!(stored[0]["published_by"]["name"], "deploy-bot");
    assert!(
        stored[0]["published_by"]["token_id"]
            .as_str()
            .unwrap()
            .starts_with("tok_"),
        "{}",
        stored[0]
    );
    assert_eq!(stored[1]["event"]["source"], "push");
    assert_eq!(stored[1]["published_by"]["name"], "local-admin");

    let out = server.grace().args(["events", "list"]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    assert!(listing.contains("PUBLISHED BY"), "{listing}");
    assert!(listing.contains("deploy-bot (tok_"), "{listing}");
}

#[test]
fn hostile_collector_claiming_alertmanager_fires_no_trigger_gated_on_alertmanager() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let gated = manifest(
        "on-real-alerts",
        "[[triggers]]\nevent_type = \"alert.firing\"\ncondition = \"event.source == 'alertmanager'\"\n",
    );
    assert_eq!(server.upload(&gated, component("echo")).0, 201);
    let impostor = std::fs::read_to_string(fixture("impostor-collector").join("playbook.toml"))
        .unwrap()
        .replace("every = \"60s\"", "every = \"1s\"");
    let (status, body) = server.upload(&impostor, component("impostor_collector"));
    assert_eq!(status, 201, "{body}");

    let claimed = poll_until("two impostor passes", Duration::from_secs(30), || {
        let events = server.events();
        (events.len() >= 2).then_some(events)
    });
    for e in &claimed {
        assert_eq!(e["source"], "impostor-collector", "{e}");
        assert_eq!(e["event_type"], "alert.firing");
    }
    server.wait_matched(2);
    assert!(
        server.runs_of("on-real-alerts").is_empty(),
        "the collector's events do not pass `event.source == 'alertmanager'`"
    );

    // The gate itself works: a real Alertmanager notification fires it.
    let (status, body) = server.alertmanager(&alert_starting_at("2026-01-01T00:05:00Z"));
    assert_eq!(status, 202, "{body}");
    poll_until("the real alert's run", Duration::from_secs(30), || {
        (!server.runs_of("on-real-alerts").is_empty()).then_some(())
    });
}

#[test]
fn hostile_collector_over_the_per_pass_cap_fails_its_pass_and_publishes_nothing() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let flood =
        std::fs::read_to_string(fixture("event-flood-collector").join("playbook.toml")).unwrap();
    let (status, body) = server.upload(&flood, component("event_flood_collector"));
    assert_eq!(status, 201, "{body}");
    let source = poll_until("the flood's failed pass", Duration::from_secs(60), || {
        let (_, s) = server.get("/v1/sources/event-flood-collector");
        s.to_string().contains("collector_max_bytes").then_some(s)
    });
    assert!(
        source.to_string().contains("12"),
        "the error gives the size: {source}"
    );
    assert!(server.events().is_empty(), "nothing of the pass was stored");
    assert!(server.metric("grace_collector_passes_total{result=\"failed\"}") >= 1.0);
    assert_eq!(
        server.metric("grace_collector_passes_total{result=\"ok\"}"),
        0.0
    );
    assert_eq!(server.get("/healthz").0, 200, "the host is unharmed");
}

#[test]
fn a_manifest_over_64_kib_is_refused_at_upload_naming_the_manifest() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let padding = format!("# {}\n", "x".repeat(1000)).repeat(22_000);
    let huge = manifest(
        "huge",
        &format!("{padding}[[triggers]]\nevent_type = \"a\"\n"),
    );
    assert!(huge.len() > 22_000_000);
    let (status, body) = server.upload(&huge, component("echo"));
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["field"], "manifest", "{body}");
    let (_, list) = server.get("/v1/playbooks");
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
}

#[test]
fn a_background_task_that_dies_turns_healthz_unhealthy_until_it_is_restarted() {
    let data = data_dir();
    // The test hook of debug builds: the event writer's first three starts panic.
    let server = Server::start_with_env(
        &path_of(&data),
        &[],
        &[("GRACE_TEST_FAULT", "event-writer:3")],
    );
    let down = poll_until("healthz to be unhealthy", Duration::from_secs(30), || {
        let (status, health) = server.get("/healthz");
        (status == 503).then_some(health)
    });
    assert_eq!(down["status"], "unhealthy");
    assert_eq!(down["down"][0]["task"], "event-writer", "{down}");
    assert!(
        down["down"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("panicked"),
        "{down}"
    );
    poll_until("healthz to recover", Duration::from_secs(30), || {
        (server.get("/healthz").0 == 200).then_some(())
    });
    let (status, body) = server.post("/v1/events", event("test.after", "api", 0, 1.0));
    assert_eq!(status, 202, "the restarted writer stores events: {body}");
}

#[test]
fn grace_run_with_an_event_past_year_9999_exits_2_naming_the_timestamp() {
    build_guests();
    let dir = data_dir();
    let event_file = dir.path().join("event.json");
    let mut e = event("test.echo", "api", 0, 1.0);
    e["timestamp"] = json!(u64::MAX);
    std::fs::write(&event_file, e.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_grace"))
        .arg("run")
        .arg(fixture("echo"))
        .arg("--event")
        .arg(&event_file)
        .arg("--dry-run")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("GRACE_DATA_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`timestamp`") && stderr.contains("after 9999-12-31"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
