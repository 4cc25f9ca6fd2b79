//! The matcher task: accepted events against the triggers, in sequence order, into runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use grace_engine::event::system_now_millis;
use grace_executor::Clock;
use grace_mesh::Decision;
use tokio::sync::mpsc;

use super::{ScheduleError, Scheduler};
use crate::intake::{Origin, Queued};
use crate::runs::{RunRecord, RunState};
use crate::supervisor::TaskError;
use crate::sync::lock;

/// How far the matcher's work is recorded.
struct Marks {
    /// The last event counted as matched in the metrics: events count as matched once their
    /// runs are stored, so a client that sees the count can read the runs.
    counted: u64,
    /// The last event the stored checkpoint of the mesh covers.
    checkpointed: u64,
}

/// How long the simulation's matcher waits for the runs an event fired before matching the next
/// event (see [`run`]).
const SIMULATED_RUN_WAIT: Duration = Duration::from_secs(1);

/// Matches accepted events against the triggers, in order, and creates runs.
///
/// Live, a batch of events is matched and its runs stored in one go. In simulation, virtual
/// time follows the events' timestamps, so the runs an event fires are let finish (they take
/// virtual time, not wall time; a guest that spins in wall time is waited for at most
/// [`SIMULATED_RUN_WAIT`]) before the clock moves on to the next event: a recorded incident
/// replays as it happened.
///
/// Events reach the queue in the order their publishers get there, not always in sequence
/// order (two batches committed together wake their publishers in any order): the matcher
/// holds early ones back and matches strictly in sequence, so the "matched through" mark only
/// ever covers a gap-free prefix of the log.
///
/// A restarted matcher (after a panic) takes up from the store: it matches from the first
/// unmatched event, reading those its previous start had taken off the queue back from the log.
pub(super) async fn run(
    s: Arc<Scheduler>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Queued>>>,
    restarted: bool,
) -> Result<(), TaskError> {
    let mut rx = rx.lock().await;
    let mut received = Vec::with_capacity(1024);
    let mut early: BTreeMap<u64, Queued> = BTreeMap::new();
    let store = s.r.store.clone();
    let (matched, checkpointed) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::StoreError>((
            store.matched_through()?,
            store.mesh_checkpoint_through()?,
        ))
    })
    .await
    .map_err(ScheduleError::from)?
    .map_err(ScheduleError::from)?;
    let mut next = matched + 1;
    if restarted {
        let store = s.r.store.clone();
        let backlog = tokio::task::spawn_blocking(move || store.events(next, usize::MAX))
            .await
            .map_err(ScheduleError::from)?
            .map_err(ScheduleError::Events)?;
        for e in backlog {
            early.insert(
                e.seq,
                Queued {
                    seq: e.seq,
                    event: e.event,
                    graph: e.graph,
                    received_at: e.received_at,
                    accepted: Instant::now(),
                    // In a cluster, the shard's import waits for its events to be matched
                    // with their place in the cluster's log, and imports them again when they
                    // are not (see `crate::shard_import`).
                    origin: None,
                },
            );
        }
    }
    let mut marks = Marks {
        counted: matched,
        checkpointed,
    };
    while rx.recv_many(&mut received, 1024).await > 0 {
        for q in received.drain(..) {
            if q.seq >= next {
                early.insert(q.seq, q);
            }
        }
        let mut batch = Vec::new();
        while let Some(q) = early.remove(&next) {
            batch.push(q);
            next += 1;
        }
        if batch.is_empty() {
            continue;
        }
        let mut created = Vec::new();
        let mut last_seq = 0;
        let mut origins = Vec::new();
        let mut left = Left::new();
        for q in batch {
            last_seq = q.seq;
            origins.extend(q.origin);
            let Some(sim) = &s.r.simulation else {
                created.extend(match_one(&s, &q));
                continue;
            };
            // The intake bounded how far ahead an event may be (see `crate::simulation`).
            let clock = sim.clock();
            let now = clock.now_millis();
            if q.event.timestamp > now {
                clock.advance(Duration::from_millis(q.event.timestamp - now));
            }
            let runs = match_one(&s, &q);
            if !runs.is_empty() {
                let ids: Vec<String> = runs.iter().map(|(r, _)| r.id.clone()).collect();
                let mut finished = s.finished.subscribe();
                store_and_start(&s, runs, q.seq, &mut marks, &mut left).await;
                // Its runs are made: the shard's import need not wait for the whole batch.
                report_matched(&s, q.origin, &left);
                wait_until_final(&s, &ids, &mut finished).await;
                // The runs moved the clock while they waited: keep where it got to.
                save_simulation(sim).await;
            }
        }
        store_and_start(&s, created, last_seq, &mut marks, &mut left).await;
        report_matched(&s, origins, &left);
    }
    Ok(())
}

