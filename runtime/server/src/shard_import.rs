//! In a cluster: the events of each shard this replica owns are imported from the cluster's
//! event log into this replica's own pipeline (its event log, then the matcher), in stream
//! order, from the shard's import checkpoint.
//!
//! One task per owned shard, started when the lease is acquired and stopped when it is lost or
//! released. A task first claims the checkpoint (a compare-and-set of its current value, which
//! proves it read the latest and makes a previous owner's next move fail), offers the shard's
//! recent past to the trigger mesh without firing (windows, dedup and cooldowns survive the
//! move), then imports batch by batch: stored durably here first, then the checkpoint moved
//! by compare-and-set. A replica that lost the shard stops at its next batch.
//!
//! The checkpoint moves past an event once the matcher made its runs, on the cluster's run
//! board (see [`crate::shared_runs`]): events a replica imported but whose checkpoint it had
//! not yet moved when it died are imported again by the next owner, whose matcher finds their
//! runs on the board already (a run's id derives from its event's place in the log).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use grace_cluster::{Cluster, ClusterError};

use crate::intake::{Intake, Origin, SharedEvent};
use crate::supervisor::TaskError;
use crate::triggers::{LEGACY_HORIZON, Triggers};

/// How often the set of owned shards is looked at.
const EVERY: Duration = Duration::from_millis(200);
/// Most events in one imported batch.
const BATCH: usize = 256;
/// Most events of a shard's past a new owner offers its mesh.
const WARM_MAX: usize = 4096;
/// How long a reader may be idle after a disturbance before it is opened again.
const REOPEN_IDLE: Duration = Duration::from_secs(3);
/// The pause after a shard's import failed, before it starts again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Keeps one import task per owned shard until the task is aborted.
pub async fn run(
    cluster: Arc<Cluster>,
    intake: Arc<Intake>,
    triggers: Arc<Triggers>,
    matched: Matched,
) -> Result<(), TaskError> {
    let mut tasks: HashMap<u32, (u64, tokio::task::JoinHandle<()>)> = HashMap::new();
    // How far this process imported each shard, kept across its import tasks: a shard lost
    // and taken back (an engine election longer than a lease) is not imported here twice.
    let imported: Arc<Mutex<HashMap<u32, u64>>> = Arc::default();
    let mut every = tokio::time::interval(EVERY);
    loop {
        every.tick().await;
        let owned: HashMap<u32, u64> = cluster.owned().into_iter().collect();
        // A task of a shard no longer held is not aborted (it could be half way through
        // storing a batch, which must reach the matcher too): it stops by itself before its
        // next batch.
        tasks.retain(|shard, (token, task)| owned.get(shard) == Some(token) && !task.is_finished());
        for (shard, token) in owned {
            tasks.entry(shard).or_insert_with(|| {
                let (cluster, intake, triggers, matched) = (
                    cluster.clone(),
                    intake.clone(),
                    triggers.clone(),
                    matched.clone(),
                );
                let shard = Shard {
                    shard,
                    token,
                    imported: imported.clone(),
                };
                (
                    token,
                    tokio::spawn(async move {
                        if let Err(e) = import(&cluster, &intake, &triggers, &shard, matched).await
                        {
                            tracing::warn!(
                                shard = shard.shard,
                                "importing the shard's events stopped: {e}"
                            );
                            tokio::time::sleep(RETRY_AFTER).await;
                        }
                    }),
                )
            });
        }
    }
}

/// Why a shard's import stopped.
#[derive(Debug, thiserror::Error)]
enum ImportError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Local(#[from] crate::intake::IngestError),
    #[error("the matcher did not match the imported events within {UNMATCHED_AFTER:?}")]
    Unmatched,
}

/// For each shard, the last event of the cluster's log whose runs are on the run board (see
/// [`crate::scheduler::Scheduler::matched_in_log`]).
pub type Matched = tokio::sync::watch::Receiver<HashMap<u32, u64>>;

/// How long a batch's import waits for the matcher to make any progress before the shard is
/// imported again from its checkpoint (a matcher that restarted does not match events without
/// their place in the log; the mesh here is then offered those events a second time).
const UNMATCHED_AFTER: Duration = Duration::from_secs(60);

