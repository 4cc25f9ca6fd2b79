//! Durable state of the server, in the data directory's redb database: playbooks and their
//! components, runs, and events (through [`EventLog`]'s group commit).
//!
//! Values are JSON: readable with any redb tool, and tolerant of added fields.

mod checkpoint;
mod events;
pub mod outbox;
mod pauses;
pub mod run_index;
mod settings;
pub mod tables;

use std::sync::Arc;

use grace_ledger::Database;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

pub use checkpoint::MatchedCheckpoint;
pub use events::{EventLog, Publisher, StoredEvent};
pub use settings::StorageSettings;

use crate::runs::{RunRecord, RunState};
use tables::{
    COMPONENTS, EVENTS, MATCHED_THROUGH, MESH, META, PLAYBOOKS, RUN_KEYS_THROUGH, RUNS, SIMULATION,
    SIMULATION_CLOCK, SIMULATION_STATE,
};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb reported an error.
    #[error("storage error: {0}")]
    Db(String),
    /// A stored value could not be read back.
    #[error("stored {what} `{key}` is unreadable: {message}")]
    Corrupt {
        /// Which table.
        what: &'static str,
        /// Which key.
        key: String,
        /// Why.
        message: String,
    },
    /// The writer thread is gone.
    #[error("the event writer has stopped")]
    WriterStopped,
}

fn db<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

/// One uploaded version of a playbook or collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Manifest name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// `playbook` or `collector`.
    pub kind: grace_engine::Kind,
    /// Component digest.
    pub digest: String,
    /// Upload time, milliseconds since the epoch.
    pub uploaded_at: u64,
    /// The manifest text as uploaded.
    pub manifest: String,
    /// Who signed it; `None` for an unsigned upload (allowed only with
    /// `allow_unsigned_playbooks`) and for versions stored before uploads were signed.
    #[serde(default)]
    pub signed_by: Option<crate::signing::SignedBy>,
    /// The signature as uploaded, so that the other replicas of a cluster verify it against
    /// their own trust roots before they install the version; absent for unsigned uploads and
    /// versions stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A name and all its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookRecord {
    /// Name.
    pub name: String,
    /// Whether its triggers are live.
    pub enabled: bool,
    /// The version that runs: the newest upload.
    pub active_version: String,
    /// Every version, oldest first.
    pub versions: Vec<VersionRecord>,
}

impl PlaybookRecord {
    /// The active version.
    pub fn active(&self) -> Option<&VersionRecord> {
        self.versions
            .iter()
            .find(|v| v.version == self.active_version)
    }
}

/// What storing an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new version.
    Created(PlaybookRecord),
    /// The same name, version and digest were already there.
    Unchanged(PlaybookRecord),
    /// The name and version exist with another component or manifest; nothing was stored.
    Conflict {
        /// The digest already stored for that version.
        existing: String,
    },
}

/// Filters for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// Only runs of this playbook.
    pub playbook: Option<String>,
    /// Only runs about this resource.
    pub resource: Option<String>,
    /// At most this many, newest first (0: all of them, newest first).
    pub limit: usize,
    /// Only runs created before this one, by `(created_at, id)`: where the previous page
    /// ended (with a `limit`).
    pub before: Option<(u64, String)>,
}

impl RunFilter {
    /// Whether `run` passes the filter's state, playbook and resource.
    fn keeps(&self, run: &RunRecord) -> bool {
        self.state.is_none_or(|s| run.state == s)
            && self.playbook.as_deref().is_none_or(|p| run.playbook == p)
            && self.resource.as_deref().is_none_or(|r| run.resource == r)
    }
}

/// The server's tables.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

fn decode<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        key: key.to_owned(),
        message: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(db)
}

