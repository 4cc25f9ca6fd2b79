//! Approval requests in the engine, as two replicas see them, against a real JetStream server:
//! one request per change whichever replica asks, votes from either counted together, and a
//! vote given at the same moment on the other replica never overwritten.

// A panic is how a test fails: unwrapping in the helpers is the point.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt as _;
use grace_cluster::approvals::ApprovalBoard;
use grace_cluster::{ClusterSettings, Engine};
use grace_server::trust::approvals::{
    Approval, ApprovalState, Approvals, Vote, VoteError, VoteRecorder, approval_id,
};
use grace_testkit::nats::NatsCluster;
use serde_json::json;

/// Two replicas' views of the requests, each on its own connection to the engine.
async fn two_replicas(nats: &NatsCluster) -> (Approvals, Approvals) {
    let settings = ClusterSettings {
        nats: nats.urls(),
        engine_replicas: 1,
        ..ClusterSettings::default()
    };
    let mut views = Vec::new();
    for _ in 0..2 {
        let engine = Engine::connect(&settings).await.unwrap();
        views.push(Approvals::shared(
            ApprovalBoard::open(&engine, &settings).await.unwrap(),
        ));
    }
    let b = views.pop().unwrap();
    (views.pop().unwrap(), b)
}

fn request(run: &str, approvers: u8, now: u64) -> Approval {
    let args = json!({"group": "web", "desired_capacity": 8});
    Approval {
        id: approval_id(run, "scale-1", &args),
        run_id: run.into(),
        idempotency_key: "scale-1".into(),
        playbook: "scaler".into(),
        digest: "sha256:00".into(),
        action: "scaling.set-desired-capacity".into(),
        args,
        resource: "group/web".into(),
        approvers,
        reason: "risk above 80".into(),
        decision: json!({}),
        state: ApprovalState::Pending,
        created_at: now,
        expires_at: now + 60_000,
        decided_at: None,
        approved_by: vec![],
        denied_by: None,
    }
}

fn vote(by: &str, at: u64) -> Vote {
    Vote {
        by: by.into(),
        principal: format!("local:{by}"),
        token_id: format!("tok-{by}"),
        at,
        comment: None,
    }
}

/// A ledger that records every vote.
#[derive(Default)]
struct Recorded(Mutex<Vec<Approval>>);

#[async_trait::async_trait]
impl VoteRecorder for Recorded {
    async fn record(&self, approval: &Approval) -> Result<(), String> {
        self.0.lock().unwrap().push(approval.clone());
        Ok(())
    }
}

fn now() -> u64 {
    grace_engine::event::system_now_millis()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_asked_on_one_replica_is_seen_and_decided_on_the_other() {
    let Some(nats) = NatsCluster::start("a_request_asked_on_one_replica", 1) else {
        return;
    };
    let (a, b) = two_replicas(&nats).await;
    let mut watch = Box::pin(a.changes().await.unwrap().expect("clustered"));
    let asked = request("00aa", 2, now());

    // Asked on A; the run, taken over by B, asks for the same change: one request.
    let stored = a.ask(&asked).await.unwrap();
    assert_eq!(stored, asked);
    let mut again = asked.clone();
    again.created_at += 5_000;
    assert_eq!(b.ask(&again).await.unwrap(), asked, "B finds A's request");
    let listed = b.list(Some(ApprovalState::Pending), 10).await.unwrap();
    assert_eq!(listed, vec![asked.clone()]);

    // Alice on A, Bob on B: two distinct people, counted together.
    let ledger = Recorded::default();
    let first = a
        .vote(&asked.id, vote("alice", now()), true, &ledger)
        .await
        .unwrap();
    assert_eq!(first.state, ApprovalState::Pending);
    let twice = b
        .vote(&asked.id, vote("alice", now()), true, &ledger)
        .await
        .unwrap_err();
    assert!(matches!(twice, VoteError::AlreadyVoted { .. }), "{twice}");
    let decided = b
        .vote(&asked.id, vote("bob", now()), true, &ledger)
        .await
        .unwrap();
    assert_eq!(decided.state, ApprovalState::Approved);
    assert_eq!(decided.approvers_text(), "alice and bob");
    assert_eq!(a.get(&asked.id).await.unwrap().unwrap(), decided);

    // A learns of B's votes without asking: what wakes a run waiting on A.
    let mut seen = Vec::new();
    while seen
        .last()
        .is_none_or(|a: &Approval| a.state == ApprovalState::Pending)
    {
        let change = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("the change reaches the other replica")
            .unwrap()
            .unwrap();
        seen.push(change);
    }
    assert_eq!(seen.last().unwrap(), &decided);

    // An id the engine could not hold is no request: nothing is built from it.
    for id in ["ap-../x", "approval.>", "ap-0123456789ABCDEF", "*"] {
        assert_eq!(a.get(id).await.unwrap(), None, "{id}");
        let err = a
            .vote(id, vote("carol", now()), true, &ledger)
            .await
            .unwrap_err();
        assert!(matches!(err, VoteError::NotFound(_)), "{err}");
    }
}

/// Votes a second person on the other replica while this vote's ledger entry is being made:
/// the moment two replicas count votes on the same request.
struct RacingVoter<'a> {
    other: &'a Approvals,
    id: String,
    other_said: Mutex<Option<Result<Approval, String>>>,
}

