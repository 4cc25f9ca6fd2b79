//! Approval requests: a change the trust core would only allow once people agree, waiting for
//! their votes, durably in redb (a restart loses none; a waiting run goes on once they voted),
//! or, when GRACE runs clustered, in the engine ([`shared`]): every replica lists the same
//! requests and takes votes on them, and a run taken over by another replica finds the request
//! its first replica made, with the votes given since.
//!
//! An approval is for one change of one run: its id is derived from the run, the change's
//! idempotency key and its exact arguments, so the retried run finds it again, and a change
//! whose arguments differ on the retry (the state moved meanwhile) is a different request: no
//! one approves what they did not see.
//!
//! People are counted as principals (see [`crate::auth::principals`]): two tokens of one
//! principal are one person, and vote once.
//!
//! # A vote counts only once its ledger entry is durable
//!
//! The ledger and this table share one redb database, but the ledger's entries are chained and
//! committed by its own writer thread, so a vote and its entry cannot share a redb
//! transaction (holding a write transaction open while waiting for the writer would deadlock:
//! redb has one writer at a time). Instead [`Approvals::vote`] works in one critical section
//! that every writer of this table takes: it reads the approval and checks the vote, has the
//! ledger entry appended and committed (the caller's [`VoteRecorder`]), and only then stores the vote.
//! If the append fails, nothing was stored and the caller gets the error. Nothing else can
//! change the approval in between (every write here takes the same lock), so the stored vote is
//! exactly the one the entry describes. What remains is a crash, or a storage failure, after
//! the entry and before the vote is stored: then the ledger shows a vote that did not count
//! ([`VoteError::NotStored`]), never a counted vote missing from the ledger — the direction in
//! which an audit trail may err.
//!
//! Clustered, the lock holds only within one replica; between replicas the vote is stored by a
//! compare-and-set on the revision it was checked against, so a vote given at the same moment
//! on another replica is never overwritten: this one is then refused ([`VoteError::Raced`])
//! and, as above, the ledger shows a vote that did not count.

mod local;
mod shared;

use std::sync::Arc;

use grace_cluster::approvals::ApprovalBoard;
use grace_ledger::Database;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where an approval request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalState {
    /// Waiting for votes.
    Pending,
    /// Enough distinct people approved.
    Approved,
    /// Someone denied it.
    Denied,
    /// Nobody decided in time: it counts as denied.
    Expired,
    /// Its run was cancelled.
    Cancelled,
}

impl ApprovalState {
    /// As in the API.
    pub fn name(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Cancelled => "cancelled",
        }
    }

    /// Every state.
    pub const ALL: [ApprovalState; 5] = [
        ApprovalState::Pending,
        ApprovalState::Approved,
        ApprovalState::Denied,
        ApprovalState::Expired,
        ApprovalState::Cancelled,
    ];

    /// Parses a state name.
    pub fn parse(name: &str) -> Option<ApprovalState> {
        ApprovalState::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One person's vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// Who, for people: the principal's display name.
    pub by: String,
    /// The principal's id (`local:alice`, `oidc:<issuer>#<sub>`): what the two-person rule
    /// counts. Empty in votes stored before principals (see [`Vote::principal_id`]).
    #[serde(default)]
    pub principal: String,
    /// Their token's id.
    pub token_id: String,
    /// When (wall clock, ms).
    pub at: u64,
    /// What they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A change waiting for people to approve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Id (`ap-<hex>`).
    pub id: String,
    /// The run that waits.
    pub run_id: String,
    /// The change's idempotency key.
    pub idempotency_key: String,
    /// The playbook asking.
    pub playbook: String,
    /// Its component digest.
    pub digest: String,
    /// The capability function (`scaling.set-desired-capacity`).
    pub action: String,
    /// The call's arguments, as recorded.
    pub args: Value,
    /// The resource (`group/web-prod`).
    pub resource: String,
    /// How many distinct people must approve.
    pub approvers: u8,
    /// The trust core's reason for asking.
    pub reason: String,
    /// The trust core's decision in full (risk score and factors, policies).
    pub decision: Value,
    /// Where it is.
    pub state: ApprovalState,
    /// When it was asked (wall clock, ms).
    pub created_at: u64,
    /// When it expires unless decided (wall clock, ms).
    pub expires_at: u64,
    /// When it was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<u64>,
    /// Approvals so far.
    #[serde(default)]
    pub approved_by: Vec<Vote>,
    /// The denial, if denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_by: Option<Vote>,
}

