//! The runner task and its workers: a run claimed, attempted (again, with backoff, while it
//! fails for a transient reason), and its end stored.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use grace_engine::event::system_now_millis;
use grace_engine::{Failure, FailureKind, Guest, RunEnv};
use tokio::sync::{Notify, mpsc};

use super::Scheduler;
use crate::error::ApiError;
use crate::runs::{Attempt, RunRecord, RunState, is_transient, state_of};
use crate::supervisor::TaskError;
use crate::sync::lock;

/// A run a worker has claimed: what a cancel needs to stop it at any point of its life.
#[derive(Default)]
pub(super) struct Active {
    /// Set by a cancel; the worker checks it before every attempt and every backoff.
    cancelled: AtomicBool,
    /// The task running now (an attempt or a backoff sleep).
    task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Notified when the worker has stored the run's final state.
    pub(super) done: Notify,
}

impl Active {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Registers the task now running; a run cancelled meanwhile has it aborted at once.
    fn running(&self, task: tokio::task::AbortHandle) {
        let mut slot = lock(&self.task);
        if self.is_cancelled() {
            task.abort();
        }
        *slot = Some(task);
    }

    pub(super) fn cancel(&self) {
        let slot = lock(&self.task);
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(task) = slot.as_ref() {
            task.abort();
        }
    }
}

/// Starts runs, at most `max_concurrent_runs` at once (the guest slots).
pub(super) async fn runner(
    s: Arc<Scheduler>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
) -> Result<(), TaskError> {
    let mut rx = rx.lock().await;
    let slots = s.r.slots.clone();
    while let Some(id) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let s = s.clone();
        tokio::spawn(async move {
            s.execute(id).await;
            drop(slot);
        });
    }
    Ok(())
}

impl Scheduler {
    /// Executes one run, attempt after attempt, storing every state change.
    async fn execute(&self, id: String) {
        let Some((mut run, active)) = self.claim_queued(&id) else {
            return;
        };
        if !self.start_on_board(&mut run, &active).await {
            return;
        }
        self.r.metrics.transition(RunState::Running);
        if let Some(t) = lock(&self.accepted_at).remove(&id) {
            self.r.metrics.ingest_to_run_start.observe(t.elapsed());
        }
        match self.r.registry.guest_for(&run).await {
            Ok(guest) => self.attempt(&mut run, &active, guest).await,
            Err(e) => {
                run.failure = Some(Failure {
                    kind: FailureKind::Instantiation,
                    // As the API would say it: internal details stay in the log.
                    message: ApiError::from(e).to_string(),
                });
                run.state = RunState::Failed;
            }
        }
        if run.state == RunState::WaitingApproval {
            self.pause_for_approval(&id, &run).await;
            return;
        }
        self.finish(run, &active).await;
    }

    /// Takes a queued run for a worker: `running`, and cancellable from now on.
    fn claim_queued(&self, id: &str) -> Option<(RunRecord, Arc<Active>)> {
        let _claim = lock(&self.claim);
        match self.r.store.run(id) {
            Ok(Some(mut run)) if run.state == RunState::Queued => {
                run.state = RunState::Running;
                run.started_at.get_or_insert(system_now_millis());
                // Not fsynced: the run's first durable ledger record (the intent of its first
                // change) makes it durable; before that a crash leaves it `queued`, which
                // recovery turns into `interrupted` just the same.
                match self.r.store.put_run_unsynced(&run) {
                    Ok(()) => {
                        let active = Arc::new(Active::default());
                        lock(&self.active).insert(id.to_owned(), active.clone());
                        Some((run, active))
                    }
                    Err(e) => {
                        tracing::error!(run = %id, "cannot store the run: {e}");
                        None
                    }
                }
            }
            Ok(_) => None,
            Err(e) => {
                tracing::error!(run = %id, "cannot read the run: {e}");
                None
            }
        }
    }

