//! Runs and approvals: a run that stops for approval waits on disk; a vote (or the expiry of
//! the request) lets it go on as a retry of itself.

use std::sync::Arc;
use std::time::Duration;

use grace_engine::event::system_now_millis;
use grace_ledger::{Decision, NewEntry};
use serde_json::json;

use super::Scheduler;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::runs::{RunRecord, RunState};
use crate::supervisor::TaskError;
use crate::sync::lock;
use crate::trust::approvals::{Approval, ApprovalState, Vote, VoteError, VoteRecorder};

/// The longest comment a vote may carry.
const MAX_COMMENT_BYTES: usize = 4096;

/// Why a vote was not counted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoteFailed {
    /// The comment is too long.
    #[error("longer than {MAX_COMMENT_BYTES} bytes")]
    Comment,
    /// The approvals refused or failed to count it.
    #[error(transparent)]
    Vote(#[from] VoteError),
}

impl From<VoteFailed> for ApiError {
    fn from(e: VoteFailed) -> Self {
        match e {
            VoteFailed::Comment => ApiError::field("comment", e.to_string()),
            VoteFailed::Vote(VoteError::NotFound(_)) => ApiError::not_found(e.to_string()),
            VoteFailed::Vote(
                VoteError::Closed { .. } | VoteError::AlreadyVoted { .. } | VoteError::Raced(_),
            ) => ApiError::conflict(e.to_string()),
            VoteFailed::Vote(_) => ApiError::internal(e.to_string()),
        }
    }
}

impl Scheduler {
    /// Approves or denies approval `id` as `caller`; once it is decided, its run goes on.
    pub async fn vote(
        &self,
        id: &str,
        caller: &Caller,
        approve: bool,
        comment: Option<String>,
    ) -> Result<Approval, VoteFailed> {
        if comment
            .as_ref()
            .is_some_and(|c| c.len() > MAX_COMMENT_BYTES)
        {
            return Err(VoteFailed::Comment);
        }
        let vote = Vote {
            by: caller.principal_name.clone(),
            principal: caller.principal.clone(),
            token_id: caller.token_id.clone(),
            at: system_now_millis(),
            comment,
        };
        let recorder = VoteEntry {
            ledger: &self.r.ledger,
            caller,
            approve,
            at_millis: self.r.executors.clock.now_millis(),
        };
        // The vote and its ledger entry are one step (see `trust::approvals`): the entry is
        // appended and committed inside `Approvals::vote`, which stores the vote only after.
        let approval = self
            .r
            .trust
            .approvals()
            .vote(id, vote, approve, &recorder)
            .await
            .inspect_err(|e| {
                if matches!(
                    e,
                    VoteError::Storage(_)
                        | VoteError::NotRecorded(_)
                        | VoteError::NotStored(_)
                        | VoteError::Raced(_)
                ) {
                    tracing::error!(approval = %id, principal = %caller.principal, "a vote was not counted: {e}");
                }
            })?;
        if approval.state != ApprovalState::Pending {
            self.continue_after_approval(&approval.run_id).await;
        }
        Ok(approval)
    }

    /// A run stopped before a change that needs approval: it keeps its claim and waits, stored
    /// durably, until people decide (or the request expires).
    pub(super) async fn pause_for_approval(&self, id: &str, run: &RunRecord) {
        if let Err(e) = self.r.ledger.flush().await {
            tracing::error!(run = %id, "the ledger could not record the pause: {e}");
        }
        if let Err(e) = self.r.store.put_run(run) {
            tracing::error!(run = %id, "cannot store the paused run: {e}");
        }
        self.settle_on_board(run).await;
        lock(&self.active).remove(id);
        self.r.metrics.transition(RunState::WaitingApproval);
        self.finished.send_modify(|n| *n += 1);
        tracing::info!(run = %id, playbook = %run.playbook, approval = ?run.approval, "run waits for approval");
        // Decided while the attempt was ending (a fast approver): go on now.
        if let Some(approval) = &run.approval
            && let Ok(Some(a)) = self.r.trust.approvals().get(approval).await
            && a.state != ApprovalState::Pending
        {
            self.continue_after_approval(id).await;
        }
    }

