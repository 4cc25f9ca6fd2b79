//! In a cluster: runs on the engine's run board and their changes in its journal (see
//! [`grace_cluster::runs`]), so that a run outlives the replica that started it.
//!
//! ```text
//! matcher: a run's id derives from its event's place in the cluster's log (shard, sequence),
//!   its playbook and trigger; it is created on the board before the shard's import
//!   checkpoint moves past the event (see `crate::shard_import`): an event imported again by
//!   the next owner finds its runs there, none is made twice
//! worker: each attempt starts by writing the run as running under this replica's tenure of
//!   the shard (compare-and-set): a run another replica took over is not run here; the end
//!   (or the wait for approval) is written the same way
//! pipeline: every change's intent is in the journal before the provider is called, its
//!   outcome after (the engine's `Journal`); a retry reads its earlier attempts from there
//! adoption (`adopt`): the owner of a shard takes over the runs of the shard the board shows
//!   unfinished under another tenure (a replica that died, was paused or cut off), and runs
//!   them as retries: completed changes are replayed, begun ones read back
//! ```
//!
//! What stays local: approvals (a run waiting for one asks again on the replica that takes it
//! over), the run's history (each replica's store shows the attempts it made).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grace_cluster::runs::BoardRun;
use grace_cluster::shards::shard_of;
use grace_cluster::{Cluster, ClusterError};
use grace_engine::journal::{ChangeRecord, Journal};
use serde::{Deserialize, Serialize};

use crate::intake::Origin;
use crate::runs::{RunRecord, RunState};
use crate::sync::lock;

/// A run as the board holds it: what another replica needs to run it (the event is read from
/// the cluster's log), and who holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BoardRecord {
    pub(crate) playbook: String,
    pub(crate) version: String,
    pub(crate) digest: String,
    pub(crate) trigger: usize,
    /// The event's stream sequence in the cluster's log.
    pub(crate) event_seq: u64,
    pub(crate) dedup_key: Option<String>,
    pub(crate) locks: Vec<String>,
    pub(crate) key: Option<grace_mesh::RunKey>,
    pub(crate) state: RunState,
    /// Attempts started, on any replica.
    pub(crate) attempts: u32,
    pub(crate) created_at: u64,
    pub(crate) ingested_at: u64,
    /// When it ended (wall clock, ms), once it did.
    #[serde(default)]
    pub(crate) finished_at: Option<u64>,
    /// The replica holding the run.
    pub(crate) owner: String,
    /// Its lease token of the run's shard when it took the run.
    pub(crate) tenure: u64,
}

/// Why a run could not be written to the board.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BoardError {
    /// Another replica holds the run now (it took it over), or this one does not hold the
    /// run's shard: the run is not run here.
    #[error("the run is held by another replica now: {0}")]
    Moved(String),
    /// The engine did not answer: nothing was decided.
    #[error(transparent)]
    Engine(ClusterError),
}

impl From<ClusterError> for BoardError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Conflict { key } => {
                BoardError::Moved(format!("`{key}` was written by another replica"))
            }
            e => BoardError::Engine(e),
        }
    }
}

/// This replica's view of the run board.
pub struct SharedRuns {
    cluster: Arc<Cluster>,
    /// The runs this process holds: their record and revision as it last wrote them.
    held: Mutex<HashMap<String, (BoardRecord, u64)>>,
    /// Runs the matcher is putting on the board and in this replica's store: adoption leaves
    /// them alone.
    creating: Mutex<std::collections::HashSet<String>>,
}

