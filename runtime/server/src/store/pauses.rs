//! The playbooks the meta-loop paused for a resource (see [`crate::meta`]), durably: a pause
//! survives restarts until a person resumes it.

use redb::{ReadableDatabase, ReadableTable};

use super::tables::PAUSES;
use super::{Store, StoreError, db, decode, encode};
use crate::meta::Pause;

impl Store {
    /// Stores `pause` (replacing one of the same playbook and resource).
    pub fn put_pause(&self, pause: &Pause) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(PAUSES)
            .map_err(db)?
            .insert(
                (pause.playbook.as_str(), pause.resource.as_str()),
                encode(pause)?.as_slice(),
            )
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Removes the pause of `playbook` on `resource`; the pause removed, if there was one.
    pub fn remove_pause(
        &self,
        playbook: &str,
        resource: &str,
    ) -> Result<Option<Pause>, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let removed = tx
            .open_table(PAUSES)
            .map_err(db)?
            .remove((playbook, resource))
            .map_err(db)?
            .map(|v| decode::<Pause>("pause", playbook, v.value()))
            .transpose()?;
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    /// Every pause.
    pub fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(PAUSES).map_err(db)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            out.push(decode("pause", k.value().0, v.value())?);
        }
        Ok(out)
    }
}
