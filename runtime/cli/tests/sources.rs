//! `grace serve`'s event sources over real HTTP: Alertmanager webhooks (events, dedup of
//! re-sends, also across a restart, version and field errors) and pushed metrics (Prometheus
//! text and JSON, errors naming the line or the path, the sample limit).
//!
//! Each test starts its own server process (simulation mode, loopback, an ephemeral port, a
//! fresh data directory) and talks to it as Alertmanager or an application would.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

/// A notification as Alertmanager sends it: two alerts of the group `HighLatency`, firing, five
/// and six minutes after the default fleet's start.
fn firing() -> Value {
    json!({
        "receiver": "grace",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighLatency", "service": "api-service",
                           "instance": "10.0.1.12:8080", "severity": "page"},
                "annotations": {"summary": "p95 latency of api-service above 500 ms"},
                "startsAt": "2026-01-01T00:05:00.512Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=latency_p95_ms+%3E+500",
                "fingerprint": "a3f1c2d4e5b60718"
            },
            {
                "status": "firing",
                "labels": {"alertname": "HighLatency", "job": "checkout",
                           "instance": "10.0.2.7:8080", "severity": "page"},
                "annotations": {"summary": "p95 latency of checkout above 500 ms"},
                "startsAt": "2026-01-01T01:06:00+01:00",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=latency_p95_ms+%3E+500",
                "fingerprint": "0c9d8e7f6a5b4c3d"
            }
        ],
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "severity": "page"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}/{severity=\"page\"}:{alertname=\"HighLatency\"}",
        "truncatedAlerts": 0
    })
}

/// A playbook that runs on every firing alert.
fn on_firing(server: &Server) {
    let m = manifest("on-alert", "[[triggers]]\nevent_type = \"alert.firing\"\n");
    let (status, body) = server.upload(&m, component("echo"));
    assert_eq!(status, 201, "{body}");
}

#[test]
fn firing_alerts_fire_a_playbook_and_a_re_sent_notification_is_deduplicated() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    on_firing(&server);

    let (status, body) = server.alertmanager(&firing());
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (
            body["accepted"].clone(),
            body["skipped_duplicates"].clone(),
            body["last_seq"].as_u64().unwrap() - body["first_seq"].as_u64().unwrap()
        ),
        (json!(2), json!(0), 1)
    );
    server.wait_matched(2);
    let runs = server.runs_of("on-alert");
    assert_eq!(runs.len(), 2, "one run per alert: {runs:?}");
    let mut resources: Vec<_> = runs
        .iter()
        .map(|r| r["resource"].as_str().unwrap().to_owned())
        .collect();
    resources.sort();
    assert_eq!(resources, ["api-service", "checkout"]);
    for run in &runs {
        server.wait_state(run["id"].as_str().unwrap(), &["succeeded"]);
    }

    let events = server.events();
    assert_eq!(events[0]["event_type"], "alert.firing");
    assert_eq!(events[0]["source"], "alertmanager");
    assert_eq!(events[0]["actor"], "grace");
    assert_eq!(events[0]["timestamp"], "2026-01-01T00:05:00.512Z");
    assert_eq!(events[0]["payload"]["alertname"], "HighLatency");
    assert_eq!(events[0]["payload"]["fingerprint"], "a3f1c2d4e5b60718");
    assert_eq!(events[1]["timestamp"], "2026-01-01T00:06:00.000Z");

    // Alertmanager sends the group again after `group_interval`: nothing new.
    let (status, body) = server.alertmanager(&firing());
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 0, "skipped_duplicates": 2, "first_seq": null, "last_seq": null})
    );
    assert_eq!(server.events().len(), 2, "a re-send stores nothing");
    assert_eq!(server.runs_of("on-alert").len(), 2, "and fires nothing");
}

#[test]
fn a_resolved_alert_becomes_an_alert_resolved_event_at_its_end() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    on_firing(&server);
    assert_eq!(server.alertmanager(&firing()).0, 202);

    let mut resolved = firing();
    resolved["status"] = json!("resolved");
    resolved["alerts"] = json!([resolved["alerts"][0].clone()]);
    resolved["alerts"][0]["status"] = json!("resolved");
    resolved["alerts"][0]["endsAt"] = json!("2026-01-01T00:12:30Z");
    let (status, body) = server.alertmanager(&resolved);
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["accepted"].clone(), body["skipped_duplicates"].clone()),
        (json!(1), json!(0)),
        "the resolution of an accepted alert is new"
    );
    server.wait_matched(3);
    let events = server.events();
    let last = &events[2];
    assert_eq!(last["event_type"], "alert.resolved");
    assert_eq!(last["resource"], "api-service");
    assert_eq!(last["timestamp"], "2026-01-01T00:12:30.000Z");
    assert_eq!(last["payload"]["status"], "resolved");
    assert_eq!(
        server.runs_of("on-alert").len(),
        2,
        "the `alert.firing` trigger does not fire on a resolution"
    );
}

