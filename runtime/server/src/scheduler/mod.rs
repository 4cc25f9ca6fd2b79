//! The scheduler: from a queued event to a finished run.
//!
//! ```text
//! intake → queue → matcher task (matcher.rs): trigger mesh (conditions, windows, cooldown,
//!     dedup, exclusivity claims) → runs stored as `queued`, the events marked matched, in one
//!     transaction
//!   → runner task (worker.rs): a worker per run (bounded by the guest slots), attempts with
//!     backoff for transient errors, every state change stored, claims released at the end
//!   → a run stopping for approval waits on disk, and goes on once people decide
//!     (approvals.rs)
//! ```
//!
//! Cancel and resume (here) change a run's state under the same claim lock workers take a run
//! with, so a run is never both cancelled and started.

mod approvals;
mod matcher;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grace_engine::Engine;
use grace_engine::event::system_now_millis;
use grace_executor::Executors;
use grace_ledger::{Decision, Ledger, NewEntry};
use grace_mesh::Suppression;
use grace_sim::Simulation;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

pub use approvals::VoteFailed;

use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::intake::Queued;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::runs::{RunRecord, RunState, RunSummary};
use crate::shared_runs::{BoardRecord, Local, SharedRuns};
use crate::store::run_index::RECENT_FAILURES_MS;
use crate::store::{Store, StoreError};
use crate::supervisor::{Supervisor, TaskError};
use crate::sync::lock;
use crate::triggers::Triggers;
use crate::trust::HostTrust;
use worker::Active;

/// Why a cancel or a resume was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// No such run.
    #[error("no run `{0}`")]
    NotFound(String),
    /// The run is over.
    #[error("run `{id}` already {state}")]
    AlreadyFinal {
        /// The run.
        id: String,
        /// Its state's name.
        state: &'static str,
    },
    /// Only interrupted runs resume.
    #[error("run `{id}` is {state}; only interrupted runs can be resumed")]
    NotInterrupted {
        /// The run.
        id: String,
        /// Its state's name.
        state: &'static str,
    },
    /// Another run holds one of its locks.
    #[error("run `{id}` cannot resume now: {why}")]
    CannotResume {
        /// The run.
        id: String,
        /// What the mesh said.
        why: Suppression,
    },
    /// The run ended otherwise while the cancel was under way.
    #[error("run `{id}` {state} before the cancel took effect")]
    EndedFirst {
        /// The run.
        id: String,
        /// Its state's name.
        state: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::NotFound(_) => ApiError::not_found(e.to_string()),
            RunError::Store(e) => e.into(),
            _ => ApiError::conflict(e.to_string()),
        }
    }
}

/// What the scheduler runs with.
pub struct Resources {
    /// Settings: attempts, backoff, run bounds.
    pub config: Arc<ServeConfig>,
    /// The wasm engine.
    pub engine: Engine,
    /// The executors runs act through.
    pub executors: Executors,
    /// Runs and events.
    pub store: Store,
    /// Every host call.
    pub ledger: Arc<Ledger>,
    /// The trust core.
    pub trust: Arc<HostTrust>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The playbooks' versions.
    pub registry: Arc<Registry>,
    /// The trigger mesh and claims.
    pub triggers: Arc<Triggers>,
    /// The simulated fleet, in simulation: virtual time follows the events, and its state is
    /// stored with each matched batch.
    pub simulation: Option<Arc<Simulation>>,
    /// Slots for guests running at once, shared with the collectors.
    pub slots: Arc<Semaphore>,
    /// In a cluster: the check before every change that this replica still holds the run's
    /// shard (see [`crate::fence`]).
    pub fence: Option<Arc<dyn grace_engine::fence::Fence>>,
    /// In a cluster: the run board and the change journal (see [`crate::shared_runs`]).
    pub shared: Option<Arc<SharedRuns>>,
    /// The runs waiting for their outcome.
    pub outcomes: Arc<crate::outcomes::Outcomes>,
    /// The meta-loop: what flaps is paused.
    pub meta: Arc<crate::meta::Meta>,
}