/// The run id of the `trigger`-th trigger of `playbook` fired by the event at `origin`: the
/// same on every replica that matches that event.
pub(crate) fn run_id(origin: Origin, playbook: &str, trigger: usize) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(b"grace-run\0");
    h.update(origin.shard.to_be_bytes());
    h.update(origin.seq.to_be_bytes());
    h.update((playbook.len() as u64).to_be_bytes());
    h.update(playbook.as_bytes());
    h.update((trigger as u64).to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

impl SharedRuns {
    /// The board of `cluster`.
    pub fn new(cluster: Arc<Cluster>) -> SharedRuns {
        SharedRuns {
            cluster,
            held: Mutex::new(HashMap::new()),
            creating: Mutex::new(std::collections::HashSet::new()),
        }
    }

    fn shard(&self, run: &RunRecord) -> u32 {
        shard_of(&run.event.resource, self.cluster.settings().shards)
    }

    /// Puts a run the matcher made for the event at `origin` on the board: `false` when it
    /// is there already (an earlier owner of the shard matched the same event). Until
    /// [`SharedRuns::created`], adoption leaves the run to the matcher.
    pub(crate) async fn create(
        &self,
        run: &RunRecord,
        origin: Origin,
    ) -> Result<bool, ClusterError> {
        lock(&self.creating).insert(run.id.clone());
        let record = BoardRecord {
            playbook: run.playbook.clone(),
            version: run.version.clone(),
            digest: run.digest.clone(),
            trigger: run.trigger,
            event_seq: origin.seq,
            dedup_key: run.dedup_key.clone(),
            locks: run.locks.clone(),
            key: run.key.clone(),
            state: run.state,
            attempts: run.attempts,
            created_at: run.created_at,
            ingested_at: run.ingested_at,
            finished_at: None,
            owner: self.cluster.replica().to_owned(),
            tenure: self.cluster.owns(origin.shard).unwrap_or(0),
        };
        let value = encode(&record)?;
        match self
            .cluster
            .runs()
            .create(origin.shard, &run.id, value)
            .await?
        {
            Some(revision) => {
                lock(&self.held).insert(run.id.clone(), (record, revision));
                Ok(true)
            }
            // Ours all the same when the engine stored an earlier try whose answer was lost:
            // this very match of the event (its time), from this replica, under the same
            // tenure, not yet started. Another match of the same event (imported again) is not.
            None => {
                let there = self.cluster.runs().get(origin.shard, &run.id).await?;
                match there.and_then(|t| decode(&t).ok().map(|r| (r, t.revision))) {
                    Some((there, revision))
                        if there.owner == record.owner
                            && there.tenure == record.tenure
                            && there.event_seq == record.event_seq
                            && there.created_at == record.created_at
                            && there.state == RunState::Queued =>
                    {
                        lock(&self.held).insert(run.id.clone(), (there, revision));
                        Ok(true)
                    }
                    _ => {
                        self.created(&run.id);
                        Ok(false)
                    }
                }
            }
        }
    }

    /// The matcher is done with run `id` (stored here, or left to the board).
    pub(crate) fn created(&self, id: &str) {
        lock(&self.creating).remove(id);
    }

    /// Whether the matcher is putting run `id` on the board and in this replica's store now.
    pub(crate) fn creating(&self, id: &str) -> bool {
        lock(&self.creating).contains(id)
    }

    /// The tenure under which this process last wrote run `id`, if it holds it.
    pub(crate) fn tenure_of(&self, id: &str) -> Option<u64> {
        lock(&self.held).get(id).map(|(record, _)| record.tenure)
    }

    /// Writes that an attempt of `run` starts here: under this replica's current tenure of
    /// the run's shard, if no other replica wrote the run since this one did.
    pub(crate) async fn start(&self, run: &RunRecord) -> Result<(), BoardError> {
        let shard = self.shard(run);
        let Some(token) = self.cluster.owns(shard) else {
            self.forget(&run.id);
            return Err(BoardError::Moved(format!(
                "this replica does not hold shard {shard} now"
            )));
        };
        let held = lock(&self.held).get(&run.id).cloned();
        let (mut record, revision) = match held {
            Some(held) => held,
            // Not written by this process (it restarted): only a run still under this
            // replica's current tenure is its own.
            None => {
                let (record, revision) = self.read(shard, &run.id).await?;
                if record.owner != self.cluster.replica() || record.tenure != token {
                    self.forget(&run.id);
                    return Err(BoardError::Moved(format!(
                        "replica `{}` holds it",
                        record.owner
                    )));
                }
                (record, revision)
            }
        };
        if record.state.is_final() {
            self.forget(&run.id);
            return Err(BoardError::Moved(format!(
                "the board has it {} already",
                record.state.name()
            )));
        }
        record.state = RunState::Running;
        record.attempts = record.attempts.max(run.attempts).saturating_add(1);
        record.tenure = token;
        self.write(shard, &run.id, record, revision).await
    }

    /// Writes where `run` stopped (waiting for approval, or its end). A run fenced here is
    /// left as it is on the board: the shard's owner takes it over.
    pub(crate) async fn settle(&self, run: &RunRecord) -> Result<(), BoardError> {
        let fenced = run
            .failure
            .as_ref()
            .is_some_and(|f| f.kind == grace_engine::FailureKind::Fenced);
        let Some((mut record, revision)) = lock(&self.held).get(&run.id).cloned() else {
            return Err(BoardError::Moved("not held by this process".into()));
        };
        if fenced {
            lock(&self.held).remove(&run.id);
            return Ok(());
        }
        record.state = run.state;
        if run.state.is_final() {
            record.finished_at = Some(grace_engine::event::system_now_millis());
        }
        let shard = self.shard(run);
        let written = self.write(shard, &run.id, record, revision).await;
        if run.state.is_final() {
            lock(&self.held).remove(&run.id);
        }
        written
    }

    /// Writes run `run` as cancelled on the board, whoever holds it: from this process's
    /// record when it holds the run, from a fresh read otherwise. A replica running it now
    /// learns at its next write (its next attempt or its end).
    pub(crate) async fn cancel(&self, run: &RunRecord) -> Result<(), BoardError> {
        let shard = self.shard(run);
        for _ in 0..3 {
            let held = lock(&self.held).get(&run.id).cloned();
            let (mut record, revision) = match held {
                Some(held) => held,
                None => self.read(shard, &run.id).await?,
            };
            if record.state.is_final() {
                return Ok(());
            }
            record.state = RunState::Cancelled;
            record.finished_at = Some(grace_engine::event::system_now_millis());
            match self.write(shard, &run.id, record, revision).await {
                Ok(()) => {
                    self.forget(&run.id);
                    return Ok(());
                }
                // Written by another replica meanwhile: read it again.
                Err(BoardError::Moved(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(BoardError::Moved(
            "written by other replicas three times in a row".into(),
        ))
    }

    /// Takes a run of another tenure over for this replica, if the board still shows it as
    /// `seen` (at `revision`); answers it under this replica's tenure.
    pub(crate) async fn take_over(
        &self,
        shard: u32,
        id: &str,
        mut record: BoardRecord,
        revision: u64,
    ) -> Result<BoardRecord, BoardError> {
        let Some(token) = self.cluster.owns(shard) else {
            return Err(BoardError::Moved(format!(
                "this replica does not hold shard {shard} now"
            )));
        };
        record.owner = self.cluster.replica().to_owned();
        record.tenure = token;
        self.write(shard, id, record.clone(), revision).await?;
        Ok(record)
    }

    /// The cluster.
    pub(crate) fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Forgets a run this process holds without writing it (its adoption failed here).
    pub(crate) fn forget(&self, id: &str) {
        lock(&self.held).remove(id);
    }

    async fn read(&self, shard: u32, id: &str) -> Result<(BoardRecord, u64), BoardError> {
        let run = self
            .cluster
            .runs()
            .get(shard, id)
            .await?
            .ok_or_else(|| BoardError::Moved("it is not on the board".into()))?;
        Ok((decode(&run)?, run.revision))
    }

    async fn write(
        &self,
        shard: u32,
        id: &str,
        record: BoardRecord,
        revision: u64,
    ) -> Result<(), BoardError> {
        let value = encode(&record)?;
        match self.cluster.runs().update(shard, id, value, revision).await {
            Ok(revision) => {
                lock(&self.held).insert(id.to_owned(), (record, revision));
                Ok(())
            }
            Err(e) => {
                let e = BoardError::from(e);
                if matches!(e, BoardError::Moved(_)) {
                    lock(&self.held).remove(id);
                }
                Err(e)
            }
        }
    }
}

fn encode(record: &BoardRecord) -> Result<Vec<u8>, ClusterError> {
    serde_json::to_vec(record).map_err(|e| ClusterError::Corrupt {
        key: "run".into(),
        message: e.to_string(),
    })
}

pub(crate) fn decode(run: &BoardRun) -> Result<BoardRecord, ClusterError> {
    serde_json::from_slice(&run.value).map_err(|e| ClusterError::Corrupt {
        key: format!("run {}", run.id),
        message: e.to_string(),
    })
}

#[async_trait::async_trait]
impl Journal for SharedRuns {
    fn host(&self) -> &str {
        self.cluster.replica()
    }

    async fn record(&self, run_id: &str, record: &ChangeRecord) -> Result<u64, String> {
        let record = ChangeRecord {
            host: Some(self.cluster.replica().to_owned()),
            ..record.clone()
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        self.cluster
            .runs()
            .journal(run_id, bytes)
            .await
            .map_err(|e| e.to_string())
    }

    async fn records(&self, run_id: &str) -> Result<Vec<ChangeRecord>, String> {
        let records = self
            .cluster
            .runs()
            .journal_of(run_id)
            .await
            .map_err(|e| e.to_string())?;
        // A record that cannot be read could be an intent: the run does not go on blind.
        records
            .into_iter()
            .map(|(seq, bytes)| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("journal record {seq} cannot be read: {e}"))
            })
            .collect()
    }
}

/// How long a finished run stays on the board (with its journal) after it ended.
const FINISHED_KEPT_MS: u64 = 10 * 60 * 1000;

/// How often the board is looked at for runs to take over.
const EVERY: Duration = Duration::from_secs(2);

/// Takes over, every [`EVERY`], the unfinished runs of the shards this replica owns that no
/// process of this replica's holds (see the module's text), and takes finished runs whose
/// event the shard's import checkpoint passed off the board.
pub async fn adopt(
    shared: Arc<SharedRuns>,
    scheduler: Arc<crate::scheduler::Scheduler>,
) -> Result<(), crate::supervisor::TaskError> {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        for (shard, _) in shared.cluster.owned() {
            if let Err(e) = sweep(&shared, &scheduler, shard).await {
                tracing::warn!(shard, "cannot look at the shard's runs on the board: {e}");
            }
        }
    }
}

async fn sweep(
    shared: &SharedRuns,
    scheduler: &crate::scheduler::Scheduler,
    shard: u32,
) -> Result<(), ClusterError> {
    let board = shared.cluster.runs();
    let (checkpoint, _) = shared.cluster.events().checkpoint(shard).await?;
    for run in board.list(shard).await? {
        let record = match decode(&run) {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(shard, "skipping a run on the board: {e}");
                continue;
            }
        };
        if record.state.is_final() {
            // Its event is never matched again, and a creation of it sent before its shard
            // moved (held in a client's buffer through a reconnection) finds it there for
            // FINISHED_KEPT: nothing can make the run a second time.
            let ended_long_ago = record.finished_at.is_none_or(|at| {
                grace_engine::event::system_now_millis().saturating_sub(at) > FINISHED_KEPT_MS
            });
            if record.event_seq <= checkpoint && ended_long_ago {
                board.remove(shard, &run.id).await?;
            }
            continue;
        }
        match scheduler.local_state(&run.id) {
            // Going on here.
            Some(Local::Going) => continue,
            // Being made by the matcher here.
            None if shared.creating(&run.id) => continue,
            // It ended here, and the board was not told (the engine did not answer then).
            Some(Local::Ended(state)) => {
                let settled = BoardRecord {
                    state,
                    finished_at: Some(grace_engine::event::system_now_millis()),
                    ..record.clone()
                };
                if let Err(e) = shared.write(shard, &run.id, settled, run.revision).await {
                    tracing::warn!(run = %run.id, "cannot write the run's end to the board: {e}");
                }
                shared.forget(&run.id);
                continue;
            }
            // Interrupted or fenced here, or never here: whatever its tenure, nobody runs it
            // here now.
            None => {}
        }
        let Some((event_shard, payload)) =
            shared.cluster.events().event_at(record.event_seq).await?
        else {
            tracing::warn!(run = %run.id, seq = record.event_seq, "the run's event is no longer in the cluster's log: it cannot be taken over");
            continue;
        };
        let Some(shared_event) = crate::shard_import::parse(
            shared.cluster.settings().shards,
            event_shard,
            record.event_seq,
            &payload,
        )
        .filter(|_| event_shard == shard) else {
            continue;
        };
        match scheduler
            .adopt(
                shared,
                shard,
                &run.id,
                record,
                run.revision,
                shared_event.event,
            )
            .await
        {
            Ok(true) => {
                shared
                    .cluster
                    .counters()
                    .runs_taken_over
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(shard, run = %run.id, "took the run over");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(run = %run.id, "cannot take the run over: {e}"),
        }
    }
    Ok(())
}

/// A run's state in this replica's store, as adoption sees it.
pub(crate) enum Local {
    /// Queued, running or waiting for approval here.
    Going,
    /// Ended here (not fenced).
    Ended(RunState),
}

impl Local {
    /// How `run`, as stored here, stands for adoption; `None` when it may be taken over
    /// (interrupted, or stopped by the fence).
    pub(crate) fn of(run: &RunRecord) -> Option<Local> {
        let fenced = run
            .failure
            .as_ref()
            .is_some_and(|f| f.kind == grace_engine::FailureKind::Fenced);
        match run.state {
            RunState::Queued | RunState::Running | RunState::WaitingApproval => Some(Local::Going),
            RunState::Interrupted => None,
            _ if fenced => None,
            state => Some(Local::Ended(state)),
        }
    }
}

/// The local record of a run taken over: the board's record, the event read from the log.
pub(crate) fn local_record(
    id: &str,
    record: &BoardRecord,
    event: grace_engine::TriggerEvent,
    key: Option<grace_mesh::RunKey>,
) -> RunRecord {
    RunRecord {
        id: id.to_owned(),
        playbook: record.playbook.clone(),
        version: record.version.clone(),
        digest: record.digest.clone(),
        trigger: record.trigger,
        // Not in this replica's event log: the place in the cluster's.
        event_seq: record.event_seq,
        resource: event.resource.clone(),
        event,
        dedup_key: record.dedup_key.clone(),
        locks: record.locks.clone(),
        key,
        state: RunState::Queued,
        attempts: record.attempts,
        created_at: record.created_at,
        ingested_at: record.ingested_at,
        started_at: None,
        finished_at: None,
        outcome: None,
        failure: None,
        approval: None,
        timeline: Vec::new(),
        attempts_log: Vec::new(),
        // The replica that made the run watched its signal; this one judges it unwatched.
        watch: None,
        recovery: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_id_is_the_same_wherever_its_event_is_matched_and_differs_otherwise() {
        let at = Origin { shard: 3, seq: 41 };
        let id = run_id(at, "restart", 0);
        assert_eq!(id, run_id(at, "restart", 0));
        assert!(grace_cluster::runs::valid_run_id(&id), "{id}");
        assert_ne!(id, run_id(at, "restart", 1));
        assert_ne!(id, run_id(at, "restar", 0));
        assert_ne!(id, run_id(Origin { shard: 3, seq: 42 }, "restart", 0));
        assert_ne!(id, run_id(Origin { shard: 4, seq: 41 }, "restart", 0));
    }
}