#[test]
fn another_webhook_version_or_a_missing_field_is_a_400_naming_it() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let mut other = firing();
    other["version"] = json!("5");
    let (status, body) = server.alertmanager(&other);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "version");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("\"5\""),
        "{body}"
    );

    let mut missing = firing();
    missing.as_object_mut().unwrap().remove("receiver");
    let (status, body) = server.alertmanager(&missing);
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("receiver"))
    );

    let mut bad_time = firing();
    bad_time["alerts"][1]["startsAt"] = json!("an hour ago");
    let (status, body) = server.alertmanager(&bad_time);
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("alerts[1].startsAt"))
    );
    assert!(
        server.events().is_empty(),
        "a refused notification stores nothing"
    );
}

#[test]
fn alert_dedup_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &[]);
    assert_eq!(server.alertmanager(&firing()).0, 202);
    server.wait_matched(2);
    server.kill9();

    let server = Server::start(data.path(), &[]);
    let (status, body) = server.alertmanager(&firing());
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["skipped_duplicates"], 2, "{body}");
    assert_eq!(server.events().len(), 2);
}

#[test]
fn pushed_prometheus_text_becomes_metrics_push_events() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let text = "# HELP checkout_latency_ms p95 latency of checkout.\n\
                # TYPE checkout_latency_ms gauge\n\
                checkout_latency_ms{service=\"checkout\",job=\"shop\",path=\"/cart \\\"v2\\\"\"} 912.5 1767225900000\n\
                queue_depth{instance=\"10.0.2.7:8080\"} 3\n";
    let (status, body) = server.post_as(
        "/v1/sources/metrics",
        Some("text/plain; version=0.0.4; charset=utf-8"),
        text,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 2);

    let events = server.events();
    assert_eq!(events.len(), 2);
    let latency = &events[0];
    assert_eq!(latency["event_type"], "metrics.push");
    assert_eq!(latency["source"], "push");
    assert_eq!(latency["actor"], "shop");
    assert_eq!(latency["resource"], "checkout");
    assert_eq!(latency["timestamp"], "2026-01-01T00:05:00.000Z");
    assert_eq!(
        latency["payload"],
        json!({"metric": "checkout_latency_ms", "value": 912.5,
               "labels": {"job": "shop", "path": "/cart \"v2\"", "service": "checkout"}})
    );
    let depth = &events[1];
    assert_eq!(depth["resource"], "10.0.2.7:8080");
    assert_eq!(depth["actor"], "push");
    assert_eq!(depth["payload"]["value"], 3.0);
}

#[test]
fn pushed_json_becomes_metrics_push_events_that_fire_triggers() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let m = manifest(
        "slow-checkout",
        "[[triggers]]\nevent_type = \"metrics.push\"\nresource = \"checkout\"\ncondition = \"metric == 'checkout_latency_ms' && value > 500\"\n",
    );
    assert_eq!(server.upload(&m, component("echo")).0, 201);
    let push = json!({"metrics": [
        {"name": "checkout_latency_ms", "labels": {"service": "checkout"}, "value": 212.0,
         "timestamp": "2026-01-01T00:04:00Z"},
        {"name": "checkout_latency_ms", "labels": {"service": "checkout"}, "value": 912.5,
         "timestamp": 1_767_225_900_000u64},
        {"name": "orders_total", "value": 7}
    ]});
    let (status, body) = server.post_as(
        "/v1/sources/metrics",
        Some("application/json"),
        push.to_string(),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 3);
    server.wait_matched(3);

    let events = server.events();
    assert_eq!(events[1]["resource"], "checkout");
    assert_eq!(events[1]["payload"]["value"], 912.5);
    assert_eq!(events[1]["timestamp"], "2026-01-01T00:05:00.000Z");
    assert_eq!(events[2]["resource"], "orders_total");
    assert_eq!(events[2]["actor"], "push");
    let runs = server.runs_of("slow-checkout");
    assert_eq!(runs.len(), 1, "only the sample above 500 fires: {runs:?}");
    server.wait_state(runs[0]["id"].as_str().unwrap(), &["succeeded"]);
}