/// One shard's import: which, under which lease, and how far this process got with it.
struct Shard {
    shard: u32,
    token: u64,
    imported: Arc<Mutex<HashMap<u32, u64>>>,
}

impl Shard {
    fn imported(&self) -> u64 {
        crate::sync::lock(&self.imported)
            .get(&self.shard)
            .copied()
            .unwrap_or(0)
    }

    fn set_imported(&self, through: u64) {
        crate::sync::lock(&self.imported).insert(self.shard, through);
    }
}

async fn import(
    cluster: &Cluster,
    intake: &Intake,
    triggers: &Triggers,
    this: &Shard,
    mut matched: Matched,
) -> Result<(), ImportError> {
    let (shard, token) = (this.shard, this.token);
    let log = cluster.events();
    let shards = cluster.settings().shards;
    let (checkpoint, revision) = log.checkpoint(shard).await?;
    // Events this process imported before without moving the checkpoint (it lost the lease
    // meanwhile) are not imported again: the claim moves the checkpoint past them.
    let through = checkpoint.max(this.imported());
    let mut revision = log.advance(shard, through, revision).await?;
    let since = SystemTime::now() - LEGACY_HORIZON;
    // The mesh saw what this process imported itself: only what others imported is replayed.
    let seen_here = this.imported();
    let past: Vec<_> = log
        .recent(shard, through, since, WARM_MAX)
        .await?
        .into_iter()
        .filter(|(seq, _)| *seq > seen_here)
        .filter_map(|(seq, payload)| parse(shards, shard, seq, &payload))
        .map(|e| e.event)
        .collect();
    triggers.replay(&past);
    // A task started again for this shard does not offer the mesh the same past twice.
    this.set_imported(seen_here.max(through));
    tracing::info!(
        shard,
        token,
        through,
        replayed = past.len(),
        "importing the shard's events"
    );
    let mut reader = log.reader(shard, through + 1).await?;
    let mut next = through + 1;
    let mut disturbances = cluster.disturbances();
    loop {
        // A reader whose engine node went away may take tens of seconds to notice: after a
        // disturbance, an idle reader is opened again where it was.
        let batch = match tokio::time::timeout(REOPEN_IDLE, reader.next_batch(BATCH)).await {
            Ok(batch) => batch?,
            Err(_) => {
                if cluster.disturbances() != disturbances {
                    disturbances = cluster.disturbances();
                    reader = log.reader(shard, next).await?;
                }
                continue;
            }
        };
        if cluster.owns(shard) != Some(token) {
            tracing::info!(shard, "shard no longer held here: its import stops");
            return Ok(());
        }
        let Some(&(last, _)) = batch.last() else {
            continue;
        };
        let events: Vec<(Origin, SharedEvent)> = batch
            .iter()
            .filter_map(|(seq, payload)| {
                parse(shards, shard, *seq, payload).map(|e| (Origin { shard, seq: *seq }, e))
            })
            .collect();
        let matched_last = events.last().map(|(origin, _)| origin.seq);
        intake.import(events).await?;
        // The checkpoint moves past events once their runs are on the run board: a replica
        // dying before leaves them to the next owner, which finds the runs made already. Until
        // then they do not count as imported here either: a task taking the shard back here
        // imports them again rather than claim the checkpoint past them.
        if let Some(seq) = matched_last {
            wait_matched(&mut matched, shard, seq).await?;
        }
        this.set_imported(this.imported().max(last));
        next = last.saturating_add(1);
        // Storing may have waited for the matcher: the checkpoint moves only under the tenure
        // that read the batch.
        if cluster.owns(shard) != Some(token) {
            tracing::info!(
                shard,
                "shard lost while importing: the checkpoint stays for the next owner"
            );
            return Ok(());
        }
        revision = advance(cluster, shard, last, revision).await?;
    }
}

