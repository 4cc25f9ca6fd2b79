//! The index of runs a restart needs: the unfinished ones (to mark interrupted, or to go on
//! after an approval) and the recent failures (which weigh on the trust core's risk), so that
//! starting the server does not read every run ever stored.
//!
//! The index is written in the same write transaction as the run ([`index`]), never
//! separately: a crash cannot leave a run and its index entry disagreeing. A data directory
//! written before the index has no [`RUN_INDEX_VERSION`]: [`migrate`] builds the index once
//! from a full scan, in the transaction that records the version, so it is not repeated.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::tables::{META, RECENT_FAILURES, RUN_INDEX_VERSION, RUNS, UNFINISHED_RUNS};
use super::{Store, StoreError, db, decode};
use crate::runs::{RunRecord, RunState};

/// How long a failure counts towards a playbook's risk (see
/// [`crate::trust::HostTrust::run_failed`]): older ones are dropped from the index.
pub const RECENT_FAILURES_MS: u64 = 24 * 3600 * 1000;

/// The index's layout version, recorded under [`RUN_INDEX_VERSION`].
const VERSION: u64 = 1;

/// At most this many expired failures are pruned per write, so one write is never held up by
/// a long backlog; each failure written prunes more than it adds, so the table stays bounded.
const PRUNE_PER_WRITE: usize = 16;

/// Updates the index for `run`, in the transaction that writes it.
pub(super) fn index(tx: &WriteTransaction, run: &RunRecord) -> Result<(), StoreError> {
    let mut unfinished = tx.open_table(UNFINISHED_RUNS).map_err(db)?;
    if run.state.is_final() {
        unfinished.remove(run.id.as_str()).map_err(db)?;
    } else {
        unfinished.insert(run.id.as_str(), ()).map_err(db)?;
    }
    if run.state == RunState::Failed
        && let Some(at) = run.finished_at
    {
        let mut failures = tx.open_table(RECENT_FAILURES).map_err(db)?;
        failures
            .insert((at, run.id.as_str()), run.playbook.as_str())
            .map_err(db)?;
        let cutoff = at.saturating_sub(RECENT_FAILURES_MS);
        let expired: Vec<(u64, String)> = failures
            .range(..(cutoff, ""))
            .map_err(db)?
            .take(PRUNE_PER_WRITE)
            .map(|row| row.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
            .collect::<Result<_, _>>()
            .map_err(db)?;
        for (t, id) in &expired {
            failures.remove((*t, id.as_str())).map_err(db)?;
        }
    }
    Ok(())
}

/// Builds the index from every run if this data directory was written before it; returns how
/// many runs were read (0 when the index was already there).
pub(super) fn migrate(tx: &WriteTransaction, now: u64) -> Result<usize, StoreError> {
    let mut meta = tx.open_table(META).map_err(db)?;
    if meta.get(RUN_INDEX_VERSION).map_err(db)?.is_some() {
        return Ok(0);
    }
    let runs = tx.open_table(RUNS).map_err(db)?;
    let mut unfinished = tx.open_table(UNFINISHED_RUNS).map_err(db)?;
    let mut failures = tx.open_table(RECENT_FAILURES).map_err(db)?;
    let cutoff = now.saturating_sub(RECENT_FAILURES_MS);
    let mut read = 0;
    for row in runs.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        let run: RunRecord = decode("run", k.value(), v.value())?;
        read += 1;
        if !run.state.is_final() {
            unfinished.insert(run.id.as_str(), ()).map_err(db)?;
        }
        if run.state == RunState::Failed
            && let Some(at) = run.finished_at.filter(|t| *t >= cutoff)
        {
            failures
                .insert((at, run.id.as_str()), run.playbook.as_str())
                .map_err(db)?;
        }
    }
    meta.insert(RUN_INDEX_VERSION, VERSION).map_err(db)?;
    Ok(read)
}

impl Store {
    /// Every run not yet final, through the index: what a restart resumes, marks interrupted
    /// or continues after an approval.
    pub fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let index = tx.open_table(UNFINISHED_RUNS).map_err(db)?;
        let runs = tx.open_table(RUNS).map_err(db)?;
        let mut out = Vec::new();
        for row in index.iter().map_err(db)? {
            let (k, _) = row.map_err(db)?;
            let id = k.value();
            match runs.get(id).map_err(db)? {
                Some(v) => out.push(decode("run", id, v.value())?),
                // Written together, so never apart: a missing run is corruption, said loudly
                // rather than skipped.
                None => {
                    return Err(StoreError::Corrupt {
                        what: "unfinished run index",
                        key: id.to_owned(),
                        message: "the run is not stored".to_owned(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Failed runs that finished at or after `since` (wall clock, ms), oldest first: the
    /// playbook and the finish time of each.
    pub fn failures_since(&self, since: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(RECENT_FAILURES).map_err(db)?;
        let mut out = Vec::new();
        for row in table.range((since, "")..).map_err(db)? {
            let (k, v) = row.map_err(db)?;
            out.push((v.value().to_owned(), k.value().0));
        }
        Ok(out)
    }
}