#[test]
fn malformed_pushes_are_refused_naming_the_line_or_path_and_store_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let (status, body) = server.post_as(
        "/v1/sources/metrics",
        Some("text/plain"),
        "# TYPE up gauge\nup{job=\"api\"} 1\nup{job=\"db\"} NaN\n",
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("line 3: the value `NaN`"), "{message}");

    let (status, body) = server.post_as(
        "/v1/sources/metrics",
        Some("text/plain"),
        "up{job=\"api\" 1\n",
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 1: "),
        "{body}"
    );

    let (status, body) = server.post_as(
        "/v1/sources/metrics",
        Some("application/json"),
        json!({"metrics": [{"name": "up", "value": 1}, {"name": "up-time", "value": 1}]})
            .to_string(),
    );
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("metrics[1].name"))
    );

    let (status, body) = server.post_as("/v1/sources/metrics", None, "up 1\n");
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (415, json!("unsupported_media_type"))
    );
    let (status, _) = server.post_as(
        "/v1/sources/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
        "up 1\n# EOF\n",
    );
    assert_eq!(status, 415);
    assert!(server.events().is_empty(), "nothing was stored");
}

#[test]
fn a_push_over_the_sample_limit_is_a_413() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let text: String = (0..10_001)
        .map(|i| format!("requests{{shard=\"{i}\"}} {i}\n"))
        .collect();
    let (status, body) = server.post_as("/v1/sources/metrics", Some("text/plain"), text);
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10000 samples"),
        "{body}"
    );
    assert!(server.events().is_empty());

    let at_limit: String = (0..10_000)
        .map(|i| format!("requests{{shard=\"{i}\"}} {i}\n"))
        .collect();
    let (status, body) = server.post_as("/v1/sources/metrics", Some("text/plain"), at_limit);
    assert_eq!(
        (status, body["accepted"].clone()),
        (202, json!(10_000)),
        "{body}"
    );
}

/// Every kind of source in one `grace.toml` (PromQL, CloudWatch, container health), the two
/// pushed ones, and an uploaded collector: each answers `GET /v1/sources/{name}` with its
/// health, the push endpoints' names included (their POST routes share the path), and a name
/// no source has is a 404 naming it. Nothing is reachable behind the polled sources: a source
/// that is down still has its health.
#[test]
fn every_source_answers_get_by_its_name_and_an_unknown_name_is_a_404() {
    let nowhere = grace_testkit::e2e::free_port();
    let data = data_dir();
    let config = data.path().join("grace.toml");
    std::fs::write(
        &config,
        format!(
            "[aws]\nregion = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:{nowhere}\"\n\n\
             [[sources.promql]]\nname = \"api-latency\"\nurl = \"http://127.0.0.1:{nowhere}\"\n\
             query = 'up'\nevent_type = \"metrics.up\"\nevery = \"1h\"\n\n\
             [[sources.cloudwatch]]\nname = \"orders-depth\"\nevent_type = \"queue.depth\"\n\
             resource = \"orders\"\nevery = \"1h\"\n\
             [sources.cloudwatch.metric]\nid = \"depth\"\nnamespace = \"Shop/Queues\"\n\
             metric_name = \"Depth\"\ndimensions = {{ Queue = \"orders\" }}\nstat = \"Maximum\"\n\
             period = \"60s\"\n\n\
             [[sources.containers]]\nname = \"web-health\"\nselector = {{ app = \"web\" }}\n\
             every = \"1h\"\n"
        ),
    )
    .unwrap();
    // Static credentials: the SDK never looks further (instance metadata is not loopback).
    let server = Server::start_with_env(
        &path_of(&data),
        &["--config", config.to_str().unwrap()],
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let collector =
        std::fs::read_to_string(grace_testkit::example("latency-collector").join("playbook.toml"))
            .unwrap();
    let (status, body) = server.upload(&collector, component("latency_collector"));
    assert_eq!(status, 201, "{body}");

    let expected = [
        ("alertmanager", "alertmanager"),
        ("metrics-push", "metrics-push"),
        ("api-latency", "promql"),
        ("orders-depth", "cloudwatch"),
        ("web-health", "containers"),
        ("latency-collector", "collector"),
    ];
    let (status, listed) = server.get("/v1/sources");
    assert_eq!(status, 200, "{listed}");
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    let mut want: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    want.sort_unstable();
    assert_eq!(names, want, "{listed:#}");
    for (name, kind) in expected {
        let (status, health) = server.get(&format!("/v1/sources/{name}"));
        assert_eq!(status, 200, "GET /v1/sources/{name}: {health}");
        assert_eq!(health["name"], name, "{health:#}");
        assert_eq!(health["kind"], kind, "{health:#}");
        assert!(health["status"].is_string(), "{health:#}");
    }

    for unknown in ["no-such-source", "metrics"] {
        let (status, body) = server.get(&format!("/v1/sources/{unknown}"));
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "not_found", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("no source `{unknown}`")),
            "{body}"
        );
    }
}
