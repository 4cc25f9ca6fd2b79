//! The trigger mesh as the server shares it: the enabled playbooks' triggers (set by the
//! [registry](crate::registry)) and the exclusivity claims runs hold (taken and released by
//! the [scheduler](crate::scheduler)).
//!
//! One lock guards the mesh and the table of which run holds which claim, so that a claim and
//! its owner are always recorded together.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use grace_engine::TriggerEvent;
use grace_engine::event::system_now_millis;
use grace_mesh::{Decision, Mesh, MeshCheckpoint, PlaybookTriggers, RunKey, Suppression};

use crate::store::{RunFilter, Store, StoreError};
use crate::sync::lock;

#[derive(Default)]
struct Inner {
    mesh: Mesh,
    /// The claim (exclusivity locks, dedup key) each live run holds, by run id.
    held: HashMap<String, RunKey>,
}

/// The shared trigger mesh and its claims.
#[derive(Default)]
pub struct Triggers {
    inner: Mutex<Inner>,
}

impl Triggers {
    /// Puts (or replaces) a playbook's triggers.
    pub fn set_playbook(&self, triggers: PlaybookTriggers) {
        lock(&self.inner).mesh.set_playbook(triggers);
    }

    /// Removes a playbook's triggers.
    pub fn remove_playbook(&self, name: &str) {
        lock(&self.inner).mesh.remove_playbook(name);
    }

    /// Offers an event: its decisions go to `decisions`; returns how many triggers' conditions
    /// were false.
    pub fn offer_counting(
        &self,
        event: &TriggerEvent,
        graph: Option<&serde_json::Value>,
        decisions: &mut Vec<Decision>,
    ) -> u64 {
        lock(&self.inner)
            .mesh
            .offer_counting(event, graph, decisions)
    }

    /// Records that run `id` holds `key` (fired for it by the mesh).
    pub fn hold(&self, id: &str, key: RunKey) {
        lock(&self.inner).held.insert(id.to_owned(), key);
    }

    /// Whether run `id` holds its claim.
    pub fn holds(&self, id: &str) -> bool {
        lock(&self.inner).held.contains_key(id)
    }

    /// Lets a claim the mesh fired go without a run (its playbook went away meanwhile).
    pub fn abandon(&self, key: &RunKey) {
        lock(&self.inner).mesh.run_finished(key);
    }

    /// Takes `key` again for run `id` (a resumed run, or one going on after an approval once
    /// the server restarted); refused while another run holds one of its locks.
    pub fn resume(&self, id: &str, key: &RunKey) -> Result<(), Suppression> {
        let mut inner = lock(&self.inner);
        inner.mesh.resume_run(key)?;
        inner.held.insert(id.to_owned(), key.clone());
        Ok(())
    }

    /// Takes `key`, fired by another replica's mesh, for run `id` taken over from it; answers
    /// the key as this mesh holds it. Refused while a run here holds one of its locks.
    pub fn adopt(&self, id: &str, key: &RunKey) -> Result<RunKey, Suppression> {
        let mut inner = lock(&self.inner);
        let adopted = inner.mesh.adopt_run(key)?;
        inner.held.insert(id.to_owned(), adopted.clone());
        Ok(adopted)
    }

    /// Releases whatever run `id` holds (its run ended).
    pub fn release(&self, id: &str) {
        let mut inner = lock(&self.inner);
        if let Some(key) = inner.held.remove(id) {
            inner.mesh.run_finished(&key);
        }
    }

    /// Offers events matched before, elsewhere, so the mesh remembers them (windows, dedup,
    /// cooldowns) without firing: a shard taken over from another replica in a cluster. Runs
    /// they would fire were fired by the replica that matched them.
    pub fn replay(&self, events: &[TriggerEvent]) {
        let mut inner = lock(&self.inner);
        for event in events {
            for decision in inner.mesh.offer(event) {
                if let Decision::Fire { run, .. } = decision {
                    inner.mesh.run_finished(&run);
                }
            }
        }
    }

    /// The mesh's memory of the events offered so far, for the store's checkpoint.
    pub fn checkpoint(&self) -> MeshCheckpoint {
        lock(&self.inner).mesh.checkpoint()
    }

