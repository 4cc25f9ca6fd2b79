//! GRACE's ledger: an append-only, tamper-evident record of every host call a playbook makes,
//! and of each run's lifecycle.
//!
//! Every entry is chained to the one before it: its hash is SHA-256 over its canonical encoding
//! ([`codec`]), which includes the previous entry's hash. Entries and a head record live in a
//! redb database ([`tables`]); appends from any number of tasks or threads go through one writer
//! thread that commits them in groups, so that concurrent appenders share one fsync.
//! [`Ledger::verify`] walks the chain and names the first entry that is not what the ledger
//! wrote.
//!
//! On top of the chain, the entries are the leaves of a Merkle tree, as in Certificate
//! Transparency (RFC 9162; [`merkle`]), maintained in the same transactions as the entries. The
//! ledger proves that an entry is in it ([`Ledger::prove_inclusion`]) and that it extends an
//! earlier state unchanged ([`Ledger::prove_consistency`]), and signs checkpoints of its tree
//! head with Ed25519 ([`Ledger::sign_checkpoint`], C2SP tlog-checkpoint format, [`keys`] for the
//! key files). [`Ledger::verify_checkpoint`] finds a truncated tail or rewritten entries that a
//! rewritten chain and head record would hide.
//!
//! The ledger's file is the data directory's database, shared with GRACE's other stores
//! ([`Ledger::database`]); every write transaction on it begins in [`storage`], which sets up
//! the commit for a quick recovery after a crash.
//!
//! ```no_run
//! # async fn example() -> Result<(), grace_ledger::LedgerError> {
//! use grace_ledger::{Decision, Durability, Ledger, NewEntry};
//!
//! let ledger = Ledger::open("grace.redb", Durability::Immediate)?;
//! let receipt = ledger
//!     .append(NewEntry {
//!         run_id: "run-1".into(),
//!         playbook: "scale-on-latency".into(),
//!         digest: "sha256:0123".into(),
//!         interface: "scaling".into(),
//!         function: "set-desired-capacity".into(),
//!         args: serde_json::json!({ "group": "web", "desired": 6 }),
//!         decision: Decision::allowed("grant scaling.set-desired-capacity on `web`"),
//!         result: serde_json::json!({ "ok": { "desired-capacity": 6 } }),
//!         at_millis: 1_700_000_000_000,
//!     })
//!     .await?;
//! println!("recorded as entry {} ({})", receipt.seq, receipt.hash);
//! ledger.verify()?;
//! # Ok(())
//! # }
//! ```

pub mod audit;
mod checkpoint;
pub mod codec;
mod entry;
mod error;
mod hash;
pub mod keys;
pub mod merkle;
pub mod note;
mod proofs;
pub mod storage;
pub mod tables;
mod tree;
mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use redb::{ReadableDatabase, ReadableTable, TableError};
use tokio::sync::oneshot;

pub use audit::{Audit, AuditState, AuditStateError};
pub use checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
pub use entry::{Decision, Entry, Head, NewEntry, Receipt, Verdict};
pub use error::{Inconsistency, LedgerError};
pub use hash::{Hash, HashParseError};
pub use keys::{KeyError, SigningKey, VerifierKey, generate_key};
pub use merkle::ProofError;
pub use proofs::{ConsistencyProof, InclusionProof, TreeHead};
pub use storage::{Database, Recovery};
pub use verify::{Problem, Tampering, VerifyReport};
pub use writer::LedgerStats;

use codec::Prepared;
use tables::{CHECKPOINTS, ENTRIES, HEAD, NODES};
use writer::{Reply, Request, Writer};

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// An append returns only after the commit holding it was fsync'ed: it survives a crash.
    Immediate,
    /// An append returns once committed in memory, without fsync: a crash may lose it (and the
    /// entries after it), though never break the chain. Closing the ledger cleanly persists
    /// everything. For benchmarks and throwaway dry runs.
    None,
}

impl From<Durability> for redb::Durability {
    fn from(d: Durability) -> Self {
        match d {
            Durability::Immediate => redb::Durability::Immediate,
            Durability::None => redb::Durability::None,
        }
    }
}

