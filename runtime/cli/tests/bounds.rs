//! A real `grace serve` keeps its memory bounded whatever a playbook within its manifest does:
//! a metrics answer of hundreds of MiB, floods of log calls, an outcome larger than a ledger
//! entry. Each test reads the server's peak resident memory (`VmHWM`) against a stated bound,
//! and what the run left on record. Also: `[limits]` in `grace.toml` refuses manifests asking
//! more, run answers are paged, and SIGTERM stops the server mid-run.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use grace_testkit::fake_endpoint::{Behaviour, FakeEndpoint};
use grace_testkit::poll_until;
use serde_json::Value;

const FINAL: &[&str] = &["succeeded", "failed", "timed-out", "cancelled"];

/// A server with this `grace.toml`.
fn server_with(data: &tempfile::TempDir, toml: &str) -> Server {
    let config = data.path().join("grace.toml");
    std::fs::write(&config, toml).unwrap();
    Server::start(&path_of(data), &["--config", config.to_str().unwrap()])
}

/// Uploads `crate_name`'s component under a manifest with these limits, grants and config;
/// fires it once and returns the finished run.
fn run_once(server: &Server, name: &str, crate_name: &str, extra: &str) -> Value {
    // Version 2: the metrics grant names series (version 1 accepts no metrics grant).
    let manifest = manifest(
        name,
        &format!("[[triggers]]\nevent_type = \"test.*\"\n{extra}"),
    )
    .replace("manifest_version = 1", "manifest_version = 2");
    let (status, body) = server.upload(&manifest, component(crate_name));
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.post("/v1/events", event("test.bounds", "api-service", 0, 1.0));
    assert!(status == 202 || status == 200, "{status} {body}");
    let run = poll_until(&format!("a run of {name}"), Duration::from_secs(60), || {
        server.runs_of(name).into_iter().next()
    });
    poll_until(
        &format!("run of {name} to finish"),
        Duration::from_secs(300),
        || {
            let (_, r) = server.get(&format!("/v1/runs/{}", run["id"].as_str()?));
            FINAL.contains(&r["state"].as_str()?).then_some(r)
        },
    )
}

/// The run's ledger entries, through the API.
fn ledger_of(server: &Server, run: &Value) -> Vec<Value> {
    let (status, entries) = server.get(&format!(
        "/v1/ledger/entries?run={}&limit=10000",
        run["id"].as_str().unwrap()
    ));
    assert_eq!(status, 200, "{entries}");
    entries.as_array().unwrap().clone()
}

fn peak_mib(server: &Server) -> u64 {
    server.peak_rss_kib() / 1024
}

#[test]
fn hostile_guest_querying_a_600_mb_metrics_answer_leaves_the_server_under_300_mib() {
    // About 60 bytes a series: some 600 MB, streamed, never held by the endpoint either.
    let endpoint = FakeEndpoint::start(Behaviour::PrometheusFlood { series: 10_000_000 });
    let data = data_dir();
    let server = server_with(
        &data,
        &format!("prometheus = \"{}\"\n", endpoint.endpoint()),
    );
    let run = run_once(
        &server,
        "metrics-hog",
        "metrics_hog",
        "[limits]\nmemory = \"64MiB\"\n[grants.metrics]\n[[grants.metrics.series]]\nmetric = \"up\"\n",
    );
    assert_eq!(run["state"], "failed", "{run:#}");
    let message = run["failure"]["message"].as_str().unwrap();
    assert!(message.contains("larger than 16777216 bytes"), "{message}");
    let peak = peak_mib(&server);
    eprintln!("server peak RSS after a 600 MB metrics answer: {peak} MiB");
    assert!(peak < 300, "the server peaked at {peak} MiB");
    let entries = ledger_of(&server, &run);
    let query = entries
        .iter()
        .find(|e| e["interface"] == "metrics")
        .unwrap();
    assert_eq!(query["result"]["error"]["kind"], "too-large");
    assert_eq!(entries.last().unwrap()["function"], "finished");
}

#[test]
fn hostile_guest_logging_1000_messages_of_1_mib_is_stopped_at_its_total_and_the_server_stays_under_600_mib()
 {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let run = run_once(
        &server,
        "log-flooder",
        "log_flooder",
        "[limits]\nmemory = \"16MiB\"\nmax_host_calls = 1000\nmax_log_bytes = 1048576\nmax_total_log_bytes = \"64MiB\"\n\
         [config]\nmessage_bytes = \"1048576\"\ncount = \"1000\"\n",
    );
    assert_eq!(run["state"], "failed", "{run:#}");
    assert_eq!(run["failure"]["kind"], "log-limit", "{run:#}");
    let peak = peak_mib(&server);
    eprintln!("server peak RSS after 64 log calls of 1 MiB: {peak} MiB");
    // 64 MiB on record is held a few times over at the end of the run (the timeline, the ledger
    // writer's batch, the stored run record): bounded by the totals, not by the 1,000 calls asked.
    assert!(peak < 600, "the server peaked at {peak} MiB");
    let ledger = std::fs::metadata(data.path().join("grace.redb"))
        .unwrap()
        .len()
        >> 20;
    eprintln!("database size after the flood: {ledger} MiB");
    // The ledger's 64 MiB, the stored run record and redb's copy-on-write pages: bounded by the
    // totals (a thousand such calls grew it to 2 GB before).
    assert!(ledger < 512, "the database grew to {ledger} MiB");
}

