//! Alerts end to end, as an SRE would run GRACE: a real Prometheus (2.42) evaluates an alert rule
//! over a latency series it scrapes, a real Alertmanager (0.25) posts the alert to
//! `grace serve --simulate` with a bearer token, and `scale-on-latency` (its `alert.firing`
//! trigger) scales the simulated fleet. A repeated notification is deduplicated, and the
//! resolved one fires no run.
//!
//! The alert-to-run latency is printed (not asserted: timing goals belong in benchmarks), split
//! into Prometheus' detection, its `for` and evaluation, Alertmanager's `group_wait`, and GRACE's
//! own share, from the timestamps each of them records.
//!
//! Needs `prometheus` and `prometheus-alertmanager` (`just test-servers` installs Debian's):
//! without them the test is skipped, loudly, unless `GRACE_E2E=required`.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use grace_testkit::alertmanager::Alertmanager;
use grace_testkit::prometheus::Prometheus;
use grace_testkit::{example_manifest, poll_until};
use serde_json::Value;

/// The rule's threshold, as the example playbook's.
const THRESHOLD_MS: u64 = 500;
/// What the exporter reports while the service is healthy, and while it is slow.
const FAST_MS: u64 = 120;
const SLOW_MS: u64 = 900;

/// A `/metrics` endpoint serving `service_latency_p95_ms{service="api-service"}`: whatever
/// `latency` holds at each scrape.
fn start_exporter(latency: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // The request's head, bounded; a scrape has no body.
            let mut head = BufReader::new(stream.try_clone().unwrap().take(16 * 1024));
            let mut line = String::new();
            while head.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let body = format!(
                "# HELP service_latency_p95_ms The p95 latency of a service.\n\
                 # TYPE service_latency_p95_ms gauge\n\
                 service_latency_p95_ms{{service=\"api-service\"}} {}\n",
                latency.load(Ordering::SeqCst)
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Prometheus scraping the exporter and evaluating the `HighLatency` rule every second, sending
/// its alerts to Alertmanager.
fn prometheus_config(exporter: u16, alertmanager: u16) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files: [rules.yml]\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager}']\n\
         scrape_configs:\n  - job_name: api\n    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n"
    )
}

/// The alert rule, as `docs/sources.md` shows it, with a short `for`.
fn rules() -> String {
    format!(
        "groups:\n  - name: latency\n    rules:\n      - alert: HighLatency\n        \
         expr: service_latency_p95_ms > {THRESHOLD_MS}\n        for: 2s\n        \
         labels:\n          severity: page\n        \
         annotations:\n          summary: 'p95 latency of {{{{ $labels.service }}}} above {THRESHOLD_MS} ms'\n          \
         value: '{{{{ $value }}}}'\n"
    )
}

/// Alertmanager posting to GRACE's webhook with `token`: the receiver `docs/sources.md` shows,
/// with short waits so the test is quick; a firing group is sent again every 2 s.
fn alertmanager_config(grace: &str, token: &str) -> String {
    format!(
        "route:\n  receiver: grace\n  group_by: [alertname, service]\n  group_wait: 1s\n  \
         group_interval: 1s\n  repeat_interval: 2s\n\
         receivers:\n  - name: grace\n    webhook_configs:\n      \
         - url: {grace}/v1/sources/alertmanager\n        send_resolved: true\n        \
         http_config:\n          authorization:\n            type: Bearer\n            \
         credentials: {token}\n"
    )
}

/// A fleet file like the examples' default, its virtual clock starting now, where the alerts are.
fn fleet_starting_now(dir: &std::path::Path) -> String {
    let default =
        std::fs::read_to_string(grace_testkit::playbooks_dir().join("fleet.toml")).unwrap();
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let fleet = default.replace(
        "start = \"2026-01-01T00:00:00Z\"",
        &format!("start = \"{now}\""),
    );
    assert_ne!(fleet, default, "the default fleet's start moved");
    let path = dir.join("fleet.toml");
    std::fs::write(&path, fleet).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The stored events of one type.
fn events_of(server: &Server, event_type: &str) -> Vec<Value> {
    let (status, stored) = server.get("/v1/events?limit=10000");
    assert_eq!(status, 200, "{stored}");
    stored
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["event"]["event_type"] == event_type)
        .cloned()
        .collect()
}

