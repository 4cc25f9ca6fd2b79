//! Hostile and broken guests are stopped or refused with a typed error, recorded in the ledger,
//! in bounded time, and the host keeps going.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use grace_engine::{FailureKind, RunReport, RunStatus};
use grace_ledger::Verdict;
use serde_json::json;

/// Every fixture in `playbooks/fixtures` must be exercised by a test in this crate.
const TESTED_FIXTURES: &[&str] = &[
    "trivial",
    "echo",
    "infinite-loop",
    "memory-bomb",
    "deep-recursion",
    "ungranted-call",
    "out-of-scope",
    "huge-log",
    "panic",
    "host-call-flood",
    // The benchmarks' read host call: runtime/engine/benches/run.rs.
    "read-flood",
    "sleeper",
    "collector-fixture",
    "impostor-collector",
    "far-future-collector",
    // Tested against the server's per-pass cap in a running server: runtime/cli/tests/events.rs.
    "event-flood-collector",
    // Tested against the trust core's guardrails in a running server: runtime/cli/tests/trust.rs.
    "guardrail-prober",
    // Tested in bounded_runs.rs, and against a running server in runtime/cli/tests/bounds.rs.
    "log-flooder",
    "huge-outcome",
    "metrics-hog",
    // Also against the Kubernetes test API server: tests/parity/tests/identifiers.rs.
    "identifier-injector",
    // The containers capability's boundary: runtime/engine/tests/containers_boundary.rs.
    "container-prober",
    // Tested in runtime/engine/tests/guest_budgets.rs.
    "wasi-sleeper",
    // Tested through `grace` and a running server: runtime/cli/tests/terminal.rs.
    "terminal-injector",
    // Against a recording Prometheus endpoint: runtime/engine/tests/promql_injection.rs.
    "promql-injector",
    // Groups served by different providers: runtime/engine/tests/providers.rs.
    "group-scaler",
    // The anomaly capability against a running server's detectors:
    // runtime/cli/tests/anomaly_playbook.rs.
    "anomaly-reader",
    // The notify capability's boundary: runtime/engine/tests/notify_capability.rs, and
    // delivery through a running server to the Slack test server:
    // runtime/cli/tests/integrations.rs.
    "notifier",
];

fn run_fixture(name: &str) -> (RunReport, World, Duration) {
    let guest = load(&fixture(name));
    let world = World::new();
    let started = Instant::now();
    let report = world.run(
        &guest,
        &event("test.hostile", "api-service", json!({ "value": 1 })),
    );
    (report, world, started.elapsed())
}

fn failure_kind(report: &RunReport) -> FailureKind {
    report
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("the run did not fail: {report:#?}"))
        .kind
}

/// The run's lifecycle is in the ledger: started and finished, with the status.
fn assert_recorded(world: &World, report: &RunReport) {
    let entries = world.ledger.entries_for_run(&report.run_id).unwrap();
    let first = entries.first().expect("the run has ledger entries");
    assert_eq!(
        (first.interface.as_str(), first.function.as_str()),
        ("run", "started")
    );
    let last = entries.last().unwrap();
    assert_eq!(
        (last.interface.as_str(), last.function.as_str()),
        ("run", "finished")
    );
    let status = serde_json::to_value(report.status).unwrap();
    assert_eq!(
        last.result["status"], status,
        "the finished entry records the status"
    );
    world
        .ledger
        .verify()
        .expect("the ledger verifies after a hostile run");
}

#[test]
fn every_fixture_has_a_test() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(playbooks_dir().join("fixtures")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !TESTED_FIXTURES.contains(&name.as_str()) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "fixtures without a test: {missing:?}");
}

#[test]
fn infinite_loop_is_stopped_at_the_deadline() {
    let (report, world, took) = run_fixture("infinite-loop");
    assert_eq!(report.status, RunStatus::TimedOut, "{:?}", report.failure);
    assert!(matches!(
        failure_kind(&report),
        FailureKind::DeadlineExceeded | FailureKind::FuelExhausted
    ));
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_recorded(&world, &report);
}

#[test]
fn infinite_loop_runs_out_of_fuel_when_fuel_is_the_tighter_limit() {
    let mut guest = load(&fixture("infinite-loop"));
    let mut manifest = (*guest.manifest).clone();
    manifest.limits.fuel = 5_000_000;
    manifest.limits.timeout = Duration::from_secs(60);
    guest.manifest = manifest.into();
    let world = World::new();
    let started = Instant::now();
    let report = world.run(&guest, &event("test.hostile", "x", json!({})));
    assert_eq!(failure_kind(&report), FailureKind::FuelExhausted);
    assert_eq!(report.status, RunStatus::Failed);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_recorded(&world, &report);
}

#[test]
fn memory_bomb_is_stopped_at_its_memory_limit() {
    let (report, world, took) = run_fixture("memory-bomb");
    assert_eq!(
        failure_kind(&report),
        FailureKind::MemoryLimit,
        "{:?}",
        report.failure
    );
    assert!(
        report
            .failure
            .as_ref()
            .unwrap()
            .message
            .contains("memory limit")
    );
    assert!(took < Duration::from_secs(30));
    assert_recorded(&world, &report);
}

