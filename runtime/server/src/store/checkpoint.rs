//! The trigger mesh's checkpoint in the store: the mesh's memory (hold windows, cooldowns, run
//! numbering) after the events through a sequence number, so that a restart replays only the
//! events after it (see [`crate::triggers::Triggers::warm_up`]). The matcher moves it forward
//! in the transaction that marks events matched ([`Store::put_matched`]).

use grace_mesh::MeshCheckpoint;
use redb::{ReadableDatabase, WriteTransaction};

use super::tables::{MESH, MESH_CHECKPOINT, MESH_CHECKPOINT_THROUGH, META, RUN_KEYS_THROUGH};
use super::{Store, StoreError, db, decode, encode};

/// The mesh's memory after the events through `through`.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedCheckpoint {
    /// The last event the checkpoint covers.
    pub through: u64,
    /// The mesh's memory then.
    pub mesh: MeshCheckpoint,
}

/// Writes the checkpoint's body in `tx` (the caller moves [`MESH_CHECKPOINT_THROUGH`] with it).
pub(super) fn write(tx: &WriteTransaction, checkpoint: &MeshCheckpoint) -> Result<(), StoreError> {
    let mut table = tx.open_table(MESH).map_err(db)?;
    table
        .insert(MESH_CHECKPOINT, encode(checkpoint)?.as_slice())
        .map_err(db)?;
    Ok(())
}

impl Store {
    /// The mesh's checkpoint, if one was written.
    pub fn mesh_checkpoint(&self) -> Result<Option<MatchedCheckpoint>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let meta = tx.open_table(META).map_err(db)?;
        let Some(through) = meta.get(MESH_CHECKPOINT_THROUGH).map_err(db)? else {
            return Ok(None);
        };
        let table = tx.open_table(MESH).map_err(db)?;
        let Some(bytes) = table.get(MESH_CHECKPOINT).map_err(db)? else {
            return Ok(None);
        };
        Ok(Some(MatchedCheckpoint {
            through: through.value(),
            mesh: decode("mesh checkpoint", MESH_CHECKPOINT, bytes.value())?,
        }))
    }

    /// The last event the mesh's checkpoint covers (0 without one).
    pub fn mesh_checkpoint_through(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let meta = tx.open_table(META).map_err(db)?;
        Ok(meta
            .get(MESH_CHECKPOINT_THROUGH)
            .map_err(db)?
            .map_or(0, |v| v.value()))
    }

    /// Stores the mesh's memory after the events through `through`, the matched-through mark
    /// (a restart's warm-up, which has just replayed the log up to it).
    pub fn put_mesh_checkpoint(
        &self,
        through: u64,
        checkpoint: &MeshCheckpoint,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut meta = tx.open_table(META).map_err(db)?;
            meta.insert(MESH_CHECKPOINT_THROUGH, through).map_err(db)?;
            write(&tx, checkpoint)?;
        }
        tx.commit().map_err(db)
    }

    /// The largest run key number stored with a run, if the store has recorded it (stores from
    /// before it was recorded have not).
    pub fn run_keys_through(&self) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let meta = tx.open_table(META).map_err(db)?;
        Ok(meta.get(RUN_KEYS_THROUGH).map_err(db)?.map(|v| v.value()))
    }
}