    /// In a cluster: writes on the run board that the run's attempt starts here. A run
    /// another replica holds now is not run here (it is interrupted here); when the engine
    /// does not answer, the run goes back to the queue for a later try. `false` when the run
    /// does not start now.
    async fn start_on_board(&self, run: &mut RunRecord, active: &Active) -> bool {
        let Some(shared) = &self.r.shared else {
            return true;
        };
        let id = run.id.clone();
        let failed = match shared.start(run).await {
            Ok(()) => return true,
            Err(e) => e,
        };
        lock(&self.active).remove(&id);
        active.done.notify_waiters();
        match failed {
            crate::shared_runs::BoardError::Moved(why) => {
                tracing::info!(run = %id, "not run here: {why}");
                run.state = RunState::Interrupted;
                run.failure = Some(Failure {
                    kind: FailureKind::Fenced,
                    message: format!("not run here: {why}"),
                });
                if let Err(e) = self.r.store.put_run(run) {
                    tracing::error!(run = %id, "cannot store the run: {e}");
                }
                self.r.metrics.transition(RunState::Interrupted);
                self.release(&id);
                self.finished.send_modify(|n| *n += 1);
            }
            crate::shared_runs::BoardError::Engine(e) => {
                tracing::warn!(run = %id, "the run board did not answer, the run waits: {e}");
                run.state = RunState::Queued;
                if let Err(e) = self.r.store.put_run(run) {
                    tracing::error!(run = %id, "cannot store the run: {e}");
                }
                let runs = self.runs.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = runs.send(id);
                });
            }
        }
        false
    }

    /// Attempts the run until it succeeds, fails for good, waits for approval or is cancelled;
    /// a transient failure is retried after a backoff, up to `max_attempts`.
    async fn attempt(&self, run: &mut RunRecord, active: &Active, guest: Guest) {
        let mut env = RunEnv::new(
            self.r.executors.clone(),
            self.r.ledger.clone(),
            self.r.trust.clone(),
        );
        env.bounds = self.r.config.limits.run;
        env.fence = self.r.fence.clone();
        env.journal = self
            .r
            .shared
            .clone()
            .map(|s| s as Arc<dyn grace_engine::journal::Journal>);
        let mut first = true;
        loop {
            if active.is_cancelled() {
                run.state = RunState::Cancelled;
                return;
            }
            // In a cluster, each attempt starts under this replica's tenure of the run (the
            // first did in `execute`): a run taken over during the backoff is not attempted here.
            if !std::mem::take(&mut first)
                && let Some(shared) = &self.r.shared
                && let Err(e) = shared.start(run).await
            {
                tracing::info!(run = %run.id, "not attempted here again: {e}");
                run.state = RunState::Interrupted;
                run.failure = Some(Failure {
                    kind: FailureKind::Fenced,
                    message: format!("not attempted here again: {e}"),
                });
                return;
            }
            run.attempts += 1;
            let started = system_now_millis();
            let wall = Instant::now();
            let task = {
                // A retry or a resumed run replays the changes earlier attempts made.
                let (engine, event, env, id, guest) = (
                    self.r.engine.clone(),
                    run.event.clone(),
                    env.clone().retrying(run.attempts > 1),
                    run.id.clone(),
                    guest.clone(),
                );
                tokio::spawn(async move { engine.run_playbook_as(&id, &guest, &event, &env).await })
            };
            active.running(task.abort_handle());
            let result = task.await;
            self.r.metrics.run_duration.observe(wall.elapsed());
            let report = match result {
                Ok(report) => report,
                Err(e) => {
                    run.state = if e.is_cancelled() {
                        RunState::Cancelled
                    } else {
                        run.failure = Some(Failure {
                            kind: FailureKind::Trap,
                            message: "the run's task failed unexpectedly".into(),
                        });
                        RunState::Failed
                    };
                    run.attempts_log.push(Attempt {
                        attempt: run.attempts,
                        state: run.state,
                        started_at: started,
                        finished_at: system_now_millis(),
                        failure: run.failure.clone(),
                        host_calls: 0,
                    });
                    return;
                }
            };
            self.r
                .metrics
                .host_calls
                .fetch_add(u64::from(report.host_calls), Ordering::Relaxed);
            let state = state_of(&report);
            run.attempts_log.push(Attempt {
                attempt: run.attempts,
                state,
                started_at: started,
                finished_at: system_now_millis(),
                failure: report.failure.clone(),
                host_calls: report.host_calls,
            });
            let retry = state == RunState::Failed
                && is_transient(&report)
                && run.attempts < self.r.config.max_attempts;
            run.outcome = report.outcome;
            run.failure = report.failure;
            run.timeline = report.timeline;
            run.state = state;
            // In a cluster, a run whose records could not be read or written (the engine or
            // the ledger unavailable) is not over: it is left on the board, to be taken over
            // again (here or elsewhere) on a later look — up to `max_attempts` attempts in all.
            if self.r.shared.is_some()
                && run.attempts < self.r.config.max_attempts
                && run
                    .failure
                    .as_ref()
                    .is_some_and(|f| f.kind == FailureKind::LedgerUnavailable)
            {
                run.state = RunState::Interrupted;
                return;
            }
            if report.approval.is_some() {
                run.approval = report.approval;
            }
            if !retry || !self.back_off(run, active).await {
                return;
            }
        }
    }

    /// Waits before the next attempt; `false` when the run was cancelled meanwhile.
    async fn back_off(&self, run: &mut RunRecord, active: &Active) -> bool {
        let backoff = backoff(self.r.config.retry_backoff, run.attempts);
        tracing::info!(run = %run.id, attempt = run.attempts, ?backoff, "transient failure: retrying");
        run.state = RunState::Running;
        let _ = self.r.store.put_run(run);
        let sleep = {
            let clock = self.r.executors.clock.clone();
            tokio::spawn(async move { clock.sleep(backoff).await })
        };
        active.running(sleep.abort_handle());
        if sleep.await.is_err() {
            run.state = RunState::Cancelled;
            return false;
        }
        true
    }

    /// Stores a run's end, lets go of its claim and tells whoever waits for it.
    async fn finish(&self, mut run: RunRecord, active: &Active) {
        let id = run.id.clone();
        if run.state == RunState::Failed {
            self.r.trust.run_failed(&run.playbook, system_now_millis());
        }
        run.finished_at = Some(system_now_millis());
        // The attempt's `run.finished` record is on record before the run is reported final.
        if let Err(e) = self.r.ledger.flush().await {
            tracing::error!(run = %id, "the ledger could not record the run's end: {e}");
        }
        if let Err(e) = self.r.store.put_run(&run) {
            tracing::error!(run = %id, "cannot store the run's end: {e}");
        }
        self.settle_on_board(&run).await;
        // What flaps is paused before the next event can start another run of it.
        let paused = self.r.meta.run_finished(&run, system_now_millis()).await;
        self.r.metrics.playbooks_paused(paused.len());
        lock(&self.active).remove(&id);
        self.r.metrics.transition(run.state);
        self.release(&id);
        active.done.notify_waiters();
        self.finished.send_modify(|n| *n += 1);
        tracing::info!(run = %id, playbook = %run.playbook, state = run.state.name(), "run finished");
    }
}