#[test]
fn a_memory_limit_that_is_obeyed_lets_the_guest_finish() {
    // The same engine runs a well-behaved guest right after the bombs: nothing leaked.
    let _ = run_fixture("memory-bomb");
    let (report, _world, _) = run_fixture("trivial");
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
}

#[test]
fn deep_recursion_overflows_the_stack_and_is_stopped() {
    let (report, world, took) = run_fixture("deep-recursion");
    assert_eq!(
        failure_kind(&report),
        FailureKind::StackOverflow,
        "{:?}",
        report.failure
    );
    assert!(took < Duration::from_secs(30));
    assert_recorded(&world, &report);
}

#[test]
fn an_ungranted_capability_is_denied_with_a_typed_error() {
    let (report, world, _) = run_fixture("ungranted-call");
    assert_eq!(report.status, RunStatus::Failed);
    let failure = report.failure.as_ref().unwrap();
    assert_eq!(failure.kind, FailureKind::GuestError);
    assert!(
        failure.message.contains("not granted"),
        "{}",
        failure.message
    );
    let denied: Vec<_> = report.denials().collect();
    assert_eq!(denied.len(), 1, "{:#?}", report.timeline);
    assert_eq!(denied[0].interface, "kubernetes");
    assert_eq!(denied[0].function, "scale-deployment");
    let entry = &world.ledger.entries_for_run(&report.run_id).unwrap()[1];
    assert_eq!(entry.decision.verdict, Verdict::Denied);
    assert!(
        entry
            .decision
            .reason
            .contains("`kubernetes` is not granted")
    );
    // Nothing changed in the world.
    assert_eq!(world.sim.snapshot(), World::new().sim.snapshot());
    assert_recorded(&world, &report);
}

#[test]
fn calls_outside_the_granted_scope_are_denied_and_change_nothing() {
    let (report, world, _) = run_fixture("out-of-scope");
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    let outcome = report.outcome.as_ref().unwrap();
    assert!(
        outcome.details["wrong_group"].contains("`batch-asg` is not granted"),
        "{outcome:?}"
    );
    assert!(
        outcome.details["big_step"].contains("max_step"),
        "{outcome:?}"
    );
    let denied: Vec<_> = report.denials().collect();
    assert_eq!(denied.len(), 2);
    assert!(denied.iter().all(|e| e.function == "set-desired-capacity"));
    assert_eq!(report.actions().count(), 0);
    assert_eq!(world.sim.snapshot(), World::new().sim.snapshot());
    assert_recorded(&world, &report);
}

#[test]
fn a_huge_log_line_is_refused_and_not_stored_whole() {
    let (report, world, _) = run_fixture("huge-log");
    let failure = report.failure.as_ref().unwrap();
    assert_eq!(failure.kind, FailureKind::GuestError);
    assert!(
        failure.message.contains("max_log_bytes"),
        "{}",
        failure.message
    );
    let log = &report.timeline[0];
    assert_eq!(log.verdict, Verdict::Denied);
    assert_eq!(log.args["bytes"], 1024 * 1024);
    let stored = world.ledger.entries_for_run(&report.run_id).unwrap();
    let recorded = serde_json::to_string(&stored[1].args).unwrap();
    assert!(
        recorded.len() < 1024,
        "the ledger keeps a preview, not the megabyte"
    );
    assert_recorded(&world, &report);
}

#[test]
fn a_panicking_guest_fails_with_its_panic_message() {
    let (report, world, _) = run_fixture("panic");
    let failure = report.failure.as_ref().unwrap();
    assert_eq!(failure.kind, FailureKind::Panic, "{failure:?}");
    assert!(
        failure.message.contains("boom from the panic fixture"),
        "{}",
        failure.message
    );
    assert_recorded(&world, &report);
}

#[test]
fn a_host_call_flood_is_stopped_at_max_host_calls() {
    let (report, world, took) = run_fixture("host-call-flood");
    assert_eq!(failure_kind(&report), FailureKind::HostCallLimit);
    let limit = load(&fixture("host-call-flood"))
        .manifest
        .limits
        .max_host_calls;
    assert_eq!(report.host_calls, limit + 1);
    let last = report.timeline.last().unwrap();
    assert_eq!(last.verdict, Verdict::Denied);
    assert!(last.reason.contains("host call limit"));
    assert!(took < Duration::from_secs(30));
    assert_recorded(&world, &report);
}