/// An open ledger.
///
/// Cheap to clone and share between tasks and threads: clones share one database and one
/// writer thread. Dropping the last clone stops the writer after it has committed everything
/// already queued (the drop waits for that, a few milliseconds at most) and closes the file,
/// unless [`Ledger::database`] handed it out.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: Arc<Database>,
    writer: Writer,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.inner.path)
            .field("stats", &self.inner.writer.stats())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens the ledger in the redb file at `path`, creating the file and its tables if missing,
    /// and starts its writer, which chains on from the stored head.
    ///
    /// Opening succeeds on a tampered ledger, so that it can be verified; appends then fail
    /// rather than overwrite an entry that is in the way.
    ///
    /// Commits record what a quick recovery after a crash needs ([`Recovery::Quick`]).
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Ledger, LedgerError> {
        Ledger::open_with(path, durability, Recovery::Quick)
    }

    /// [`Ledger::open`], with the commits of the ledger and of every store sharing its
    /// [`Ledger::database`] made for `recovery`.
    pub fn open_with(
        path: impl AsRef<Path>,
        durability: Durability,
        recovery: Recovery,
    ) -> Result<Ledger, LedgerError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |source: redb::Error| LedgerError::Open {
            path: path.clone(),
            source,
        };
        let db = Database::create(&path, recovery).map_err(|e| open_error(e.into()))?;
        let (head, last_seq) = create_tables(&db).map_err(open_error)?;
        if head.map_or(0, |h| h.seq) != last_seq {
            tracing::warn!(
                path = %path.display(),
                head_seq = head.map_or(0, |h| h.seq),
                last_seq,
                "ledger head record disagrees with its last entry; run `grace ledger verify`"
            );
        }
        let tree = tree::prepare(&db, head.map_or(0, |h| h.seq)).map_err(open_error)?;
        let db = Arc::new(db);
        let writer = Writer::spawn(Arc::clone(&db), durability.into(), head, tree)?;
        tracing::debug!(path = %path.display(), seq = head.map_or(0, |h| h.seq), "ledger opened");
        Ok(Ledger {
            inner: Arc::new(Inner { path, db, writer }),
        })
    }

    /// Appends an entry; resolves once it is committed (and fsync'ed, with
    /// [`Durability::Immediate`]).
    ///
    /// Entries appended concurrently are committed together. Dropping the future after it
    /// started does not withdraw the entry: it may still be recorded.
    pub async fn append(&self, entry: NewEntry) -> Result<Receipt, LedgerError> {
        self.submit(entry)?.await
    }

    /// Queues an entry for the writer now and returns its receipt as a future.
    ///
    /// The entry is recorded whether or not the future is awaited (barring a crash before the
    /// commit): a caller that need not wait for durability, such as the record of a read-only
    /// call, can go on and collect the receipt later. Entries are chained in submission order.
    pub fn submit(&self, entry: NewEntry) -> Result<Pending, LedgerError> {
        self.submit_ref(&entry)
    }

    /// [`Ledger::submit`] from a borrowed entry: it is encoded at once, on this thread, so a
    /// caller that keeps the entry's parts (a run's timeline) need not copy them first.
    pub fn submit_ref(&self, entry: &NewEntry) -> Result<Pending, LedgerError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(entry, Reply::Async(tx))?;
        Ok(Pending(rx))
    }

    /// Resolves once every entry submitted before the call is committed (durably, with
    /// [`Durability::Immediate`]) or has failed.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        let (tx, rx) = oneshot::channel();
        self.inner.writer.submit(Request::Barrier(tx))?;
        rx.await.map_err(|_| LedgerError::WriterStopped)
    }

    /// Appends an entry from synchronous code; returns once it is committed, like
    /// [`Ledger::append`].
    ///
    /// It blocks the calling thread until the commit: do not call it on a tokio runtime thread
    /// (use [`Ledger::append`], or call it from `spawn_blocking`), where it would stall the
    /// runtime's other tasks.
    pub fn append_blocking(&self, entry: NewEntry) -> Result<Receipt, LedgerError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.enqueue(&entry, Reply::Blocking(tx))?;
        rx.recv().map_err(|_| LedgerError::WriterStopped)?
    }

    fn enqueue(&self, entry: &NewEntry, reply: Reply) -> Result<(), LedgerError> {
        // Encoding happens here, on the appender's thread, so appenders encode in parallel and
        // the writer only chains and stores.
        let entry = Prepared::new(entry)?;
        self.inner.writer.submit(Request::Append { entry, reply })
    }

    /// The last committed entry, or `None` if the ledger is empty.
    pub fn head(&self) -> Result<Option<Head>, LedgerError> {
        let txn = self.inner.db.begin_read().map_err(LedgerError::read)?;
        verify::read_head(&txn)
    }

    /// Up to `limit` entries in ascending order, from `from_seq` on (sequence numbers start at
    /// 1). Decodes but does not verify them: see [`Ledger::verify`].
    pub fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<Entry>, LedgerError> {
        let txn = self.inner.db.begin_read().map_err(LedgerError::read)?;
        let Some(table) = open_entries(&txn)? else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::with_capacity(limit.min(1024));
        for item in table
            .range(from_seq..)
            .map_err(LedgerError::read)?
            .take(limit)
        {
            let (key, value) = item.map_err(LedgerError::read)?;
            entries.push(decode(key.value(), value.value())?);
        }
        Ok(entries)
    }

    /// Every entry of one run, in ascending order. Scans the whole ledger.
    pub fn entries_for_run(&self, run_id: &str) -> Result<Vec<Entry>, LedgerError> {
        let txn = self.inner.db.begin_read().map_err(LedgerError::read)?;
        let Some(table) = open_entries(&txn)? else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        for item in table.iter().map_err(LedgerError::read)? {
            let (key, value) = item.map_err(LedgerError::read)?;
            let (seq, stored) = (key.value(), value.value());
            let this_run = codec::peek_run_id(stored)
                .map_err(|source| LedgerError::Undecodable { seq, source })?;
            if this_run == run_id {
                entries.push(decode(seq, stored)?);
            }
        }
        Ok(entries)
    }

    /// The runs with a `run.started` record and no `run.finished` after it, in order of their
    /// start. A run in flight has none yet, and neither has one interrupted by a crash; any
    /// other run without an end record lost it. Decodes the entries one at a time.
    pub fn runs_without_end(&self) -> Result<Vec<String>, LedgerError> {
        let txn = self.inner.db.begin_read().map_err(LedgerError::read)?;
        let Some(table) = open_entries(&txn)? else {
            return Ok(Vec::new());
        };
        // Run id → the sequence number of its latest unfinished start.
        let mut open = std::collections::HashMap::new();
        for item in table.iter().map_err(LedgerError::read)? {
            let (key, value) = item.map_err(LedgerError::read)?;
            let entry = decode(key.value(), value.value())?;
            if entry.interface != "run" {
                continue;
            }
            match entry.function.as_str() {
                "started" => {
                    open.insert(entry.run_id, entry.seq);
                }
                "finished" => {
                    open.remove(&entry.run_id);
                }
                _ => {}
            }
        }
        let mut runs: Vec<(u64, String)> = open.into_iter().map(|(id, seq)| (seq, id)).collect();
        runs.sort();
        Ok(runs.into_iter().map(|(_, id)| id).collect())
    }

    /// Checks the whole chain: every entry present, its hash matching its stored bytes, its
    /// sequence number matching its key, its link matching the previous entry's hash, and the
    /// head record matching the last entry. Checks the stored Merkle tree against one rebuilt
    /// from the entries, node by node, and reports the root of the entries as they are.
    ///
    /// Tampering is an error, [`LedgerError::Tampered`], naming the first bad entry in sequence
    /// order and what is wrong with it. Runs in one read transaction: appends may continue
    /// meanwhile, and what they add is not covered.
    pub fn verify(&self) -> Result<VerifyReport, LedgerError> {
        verify::verify(&self.inner.db, None).map(|(report, _)| report)
    }

    /// The database the ledger lives in, for other GRACE stores that share the file.
    ///
    /// They must not write the [`tables`] of the ledger. Holding the database keeps the file
    /// open after the last [`Ledger`] is dropped. Its write transactions begin as the ledger's
    /// do ([`Database::begin_write`]).
    pub fn database(&self) -> Arc<Database> {
        Arc::clone(&self.inner.db)
    }

    /// What the writer has done since the ledger was opened: how many entries it committed, in
    /// how many groups.
    pub fn stats(&self) -> LedgerStats {
        self.inner.writer.stats()
    }
}