impl Scheduler {
    /// In a cluster: writes where the run stopped on the run board. A failure is logged: a run
    /// ended here whose end the board missed is written again by the next look at the board
    /// (see [`crate::shared_runs::adopt`]).
    pub(super) async fn settle_on_board(&self, run: &RunRecord) {
        if let Some(shared) = &self.r.shared
            && let Err(e) = shared.settle(run).await
        {
            tracing::warn!(run = %run.id, state = run.state.name(), "cannot write the run's state on the run board: {e}");
        }
    }
}

/// The longest wait between two attempts, whatever `retry_backoff` and the attempt say.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The wait before retrying after attempt `attempt` (from 1): `first`, doubled for every attempt
/// after the first, at most [`MAX_BACKOFF`]. Saturates rather than overflow, so no setting can
/// panic a run's task.
fn backoff(first: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1);
    first
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_the_first_wait() {
        let first = Duration::from_millis(100);
        assert_eq!(backoff(first, 1), first);
        assert_eq!(backoff(first, 2), Duration::from_millis(200));
        assert_eq!(backoff(first, 4), Duration::from_millis(800));
    }

    #[test]
    fn the_backoff_saturates_at_its_cap_instead_of_overflowing() {
        assert_eq!(backoff(Duration::MAX, 2), MAX_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(3600), u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(1), 0), Duration::from_secs(1));
    }
}