/// The queue, the runs and their claims.
pub struct Scheduler {
    r: Resources,
    runs: mpsc::UnboundedSender<String>,
    /// The runs workers have claimed.
    active: Mutex<HashMap<String, Arc<Active>>>,
    /// When each queued run's event was accepted, for the ingest-to-start metric.
    accepted_at: Mutex<HashMap<String, Instant>>,
    /// Taken to change a run's state between queued, running and cancelled.
    claim: Mutex<()>,
    /// Counts finished runs, so that waiters can wake up when one ends.
    finished: tokio::sync::watch::Sender<u64>,
    /// In a cluster: for each shard, the last event of the cluster's log whose runs are made
    /// (on the run board): the shard's import checkpoint may move that far.
    matched_in_log: tokio::sync::watch::Sender<HashMap<u32, u64>>,
}

/// The receiving ends of the scheduler's queues, kept across restarts of its tasks.
pub struct Queues {
    events: Arc<tokio::sync::Mutex<mpsc::Receiver<Queued>>>,
    runs: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
}

impl Scheduler {
    /// A scheduler matching the events of `events` (the intake's queue).
    pub(crate) fn new(r: Resources, events: mpsc::Receiver<Queued>) -> (Arc<Scheduler>, Queues) {
        let (runs, runs_rx) = mpsc::unbounded_channel();
        let scheduler = Arc::new(Scheduler {
            r,
            runs,
            active: Mutex::new(HashMap::new()),
            accepted_at: Mutex::new(HashMap::new()),
            claim: Mutex::new(()),
            finished: tokio::sync::watch::Sender::new(0),
            matched_in_log: tokio::sync::watch::Sender::new(HashMap::new()),
        });
        let queues = Queues {
            events: Arc::new(tokio::sync::Mutex::new(events)),
            runs: Arc::new(tokio::sync::Mutex::new(runs_rx)),
        };
        (scheduler, queues)
    }

    /// Starts the matcher, the runner and the approval expiry under `supervisor`, then lets the
    /// runs whose approval was decided while the server was down go on: before the backlog is
    /// queued again and before anything new is accepted, so that they take their exclusivity
    /// locks back first. That reads every run waiting for approval (they are bounded by the
    /// approvals' time to live).
    pub async fn start(self: &Arc<Self>, supervisor: &Arc<Supervisor>, queues: Queues) {
        let first_start = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (this, rx) = (self.clone(), queues.events);
        supervisor.spawn("matcher", move || {
            let (this, rx, first) = (this.clone(), rx.clone(), first_start.clone());
            async move {
                let restarted = !first.swap(false, std::sync::atomic::Ordering::SeqCst);
                matcher::run(this, rx, restarted).await
            }
        });
        let (this, rx) = (self.clone(), queues.runs);
        supervisor.spawn("runner", move || worker::runner(this.clone(), rx.clone()));
        let this = self.clone();
        supervisor.spawn("approval-expiry", move || approvals::expiry(this.clone()));
        let this = self.clone();
        supervisor.spawn("outcomes", move || judge_outcomes(this.clone()));
        if self.r.trust.approvals().is_shared() {
            let this = self.clone();
            supervisor.spawn("approval-votes", move || {
                approvals::follow_votes(this.clone())
            });
        }
        self.continue_decided().await;
    }

    /// Runs that were in flight when the server stopped are marked interrupted, and the
    /// failures of the last day count again towards their playbooks' risk. Both come from the
    /// store's index ([`crate::store::run_index`]), not from reading every run.
    pub async fn recover(&self) -> Result<(), StoreError> {
        let since = system_now_millis().saturating_sub(RECENT_FAILURES_MS);
        for (playbook, at) in self.r.store.failures_since(since)? {
            self.r.trust.run_failed(&playbook, at);
        }
        // A run waiting for approval waits on disk, not in memory: it goes on when people
        // decide, restart or not; an interrupted one waits for someone to resume it.
        for mut run in self
            .r
            .store
            .unfinished_runs(&[RunState::Queued, RunState::Running])?
        {
            let was = run.state;
            run.state = RunState::Interrupted;
            self.r.store.put_run(&run)?;
            self.record(
                &run,
                "interrupted",
                json!({ "was": was }),
                json!({ "ok": null }),
            )
            .await;
            tracing::warn!(run = %run.id, "run was {} when the server stopped: now interrupted", was.name());
        }
        Ok(())
    }