#[test]
fn a_read_flood_is_stopped_at_max_host_calls_with_every_read_recorded() {
    let (report, world, _) = run_fixture("read-flood");
    assert_eq!(failure_kind(&report), FailureKind::HostCallLimit);
    let limit = load(&fixture("read-flood")).manifest.limits.max_host_calls;
    assert_eq!(report.host_calls, limit + 1);
    // The group's name from the configuration, then describes until the limit.
    let (last, calls) = report.timeline.split_last().unwrap();
    assert!(last.reason.contains("host call limit"));
    let (first, reads) = calls.split_first().unwrap();
    assert_eq!(
        (first.interface.as_str(), first.function.as_str()),
        ("config", "get")
    );
    assert_eq!(reads.len(), limit as usize - 1);
    for read in reads {
        assert_eq!(
            (
                read.interface.as_str(),
                read.function.as_str(),
                read.verdict
            ),
            ("scaling", "describe-group", Verdict::Allowed)
        );
        assert_eq!(read.result["ok"]["name"], "api-asg");
    }
    assert_recorded(&world, &report);
}

#[test]
fn sleeping_past_the_deadline_is_refused_without_waiting() {
    let (report, world, took) = run_fixture("sleeper");
    let failure = report.failure.as_ref().unwrap();
    assert_eq!(failure.kind, FailureKind::GuestError);
    assert!(failure.message.contains("deadline"), "{}", failure.message);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_recorded(&world, &report);
}

#[test]
fn the_host_keeps_serving_runs_while_hostile_guests_are_stopped() {
    let engine = engine();
    let bad = load(&fixture("infinite-loop"));
    let good = load(&fixture("echo"));
    let world = World::new();
    let rt = runtime();
    let bad_event = event("test.x", "r", json!({}));
    let (bad_report, good_reports) = rt.block_on(async {
        let bad_run = engine.run_playbook(&bad, &bad_event, &world.env);
        let good_runs = async {
            let mut reports = Vec::new();
            for i in 0..5 {
                reports.push(
                    engine
                        .run_playbook(&good, &event("test.x", "r", json!({ "i": i })), &world.env)
                        .await,
                );
            }
            reports
        };
        tokio::join!(bad_run, good_runs)
    });
    assert_eq!(bad_report.status, RunStatus::TimedOut);
    assert!(
        good_reports
            .iter()
            .all(|r| r.status == RunStatus::Succeeded)
    );
    world.ledger.verify().unwrap();
}

/// How many identifiers the `identifier-injector` fixture smuggles: 17 Kubernetes targets,
/// 5 group names, 7 container references and 3 selector keys.
const INJECTED_IDENTIFIERS: usize = 32;

#[test]
fn hostile_guest_injecting_identifiers_is_refused_as_invalid_before_any_grant_check() {
    let (report, world, _) = run_fixture("identifier-injector");
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "{:?}\n{}",
        report.failure,
        report.guest_stderr
    );
    let entries = world.ledger.entries_for_run(&report.run_id).unwrap();
    let invalid: Vec<_> = entries
        .iter()
        .filter(|e| e.result["error"]["kind"] == "invalid-argument")
        .collect();
    assert_eq!(invalid.len(), INJECTED_IDENTIFIERS, "{entries:#?}");
    for e in &invalid {
        assert_eq!(e.decision.verdict, Verdict::Denied);
        // Refused by the identifier's own rules, not by a grant (some would have passed one).
        assert!(
            e.decision.reason.starts_with("invalid argument: `")
                && !e.decision.reason.contains("granted"),
            "{}",
            e.decision.reason
        );
        // The reason quotes the identifier escaped: no control character reaches a terminal.
        assert!(!e.decision.reason.chars().any(char::is_control), "{e:?}");
    }
    assert_eq!(
        report.outcome.as_ref().unwrap().details["refused"],
        INJECTED_IDENTIFIERS.to_string()
    );
    // The one valid call went through, and nothing else changed.
    let actions: Vec<_> = report
        .actions()
        .map(|a| (a.interface.as_str(), a.function.as_str()))
        .collect();
    assert_eq!(actions, [("kubernetes", "scale-deployment")]);
    let k8s = world.sim.executors().kubernetes.default_provider().unwrap();
    let checkout = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(grace_executor::KubernetesExecutor::get_deployment(
            k8s.executor().as_ref(),
            "shop",
            "checkout",
        ))
        .unwrap();
    assert_eq!(checkout.replicas, 3);
    assert_recorded(&world, &report);
}

#[test]
fn hostile_collector_claiming_alertmanager_publishes_under_its_own_name() {
    let guest = load(&fixture("impostor-collector"));
    let world = World::new();
    let report = world.collect(&guest);
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    assert_eq!(report.events.len(), 1);
    assert_eq!(report.events[0].source, "impostor-collector");
    assert_eq!(report.events[0].actor, "impostor-collector");
    assert_recorded(&world, &report);
}

#[test]
fn hostile_collector_dating_an_event_after_year_9999_fails_its_pass_naming_the_timestamp() {
    let guest = load(&fixture("far-future-collector"));
    let world = World::new();
    let report = world.collect(&guest);
    assert_eq!(failure_kind(&report), FailureKind::InvalidOutput);
    let message = &report.failure.as_ref().unwrap().message;
    assert!(
        message.contains("`timestamp`") && message.contains("after 9999-12-31"),
        "{message}"
    );
    assert!(report.events.is_empty());
    assert_recorded(&world, &report);
}
