//! Approval requests: a change the trust core would only allow once people agree, waiting for
//! their votes, durably in redb (a restart loses none; a waiting run goes on once they voted).
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
//! ledger entry appended and committed (the caller's `record`), and only then stores the vote.
//! If the append fails, nothing was stored and the caller gets the error. Nothing else can
//! change the approval in between (every write here takes the same lock), so the stored vote is
//! exactly the one the entry describes. What remains is a crash, or a storage failure, after
//! the entry and before the vote is stored: then the ledger shows a vote that did not count
//! ([`VoteError::NotStored`]), never a counted vote missing from the ledger — the direction in
//! which an audit trail may err.

use std::sync::{Arc, Mutex, MutexGuard};

use grace_ledger::Database;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Approvals by id: JSON [`Approval`].
const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("server/approvals");

/// The pending approvals by (expiry ms, id): what the expiry task reads, from its start up to
/// now, instead of decoding every approval ever asked for at each tick. Written in the
/// transaction that writes the approval, by the only two writers ([`Approvals::store`] and
/// [`Approvals::transition`]), so the two never disagree.
const PENDING: TableDefinition<(u64, &str), ()> = TableDefinition::new("server/approvals_pending");

/// Under this key of [`INDEX_VERSION`], set once [`PENDING`] covers every approval: a data
/// directory written before the index gets it built once, from a full read, on open.
const INDEX_VERSION_KEY: &str = "pending";

/// Versions of the approvals' indexes.
const INDEX_VERSION: TableDefinition<&str, u64> =
    TableDefinition::new("server/approvals_index_version");

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
}

fn storage<E: std::fmt::Display>(e: E) -> VoteError {
    VoteError::Storage(e.to_string())
}

/// Approvals, stored in the server's database.
#[derive(Clone)]
pub struct Approvals {
    db: Arc<Database>,
    /// Taken by every write to the table: a vote's check, ledger entry and store are one step
    /// (see the module documentation).
    writing: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

impl Approvals {
    /// The approvals table in `db`, created if missing.
    pub fn open(db: Arc<Database>) -> Result<Approvals, VoteError> {
        let tx = db.begin_write().map_err(storage)?;
        {
            let approvals = tx.open_table(APPROVALS).map_err(storage)?;
            let mut pending = tx.open_table(PENDING).map_err(storage)?;
            let mut versions = tx.open_table(INDEX_VERSION).map_err(storage)?;
            if versions.get(INDEX_VERSION_KEY).map_err(storage)?.is_none() {
                for row in approvals.iter().map_err(storage)? {
                    let (_, v) = row.map_err(storage)?;
                    let a: Approval = serde_json::from_slice(v.value()).map_err(storage)?;
                    if a.state == ApprovalState::Pending {
                        pending
                            .insert((a.expires_at, a.id.as_str()), ())
                            .map_err(storage)?;
                    }
                }
                versions.insert(INDEX_VERSION_KEY, 1).map_err(storage)?;
            }
        }
        tx.commit().map_err(storage)?;
        Ok(Approvals {
            db,
            writing: Arc::new(Mutex::new(())),
        })
    }

    fn writing(&self) -> MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One approval.
    pub fn get(&self, id: &str) -> Result<Option<Approval>, VoteError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(APPROVALS).map_err(storage)?;
        match table.get(id).map_err(storage)? {
            Some(v) => serde_json::from_slice(v.value()).map(Some).map_err(storage),
            None => Ok(None),
        }
    }

