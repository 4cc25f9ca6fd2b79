//! The `anomaly` capability end to end (docs/anomaly.md, "Playbook access"): a playbook reads
//! the server's anomaly score and forecast of a series, granted like metrics queries by its
//! `[grants.metrics]` series entries. The fixture `anomaly-reader` reads the series its event
//! names and reports each answer; the test checks them against the stored sample's payload
//! (`anomaly`, `forecast`), that refusals are typed errors on record in the run's timeline, and
//! that a dry run, which has no detector history, reads `none` for every series.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

/// Four days before the simulated fleet's start (2026-01-01T00:00:00Z): the simulation refuses
/// events stamped far ahead of its clock.
const START_MS: u64 = 1_767_225_600_000 - 4 * 86_400_000;
const FIVE_MIN: u64 = 300_000;
const SAMPLES: u64 = 300;
const GRANTED: &str = "service_latency_p95_ms";
/// Pushed too, but outside the fixture's grant.
const UNGRANTED: &str = "checkout_latency_ms";

/// About 300 ms with deterministic noise, slowly climbing.
fn p95(i: u64) -> f64 {
    300.0 + ((i * 7_919) % 13) as f64 + 0.2 * i as f64
}

fn push(server: &Server) {
    let metrics: Vec<Value> = (0..SAMPLES)
        .flat_map(|i| {
            [GRANTED, UNGRANTED].map(|name| {
                json!({"name": name, "labels": {"service": "api-service"},
                       "value": p95(i), "timestamp": START_MS + i * FIVE_MIN})
            })
        })
        .collect();
    for chunk in metrics.chunks(100) {
        let (status, body) = server.post_as(
            "/v1/sources/metrics",
            Some("application/json"),
            json!({ "metrics": chunk }).to_string(),
        );
        assert_eq!(status, 202, "{body}");
    }
}

/// The fixture's run for an event whose payload is `payload`: its answers, `score` and
/// `forecast`, and its timeline.
struct Read {
    score: Value,
    forecast: Value,
    timeline: Vec<Value>,
}

fn read(server: &Server, n: u64, payload: Value) -> Read {
    let event = json!({
        "event_type": "test.anomaly", "source": "test", "actor": "tests", "resource": "api-service",
        "payload": payload, "timestamp": START_MS + (SAMPLES + n) * FIVE_MIN,
    });
    let (status, body) = server.post("/v1/events", event);
    assert!(status == 202 || status == 200, "{status} {body}");
    // The run of this event: the list names runs, each run's record its event.
    let id = grace_testkit::poll_until(
        "the fixture's run",
        std::time::Duration::from_secs(60),
        || {
            server.runs_of("anomaly-reader").into_iter().find_map(|r| {
                let id = r["id"].as_str()?.to_owned();
                let (_, run) = server.get(&format!("/v1/runs/{id}"));
                (run["event"]["payload"] == payload).then_some(id)
            })
        },
    );
    let run = server.wait_state(&id, &["succeeded"]);
    let detail = |key: &str| -> Value {
        serde_json::from_str(run["outcome"]["details"][key].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{key}: {e}: {run:#}"))
    };
    Read {
        score: detail("score"),
        forecast: detail("forecast"),
        timeline: run["timeline"].as_array().unwrap().clone(),
    }
}

fn call<'a>(read: &'a Read, function: &str) -> &'a Value {
    read.timeline
        .iter()
        .find(|e| e["interface"] == "anomaly" && e["function"] == function)
        .unwrap_or_else(|| panic!("no anomaly.{function} in {:#?}", read.timeline))
}

