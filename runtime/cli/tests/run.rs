//! `grace run` as an operator uses it: the triggers checked on the event first (and `--force`),
//! the event's value seen by the simulation, a dry run that writes nothing into the data
//! directory, a real run against the backends of grace.toml (the Kubernetes test API server)
//! recorded in the data directory's ledger, and refused while a server holds it. And the
//! simulated time of `grace serve --simulate`: an event cannot move it into another year, and
//! a restart keeps the simulated fleet as the runs left it.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::cluster::Cluster;
use common::*;
use grace_testkit::{example, poll_until};
use serde_json::{Value, json};

const P95: &str = r#"service_latency_p95_ms{service="api-service"}"#;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A p95 latency event for `api-service`, naming the series it measured.
fn latency_event(dir: &Path, value: f64) -> PathBuf {
    let file = dir.join(format!("latency-{value}.json"));
    let event = json!({
        "event_type": "metrics.latency", "source": "prometheus", "actor": "tests",
        "resource": "api-service", "timestamp": "2026-01-01T00:05:00Z",
        "payload": { "value": value, "metric": "p95_latency_ms", "query": P95 },
    });
    std::fs::write(&file, event.to_string()).unwrap();
    file
}

fn dry_run_scale(event: &Path, data: &Path, extra: &[&str]) -> Output {
    let playbook = example("scale-on-latency");
    let mut args = vec![
        "run",
        s(&playbook),
        "--event",
        s(event),
        "--dry-run",
        "--data-dir",
        s(data),
    ];
    args.extend_from_slice(extra);
    grace(&args)
}

#[test]
fn an_event_below_the_threshold_does_not_run_the_playbook_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = dry_run_scale(&latency_event(dir.path(), 40.0), dir.path(), &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("trigger  #0 does not hold"), "{t}");
    assert!(
        t.contains("event type `metrics.latency` matches `metrics.latency`"),
        "{t}"
    );
    assert!(t.contains("resource `api-service` matches `api-*`"), "{t}");
    assert!(
        t.contains("condition `value > 500` is false with value = 40"),
        "{t}"
    );
    assert!(t.contains("not run  no trigger"), "{t}");
    assert!(!t.contains("timeline"), "nothing ran: {t}");
}

#[test]
fn windows_cooldowns_and_dedup_are_reported_as_not_evaluated_for_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let out = dry_run_scale(&latency_event(dir.path(), 900.0), dir.path(), &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let trigger = &report["triggers"][0];
    assert_eq!(trigger["holds"], true, "{trigger}");
    assert_eq!(trigger["condition"]["inputs"], json!([["value", 900.0]]));
    assert_eq!(
        trigger["not_evaluated"],
        json!(["for `2m`", "cooldown `10m`", "dedup_key `{resource}`"])
    );
    assert_eq!(report["forced"], false);
}