impl Vote {
    /// The principal who voted. Votes stored before principals name only a token name, which
    /// is what the previous version counted: such a vote stands for the local principal of that
    /// name, as its token does after migration.
    pub fn principal_id(&self) -> String {
        if self.principal.is_empty() {
            crate::auth::principals::local_id(&self.by)
        } else {
            self.principal.clone()
        }
    }
}

impl Approval {
    /// Whether votes are still taken at `now`.
    pub fn is_open(&self, now: u64) -> bool {
        self.state == ApprovalState::Pending && now < self.expires_at
    }

    /// Who approved, for reasons: `alice and bob`.
    pub fn approvers_text(&self) -> String {
        let names: Vec<&str> = self.approved_by.iter().map(|v| v.by.as_str()).collect();
        match names.as_slice() {
            [] => "nobody".to_owned(),
            [one] => (*one).to_owned(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }
}

/// The id of the approval for the change with idempotency `key` and arguments `args` in `run`.
pub fn approval_id(run: &str, key: &str, args: &Value) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for part in [run, key, &args.to_string()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("ap-{}", hex::encode(&h.finalize()[..8]))
}

/// Why a vote was refused.
#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    /// No such approval.
    #[error("no approval `{0}`")]
    NotFound(String),
    /// It is decided, expired or cancelled.
    #[error("approval `{id}` is {state}: it takes no more votes")]
    Closed {
        /// The approval.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// The same principal approved already (with this token or another of theirs).
    #[error(
        "{by} already approved `{id}`; it needs {needed} distinct people, and every token of one principal is one person"
    )]
    AlreadyVoted {
        /// The approval.
        id: String,
        /// Who.
        by: String,
        /// How many are needed.
        needed: u8,
    },
    /// Storage failed.
    #[error("the approvals cannot be stored: {0}")]
    Storage(String),
    /// The vote's ledger entry could not be made durable: the vote was not stored.
    #[error("the ledger could not record the vote, so it was not counted: {0}")]
    NotRecorded(String),
    /// The vote's ledger entry is durable but storing the vote failed: the ledger shows a vote
    /// that does not count.
    #[error(
        "the vote was recorded in the ledger but could not be stored, so it was not counted: {0}"
    )]
    NotStored(String),
    /// Clustered: another replica wrote the request between this vote's read and its write (a
    /// vote given at the same moment there). The ledger shows this vote, which did not count.
    #[error(
        "approval `{0}` changed while the vote was being counted (a vote given at the same moment on another replica): this vote was not counted, though the ledger records it; look at the approval and vote again"
    )]
    Raced(String),
}

pub(super) fn storage<E: std::fmt::Display>(e: E) -> VoteError {
    VoteError::Storage(e.to_string())
}

/// Where the requests are kept.
#[derive(Clone)]
enum Store {
    /// The server's own redb (a single `grace serve`).
    Local(Arc<Database>),
    /// The engine (clustered): every replica sees and decides the same requests. Boxed: the
    /// engine's handles are large beside a database handle.
    Shared(Box<ApprovalBoard>),
}

/// Records a vote's ledger entry and returns once it is durable (see the module's text).
#[async_trait::async_trait]
pub trait VoteRecorder: Send + Sync {
    /// Records the vote that leaves the request as `approval`.
    async fn record(&self, approval: &Approval) -> Result<(), String>;
}

/// The approval requests, in the server's database or, clustered, in the engine.
#[derive(Clone)]
pub struct Approvals {
    store: Store,
    /// Taken by every write here: a vote's check, ledger entry and store are one step (see the
    /// module documentation). Between replicas the engine's compare-and-set does this.
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

/// Runs `f` on the server's database off the async threads (a write commits with an fsync).
async fn on_disk<T: Send + 'static>(
    db: &Arc<Database>,
    f: impl FnOnce(&Database) -> Result<T, VoteError> + Send + 'static,
) -> Result<T, VoteError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(storage)?
}

