//! What one run may make the host hold is bounded by the host, whatever the guest asks within
//! its manifest: logs and records in all, answers from providers, the outcome. Over a bound the
//! guest is stopped or its data cut, and the run's end is on record either way.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use grace_engine::bounds::RunBounds;
use grace_engine::{FailureKind, Guest, RunReport, RunStatus};
use grace_executor::Providers;
use grace_ledger::Verdict;
use grace_testkit::fake_endpoint::{Behaviour, FakeEndpoint, prometheus_vector};
use serde_json::json;

/// `fixture` with these `[config]` values.
fn configured(fixture_name: &str, config: &[(&str, &str)]) -> Guest {
    let guest = load(&fixture(fixture_name));
    let mut manifest = (*guest.manifest).clone();
    for (k, v) in config {
        manifest.config.insert((*k).into(), (*v).into());
    }
    Guest {
        manifest: Arc::new(manifest),
        component: guest.component.clone(),
    }
}

fn run(world: &World, guest: &Guest) -> RunReport {
    world.run(guest, &event("test.bounds", "api-service", json!({})))
}

/// The run's `finished` record, which must be there.
fn finished(world: &World, report: &RunReport) -> grace_ledger::Entry {
    let entries = world.ledger.entries_for_run(&report.run_id).unwrap();
    let last = entries.last().unwrap().clone();
    assert_eq!(
        (last.interface.as_str(), last.function.as_str()),
        ("run", "finished")
    );
    assert_eq!(last.result["status"], json!(report.status));
    world.ledger.verify().unwrap();
    last
}

fn failure(report: &RunReport) -> &grace_engine::Failure {
    report
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("the run did not fail: {:?}", report.status))
}

/// The timeline's calls of `interface` (the fixtures also read their `config`).
fn calls<'a>(report: &'a RunReport, interface: &str) -> Vec<&'a grace_engine::TimelineEntry> {
    report
        .timeline
        .iter()
        .filter(|e| e.interface == interface)
        .collect()
}

/// A world whose metrics go to a Prometheus at `endpoint`.
fn world_with_prometheus(endpoint: &str) -> World {
    world_with_prometheus_capped(endpoint, grace_prometheus::DEFAULT_MAX_RESPONSE_BYTES)
}

/// A world whose metrics go to a Prometheus at `endpoint`, whose client reads at most `cap`.
fn world_with_prometheus_capped(endpoint: &str, cap: u64) -> World {
    let mut world = World::new();
    let prometheus = grace_prometheus::PrometheusMetrics::new(endpoint)
        .unwrap()
        .with_max_response_bytes(cap);
    world.env.executors.metrics = Providers::single("prometheus", Arc::new(prometheus));
    world
}

#[test]
fn hostile_guest_logging_within_max_log_bytes_is_stopped_at_max_total_log_bytes() {
    let world = World::new();
    let report = run(&world, &load(&fixture("log-flooder")));
    let f = failure(&report);
    assert_eq!(f.kind, FailureKind::LogLimit, "{f:?}");
    assert!(f.message.contains("max_total_log_bytes"), "{}", f.message);
    // 64 KiB of 1 KiB messages: 64 logged, the 65th refused and the guest stopped.
    let logs = calls(&report, "log");
    let logged = logs
        .iter()
        .filter(|e| e.verdict == Verdict::Allowed)
        .count();
    assert_eq!(logged, 64);
    let last = report.timeline.last().unwrap();
    assert_eq!(last.verdict, Verdict::Denied);
    assert_eq!(last.result["error"]["kind"], "limit");
    assert_eq!(
        finished(&world, &report).result["failure"]["kind"],
        "log-limit"
    );
}

#[test]
fn hostile_guest_making_tiny_calls_is_stopped_at_the_hosts_timeline_limit() {
    let mut world = World::new();
    world.env.bounds = RunBounds {
        max_timeline_entries: 500,
        ..RunBounds::default()
    };
    let report = run(
        &world,
        &configured("log-flooder", &[("message_bytes", "1")]),
    );
    let f = failure(&report);
    assert_eq!(f.kind, FailureKind::RecordLimit, "{f:?}");
    assert!(
        f.message.contains("500 recorded host calls"),
        "{}",
        f.message
    );
    assert_eq!(report.timeline.len(), 501, "500 calls and the refusal");
    finished(&world, &report);
}

#[test]
fn hostile_guest_is_stopped_once_it_put_max_recorded_bytes_on_record() {
    let mut world = World::new();
    world.env.bounds = RunBounds {
        max_recorded_bytes: 16 * 1024,
        ..RunBounds::default()
    };
    let report = run(&world, &load(&fixture("log-flooder")));
    let f = failure(&report);
    assert_eq!(f.kind, FailureKind::RecordLimit, "{f:?}");
    assert!(f.message.contains("16384 bytes on record"), "{}", f.message);
    let logs = calls(&report, "log");
    let logged = logs
        .iter()
        .filter(|e| e.verdict == Verdict::Allowed)
        .count();
    assert!(
        (15..=17).contains(&logged),
        "{logged} messages of 1 KiB on record"
    );
    finished(&world, &report);
}