#[test]
fn a_playbook_reads_the_servers_scores_and_forecasts_within_its_metrics_grant() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("grace.toml");
    std::fs::write(
        &config,
        "[anomaly.forecast]\nmetrics = [\"service_latency_*\"]\nhorizons = [\"10m\", \"1h\"]\n",
    )
    .unwrap();
    let server = Server::start(data.path(), &["--config", config.to_str().unwrap()]);
    let manifest = std::fs::read_to_string(
        grace_testkit::playbooks_dir().join("fixtures/anomaly-reader/playbook.toml"),
    )
    .unwrap();
    assert_eq!(server.upload(&manifest, component("anomaly_reader")).0, 201);
    push(&server);
    let events = server.events();
    server.wait_matched(events.len());
    let last = events
        .iter()
        .rev()
        .find(|e| e["event_type"] == "metrics.push" && e["payload"]["metric"] == GRANTED)
        .unwrap();
    let stored = &last["payload"];
    // The API shows times as RFC 3339; the last sample was pushed at this one.
    let last_millis = START_MS + (SAMPLES - 1) * FIVE_MIN;
    let labels = json!({ "service": "api-service" });

    // The granted series: the score and forecast of its last sample, as its payload has them.
    let granted = read(
        &server,
        1,
        json!({ "metric": GRANTED, "labels": labels, "horizon_seconds": 3600 }),
    );
    let score = &granted.score["ok"];
    assert_eq!(
        score["value"], stored["anomaly"]["score"],
        "{score} {stored}"
    );
    assert_eq!(score["component"], stored["anomaly"]["component"]);
    assert_eq!(score["detector"], "grace");
    assert_eq!(score["sample_value"], stored["value"]);
    assert_eq!(score["sample_millis"], last_millis);
    // At or above the server's alarm threshold (the default, 0.6374).
    let alarming = stored["anomaly"]["score"].as_f64().unwrap() >= 0.6374;
    assert_eq!(score["alarming"], alarming, "{score}");
    if let Some(expected) = stored["anomaly"].get("expected") {
        assert_eq!(score["expected_low"], expected["low"]);
        assert_eq!(score["expected_high"], expected["high"]);
    }
    let forecast = &granted.forecast["ok"];
    assert_eq!(forecast["model"], stored["forecast"]["model"], "{forecast}");
    assert_eq!(forecast["level"], stored["forecast"]["level"]);
    let steps = forecast["steps"].as_array().unwrap();
    // An hour ahead at five-minute samples.
    assert_eq!(steps.len(), 12, "{forecast}");
    let value = |s: &Value, k: &str| s[k].as_f64().unwrap();
    let at = |n: usize| &steps[n - 1];
    assert_eq!(
        value(at(2), "value"),
        value(&stored["forecast"]["10m"], "value")
    );
    assert_eq!(
        value(at(12), "value"),
        value(&stored["forecast"]["1h"], "value")
    );
    let highest = steps
        .iter()
        .map(|s| value(s, "high"))
        .fold(f64::MIN, f64::max);
    assert_eq!(highest, value(&stored["forecast"]["1h"], "high"));
    assert_eq!(at(1)["millis"], last_millis + FIVE_MIN);
    // Both reads are on record, with their arguments and results.
    let recorded = call(&granted, "score");
    assert_eq!(recorded["verdict"], "allowed", "{recorded}");
    assert_eq!(recorded["args"]["metric"], GRANTED);
    assert_eq!(recorded["args"]["labels"], labels);
    assert_eq!(recorded["result"]["ok"]["value"], score["value"]);
    let recorded = call(&granted, "forecast");
    assert_eq!(recorded["args"]["horizon_seconds"], 3600);
    assert_eq!(
        recorded["result"]["ok"]["steps"].as_array().unwrap().len(),
        12
    );

    // A series of a metric the grant does not cover: denied, a typed error on record.
    let ungranted = read(&server, 2, json!({ "metric": UNGRANTED, "labels": labels }));
    for (answer, function) in [
        (&ungranted.score, "score"),
        (&ungranted.forecast, "forecast"),
    ] {
        assert_eq!(answer["error"]["kind"], "denied", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("metric `{UNGRANTED}` is not granted")),
            "{message}"
        );
        let recorded = call(&ungranted, function);
        assert_eq!(recorded["verdict"], "denied", "{recorded}");
        assert_eq!(recorded["result"]["error"]["kind"], "denied", "{recorded}");
    }
    // A label value outside the grant's glob: denied too.
    let outside = read(
        &server,
        3,
        json!({ "metric": GRANTED, "labels": { "service": "db" } }),
    );
    assert_eq!(
        outside.score["error"]["kind"], "denied",
        "{}",
        outside.score
    );

    // Malformed arguments: invalid, naming the argument, whatever the grant says.
    let bad_metric = read(
        &server,
        4,
        json!({ "metric": "bad-metric", "labels": labels }),
    );
    for answer in [&bad_metric.score, &bad_metric.forecast] {
        assert_eq!(answer["error"]["kind"], "invalid-argument", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("`metric`"),
            "{answer}"
        );
    }
    let no_horizon = read(
        &server,
        5,
        json!({ "metric": GRANTED, "labels": labels, "horizon_seconds": 0 }),
    );
    assert!(no_horizon.score["ok"].is_object(), "{}", no_horizon.score);
    assert_eq!(
        no_horizon.forecast["error"]["kind"], "invalid-argument",
        "{}",
        no_horizon.forecast
    );
    assert!(
        no_horizon.forecast["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("`horizon-seconds`"),
        "{}",
        no_horizon.forecast
    );
    let recorded = call(&no_horizon, "forecast");
    assert_eq!(recorded["result"]["error"]["kind"], "invalid-argument");

    // A granted series the server never saw, and the granted series with one label more: none.
    let unknown = read(
        &server,
        6,
        json!({ "metric": GRANTED, "labels": { "service": "api-nowhere" } }),
    );
    assert_eq!(unknown.score, json!({ "ok": null }));
    assert_eq!(unknown.forecast, json!({ "ok": null }));
    let wider = read(
        &server,
        7,
        json!({ "metric": GRANTED, "labels": { "service": "api-service", "zone": "a" } }),
    );
    assert_eq!(wider.score, json!({ "ok": null }));
}

#[test]
fn a_dry_run_has_no_detector_history_so_every_series_reads_none() {
    let data = tempfile::tempdir().unwrap();
    let event = data.path().join("event.json");
    std::fs::write(
        &event,
        json!({
            "event_type": "test.anomaly", "source": "test", "actor": "tests",
            "resource": "api-service",
            "payload": { "metric": GRANTED, "labels": { "service": "api-service" } },
            "timestamp": 1_767_225_600_000u64,
        })
        .to_string(),
    )
    .unwrap();
    let manifest = grace_testkit::playbooks_dir().join("fixtures/anomaly-reader/playbook.toml");
    let out = grace(&[
        "run",
        path(&manifest),
        "--event",
        path(&event),
        "--dry-run",
        "--data-dir",
        path(&data.path().join("data")),
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    let details = &report["run"]["outcome"]["details"];
    for key in ["score", "forecast"] {
        let answer: Value = serde_json::from_str(details[key].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{key}: {e}: {report:#}"));
        assert_eq!(answer, json!({ "ok": null }), "{key}");
    }
    // Still decided and on record, like every read.
    let timeline = report["run"]["timeline"].as_array().unwrap();
    assert_eq!(
        timeline
            .iter()
            .filter(|e| e["interface"] == "anomaly" && e["verdict"] == "allowed")
            .count(),
        2,
        "{timeline:#?}"
    );
}
