//! The indexes of runs: the unfinished ones (to mark interrupted, or to go on after an
//! approval) and the recent failures (which weigh on the trust core's risk), so that starting
//! the server does not read every run ever stored; and every run by creation time, so that
//! listing the newest runs does not either; and how many runs are in each state, so that
//! `/metrics` does not either.
//!
//! The index is written in the same write transaction as the run ([`index`]), never
//! separately: a crash cannot leave a run and its index entry disagreeing. A data directory
//! written before an index has an older [`RUN_INDEX_VERSION`] (or none): [`migrate`] builds
//! what is missing once from a full scan, in the transaction that records the version, so it is
//! not repeated.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle, WriteTransaction};

use super::tables::{
    META, RECENT_FAILURES, RUN_COUNT_PREFIX, RUN_INDEX_VERSION, RUN_OUTCOMES, RUNS,
    RUNS_BY_CREATED, UNFINISHED_RUNS, UNFINISHED_RUNS_BY_ID, UNJUDGED_RUNS,
};
use super::{Store, StoreError, db, decode};
use crate::runs::{RunRecord, RunState};

/// How long a failure counts towards a playbook's risk (see
/// [`crate::trust::HostTrust::run_failed`]): older ones are dropped from the index.
pub const RECENT_FAILURES_MS: u64 = 24 * 3600 * 1000;

/// The indexes' layout version, recorded under [`RUN_INDEX_VERSION`]: 1 has the unfinished
/// runs and the recent failures, 2 adds the runs by creation time, 3 keys the unfinished runs
/// by state. A directory at an older version has its indexes rebuilt once from every run.
const VERSION: u64 = 3;

/// At most this many expired failures are pruned per write, so one write is never held up by
/// a long backlog; each failure written prunes more than it adds, so the table stays bounded.
const PRUNE_PER_WRITE: usize = 16;

