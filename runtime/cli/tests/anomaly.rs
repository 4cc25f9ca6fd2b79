//! Anomaly scores on metric events, end to end (docs/anomaly.md): pushed samples are scored
//! before they are stored, a spike raises one `anomaly` event that fires its trigger, the
//! detectors answer the same after a `kill -9`, and on a replayed incident the anomaly trigger
//! fires before the threshold trigger would have.
//!
//! Each test starts its own server on the simulated fleet; the samples are stamped in the days
//! before the fleet's clock starts (a simulation refuses events stamped far ahead of it).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use grace_testkit::example;
use serde_json::{Value, json};

/// Four days before the simulated fleet's start (2026-01-01T00:00:00Z).
const START_MS: u64 = 1_767_225_600_000 - 4 * 86_400_000;
const FIVE_MIN: u64 = 300_000;

/// A checkout latency series: about 200 ms with a few ms of deterministic noise.
fn latency(i: u64) -> f64 {
    200.0 + ((i * 7_919) % 23) as f64
}

/// Pushes `metrics` (pushed-metrics JSON samples), `per_push` to a request, in order.
fn push_metrics(server: &Server, metrics: &[Value], per_push: usize) {
    for chunk in metrics.chunks(per_push) {
        let (status, body) = server.post_as(
            "/v1/sources/metrics",
            Some("application/json"),
            json!({ "metrics": chunk }).to_string(),
        );
        assert_eq!(status, 202, "{body}");
    }
}

/// Pushes checkout latency samples `(i, value)`, sample `i` at `START_MS + i` five minutes.
fn push(server: &Server, samples: &[(u64, f64)]) {
    let metrics: Vec<Value> = samples
        .iter()
        .map(|(i, v)| {
            json!({"name": "checkout_latency_ms", "labels": {"service": "checkout"},
                   "value": v, "timestamp": START_MS + i * FIVE_MIN})
        })
        .collect();
    push_metrics(server, &metrics, 100);
}

fn ordinary(range: std::ops::Range<u64>) -> Vec<(u64, f64)> {
    range.map(|i| (i, latency(i))).collect()
}

fn samples(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == "metrics.push")
        .collect()
}

#[test]
fn a_spike_is_scored_raises_one_anomaly_event_and_fires_its_trigger() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let m = manifest(
        "on-anomaly",
        "[[triggers]]\nevent_type = \"anomaly\"\nresource = \"checkout\"\n",
    );
    assert_eq!(server.upload(&m, component("echo")).0, 201);
    let by_score = manifest(
        "on-score",
        "[[triggers]]\nevent_type = \"metrics.push\"\ncondition = \"anomaly_score > 0.9\"\ncooldown = \"1d\"\n",
    );
    assert_eq!(server.upload(&by_score, component("echo")).0, 201);

    let mut series = ordinary(0..300);
    // An incident: ten samples far above anything before.
    series.extend((300..310).map(|i| (i, latency(i) + 700.0)));
    push(&server, &series);
    let events = server.events();
    let scored = samples(&events);
    assert_eq!(scored.len(), 310);
    // The first samples have no score (too little history); then every one has.
    assert!(scored[0]["payload"].get("anomaly_score").is_none());
    let ordinary_max = scored[100..300]
        .iter()
        .map(|e| e["payload"]["anomaly_score"].as_f64().unwrap())
        .fold(0.0, f64::max);
    // Below the default alarm (0.64, what NAB's standard profile optimises to).
    assert!(
        ordinary_max < 0.64,
        "ordinary samples scored up to {ordinary_max}"
    );
    let onset = &scored[300]["payload"];
    assert!(onset["anomaly_score"].as_f64().unwrap() > 0.9, "{onset}");
    assert_eq!(onset["anomaly"]["detector"], "grace");
    assert_eq!(onset["anomaly"]["component"], "level");
    let expected = &onset["anomaly"]["expected"];
    assert!(
        expected["low"].as_f64().unwrap() < 200.0 && expected["high"].as_f64().unwrap() < 400.0
    );

    let alarms: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "anomaly")
        .collect();
    assert_eq!(alarms.len(), 1, "one alarm per episode: {alarms:?}");
    assert_eq!(alarms[0]["resource"], "checkout");
    assert_eq!(alarms[0]["timestamp"], scored[300]["timestamp"]);
    assert_eq!(alarms[0]["payload"]["metric"], "checkout_latency_ms");
    assert_eq!(alarms[0]["payload"]["sample_event_type"], "metrics.push");
    server.wait_matched(events.len());
    assert_eq!(server.runs_of("on-anomaly").len(), 1);
    assert_eq!(server.runs_of("on-score").len(), 1);
    assert_eq!(server.metric("grace_anomaly_alarms_total"), 1.0);
}

