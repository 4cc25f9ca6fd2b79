//! The `notify` capability's boundary, with the `notifier` fixture on the simulated fleet
//! (whose messages are kept, never sent): a granted channel gets the message queued once, and
//! everything else is refused and recorded — malformed channels and texts before any grant is
//! consulted, ungranted channels, and messages past the run's budget. The trust core is asked
//! about the channel as parsed, and a retried run does not post again.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use grace_engine::trust::{Ask, Trust, TrustDecision};
use grace_engine::{RunEnv, RunReport, RunStatus};
use grace_ledger::Verdict;
use grace_model::ResourceKind;
use serde_json::{Value, json};

fn post(world: &World, messages: Value) -> (RunReport, Vec<Value>) {
    let guest = load(&fixture("notifier"));
    let report = world.run(
        &guest,
        &event(
            "test.notify",
            "api-service",
            json!({ "messages": messages }),
        ),
    );
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
    let answers = answers(&report);
    (report, answers)
}

/// The fixture's answers, from its outcome's details (text).
fn answers(report: &RunReport) -> Vec<Value> {
    serde_json::from_str(&report.outcome.as_ref().unwrap().details["answers"]).unwrap()
}

fn refused(answer: &Value, kind: &str, says: &str) {
    assert_eq!(answer["error"]["kind"], kind, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "`{says}` not in {message}");
}

#[test]
fn a_granted_channel_gets_the_message_as_written_and_the_ledger_keeps_it() {
    let world = World::new();
    let text = "<!channel> p95 is *up*";
    let (report, answers) = post(&world, json!([{ "channel": "slack:#ops", "text": text }]));
    assert_eq!(answers, [json!({ "ok": 1 })]);
    let kept = world.sim.messages();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].channel, "slack:#ops");
    assert_eq!(
        kept[0].text, text,
        "the text is queued as written, escaped when rendered"
    );
    assert_eq!(kept[0].run_id, report.run_id);
    assert_eq!(kept[0].playbook, "notifier");
    assert_eq!(kept[0].resource, "api-service");
    let entry = report.actions().next().unwrap();
    assert_eq!(entry.interface, "notify");
    assert_eq!(entry.verdict, Verdict::Allowed);
    assert_eq!(entry.args["text"], text);
    assert_eq!(entry.result["ok"], 1);
    assert!(entry.result["idempotency_key"].is_string(), "{entry:?}");
    world.ledger.verify().unwrap();
}

#[test]
fn malformed_channels_and_texts_are_invalid_before_any_grant_is_consulted() {
    let world = World::new();
    let (_, answers) = post(
        &world,
        json!([
            { "channel": "#ops", "text": "x" },
            { "channel": "slack:<!channel>", "text": "x" },
            { "channel": "slack:ops alerts", "text": "x" },
            { "channel": "email:ops@example.com", "text": "x" },
            { "channel": "pagerduty", "text": "x" },
            { "channel": "slack:#ops", "text": "" },
            { "channel": "slack:#ops", "text": "x", "repeat": 3001 },
            { "channel": "slack:#ops", "text": "y", "repeat": 5000 },
        ]),
    );
    for a in &answers[..4] {
        refused(a, "invalid-argument", "channel");
    }
    // A well-formed channel the grant cannot list is denied, not invalid.
    refused(&answers[4], "denied", "`pagerduty` is not granted");
    refused(&answers[5], "invalid-argument", "`text` is empty");
    refused(&answers[6], "invalid-argument", "3001 bytes");
    refused(&answers[7], "invalid-argument", "5000 bytes");
    assert!(world.sim.messages().is_empty());
}

#[test]
fn an_ungranted_channel_is_denied_naming_the_granted_ones() {
    let world = World::new();
    let (report, answers) = post(
        &world,
        json!([
            { "channel": "slack:#general", "text": "x" },
            // `ops` without `#` is another channel name as far as the grant is concerned.
            { "channel": "slack:ops", "text": "x" },
            { "channel": "slack:C0123ABCD", "text": "to the id" },
        ]),
    );
    refused(&answers[0], "denied", "`slack:#general` is not granted");
    refused(&answers[0], "denied", "`slack:#ops`");
    refused(&answers[1], "denied", "`slack:ops` is not granted");
    assert_eq!(answers[2], json!({ "ok": 1 }));
    let kept = world.sim.messages();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].channel, "slack:C0123ABCD");
    let verdicts: Vec<Verdict> = report
        .timeline
        .iter()
        .filter(|e| e.interface == "notify")
        .map(|e| e.verdict)
        .collect();
    assert_eq!(
        verdicts,
        [Verdict::Denied, Verdict::Denied, Verdict::Allowed]
    );
}

#[test]
fn a_run_posts_at_most_its_messages_and_bytes() {
    let world = World::new();
    // 100 bytes and 3 messages per run: 60 + 40 bytes pass, the next byte does not.
    let (_, answers) = post(
        &world,
        json!([
            { "channel": "slack:#ops", "text": "a", "repeat": 60 },
            { "channel": "slack:#ops", "text": "b", "repeat": 41 },
            { "channel": "slack:#ops", "text": "c", "repeat": 40 },
            { "channel": "slack:#ops", "text": "d" },
        ]),
    );
    assert_eq!(answers[0], json!({ "ok": 1 }));
    refused(&answers[1], "denied", "max_bytes");
    assert_eq!(answers[2], json!({ "ok": 2 }));
    refused(&answers[3], "denied", "max_bytes");

    let world = World::new();
    let (_, answers) = post(
        &world,
        json!([
            { "channel": "slack:#ops", "text": "1" },
            { "channel": "slack:#ops", "text": "2" },
            { "channel": "slack:C0123ABCD", "text": "3" },
            { "channel": "slack:#ops", "text": "4" },
        ]),
    );
    assert_eq!(answers[2], json!({ "ok": 3 }));
    refused(&answers[3], "denied", "max_messages");
    assert_eq!(world.sim.messages().len(), 3);
}

