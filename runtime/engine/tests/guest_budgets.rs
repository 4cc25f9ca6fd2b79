//! What a guest may hold of the host's time and memory through WASI and the component model,
//! beyond GRACE's own interfaces: a WASI sleep waits on the run clock (virtual in simulation,
//! never past the deadline), and the manifest's `memory` is one budget for all of a component's
//! memories and tables.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use grace_engine::trust::PassThrough;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use grace_engine::{FailureKind, Guest, RunEnv, RunReport, RunStatus};
use grace_executor::{Executors, SystemClock};
use grace_ledger::{Durability, Ledger};
use serde_json::json;

/// The `wasi-sleeper` fixture (ten one-minute `std::thread::sleep`s) with this deadline.
fn wasi_sleeper(timeout: Duration) -> Guest {
    let mut guest = load(&fixture("wasi-sleeper"));
    let mut manifest = (*guest.manifest).clone();
    manifest.limits.timeout = timeout;
    guest.manifest = manifest.into();
    guest
}

fn assert_stopped_at_the_deadline(report: &RunReport) {
    assert_eq!(report.status, RunStatus::TimedOut, "{:?}", report.failure);
    let failure = report.failure.as_ref().unwrap();
    assert_eq!(failure.kind, FailureKind::DeadlineExceeded);
    // Stopped by the wait itself, not by the epoch deadline or the backstop after it.
    assert!(
        failure.message.contains("waited past its deadline"),
        "{}",
        failure.message
    );
}

#[test]
fn a_wasi_sleep_in_simulation_advances_the_run_clock_instead_of_waiting() {
    let guest = wasi_sleeper(Duration::from_secs(15 * 60));
    let world = World::new();
    let report = world.run(&guest, &event("test.sleep", "r", json!({})));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    // Ten minutes of the run clock, exactly: the guest read them through `Instant`, and the run
    // ended ten minutes of virtual time after it started.
    let outcome = report.outcome.as_ref().unwrap();
    assert_eq!(outcome.details["slept_ms"], "600000");
    assert_eq!(report.finished_at - report.started_at, 600_000);
}

#[test]
fn a_wasi_sleep_past_the_deadline_in_simulation_stops_the_run_at_the_deadline() {
    let guest = wasi_sleeper(Duration::from_secs(90));
    let world = World::new();
    let report = world.run(&guest, &event("test.sleep", "r", json!({})));
    assert_stopped_at_the_deadline(&report);
    // The first minute passed; the second would have ended past the deadline.
    assert_eq!(report.finished_at - report.started_at, 90_000);
    let entries = world.ledger.entries_for_run(&report.run_id).unwrap();
    let last = entries.last().unwrap();
    assert_eq!(last.function, "finished");
    assert_eq!(last.result["status"], "timed-out");
    assert_eq!(last.result["failure"]["kind"], "deadline-exceeded");
}

#[test]
fn a_wasi_sleep_past_the_deadline_on_the_system_clock_stops_the_run_at_the_deadline() {
    let guest = wasi_sleeper(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(dir.path().join("grace.redb"), Durability::None).unwrap());
    let env = RunEnv::new(
        Executors::none(Arc::new(SystemClock)),
        ledger.clone(),
        Arc::new(PassThrough),
    );
    let report = runtime().block_on(async {
        let report = engine()
            .run_playbook(&guest, &event("test.sleep", "r", json!({})), &env)
            .await;
        ledger.flush().await.unwrap();
        report
    });
    assert_stopped_at_the_deadline(&report);
    let entries = ledger.entries_for_run(&report.run_id).unwrap();
    assert_eq!(entries.last().unwrap().result["status"], "timed-out");
}

/// Appends to a component `extra` core modules, each defining one memory of `pages` 64 KiB pages,
/// and an instance of each: a component whose memories are each within a budget, together not.
fn with_extra_memories(component: &[u8], extra: usize, pages: u8) -> Vec<u8> {
    assert!(pages < 0x80, "one LEB128 byte");
    // The component's own core modules come first in its module index space.
    let mut modules = 0u32;
    let mut at = 8;
    while at < component.len() {
        let id = component[at];
        at += 1;
        let (mut size, mut shift) = (0usize, 0);
        loop {
            let byte = component[at];
            at += 1;
            size |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if id == 1 {
            modules += 1;
        }
        at += size;
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.extend_from_slice(&[5, 3, 1, 0, pages]); // memory section: one memory, min `pages`
    let mut out = component.to_vec();
    for i in 0..extra {
        let index = u8::try_from(modules as usize + i).unwrap();
        assert!(index < 0x80, "one LEB128 byte");
        out.push(1); // core module section
        out.push(u8::try_from(module.len()).unwrap());
        out.extend_from_slice(&module);
        out.extend_from_slice(&[2, 4, 1, 0, index, 0]); // core instance section: instantiate it
    }
    out
}

/// `trivial` with `extra` more memories of `pages` pages each, and a budget of 8 MiB.
fn trivial_with_memories(extra: usize, pages: u8) -> Guest {
    let trivial = load(&fixture("trivial"));
    let mut manifest = (*trivial.manifest).clone();
    manifest.limits.memory_bytes = 8 * 1024 * 1024;
    let bytes = std::fs::read(&manifest.component).unwrap();
    engine()
        .guest(
            manifest,
            &with_extra_memories(&bytes, extra, pages),
            "a component with extra memories",
        )
        .unwrap()
}

#[test]
fn hostile_guest_with_several_memories_is_held_to_one_memory_budget() {
    // Three more memories of 4 MiB: each within the 8 MiB budget, together 12 MiB and more.
    let guest = trivial_with_memories(3, 64);
    let world = World::new();
    let report = world.run(&guest, &event("test.memories", "r", json!({})));
    let failure = report.failure.as_ref().unwrap();
    assert_eq!(failure.kind, FailureKind::MemoryLimit, "{failure:?}");
    assert!(
        failure.message.contains("all memories and tables together"),
        "{}",
        failure.message
    );
    let entries = world.ledger.entries_for_run(&report.run_id).unwrap();
    assert_eq!(
        entries.last().unwrap().result["failure"]["kind"],
        "memory-limit"
    );
}

#[test]
fn a_guest_whose_memories_fit_the_budget_together_runs() {
    // Three more memories of 1 MiB: with the guest's own, within 8 MiB.
    let guest = trivial_with_memories(3, 16);
    let world = World::new();
    let report = world.run(&guest, &event("test.memories", "r", json!({})));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
}