#[test]
fn bad_and_out_of_order_samples_are_counted_and_not_scored() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    push(&server, &ordinary(0..100));
    // Sent again (the same times) and older ones: refused by the detector, counted; the events
    // themselves are still accepted, without a score.
    push(&server, &ordinary(50..60));
    let events = server.events();
    let resent = samples(&events);
    assert_eq!(resent.len(), 110);
    assert!(
        resent[100..]
            .iter()
            .all(|e| e["payload"].get("anomaly_score").is_none())
    );
    assert_eq!(
        server.metric("grace_anomaly_samples_total{fate=\"out_of_order\"}"),
        10.0
    );
    assert_eq!(
        server.metric("grace_anomaly_samples_total{fate=\"scored\"}"),
        100.0
    );
}

#[test]
fn detectors_answer_the_same_after_a_kill_as_without_it() {
    let series: Vec<(u64, f64)> = ordinary(0..400)
        .into_iter()
        .chain([(400, 260.0), (401, 150.0), (402, 233.0)])
        .collect();
    let scores_of = |server: &Server| -> Vec<Value> {
        samples(&server.events())[400..]
            .iter()
            .map(|e| e["payload"]["anomaly"].clone())
            .collect()
    };

    let steady_dir = tempfile::tempdir().unwrap();
    let steady = Server::start(steady_dir.path(), &[]);
    push(&steady, &series);
    let without_restart = scores_of(&steady);

    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &[]);
    push(&server, &series[..400]);
    server.kill9();
    let server = Server::start(data.path(), &[]);
    push(&server, &series[400..]);
    let after_restart = scores_of(&server);

    assert!(without_restart.iter().all(|s| s["score"].is_number()));
    assert_eq!(after_restart, without_restart);
}

#[test]
fn on_a_replayed_incident_the_anomaly_trigger_fires_before_the_threshold_trigger_would_have() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let threshold = manifest(
        "on-threshold",
        "[[triggers]]\nevent_type = \"metrics.push\"\nresource = \"checkout\"\ncondition = \"value > 500\"\ncooldown = \"1d\"\n",
    );
    let anomalous = manifest(
        "on-anomaly",
        "[[triggers]]\nevent_type = \"anomaly\"\nresource = \"checkout\"\ncooldown = \"1d\"\n",
    );
    assert_eq!(server.upload(&threshold, component("echo")).0, 201);
    assert_eq!(server.upload(&anomalous, component("echo")).0, 201);

    // A leak: steady for a day, then latency climbs 30 ms per sample until well past 500.
    let mut series = ordinary(0..300);
    series.extend((300..330).map(|i| (i, latency(i) + 30.0 * (i - 299) as f64)));
    push(&server, &series);
    let n = server.events().len();
    server.wait_matched(n);
    // The sample each trigger fired on: its time (RFC 3339, the same format for both) and
    // value. (An alarm is stored after its batch's samples: times, not sequence numbers, say
    // which sample came first.)
    let fired_on = |playbook: &str| -> (String, f64) {
        let runs = server.runs_of(playbook);
        assert_eq!(runs.len(), 1, "{playbook}: {runs:?}");
        let id = runs[0]["id"].as_str().unwrap();
        let (status, run) = server.get(&format!("/v1/runs/{id}"));
        assert_eq!(status, 200, "{run}");
        (
            run["event"]["timestamp"].as_str().unwrap().to_owned(),
            run["event"]["payload"]["value"].as_f64().unwrap(),
        )
    };
    let (threshold_at, threshold_value) = fired_on("on-threshold");
    let (alarm_at, alarm_value) = fired_on("on-anomaly");
    assert!(threshold_value > 500.0);
    assert!(
        alarm_at < threshold_at,
        "the anomaly trigger fired on {alarm_value} ms at {alarm_at}, the threshold's on {threshold_value} ms at {threshold_at}"
    );
    // It saw the climb within its first steps, far below the threshold.
    assert!(alarm_value < 350.0, "{alarm_value}");
}