#[async_trait::async_trait]
impl VoteRecorder for RacingVoter<'_> {
    async fn record(&self, _: &Approval) -> Result<(), String> {
        let said = self
            .other
            .vote(&self.id, vote("bob", now()), false, &Recorded::default())
            .await
            .map_err(|e| e.to_string());
        *self.other_said.lock().unwrap() = Some(said);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vote_given_at_the_same_moment_on_another_replica_is_never_overwritten() {
    let Some(nats) = NatsCluster::start("a_vote_given_at_the_same_moment", 1) else {
        return;
    };
    let (a, b) = two_replicas(&nats).await;
    let asked = a.ask(&request("00bb", 1, now())).await.unwrap();
    let racer = RacingVoter {
        other: &b,
        id: asked.id.clone(),
        other_said: Mutex::new(None),
    };
    // Alice approves on A; while A records her vote, Bob denies on B.
    let err = a
        .vote(&asked.id, vote("alice", now()), true, &racer)
        .await
        .unwrap_err();
    assert!(matches!(err, VoteError::Raced(_)), "{err}");
    let bob = racer.other_said.lock().unwrap().take().unwrap().unwrap();
    assert_eq!(bob.state, ApprovalState::Denied);
    // What stands is Bob's denial, alone: Alice's approval did not overwrite it.
    let stored = b.get(&asked.id).await.unwrap().unwrap();
    assert_eq!(stored, bob);
    assert!(stored.approved_by.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn either_replica_expires_a_request_and_a_cancelled_run_withdraws_it_everywhere() {
    let Some(nats) = NatsCluster::start("either_replica_expires_a_request", 1) else {
        return;
    };
    let (a, b) = two_replicas(&nats).await;
    let t = now();
    let mut due = request("00cc", 1, t);
    due.expires_at = t + 10;
    let due = a.ask(&due).await.unwrap();
    let later = a.ask(&request("00dd", 1, t)).await.unwrap();

    // Both replicas expire at once: one of them does it, and it happens once.
    let (x, y) = tokio::join!(b.expire_due(t + 20), a.expire_due(t + 20));
    let mut expired: Vec<String> = x
        .unwrap()
        .into_iter()
        .chain(y.unwrap())
        .map(|a| a.id)
        .collect();
    expired.sort();
    assert_eq!(expired, vec![due.id.clone()]);
    assert_eq!(
        a.get(&due.id).await.unwrap().unwrap().state,
        ApprovalState::Expired
    );
    let late = b
        .vote(&due.id, vote("alice", t + 30), true, &Recorded::default())
        .await
        .unwrap_err();
    assert!(late.to_string().contains("expired"), "{late}");

    b.cancel_for_run("00dd", t + 40).await.unwrap();
    assert_eq!(
        a.get(&later.id).await.unwrap().unwrap().state,
        ApprovalState::Cancelled
    );
}
