//! How GRACE writes its redb database: the one place a write transaction begins.
//!
//! A data directory keeps one redb file: the ledger and every store that shares it (events,
//! runs, approvals, tokens, trust history and policies) write it through [`Database`], whose
//! [`Database::begin_write`] is the only way GRACE begins a write transaction.
//!
//! What it decides is how the file recovers from a crash. redb opening a file that was not
//! closed cleanly (`kill -9`, power loss) repairs it, and by default that repair walks the whole
//! file, verifying every checksum and rebuilding the allocator state: the restart grows with the
//! event log (about 0.5 s for a 640 MB file here, before anything else starts). With
//! [`Recovery::Quick`], every commit also records the allocator state and commits in two phases,
//! so the next open after a crash loads that state instead (a few milliseconds, whatever the
//! size). The price is a second fsync per durable commit: about 45% fewer durable commits per
//! second on this machine (docs/architecture.md, "Crash recovery", has the figures).
//!
//! redb only skips the repair when the *last* commit before the crash recorded the state, so
//! every write transaction on the file must agree: hence one type, not a setting per call.

use std::path::Path;
use std::sync::Arc;

/// How a data directory's database recovers after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recovery {
    /// Every commit records redb's allocator state and commits in two phases: reopening after a
    /// crash loads that state, in time that does not grow with the file. Each durable commit
    /// pays a second fsync.
    #[default]
    Quick,
    /// Commits record nothing extra: reopening after a crash verifies and walks the whole file.
    /// For a machine where fsync is the bottleneck and restarts may be slow.
    Full,
}

/// A redb database as GRACE writes it: the file, and how its commits prepare for a crash.
///
/// Reads are redb's own ([`redb::ReadableDatabase`]); writes begin only through
/// [`Database::begin_write`].
#[derive(Debug)]
pub struct Database {
    inner: redb::Database,
    recovery: Recovery,
}

impl Database {
    /// Opens the redb file at `path`, creating it if missing; commits are made for `recovery`.
    pub fn create(path: impl AsRef<Path>, recovery: Recovery) -> Result<Self, redb::DatabaseError> {
        redb::Database::create(path).map(|db| Self::new(db, recovery))
    }

    /// Wraps an open redb database, whose commits from now on are made for `recovery`.
    pub fn new(inner: redb::Database, recovery: Recovery) -> Self {
        Self { inner, recovery }
    }

    /// How this database's commits prepare for a crash.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// Begins a write transaction, set for the database's [`Recovery`].
    ///
    /// The only way GRACE begins one: a commit made without quick repair, if it is the last
    /// before a crash, makes the next open walk the whole file.
    pub fn begin_write(&self) -> Result<redb::WriteTransaction, redb::TransactionError> {
        let mut txn = self.inner.begin_write()?;
        txn.set_quick_repair(self.recovery == Recovery::Quick);
        Ok(txn)
    }
}

/// Reads are redb's own. There is deliberately no way to reach the inner [`redb::Database`]
/// (no `Deref`): a write transaction begun on it would skip the recovery setting.
impl redb::ReadableDatabase for Database {
    fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        self.inner.begin_read()
    }

    fn cache_stats(&self) -> redb::CacheStats {
        self.inner.cache_stats()
    }
}

/// Whether opening the file at `live`, as a crash at this moment would leave it, runs redb's
/// full repair.
///
/// Copies `live` (which may be open: the copy has the "not closed cleanly" mark a crash leaves)
/// to `scratch` and opens the copy, stopping at the first sign of a repair. For tests: whether
/// the last commit on a database recorded what a quick recovery needs.
pub fn crash_image_needs_repair(live: &Path, scratch: &Path) -> std::io::Result<bool> {
    std::fs::copy(live, scratch)?;
    let repaired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::clone(&repaired);
    let opened = redb::Builder::new()
        .set_repair_callback(move |session| {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            session.abort();
        })
        .open(scratch);
    let repaired = repaired.load(std::sync::atomic::Ordering::SeqCst);
    match opened {
        Ok(_) => Ok(false),
        Err(redb::DatabaseError::RepairAborted) if repaired => Ok(true),
        Err(e) => Err(std::io::Error::other(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ROWS: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("rows");

    /// Commits one row durably through [`Database::begin_write`] and reports whether the file,
    /// as a crash would leave it now, needs a full repair.
    fn crash_after_a_commit(recovery: Recovery) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("grace.redb");
        let db = Database::create(&live, recovery).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(ROWS).unwrap().insert(1, 1).unwrap();
        txn.commit().unwrap();
        crash_image_needs_repair(&live, &dir.path().join("crashed.redb")).unwrap()
    }

    #[test]
    fn a_crash_after_a_quick_recovery_commit_needs_no_repair() {
        assert!(!crash_after_a_commit(Recovery::Quick));
    }

    #[test]
    fn a_crash_after_a_full_recovery_commit_needs_a_full_repair() {
        assert!(crash_after_a_commit(Recovery::Full));
    }

    #[test]
    fn a_cleanly_closed_file_needs_no_repair_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("grace.redb");
        let db = Database::create(&live, Recovery::Full).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(ROWS).unwrap().insert(1, 1).unwrap();
        txn.commit().unwrap();
        drop(db);
        assert!(!crash_image_needs_repair(&live, &dir.path().join("copy.redb")).unwrap());
    }
}
