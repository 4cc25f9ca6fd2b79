//! The `promql-injector` fixture against a recording Prometheus endpoint: every PromQL injection
//! it tries is refused by the metrics grant, recorded in the ledger, and never reaches the
//! server, which receives exactly the one granted query.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use grace_engine::trust::PassThrough;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::*;
use grace_engine::RunEnv;
use grace_engine::RunStatus;
use grace_ledger::Verdict;
use grace_prometheus::PrometheusMetrics;
use serde_json::json;

/// A loopback server standing in for Prometheus: it answers every request with an empty vector
/// and keeps the `query` parameter of each. It checks nothing of PromQL; what matters here is
/// which queries reach it.
struct RecordingPrometheus {
    url: String,
    queries: Arc<Mutex<Vec<String>>>,
}

impl RecordingPrometheus {
    fn start() -> RecordingPrometheus {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let queries = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&queries);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if header.trim().is_empty() => break,
                        Ok(_) => {}
                    }
                }
                let target = request_line.split(' ').nth(1).unwrap_or_default();
                let query = target
                    .split_once('?')
                    .map(|(_, params)| params)
                    .unwrap_or_default()
                    .split('&')
                    .find_map(|p| p.strip_prefix("query="))
                    .map(form_decode)
                    .unwrap_or_default();
                seen.lock().unwrap().push(query);
                let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        RecordingPrometheus { url, queries }
    }

    fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

/// `application/x-www-form-urlencoded` decoding, as a query string is encoded.
fn form_decode(text: &str) -> String {
    let mut bytes = Vec::new();
    let mut input = text.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex: String = input.by_ref().take(2).map(char::from).collect();
                bytes.push(u8::from_str_radix(&hex, 16).unwrap());
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).unwrap()
}

#[test]
fn hostile_guest_promql_injections_are_refused_recorded_and_never_sent() {
    let prometheus = RecordingPrometheus::start();
    let guest = load(&fixture("promql-injector"));
    let mut world = World::new();
    let mut executors = world.sim.executors();
    executors.metrics = grace_executor::Providers::single(
        "prometheus",
        Arc::new(PrometheusMetrics::new(&prometheus.url).unwrap()),
    );
    world.env = RunEnv::new(executors, world.ledger.clone(), Arc::new(PassThrough));

    let report = world.run(&guest, &event("test.injection", "api-service", json!({})));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    let outcome = report.outcome.as_ref().unwrap();
    assert_eq!(outcome.details["granted"], "allowed", "{outcome:?}");
    let attempts: Vec<&str> = outcome.details["attempts"].lines().collect();
    assert_eq!(attempts.len(), 22, "{outcome:?}");
    for attempt in &attempts {
        let mut fields = attempt.splitn(3, '\t');
        let (kind, query, message) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        match kind {
            "denied" => assert!(
                message.contains("is not granted")
                    || message.contains("max_range")
                    || message.contains("reaches"),
                "{query}: {message}"
            ),
            // Only the query that is not PromQL is an invalid argument.
            "invalid" => assert!(message.contains("not valid PromQL"), "{query}: {message}"),
            _ => panic!("`{query}` was not refused: {kind} {message}"),
        }
    }

    // The ledger holds every attempt as a refused metrics call, and the granted one as allowed.
    let entries = world.ledger.entries_for_run(&report.run_id).unwrap();
    let calls: Vec<_> = entries
        .iter()
        .filter(|e| e.interface == "metrics")
        .collect();
    assert_eq!(calls.len(), 1 + attempts.len());
    assert_eq!(calls[0].decision.verdict, Verdict::Allowed);
    for call in &calls[1..] {
        assert_eq!(call.decision.verdict, Verdict::Denied, "{call:?}");
    }
    world.ledger.verify().unwrap();

    // The server saw the granted query and nothing else.
    assert_eq!(
        prometheus.queries(),
        [r#"service_latency_p95_ms{service="api-service"}"#]
    );
}

#[test]
fn a_version_one_manifest_with_query_globs_is_refused_at_load_with_its_replacement() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("playbook.toml"),
        "manifest_version = 1\nname = \"t\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"t.wasm\"\n\
         [grants.metrics]\nqueries = ['service_latency_p95_ms{service=\"*\"}']\n",
    )
    .unwrap();
    let err = engine().load(dir.path()).err().unwrap().to_string();
    assert!(
        err.contains("grants.metrics.queries: globs over the query text are no longer accepted"),
        "{err}"
    );
    assert!(
        err.contains(
            "[[grants.metrics.series]]\nmetric = \"service_latency_p95_ms\"\nlabels = { service = \"*\" }"
        ),
        "{err}"
    );
}
