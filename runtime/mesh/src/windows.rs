//! Hold windows: for each (trigger, resource) whose condition is currently true and whose trigger
//! has a `for`, when the run of true events started, the latest time seen and how many there were.
//!
//! This is the one piece of mesh state that grows with the variety of incoming events rather than
//! with runs, so it is capped: past [`crate::DEFAULT_MAX_WINDOWS`] (or the mesh's own limit) the
//! least recently updated window is dropped, and counted. Recency is the order of events offered
//! (not their timestamps), so eviction is as deterministic as the rest of the mesh.
//!
//! Each trigger with a `for` owns a table (by resource), addressed by a [`TableId`] the trigger
//! keeps, so a lookup hashes only the resource. Least-recently-updated order is a log of
//! (touch, table, resource) appended on every update; an entry whose window has been touched
//! again or dropped since is skipped when evicting and purged when the log outgrows twice the
//! live windows. Touch numbers are never reused, so a table id reused after its trigger was
//! removed cannot be confused with the old one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A trigger's table of windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableId(usize);

/// What a hold window says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Timestamp of the first true event of the run.
    pub(crate) since: u64,
    /// The latest timestamp seen in the run: the window's clock, which never goes back.
    pub(crate) latest: u64,
    /// True events in the run.
    pub(crate) seen: u32,
}

#[derive(Debug, Clone)]
struct Window {
    span: Span,
    /// When it was last updated, in the touch sequence.
    touched: u64,
    /// The resource again, shared with the touch log.
    resource: Arc<str>,
}

type Table = HashMap<Arc<str>, Window>;

/// All hold windows.
#[derive(Debug)]
pub(crate) struct Windows {
    tables: Vec<Option<Table>>,
    free: Vec<usize>,
    len: usize,
    max: usize,
    touches: u64,
    log: VecDeque<(u64, TableId, Arc<str>)>,
    evicted: u64,
}

