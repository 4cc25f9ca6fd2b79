//! Outcomes, end to end (docs/outcomes.md): a run is judged once it is over, by whether its
//! triggering signal came back within its bound within `[outcomes] window`, with its time to
//! recover and the capacity its changes added; the judgement survives `kill -9`, and so does a
//! run still waiting for it.
//!
//! Each test starts its own server on the simulated fleet, whose clock follows the events.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use grace_testkit::{example, playbooks_dir, poll_until};
use serde_json::{Value, json};

/// The recorded latency incident of `api-service` (2026-01-01T00:00:00Z to 00:05:30Z).
fn incident() -> Value {
    let text =
        std::fs::read_to_string(playbooks_dir().join("incidents/latency-incident.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A later sample of the incident's series, `secs` after the fleet's start.
fn sample(secs: u64, value: u64) -> Value {
    let mut e = incident()[0].clone();
    e["payload"]["value"] = json!(value);
    e["timestamp"] = json!(1_767_225_600_000u64 + secs * 1000);
    e
}

fn scale_on_latency(server: &Server) -> String {
    let scale = std::fs::read_to_string(example("scale-on-latency").join("playbook.toml")).unwrap();
    assert_eq!(server.upload(&scale, component("scale_on_latency")).0, 201);
    let n = incident().as_array().unwrap().len();
    assert_eq!(server.post("/v1/events", incident()).0, 202);
    server.wait_matched(n);
    let runs = server.runs_of("scale-on-latency");
    assert_eq!(runs.len(), 1);
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    server.wait_state(&id, &["succeeded"]);
    id
}

fn judged(server: &Server, id: &str) -> Value {
    poll_until(
        &format!("run {id} to be judged"),
        std::time::Duration::from_secs(30),
        || {
            let (_, run) = server.get(&format!("/v1/runs/{id}"));
            run.get("recovery").cloned()
        },
    )
}

#[test]
fn a_run_whose_latency_came_back_is_judged_cleared_with_its_time_to_recover_and_cost_across_a_kill_9()
 {
    let data = data_dir();
    let mut server = Server::start(&path_of(&data), &[]);
    let id = scale_on_latency(&server);
    let (_, run) = server.get(&format!("/v1/runs/{id}"));
    assert_eq!(run["watch"]["event_type"], "metrics.latency");
    assert_eq!(run["watch"]["unless"], "value > 500");
    assert!(run.get("recovery").is_none(), "still watching: {run}");
    let shown = stdout(&server.grace_with(&["runs", "show", &id]));
    assert!(
        shown.contains("recovery watching for `metrics.latency` back within `value > 500`"),
        "{shown}"
    );

    // The server dies while the run waits for its signal; the latency comes back afterwards.
    server.kill9();
    let server = Server::start(&path_of(&data), &[]);
    assert_eq!(server.post("/v1/events", sample(480, 650)).0, 202);
    assert_eq!(server.post("/v1/events", sample(540, 310)).0, 202);
    let recovery = judged(&server, &id);
    assert_eq!(recovery["verdict"], "cleared", "{recovery}");
    let cleared_at = 1_767_225_600_000u64 + 540_000;
    assert_eq!(recovery["cleared_at"], cleared_at);
    let fired_at = run["watch"]["since"].as_u64().unwrap();
    assert_eq!(recovery["time_to_recover_ms"], cleared_at - fired_at);
    // The playbook scaled `api-asg` out by its step (2), held until the signal cleared.
    let scaled = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["function"] == "set-desired-capacity")
        .unwrap();
    assert_eq!(scaled["trust"]["change"]["kind"], "capacity");
    let added = recovery["cost"]["capacity_added"].as_i64().unwrap();
    assert_eq!(added, 2, "{recovery}");
    let held = (cleared_at - scaled["at"].as_u64().unwrap()) as f64 / 60_000.0;
    let minutes = recovery["cost"]["capacity_minutes"].as_f64().unwrap();
    assert!((minutes - 2.0 * held).abs() < 1e-6, "{minutes} vs {held}");

    let shown = stdout(&server.grace_with(&["runs", "show", &id]));
    assert!(
        shown.contains("recovery cleared: the signal cleared"),
        "{shown}"
    );
    assert!(shown.contains("cost +2 instance(s)"), "{shown}");
    assert_eq!(
        server.metric("grace_run_outcomes_total{verdict=\"cleared\"}"),
        1.0
    );
}

#[test]
fn a_run_whose_latency_stays_high_past_its_window_is_judged_not_cleared() {
    let data = data_dir();
    let config = data.path().join("grace.toml");
    std::fs::write(&config, "[outcomes]\nwindow = \"4m\"\n").unwrap();
    let server = Server::start(&path_of(&data), &["--config", config.to_str().unwrap()]);
    let id = scale_on_latency(&server);
    let (_, run) = server.get(&format!("/v1/runs/{id}"));
    let window = run["watch"]["until"].as_u64().unwrap() - run["watch"]["since"].as_u64().unwrap();
    assert_eq!(window, 240_000);
    // Still slow when the window runs out; back to normal only afterwards.
    assert_eq!(server.post("/v1/events", sample(600, 900)).0, 202);
    let recovery = judged(&server, &id);
    assert_eq!(recovery["verdict"], "not-cleared", "{recovery}");
    assert!(
        recovery["reason"]
            .as_str()
            .unwrap()
            .contains("did not clear within 4m"),
        "{recovery}"
    );
}

/// A playbook scaling `api-asg` by one on `test.latency` events about `resource` over 500, at
/// most once every five minutes.
fn scaler(name: &str, resource: &str) -> String {
    manifest(
        name,
        &format!(
            "[[triggers]]\nevent_type = \"test.latency\"\nresource = \"{resource}\"\ncondition = \"value > 500\"\ncooldown = \"5m\"\n\
             [config]\ngroups = \"api-asg\"\n[grants.scaling]\ngroups = [\"api-asg\"]\nmax_changes = 1\n"
        ),
    )
}

/// An event of `event_type` about `resource` at `secs` after the fleet's start.
fn at(event_type: &str, resource: &str, secs: u64, value: f64) -> Value {
    event(event_type, resource, secs, value)
}

#[test]
fn a_playbook_that_never_clears_its_signal_needs_approval_again_and_one_that_does_runs_unattended()
{
    let data = data_dir();
    let config = data.path().join("grace.toml");
    std::fs::write(&config, "[outcomes]\nwindow = \"2m\"\n").unwrap();
    let server = Server::start(&path_of(&data), &["--config", config.to_str().unwrap()]);
    for (name, resource) in [("fixes", "web"), ("never-fixes", "db")] {
        let (status, body) = server.upload(&scaler(name, resource), component("group_scaler"));
        assert_eq!(status, 201, "{body}");
    }
    let mut posted = 0;
    let mut post = |e: Value| {
        assert_eq!(server.post("/v1/events", e).0, 202);
        posted += 1;
        server.wait_matched(posted);
    };
    let newest = |playbook: &str| {
        server.runs_of(playbook)[0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Three incidents each: `web` recovers after every run, `db` never does.
    for i in 0..3u64 {
        let t = i * 600;
        post(at("test.latency", "web", t, 900.0));
        server.wait_state(&newest("fixes"), &["succeeded"]);
        post(at("test.latency", "web", t + 60, 120.0));
        assert_eq!(judged(&server, &newest("fixes"))["verdict"], "cleared");

        post(at("test.latency", "db", t + 200, 900.0));
        server.wait_state(&newest("never-fixes"), &["succeeded"]);
        // Still over 500 when its window ends (the fleet's clock moves with the events).
        post(at("test.latency", "db", t + 400, 950.0));
        assert_eq!(
            judged(&server, &newest("never-fixes"))["verdict"],
            "not-cleared"
        );
    }
    let (_, learnt) = server.get("/v1/outcomes?playbook=never-fixes");
    let db = &learnt["outcomes"][0];
    assert_eq!(
        (db["resource"].as_str(), db["cleared"].as_u64()),
        (Some("db"), Some(0))
    );
    assert_eq!(db["not_cleared_streak"], 3, "{learnt}");

    // The fourth incident: `never-fixes` now waits for a person (`fixes`, below, runs on its own).
    post(at("test.latency", "db", 2_000, 900.0));
    let waiting = server.wait_state(&newest("never-fixes"), &["waiting-approval"]);
    let scaled = waiting["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["function"] == "set-desired-capacity")
        .unwrap();
    assert!(
        scaled["reason"]
            .as_str()
            .unwrap()
            .contains("the last 3 runs of `never-fixes` on `db` did not clear their signal (learned: approval is needed until one does)"),
        "{scaled}"
    );
    // A person lets it act (the change they approve is the one asked: nothing else scales the
    // group meanwhile); this time `db` recovers, so its next incident runs unattended.
    let approver = server.token_with("alice", &["approve"]);
    let approval = waiting["approval"].as_str().unwrap();
    let (status, body) = approvals::vote(&server, &approver, approval, "approve", None);
    assert_eq!(status, 200, "{body}");
    let approved = newest("never-fixes");
    server.wait_state(&approved, &["succeeded"]);
    post(at("test.latency", "db", 2_060, 200.0));
    assert_eq!(judged(&server, &approved)["verdict"], "cleared");
    post(at("test.latency", "db", 2_600, 900.0));
    server.wait_state(&newest("never-fixes"), &["succeeded"]);
    post(at("test.latency", "web", 2_700, 900.0));
    server.wait_state(&newest("fixes"), &["succeeded"]);

    let shown = stdout(&server.grace_with(&["outcomes"]));
    assert!(
        shown.contains("never-fixes") && shown.contains("1/4"),
        "{shown}"
    );
    assert!(shown.contains("fixes") && shown.contains("3/3"), "{shown}");
}

/// `group-scaler` moving `api-asg` by `step` on `test.latency` events about `web` (or any
/// `web-*`) for which `condition` holds.
fn naive(name: &str, condition: &str, step: i64) -> String {
    manifest(
        name,
        &format!(
            "[[triggers]]\nevent_type = \"test.latency\"\nresource = \"web*\"\ncondition = \"{condition}\"\n\
             [config]\ngroups = \"api-asg\"\nstep = \"{step}\"\n[grants.scaling]\ngroups = [\"api-asg\"]\nmax_changes = 1\n"
        ),
    )
}

/// Posts a `test.latency` event about `web` at `secs`, and waits until it is matched.
fn post_latency(server: &Server, posted: &mut usize, secs: u64, value: f64) {
    assert_eq!(
        server
            .post("/v1/events", at("test.latency", "web", secs, value))
            .0,
        202
    );
    *posted += 1;
    server.wait_matched(*posted);
}

/// How many runs `playbook` has, once they are all over.
fn settled_runs(server: &Server, playbook: &str) -> usize {
    let runs = server.runs_of(playbook);
    for r in &runs {
        server.wait_state(r["id"].as_str().unwrap(), &["succeeded"]);
    }
    runs.len()
}

#[test]
fn a_naive_scale_up_and_scale_down_pair_that_flaps_is_paused_until_a_person_resumes_it() {
    let data = data_dir();
    let mut server = Server::start(&path_of(&data), &[]);
    for (name, condition, step) in [
        ("scale-up", "value > 500", 1),
        ("scale-down", "value < 200", -1),
    ] {
        let (status, body) =
            server.upload(&naive(name, condition, step), component("group_scaler"));
        assert_eq!(status, 201, "{body}");
    }
    let mut posted = 0;
    // Latency oscillating every two minutes: up, down, up (two reversals): not yet flapping.
    for (i, value) in [900.0, 100.0, 900.0].into_iter().enumerate() {
        post_latency(&server, &mut posted, i as u64 * 120, value);
        settled_runs(&server, "scale-up");
        settled_runs(&server, "scale-down");
    }
    let (_, pauses) = server.get("/v1/pauses");
    assert_eq!(pauses, json!([]));
    // The third reversal: both playbooks are paused for `web`.
    post_latency(&server, &mut posted, 360, 100.0);
    let counts = |server: &Server| {
        (
            settled_runs(server, "scale-up"),
            settled_runs(server, "scale-down"),
        )
    };
    assert_eq!(counts(&server), (2, 2));
    let (_, pauses) = server.get("/v1/pauses");
    let paused: Vec<(&str, &str)> = pauses
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["playbook"].as_str().unwrap(),
                p["resource"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        paused,
        [("scale-down", "web"), ("scale-up", "web")],
        "{pauses}"
    );
    assert!(
        pauses[0]["reason"].as_str().unwrap().starts_with(
            "`group/api-asg` flapped: 3 reversals among 4 capacity changes (2 up, 2 down)"
        ),
        "{pauses}"
    );
    assert_eq!(server.metric("grace_playbooks_paused_total"), 2.0);
    let (_, entries) = server.get("/v1/ledger/entries?from=0&limit=1000&run=meta");
    let recorded: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["interface"] == "meta" && e["function"] == "pause")
        .collect();
    assert_eq!(recorded.len(), 2, "each pause is in the ledger: {entries}");
    assert_eq!(recorded[0]["args"]["flapping"], "group/api-asg");

    // A pause survives a crash; the oscillation goes on and nothing runs.
    server.kill9();
    let server = Server::start(&path_of(&data), &[]);
    // The matched-events counter starts again with the new process.
    posted = 0;
    let (_, after) = server.get("/v1/pauses");
    assert_eq!(after, pauses);
    post_latency(&server, &mut posted, 480, 900.0);
    post_latency(&server, &mut posted, 600, 100.0);
    assert_eq!(counts(&server), (2, 2));
    assert_eq!(
        server.metric("grace_triggers_suppressed_total{reason=\"paused\"}"),
        2.0
    );

    // The same playbook fired by another resource's event is not stopped by the trigger's pause,
    // but its change of the group that flapped is refused.
    assert_eq!(
        server
            .post("/v1/events", at("test.latency", "web-canary", 660, 900.0))
            .0,
        202
    );
    posted += 1;
    server.wait_matched(posted);
    assert_eq!(counts(&server), (3, 2));
    let canary = &server.runs_of("scale-up")[0];
    let (_, canary) = server.get(&format!("/v1/runs/{}", canary["id"].as_str().unwrap()));
    let report = canary["outcome"]["details"]["call0"]
        .as_str()
        .unwrap_or_else(|| panic!("{canary}"));
    assert!(
        report.starts_with("err") && report.contains("is paused for `web`"),
        "{canary}"
    );

    // A person resumes the scale-up for `web` (recorded by the API's audit); it acts again, the
    // scale-down stays paused.
    let out = server.grace_with(&[
        "pauses",
        "resume",
        "--playbook",
        "scale-up",
        "--resource",
        "web",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, audit) = server.get("/v1/ledger/entries?from=0&limit=1000&run=api");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["function"] == "pauses.resume" && e["args"]["playbook"] == "scale-up"),
        "{audit}"
    );
    post_latency(&server, &mut posted, 720, 900.0);
    assert_eq!(counts(&server), (4, 2));
    let out = server.grace_with(&[
        "pauses",
        "resume",
        "--playbook",
        "scale-up",
        "--resource",
        "web",
    ]);
    assert!(!out.status.success(), "not paused any more");
    let listed = stdout(&server.grace_with(&["pauses", "list"]));
    assert!(
        listed.contains("scale-down") && !listed.contains("scale-up"),
        "{listed}"
    );
}