    /// Rebuilds the mesh's memory (hold windows, cooldowns, run numbering) as it was after the
    /// events matched before the restart, so that a restart neither forgets a cooldown nor
    /// restarts a window: from the store's checkpoint, then the events matched after it (at
    /// most `mesh_checkpoint_events`, however long the log). Runs
    /// those events fired are over (or interrupted): their claims are released at once.
    ///
    /// Without a usable checkpoint (a store from before checkpoints, or one unreadable), the
    /// matched events of the last [`LEGACY_HORIZON`] are replayed, as before checkpoints, and a
    /// checkpoint is written at once so that the next restart need not.
    pub fn warm_up(&self, store: &Store) -> Result<WarmUp, StoreError> {
        let matched = store.matched_through()?;
        let checkpoint = match store.mesh_checkpoint() {
            Ok(c) => c.filter(|c| c.through <= matched),
            Err(e) => {
                tracing::warn!(
                    "the trigger mesh's checkpoint is unusable, replaying the event log instead: {e}"
                );
                None
            }
        };
        let mut inner = lock(&self.inner);
        let restored = checkpoint
            .as_ref()
            .filter(|c| inner.mesh.restore(&c.mesh))
            .map(|c| c.through);
        let highest_id = match store.run_keys_through()? {
            Some(id) => id,
            None => store
                .runs(&RunFilter::default())?
                .iter()
                .filter_map(|r| r.key.as_ref().map(|k| k.id()))
                .max()
                .unwrap_or(0),
        };
        inner.mesh.continue_ids_after(highest_id);
        let since = match restored {
            Some(_) => 0,
            None => system_now_millis()
                .saturating_sub(u64::try_from(LEGACY_HORIZON.as_millis()).unwrap_or(0)),
        };
        // Without a checkpoint, the newest events are the ones the mesh must remember (open
        // windows, cooldowns): past `MAX_REPLAY`, the oldest are left out, not the newest. With
        // one, the tail is shorter than `MAX_REPLAY` (`mesh_checkpoint_events` is bounded well
        // below it), so nothing after the checkpoint is left out.
        let mut from = restored.map_or_else(
            || matched.saturating_sub(MAX_REPLAY - 1).max(1),
            |through| through.saturating_add(1),
        );
        let mut replayed = 0;
        while from <= matched && replayed < MAX_REPLAY {
            let chunk = store.events(from, 10_000)?;
            let Some(last) = chunk.last() else { break };
            from = last.seq + 1;
            for e in chunk
                .into_iter()
                .filter(|e| e.seq <= matched && e.received_at >= since)
            {
                for decision in inner.mesh.offer_with(&e.event, e.graph.as_ref()) {
                    if let Decision::Fire { run, .. } = decision {
                        inner.mesh.run_finished(&run);
                    }
                }
                replayed += 1;
            }
        }
        let written = if restored.is_none() || replayed > 0 {
            let checkpoint = inner.mesh.checkpoint();
            drop(inner);
            store.put_mesh_checkpoint(matched, &checkpoint)?;
            true
        } else {
            false
        };
        tracing::info!(
            checkpoint = ?restored,
            events = replayed,
            matched,
            "trigger windows and cooldowns restored{}",
            if written { "; checkpoint written" } else { "" }
        );
        Ok(WarmUp {
            checkpoint: restored,
            replayed,
        })
    }
}

/// What [`Triggers::warm_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmUp {
    /// The last event of the checkpoint restored, if one was.
    pub checkpoint: Option<u64>,
    /// Events offered to the mesh after it.
    pub replayed: u64,
}

/// Without a checkpoint, how far back the warm-up replays.
pub const LEGACY_HORIZON: Duration = Duration::from_secs(24 * 3600);
/// Most events one warm-up replays (see `MAX_MESH_CHECKPOINT_EVENTS`).
const MAX_REPLAY: u64 = 1_000_000;

/// The largest `mesh_checkpoint_events` allowed: a tail of at most this many events plus one
/// matched batch stays far below [`MAX_REPLAY`], so a warm-up from a checkpoint always replays
/// its whole tail.
pub const MAX_MESH_CHECKPOINT_EVENTS: usize = 100_000;