/// One JSON document from a URL on loopback (Prometheus' or Alertmanager's API).
fn get_json(url: &str) -> Option<Value> {
    rt().block_on(async {
        let response = reqwest::get(url).await.ok()?;
        response.json().await.ok()
    })
}

/// Milliseconds of an RFC 3339 time, as the servers write them.
fn millis(text: &str) -> u64 {
    grace_server::sources::parse_time(text).unwrap_or_else(|| panic!("not a time: {text}"))
}

fn system_now_millis() -> u64 {
    grace_engine::event::system_now_millis()
}

#[test]
fn an_alert_from_real_prometheus_and_alertmanager_scales_the_fleet_once() {
    let test = "an_alert_from_real_prometheus_and_alertmanager_scales_the_fleet_once";

    let data = data_dir();
    let fleet = fleet_starting_now(data.path());
    let server = Server::start(&path_of(&data), &["--fleet", &fleet]);
    let (status, body) = server.upload(
        &example_manifest("scale-on-latency", &[]),
        component("scale_on_latency"),
    );
    assert_eq!(status, 201, "{body}");
    let (_, fleet_before) = server.get("/v1/fleet");
    assert_eq!(desired_capacity(&fleet_before, "api-asg"), 3);
    // Alertmanager's own principal and token, with the scope the webhook needs.
    let token = server.token_with("alertmanager", &["operate"]);

    let Some(mut alertmanager) =
        Alertmanager::start(test, &alertmanager_config(&server.url, &token))
    else {
        return;
    };
    let latency = Arc::new(AtomicU64::new(FAST_MS));
    let exporter = start_exporter(latency.clone());
    let Some(mut prometheus) = Prometheus::start(
        test,
        &prometheus_config(exporter, alertmanager.port()),
        &[("rules.yml", &rules())],
    ) else {
        return;
    };

    // Prometheus sees the healthy service, and the rule is loaded and quiet.
    let query = format!(
        "{}/api/v1/query?query=service_latency_p95_ms",
        prometheus.url()
    );
    poll_until(
        "Prometheus to scrape the exporter",
        Duration::from_secs(60),
        || {
            prometheus.assert_running();
            let body = get_json(&query)?;
            let value = body["data"]["result"][0]["value"][1].as_str()?.to_owned();
            (value == FAST_MS.to_string()).then_some(())
        },
    );
    let rules_url = format!("{}/api/v1/rules", prometheus.url());
    poll_until(
        "the HighLatency rule to be loaded",
        Duration::from_secs(30),
        || {
            let body = get_json(&rules_url)?;
            let rule = &body["data"]["groups"][0]["rules"][0];
            (rule["name"] == "HighLatency" && rule["state"] == "inactive").then_some(())
        },
    );

    // The service turns slow.
    let slow_since = system_now_millis();
    latency.store(SLOW_MS, Ordering::SeqCst);
    let run = poll_until(
        "a run of scale-on-latency fired by the alert",
        Duration::from_secs(60),
        || {
            prometheus.assert_running();
            alertmanager.assert_running();
            server.runs_of("scale-on-latency").into_iter().next()
        },
    );
    // Alertmanager's record of the alert, read while it is still the first one Prometheus sent
    // (Prometheus re-sends a firing alert every minute, and sends it resolved when it ends).
    // Prometheus' own: when the rule's condition first held (`activeAt`, the pending state's
    // start; the alert's `startsAt` is when it fired, after `for`).
    let prometheus_alerts = get_json(&format!("{}/api/v1/alerts", prometheus.url())).unwrap();
    let active_at = prometheus_alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "HighLatency")
        .and_then(|a| a["activeAt"].as_str())
        .map(millis)
        .unwrap_or_else(|| panic!("Prometheus has no HighLatency alert: {prometheus_alerts:#}"));
    let am_alerts = get_json(&format!("{}/api/v2/alerts", alertmanager.url())).unwrap();
    let am_alert = am_alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "HighLatency")
        .unwrap_or_else(|| panic!("Alertmanager holds no HighLatency alert: {am_alerts:#}"))
        .clone();

    let run = server.wait_state(
        run["id"].as_str().unwrap(),
        &["succeeded", "failed", "timed_out", "cancelled"],
    );
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let event = &run["event"];
    assert_eq!(event["event_type"], "alert.firing", "{event:#}");
    assert_eq!(event["source"], "alertmanager", "{event:#}");
    assert_eq!(event["actor"], "grace", "the receiver's name: {event:#}");
    assert_eq!(event["resource"], "api-service", "{event:#}");
    let payload = &event["payload"];
    assert_eq!(payload["labels"]["alertname"], "HighLatency", "{payload:#}");
    assert_eq!(payload["labels"]["severity"], "page", "{payload:#}");
    assert_eq!(
        payload["annotations"]["value"],
        SLOW_MS.to_string(),
        "{payload:#}"
    );
    assert_eq!(
        payload["fingerprint"], am_alert["fingerprint"],
        "{am_alert:#}"
    );
    assert_eq!(run["outcome"]["changed"], true, "{run:#}");
    assert_eq!(run["outcome"]["details"]["to"], "5", "{run:#}");
    let (_, fleet_after) = server.get("/v1/fleet");
    assert_eq!(
        desired_capacity(&fleet_after, "api-asg"),
        5,
        "{fleet_after:#}"
    );

    // Alertmanager sends the firing group again (`repeat_interval`): GRACE takes the
    // notification and skips its alert, already accepted.
    let source = poll_until(
        "Alertmanager to repeat the notification",
        Duration::from_secs(30),
        || {
            let (status, source) = server.get("/v1/sources/alertmanager");
            assert_eq!(status, 200, "{source}");
            (source["successes"].as_u64()? >= 2).then_some(source)
        },
    );
    assert_eq!(source["status"], "receiving", "{source:#}");
    let firing = events_of(&server, "alert.firing");
    assert_eq!(firing.len(), 1, "one event for the alert: {firing:#?}");
    assert_eq!(
        source["events"], 1,
        "the repeat was skipped as a duplicate: {source:#}"
    );

    // The service recovers: the resolved notification is stored, matched, and fires nothing.
    latency.store(FAST_MS, Ordering::SeqCst);
    let resolved = poll_until("the resolved notification", Duration::from_secs(60), || {
        events_of(&server, "alert.resolved").into_iter().next()
    });
    assert_eq!(
        resolved["event"]["payload"]["fingerprint"],
        payload["fingerprint"]
    );
    server.wait_matched(usize::try_from(resolved["seq"].as_u64().unwrap()).unwrap());
    let (_, runs) = server.get("/v1/runs");
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs:#}");
    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");

    // Where the time went, from the timestamps each server recorded.
    let fired_at = payload["starts_at"].as_u64().unwrap();
    let am_received = millis(am_alert["updatedAt"].as_str().unwrap());
    let (ingested, created, started) = (
        run["ingested_at"].as_u64().unwrap(),
        run["created_at"].as_u64().unwrap(),
        run["started_at"].as_u64().unwrap(),
    );
    let ms = |from: u64, to: u64| i128::from(to) - i128::from(from);
    eprintln!(
        "alert-to-run latency: {} ms from the exporter turning slow to the run's start\n  \
         Prometheus, scrape and evaluation until the condition held (activeAt): {} ms\n  \
         Prometheus, `for: 2s` and evaluation until it fired (startsAt):         {} ms\n  \
         Prometheus to Alertmanager (Alertmanager's updatedAt):                   {} ms\n  \
         Alertmanager, `group_wait: 1s`, to GRACE accepting the event:            {} ms\n  \
         GRACE, the event accepted to the run started:                            {} ms \
         (the trigger fired after {} ms)",
        ms(slow_since, started),
        ms(slow_since, active_at),
        ms(active_at, fired_at),
        ms(fired_at, am_received),
        ms(am_received, ingested),
        ms(ingested, started),
        ms(ingested, created),
    );
}

fn desired_capacity(fleet: &Value, group: &str) -> u64 {
    fleet["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == group)
        .unwrap_or_else(|| panic!("no group {group} in {fleet:#}"))["desired_capacity"]
        .as_u64()
        .unwrap()
}