/// Counts `vote` on `approval` as it stands at `vote.at`: an approval needs enough distinct
/// principals; one denial decides. The request is left as it was when the vote is refused.
fn cast(approval: &mut Approval, vote: Vote, approve: bool) -> Result<(), VoteError> {
    let now = vote.at;
    if approval.state == ApprovalState::Pending && now >= approval.expires_at {
        return Err(VoteError::Closed {
            id: approval.id.clone(),
            state: ApprovalState::Expired.name(),
        });
    }
    if approval.state != ApprovalState::Pending {
        return Err(VoteError::Closed {
            id: approval.id.clone(),
            state: approval.state.name(),
        });
    }
    if approve {
        let who = vote.principal_id();
        if approval.approved_by.iter().any(|v| v.principal_id() == who) {
            return Err(VoteError::AlreadyVoted {
                id: approval.id.clone(),
                by: vote.by.clone(),
                needed: approval.approvers,
            });
        }
        approval.approved_by.push(vote);
        if approval.approved_by.len() >= usize::from(approval.approvers) {
            approval.state = ApprovalState::Approved;
            approval.decided_at = Some(now);
        }
    } else {
        approval.state = ApprovalState::Denied;
        approval.decided_at = Some(now);
        approval.denied_by = Some(vote);
    }
    Ok(())
}

