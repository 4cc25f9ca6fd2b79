//! Locks on the resources the providers serve, shared by every run on a host.
//!
//! A grant bounds what one call may ask (`max_replicas`, `max_step`) and the trust core's
//! guardrails bound what may change per hour; both are checked against the resource's state
//! as read before the change. Two runs changing the same resource at once would each check
//! against the same stale state and together overshoot every bound (two scales "to 5" of a
//! service at 3 each create two containers). So a change holds its resource's lock from the
//! read its checks rely on until its result is recorded: changes of one resource are
//! serialized across runs, changes of different resources are not.
//!
//! Keys name a resource the way its capability identifies it after validation
//! (`scaling/api-asg`, `kubernetes/shop/checkout`), or a whole provider when resources may
//! overlap (container services are label selectors: `{app=web}` and `{app=web,env=prod}` can
//! select the same containers, so every container change shares one key).
//!
//! Entries are dropped when nobody holds or waits for them, so the table stays as small as
//! the number of resources being changed at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// The table of resource locks. Cheap to share: clone the `Arc` it lives in.
#[derive(Debug, Default)]
pub struct ResourceLocks {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    locks: HashMap<String, Weak<tokio::sync::Mutex<()>>>,
    /// Size after the last sweep of dead entries: the next sweep waits until the table has
    /// doubled, so sweeping costs O(1) per lock taken, amortized.
    swept_at: usize,
}

/// Held while a change of one resource is checked, decided, made and recorded.
#[derive(Debug)]
pub struct ResourceGuard {
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl ResourceLocks {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the lock of `key` (changes of other resources go on meanwhile). Callers bound
    /// the wait with their own deadline.
    pub async fn lock(&self, key: &str) -> ResourceGuard {
        let mutex = self.entry(key);
        ResourceGuard {
            _guard: mutex.lock_owned().await,
        }
    }

    /// How many resources have a live entry (held or waited for), for tests and metrics.
    pub fn len(&self) -> usize {
        self.with_table(|t| t.locks.values().filter(|w| w.strong_count() > 0).count())
    }

    /// Whether no resource is locked or waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.with_table(|t| {
            if let Some(live) = t.locks.get(key).and_then(Weak::upgrade) {
                return live;
            }
            if t.locks.len() >= 2 * t.swept_at.max(16) {
                t.locks.retain(|_, w| w.strong_count() > 0);
                t.swept_at = t.locks.len();
            }
            let fresh = Arc::new(tokio::sync::Mutex::new(()));
            t.locks.insert(key.to_owned(), Arc::downgrade(&fresh));
            fresh
        })
    }

    fn with_table<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        // The table is left consistent at every point a panic could occur (plain map
        // operations), so a poisoned lock is safe to keep using.
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut table)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn changes_of_one_resource_wait_for_each_other() {
        let locks = ResourceLocks::new();
        let held = locks.lock("scaling/api-asg").await;
        let second = tokio::time::timeout(Duration::from_millis(50), locks.lock("scaling/api-asg"));
        assert!(second.await.is_err(), "the second change did not wait");
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(5), locks.lock("scaling/api-asg"));
        assert!(again.await.is_ok(), "the lock was not released");
    }

    #[tokio::test]
    async fn changes_of_different_resources_do_not_wait() {
        let locks = ResourceLocks::new();
        let _a = locks.lock("scaling/a").await;
        let b = tokio::time::timeout(Duration::from_secs(5), locks.lock("scaling/b"));
        assert!(b.await.is_ok());
    }

    #[tokio::test]
    async fn released_entries_are_dropped_from_the_table() {
        let locks = ResourceLocks::new();
        for i in 0..1_000 {
            drop(locks.lock(&format!("kubernetes/shop/d{i}")).await);
        }
        assert!(locks.is_empty());
        let size = locks.with_table(|t| t.locks.len());
        assert!(size <= 64, "the table kept {size} dead entries");
    }
}