    /// Cancels a queued, interrupted or running run.
    pub async fn cancel(&self, id: &str) -> Result<RunSummary, RunError> {
        let not_found = || RunError::NotFound(id.to_owned());
        let active = {
            let _claim = lock(&self.claim);
            let run = self.r.store.run(id)?.ok_or_else(not_found)?;
            if run.state.is_final() {
                return Err(RunError::AlreadyFinal {
                    id: id.to_owned(),
                    state: run.state.name(),
                });
            }
            let active = lock(&self.active).get(id).cloned();
            if active.is_none() {
                // Not claimed by a worker (queued, interrupted): none will touch it now, since
                // claiming happens under the same lock.
                let mut run = run;
                run.state = RunState::Cancelled;
                run.finished_at = Some(system_now_millis());
                self.r.store.put_run(&run)?;
                self.r.metrics.transition(RunState::Cancelled);
                self.release(&run.id);
                self.finished.send_modify(|n| *n += 1);
            }
            active
        };
        if active.is_none()
            && let Some(shared) = &self.r.shared
            && let Ok(Some(run)) = self.r.store.run(id)
            && let Err(e) = shared.cancel(&run).await
        {
            // In a cluster, the board says so too, or another replica could take it over.
            tracing::warn!(run = %id, "cannot write the cancel on the run board: {e}");
        }
        if let Some(active) = active {
            // Listen before cancelling, so the worker's notification cannot be missed.
            let notified = active.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            active.cancel();
            let finished = self.r.store.run(id)?.is_some_and(|r| r.state.is_final());
            if !finished {
                let _ = tokio::time::timeout(Duration::from_secs(10), notified).await;
            }
        }
        let run = self.r.store.run(id)?.ok_or_else(not_found)?;
        if run.state != RunState::Cancelled {
            return Err(RunError::EndedFirst {
                id: id.to_owned(),
                state: run.state.name(),
            });
        }
        if let Err(e) = self
            .r
            .trust
            .approvals()
            .cancel_for_run(&run.id, system_now_millis())
            .await
        {
            tracing::error!(run = %run.id, "cannot withdraw the run's approval requests: {e}");
        }
        self.record(&run, "cancelled", json!({}), json!({ "ok": null }))
            .await;
        Ok(run.summary())
    }

    /// Queues an interrupted run again.
    pub async fn resume(&self, id: &str) -> Result<RunSummary, RunError> {
        let run = {
            let _claim = lock(&self.claim);
            let mut run = self
                .r
                .store
                .run(id)?
                .ok_or_else(|| RunError::NotFound(id.to_owned()))?;
            if run.state != RunState::Interrupted {
                return Err(RunError::NotInterrupted {
                    id: id.to_owned(),
                    state: run.state.name(),
                });
            }
            // It takes its exclusivity locks and dedup key again, or waits for a later resume.
            if let Some(key) = &run.key {
                self.r
                    .triggers
                    .resume(&run.id, key)
                    .map_err(|why| RunError::CannotResume {
                        id: id.to_owned(),
                        why,
                    })?;
            }
            run.state = RunState::Queued;
            if let Err(e) = self.r.store.put_run(&run) {
                self.release(&run.id);
                return Err(e.into());
            }
            run
        };
        self.record(&run, "resumed", json!({}), json!({ "ok": null }))
            .await;
        self.r.metrics.transition(RunState::Queued);
        let _ = self.runs.send(run.id.clone());
        Ok(run.summary())
    }

    /// Records a lifecycle event of the server's own (interrupted, cancelled, resumed) in the
    /// ledger. A failure is logged: the state change itself is already stored.
    async fn record(
        &self,
        run: &RunRecord,
        function: &str,
        args: serde_json::Value,
        result: serde_json::Value,
    ) {
        let entry = NewEntry {
            run_id: run.id.clone(),
            playbook: run.playbook.clone(),
            digest: run.digest.clone(),
            interface: "run".into(),
            function: function.into(),
            args,
            decision: Decision::allowed("server lifecycle"),
            result,
            at_millis: self.r.executors.clock.now_millis(),
        };
        if let Err(e) = self.r.ledger.append(entry).await {
            tracing::error!(run = %run.id, "the ledger could not record `{function}`: {e}");
        }
    }

    /// In a cluster: for each shard, the last event of the cluster's log whose runs are on
    /// the run board.
    pub fn matched_in_log(&self) -> tokio::sync::watch::Receiver<HashMap<u32, u64>> {
        self.matched_in_log.subscribe()
    }

