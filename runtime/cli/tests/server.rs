//! `grace serve` over real HTTP: upload validation, trigger semantics, backpressure, the run
//! lifecycle, and a `kill -9` in the middle of it all.
//!
//! Each test starts its own server process (simulation mode, loopback, an ephemeral port, a
//! fresh data directory) and talks to it as any client would.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use grace_testkit::{example, poll_until};
use serde_json::{Value, json};

#[test]
fn uploads_are_validated_before_anything_is_stored() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &["--max-upload-bytes", "1048576"]);
    let good = manifest("echo-test", "[[triggers]]\nevent_type = \"test.echo\"\n");

    let (status, body) = server.upload(&good, b"not wasm at all".to_vec());
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "component");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file")
    );

    let (status, body) = server.upload(&good, component("latency_collector"));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not implement the `playbook` world")
    );

    let (status, body) = server.upload(&good.replace("echo-test", "Echo Test"), component("echo"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "manifest.name");

    let bad_condition = manifest(
        "echo-test",
        "[[triggers]]\nevent_type = \"x\"\ncondition = \"value >\"\n",
    );
    let (status, body) = server.upload(&bad_condition, component("echo"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "manifest.triggers[0].condition");

    // Refused as soon as the body passes the limit, without reading the rest: a client still
    // sending may see the connection closed rather than the 413. Either way nothing is stored
    // (checked below).
    if let Some((status, body)) = server.try_upload(&good, vec![0u8; 2 * 1024 * 1024]) {
        assert_eq!(status, 413, "{body}");
    }

    let (status, body) = server.post_raw("/v1/playbooks", b"{}".to_vec());
    assert_eq!(status, 415, "{body}");

    let (_, list) = server.get("/v1/playbooks");
    assert_eq!(list, json!([]), "nothing was stored by refused uploads");

    let (status, body) = server.upload(&good, component("echo"));
    assert_eq!(status, 201, "{body}");
    let (status, _) = server.upload(&good, component("echo"));
    assert_eq!(status, 200, "the same upload again changes nothing");
    let (status, body) = server.upload(&good, component("trivial"));
    assert_eq!(status, 409, "a version is immutable: {body}");
    let regranted = good.replace("test.echo", "test.anything");
    let (status, body) = server.upload(&regranted, component("echo"));
    assert_eq!(
        status, 409,
        "a manifest changed under the same version is refused, not ignored: {body}"
    );
    let (_, shown) = server.get("/v1/playbooks/echo-test");
    assert!(shown.to_string().contains("test.echo"), "{shown}");

    let (status, health) = server.get("/healthz");
    assert_eq!((status, health["status"].clone()), (200, json!("ok")));
}

#[test]
fn a_trigger_fires_only_once_its_condition_has_held_for_its_window() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let m = manifest(
        "held",
        "[[triggers]]\nevent_type = \"test.latency\"\ncondition = \"value > 500\"\nfor = \"2m\"\n",
    );
    assert_eq!(server.upload(&m, component("echo")).0, 201);
    for (i, (secs, value)) in [
        (0, 600.0),
        (60, 700.0),
        (90, 400.0),
        (120, 800.0),
        (200, 800.0),
    ]
    .iter()
    .enumerate()
    {
        let (status, _) = server.post("/v1/events", event("test.latency", "svc", *secs, *value));
        assert_eq!(status, 202);
        server.wait_matched(i + 1);
        assert!(
            server.runs_of("held").is_empty(),
            "fired too early, at t={secs}s"
        );
    }
    // Held since t=120 s (the 400 at t=90 s reset the window): fires at t=240 s, not before.
    server.post("/v1/events", event("test.latency", "svc", 240, 800.0));
    server.wait_matched(6);
    let runs = server.runs_of("held");
    assert_eq!(runs.len(), 1);
    server.wait_state(runs[0]["id"].as_str().unwrap(), &["succeeded"]);
}

#[test]
fn cooldown_and_dedup_suppress_repeats() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let m = manifest(
        "cooled",
        "[[triggers]]\nevent_type = \"test.alert\"\ncooldown = \"5m\"\ndedup_key = \"{resource}\"\n",
    );
    assert_eq!(server.upload(&m, component("echo")).0, 201);
    server.post("/v1/events", event("test.alert", "svc", 0, 1.0));
    server.wait_matched(1);
    let first = server.runs_of("cooled");
    assert_eq!(first.len(), 1);
    server.wait_state(first[0]["id"].as_str().unwrap(), &["succeeded"]);

    server.post("/v1/events", event("test.alert", "svc", 60, 1.0));
    server.wait_matched(2);
    assert_eq!(server.runs_of("cooled").len(), 1, "within the cooldown");
    assert!(server.metric("grace_triggers_suppressed_total{reason=\"cooling_down\"}") >= 1.0);

    server.post("/v1/events", event("test.alert", "other", 60, 1.0));
    server.wait_matched(3);
    assert_eq!(
        server.runs_of("cooled").len(),
        2,
        "cooldowns are per resource"
    );

    server.post("/v1/events", event("test.alert", "svc", 301, 1.0));
    server.wait_matched(4);
    assert_eq!(server.runs_of("cooled").len(), 3, "after the cooldown");
}