/// Creates the ledger's tables if missing; returns the stored head and the last stored key.
fn create_tables(db: &Database) -> Result<(Option<Head>, u64), redb::Error> {
    let txn = db.begin_write()?;
    let (head, last_seq) = {
        let entries = txn.open_table(ENTRIES)?;
        let head = txn.open_table(HEAD)?;
        txn.open_table(NODES)?;
        txn.open_table(CHECKPOINTS)?;
        let last_seq = entries.last()?.map_or(0, |(k, _)| k.value());
        let head = head.get(tables::HEAD_KEY)?.map(|row| {
            let (seq, hash, entries) = row.value();
            Head {
                seq,
                hash: Hash(hash),
                entries,
            }
        });
        (head, last_seq)
    };
    txn.commit()?;
    Ok((head, last_seq))
}

fn open_entries(
    txn: &redb::ReadTransaction,
) -> Result<Option<redb::ReadOnlyTable<u64, &'static [u8]>>, LedgerError> {
    match txn.open_table(ENTRIES) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(LedgerError::read(e)),
    }
}

fn decode(seq: u64, stored: &[u8]) -> Result<Entry, LedgerError> {
    codec::decode(stored).map_err(|source| LedgerError::Undecodable { seq, source })
}

/// The receipt of a [`Ledger::submit`]ted entry, as a future.
#[derive(Debug)]
#[must_use = "the entry is recorded regardless; await this to know when, and whether, it was"]
pub struct Pending(oneshot::Receiver<Result<Receipt, LedgerError>>);

impl std::future::Future for Pending {
    type Output = Result<Receipt, LedgerError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(LedgerError::WriterStopped)))
    }
}
