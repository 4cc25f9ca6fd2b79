//! The change history guardrails count from (`max_changes_per_hour`): every executed change,
//! per resource, persisted in redb so that a restart does not reset the count, and mirrored in
//! memory so that a decision reads no database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use redb::{ReadableDatabase, ReadableTable};

use crate::action::ResourceKind;
use crate::error::TrustError;
use crate::request::Resource;
use crate::tables::CHANGES;
use crate::utc::HOUR_MS;

/// How far back changes are kept: the longest window a guardrail counts over.
const RETENTION_MS: u64 = HOUR_MS;

/// Recent changes of each resource, oldest first, by kind ([`ResourceKind::ALL`] order) and id.
type Recent = [HashMap<String, VecDeque<u64>>; ResourceKind::ALL.len()];

/// Changes recorded per resource.
pub(crate) struct ChangeHistory {
    db: Arc<grace_ledger::Database>,
    recent: Mutex<Recent>,
}

fn kind_index(kind: ResourceKind) -> usize {
    kind as usize
}

impl ChangeHistory {
    /// Opens the history in `db`, creating its table if needed and loading the recent rows.
    pub fn open(db: Arc<grace_ledger::Database>) -> Result<Self, TrustError> {
        let txn = db
            .begin_write()
            .map_err(|e| TrustError::storage("open the change history", e))?;
        txn.open_table(CHANGES)
            .map_err(|e| TrustError::storage("open the change history", e))?;
        txn.commit()
            .map_err(|e| TrustError::storage("open the change history", e))?;
        let mut recent: Recent = Default::default();
        let read = db
            .begin_read()
            .map_err(|e| TrustError::storage("read the change history", e))?;
        let table = read
            .open_table(CHANGES)
            .map_err(|e| TrustError::storage("read the change history", e))?;
        let rows = table
            .iter()
            .map_err(|e| TrustError::storage("read the change history", e))?;
        for row in rows {
            let (key, count) =
                row.map_err(|e| TrustError::storage("read the change history", e))?;
            let (kind, id, at) = key.value();
            let Some(kind) = ResourceKind::ALL.iter().find(|k| k.name() == kind) else {
                return Err(TrustError::Corrupt {
                    what: format!("change of `{kind}/{id}`"),
                    message: format!("`{kind}` is not a resource kind"),
                });
            };
            let times = recent[kind_index(*kind)].entry(id.to_owned()).or_default();
            for _ in 0..count.value() {
                times.push_back(at);
            }
        }
        for times in recent.iter_mut().flat_map(HashMap::values_mut) {
            times.make_contiguous().sort_unstable();
            if let Some(&newest) = times.back() {
                times.retain(|&t| t + RETENTION_MS > newest);
            }
        }
        Ok(ChangeHistory {
            db,
            recent: Mutex::new(recent),
        })
    }

    /// How many changes of `resource` were recorded in the hour up to `at_millis`
    /// (`(at - 1h, at]`).
    pub fn count_last_hour(&self, resource: &Resource, at_millis: u64) -> u32 {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent[kind_index(resource.kind)]
            .get(&resource.id)
            .map_or(0, |times| {
                let n = times
                    .iter()
                    .filter(|&&t| t <= at_millis && t + HOUR_MS > at_millis)
                    .count();
                u32::try_from(n).unwrap_or(u32::MAX)
            })
    }

    /// The recorded changes of `resource` still kept (the last hour before its newest one).
    pub fn recent(&self, resource: &Resource) -> Vec<u64> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent[kind_index(resource.kind)]
            .get(&resource.id)
            .map(|t| t.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Adds changes of `resource` that the whole cluster recorded (`all`, this host's among
    /// them), in memory: a time appearing `n` times there is here at least `n` times after.
    /// They count from now on like those recorded here; their own host keeps them durably.
    pub fn merge(&self, resource: &Resource, all: &[u64]) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let times = recent[kind_index(resource.kind)]
            .entry(resource.id.clone())
            .or_default();
        let mut sorted = all.to_vec();
        sorted.sort_unstable();
        for run in sorted.chunk_by(|a, b| a == b) {
            let at = run[0];
            let here = times.iter().filter(|&&t| t == at).count();
            let place = times.partition_point(|&t| t <= at);
            for _ in here..run.len() {
                times.insert(place, at);
            }
        }
        if let Some(&newest) = times.back() {
            while times
                .front()
                .is_some_and(|&t| t.saturating_add(RETENTION_MS) <= newest)
            {
                times.pop_front();
            }
        }
    }

    /// Records a change of `resource` at `at_millis`, durably, and prunes its rows older than
    /// the retention.
    pub fn record(&self, resource: &Resource, at_millis: u64) -> Result<(), TrustError> {
        let op = || format!("record a change of `{}`", resource.key());
        let kind = resource.kind.name();
        let id = resource.id.as_str();
        // Held across the write so that memory and database apply changes in the same order.
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let txn = self
            .db
            .begin_write()
            .map_err(|e| TrustError::storage(op(), e))?;
        {
            let mut table = txn
                .open_table(CHANGES)
                .map_err(|e| TrustError::storage(op(), e))?;
            let count = table
                .get((kind, id, at_millis))
                .map_err(|e| TrustError::storage(op(), e))?
                .map_or(0, |v| v.value());
            table
                .insert((kind, id, at_millis), count.saturating_add(1))
                .map_err(|e| TrustError::storage(op(), e))?;
            let cutoff = at_millis.saturating_sub(RETENTION_MS);
            if cutoff > 0 {
                table
                    .retain_in((kind, id, 0)..=(kind, id, cutoff), |_, _| false)
                    .map_err(|e| TrustError::storage(op(), e))?;
            }
        }
        txn.commit().map_err(|e| TrustError::storage(op(), e))?;
        let times = recent[kind_index(resource.kind)]
            .entry(resource.id.clone())
            .or_default();
        // Changes arrive in time order almost always; keep the deque sorted when they do not.
        let at = times.partition_point(|&t| t <= at_millis);
        times.insert(at, at_millis);
        if let Some(&newest) = times.back() {
            while times.front().is_some_and(|&t| t + RETENTION_MS <= newest) {
                times.pop_front();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn history() -> ChangeHistory {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        ChangeHistory::open(Arc::new(grace_ledger::Database::new(
            db,
            grace_ledger::Recovery::Full,
        )))
        .unwrap()
    }

    #[test]
    fn changes_another_replica_made_count_once_beside_those_made_here() {
        let h = history();
        let web = Resource::group("web");
        let t0 = 10 * HOUR_MS;
        h.record(&web, t0).unwrap();
        h.record(&web, t0 + 1_000).unwrap();
        // The cluster's copy holds this replica's own changes and two of another replica's,
        // one of them from more than an hour before the newest.
        h.merge(&web, &[t0 - HOUR_MS - 5, t0, t0 + 1_000, t0 + 2_000]);
        assert_eq!(h.count_last_hour(&web, t0 + 2_000), 3);
        assert_eq!(h.recent(&web), [t0, t0 + 1_000, t0 + 2_000]);
        // Merging the same again adds nothing; two changes in one millisecond are two.
        h.merge(&web, &[t0 + 2_000]);
        assert_eq!(h.count_last_hour(&web, t0 + 2_000), 3);
        h.merge(&web, &[t0 + 2_000, t0 + 2_000]);
        assert_eq!(h.count_last_hour(&web, t0 + 2_000), 4);
        let other = Resource::group("api");
        assert_eq!(h.count_last_hour(&other, t0 + 2_000), 0);
    }
}