impl Store {
    /// A store in a fresh temporary directory, for tests: the directory lives as long as the
    /// returned guard.
    #[cfg(test)]
    pub(crate) fn temporary() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = grace_ledger::Database::create(
            dir.path().join("grace.redb"),
            grace_ledger::Recovery::Quick,
        )
        .expect("the database opens");
        let store = Store::open(std::sync::Arc::new(db)).expect("the store opens");
        (dir, store)
    }

    /// The tables in `db`, created if missing.
    pub fn open(database: Arc<Database>) -> Result<Store, StoreError> {
        let tx = database.begin_write().map_err(db_err)?;
        {
            tx.open_table(COMPONENTS).map_err(db)?;
            tx.open_table(PLAYBOOKS).map_err(db)?;
            tx.open_table(RUNS).map_err(db)?;
            tx.open_table(EVENTS).map_err(db)?;
            tx.open_table(META).map_err(db)?;
            tx.open_table(SIMULATION).map_err(db)?;
            tx.open_table(MESH).map_err(db)?;
            tx.open_table(tables::GRAPH).map_err(db)?;
            tx.open_table(tables::UNFINISHED_RUNS).map_err(db)?;
            tx.open_table(tables::RECENT_FAILURES).map_err(db)?;
            tx.open_table(tables::RUNS_BY_CREATED).map_err(db)?;
            tx.open_table(tables::UNJUDGED_RUNS).map_err(db)?;
            tx.open_table(tables::RUN_OUTCOMES).map_err(db)?;
            tx.open_table(tables::PAUSES).map_err(db)?;
            let read = run_index::migrate(&tx, grace_engine::event::system_now_millis())?;
            if read > 0 {
                tracing::info!(
                    runs = read,
                    "indexed the unfinished and recently failed runs once"
                );
            }
        }
        tx.commit().map_err(db)?;
        Ok(Store { db: database })
    }

    // --- playbooks -------------------------------------------------------------------------

    /// Stores a new version and its component. The newest version becomes active; a new name is
    /// enabled.
    pub fn put_version(
        &self,
        version: VersionRecord,
        component: &[u8],
        enabled_if_new: bool,
    ) -> Result<PutOutcome, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let outcome = {
            let mut playbooks = tx.open_table(PLAYBOOKS).map_err(db)?;
            let existing: Option<PlaybookRecord> =
                match playbooks.get(version.name.as_str()).map_err(db)? {
                    Some(v) => Some(decode("playbook", &version.name, v.value())?),
                    None => None,
                };
            let mut record = existing.unwrap_or_else(|| PlaybookRecord {
                name: version.name.clone(),
                enabled: enabled_if_new,
                active_version: version.version.clone(),
                versions: Vec::new(),
            });
            if let Some(same) = record
                .versions
                .iter()
                .find(|v| v.version == version.version)
            {
                // A version is its component and its manifest: a re-upload changing either
                // (grants, triggers) without a new version number is refused, not ignored.
                if same.digest != version.digest || same.manifest != version.manifest {
                    return Ok(PutOutcome::Conflict {
                        existing: same.digest.clone(),
                    });
                }
                return Ok(PutOutcome::Unchanged(record));
            }
            record.active_version = version.version.clone();
            record.versions.push(version.clone());
            playbooks
                .insert(record.name.as_str(), encode(&record)?.as_slice())
                .map_err(db)?;
            let mut components = tx.open_table(COMPONENTS).map_err(db)?;
            if components
                .get(version.digest.as_str())
                .map_err(db)?
                .is_none()
            {
                components
                    .insert(version.digest.as_str(), component)
                    .map_err(db)?;
            }
            PutOutcome::Created(record)
        };
        tx.commit().map_err(db)?;
        Ok(outcome)
    }

    /// Every playbook and collector, by name.
    pub fn playbooks(&self) -> Result<Vec<PlaybookRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(PLAYBOOKS).map_err(db)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            out.push(decode("playbook", k.value(), v.value())?);
        }
        Ok(out)
    }

    /// One playbook by name.
    pub fn playbook(&self, name: &str) -> Result<Option<PlaybookRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(PLAYBOOKS).map_err(db)?;
        match table.get(name).map_err(db)? {
            Some(v) => Ok(Some(decode("playbook", name, v.value())?)),
            None => Ok(None),
        }
    }

    /// Enables or disables a playbook; `None` if there is no such name.
    pub fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<Option<PlaybookRecord>, StoreError> {
        self.update_playbook(name, |record| {
            record.enabled = enabled;
            true
        })
    }

    /// Makes stored version `version` of playbook `name` its active one; `None` when either is
    /// not stored.
    pub fn set_active(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<PlaybookRecord>, StoreError> {
        self.update_playbook(name, |record| {
            let stored = record.versions.iter().any(|v| v.version == version);
            if stored {
                record.active_version = version.to_owned();
            }
            stored
        })
    }

    /// Applies `change` to playbook `name` in one write transaction that reads it first;
    /// `change` answers `false` to leave it (the answer is then `None`, as for no such name).
    fn update_playbook(
        &self,
        name: &str,
        change: impl FnOnce(&mut PlaybookRecord) -> bool,
    ) -> Result<Option<PlaybookRecord>, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let record = {
            let mut table = tx.open_table(PLAYBOOKS).map_err(db)?;
            let current: Option<PlaybookRecord> = match table.get(name).map_err(db)? {
                Some(v) => Some(decode("playbook", name, v.value())?),
                None => None,
            };
            let Some(mut record) = current else {
                return Ok(None);
            };
            if !change(&mut record) {
                return Ok(None);
            }
            table
                .insert(name, encode(&record)?.as_slice())
                .map_err(db)?;
            record
        };
        tx.commit().map_err(db)?;
        Ok(Some(record))
    }

    /// Deletes a playbook and the components no other version uses; `false` if there was none.
    pub fn delete_playbook(&self, name: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut table = tx.open_table(PLAYBOOKS).map_err(db)?;
            let removed: Option<PlaybookRecord> = match table.remove(name).map_err(db)? {
                Some(v) => Some(decode("playbook", name, v.value())?),
                None => None,
            };
            let Some(removed) = removed else {
                return Ok(false);
            };
            let mut still_used = std::collections::HashSet::new();
            for row in table.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                let other: PlaybookRecord = decode("playbook", k.value(), v.value())?;
                still_used.extend(other.versions.into_iter().map(|v| v.digest));
            }
            let mut components = tx.open_table(COMPONENTS).map_err(db)?;
            for v in removed.versions {
                if !still_used.contains(&v.digest) {
                    components.remove(v.digest.as_str()).map_err(db)?;
                }
            }
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    /// A component's bytes by digest.
    pub fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(COMPONENTS).map_err(db)?;
        Ok(table.get(digest).map_err(db)?.map(|v| v.value().to_vec()))
    }

    // --- runs ------------------------------------------------------------------------------

    /// Stores (creates or replaces) a run, durably, with its entry in the index of unfinished
    /// and recently failed runs (see [`run_index`]).
    pub fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.write_run(run, redb::Durability::Immediate)
    }

    /// Stores a run without waiting for the disk: durable with the next durable commit to the
    /// database (the ledger's, the event log's), lost with everything after it on a crash.
    pub fn put_run_unsynced(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.write_run(run, redb::Durability::None)
    }

    fn write_run(&self, run: &RunRecord, durability: redb::Durability) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(db)?;
        tx.set_durability(durability).map_err(db)?;
        {
            let mut table = tx.open_table(RUNS).map_err(db)?;
            table
                .insert(run.id.as_str(), encode(run)?.as_slice())
                .map_err(db)?;
            run_index::index(&tx, run)?;
        }
        tx.commit().map_err(db)
    }

    /// Stores the runs an event batch created and marks the batch matched, in one transaction:
    /// a run is on disk before anyone can see it, and after a crash either both the runs and the
    /// mark are there or the events are matched again.
    ///
    /// A batch that created no runs and moves no checkpoint is committed without waiting for
    /// the disk: losing its mark in a crash only means matching its events again, which is what
    /// a crash just before the commit does anyway, and the next durable commit to the database
    /// (the event log's, the ledger's, a batch with runs or a checkpoint) makes it durable.
    /// Waiting for the disk there would bound matching at one batch per fsync and hold redb's
    /// write lock from the event log meanwhile. A checkpoint is durable, so what a restart
    /// replays stays bounded by `mesh_checkpoint_events` however quiet the server was since.
    /// With `checkpoint` (the
    /// mesh's memory after exactly these events), the mesh's checkpoint moves to this mark in
    /// the same transaction; with `simulation_clock` (in simulation, the clock the batch's events
    /// moved), a restart never takes the clock back before the events it has matched.
    pub fn put_matched(
        &self,
        runs: &[RunRecord],
        matched_through: u64,
        checkpoint: Option<&grace_mesh::MeshCheckpoint>,
        simulation_clock: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(db)?;
        let durability = if runs.is_empty() && checkpoint.is_none() {
            redb::Durability::None
        } else {
            redb::Durability::Immediate
        };
        tx.set_durability(durability).map_err(db)?;
        {
            let mut table = tx.open_table(RUNS).map_err(db)?;
            for run in runs {
                table
                    .insert(run.id.as_str(), encode(run)?.as_slice())
                    .map_err(db)?;
                run_index::index(&tx, run)?;
            }
            let mut meta = tx.open_table(META).map_err(db)?;
            meta.insert(MATCHED_THROUGH, matched_through).map_err(db)?;
            if let Some(clock) = simulation_clock {
                meta.insert(SIMULATION_CLOCK, clock).map_err(db)?;
            }
            if let Some(highest) = runs
                .iter()
                .filter_map(|r| r.key.as_ref().map(|k| k.id()))
                .max()
            {
                let stored = meta
                    .get(RUN_KEYS_THROUGH)
                    .map_err(db)?
                    .map_or(0, |v| v.value());
                meta.insert(RUN_KEYS_THROUGH, highest.max(stored))
                    .map_err(db)?;
            }
            if let Some(checkpoint) = checkpoint {
                meta.insert(tables::MESH_CHECKPOINT_THROUGH, matched_through)
                    .map_err(db)?;
                checkpoint::write(&tx, checkpoint)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Keeps the simulated fleet's state (see [`crate::simulation`]), durably.
    pub fn put_simulation(&self, state: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut table = tx.open_table(SIMULATION).map_err(db)?;
            table.insert(SIMULATION_STATE, state).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// The simulated fleet's clock stored with the last matched batch, if any.
    pub fn simulation_clock(&self) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let meta = tx.open_table(META).map_err(db)?;
        Ok(meta.get(SIMULATION_CLOCK).map_err(db)?.map(|v| v.value()))
    }

    /// Keeps the health graph's snapshot (JSON), replacing the last.
    pub fn save_graph(&self, snapshot: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut table = tx.open_table(tables::GRAPH).map_err(db)?;
            table.insert(tables::GRAPH_SNAPSHOT, snapshot).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// The health graph's snapshot kept last, if any.
    pub fn graph(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(tables::GRAPH).map_err(db)?;
        Ok(table
            .get(tables::GRAPH_SNAPSHOT)
            .map_err(db)?
            .map(|v| v.value().to_vec()))
    }

    /// The simulated fleet's state kept last, if any.
    pub fn simulation(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(SIMULATION).map_err(db)?;
        Ok(table
            .get(SIMULATION_STATE)
            .map_err(db)?
            .map(|v| v.value().to_vec()))
    }

    /// The last event whose matching is stored.
    pub fn matched_through(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let meta = tx.open_table(META).map_err(db)?;
        Ok(meta
            .get(MATCHED_THROUGH)
            .map_err(db)?
            .map_or(0, |v| v.value()))
    }

    /// One run.
    pub fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(RUNS).map_err(db)?;
        match table.get(id).map_err(db)? {
            Some(v) => Ok(Some(decode("run", id, v.value())?)),
            None => Ok(None),
        }
    }

    /// Runs matching `filter`, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        if filter.limit > 0 {
            return self.newest_runs(filter);
        }
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(RUNS).map_err(db)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            let run: RunRecord = decode("run", k.value(), v.value())?;
            if filter.keeps(&run) {
                out.push(run);
            }
        }
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        Ok(out)
    }

    /// The newest `filter.limit` runs that `filter` keeps, read from the end of the index by
    /// creation time: a listing costs what it returns (plus the runs it skips), not every run
    /// ever stored.
    fn newest_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let index = tx.open_table(tables::RUNS_BY_CREATED).map_err(db)?;
        let runs = tx.open_table(RUNS).map_err(db)?;
        let mut out = Vec::new();
        let rows = match &filter.before {
            Some((at, id)) => index.range(..(*at, id.as_str())).map_err(db)?,
            None => index.iter().map_err(db)?,
        };
        for row in rows.rev() {
            let (k, state) = row.map_err(db)?;
            let (created_at, id) = k.value();
            // The index holds each run's current state: runs in another one are skipped
            // without being read.
            if filter.state.is_some_and(|s| s.name() != state.value()) {
                continue;
            }
            let Some(v) = runs.get(id).map_err(db)? else {
                // Written in the run's own transaction, so never apart.
                return Err(StoreError::Corrupt {
                    what: "runs by creation index",
                    key: id.to_owned(),
                    message: "the run is not stored".to_owned(),
                });
            };
            let run: RunRecord = decode("run", id, v.value())?;
            // A run is indexed under the creation time it was first written with; were it ever
            // rewritten with another, only the entry matching the record lists it.
            if run.created_at == created_at && filter.keeps(&run) {
                out.push(run);
                if out.len() == filter.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    // --- events ----------------------------------------------------------------------------

    /// Stored events from `from` on, oldest first.
    pub fn events(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(EVENTS).map_err(db)?;
        let mut out = Vec::new();
        for row in table.range(from..).map_err(db)?.take(limit) {
            let (k, v) = row.map_err(db)?;
            out.push(decode("event", &k.value().to_string(), v.value())?);
        }
        Ok(out)
    }

    /// The newest stored events, newest first: at most `limit` of them, and no more once
    /// `max_bytes` of stored JSON were read.
    pub fn recent_events(
        &self,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(EVENTS).map_err(db)?;
        let mut out = Vec::new();
        let mut read = 0usize;
        for row in table.range(0..).map_err(db)?.rev().take(limit) {
            let (k, v) = row.map_err(db)?;
            read = read.saturating_add(v.value().len());
            if read > max_bytes && !out.is_empty() {
                break;
            }
            out.push(decode("event", &k.value().to_string(), v.value())?);
        }
        Ok(out)
    }

    /// Deletes events received before `before_millis` that are already matched, at most
    /// `max` of them in one transaction (so the event writer is not held up); returns how many.
    pub fn prune_events(&self, before_millis: u64, max: usize) -> Result<usize, StoreError> {
        let matched = self.matched_through()?;
        let tx = self.db.begin_write().map_err(db)?;
        let removed = {
            let mut table = tx.open_table(EVENTS).map_err(db)?;
            let mut old = Vec::new();
            for row in table.range(..=matched).map_err(db)?.take(max) {
                let (k, v) = row.map_err(db)?;
                let event: StoredEvent = decode("event", &k.value().to_string(), v.value())?;
                if event.received_at >= before_millis {
                    break;
                }
                old.push(k.value());
            }
            for seq in &old {
                table.remove(*seq).map_err(db)?;
            }
            old.len()
        };
        tx.commit().map_err(db)?;
        Ok(removed)
    }
}

fn db_err(e: redb::TransactionError) -> StoreError {
    db(e)
}