/// For each shard, the first event of a batch whose runs were left to the shard's next owner
/// (the shard moved while they were being put on the run board).
type Left = std::collections::HashMap<u32, u64>;

/// Tells the shards' imports how far their events' runs are on the run board: never up to an
/// event whose runs were left, so its import does not count it as done (it imports it again
/// from the checkpoint, or the next owner does).
fn report_matched(s: &Scheduler, origins: impl IntoIterator<Item = Origin>, left: &Left) {
    let mut origins = origins
        .into_iter()
        .filter(|o| left.get(&o.shard).is_none_or(|first| o.seq < *first))
        .peekable();
    if origins.peek().is_none() {
        return;
    }
    s.matched_in_log.send_modify(|through| {
        for o in origins {
            let at = through.entry(o.shard).or_default();
            *at = (*at).max(o.seq);
        }
    });
}

/// The runs one event fires, each with where its event is in the cluster's log, if it is.
///
/// In a cluster, only events imported from the cluster's log are matched here: one read back
/// from this replica's own log after a restart (no place in the cluster's log) is left to the
/// shard's owner, which imports it again from the cluster's log.
fn match_one(s: &Scheduler, q: &Queued) -> Vec<(RunRecord, Option<Origin>)> {
    if s.r.shared.is_some() && q.origin.is_none() {
        return Vec::new();
    }
    // Before the event fires anything: a run it makes watches for later events only.
    s.r.outcomes.observe(&q.event, q.graph.as_ref());
    let mut decisions = Vec::new();
    let condition_false =
        s.r.triggers
            .offer_counting(&q.event, q.graph.as_ref(), &mut decisions);
    if condition_false > 0 {
        s.r.metrics
            .suppressed_many("condition_false", condition_false);
    }
    let mut created = Vec::new();
    for decision in decisions {
        match decision {
            Decision::Fire {
                playbook,
                trigger,
                resource,
                dedup_key,
                run: key,
            } => {
                let Some((version, digest)) = s.r.registry.live_version(&playbook) else {
                    s.r.triggers.abandon(&key);
                    continue;
                };
                if s.r.meta.is_paused(&playbook, &resource) {
                    s.r.triggers.abandon(&key);
                    s.r.metrics.suppressed("paused");
                    continue;
                }
                let id = match q.origin {
                    Some(origin) => crate::shared_runs::run_id(origin, &playbook, trigger),
                    None => uuid::Uuid::new_v4().to_string(),
                };
                let watch = match s.r.outcomes.watch_for(
                    &q.event,
                    s.r.registry.live_condition(&playbook, trigger).as_ref(),
                ) {
                    Ok(w) => Some(w),
                    Err(why) => {
                        tracing::debug!(%playbook, "the run's outcome will not be judged: {why}");
                        None
                    }
                };
                let locks = key.locks().to_vec();
                s.r.triggers.hold(&id, key.clone());
                lock(&s.accepted_at).insert(id.clone(), q.accepted);
                let run = RunRecord {
                    id,
                    playbook,
                    version,
                    digest,
                    trigger,
                    event_seq: q.seq,
                    event: q.event.clone(),
                    resource,
                    dedup_key,
                    locks,
                    key: Some(key),
                    state: RunState::Queued,
                    attempts: 0,
                    created_at: system_now_millis(),
                    ingested_at: q.received_at,
                    started_at: None,
                    finished_at: None,
                    outcome: None,
                    failure: None,
                    approval: None,
                    timeline: Vec::new(),
                    attempts_log: Vec::new(),
                    watch,
                    recovery: None,
                };
                s.r.outcomes.track(&run);
                created.push((run, q.origin));
            }
            Decision::Suppressed { reason, .. } => s.r.metrics.suppressed(reason.name()),
        }
    }
    created
}