#[test]
fn hostile_guest_making_a_million_one_byte_log_calls_is_stopped_at_the_timeline_limit() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let run = run_once(
        &server,
        "log-flooder",
        "log_flooder",
        "[limits]\ntimeout = \"5m\"\nfuel = 100000000000\nmax_host_calls = 1000000\nmax_total_log_bytes = \"64MiB\"\n\
         [config]\nmessage_bytes = \"1\"\ncount = \"1000000\"\n",
    );
    assert_eq!(run["failure"]["kind"], "record-limit", "{run:#}");
    let peak = peak_mib(&server);
    eprintln!("server peak RSS after 10000 one-byte log calls: {peak} MiB");
    assert!(peak < 300, "the server peaked at {peak} MiB");

    // The run's answer is paged: 500 entries by default, then the next page.
    assert_eq!(run["timeline"].as_array().unwrap().len(), 500);
    assert_eq!(run["timeline_total"], 10_001);
    assert_eq!(run["timeline_next"], 500);
    let id = run["id"].as_str().unwrap();
    let (status, last) = server.get(&format!(
        "/v1/runs/{id}?timeline_from=10000&timeline_limit=10"
    ));
    assert_eq!(status, 200, "{last}");
    assert_eq!(last["timeline"].as_array().unwrap().len(), 1);
    assert_eq!(last["timeline"][0]["result"]["error"]["kind"], "limit");
    assert_eq!(last["timeline_next"], Value::Null);
    let (status, body) = server.get(&format!("/v1/runs/{id}?timeline_limit=100000"));
    assert_eq!(status, 400, "{body}");

    // `grace runs show` still shows it, saying what it left out.
    let out = server.grace().args(["runs", "show", id]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("9501 more calls not shown"), "{text}");
}

#[test]
fn hostile_guest_with_a_20_mib_outcome_succeeds_cut_to_fit_with_its_end_recorded() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let run = run_once(
        &server,
        "huge-outcome",
        "huge_outcome",
        "[limits]\nmemory = \"128MiB\"\n",
    );
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert!(run["outcome"]["summary"].as_str().unwrap().len() <= 4099);
    let entries = ledger_of(&server, &run);
    let end = entries.last().unwrap();
    assert_eq!(end["function"], "finished");
    assert_eq!(end["result"]["outcome_truncated"], true);
    let (status, verified) = server.get("/v1/ledger/verify");
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["ok"], true, "{verified}");
}

#[test]
fn a_manifest_asking_more_than_the_servers_limits_is_refused_naming_the_field_and_the_cap() {
    let data = data_dir();
    let server = server_with(&data, "[limits]\nmax_log_bytes = 1024\ntimeout = \"1m\"\n");
    let (status, body) = server.upload(
        &manifest(
            "log-flooder",
            "[[triggers]]\nevent_type = \"t\"\n[limits]\nmax_log_bytes = 4096\n",
        ),
        component("log_flooder"),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("limits.max_log_bytes")
            && message.contains("4096")
            && message.contains("cap of 1024 bytes"),
        "{message}"
    );
    let (status, body) = server.upload(
        &manifest(
            "log-flooder",
            "[[triggers]]\nevent_type = \"t\"\n[limits]\nmax_log_bytes = 1024\ntimeout = \"2m\"\n",
        ),
        component("log_flooder"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.timeout"),
        "{body}"
    );
    let (status, body) = server.upload(
        &manifest(
            "log-flooder",
            "[[triggers]]\nevent_type = \"t\"\n[limits]\nmax_log_bytes = 1024\ntimeout = \"1m\"\n",
        ),
        component("log_flooder"),
    );
    assert_eq!(status, 201, "within the caps: {body}");
}

#[test]
fn an_unknown_or_out_of_range_limit_in_grace_toml_is_refused_at_start() {
    let data = data_dir();
    let config = data.path().join("grace.toml");
    for (toml, expected) in [
        ("[limits]\nmax_log_byts = 1\n", "max_log_byts"),
        (
            "[limits]\nmax_response_bytes = 1\n",
            "limits.max_response_bytes",
        ),
    ] {
        std::fs::write(&config, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_grace"))
            .args([
                "serve",
                "--simulate",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data.path())
            .arg("--config")
            .arg(&config)
            .env_remove("GRACE_DATA_DIR")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn sigterm_stops_the_server_while_a_run_is_in_flight() {
    let data = data_dir();
    let mut server = Server::start(&path_of(&data), &[]);
    let manifest = manifest(
        "infinite-loop",
        "[[triggers]]\nevent_type = \"test.*\"\n[limits]\ntimeout = \"10m\"\nfuel = 1000000000000000\n",
    );
    let (status, body) = server.upload(&manifest, component("infinite_loop"));
    assert_eq!(status, 201, "{body}");
    server.post("/v1/events", event("test.bounds", "api-service", 0, 1.0));
    poll_until("the run to be running", Duration::from_secs(60), || {
        let runs = server.runs_of("infinite-loop");
        (runs.first()?["state"] == "running").then_some(())
    });
    let pid = server.pid().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = poll_until(
        "the server to exit after SIGTERM",
        Duration::from_secs(60),
        || server.try_exit(),
    );
    assert!(exit.success(), "{exit:?}");
}