    /// Queues a run that waited for an approval now decided: it goes on as a retry of itself,
    /// the changes it made before the pause replayed, the one that waited decided again with
    /// the approval (or the denial) on record.
    pub async fn continue_after_approval(&self, id: &str) {
        let run = {
            let _claim = lock(&self.claim);
            let mut run = match self.r.store.run(id) {
                Ok(Some(run)) if run.state == RunState::WaitingApproval => run,
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(run = %id, "cannot read the run: {e}");
                    return;
                }
            };
            if !self.r.triggers.holds(id)
                && let Some(key) = &run.key
                // After a restart the run's locks were let go: take them again.
                && let Err(why) = self.r.triggers.resume(id, key)
            {
                tracing::warn!(run = %id, "cannot go on after approval now ({why}): interrupted; resume it later");
                run.state = RunState::Interrupted;
                let _ = self.r.store.put_run(&run);
                return;
            }
            run.state = RunState::Queued;
            if let Err(e) = self.r.store.put_run(&run) {
                tracing::error!(run = %id, "cannot queue the approved run: {e}");
                return;
            }
            run
        };
        self.r.metrics.transition(RunState::Queued);
        let _ = self.runs.send(run.id.clone());
    }

    /// Runs whose approval was decided or expired while the server was down go on.
    pub(super) async fn continue_decided(&self) {
        let waiting = match self.r.store.unfinished_runs(&[RunState::WaitingApproval]) {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!("cannot read the runs waiting for approval: {e}");
                return;
            }
        };
        let now = system_now_millis();
        let approvals = self.r.trust.approvals();
        if let Err(e) = approvals.expire_due(now).await {
            tracing::error!("cannot expire approvals: {e}");
        }
        for run in waiting {
            let decided = match &run.approval {
                None => true,
                Some(a) => match approvals.get(a).await {
                    Ok(a) => a.is_none_or(|a| !a.is_open(now)),
                    // Unreadable now (the engine does not answer): asked again at the next
                    // look, not taken as decided.
                    Err(e) => {
                        tracing::warn!(run = %run.id, "cannot read the run's approval: {e}");
                        false
                    }
                },
            };
            if decided {
                self.continue_after_approval(&run.id).await;
            }
        }
    }
}

/// Expires approval requests nobody decided in time; their runs go on, and the change that
/// waited is denied.
pub(super) async fn expiry(s: Arc<Scheduler>) -> Result<(), TaskError> {
    let every =
        (s.r.trust.approval_ttl() / 10).clamp(Duration::from_millis(200), Duration::from_secs(30));
    loop {
        tokio::time::sleep(every).await;
        if s.r.trust.approvals().is_shared() {
            // Votes and expiries on other replicas: a run waiting here whose request another
            // replica decided goes on, should the watch have missed it.
            s.continue_decided().await;
            continue;
        }
        match s.r.trust.approvals().expire_due(system_now_millis()).await {
            Ok(expired) => {
                for a in expired {
                    tracing::warn!(approval = %a.id, run = %a.run_id, "approval expired unanswered: the change is denied");
                    s.continue_after_approval(&a.run_id).await;
                }
            }
            Err(e) => tracing::error!("cannot expire approvals: {e}"),
        }
    }
}

/// Records a vote in this replica's ledger: who (principal and token), on what, and the
/// approval as the vote leaves it.
struct VoteEntry<'a> {
    ledger: &'a grace_ledger::Ledger,
    caller: &'a Caller,
    approve: bool,
    at_millis: u64,
}

#[async_trait::async_trait]
impl VoteRecorder for VoteEntry<'_> {
    async fn record(&self, approval: &Approval) -> Result<(), String> {
        let entry = vote_entry(approval, self.caller, self.approve, self.at_millis);
        // Resolves once the entry is committed (durably: the server's ledger syncs each commit).
        self.ledger
            .append(entry)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The approvals' watch in the engine ended.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error("cannot follow the votes in the engine: {0}")]
    Watch(#[from] VoteError),
    #[error("the engine stopped sending the votes given on other replicas")]
    Ended,
}

/// Clustered: a vote given on another replica, or an expiry there, lets a run waiting here go
/// on at once. Votes given while this was not watching (at start, or before a restart of this
/// task) are caught up first, and the expiry task looks at the waiting runs again at each of its
/// ticks besides.
pub(super) async fn follow_votes(s: Arc<Scheduler>) -> Result<(), TaskError> {
    use futures_util::StreamExt as _;
    let Some(changes) =
        s.r.trust
            .approvals()
            .changes()
            .await
            .map_err(|e| TaskError::new(FollowError::Watch(e)))?
    else {
        return Ok(());
    };
    s.continue_decided().await;
    let mut changes = std::pin::pin!(changes);
    while let Some(change) = changes.next().await {
        match change {
            Ok(a) if a.state != ApprovalState::Pending => {
                // A no-op unless the run waits here.
                s.continue_after_approval(&a.run_id).await;
            }
            Ok(_) => {}
            Err(e) => return Err(TaskError::new(FollowError::Watch(e))),
        }
    }
    Err(TaskError::new(FollowError::Ended))
}

/// The ledger entry of a vote.
fn vote_entry(approval: &Approval, caller: &Caller, approve: bool, at_millis: u64) -> NewEntry {
    NewEntry {
        run_id: approval.run_id.clone(),
        playbook: approval.playbook.clone(),
        digest: approval.digest.clone(),
        interface: "approval".into(),
        function: if approve { "approve" } else { "deny" }.into(),
        args: json!({
            "approval": approval.id,
            "by": caller.principal_name,
            "principal": caller.principal,
            "token_id": caller.token_id,
            "action": approval.action,
            "resource": approval.resource,
        }),
        decision: Decision::allowed(format!("{} holds the approve scope", caller.principal_name)),
        result: json!({ "ok": {
            "state": approval.state,
            "approved_by": approval.approved_by.iter().map(|v| &v.by).collect::<Vec<_>>(),
            "approved_by_principals": approval.approved_by.iter().map(|v| v.principal_id()).collect::<Vec<_>>(),
        } }),
        at_millis,
    }
}