impl Windows {
    pub(crate) fn new(max: usize) -> Windows {
        Windows {
            tables: Vec::new(),
            free: Vec::new(),
            len: 0,
            max: max.max(1),
            touches: 0,
            log: VecDeque::new(),
            evicted: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// A new, empty table for a trigger.
    pub(crate) fn open(&mut self) -> TableId {
        match self.free.pop() {
            Some(i) => {
                self.tables[i] = Some(Table::new());
                TableId(i)
            }
            None => {
                self.tables.push(Some(Table::new()));
                TableId(self.tables.len() - 1)
            }
        }
    }

    /// Drops a trigger's table and every window in it.
    pub(crate) fn close(&mut self, table: TableId) {
        if let Some(t) = self.tables.get_mut(table.0).and_then(Option::take) {
            self.len -= t.len();
            self.free.push(table.0);
        }
    }

    fn table(&self, table: TableId) -> Option<&Table> {
        self.tables.get(table.0)?.as_ref()
    }

    fn table_mut(&mut self, table: TableId) -> Option<&mut Table> {
        self.tables.get_mut(table.0)?.as_mut()
    }

    #[cfg(test)]
    pub(crate) fn get(&self, table: TableId, resource: &str) -> Option<Span> {
        self.table(table)?.get(resource).map(|w| w.span)
    }

    /// Drops the window of `resource` if `reset` says so.
    pub(crate) fn remove_if(
        &mut self,
        table: TableId,
        resource: &str,
        reset: impl FnOnce(Span) -> bool,
    ) {
        if let Some(t) = self.table_mut(table)
            && t.get(resource).is_some_and(|w| reset(w.span))
        {
            t.remove(resource);
            self.len -= 1;
        }
    }

    /// Records a true event at `timestamp`: extends the window, or starts one (evicting the least
    /// recently updated window when full). Returns the window as it now is.
    pub(crate) fn observe(&mut self, table: TableId, resource: &str, timestamp: u64) -> Span {
        self.touches += 1;
        let touch = self.touches;
        let Some(t) = self.tables.get_mut(table.0).and_then(Option::as_mut) else {
            // A trigger always opens its table before observing; without one there is nothing
            // to remember.
            return Span {
                since: timestamp,
                latest: timestamp,
                seen: 1,
            };
        };
        if let Some(w) = t.get_mut(resource) {
            w.span.latest = w.span.latest.max(timestamp);
            w.span.seen = w.span.seen.saturating_add(1);
            w.touched = touch;
            let span = w.span;
            self.log.push_back((touch, table, w.resource.clone()));
            self.compact_if_needed();
            return span;
        }
        if self.len >= self.max {
            self.evict_one();
        }
        let key: Arc<str> = Arc::from(resource);
        let span = Span {
            since: timestamp,
            latest: timestamp,
            seen: 1,
        };
        if let Some(t) = self.table_mut(table) {
            t.insert(
                key.clone(),
                Window {
                    span,
                    touched: touch,
                    resource: key.clone(),
                },
            );
            self.len += 1;
            self.log.push_back((touch, table, key));
        }
        self.compact_if_needed();
        span
    }

    fn is_current(&self, touch: u64, table: TableId, resource: &str) -> bool {
        self.table(table)
            .and_then(|t| t.get(resource))
            .is_some_and(|w| w.touched == touch)
    }

    fn evict_one(&mut self) {
        while let Some((touch, table, resource)) = self.log.pop_front() {
            if self.is_current(touch, table, &resource) {
                if let Some(t) = self.table_mut(table) {
                    t.remove(&resource);
                }
                self.len -= 1;
                self.evicted += 1;
                return;
            }
        }
    }

    /// Purges stale log entries once they outnumber the live windows.
    fn compact_if_needed(&mut self) {
        if self.log.len() > 2 * self.len + 1024 {
            let mut log = std::mem::take(&mut self.log);
            log.retain(|(touch, table, resource)| self.is_current(*touch, *table, resource));
            self.log = log;
        }
    }

    /// Every window of `table` with its resource and when it was last updated (in the touch
    /// sequence, which orders windows of every table), for a checkpoint.
    pub(crate) fn saved(&self, table: TableId) -> impl Iterator<Item = (&str, Span, u64)> {
        self.table(table)
            .into_iter()
            .flat_map(|t| t.values().map(|w| (&*w.resource, w.span, w.touched)))
    }

    /// Puts back a window from a checkpoint as the most recently updated one: restored in the
    /// order they were updated, windows keep their order for eviction. Evicts when full.
    pub(crate) fn restore(&mut self, table: TableId, resource: &str, span: Span) {
        if self.table(table).is_none() {
            return;
        }
        self.remove_if(table, resource, |_| true);
        if self.len >= self.max {
            self.evict_one();
        }
        self.touches += 1;
        let touch = self.touches;
        let key: Arc<str> = Arc::from(resource);
        if let Some(t) = self.table_mut(table) {
            t.insert(
                key.clone(),
                Window {
                    span,
                    touched: touch,
                    resource: key.clone(),
                },
            );
            self.len += 1;
            self.log.push_back((touch, table, key));
        }
        self.compact_if_needed();
    }

    #[cfg(test)]
    pub(crate) fn log_len(&self) -> usize {
        self.log.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_updated_window_is_evicted_when_full() {
        let mut w = Windows::new(2);
        let t = w.open();
        w.observe(t, "a", 10);
        w.observe(t, "b", 10);
        w.observe(t, "a", 11); // `a` is now more recent than `b`
        w.observe(t, "c", 12);
        assert!(w.get(t, "a").is_some());
        assert!(w.get(t, "b").is_none());
        assert!(w.get(t, "c").is_some());
        assert_eq!((w.len(), w.evicted()), (2, 1));
    }

    #[test]
    fn the_touch_log_stays_proportional_to_live_windows() {
        let mut w = Windows::new(10);
        let t = w.open();
        for i in 0..100_000u64 {
            w.observe(t, "hot", i);
            if i % 7 == 0 {
                w.remove_if(t, "hot", |_| true);
            }
        }
        assert!(w.log_len() <= 2 * w.len() + 1025, "{}", w.log_len());
        assert_eq!(w.evicted(), 0);
    }

    #[test]
    fn a_reused_table_does_not_inherit_old_windows_or_log_entries() {
        let mut w = Windows::new(1);
        let old = w.open();
        w.observe(old, "a", 1);
        w.close(old);
        assert_eq!(w.len(), 0);
        let new = w.open();
        assert_eq!(new, old);
        w.observe(new, "b", 2);
        // The stale log entry for `a` must not count as the window to evict.
        w.observe(new, "c", 3);
        assert_eq!((w.get(new, "b"), w.len(), w.evicted()), (None, 1, 1));
        assert!(w.get(new, "c").is_some());
    }
}