#[test]
fn two_runs_never_hold_the_same_resource_and_capability_and_cancel_frees_it() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let grants = "[grants.scaling]\ngroups = [\"api-*\"]\n";
    let spinner = manifest(
        "a-spinner",
        &format!(
            "[[triggers]]\nevent_type = \"test.a\"\n[limits]\ntimeout = \"60s\"\nfuel = 1_000_000_000_000\n{grants}"
        ),
    );
    let echo = manifest(
        "b-echo",
        &format!("[[triggers]]\nevent_type = \"test.b\"\n{grants}"),
    );
    assert_eq!(server.upload(&spinner, component("infinite_loop")).0, 201);
    assert_eq!(server.upload(&echo, component("echo")).0, 201);

    server.post("/v1/events", event("test.a", "api-asg", 0, 1.0));
    server.wait_matched(1);
    let spinning = server.runs_of("a-spinner");
    let spinning = spinning[0]["id"].as_str().unwrap().to_owned();
    server.wait_state(&spinning, &["running"]);

    server.post("/v1/events", event("test.b", "api-asg", 1, 1.0));
    server.wait_matched(2);
    assert!(
        server.runs_of("b-echo").is_empty(),
        "scaling:api-asg is held by the spinner"
    );
    assert!(server.metric("grace_triggers_suppressed_total{reason=\"busy\"}") >= 1.0);

    let (status, body) = server.post(&format!("/v1/runs/{spinning}/cancel"), json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled");
    let (status, _) = server.post(&format!("/v1/runs/{spinning}/cancel"), json!({}));
    assert_eq!(status, 409, "a finished run cannot be cancelled again");

    server.post("/v1/events", event("test.b", "api-asg", 2, 1.0));
    server.wait_matched(3);
    let echo_runs = server.runs_of("b-echo");
    assert_eq!(echo_runs.len(), 1, "the lock was released by the cancel");
    server.wait_state(echo_runs[0]["id"].as_str().unwrap(), &["succeeded"]);
    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn a_run_past_its_deadline_is_timed_out() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let m = manifest(
        "spin-briefly",
        "[[triggers]]\nevent_type = \"test.spin\"\n[limits]\ntimeout = \"1s\"\nfuel = 1_000_000_000_000\n",
    );
    assert_eq!(server.upload(&m, component("infinite_loop")).0, 201);
    server.post("/v1/events", event("test.spin", "r", 0, 1.0));
    server.wait_matched(1);
    let id = server.runs_of("spin-briefly")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = server.wait_state(&id, &["timed-out"]);
    assert_eq!(run["failure"]["kind"], "deadline-exceeded");
    assert_eq!(
        run["attempts"], 1,
        "a deadline is not a transient error: no retry"
    );
}

#[test]
fn a_full_queue_answers_429_and_stores_nothing() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &["--queue-capacity", "2"]);
    let too_big = json!([
        event("test.x", "r", 0, 1.0),
        event("test.x", "r", 1, 1.0),
        event("test.x", "r", 2, 1.0)
    ]);
    let (status, body) = server.post("/v1/events", too_big);
    assert_eq!(
        status, 413,
        "a batch larger than the queue can never fit: {body}"
    );

    // A spinning run holds the simulation's matcher (it lets each fired run finish, for up to a
    // second of wall time), so the queue fills up behind it.
    let spinner = manifest(
        "spinner",
        "[[triggers]]\nevent_type = \"test.spin\"\n[limits]\ntimeout = \"30s\"\nfuel = 1_000_000_000_000\n",
    );
    assert_eq!(server.upload(&spinner, component("infinite_loop")).0, 201);
    assert_eq!(
        server.post("/v1/events", event("test.spin", "r", 0, 1.0)).0,
        202
    );
    let full = poll_until("the queue to fill up", Duration::from_secs(20), || {
        let (status, body) = server.post("/v1/events", event("test.x", "r", 1, 1.0));
        (status == 429).then_some(body)
    });
    assert_eq!(full["error"]["code"], "queue_full");
    assert_eq!(full["retry_after_header"], "1");
    let accepted = server.metric("grace_events_accepted_total");
    let (_, stored) = server.get("/v1/events?limit=100");
    assert_eq!(
        stored.as_array().unwrap().len() as f64,
        accepted,
        "refused events are not stored, accepted ones all are"
    );
    assert!(server.metric("grace_events_throttled_total") >= 1.0);
}