/// Updates the index for `run`, in the transaction that writes it.
pub(super) fn index(tx: &WriteTransaction, run: &RunRecord) -> Result<(), StoreError> {
    let previous = tx
        .open_table(RUNS_BY_CREATED)
        .map_err(db)?
        .insert((run.created_at, run.id.as_str()), run.state.name())
        .map_err(db)?
        .map(|state| RunState::parse(state.value()));
    let mut unfinished = tx.open_table(UNFINISHED_RUNS).map_err(db)?;
    if let Some(Some(from)) = previous
        && from != run.state
        && !from.is_final()
    {
        unfinished
            .remove((from.name(), run.id.as_str()))
            .map_err(db)?;
    }
    if !run.state.is_final() {
        unfinished
            .insert((run.state.name(), run.id.as_str()), ())
            .map_err(db)?;
    }
    match previous {
        Some(Some(from)) if from == run.state => {}
        Some(Some(from)) => {
            count(tx, from, -1)?;
            count(tx, run.state, 1)?;
            super::outbox::record(tx, run, Some(from))?;
        }
        None => {
            count(tx, run.state, 1)?;
            super::outbox::record(tx, run, None)?;
        }
        Some(None) => {
            return Err(StoreError::Corrupt {
                what: "runs by creation index",
                key: run.id.clone(),
                message: "the state on record is not a run state".to_owned(),
            });
        }
    }
    let mut unjudged = tx.open_table(UNJUDGED_RUNS).map_err(db)?;
    match &run.recovery {
        None => {
            unjudged.insert(run.id.as_str(), ()).map_err(db)?;
        }
        Some(recovery) => {
            unjudged.remove(run.id.as_str()).map_err(db)?;
            if let Some(judged) = crate::outcomes::learning::Judged::of(run, recovery) {
                keep_outcome(tx, run, &judged)?;
            }
        }
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

/// Adds a judged run's outcome to [`RUN_OUTCOMES`], and prunes its playbook and resource's
/// oldest beyond [`crate::outcomes::learning::KEPT`].
fn keep_outcome(
    tx: &WriteTransaction,
    run: &RunRecord,
    judged: &crate::outcomes::learning::Judged,
) -> Result<(), StoreError> {
    let mut table = tx.open_table(RUN_OUTCOMES).map_err(db)?;
    let (playbook, resource) = (run.playbook.as_str(), run.resource.as_str());
    table
        .insert(
            (playbook, resource, run.created_at, run.id.as_str()),
            super::encode(judged)?.as_slice(),
        )
        .map_err(db)?;
    let range = (playbook, resource, 0, "")..=(playbook, resource, u64::MAX, "\u{10ffff}");
    let kept = table.range(range.clone()).map_err(db)?.count();
    let excess = kept.saturating_sub(crate::outcomes::learning::KEPT);
    if excess > 0 {
        let oldest: Vec<(u64, String)> = table
            .range(range)
            .map_err(db)?
            .take(excess)
            .map(|row| row.map(|(k, _)| (k.value().2, k.value().3.to_owned())))
            .collect::<Result<_, _>>()
            .map_err(db)?;
        for (at, id) in &oldest {
            table
                .remove((playbook, resource, *at, id.as_str()))
                .map_err(db)?;
        }
    }
    Ok(())
}

/// Where the count of runs in `state` is kept, under [`META`].
fn count_key(state: RunState) -> String {
    format!("{RUN_COUNT_PREFIX}{}", state.name())
}

/// The count of runs in each state, as `meta` (the [`META`] table, in any transaction) holds
/// them.
fn counts(
    meta: &impl ReadableTable<&'static str, u64>,
) -> Result<Vec<(RunState, u64)>, StoreError> {
    RunState::ALL
        .into_iter()
        .map(|state| {
            let n = meta
                .get(count_key(state).as_str())
                .map_err(db)?
                .map_or(0, |v| v.value());
            Ok((state, n))
        })
        .collect()
}

/// Adds `by` to the count of runs in `state`.
fn count(tx: &WriteTransaction, state: RunState, by: i64) -> Result<(), StoreError> {
    let mut meta = tx.open_table(META).map_err(db)?;
    let key = count_key(state);
    let now = meta.get(key.as_str()).map_err(db)?.map_or(0, |v| v.value());
    meta.insert(key.as_str(), now.saturating_add_signed(by))
        .map_err(db)?;
    Ok(())
}

/// The sum of the counts of runs by state.
fn counted(tx: &WriteTransaction) -> Result<u64, StoreError> {
    let meta = tx.open_table(META).map_err(db)?;
    Ok(counts(&meta)?
        .into_iter()
        .fold(0u64, |sum, (_, n)| sum.saturating_add(n)))
}

/// Builds the indexes from every run if this data directory was written before them, or before
/// their current layout ([`VERSION`]); returns how many runs were read (0 when the indexes
/// were already there).
pub(super) fn migrate(tx: &WriteTransaction, now: u64) -> Result<usize, StoreError> {
    let version = tx
        .open_table(META)
        .map_err(db)?
        .get(RUN_INDEX_VERSION)
        .map_err(db)?
        .map(|v| v.value());
    // The unfinished runs by id are what an older server (index version 2 or before) keeps: if
    // one ran here since this layout was built, it recreated them and left this index stale.
    let older_server_since = tx
        .list_tables()
        .map_err(db)?
        .any(|t| t.name() == UNFINISHED_RUNS_BY_ID.name());
    if version.is_some_and(|v| v >= VERSION) && !older_server_since {
        // Every run is counted once, so the counts add up to the runs stored, unless something
        // wrote runs without the index (a server older than the counts run on this directory
        // since): then the indexes are rebuilt from scratch rather than trusted.
        let stored = tx.open_table(RUNS).map_err(db)?.len().map_err(db)?;
        let counted = counted(tx)?;
        if stored == counted {
            return Ok(0);
        }
        tracing::warn!(
            stored,
            counted,
            "the run indexes disagree with the runs stored (an older server wrote here?): rebuilding them"
        );
    }
    // From scratch: whatever an older layout or an older server left is not trusted.
    tx.delete_table(UNFINISHED_RUNS_BY_ID).map_err(db)?;
    tx.delete_table(UNFINISHED_RUNS).map_err(db)?;
    tx.delete_table(RECENT_FAILURES).map_err(db)?;
    tx.delete_table(RUNS_BY_CREATED).map_err(db)?;
    let mut counts = [0u64; RunState::ALL.len()];
    let runs = tx.open_table(RUNS).map_err(db)?;
    let mut unfinished = tx.open_table(UNFINISHED_RUNS).map_err(db)?;
    let mut failures = tx.open_table(RECENT_FAILURES).map_err(db)?;
    let mut by_created = tx.open_table(RUNS_BY_CREATED).map_err(db)?;
    let cutoff = now.saturating_sub(RECENT_FAILURES_MS);
    let mut read = 0;
    for row in runs.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        let run: RunRecord = decode("run", k.value(), v.value())?;
        read += 1;
        by_created
            .insert((run.created_at, run.id.as_str()), run.state.name())
            .map_err(db)?;
        if let Some(i) = RunState::ALL.iter().position(|s| *s == run.state) {
            counts[i] += 1;
        }
        if !run.state.is_final() {
            unfinished
                .insert((run.state.name(), run.id.as_str()), ())
                .map_err(db)?;
        }
        if run.state == RunState::Failed
            && let Some(at) = run.finished_at.filter(|t| *t >= cutoff)
        {
            failures
                .insert((at, run.id.as_str()), run.playbook.as_str())
                .map_err(db)?;
        }
    }
    let mut meta = tx.open_table(META).map_err(db)?;
    for (state, n) in RunState::ALL.into_iter().zip(counts) {
        meta.insert(count_key(state).as_str(), n).map_err(db)?;
    }
    meta.insert(RUN_INDEX_VERSION, VERSION).map_err(db)?;
    Ok(read)
}

impl Store {
    /// The runs in these states (none of them final), through the index: what a restart marks
    /// interrupted (queued, running) or continues after an approval (waiting). Reads only the
    /// runs in `states`, however many runs are in the others; a run whose stored state is not
    /// the indexed one (a stale entry, which no write of this server leaves) is skipped.
    pub fn unfinished_runs(&self, states: &[RunState]) -> Result<Vec<RunRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let index = tx.open_table(UNFINISHED_RUNS).map_err(db)?;
        let runs = tx.open_table(RUNS).map_err(db)?;
        let mut out = Vec::new();
        for state in states {
            let name = state.name();
            for row in index.range((name, "")..).map_err(db)? {
                let (k, _) = row.map_err(db)?;
                let (in_state, id) = k.value();
                if in_state != name {
                    break;
                }
                match runs.get(id).map_err(db)? {
                    Some(v) => {
                        let run: RunRecord = decode("run", id, v.value())?;
                        // Never written apart, but a restart acts on what the run says, not
                        // on the index: a run finished behind its back is left alone.
                        if run.state == *state {
                            out.push(run);
                        } else {
                            tracing::warn!(run = %id, indexed = name, state = run.state.name(), "the unfinished run index is stale for this run: skipped");
                        }
                    }
                    // Written together, so never apart: a missing run is corruption, said
                    // loudly rather than skipped.
                    None => {
                        return Err(StoreError::Corrupt {
                            what: "unfinished run index",
                            key: id.to_owned(),
                            message: "the run is not stored".to_owned(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every judged outcome kept (see [`crate::outcomes::learning`]): by playbook and resource,
    /// oldest first.
    pub fn run_outcomes(
        &self,
    ) -> Result<
        Vec<(
            crate::outcomes::learning::PairKey,
            crate::outcomes::learning::Judged,
        )>,
        StoreError,
    > {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(RUN_OUTCOMES).map_err(db)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            let (playbook, resource, _, id) = k.value();
            out.push((
                (playbook.to_owned(), resource.to_owned()),
                decode("run outcome", id, v.value())?,
            ));
        }
        Ok(out)
    }

    /// The runs not yet judged (see [`crate::outcomes`]), through the index.
    pub fn unjudged_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let index = tx.open_table(UNJUDGED_RUNS).map_err(db)?;
        let runs = tx.open_table(RUNS).map_err(db)?;
        let mut out = Vec::new();
        for row in index.iter().map_err(db)? {
            let (k, _) = row.map_err(db)?;
            let id = k.value();
            if let Some(v) = runs.get(id).map_err(db)? {
                let run: RunRecord = decode("run", id, v.value())?;
                if run.recovery.is_none() {
                    out.push(run);
                }
            }
        }
        Ok(out)
    }

    /// Stores the recovery `judge` makes of run `id`, read and written in one transaction so
    /// that nothing else the run's record holds is overwritten. `Some(true)`: judged now;
    /// `Some(false)`: `judge` says it is too early (the run is not over, or its window is
    /// open); `None`: no such run, or judged before. Only a judgement is committed.
    pub fn judge_run(
        &self,
        id: &str,
        judge: impl FnOnce(&RunRecord) -> Option<crate::outcomes::Recovery>,
    ) -> Result<Option<bool>, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let judged = {
            let mut table = tx.open_table(RUNS).map_err(db)?;
            let run = match table.get(id).map_err(db)? {
                Some(v) => Some(decode::<RunRecord>("run", id, v.value())?),
                None => None,
            };
            let Some(run) = run else {
                drop(table);
                tx.abort().map_err(db)?;
                return Ok(None);
            };
            if run.recovery.is_some() {
                None
            } else if let Some(recovery) = judge(&run) {
                let mut run = run;
                run.recovery = Some(recovery);
                table
                    .insert(id, super::encode(&run)?.as_slice())
                    .map_err(db)?;
                index(&tx, &run)?;
                Some(true)
            } else {
                Some(false)
            }
        };
        // Nothing written: no commit (a commit waits for the disk even when empty).
        if judged == Some(true) {
            tx.commit().map_err(db)?;
        } else {
            tx.abort().map_err(db)?;
        }
        Ok(judged)
    }

    /// How many runs are in each state, from the counts kept with every write.
    pub fn run_counts(&self) -> Result<Vec<(RunState, u64)>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        counts(&tx.open_table(META).map_err(db)?)
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