#[test]
fn the_predictive_scaling_example_scales_before_the_forecast_breach() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("grace.toml");
    std::fs::write(
        &config,
        "[anomaly.forecast]\nmetrics = [\"service_latency_*\"]\nhorizons = [\"10m\", \"1h\"]\n",
    )
    .unwrap();
    let server = Server::start(data.path(), &["--config", config.to_str().unwrap()]);
    let predictive =
        std::fs::read_to_string(example("predictive-scale").join("playbook.toml")).unwrap();
    assert_eq!(
        server.upload(&predictive, component("predictive_scale")).0,
        201
    );
    let threshold = manifest(
        "on-breach",
        "[[triggers]]\nevent_type = \"metrics.push\"\ncondition = \"metric == 'service_latency_p95_ms' && value > 500\"\ncooldown = \"1d\"\n",
    );
    assert_eq!(server.upload(&threshold, component("echo")).0, 201);

    // A day at about 300 ms, then the p95 climbs 5 ms every five minutes.
    let p95 = |i: u64| -> f64 {
        let noise = ((i * 7_919) % 7) as f64;
        if i < 288 {
            300.0 + noise
        } else {
            300.0 + noise + 5.0 * (i - 287) as f64
        }
    };
    let metrics: Vec<Value> = (0..340u64)
        .map(|i| {
            json!({"name": "service_latency_p95_ms", "labels": {"service": "api-service"},
                   "value": p95(i), "timestamp": START_MS + i * FIVE_MIN})
        })
        .collect();
    push_metrics(&server, &metrics, 100);
    let events = server.events();
    server.wait_matched(events.len());

    // Every sample after the first fit carries the forecast, per configured horizon.
    let last = &samples(&events)[339]["payload"]["forecast"];
    assert!(last["model"].is_string(), "{last}");
    assert_eq!(last["level"], 0.9);
    for horizon in ["10m", "1h"] {
        let h = &last[horizon];
        assert!(
            h["low"].as_f64().unwrap() <= h["value"].as_f64().unwrap(),
            "{h}"
        );
        assert!(
            h["value"].as_f64().unwrap() <= h["high"].as_f64().unwrap(),
            "{h}"
        );
        assert!(
            h["min"].as_f64().unwrap() <= h["max"].as_f64().unwrap(),
            "{h}"
        );
    }
    // Still climbing: an hour ahead is forecast higher than ten minutes ahead.
    assert!(last["1h"]["max"].as_f64().unwrap() > last["10m"]["max"].as_f64().unwrap());

    let first_run = |playbook: &str| -> Value {
        let runs = server.runs_of(playbook);
        assert!(!runs.is_empty(), "{playbook} never ran");
        let id = runs.last().unwrap()["id"].as_str().unwrap().to_owned();
        server.wait_state(&id, &["succeeded"])
    };
    let scaled = first_run("predictive-scale");
    let breach = first_run("on-breach");
    let value = |run: &Value| run["event"]["payload"]["value"].as_f64().unwrap();
    assert!(value(&scaled) <= 500.0, "{scaled}");
    assert!(
        scaled["event"]["timestamp"].as_str() < breach["event"]["timestamp"].as_str(),
        "scaled on {} ms, the breach came at {} ms",
        value(&scaled),
        value(&breach)
    );
    assert_eq!(scaled["outcome"]["changed"], true, "{scaled}");
}