    /// How run `id` stands here, for adoption (see [`Local::of`]); `None` when this process
    /// does not have it going and it may be taken over.
    pub(crate) fn local_state(&self, id: &str) -> Option<Local> {
        if lock(&self.active).contains_key(id) {
            return Some(Local::Going);
        }
        match self.r.store.run(id) {
            Ok(Some(run)) => Local::of(&run),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(run = %id, "cannot read the run: {e}");
                Some(Local::Going)
            }
        }
    }

    /// Takes over run `id` of `shard`, which the board shows unfinished under another tenure
    /// (at `revision`), and queues it here as a retry of itself. `Ok(false)` when it cannot
    /// take its locks now (a run here holds one): the next look at the board tries again.
    pub(crate) async fn adopt(
        &self,
        shared: &SharedRuns,
        shard: u32,
        id: &str,
        record: BoardRecord,
        revision: u64,
        event: grace_engine::TriggerEvent,
    ) -> Result<bool, String> {
        // A replica without the run's version (not installed from the cluster's catalogue yet,
        // or refused there: a signer it does not trust) leaves the run to one that has it,
        // rather than fail it for the whole cluster.
        if !self
            .r
            .registry
            .has_version(&record.playbook, &record.digest)
        {
            tracing::warn!(run = %id, playbook = %record.playbook, version = %record.version, "not taken over here: this replica does not have the run's playbook version (not installed from the cluster yet, or its signer is not trusted here)");
            return Ok(false);
        }
        // One going on here since the board was read (resumed) is left to go on.
        if matches!(self.local_state(id), Some(Local::Going)) {
            return Ok(false);
        }
        // Its locks first: the run is taken over only if it can hold them.
        let key = match &record.key {
            Some(key) => match self.r.triggers.adopt(id, key) {
                Ok(key) => Some(key),
                Err(why) => {
                    tracing::debug!(run = %id, "not taken over yet: {why}");
                    return Ok(false);
                }
            },
            None => None,
        };
        let record = match shared.take_over(shard, id, record, revision).await {
            Ok(record) => record,
            Err(e) => {
                self.r.triggers.release(id);
                return Err(e.to_string());
            }
        };
        let stored = {
            let _claim = lock(&self.claim);
            // What this replica recorded of the run before (an attempt interrupted or fenced
            // here) is kept with it.
            let run = match self.r.store.run(id) {
                // Ended here since the board was read (cancelled): not run again.
                Ok(Some(run)) if matches!(Local::of(&run), Some(Local::Ended(_))) => {
                    drop(_claim);
                    self.r.triggers.release(id);
                    shared.forget(id);
                    return Ok(false);
                }
                Ok(Some(mut run)) => {
                    run.state = RunState::Queued;
                    run.attempts = run.attempts.max(record.attempts);
                    run.key = key.clone();
                    run.finished_at = None;
                    run
                }
                _ => crate::shared_runs::local_record(id, &record, event, key),
            };
            self.r.store.put_run(&run)
        };
        if let Err(e) = stored {
            self.r.triggers.release(id);
            shared.forget(id);
            return Err(e.to_string());
        }
        self.r.metrics.transition(RunState::Queued);
        let _ = self.runs.send(id.to_owned());
        Ok(true)
    }

    /// Lets go of what run `id` holds: its claim in the mesh, its start metric.
    fn release(&self, id: &str) {
        self.r.triggers.release(id);
        lock(&self.accepted_at).remove(id);
    }
}

/// A task error of the scheduler's own.
#[derive(Debug, thiserror::Error)]
enum ScheduleError {
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read events: {0}")]
    Events(StoreError),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<ScheduleError> for TaskError {
    fn from(e: ScheduleError) -> Self {
        TaskError::new(e)
    }
}

/// How often runs over are judged (see [`crate::outcomes`]).
const JUDGE_EVERY: Duration = Duration::from_secs(1);

/// Judges the runs whose outcome is due, every [`JUDGE_EVERY`], on the executors' clock (the
/// simulation's in simulation, which follows the events).
async fn judge_outcomes(s: Arc<Scheduler>) -> Result<(), TaskError> {
    loop {
        tokio::time::sleep(JUDGE_EVERY).await;
        let (outcomes, now) = (s.r.outcomes.clone(), s.r.executors.clock.now_millis());
        match tokio::task::spawn_blocking(move || outcomes.judge_due(now)).await {
            Ok(judged) => s.r.metrics.runs_judged(&judged),
            Err(e) => return Err(TaskError::new(e)),
        }
    }
}
