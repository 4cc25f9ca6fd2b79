//! The trust seam: the engine tells the trust core what a change would do (the resource as the
//! capability saw it, its state, the change), records its decision with the call, and stops a
//! run at a change that awaits approval; the run's retry goes on from there.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use grace_engine::trust::{Ask, Trust, TrustDecision, TrustOutcome};
use grace_engine::{RunReport, RunStatus};
use grace_ledger::Verdict;
use serde_json::json;

/// What the trust core was asked: the call, its key, and the proposal's state and change.
type Asked = (
    String,
    Option<String>,
    Option<grace_model::resource::State>,
    Option<grace_model::resource::Change>,
);

/// Asks for approval of every change until `approved`; remembers what it was asked.
#[derive(Default)]
struct Gate {
    approved: AtomicBool,
    asked: Mutex<Vec<Asked>>,
}

#[async_trait::async_trait]
impl Trust for Gate {
    async fn decide(&self, ask: &Ask<'_>) -> TrustDecision {
        self.asked.lock().unwrap().push((
            format!("{}.{}", ask.call.interface(), ask.call.function()),
            ask.key.map(str::to_owned),
            ask.proposal.map(|p| p.state),
            ask.proposal.map(|p| p.change),
        ));
        if !ask.call.is_change() {
            return TrustDecision::allow("reads are fine");
        }
        if self.approved.load(Ordering::SeqCst) {
            return TrustDecision::allow("approved by alice")
                .with_details(json!({ "risk": { "score": 42 }, "approved_by": ["alice"] }));
        }
        TrustDecision {
            outcome: TrustOutcome::AwaitApproval {
                approval: "ap-1".into(),
            },
            reason: "capacity changes need a person".into(),
            details: Some(json!({ "risk": { "score": 42 } })),
        }
    }
}

fn attempt(world: &World, gate: &Arc<Gate>, retrying: bool) -> RunReport {
    let mut env = world.env.clone().retrying(retrying);
    env.trust = gate.clone();
    let guest = load(&example("scale-on-latency"));
    let event = event("metrics.latency", "api-service", json!({ "value": 2000.0 }));
    runtime().block_on(async {
        let report = engine()
            .run_playbook_as("run-1", &guest, &event, &env)
            .await;
        world.ledger.flush().await.unwrap();
        report
    })
}

#[test]
fn a_change_awaiting_approval_stops_the_run_before_it_and_the_retry_makes_it_once_approved() {
    let world = World::new();
    let gate = Arc::new(Gate::default());

    let paused = attempt(&world, &gate, false);
    assert_eq!(
        paused.status,
        RunStatus::WaitingApproval,
        "{:?}",
        paused.failure
    );
    assert_eq!(paused.approval.as_deref(), Some("ap-1"));
    assert!(paused.failure.is_none());
    assert_eq!(
        desired(&world, "api-asg"),
        3,
        "nothing changed while waiting"
    );

    // The trust core was told what the change would do, as the capability saw it.
    let asked = gate.asked.lock().unwrap().clone();
    let (call, key, state, change) = asked.last().unwrap().clone();
    assert_eq!(call, "scaling.set-desired-capacity");
    let key = key.expect("a change has an idempotency key");
    assert_eq!(state, Some(grace_model::resource::State::new(3, 3)));
    assert_eq!(
        change,
        Some(grace_model::resource::Change::Capacity { to: 5 })
    );

    // The pause is on record, with the trust core's details.
    let waited = paused.timeline.last().unwrap();
    assert_eq!(waited.verdict, Verdict::Denied);
    assert_eq!(waited.result["error"]["kind"], "awaiting-approval");
    assert_eq!(waited.result["approval"], "ap-1");
    assert_eq!(waited.trust.as_ref().unwrap()["risk"]["score"], 42);
    let recorded = world.ledger.entries_for_run("run-1").unwrap();
    let entry = recorded
        .iter()
        .find(|e| e.function == "set-desired-capacity")
        .unwrap();
    assert_eq!(entry.decision.trust.as_ref().unwrap()["risk"]["score"], 42);

    // Approved: the retry asks about the same change (same key) and makes it.
    gate.approved.store(true, Ordering::SeqCst);
    let done = attempt(&world, &gate, true);
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.failure);
    assert_eq!(desired(&world, "api-asg"), 5);
    let asked = gate.asked.lock().unwrap().clone();
    let again = asked
        .iter()
        .rev()
        .find(|(c, ..)| c == "scaling.set-desired-capacity")
        .unwrap();
    assert_eq!(again.1.as_deref(), Some(key.as_str()));
    let made = done.actions().next().unwrap();
    assert_eq!(made.reason, "approved by alice");
    assert_eq!(made.trust.as_ref().unwrap()["approved_by"][0], "alice");
    world.ledger.verify().unwrap();
}

#[test]
fn reads_reach_the_trust_core_with_the_resource_they_look_at() {
    let world = World::new();
    let gate = Arc::new(Gate::default());
    gate.approved.store(true, Ordering::SeqCst);
    let done = attempt(&world, &gate, false);
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.failure);
    let asked = gate.asked.lock().unwrap().clone();
    let calls: Vec<&str> = asked.iter().map(|(c, ..)| c.as_str()).collect();
    assert!(calls.contains(&"metrics.query"), "{calls:?}");
    assert!(calls.contains(&"scaling.describe-group"), "{calls:?}");
    // Reads carry no key and no proposal.
    assert!(
        asked
            .iter()
            .filter(|(c, ..)| c != "scaling.set-desired-capacity")
            .all(|(_, key, state, _)| key.is_none() && state.is_none())
    );
}