#[test]
fn bad_events_are_refused_naming_the_field_and_the_server_keeps_going() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &["--max-body-bytes", "4096"]);
    let mut bad = event("test.x", "r", 0, 1.0);
    bad["event_type"] = json!("");
    let (status, body) = server.post("/v1/events", json!([event("test.x", "r", 0, 1.0), bad]));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "events[1].event_type");
    let (status, _) = server.post_raw("/v1/events", b"{not json".to_vec());
    assert_eq!(status, 400);
    let (status, _) = server.post_raw("/v1/events", vec![b' '; 8192]);
    assert_eq!(status, 413);
    let (status, body) = server.get("/v1/runs?state=sleeping");
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("state"))
    );
    let (_, stored) = server.get("/v1/events");
    assert_eq!(stored, json!([]));
    assert_eq!(
        server.post("/v1/events", event("test.x", "r", 0, 1.0)).0,
        202
    );
}

#[test]
fn a_restart_replays_only_the_log_after_the_mesh_checkpoint_and_keeps_its_windows() {
    let data = data_dir();
    let config = data.path().join("grace.toml");
    let every = 100;
    std::fs::write(&config, format!("mesh_checkpoint_events = {every}\n")).unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let mut server = Server::start(&path_of(&data), &args);
    let m = manifest(
        "held",
        "[[triggers]]\nevent_type = \"test.latency\"\ncondition = \"value > 500\"\nfor = \"2m\"\n",
    );
    assert_eq!(server.upload(&m, component("echo")).0, 201);
    // A hold window opens at t=0; then a log several checkpoints long.
    assert_eq!(
        server
            .post("/v1/events", event("test.latency", "svc", 0, 600.0))
            .0,
        202
    );
    let noise: Vec<Value> = (0..10 * every + 7)
        .map(|i| event("test.noise", &format!("n{i}"), 1, 1.0))
        .collect();
    assert_eq!(server.post("/v1/events", Value::Array(noise)).0, 202);
    let total = 1 + 10 * every + 7;
    server.wait_matched(total);
    assert!(server.runs_of("held").is_empty());

    server.kill9();
    let server = Server::start(&path_of(&data), &args);
    // A checkpoint is written with the first matched batch that ends `every` events or more
    // after the last one: fewer than `every` matched events come after the newest.
    let replayed = server.metric("grace_recovery_events_replayed");
    assert!(
        replayed < every as f64,
        "{replayed} of {total} events replayed after the checkpoint (one every {every})"
    );
    assert_eq!(server.metric("grace_recovery_backlog_events"), 0.0);

    // Matching goes on, and the window opened before the checkpoint still holds: held since
    // t=0, the trigger fires at t=120 s.
    assert_eq!(
        server
            .post("/v1/events", event("test.latency", "svc", 120, 700.0))
            .0,
        202
    );
    server.wait_matched(1);
    assert_eq!(server.runs_of("held").len(), 1);
}

#[test]
fn kill_9_loses_no_acknowledged_event_or_run_and_interrupted_runs_resume() {
    let data = data_dir();
    let mut server = Server::start(&path_of(&data), &[]);
    let scale = std::fs::read_to_string(example("scale-on-latency").join("playbook.toml")).unwrap();
    assert_eq!(server.upload(&scale, component("scale_on_latency")).0, 201);
    let spinner = manifest(
        "spinner",
        "[[triggers]]\nevent_type = \"test.spin\"\n[limits]\ntimeout = \"10m\"\nfuel = 1_000_000_000_000_000\n",
    );
    assert_eq!(server.upload(&spinner, component("infinite_loop")).0, 201);

    let incident = std::fs::read_to_string(
        grace_testkit::playbooks_dir().join("incidents/latency-incident.json"),
    )
    .unwrap();
    let incident: Value = serde_json::from_str(&incident).unwrap();
    let n = incident.as_array().unwrap().len();
    assert_eq!(server.post("/v1/events", incident).0, 202);
    assert_eq!(
        server
            .post("/v1/events", event("test.spin", "r", 400, 1.0))
            .0,
        202
    );
    server.wait_matched(n + 1);
    let scaled = server.runs_of("scale-on-latency");
    assert_eq!(scaled.len(), 1);
    server.wait_state(scaled[0]["id"].as_str().unwrap(), &["succeeded"]);
    let spinning = server.runs_of("spinner")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_state(&spinning, &["running"]);
    let (_, events_before) = server.get("/v1/events?limit=1000");
    let (_, head_before) = server.get("/v1/ledger/head");

    server.kill9();
    let server = Server::start(&path_of(&data), &[]);

    let (_, events_after) = server.get("/v1/events?limit=1000");
    assert_eq!(
        events_after, events_before,
        "every acknowledged event is still there"
    );
    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["entries"].as_u64().unwrap() >= head_before["entries"].as_u64().unwrap());
    let scaled_after = server.runs_of("scale-on-latency");
    assert_eq!(
        scaled_after.len(),
        1,
        "no run lost, and none fired twice after the restart"
    );
    assert_eq!(scaled_after[0]["state"], "succeeded");
    let (_, spin) = server.get(&format!("/v1/runs/{spinning}"));
    assert_eq!(spin["state"], "interrupted");

    let (status, body) = server.post(&format!("/v1/runs/{spinning}/resume"), json!({}));
    assert_eq!(status, 200, "{body}");
    server.wait_state(&spinning, &["running"]);
    let (status, body) = server.post(&format!("/v1/runs/{spinning}/cancel"), json!({}));
    assert_eq!(
        (status, body["state"].clone()),
        (200, json!("cancelled")),
        "{body}"
    );
}