/// Stores new runs with the matched-through mark (one transaction), then hands them to the
/// runner. Once `last_seq` is `mesh_checkpoint_events` (settings) or more past the stored
/// checkpoint, the mesh's memory (it has been offered exactly the events through `last_seq`) is
/// checkpointed in the same transaction.
async fn store_and_start(
    s: &Scheduler,
    created: Vec<(RunRecord, Option<Origin>)>,
    last_seq: u64,
    marks: &mut Marks,
    left: &mut Left,
) {
    if last_seq == 0 || (last_seq <= marks.counted && created.is_empty()) {
        return;
    }
    let (created, left_here) = on_board(s, created).await;
    for o in left_here {
        let first = left.entry(o.shard).or_insert(o.seq);
        *first = (*first).min(o.seq);
    }
    let every = u64::try_from(s.r.config.mesh_checkpoint_events).unwrap_or(u64::MAX);
    let checkpoint = (last_seq >= marks.checkpointed.saturating_add(every))
        .then(|| Arc::new(s.r.triggers.checkpoint()));
    // Until the runs and the mark are stored, nothing moves on: a failure here (a full disk) is
    // retried rather than skipped, so no event is marked matched without its runs.
    let mut pause = Duration::from_millis(100);
    loop {
        let store = s.r.store.clone();
        let runs = created.clone();
        // In simulation, the clock the batch moved is kept with its mark.
        let clock = s.r.simulation.as_ref().map(|sim| sim.clock().now_millis());
        let checkpoint = checkpoint.clone();
        match tokio::task::spawn_blocking(move || {
            store.put_matched(&runs, last_seq, checkpoint.as_deref(), clock)
        })
        .await
        {
            Ok(Ok(())) => break,
            Ok(Err(e)) => tracing::error!("cannot store matched runs, retrying in {pause:?}: {e}"),
            Err(e) => tracing::error!("matcher storage task failed, retrying in {pause:?}: {e}"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    if let Some(shared) = &s.r.shared {
        for run in &created {
            shared.created(&run.id);
        }
    }
    s.r.metrics
        .events_matched
        .fetch_add(last_seq.saturating_sub(marks.counted), Ordering::Relaxed);
    marks.counted = marks.counted.max(last_seq);
    if checkpoint.is_some() {
        marks.checkpointed = last_seq;
    }
    for run in created {
        s.r.metrics.triggers_fired.fetch_add(1, Ordering::Relaxed);
        s.r.metrics.transition(RunState::Queued);
        let _ = s.runs.send(run.id);
    }
}

/// In a cluster: puts the new runs on the run board, each once, retrying while the engine does
/// not answer (nothing moves on before: the shard's import checkpoint waits for these runs).
/// A run already there (an earlier owner of the shard matched the same event) is not made
/// again here: it is the board's, and taken over from there if it is not finished. Answers the
/// runs put there, and the events whose runs were left because their shard moved meanwhile.
async fn on_board(
    s: &Scheduler,
    created: Vec<(RunRecord, Option<Origin>)>,
) -> (Vec<RunRecord>, Vec<Origin>) {
    let Some(shared) = &s.r.shared else {
        return (
            created.into_iter().map(|(run, _)| run).collect(),
            Vec::new(),
        );
    };
    // Written all at once: each is one request to the engine.
    let created = created
        .into_iter()
        .filter_map(|(run, origin)| Some((run, origin?)))
        .map(|(run, origin)| async move {
            let mut pause = Duration::from_millis(100);
            loop {
                // Lost meanwhile: the event is the next owner's to match (the checkpoint did
                // not move past it), and a run written now could outlive its copy there.
                if shared.cluster().owns(origin.shard).is_none() {
                    tracing::info!(run = %run.id, "the run's shard moved before the run was on the board: left to its owner");
                    shared.created(&run.id);
                    s.release(&run.id);
                    return Err(origin);
                }
                match shared.create(&run, origin).await {
                    Ok(true) => return Ok(Some(run)),
                    Ok(false) => {
                        tracing::info!(run = %run.id, "the run is on the board already: not made again");
                        s.release(&run.id);
                        return Ok(None);
                    }
                    Err(e) => {
                        tracing::warn!(run = %run.id, "cannot put the run on the board, retrying in {pause:?}: {e}");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    let (mut fresh, mut left) = (Vec::new(), Vec::new());
    for outcome in futures_util::future::join_all(created).await {
        match outcome {
            Ok(run) => fresh.extend(run),
            Err(origin) => left.push(origin),
        }
    }
    (fresh, left)
}

/// Keeps the simulated fleet's state (its clock moved by events and runs), in order with the
/// saves of its changes (see [`grace_sim::Simulation::save_now`]); a failure is logged by the
/// saver, and the next save keeps the whole state again.
async fn save_simulation(sim: &Arc<grace_sim::Simulation>) {
    let sim = sim.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || sim.save_now()).await {
        tracing::error!("the simulated fleet's state could not be saved: {e}");
    }
}

/// Waits until the runs are final, at most [`SIMULATED_RUN_WAIT`].
async fn wait_until_final(
    s: &Scheduler,
    ids: &[String],
    finished: &mut tokio::sync::watch::Receiver<u64>,
) {
    let deadline = tokio::time::Instant::now() + SIMULATED_RUN_WAIT;
    loop {
        let all_final = ids.iter().all(|id| {
            s.r.store.run(id).ok().flatten().is_none_or(|r| {
                // A run waiting for people takes no virtual time meanwhile: the incident
                // replays on, as it did.
                r.state.is_final()
                    || matches!(r.state, RunState::Interrupted | RunState::WaitingApproval)
            })
        });
        if all_final {
            return;
        }
        match tokio::time::timeout_at(deadline, finished.changed()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}