/// Waits until the matcher made the runs of `shard`'s events through stream sequence `seq`.
/// The matcher may take long (in simulation each firing event waits for its runs), so only a
/// matcher that made no progress on this shard for [`UNMATCHED_AFTER`] is given up on.
async fn wait_matched(matched: &mut Matched, shard: u32, seq: u64) -> Result<(), ImportError> {
    let mut seen = None;
    let mut deadline = tokio::time::Instant::now() + UNMATCHED_AFTER;
    loop {
        let at = matched.borrow_and_update().get(&shard).copied();
        if at.is_some_and(|at| at >= seq) {
            return Ok(());
        }
        if at > seen {
            seen = at;
            deadline = tokio::time::Instant::now() + UNMATCHED_AFTER;
        }
        match tokio::time::timeout_at(deadline, matched.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(
                    crate::intake::IngestError::Cluster("the matcher has stopped".into()).into(),
                );
            }
            Err(_) => return Err(ImportError::Unmatched),
        }
    }
}

/// Moves the checkpoint, retrying while the engine cannot answer and the shard is still held
/// here: the events are stored here already, and giving up would import them twice.
async fn advance(
    cluster: &Cluster,
    shard: u32,
    through: u64,
    revision: u64,
) -> Result<u64, ClusterError> {
    loop {
        match cluster.events().advance(shard, through, revision).await {
            Err(ClusterError::Unavailable { .. }) if cluster.owns(shard).is_some() => {
                tokio::time::sleep(EVERY).await;
            }
            other => return other,
        }
    }
}

/// An event of the log, validated like any event from outside; one GRACE did not write (not
/// an event, or one whose resource belongs to another shard) is skipped and logged.
pub(crate) fn parse(shards: u32, shard: u32, seq: u64, payload: &[u8]) -> Option<SharedEvent> {
    match serde_json::from_slice::<SharedEvent>(payload) {
        Ok(e)
            if e.publisher
                .as_ref()
                .is_some_and(|p| !plausible_publisher(p)) =>
        {
            tracing::warn!(
                shard,
                seq,
                "skipping an event of the cluster's log whose publisher is not a token GRACE names"
            );
            None
        }
        Ok(e) if grace_cluster::shards::shard_of(&e.event.resource, shards) == shard => Some(e),
        Ok(_) => {
            tracing::warn!(
                shard,
                seq,
                "skipping an event of the cluster's log filed under another shard than its resource's"
            );
            None
        }
        Err(e) => {
            tracing::warn!(
                shard,
                seq,
                "skipping an event of the cluster's log GRACE cannot read: {e}"
            );
            None
        }
    }
}

/// A publisher as GRACE records one: a token id and name of bounded, printable text.
fn plausible_publisher(p: &crate::store::Publisher) -> bool {
    let fine = |text: &str, max: usize| {
        !text.is_empty() && text.len() <= max && !text.chars().any(char::is_control)
    };
    fine(&p.token_id, 128) && fine(&p.name, 256)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(resource: &str, publisher: Option<(&str, &str)>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "event": {"event_type": "test.x", "source": "s", "actor": "a", "resource": resource,
                      "payload": {}, "timestamp": 1_000},
            "publisher": publisher.map(|(id, name)| serde_json::json!({"token_id": id, "name": name})),
            "received_at": 5,
        }))
        .unwrap()
    }

    #[test]
    fn an_event_of_the_log_is_checked_like_one_from_outside() {
        let shard = grace_cluster::shards::shard_of("web-1", 8);
        let ok = parse(8, shard, 1, &payload("web-1", Some(("tok_1", "ci")))).unwrap();
        assert_eq!(ok.event.resource, "web-1");
        assert_eq!(ok.received_at, 5);
        assert!(parse(8, shard, 1, &payload("web-1", None)).is_some());
        // Filed under another shard than its resource's, a bad publisher, not an event at all.
        assert!(parse(8, (shard + 1) % 8, 1, &payload("web-1", None)).is_none());
        assert!(
            parse(
                8,
                shard,
                1,
                &payload("web-1", Some(("tok_1", "a\u{1b}[2J")))
            )
            .is_none()
        );
        assert!(parse(8, shard, 1, &payload("web-1", Some(("", "ci")))).is_none());
        assert!(parse(8, shard, 1, b"{\"event\": 1}").is_none());
        assert!(
            parse(8, shard, 1, &payload("", None)).is_none(),
            "an empty resource is refused"
        );
    }
}