#[test]
fn a_log_flood_within_every_total_finishes() {
    let world = World::new();
    let report = run(&world, &configured("log-flooder", &[("count", "10")]));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert_eq!(calls(&report, "log").len(), 10);
    finished(&world, &report);
}

#[test]
fn hostile_guest_with_an_outcome_larger_than_a_ledger_entry_is_cut_to_fit_and_its_end_recorded() {
    let world = World::new();
    let report = run(&world, &load(&fixture("huge-outcome")));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert!(report.outcome_truncated);
    let outcome = report.outcome.as_ref().unwrap();
    assert!(outcome.summary.len() <= grace_engine::engine::MAX_OUTCOME_TEXT_BYTES + 3);
    assert_eq!(
        outcome.details.len(),
        grace_engine::engine::MAX_OUTCOME_DETAILS
    );
    let end = finished(&world, &report);
    assert_eq!(end.result["outcome_truncated"], true);
    assert_eq!(end.result["outcome"]["summary"], json!(outcome.summary));
}

#[test]
fn an_outcome_within_the_bounds_is_kept_whole_and_not_flagged() {
    let world = World::new();
    let guest = configured(
        "huge-outcome",
        &[
            ("summary_bytes", "100"),
            ("details", "3"),
            ("detail_bytes", "10"),
        ],
    );
    let report = run(&world, &guest);
    assert_eq!(report.status, RunStatus::Succeeded);
    assert!(!report.outcome_truncated);
    assert_eq!(report.outcome.as_ref().unwrap().summary.len(), 100);
    assert!(
        finished(&world, &report)
            .result
            .get("outcome_truncated")
            .is_none()
    );
}

#[test]
fn hostile_guest_querying_a_huge_metrics_answer_gets_too_large_and_the_host_stops_reading() {
    // About 60 bytes a series: some 600 MB if it were read whole.
    let endpoint = FakeEndpoint::start(Behaviour::PrometheusFlood { series: 10_000_000 });
    let mut world = world_with_prometheus(&endpoint.endpoint());
    world.env.bounds = RunBounds {
        max_response_bytes: 1024 * 1024,
        ..RunBounds::default()
    };
    let report = run(&world, &load(&fixture("metrics-hog")));
    let f = failure(&report);
    assert_eq!(f.kind, FailureKind::GuestError, "{f:?}");
    assert!(
        f.message.contains("larger than 1048576 bytes"),
        "{}",
        f.message
    );
    let query = calls(&report, "metrics")[0];
    assert_eq!(query.result["error"]["kind"], "too-large");
    assert_eq!(query.result["error"]["limit"], 1024 * 1024);
    finished(&world, &report);
}

#[test]
fn the_response_cap_is_never_more_than_the_guest_could_hold() {
    let endpoint = FakeEndpoint::start(Behaviour::PrometheusFlood { series: 10_000_000 });
    let world = world_with_prometheus(&endpoint.endpoint());
    // The host's cap is 16 MiB; the guest's memory (64 MiB) is not lower, so 16 MiB holds.
    let report = run(&world, &load(&fixture("metrics-hog")));
    assert!(
        failure(&report)
            .message
            .contains("larger than 16777216 bytes"),
        "{:?}",
        report.failure
    );
    // A host cap above the guest's memory is lowered to it.
    let mut world = world_with_prometheus_capped(&endpoint.endpoint(), 1 << 30);
    world.env.bounds.max_response_bytes = 1 << 30;
    let report = run(&world, &load(&fixture("metrics-hog")));
    assert!(
        failure(&report)
            .message
            .contains(&format!("larger than {} bytes", 64 << 20)),
        "{:?}",
        report.failure
    );
}

#[test]
fn a_metrics_answer_over_the_record_budget_reaches_the_guest_whole_and_is_recorded_by_size_and_digest()
 {
    let endpoint = FakeEndpoint::start(Behaviour::Answer {
        status: "200 OK",
        content_type: "application/json",
        body: prometheus_vector(5000),
    });
    let world = world_with_prometheus(&endpoint.endpoint());
    let report = run(&world, &load(&fixture("metrics-hog")));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert_eq!(report.outcome.as_ref().unwrap().details["series"], "5000");
    let entries = world.ledger.entries_for_run(&report.run_id).unwrap();
    let query = entries.iter().find(|e| e.interface == "metrics").unwrap();
    let recorded = &query.result["ok_truncated"];
    let bytes = recorded["bytes"].as_u64().unwrap();
    assert!(
        bytes > RunBounds::default().max_result_record_bytes as u64,
        "{bytes}"
    );
    assert_eq!(recorded["sha256"].as_str().unwrap().len(), 64);
    assert!(
        recorded["preview"]
            .as_str()
            .unwrap()
            .starts_with("[{\"labels\":")
    );
    let stored = serde_json::to_vec(&query.result).unwrap().len();
    assert!(
        stored < 4096,
        "the entry keeps {stored} bytes of a {bytes}-byte result"
    );
    assert_eq!(
        calls(&report, "metrics")[0].result,
        query.result,
        "the timeline keeps the same"
    );
    finished(&world, &report);
}