/// A shop of three services on the simulated fleet: `web` calls `api`, `api` calls `db`.
fn shop_fleet(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = String::new();
    for name in ["web", "api", "db"] {
        text.push_str(&format!(
            "[[groups]]\nname = \"{name}-asg\"\nmin_size = 2\nmax_size = 6\n\n\
             [[services]]\nname = \"{name}\"\ngroup = \"{name}-asg\"\nload_rps = 100\n\
             rps_per_instance = 100\nbase_latency_ms = 50\n\n"
        ));
    }
    text.push_str(
        "[[dependencies]]\nfrom = \"web\"\nto = \"api\"\nrps = 50\n\n\
         [[dependencies]]\nfrom = \"api\"\nto = \"db\"\nrps = 80\n",
    );
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_incident_gathers_its_neighbours_signals_and_ranks_the_injected_fault_first() {
    let data = tempfile::tempdir().unwrap();
    let fleet = shop_fleet(data.path());
    let server = Server::start(data.path(), &["--fleet", fleet.to_str().unwrap()]);
    let on_alarm = manifest("on-alarm", "[[triggers]]\nevent_type = \"anomaly\"\n");
    assert_eq!(server.upload(&on_alarm, component("echo")).0, 201);

    // Five hours of ordinary minutes, then a fault injected into `db` at minute 300: its latency
    // climbs; `web`'s error rate reacts first (its alarm is the incident's first signal), `db`'s
    // latency alarms a minute later, `api`'s a minute after that, and all stay high.
    const MINUTE: u64 = 60_000;
    let base = |i: u64, k: u64| ((i * 7_919 + k * 31) % 13) as f64;
    let mut metrics = Vec::new();
    for i in 0..330u64 {
        for (service, metric, k, from, jump) in [
            ("web", "http_errors_per_s", 1, 300, 60.0),
            ("db", "query_latency_ms", 2, 301, 400.0),
            ("api", "latency_ms", 3, 302, 250.0),
        ] {
            let fault = if i >= from {
                jump + 3.0 * (i - from) as f64
            } else {
                0.0
            };
            metrics.push(json!({"name": metric, "labels": {"service": service},
                                "value": 20.0 + base(i, k) + fault,
                                "timestamp": START_MS + i * MINUTE}));
        }
    }
    push_metrics(&server, &metrics, 300);
    let events = server.events();
    server.wait_matched(events.len());

    let (status, incidents) = server.get("/v1/incidents");
    assert_eq!(status, 200, "{incidents}");
    let incidents = incidents.as_array().unwrap();
    assert_eq!(
        incidents.len(),
        1,
        "one incident for the three neighbours: {incidents:?}"
    );
    let incident = &incidents[0];
    let id = incident["id"].as_str().unwrap();
    assert!(id.starts_with("inc-"), "{id}");
    assert_eq!(incident["first_resource"], "web");
    let mut resources: Vec<&str> = incident["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    resources.sort_unstable();
    assert_eq!(resources, ["api", "db", "web"]);

    // Its events carry its id, and so do the runs they triggered.
    let stamped = events
        .iter()
        .filter(|e| e["payload"]["incident_id"] == id)
        .count();
    assert!(stamped >= 3, "{stamped}");
    // The last alarm (`api`'s, which joined the three) carries the causes as they ranked then,
    // for the runs it fires: `db` already first.
    let api_alarm = events
        .iter()
        .find(|e| e["event_type"] == "anomaly" && e["resource"] == "api")
        .unwrap();
    assert_eq!(
        api_alarm["payload"]["incident_causes"][0]["resource"], "db",
        "{api_alarm}"
    );
    let (status, detail) = server.get(&format!("/v1/incidents/{id}"));
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["runs"].as_array().unwrap().len(), 3, "{detail}");

    let (status, ranked) = server.get(&format!("/v1/incidents/{id}/causes"));
    assert_eq!(status, 200, "{ranked}");
    assert_eq!(ranked["graph"], true);
    let causes = ranked["causes"].as_array().unwrap();
    let mut order: Vec<&str> = causes
        .iter()
        .map(|c| c["resource"].as_str().unwrap())
        .collect();
    assert_eq!(order[0], "db", "the injected fault ranks first: {ranked}");
    order.sort_unstable();
    assert_eq!(order, ["api", "db", "web"], "{ranked}");
    let db = &causes[0];
    assert_eq!(db["distance"], 2);
    assert_eq!(
        db["path"],
        json!([
            "service:default/web",
            "service:default/api",
            "service:default/db"
        ])
    );
    let reason = db["reason"].as_str().unwrap();
    assert!(reason.contains("2 steps upstream of web"), "{reason}");
    assert!(reason.contains("after web"), "{reason}");

    // The CLI shows the same, and a run of the incident names it with its causes.
    let shown = server.grace_with(&["incidents", "show", id]);
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("1. db"), "{text}");
    assert!(text.contains("upstream of web"), "{text}");
    let run = detail["runs"][0]["id"].as_str().unwrap();
    let shown = server.grace_with(&["runs", "show", run]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("incident inc-"), "{text}");
    assert!(text.contains("1. db"), "{text}");

    // The same incident, and the same ranking, after a kill: both are rebuilt from the log.
    let mut server = server;
    server.kill9();
    let server = Server::start(data.path(), &["--fleet", fleet.to_str().unwrap()]);
    let (_, again) = server.get(&format!("/v1/incidents/{id}/causes"));
    assert_eq!(again, ranked);

    // Bad ids are refused naming the field; unknown ones are not found.
    assert_eq!(server.get("/v1/incidents/not-an-id").0, 400);
    assert_eq!(
        server
            .get("/v1/incidents/inc-19700101T0000-00000000/causes")
            .0,
        404
    );
}
