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
use crate::trust::approvals::{Approval, ApprovalState, Vote, VoteError};

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
    /// The counting task failed.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<VoteFailed> for ApiError {
    fn from(e: VoteFailed) -> Self {
        match e {
            VoteFailed::Comment => ApiError::field("comment", e.to_string()),
            VoteFailed::Vote(VoteError::NotFound(_)) => ApiError::not_found(e.to_string()),
            VoteFailed::Vote(VoteError::Closed { .. } | VoteError::AlreadyVoted { .. }) => {
                ApiError::conflict(e.to_string())
            }
            VoteFailed::Vote(_) | VoteFailed::Task(_) => ApiError::internal(e.to_string()),
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
        let approvals = self.r.trust.approvals().clone();
        let ledger = self.r.ledger.clone();
        let at_millis = self.r.executors.clock.now_millis();
        let id_owned = id.to_owned();
        let caller_owned = caller.clone();
        // The vote and its ledger entry are one step (see `trust::approvals`): the entry is
        // appended and committed inside `Approvals::vote`, which stores the vote only after.
        let result = tokio::task::spawn_blocking(move || {
            approvals.vote(&id_owned, vote, approve, |approval| {
                ledger
                    .append_blocking(vote_entry(approval, &caller_owned, approve, at_millis))
                    .map(drop)
            })
        })
        .await?;
        let approval = result.inspect_err(|e| {
            if matches!(
                e,
                VoteError::Storage(_) | VoteError::NotRecorded(_) | VoteError::NotStored(_)
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
            && let Ok(Some(a)) = self.r.trust.approvals().get(approval)
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
        if let Err(e) = approvals.expire_due(now) {
            tracing::error!("cannot expire approvals: {e}");
        }
        for run in waiting {
            let decided = run.approval.as_ref().is_none_or(|a| {
                approvals
                    .get(a)
                    .ok()
                    .flatten()
                    .is_none_or(|a| !a.is_open(now))
            });
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
        let approvals = s.r.trust.approvals().clone();
        let expired =
            tokio::task::spawn_blocking(move || approvals.expire_due(system_now_millis())).await;
        match expired {
            Ok(Ok(expired)) => {
                for a in expired {
                    tracing::warn!(approval = %a.id, run = %a.run_id, "approval expired unanswered: the change is denied");
                    s.continue_after_approval(&a.run_id).await;
                }
            }
            Ok(Err(e)) => tracing::error!("cannot expire approvals: {e}"),
            Err(e) => tracing::error!("approval expiry task failed: {e}"),
        }
    }
}

/// The ledger entry of a vote: who (principal and token), on what, and the approval as the vote
/// leaves it.
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