#[test]
fn an_uploaded_collector_runs_on_its_schedule_and_its_events_fire_triggers() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let collector = "manifest_version = 2\nname = \"fast-collector\"\nversion = \"1.0.0\"\nkind = \"collector\"\n\
        component = \"unused.wasm\"\n[schedule]\nevery = \"1s\"\n[[grants.metrics.series]]\nmetric = \"service_latency_p95_ms\"\n";
    let watcher = manifest(
        "latency-watcher",
        "[[triggers]]\nevent_type = \"metrics.latency\"\ncondition = \"value > 500\"\ncooldown = \"1h\"\n",
    );
    assert_eq!(server.upload(&watcher, component("echo")).0, 201);
    assert_eq!(
        server.upload(collector, component("collector_fixture")).0,
        201
    );
    // Two passes: the first at once, the next a second later.
    let events = poll_until("two collector passes", Duration::from_secs(30), || {
        let (_, events) = server.get("/v1/events");
        let events = events.as_array()?.clone();
        (events.len() >= 2).then_some(events)
    });
    assert!(
        events
            .iter()
            .all(|e| e["event"]["actor"] == "fast-collector"),
        "the host sets the actor"
    );
    assert_eq!(events[0]["event"]["resource"], "api-service");
    let runs = poll_until("the watcher's run", Duration::from_secs(30), || {
        let runs = server.runs_of("latency-watcher");
        (!runs.is_empty()).then_some(runs)
    });
    assert_eq!(
        runs.len(),
        1,
        "the cooldown holds back the second pass's event"
    );
    assert!(server.metric("grace_collector_passes_total{result=\"ok\"}") >= 2.0);

    // Disabled, it stops collecting. Absence is shown against a witness: a second collector on
    // the same one-second schedule. The events of every source go through one queue in order,
    // so once a witness event that started after the disable is stored, anything the disabled
    // collector sent before is stored too; two witness passes later it must not have added one.
    assert_eq!(
        server
            .post("/v1/playbooks/fast-collector/disable", json!({}))
            .0,
        200
    );
    let witness = collector.replace("fast-collector", "witness-collector");
    assert_eq!(
        server.upload(&witness, component("collector_fixture")).0,
        201
    );
    let events_of = |actor: &str| {
        let (_, events) = server.get("/v1/events?limit=10000");
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"]["actor"] == actor)
            .count()
    };
    poll_until("the witness's first pass", Duration::from_secs(30), || {
        (events_of("witness-collector") >= 1).then_some(())
    });
    let settled = events_of("fast-collector");
    poll_until("two more witness passes", Duration::from_secs(30), || {
        (events_of("witness-collector") >= 3).then_some(())
    });
    assert_eq!(
        events_of("fast-collector"),
        settled,
        "a disabled collector makes no pass"
    );
}

#[test]
fn an_upload_with_version_one_query_globs_is_refused_with_the_series_that_replace_them() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let old = manifest(
        "old-metrics",
        "[grants.metrics]\nqueries = ['service_latency_p95_ms{service=\"*\"}']\n",
    );
    let (status, body) = server.upload(&old, component("echo"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "manifest.grants.metrics.queries");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "[[grants.metrics.series]]\nmetric = \"service_latency_p95_ms\"\nlabels = { service = \"*\" }"
        ),
        "{message}"
    );
    let (_, playbooks) = server.get("/v1/playbooks");
    assert_eq!(playbooks.as_array().map(Vec::len), Some(0), "{playbooks}");
}
