//! A mesh's memory as data ([`MeshCheckpoint`]): hold windows, cooldowns and run numbering,
//! saved so that a restarted server restores them and replays only the events offered since,
//! instead of its whole event log.
//!
//! Dedup keys and exclusivity locks are not saved: they belong to live runs, and a server takes
//! them again ([`Mesh::resume_run`]) for the runs it resumes. The triggers themselves are not
//! saved either: they come from the playbooks loaded at restart, and a window is restored only
//! to the trigger it was opened for (same playbook, same index, same definition), as
//! [`Mesh::set_playbook`] keeps windows only for unchanged triggers.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::mesh::Mesh;
use crate::windows::Span;

/// The format of [`MeshCheckpoint`]; a checkpoint of another format is not restored.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// What a mesh remembers of the events offered to it, as data (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshCheckpoint {
    /// [`CHECKPOINT_FORMAT`] when written.
    pub format: u32,
    /// The triggers that had windows open: windows name them by index into this list.
    pub triggers: Vec<SavedTrigger>,
    /// Open hold windows, least recently updated first (the order eviction follows).
    pub windows: Vec<SavedWindow>,
    /// Cooldowns: (playbook, resource, the time from which it may fire again), sorted.
    pub cooldowns: Vec<(String, String, u64)>,
    /// The latest event timestamp offered.
    pub high_water: u64,
    /// The run number the next fire takes.
    pub next_run: u64,
    /// Events offered.
    pub events: u64,
    /// Decisions made.
    pub decisions: u64,
    /// Decisions that fired.
    pub fired: u64,
}

/// A trigger that had windows open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTrigger {
    /// Its playbook.
    pub playbook: String,
    /// Its index in the playbook's manifest.
    pub index: usize,
    /// Its definition as written out by the mesh: a window is restored only to an equal trigger.
    pub definition: String,
}

/// An open hold window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedWindow {
    /// Index into [`MeshCheckpoint::triggers`].
    pub trigger: usize,
    /// The event resource it is about.
    pub resource: String,
    /// Timestamp of the first true event of the run.
    pub since: u64,
    /// The latest timestamp seen in the run.
    pub latest: u64,
    /// True events in the run.
    pub seen: u32,
}

fn definition(trigger: &grace_model::manifest::Trigger) -> String {
    format!("{trigger:?}")
}

impl Mesh {
    /// The mesh's memory of the events offered so far (see [`MeshCheckpoint`]). Deterministic:
    /// the same playbooks and events give the same checkpoint.
    pub fn checkpoint(&self) -> MeshCheckpoint {
        let mut names: Vec<&String> = self.index.playbooks.keys().collect();
        names.sort();
        let mut triggers = Vec::new();
        let mut windows: Vec<(u64, SavedWindow)> = Vec::new();
        for name in names {
            for slot in &self.index.playbooks[name] {
                let Some((_, table)) = slot.hold else {
                    continue;
                };
                let at = triggers.len();
                let before = windows.len();
                windows.extend(
                    self.state
                        .windows
                        .saved(table)
                        .map(|(resource, span, touched)| {
                            (
                                touched,
                                SavedWindow {
                                    trigger: at,
                                    resource: resource.to_owned(),
                                    since: span.since,
                                    latest: span.latest,
                                    seen: span.seen,
                                },
                            )
                        }),
                );
                if windows.len() > before {
                    triggers.push(SavedTrigger {
                        playbook: slot.playbook.to_string(),
                        index: slot.index,
                        definition: definition(&slot.trigger),
                    });
                }
            }
        }
        windows.sort_by_key(|(touched, _)| *touched);
        let mut cooldowns: Vec<(String, String, u64)> = self
            .state
            .cooldowns
            .iter()
            .flat_map(|(playbook, by_resource)| {
                by_resource
                    .iter()
                    .map(|(resource, until)| (playbook.clone(), resource.clone(), *until))
            })
            .collect();
        cooldowns.sort();
        MeshCheckpoint {
            format: CHECKPOINT_FORMAT,
            triggers,
            windows: windows.into_iter().map(|(_, w)| w).collect(),
            cooldowns,
            high_water: self.state.high_water,
            next_run: self.state.next_run,
            events: self.state.events,
            decisions: self.state.decisions,
            fired: self.state.fired,
        }
    }

    /// Restores a checkpoint into a mesh that has its playbooks loaded and has been offered no
    /// event yet: afterwards, offering the events that came after the checkpoint decides as the
    /// mesh that wrote it would have. Windows of triggers no longer loaded, or changed, are
    /// dropped (their holding starts over, as when a playbook changes). A checkpoint of another
    /// format restores nothing and returns `false`.
    pub fn restore(&mut self, checkpoint: &MeshCheckpoint) -> bool {
        if checkpoint.format != CHECKPOINT_FORMAT {
            return false;
        }
        let mut tables = HashMap::new();
        for (at, saved) in checkpoint.triggers.iter().enumerate() {
            let slot = self
                .index
                .playbooks
                .get(&saved.playbook)
                .and_then(|slots| slots.get(saved.index))
                .filter(|slot| definition(&slot.trigger) == saved.definition);
            if let Some((_, table)) = slot.and_then(|slot| slot.hold) {
                tables.insert(at, table);
            }
        }
        for w in &checkpoint.windows {
            if let Some(table) = tables.get(&w.trigger) {
                let span = Span {
                    since: w.since,
                    latest: w.latest,
                    seen: w.seen,
                };
                self.state.windows.restore(*table, &w.resource, span);
            }
        }
        for (playbook, resource, until) in &checkpoint.cooldowns {
            let by_resource = self.state.cooldowns.entry(playbook.clone()).or_default();
            let slot = by_resource.entry(resource.clone()).or_insert_with(|| {
                self.state.cooldown_entries += 1;
                0
            });
            *slot = (*slot).max(*until);
        }
        let state = &mut self.state;
        state.high_water = state.high_water.max(checkpoint.high_water);
        state.next_run = state.next_run.max(checkpoint.next_run);
        state.events += checkpoint.events;
        state.decisions += checkpoint.decisions;
        state.fired += checkpoint.fired;
        state.prune_cooldowns_if_needed();
        true
    }
}