/// A trust core that records what it was asked about and allows it.
#[derive(Default)]
struct Recording(Mutex<Vec<(String, Value)>>);

#[async_trait::async_trait]
impl Trust for Recording {
    async fn decide(&self, ask: &Ask<'_>) -> TrustDecision {
        let proposal = ask
            .proposal
            .map(|p| json!({ "kind": p.resource.kind, "id": p.resource.id, "change": p.change }));
        self.0.lock().unwrap().push((
            ask.call.descriptor.name.to_owned(),
            proposal.unwrap_or(Value::Null),
        ));
        TrustDecision::allow("recorded")
    }
}

#[test]
fn the_trust_core_decides_on_the_channel_as_parsed_and_a_retry_posts_nothing_again() {
    let mut world = World::new();
    let trust = Arc::new(Recording::default());
    world.env = RunEnv::new(world.sim.executors(), world.ledger.clone(), trust.clone());
    let guest = load(&fixture("notifier"));
    let event = event(
        "test.notify",
        "api-service",
        json!({ "messages": [
            { "channel": "slack:#ops", "text": "first" },
            { "channel": "slack:#ops", "text": "second" },
        ] }),
    );
    let attempt = |retrying: bool| {
        runtime().block_on(async {
            let env = world.env.clone().retrying(retrying);
            let report = engine()
                .run_playbook_as("run-n", &guest, &event, &env)
                .await;
            world.ledger.flush().await.unwrap();
            report
        })
    };
    let first = attempt(false);
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.failure);
    let asked = trust.0.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0].0, "send");
    assert_eq!(
        asked[0].1,
        json!({ "kind": ResourceKind::Channel, "id": "slack:#ops", "change": { "kind": "none" } })
    );

    let retry = attempt(true);
    assert_eq!(retry.status, RunStatus::Succeeded, "{:?}", retry.failure);
    assert_eq!(answers(&retry), [json!({ "ok": 1 }), json!({ "ok": 2 })]);
    assert_eq!(
        world.sim.messages().len(),
        2,
        "the retry posted nothing again"
    );
    for entry in retry.actions() {
        assert!(entry.result["replayed_from"].is_u64(), "{entry:?}");
    }
}

/// Attempt `retrying` of run `run` with `messages`, on `world`.
fn attempt(world: &World, run: &str, retrying: bool, messages: Value) -> RunReport {
    let guest = load(&fixture("notifier"));
    let event = event(
        "test.notify",
        "api-service",
        json!({ "messages": messages }),
    );
    runtime().block_on(async {
        let env = world.env.clone().retrying(retrying);
        let report = engine().run_playbook_as(run, &guest, &event, &env).await;
        world.ledger.flush().await.unwrap();
        report
    })
}

#[test]
fn the_budget_holds_across_a_runs_attempts() {
    let world = World::new();
    let first = attempt(
        &world,
        "run-b",
        false,
        json!([
            { "channel": "slack:#ops", "text": "a", "repeat": 60 },
            { "channel": "slack:#ops", "text": "b", "repeat": 10 },
        ]),
    );
    assert_eq!(answers(&first), [json!({ "ok": 1 }), json!({ "ok": 2 })]);
    // A retry asking for other messages: its first two are the earlier attempt's (replayed,
    // not counted twice), the third is new and fits (100 bytes, 3 messages), the fourth is
    // past max_messages however few bytes it has.
    let retry = attempt(
        &world,
        "run-b",
        true,
        json!([
            { "channel": "slack:#ops", "text": "x", "repeat": 5 },
            { "channel": "slack:#ops", "text": "y", "repeat": 30 },
            { "channel": "slack:C0123ABCD", "text": "c", "repeat": 30 },
            { "channel": "slack:C0123ABCD", "text": "d" },
        ]),
    );
    let got = answers(&retry);
    assert_eq!(
        got[..3],
        [json!({ "ok": 1 }), json!({ "ok": 2 }), json!({ "ok": 3 })]
    );
    refused(&got[3], "denied", "max_messages");
    assert_eq!(world.sim.messages().len(), 3);
    // The replay records what was sent, and what this attempt asked.
    let replay = retry
        .timeline
        .iter()
        .find(|e| e.interface == "notify")
        .unwrap();
    assert_eq!(replay.args["text"], "a".repeat(60));
    assert_eq!(replay.result["asked"]["text"], "xxxxx");

    // Bytes too: 90 bytes sent by the first attempt leave 10 for the whole run.
    let world = World::new();
    let first = attempt(
        &world,
        "run-c",
        false,
        json!([{ "channel": "slack:#ops", "text": "a", "repeat": 90 }]),
    );
    assert_eq!(answers(&first), [json!({ "ok": 1 })]);
    let retry = attempt(
        &world,
        "run-c",
        true,
        json!([{ "channel": "slack:C0123ABCD", "text": "b", "repeat": 20 }]),
    );
    refused(&answers(&retry)[0], "denied", "max_bytes");
    assert_eq!(world.sim.messages().len(), 1);
}