    /// Approvals, newest first, optionally only those in `state`.
    pub fn list(
        &self,
        state: Option<ApprovalState>,
        limit: usize,
    ) -> Result<Vec<Approval>, VoteError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(APPROVALS).map_err(storage)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(storage)? {
            let (_, v) = row.map_err(storage)?;
            let a: Approval = serde_json::from_slice(v.value()).map_err(storage)?;
            if state.is_none_or(|s| s == a.state) {
                out.push(a);
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// Stores `approval` durably (creates or replaces).
    pub fn put(&self, approval: &Approval) -> Result<(), VoteError> {
        let _writing = self.writing();
        self.store(approval)
    }

    fn store(&self, approval: &Approval) -> Result<(), VoteError> {
        let bytes = serde_json::to_vec(approval).map_err(storage)?;
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut table = tx.open_table(APPROVALS).map_err(storage)?;
            let before: Option<Approval> = table
                .insert(approval.id.as_str(), bytes.as_slice())
                .map_err(storage)?
                .map(|v| serde_json::from_slice(v.value()))
                .transpose()
                .map_err(storage)?;
            index_pending(&tx, before.as_ref(), approval)?;
        }
        tx.commit().map_err(storage)
    }

    /// Records `vote` on approval `id` (an approval if `approve`, else a denial) as one step
    /// with its ledger entry: checks it against the stored approval, calls `record` with the
    /// approval as the vote leaves it (`record` appends the ledger entry and returns once it is
    /// durable), and stores the vote only if `record` succeeded. An approval needs enough
    /// distinct principals; one denial decides.
    pub fn vote<E: std::fmt::Display>(
        &self,
        id: &str,
        vote: Vote,
        approve: bool,
        record: impl FnOnce(&Approval) -> Result<(), E>,
    ) -> Result<Approval, VoteError> {
        let _writing = self.writing();
        let now = vote.at;
        let mut approval = self
            .get(id)?
            .ok_or_else(|| VoteError::NotFound(id.to_owned()))?;
        if approval.state == ApprovalState::Pending && now >= approval.expires_at {
            return Err(VoteError::Closed {
                id: id.to_owned(),
                state: ApprovalState::Expired.name(),
            });
        }
        if approval.state != ApprovalState::Pending {
            return Err(VoteError::Closed {
                id: id.to_owned(),
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
        record(&approval).map_err(|e| VoteError::NotRecorded(e.to_string()))?;
        self.store(&approval)
            .map_err(|e| VoteError::NotStored(e.to_string()))?;
        Ok(approval)
    }

    /// Withdraws the pending approvals of run `run_id` (it was cancelled).
    pub fn cancel_for_run(&self, run_id: &str, now: u64) -> Result<(), VoteError> {
        for a in self.list(Some(ApprovalState::Pending), usize::MAX)? {
            if a.run_id == run_id {
                self.transition(&a.id, |a| {
                    (a.state == ApprovalState::Pending).then(|| {
                        a.state = ApprovalState::Cancelled;
                        a.decided_at = Some(now);
                    })
                })?;
            }
        }
        Ok(())
    }

    /// Marks every pending approval past its expiry as expired; returns them. Each is expired
    /// in its own write transaction that reads it again, so a vote committed meanwhile is never
    /// overwritten.
    pub fn expire_due(&self, now: u64) -> Result<Vec<Approval>, VoteError> {
        // Through the index: the pending ones that expire at or before `now`, not every
        // approval ever asked for.
        let due: Vec<String> = {
            let tx = self.db.begin_read().map_err(storage)?;
            let pending = tx.open_table(PENDING).map_err(storage)?;
            let range = match now.checked_add(1) {
                Some(after) => pending.range(..(after, "")),
                None => pending.range::<(u64, &str)>(..),
            }
            .map_err(storage)?;
            range
                .map(|row| row.map(|(k, _)| k.value().1.to_owned()))
                .collect::<Result<_, _>>()
                .map_err(storage)?
        };
        let mut expired = Vec::new();
        for id in due {
            match self.transition(&id, |a| {
                (a.state == ApprovalState::Pending && now >= a.expires_at).then(|| {
                    a.state = ApprovalState::Expired;
                    a.decided_at = Some(now);
                })
            }) {
                Ok(Some(a)) => expired.push(a),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(expired)
    }

    /// Asks again for `approvers` people in all, until `expires_at`: an approval given under a
    /// policy that asked for fewer people than it asks for now. Votes already given count.
    pub fn reopen(
        &self,
        id: &str,
        approvers: u8,
        expires_at: u64,
    ) -> Result<Option<Approval>, VoteError> {
        self.transition(id, |a| {
            (a.state == ApprovalState::Approved && a.approved_by.len() < usize::from(approvers))
                .then(|| {
                    a.state = ApprovalState::Pending;
                    a.approvers = approvers;
                    a.expires_at = expires_at;
                    a.decided_at = None;
                })
        })
    }

    /// Applies `change` to approval `id` in one write transaction that reads it first; `change`
    /// returns `None` to leave it as it is. Returns the approval when it was changed.
    fn transition(
        &self,
        id: &str,
        change: impl FnOnce(&mut Approval) -> Option<()>,
    ) -> Result<Option<Approval>, VoteError> {
        let _writing = self.writing();
        let tx = self.db.begin_write().map_err(storage)?;
        let changed = {
            let mut table = tx.open_table(APPROVALS).map_err(storage)?;
            let mut approval: Approval = match table.get(id).map_err(storage)? {
                Some(v) => serde_json::from_slice(v.value()).map_err(storage)?,
                None => return Ok(None),
            };
            let before = approval.clone();
            if change(&mut approval).is_none() {
                return Ok(None);
            }
            let bytes = serde_json::to_vec(&approval).map_err(storage)?;
            table.insert(id, bytes.as_slice()).map_err(storage)?;
            index_pending(&tx, Some(&before), &approval)?;
            approval
        };
        tx.commit().map_err(storage)?;
        Ok(Some(changed))
    }
}

/// Moves `after`'s entry in [`PENDING`] from where `before` (the approval as stored until this
/// transaction) had it, in the transaction that stores `after`.
fn index_pending(
    tx: &redb::WriteTransaction,
    before: Option<&Approval>,
    after: &Approval,
) -> Result<(), VoteError> {
    let mut pending = tx.open_table(PENDING).map_err(storage)?;
    if let Some(b) = before.filter(|b| b.state == ApprovalState::Pending) {
        pending
            .remove((b.expires_at, b.id.as_str()))
            .map_err(storage)?;
    }
    if after.state == ApprovalState::Pending {
        pending
            .insert((after.expires_at, after.id.as_str()), ())
            .map_err(storage)?;
    }
    Ok(())
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

    fn pending(id: &str, approvers: u8, expires_at: u64) -> Approval {
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

    /// A vote whose ledger entry is recorded.
    fn approve(s: &Approvals, id: &str, v: Vote) -> Result<Approval, VoteError> {
        s.vote(id, v, true, |_| Ok::<(), String>(()))
    }

    fn deny(s: &Approvals, id: &str, v: Vote) -> Result<Approval, VoteError> {
        s.vote(id, v, false, |_| Ok::<(), String>(()))
    }

    #[test]
    fn two_tokens_of_one_principal_are_one_person() {
        let s = store();
        s.put(&pending("ap-7", 2, 1000)).unwrap();
        approve(&s, "ap-7", vote("alice", 10)).unwrap();
        let mut second_token = vote("alice", 11);
        second_token.token_id = "tok-alice-laptop".into();
        second_token.by = "Alice on her laptop".into();
        let err = approve(&s, "ap-7", second_token).unwrap_err();
        assert!(matches!(err, VoteError::AlreadyVoted { .. }), "{err}");
        let a = s.get("ap-7").unwrap().unwrap();
        assert_eq!((a.state, a.approved_by.len()), (ApprovalState::Pending, 1));
    }

    #[test]
    fn a_vote_stored_before_principals_stands_for_the_principal_of_its_name() {
        let s = store();
        let mut a = pending("ap-8", 2, 1000);
        let mut old = vote("alice", 5);
        old.principal = String::new();
        a.approved_by.push(old);
        s.put(&a).unwrap();
        let err = approve(&s, "ap-8", vote("alice", 10)).unwrap_err();
        assert!(matches!(err, VoteError::AlreadyVoted { .. }), "{err}");
        assert_eq!(
            approve(&s, "ap-8", vote("bob", 11)).unwrap().state,
            ApprovalState::Approved
        );
    }

    #[test]
    fn a_vote_whose_ledger_entry_fails_is_not_counted() {
        let s = store();
        s.put(&pending("ap-9", 1, 1000)).unwrap();
        let err = s
            .vote("ap-9", vote("alice", 10), true, |_| {
                Err("the ledger's disk is full")
            })
            .unwrap_err();
        assert!(matches!(err, VoteError::NotRecorded(_)), "{err}");
        let a = s.get("ap-9").unwrap().unwrap();
        assert_eq!(a.state, ApprovalState::Pending);
        assert!(a.approved_by.is_empty());
        // The same denial fails the same way and leaves it open.
        let err = s
            .vote("ap-9", vote("bob", 11), false, |_| {
                Err("ledger writer stopped")
            })
            .unwrap_err();
        assert!(matches!(err, VoteError::NotRecorded(_)), "{err}");
        assert_eq!(
            s.get("ap-9").unwrap().unwrap().state,
            ApprovalState::Pending
        );
        // Once the ledger records again, the vote counts.
        assert_eq!(
            approve(&s, "ap-9", vote("alice", 12)).unwrap().state,
            ApprovalState::Approved
        );
    }

    #[test]
    fn the_ledger_entry_describes_the_approval_as_the_vote_leaves_it() {
        let s = store();
        s.put(&pending("ap-10", 1, 1000)).unwrap();
        let mut seen = None;
        let stored = s
            .vote("ap-10", vote("alice", 10), true, |a| {
                seen = Some(a.clone());
                Ok::<(), String>(())
            })
            .unwrap();
        assert_eq!(seen.unwrap(), stored);
        assert_eq!(stored.state, ApprovalState::Approved);
    }

    #[test]
    fn two_person_rule_needs_two_distinct_people() {
        let s = store();
        s.put(&pending("ap-1", 2, 1000)).unwrap();
        let a = approve(&s, "ap-1", vote("alice", 10)).unwrap();
        assert_eq!(a.state, ApprovalState::Pending);
        let again = approve(&s, "ap-1", vote("alice", 11)).unwrap_err();
        assert!(matches!(again, VoteError::AlreadyVoted { .. }), "{again}");
        let a = approve(&s, "ap-1", vote("bob", 12)).unwrap();
        assert_eq!(a.state, ApprovalState::Approved);
        assert_eq!(a.approvers_text(), "alice and bob");
        let late = approve(&s, "ap-1", vote("carol", 13)).unwrap_err();
        assert!(late.to_string().contains("approved"), "{late}");
    }

    #[test]
    fn one_denial_is_enough_and_closes_it() {
        let s = store();
        s.put(&pending("ap-2", 2, 1000)).unwrap();
        approve(&s, "ap-2", vote("alice", 10)).unwrap();
        let a = deny(&s, "ap-2", vote("bob", 11)).unwrap();
        assert_eq!(a.state, ApprovalState::Denied);
        assert!(approve(&s, "ap-2", vote("carol", 12)).is_err());
    }

    #[test]
    fn expiry_means_no_more_votes() {
        let s = store();
        s.put(&pending("ap-3", 1, 100)).unwrap();
        s.put(&pending("ap-4", 1, 10_000)).unwrap();
        let err = approve(&s, "ap-3", vote("alice", 100)).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        let expired = s.expire_due(100).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(
            s.get("ap-3").unwrap().unwrap().state,
            ApprovalState::Expired
        );
        assert_eq!(
            s.get("ap-4").unwrap().unwrap().state,
            ApprovalState::Pending
        );
    }

    #[test]
    fn a_reopened_approval_expires_at_its_new_deadline_not_its_old_one() {
        let s = store();
        s.put(&pending("ap-r", 1, 100)).unwrap();
        approve(&s, "ap-r", vote("alice", 50)).unwrap();
        s.reopen("ap-r", 2, 5_000).unwrap().unwrap();
        assert!(s.expire_due(1_000).unwrap().is_empty());
        let expired = s.expire_due(5_000).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, "ap-r");
        assert!(s.expire_due(u64::MAX).unwrap().is_empty());
    }

    #[test]
    fn approvals_stored_before_the_pending_index_are_indexed_once_on_open() {
        let db = Arc::new(Database::new(
            redb::Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .unwrap(),
            grace_ledger::Recovery::Full,
        ));
        // What a server before the index left: approvals, and no index.
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(APPROVALS).unwrap();
            for a in [pending("old-due", 1, 100), pending("old-later", 1, 10_000)] {
                table
                    .insert(a.id.as_str(), serde_json::to_vec(&a).unwrap().as_slice())
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        let s = Approvals::open(db).unwrap();
        let expired = s.expire_due(100).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, "old-due");
    }

    #[test]
    fn expiry_leaves_decided_approvals_alone() {
        let s = store();
        s.put(&pending("ap-5", 1, 100)).unwrap();
        approve(&s, "ap-5", vote("alice", 50)).unwrap();
        assert!(s.expire_due(1000).unwrap().is_empty());
        let a = s.get("ap-5").unwrap().unwrap();
        assert_eq!(a.state, ApprovalState::Approved);
        assert_eq!(a.approvers_text(), "alice");
    }

    #[test]
    fn a_policy_asking_for_more_people_reopens_an_approval_and_earlier_votes_count() {
        let s = store();
        s.put(&pending("ap-6", 1, 100)).unwrap();
        approve(&s, "ap-6", vote("alice", 10)).unwrap();
        let a = s.reopen("ap-6", 2, 500).unwrap().expect("reopened");
        assert_eq!((a.state, a.approvers), (ApprovalState::Pending, 2));
        assert!(
            s.reopen("ap-6", 2, 500).unwrap().is_none(),
            "only approved ones"
        );
        let again = approve(&s, "ap-6", vote("alice", 20)).unwrap_err();
        assert!(matches!(again, VoteError::AlreadyVoted { .. }));
        let a = approve(&s, "ap-6", vote("bob", 30)).unwrap();
        assert_eq!(a.state, ApprovalState::Approved);
        assert_eq!(a.approvers_text(), "alice and bob");
    }

    #[test]
    fn an_approval_binds_the_exact_arguments() {
        let a = approval_id("run", "key", &json!({"desired_capacity": 8}));
        let b = approval_id("run", "key", &json!({"desired_capacity": 9}));
        assert_ne!(a, b);
        assert_eq!(
            a,
            approval_id("run", "key", &json!({"desired_capacity": 8}))
        );
    }
}