#[test]
fn forced_the_playbook_sees_the_events_latency_and_does_not_scale() {
    let dir = tempfile::tempdir().unwrap();
    let out = dry_run_scale(
        &latency_event(dir.path(), 40.0),
        dir.path(),
        &["--force", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["forced"], true);
    assert_eq!(report["triggers"][0]["holds"], false);
    assert_eq!(report["actions"], json!([]), "40 ms needs no capacity");
    assert_eq!(report["fleet"]["after"]["groups"][0]["desired_capacity"], 3);
    let query = report["run"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["interface"] == "metrics")
        .unwrap();
    assert!(
        query["result"].to_string().contains("40"),
        "the playbook read the event's 40 ms, not the fleet's 900: {query}"
    );
    assert!(report["seeded"].as_str().unwrap().contains(P95), "{report}");

    let out = dry_run_scale(&latency_event(dir.path(), 40.0), dir.path(), &["--force"]);
    assert!(
        text(&out).contains("forced   no trigger holds for this event"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_matching_event_runs_and_an_event_without_a_series_says_the_simulation_answers() {
    let dir = tempfile::tempdir().unwrap();
    // The example's event reports 912 ms and names no series.
    let out = dry_run_scale(
        &example("scale-on-latency").join("event.json"),
        dir.path(),
        &[],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("trigger  #0 holds"), "{t}");
    assert!(
        t.contains("not evaluated for a single event: for `2m`"),
        "{t}"
    );
    assert!(
        t.contains("queries read the simulation's own values"),
        "{t}"
    );
    assert!(t.contains("scaling.set-desired-capacity"), "{t}");
}

/// Every file under `dir`, with its length and a hash of its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, (usize, u64)> {
    use std::hash::{Hash, Hasher};
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            out.insert(path.clone(), (bytes.len(), h.finish()));
        }
    }
    out
}

#[test]
fn a_dry_run_leaves_the_data_directory_untouched() {
    let data = tempfile::tempdir().unwrap();
    let events = tempfile::tempdir().unwrap();
    let init = grace(&["init", "--data-dir", s(data.path())]);
    assert!(init.status.success(), "{}", text(&init));
    let ledger_before = grace(&["ledger", "verify", "--data-dir", s(data.path())]);
    let before = files(data.path());

    let out = dry_run_scale(&latency_event(events.path(), 900.0), data.path(), &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("set-desired-capacity"), "the dry run acted: {t}");
    assert!(
        t.contains("a temporary ledger, removed when the dry run ends"),
        "{t}"
    );
    assert_eq!(
        files(data.path()),
        before,
        "not a byte of the data directory changed"
    );
    let ledger_after = grace(&["ledger", "verify", "--data-dir", s(data.path())]);
    assert_eq!(text(&ledger_after), text(&ledger_before));
}

/// The Kubernetes test API server with `shop/checkout` at 2 replicas, and a grace.toml acting
/// on it.
struct Checkout {
    cluster: Cluster,
    config: PathBuf,
}

impl Checkout {
    fn start() -> Checkout {
        let cluster = Cluster::start();
        cluster.server.seed_rolled_out("shop", "checkout", 2);
        let config = cluster.config("poll_interval = \"100ms\"\n");
        Checkout { cluster, config }
    }

    fn replicas(&self) -> i32 {
        self.cluster.replicas("shop", "checkout").0
    }

    fn run(&self, data: &Path, extra: &[&str]) -> Output {
        let playbook = example("k8s-scale-deployment");
        let event = playbook.join("event.json");
        let mut args = vec![
            "run",
            s(&playbook),
            "--event",
            s(&event),
            "--config",
            s(&self.config),
            "--data-dir",
            s(data),
        ];
        args.extend_from_slice(extra);
        grace(&args)
    }
}

#[test]
fn a_real_run_acts_on_the_configured_backend_and_records_in_the_data_directory() {
    let cluster = Checkout::start();
    let data = tempfile::tempdir().unwrap();
    let out = cluster.run(data.path(), &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.starts_with("run of playbook k8s-scale-deployment"), "{t}");
    assert!(t.contains("trigger  #0 holds"), "{t}");
    assert!(t.contains("backend  kubernetes: `kubernetes`"), "{t}");
    assert_eq!(cluster.replicas(), 4, "the event asked for 4 replicas");

    let verify = grace(&["ledger", "verify", "--data-dir", s(data.path())]);
    assert!(verify.status.success(), "{}", text(&verify));
    let show = grace(&["ledger", "show", "--json", "--data-dir", s(data.path())]);
    let entries: Vec<Value> = String::from_utf8_lossy(&show.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        entries.iter().any(|e| e["interface"] == "kubernetes"
            && e["function"] == "scale-deployment"
            && e["decision"]["verdict"] == "allowed"),
        "{entries:?}"
    );
}

#[test]
fn a_real_run_is_refused_while_a_server_holds_the_data_directory() {
    let cluster = Checkout::start();
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let out = cluster.run(data.path(), &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("is in use by another process"), "{t}");
    assert!(t.contains("grace events publish"), "{t}");
    assert_eq!(cluster.replicas(), 2, "nothing was changed");
    drop(server);
}

fn fleet(server: &Server) -> (u64, u64) {
    let (status, fleet) = server.get("/v1/fleet");
    assert_eq!(status, 200, "{fleet}");
    let desired = fleet["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "api-asg")
        .unwrap()["desired_capacity"]
        .as_u64()
        .unwrap();
    (desired, fleet["time_millis"].as_u64().unwrap())
}

#[test]
fn an_event_stamped_far_ahead_is_refused_naming_the_timestamp_and_the_bound() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let (_, time_before) = fleet(&server);
    let mut far = event("test.far", "r", 0, 1.0);
    far["timestamp"] = json!("2099-01-01T00:00:00Z");

    let (status, body) = server.post("/v1/events", far.clone());
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "timestamp", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`timestamp` 2099-01-01T00:00:00"),
        "{message}"
    );
    assert!(message.contains("15m"), "{message}");
    assert!(message.contains("max_event_skew"), "{message}");

    let (status, body) = server.post("/v1/events", json!([event("test.near", "r", 60, 1.0), far]));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "events[1].timestamp", "{body}");
    let (_, stored) = server.get("/v1/events");
    assert_eq!(stored, json!([]), "nothing of a refused batch is stored");
    assert_eq!(fleet(&server).1, time_before, "the clock did not move");

    // The recorded incident, six minutes of samples, is accepted as before.
    let incident: Value = serde_json::from_str(
        &std::fs::read_to_string(
            grace_testkit::playbooks_dir().join("incidents/latency-incident.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(server.post("/v1/events", incident).0, 202);
}

#[test]
fn a_restart_keeps_the_simulated_fleet_as_the_runs_left_it_and_its_clock() {
    let data = data_dir();
    let mut server = Server::start(&path_of(&data), &[]);
    let scale = std::fs::read_to_string(example("scale-on-latency").join("playbook.toml")).unwrap();
    assert_eq!(server.upload(&scale, component("scale_on_latency")).0, 201);
    let incident: Value = serde_json::from_str(
        &std::fs::read_to_string(
            grace_testkit::playbooks_dir().join("incidents/latency-incident.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let n = incident.as_array().unwrap().len();
    assert_eq!(server.post("/v1/events", incident).0, 202);
    server.wait_matched(n);
    let run = poll_until("the scaling run", Duration::from_secs(60), || {
        server.runs_of("scale-on-latency").into_iter().next()
    });
    server.wait_state(run["id"].as_str().unwrap(), &["succeeded"]);
    let (desired, time) = fleet(&server);
    assert_eq!(desired, 5, "the run scaled the group");

    server.kill9();
    let server = Server::start(&path_of(&data), &[]);
    let (desired_after, time_after) = fleet(&server);
    assert_eq!(desired_after, 5, "the fleet is as the run left it");
    assert!(
        time_after >= time,
        "the clock did not go back: {time_after} < {time}"
    );
}
