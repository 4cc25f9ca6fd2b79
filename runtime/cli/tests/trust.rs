//! The trust core in a running server: Cedar policies managed over the API, changes that wait
//! for people's approval (across a `kill -9`), the two-person rule, denial and expiry, and
//! guardrails holding against a hostile playbook, all through `grace` and HTTP.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::approvals::{add_policies, approvals, config, desired, grace_ok, start_incident, vote};
use common::{Server, component, data_dir};
use grace_testkit::{example, example_manifest, poll_until};
use serde_json::{Value, json};

fn entries_of(server: &Server, run: &str) -> Vec<Value> {
    let (status, entries) = server.get(&format!("/v1/ledger/entries?run={run}&limit=1000"));
    assert_eq!(status, 200);
    entries.as_array().unwrap().clone()
}

#[test]
fn a_production_change_waits_for_two_people_across_a_restart_and_the_ledger_names_them() {
    let data = data_dir();
    let cfg = config(data.path(), "approval_ttl = \"10m\"");
    let mut server = Server::start(data.path(), &["--config", &cfg]);
    add_policies(&server, data.path());
    let listed = grace_ok(&server, &["policy", "list"]);
    assert!(
        listed.contains("approvals") && listed.contains("base"),
        "{listed}"
    );
    let before = desired(&server, "api-asg");

    let run = start_incident(&server);
    let waiting = server.wait_state(&run, &["waiting-approval"]);
    let approval = waiting["approval"].as_str().unwrap().to_owned();
    assert_eq!(desired(&server, "api-asg"), before, "nothing changed yet");

    // What the approvers see: the change, its risk and why it waits.
    let pending = approvals(&server, "pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["id"], approval.as_str());
    assert_eq!(pending[0]["approvers"], 2);
    assert_eq!(pending[0]["action"], "scaling.set-desired-capacity");
    assert_eq!(pending[0]["resource"], "group/api-asg");
    let shown = grace_ok(&server, &["approvals", "show", &approval]);
    assert!(shown.contains("two people"), "{shown}");
    assert!(shown.contains("blast_radius"), "{shown}");
    let run_shown = grace_ok(&server, &["runs", "show", &run]);
    assert!(run_shown.contains("waiting-approval"), "{run_shown}");
    assert!(
        run_shown.contains(&format!("grace approvals approve {approval}")),
        "{run_shown}"
    );

    // Nothing waits in memory: a crash loses neither the run nor the request.
    server.kill9();
    let server = Server::start(data.path(), &["--config", &cfg]);
    server.wait_state(&run, &["waiting-approval"]);
    assert_eq!(approvals(&server, "pending").len(), 1);

    let alice = server.token_with("alice", &["approve"]);
    let bob = server.token_with("bob", &["approve"]);
    let reader = server.token_with("reader", &["read"]);
    let (status, body) = vote(&server, &reader, &approval, "approve", None);
    assert_eq!(status, 403, "a read token cannot approve: {body}");

    let (status, body) = vote(
        &server,
        &alice,
        &approval,
        "approve",
        Some("latency is real"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "pending", "one of two: {body}");
    let (status, body) = vote(&server, &alice, &approval, "approve", None);
    assert_eq!(
        status, 409,
        "the same person twice is not two people: {body}"
    );
    // Nor is a second token of the same principal: people are counted, not tokens.
    let alice_laptop = server.token_of("alice", "alice-laptop", &["approve"]);
    let (status, body) = vote(&server, &alice_laptop, &approval, "approve", None);
    assert_eq!(
        status, 409,
        "two tokens of one principal are one person: {body}"
    );
    assert_eq!(
        server.get(&format!("/v1/runs/{run}")).1["state"],
        "waiting-approval"
    );

    let (status, body) = vote(&server, &bob, &approval, "approve", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "approved");
    let done = server.wait_state(&run, &["succeeded", "failed"]);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(
        desired(&server, "api-asg") > before,
        "the approved change was made"
    );

    // The ledger: both votes, and the change's decision naming who approved.
    let entries = entries_of(&server, &run);
    let votes: Vec<&Value> = entries
        .iter()
        .filter(|e| e["interface"] == "approval")
        .collect();
    assert_eq!(votes.len(), 2, "{votes:?}");
    assert_eq!(votes[0]["args"]["by"], "alice");
    assert_eq!(votes[0]["args"]["principal"], "local:alice");
    assert_eq!(votes[1]["args"]["by"], "bob");
    assert_eq!(votes[1]["args"]["principal"], "local:bob");
    let change = entries
        .iter()
        .rev()
        .find(|e| e["function"] == "set-desired-capacity" && e["result"].get("ok").is_some())
        .expect("the change's record");
    let reason = change["decision"]["reason"].as_str().unwrap();
    assert!(reason.contains("approved by alice and bob"), "{reason}");
    let trust = &change["decision"]["trust"];
    assert!(trust["risk"]["score"].as_u64().is_some(), "{trust}");
    assert_eq!(trust["approval"]["state"], "approved");
    assert_eq!(trust["policies"][0], "approvals/two-person-prod-capacity");
    let waited = entries
        .iter()
        .find(|e| e["result"]["error"]["kind"] == "awaiting-approval")
        .expect("the pause is on record");
    assert_eq!(waited["result"]["approval"], approval.as_str());
    let shown = grace_ok(&server, &["runs", "show", &run]);
    assert!(shown.contains("risk "), "{shown}");
    assert!(shown.contains("by alice, bob"), "{shown}");
    let (status, verify) = server.get("/v1/ledger/verify");
    assert_eq!(status, 200, "{verify}");
}

#[test]
fn a_denied_change_is_refused_to_the_playbook_with_the_reason() {
    let data = data_dir();
    let cfg = config(data.path(), "");
    let server = Server::start(data.path(), &["--config", &cfg]);
    add_policies(&server, data.path());
    let before = desired(&server, "api-asg");
    let run = start_incident(&server);
    let approval = server.wait_state(&run, &["waiting-approval"])["approval"]
        .as_str()
        .unwrap()
        .to_owned();

    let carol = server.token_with("carol", &["approve"]);
    let (status, body) = vote(&server, &carol, &approval, "deny", None);
    assert_eq!(status, 400, "a denial says why: {body}");
    let out = server
        .grace()
        .env("GRACE_TOKEN", &carol)
        .args([
            "approvals",
            "deny",
            &approval,
            "--comment",
            "change freeze for the launch",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let done = server.wait_state(&run, &["succeeded", "failed"]);
    assert_eq!(desired(&server, "api-asg"), before, "nothing changed");
    let entries = entries_of(&server, &run);
    let denied = entries
        .iter()
        .rev()
        .find(|e| e["function"] == "set-desired-capacity")
        .unwrap();
    assert_eq!(denied["decision"]["verdict"], "denied");
    let reason = denied["decision"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("denied by carol") && reason.contains("change freeze for the launch"),
        "{reason}"
    );
    assert!(
        done["state"] == "failed" || done["outcome"]["changed"] == false,
        "{done}"
    );
    let (status, _) = vote(&server, &carol, &approval, "approve", None);
    assert_eq!(status, 409, "a decided approval takes no more votes");
}

#[test]
fn an_unanswered_approval_expires_and_counts_as_denied() {
    let data = data_dir();
    let cfg = config(data.path(), "approval_ttl = \"2s\"");
    let server = Server::start(data.path(), &["--config", &cfg]);
    add_policies(&server, data.path());
    let run = start_incident(&server);
    server.wait_state(&run, &["waiting-approval"]);
    server.wait_state(&run, &["succeeded", "failed"]);
    let expired = approvals(&server, "expired");
    assert_eq!(expired.len(), 1, "{expired:?}");
    let denied = entries_of(&server, &run)
        .into_iter()
        .rev()
        .find(|e| e["function"] == "set-desired-capacity")
        .unwrap();
    assert_eq!(denied["decision"]["verdict"], "denied");
    assert!(
        denied["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{denied}"
    );
}

/// Runs `guardrail-prober` once with `mode` and `attempts`, at `timestamp` (ms), and returns
/// its run.
fn probe(server: &Server, mode: &str, attempts: u32, timestamp: u64) -> Value {
    let manifest = std::fs::read_to_string(
        grace_testkit::playbooks_dir().join("fixtures/guardrail-prober/playbook.toml"),
    )
    .unwrap()
    .replace("mode = \"steps\"", &format!("mode = \"{mode}\""))
    .replace("attempts = 10", &format!("attempts = {attempts}"));
    let (status, body) = server.upload(&manifest, component("guardrail_prober"));
    assert!(status == 201 || status == 200, "{body}");
    let event = json!({
        "event_type": "test.probe", "source": "test", "actor": "tests", "resource": "api-asg",
        "payload": {}, "timestamp": timestamp,
    });
    let (status, body) = server.post("/v1/events", event);
    assert_eq!(status, 202, "{body}");
    let run = poll_until("a probe run", Duration::from_secs(60), || {
        server
            .runs_of("guardrail-prober")
            .into_iter()
            .find(|r| r["state"] == "succeeded" || r["state"] == "failed")
    });
    assert_eq!(run["state"], "succeeded", "{run}");
    let (_, full) = server.get(&format!("/v1/runs/{}", run["id"].as_str().unwrap()));
    full
}

const THURSDAY_NOON: u64 = 1_767_268_800_000; // 2026-01-01T12:00:00Z
const SATURDAY_NOON: u64 = 1_767_441_600_000; // 2026-01-03T12:00:00Z

#[test]
fn guardrails_hold_against_many_small_steps() {
    let data = data_dir();
    let cfg = config(
        data.path(),
        "[[trust.guardrail]]\nname = \"api budget\"\nkind = \"group\"\nmatch = \"api-*\"\nmax_capacity = 6\n",
    );
    let server = Server::start(data.path(), &["--config", &cfg]);
    // api-asg starts at 3: ten steps of one may take it to 6 and no further.
    let run = probe(&server, "steps", 10, THURSDAY_NOON);
    let details = &run["outcome"]["details"];
    assert_eq!(details["allowed"], "3", "{run}");
    assert_eq!(details["denied"], "7", "{run}");
    let why = details["first_denial"].as_str().unwrap();
    assert!(why.contains("api budget"), "the guardrail is named: {why}");
    assert_eq!(desired(&server, "api-asg"), 6);
    let shown = grace_ok(&server, &["runs", "show", run["id"].as_str().unwrap()]);
    assert!(shown.contains("guardrail `api budget`"), "{shown}");
}

#[test]
fn guardrails_hold_against_a_loop_of_restarts() {
    let data = data_dir();
    let cfg = config(
        data.path(),
        "[[trust.guardrail]]\nname = \"web restarts\"\nkind = \"container\"\nmax_changes_per_hour = 3\n",
    );
    let server = Server::start(data.path(), &["--config", &cfg]);
    let run = probe(&server, "restarts", 8, THURSDAY_NOON);
    let details = &run["outcome"]["details"];
    assert_eq!(details["allowed"], "3", "{run}");
    assert_eq!(details["denied"], "5", "{run}");
    let why = details["first_denial"].as_str().unwrap();
    assert!(why.contains("web restarts"), "{why}");
}

#[test]
fn guardrails_refuse_changes_in_a_freeze_window() {
    let data = data_dir();
    let cfg = config(
        data.path(),
        "[[trust.guardrail]]\nname = \"weekend freeze\"\nfreeze = [\"Sat 00:00-Mon 00:00\"]\n",
    );
    let server = Server::start(data.path(), &["--config", &cfg]);
    let run = probe(&server, "steps", 2, SATURDAY_NOON);
    let details = &run["outcome"]["details"];
    assert_eq!(details["allowed"], "0", "{run}");
    let why = details["first_denial"].as_str().unwrap();
    assert!(why.contains("weekend freeze"), "{why}");
}

#[test]
fn a_malformed_policy_is_refused_with_line_and_column_and_changes_nothing() {
    let data = data_dir();
    let server = Server::start(data.path(), &[]);
    let bad = data.path().join("bad.cedar");
    std::fs::write(
        &bad,
        "permit(principal, action, resource)\nwhen { resource.colour == }",
    )
    .unwrap();
    let out = server
        .grace()
        .args(["policy", "add", "bad", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    let listed = grace_ok(&server, &["policy", "list"]);
    assert!(listed.contains("no policy sets"), "{listed}");
}

/// Adds the baseline (permit what the grants allow) and `name` holding `text`.
fn add_baseline_and(server: &Server, dir: &Path, name: &str, text: &str) {
    let base = dir.join("base.cedar");
    std::fs::write(&base, grace_trust::BASELINE).unwrap();
    let extra = dir.join(format!("{name}.cedar"));
    std::fs::write(&extra, text).unwrap();
    grace_ok(server, &["policy", "add", "base", base.to_str().unwrap()]);
    grace_ok(server, &["policy", "add", name, extra.to_str().unwrap()]);
}

/// Runs `restart-unhealthy-container` (it reads the logs of `web-1`, an unhealthy container of
/// the simulated fleet labelled `tier=frontend`, by its full id, then restarts it) with the
/// baseline and `policy` as the set `name`; its ledger entries.
fn run_restart_example_under(name: &str, policy: &str) -> Vec<Value> {
    let data = data_dir();
    let server = Server::start(data.path(), &[]);
    add_baseline_and(&server, data.path(), name, policy);
    let manifest = example_manifest("restart-unhealthy-container", &[]);
    let (status, body) = server.upload(&manifest, component("restart_unhealthy_container"));
    assert_eq!(status, 201, "{body}");
    let event = example("restart-unhealthy-container/event.json");
    let event: Value = serde_json::from_str(&std::fs::read_to_string(event).unwrap()).unwrap();
    let (status, body) = server.post("/v1/events", event);
    assert_eq!(status, 202, "{body}");
    let run = poll_until("a run of the example", Duration::from_secs(60), || {
        server
            .runs_of("restart-unhealthy-container")
            .into_iter()
            .next()
    });
    let run = run["id"].as_str().unwrap().to_owned();
    server.wait_state(&run, &["succeeded", "failed"]);
    entries_of(&server, &run)
}

/// The run's `containers.logs` entry, checked to be refused by `policy` (`set/id`).
fn refused_logs(entries: &[Value], policy: &str) {
    let logs = entries
        .iter()
        .find(|e| e["interface"] == "containers" && e["function"] == "logs")
        .expect("the playbook asked for logs");
    assert_eq!(logs["decision"]["verdict"], "denied", "{logs}");
    assert_eq!(
        logs["result"]["error"]["kind"], "denied",
        "the guest got `denied`"
    );
    let reason = logs["decision"]["reason"].as_str().unwrap();
    assert!(reason.contains(policy), "{reason}");
    assert_eq!(logs["decision"]["trust"]["policies"][0], policy);
}

#[test]
fn a_policy_forbidding_container_logs_refuses_them_and_the_ledger_names_it() {
    let entries = run_restart_example_under(
        "nologs",
        "@id(\"no-container-logs\")\n\
         forbid (principal, action == Grace::Action::\"containers::Logs\", resource);\n",
    );
    refused_logs(&entries, "nologs/no-container-logs");
    // Without the logs the playbook goes on: the restart is its own decision.
    let restart = entries
        .iter()
        .find(|e| e["function"] == "restart")
        .expect("the playbook restarted the container");
    assert_eq!(restart["decision"]["verdict"], "allowed", "{restart}");
}

#[test]
fn a_policy_forbidding_one_containers_logs_by_name_holds_when_the_guest_reads_them_by_id() {
    // The playbook names the container by its id: the policy names it as people do.
    let entries = run_restart_example_under(
        "web1logs",
        "@id(\"no-web-1-logs\")\n\
         forbid (principal, action == Grace::Action::\"containers::Logs\", resource == Grace::Container::\"web-1\");\n",
    );
    refused_logs(&entries, "web1logs/no-web-1-logs");
}

#[test]
fn a_policy_forbidding_logs_of_labelled_containers_holds_when_the_guest_reads_them_by_id() {
    // The guest's id carries no labels: the policy reads the container's own.
    let entries = run_restart_example_under(
        "frontendlogs",
        "@id(\"no-frontend-logs\")\n\
         forbid (principal, action == Grace::Action::\"containers::Logs\", resource)\n\
         when { resource.hasTag(\"tier\") && resource.getTag(\"tier\") == \"frontend\" };\n",
    );
    refused_logs(&entries, "frontendlogs/no-frontend-logs");
}

#[test]
fn a_policy_forbidding_metrics_queries_refuses_a_collectors_query_and_records_it() {
    let data = data_dir();
    let server = Server::start(data.path(), &[]);
    add_baseline_and(
        &server,
        data.path(),
        "noqueries",
        "@id(\"no-queries\")\n\
         forbid (principal, action == Grace::Action::\"metrics::Query\", resource);\n",
    );
    let collector = "manifest_version = 2\nname = \"fast-collector\"\nversion = \"1.0.0\"\nkind = \"collector\"\n\
        component = \"unused.wasm\"\n[schedule]\nevery = \"1s\"\n[[grants.metrics.series]]\nmetric = \"service_latency_p95_ms\"\n";
    let (status, body) = server.upload(collector, component("collector_fixture"));
    assert_eq!(status, 201, "{body}");
    let refused = poll_until(
        "the collector's refused query",
        Duration::from_secs(30),
        || {
            let (_, entries) = server.get("/v1/ledger/entries?limit=1000");
            entries
                .as_array()?
                .iter()
                .find(|e| {
                    e["playbook"] == "fast-collector"
                        && e["interface"] == "metrics"
                        && e["function"] == "query"
                })
                .cloned()
        },
    );
    assert_eq!(refused["decision"]["verdict"], "denied", "{refused}");
    assert_eq!(refused["result"]["error"]["kind"], "denied");
    let reason = refused["decision"]["reason"].as_str().unwrap();
    assert!(reason.contains("noqueries/no-queries"), "{reason}");
    poll_until("a failed collector pass", Duration::from_secs(30), || {
        (server.metric("grace_collector_passes_total{result=\"failed\"}") >= 1.0).then_some(())
    });
    assert!(
        server.events().is_empty(),
        "a refused pass collects nothing"
    );
}