impl Approvals {
    /// The approvals table in `db`, created if missing.
    pub fn open(db: Arc<Database>) -> Result<Approvals, VoteError> {
        local::open(&db)?;
        Ok(Approvals {
            store: Store::Local(db),
            writing: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The requests in the engine, shared by every replica of the cluster.
    pub fn shared(board: ApprovalBoard) -> Approvals {
        Approvals {
            store: Store::Shared(Box::new(board)),
            writing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Whether the requests are the cluster's (in the engine).
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Shared(_))
    }

    /// One approval.
    pub async fn get(&self, id: &str) -> Result<Option<Approval>, VoteError> {
        match &self.store {
            Store::Local(db) => {
                let id = id.to_owned();
                on_disk(db, move |db| local::get(db, &id)).await
            }
            Store::Shared(board) => Ok(shared::get(board, id).await?.map(|(a, _)| a)),
        }
    }

    /// Approvals, newest first, optionally only those in `state`.
    pub async fn list(
        &self,
        state: Option<ApprovalState>,
        limit: usize,
    ) -> Result<Vec<Approval>, VoteError> {
        let mut out = match &self.store {
            Store::Local(db) => on_disk(db, move |db| local::list(db, state)).await?,
            Store::Shared(board) => {
                let mut all = shared::list(board).await?;
                all.retain(|a| state.is_none_or(|s| s == a.state));
                all
            }
        };
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// Stores the new request `approval` unless one of its id was asked for already (by an
    /// earlier attempt of the run, here or, clustered, on another replica); answers the request
    /// as stored.
    pub async fn ask(&self, approval: &Approval) -> Result<Approval, VoteError> {
        let _writing = self.writing.lock().await;
        match &self.store {
            Store::Local(db) => {
                let approval = approval.clone();
                on_disk(db, move |db| match local::get(db, &approval.id)? {
                    Some(existing) => Ok(existing),
                    None => local::store(db, &approval).map(|()| approval),
                })
                .await
            }
            Store::Shared(board) => shared::create(board, approval).await,
        }
    }

    /// Records `vote` on approval `id` (an approval if `approve`, else a denial) as one step
    /// with its ledger entry: checks it against the stored approval, has `recorder` record the
    /// approval as the vote leaves it (it returns once the entry is durable), and stores the
    /// vote only if that succeeded. An approval needs enough distinct principals; one denial
    /// decides.
    pub async fn vote(
        &self,
        id: &str,
        vote: Vote,
        approve: bool,
        recorder: &dyn VoteRecorder,
    ) -> Result<Approval, VoteError> {
        let _writing = self.writing.lock().await;
        let (mut approval, revision) = match &self.store {
            Store::Local(db) => {
                let id = id.to_owned();
                (on_disk(db, move |db| local::get(db, &id)).await?, None)
            }
            Store::Shared(board) => match shared::get(board, id).await? {
                Some((a, revision)) => (Some(a), Some(revision)),
                None => (None, None),
            },
        };
        let mut approval = approval
            .take()
            .ok_or_else(|| VoteError::NotFound(id.to_owned()))?;
        cast(&mut approval, vote, approve)?;
        recorder
            .record(&approval)
            .await
            .map_err(VoteError::NotRecorded)?;
        let stored = match (&self.store, revision) {
            (Store::Local(db), _) => {
                let approval = approval.clone();
                on_disk(db, move |db| local::store(db, &approval)).await
            }
            (Store::Shared(board), Some(revision)) => shared::put(board, &approval, revision).await,
            (Store::Shared(_), None) => Err(VoteError::Storage("no revision read".into())),
        };
        match stored {
            Ok(()) => Ok(approval),
            Err(raced @ VoteError::Raced(_)) => Err(raced),
            Err(e) => Err(VoteError::NotStored(e.to_string())),
        }
    }

    /// Withdraws the pending approvals of run `run_id` (it was cancelled).
    pub async fn cancel_for_run(&self, run_id: &str, now: u64) -> Result<(), VoteError> {
        for a in self.list(Some(ApprovalState::Pending), usize::MAX).await? {
            if a.run_id == run_id {
                self.transition(&a.id, move |a| {
                    (a.state == ApprovalState::Pending).then(|| {
                        a.state = ApprovalState::Cancelled;
                        a.decided_at = Some(now);
                    })
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Marks every pending approval past its expiry as expired; returns those this call
    /// expired. Each is expired by a write that reads it again, so a vote stored meanwhile is
    /// never overwritten (on any replica).
    pub async fn expire_due(&self, now: u64) -> Result<Vec<Approval>, VoteError> {
        // Locally through the index: the pending ones that expire at or before `now`, not every
        // approval ever asked for. The engine keeps requests `event_retention`, and has no
        // index: those are read.
        let due: Vec<String> = match &self.store {
            Store::Local(db) => on_disk(db, move |db| local::due(db, now)).await?,
            Store::Shared(board) => shared::list(board)
                .await?
                .into_iter()
                .filter(|a| a.state == ApprovalState::Pending && now >= a.expires_at)
                .map(|a| a.id)
                .collect(),
        };
        let mut expired = Vec::new();
        for id in due {
            let changed = self
                .transition(&id, move |a| {
                    (a.state == ApprovalState::Pending && now >= a.expires_at).then(|| {
                        a.state = ApprovalState::Expired;
                        a.decided_at = Some(now);
                    })
                })
                .await?;
            expired.extend(changed);
        }
        Ok(expired)
    }

    /// Asks again for `approvers` people in all, until `expires_at`: an approval given under a
    /// policy that asked for fewer people than it asks for now. Votes already given count.
    pub async fn reopen(
        &self,
        id: &str,
        approvers: u8,
        expires_at: u64,
    ) -> Result<Option<Approval>, VoteError> {
        self.transition(id, move |a| {
            (a.state == ApprovalState::Approved && a.approved_by.len() < usize::from(approvers))
                .then(|| {
                    a.state = ApprovalState::Pending;
                    a.approvers = approvers;
                    a.expires_at = expires_at;
                    a.decided_at = None;
                })
        })
        .await
    }

    /// Every request written from now on by any replica, for the runs waiting here to learn of
    /// votes given elsewhere; `None` for the server's own requests (a vote there goes on with
    /// its run itself).
    pub async fn changes(
        &self,
    ) -> Result<
        Option<impl futures_util::Stream<Item = Result<Approval, VoteError>> + use<>>,
        VoteError,
    > {
        use futures_util::StreamExt as _;
        let Store::Shared(board) = &self.store else {
            return Ok(None);
        };
        let changes = board.changes().await.map_err(storage)?;
        Ok(Some(changes.map(|stored| {
            stored
                .map_err(storage)
                .and_then(|stored| shared::decode(&stored))
        })))
    }

    /// Applies `change` to approval `id` in one write that reads it first; `change` returns
    /// `None` to leave it as it is. Returns the approval when it was changed.
    async fn transition(
        &self,
        id: &str,
        change: impl Fn(&mut Approval) -> Option<()> + Send + 'static,
    ) -> Result<Option<Approval>, VoteError> {
        let _writing = self.writing.lock().await;
        match &self.store {
            Store::Local(db) => {
                let id = id.to_owned();
                on_disk(db, move |db| local::transition(db, &id, change)).await
            }
            Store::Shared(board) => shared::transition(board, id, change).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn store() -> Approvals {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        Approvals::open(Arc::new(Database::new(db, grace_ledger::Recovery::Full))).unwrap()
    }

    pub(super) fn pending(id: &str, approvers: u8, expires_at: u64) -> Approval {
        Approval {
            id: id.into(),
            run_id: "run-1".into(),
            idempotency_key: "k".into(),
            playbook: "p".into(),
            digest: "sha256:00".into(),
            action: "scaling.set-desired-capacity".into(),
            args: json!({"group": "web", "desired_capacity": 8}),
            resource: "group/web".into(),
            approvers,
            reason: "risk above 80".into(),
            decision: json!({}),
            state: ApprovalState::Pending,
            created_at: 0,
            expires_at,
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

    /// A ledger that answers `answer` to every vote, and keeps what it was given.
    struct Ledger {
        answer: Result<(), String>,
        seen: std::sync::Mutex<Vec<Approval>>,
    }

    fn ledger(answer: Result<(), &str>) -> Ledger {
        Ledger {
            answer: answer.map_err(str::to_owned),
            seen: std::sync::Mutex::new(Vec::new()),
        }
    }

    #[async_trait::async_trait]
    impl VoteRecorder for Ledger {
        async fn record(&self, approval: &Approval) -> Result<(), String> {
            self.seen.lock().unwrap().push(approval.clone());
            self.answer.clone()
        }
    }

    /// A vote whose ledger entry is recorded.
    async fn approve(s: &Approvals, id: &str, v: Vote) -> Result<Approval, VoteError> {
        s.vote(id, v, true, &ledger(Ok(()))).await
    }

    async fn deny(s: &Approvals, id: &str, v: Vote) -> Result<Approval, VoteError> {
        s.vote(id, v, false, &ledger(Ok(()))).await
    }

    async fn get(s: &Approvals, id: &str) -> Approval {
        s.get(id).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn two_tokens_of_one_principal_are_one_person() {
        let s = store();
        s.ask(&pending("ap-7", 2, 1000)).await.unwrap();
        approve(&s, "ap-7", vote("alice", 10)).await.unwrap();
        let mut second_token = vote("alice", 11);
        second_token.token_id = "tok-alice-laptop".into();
        second_token.by = "Alice on her laptop".into();
        let err = approve(&s, "ap-7", second_token).await.unwrap_err();
        assert!(matches!(err, VoteError::AlreadyVoted { .. }), "{err}");
        let a = get(&s, "ap-7").await;
        assert_eq!((a.state, a.approved_by.len()), (ApprovalState::Pending, 1));
    }

    #[tokio::test]
    async fn a_vote_stored_before_principals_stands_for_the_principal_of_its_name() {
        let s = store();
        let mut a = pending("ap-8", 2, 1000);
        let mut old = vote("alice", 5);
        old.principal = String::new();
        a.approved_by.push(old);
        s.ask(&a).await.unwrap();
        let err = approve(&s, "ap-8", vote("alice", 10)).await.unwrap_err();
        assert!(matches!(err, VoteError::AlreadyVoted { .. }), "{err}");
        assert_eq!(
            approve(&s, "ap-8", vote("bob", 11)).await.unwrap().state,
            ApprovalState::Approved
        );
    }

    #[tokio::test]
    async fn a_vote_whose_ledger_entry_fails_is_not_counted() {
        let s = store();
        s.ask(&pending("ap-9", 1, 1000)).await.unwrap();
        let err = s
            .vote(
                "ap-9",
                vote("alice", 10),
                true,
                &ledger(Err("the ledger's disk is full")),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, VoteError::NotRecorded(_)), "{err}");
        let a = get(&s, "ap-9").await;
        assert_eq!(a.state, ApprovalState::Pending);
        assert!(a.approved_by.is_empty());
        // The same denial fails the same way and leaves it open.
        let err = s
            .vote(
                "ap-9",
                vote("bob", 11),
                false,
                &ledger(Err("ledger writer stopped")),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, VoteError::NotRecorded(_)), "{err}");
        assert_eq!(get(&s, "ap-9").await.state, ApprovalState::Pending);
        // Once the ledger records again, the vote counts.
        assert_eq!(
            approve(&s, "ap-9", vote("alice", 12)).await.unwrap().state,
            ApprovalState::Approved
        );
    }

    #[tokio::test]
    async fn the_ledger_entry_describes_the_approval_as_the_vote_leaves_it() {
        let s = store();
        s.ask(&pending("ap-10", 1, 1000)).await.unwrap();
        let recorder = ledger(Ok(()));
        let stored = s
            .vote("ap-10", vote("alice", 10), true, &recorder)
            .await
            .unwrap();
        assert_eq!(*recorder.seen.lock().unwrap(), vec![stored.clone()]);
        assert_eq!(stored.state, ApprovalState::Approved);
    }

    #[tokio::test]
    async fn two_person_rule_needs_two_distinct_people() {
        let s = store();
        s.ask(&pending("ap-1", 2, 1000)).await.unwrap();
        let a = approve(&s, "ap-1", vote("alice", 10)).await.unwrap();
        assert_eq!(a.state, ApprovalState::Pending);
        let again = approve(&s, "ap-1", vote("alice", 11)).await.unwrap_err();
        assert!(matches!(again, VoteError::AlreadyVoted { .. }), "{again}");
        let a = approve(&s, "ap-1", vote("bob", 12)).await.unwrap();
        assert_eq!(a.state, ApprovalState::Approved);
        assert_eq!(a.approvers_text(), "alice and bob");
        let late = approve(&s, "ap-1", vote("carol", 13)).await.unwrap_err();
        assert!(late.to_string().contains("approved"), "{late}");
    }

    #[tokio::test]
    async fn one_denial_is_enough_and_closes_it() {
        let s = store();
        s.ask(&pending("ap-2", 2, 1000)).await.unwrap();
        approve(&s, "ap-2", vote("alice", 10)).await.unwrap();
        let a = deny(&s, "ap-2", vote("bob", 11)).await.unwrap();
        assert_eq!(a.state, ApprovalState::Denied);
        assert!(approve(&s, "ap-2", vote("carol", 12)).await.is_err());
    }

    #[tokio::test]
    async fn expiry_means_no_more_votes() {
        let s = store();
        s.ask(&pending("ap-3", 1, 100)).await.unwrap();
        s.ask(&pending("ap-4", 1, 10_000)).await.unwrap();
        let err = approve(&s, "ap-3", vote("alice", 100)).await.unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        let expired = s.expire_due(100).await.unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(get(&s, "ap-3").await.state, ApprovalState::Expired);
        assert_eq!(get(&s, "ap-4").await.state, ApprovalState::Pending);
    }

    #[tokio::test]
    async fn a_reopened_approval_expires_at_its_new_deadline_not_its_old_one() {
        let s = store();
        s.ask(&pending("ap-r", 1, 100)).await.unwrap();
        approve(&s, "ap-r", vote("alice", 50)).await.unwrap();
        s.reopen("ap-r", 2, 5_000).await.unwrap().unwrap();
        assert!(s.expire_due(1_000).await.unwrap().is_empty());
        let expired = s.expire_due(5_000).await.unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, "ap-r");
        assert!(s.expire_due(u64::MAX).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn expiry_leaves_decided_approvals_alone() {
        let s = store();
        s.ask(&pending("ap-5", 1, 100)).await.unwrap();
        approve(&s, "ap-5", vote("alice", 50)).await.unwrap();
        assert!(s.expire_due(1000).await.unwrap().is_empty());
        let a = get(&s, "ap-5").await;
        assert_eq!(a.state, ApprovalState::Approved);
        assert_eq!(a.approvers_text(), "alice");
    }

    #[tokio::test]
    async fn a_policy_asking_for_more_people_reopens_an_approval_and_earlier_votes_count() {
        let s = store();
        s.ask(&pending("ap-6", 1, 100)).await.unwrap();
        approve(&s, "ap-6", vote("alice", 10)).await.unwrap();
        let a = s.reopen("ap-6", 2, 500).await.unwrap().expect("reopened");
        assert_eq!((a.state, a.approvers), (ApprovalState::Pending, 2));
        assert!(
            s.reopen("ap-6", 2, 500).await.unwrap().is_none(),
            "only approved ones"
        );
        let again = approve(&s, "ap-6", vote("alice", 20)).await.unwrap_err();
        assert!(matches!(again, VoteError::AlreadyVoted { .. }));
        let a = approve(&s, "ap-6", vote("bob", 30)).await.unwrap();
        assert_eq!(a.state, ApprovalState::Approved);
        assert_eq!(a.approvers_text(), "alice and bob");
    }

    #[tokio::test]
    async fn an_approval_binds_the_exact_arguments() {
        let a = approval_id("run", "key", &json!({"desired_capacity": 8}));
        let b = approval_id("run", "key", &json!({"desired_capacity": 9}));
        assert_ne!(a, b);
        assert_eq!(
            a,
            approval_id("run", "key", &json!({"desired_capacity": 8}))
        );
    }
}
