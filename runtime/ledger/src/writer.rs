//! Group commit: one thread owns every write to the ledger.
//!
//! Appenders encode their entry on their own thread and send it here. The writer takes the
//! first request, drains whatever else is queued (up to [`MAX_BATCH`]), gives the batch
//! consecutive sequence numbers, chains the hashes, extends the Merkle tree, writes the entries,
//! the tree's new nodes and the head record in one write transaction and commits it once. Then it answers every appender of the batch. So many
//! concurrent appenders share one fsync, and the chain is only ever extended by one thread.
//!
//! When the previous batch was larger than what is queued, the writer waits a little (a quarter
//! of the last commit's duration, at most [`MAX_LINGER`]) for the appenders it just answered to
//! come back, so that groups do not split in two halves that alternate between commits.
//!
//! If the commit fails, every appender of the batch gets the error and the writer's idea of the
//! head and of the tree's right edge does not move: the next batch is chained to the last
//! committed entry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use crate::codec::Prepared;
use crate::merkle::{Frontier, entry_leaf};
use crate::tables::{ENTRIES, HEAD, HEAD_KEY, NODES};
use crate::tree;
use crate::{Hash, Head, LedgerError, Receipt};

/// The most entries committed in one transaction.
pub(crate) const MAX_BATCH: usize = 4096;

/// The longest the writer waits for more appends before committing (see [`gather`]).
const MAX_LINGER: Duration = Duration::from_millis(2);

/// Where to send the outcome of an append.
pub(crate) enum Reply {
    /// To an `async` appender.
    Async(oneshot::Sender<Result<Receipt, LedgerError>>),
    /// To a blocked thread. A std channel rather than `oneshot::blocking_recv`, which panics when
    /// called from a runtime thread: a misplaced blocking append stalls, it does not panic.
    Blocking(mpsc::SyncSender<Result<Receipt, LedgerError>>),
}

impl Reply {
    fn send(self, outcome: Result<Receipt, LedgerError>) {
        // An appender that went away (a cancelled future) no longer wants the answer; the
        // entry is recorded all the same.
        match self {
            Reply::Async(tx) => drop(tx.send(outcome)),
            Reply::Blocking(tx) => drop(tx.send(outcome)),
        }
    }
}

/// What appenders send the writer.
pub(crate) enum Request {
    /// One append, encoded, waiting for its place in the chain.
    Append {
        /// The entry.
        entry: Prepared,
        /// Where its receipt goes.
        reply: Reply,
    },
    /// Answered once everything sent before it is committed (or failed).
    Barrier(oneshot::Sender<()>),
}

/// Counters of the writer since the ledger was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerStats {
    /// Entries committed.
    pub entries: u64,
    /// Write transactions committed; `entries / commits` is the average group size.
    pub commits: u64,
    /// The largest group committed at once.
    pub largest_batch: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    entries: AtomicU64,
    commits: AtomicU64,
    largest_batch: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> LedgerStats {
        LedgerStats {
            entries: self.entries.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
        }
    }
}

/// The handle on the writer thread. Dropping it closes the queue and waits for the thread to
/// finish what was queued.
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer, chaining on from `head` (the stored head record) and extending `tree`,
    /// the right edge of the tree of the entries up to the head (or why there is none).
    pub(crate) fn spawn(
        db: Arc<crate::Database>,
        durability: redb::Durability,
        head: Option<Head>,
        tree: Result<Frontier, String>,
    ) -> Result<Writer, LedgerError> {
        let (queue, requests) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let tip = head.unwrap_or(Head {
            seq: 0,
            hash: Hash::ZERO,
            entries: 0,
        });
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("grace-ledger-writer".into())
            .spawn(move || run(&db, durability, tip, tree, &requests, &thread_counters))
            .map_err(|source| LedgerError::Spawn { source })?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            counters,
        })
    }

    /// Queues an append.
    pub(crate) fn submit(&self, request: Request) -> Result<(), LedgerError> {
        self.queue
            .as_ref()
            .ok_or(LedgerError::WriterStopped)?
            .send(request)
            .map_err(|_| LedgerError::WriterStopped)
    }

    pub(crate) fn stats(&self) -> LedgerStats {
        self.counters.snapshot()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the writer's loop once it has drained it.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("ledger writer thread panicked");
        }
    }
}

/// Why a batch was not committed.
#[derive(Clone)]
enum Failure {
    Storage(Arc<redb::Error>),
    AlreadyExists(u64),
    Exhausted(u64),
    TreeUnavailable(String),
}

impl Failure {
    fn to_error(&self) -> LedgerError {
        match self {
            Failure::Storage(source) => LedgerError::Commit {
                source: Arc::clone(source),
            },
            Failure::AlreadyExists(seq) => LedgerError::AlreadyExists { seq: *seq },
            Failure::Exhausted(seq) => LedgerError::Exhausted { seq: *seq },
            Failure::TreeUnavailable(reason) => LedgerError::TreeUnavailable {
                reason: reason.clone(),
            },
        }
    }
}

fn storage(e: impl Into<redb::Error>) -> Failure {
    Failure::Storage(Arc::new(e.into()))
}

fn run(
    db: &crate::Database,
    durability: redb::Durability,
    mut tip: Head,
    mut tree: Result<Frontier, String>,
    requests: &mpsc::Receiver<Request>,
    counters: &Counters,
) {
    tracing::debug!(seq = tip.seq, "ledger writer started");
    let mut entries = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    let mut barriers = Vec::new();
    let mut previous_batch = 0;
    let mut linger = Duration::ZERO;
    while let Ok(first) = requests.recv() {
        gather(
            requests,
            first,
            &mut entries,
            &mut replies,
            &mut barriers,
            previous_batch,
            linger,
        );
        let n = entries.len();
        if n == 0 {
            for barrier in barriers.drain(..) {
                let _ = barrier.send(());
            }
            continue;
        }
        let started = Instant::now();
        let outcome = commit(db, durability, &tip, &tree, entries.drain(..));
        previous_batch = n;
        linger = (started.elapsed() / 4).min(MAX_LINGER);
        match outcome {
            Ok((head, frontier, receipts)) => {
                tip = head;
                tree = Ok(frontier);
                let n64 = n as u64;
                counters.entries.fetch_add(n64, Ordering::Relaxed);
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters.largest_batch.fetch_max(n64, Ordering::Relaxed);
                tracing::trace!(
                    entries = n,
                    seq = tip.seq,
                    micros = started.elapsed().as_micros(),
                    "ledger batch committed"
                );
                for (reply, receipt) in replies.drain(..).zip(receipts) {
                    reply.send(Ok(receipt));
                }
                for barrier in barriers.drain(..) {
                    let _ = barrier.send(());
                }
            }
            Err(failure) => {
                let error = failure.to_error();
                tracing::error!(%error, entries = n, "ledger batch not committed");
                for reply in replies.drain(..) {
                    reply.send(Err(failure.to_error()));
                }
                for barrier in barriers.drain(..) {
                    let _ = barrier.send(());
                }
            }
        }
    }
    tracing::debug!(seq = tip.seq, "ledger writer stopped");
}

/// Collects a batch into `entries` and `replies`: `first`, then everything already queued, up to
/// [`MAX_BATCH`].
///
/// If that is fewer than the previous batch, the appenders just answered are probably about to
/// append again: waiting up to `linger` for them lets the next commit carry them too, instead of
/// batches alternating between two halves of the appenders. With one sequential appender the
/// batch is never smaller than the previous one, so nothing waits.
fn gather(
    requests: &mpsc::Receiver<Request>,
    first: Request,
    entries: &mut Vec<Prepared>,
    replies: &mut Vec<Reply>,
    barriers: &mut Vec<oneshot::Sender<()>>,
    previous_batch: usize,
    linger: Duration,
) {
    let mut push = |request: Request| match request {
        Request::Append { entry, reply } => {
            entries.push(entry);
            replies.push(reply);
        }
        Request::Barrier(done) => barriers.push(done),
    };
    push(first);
    let mut queued = 1;
    while queued < MAX_BATCH
        && let Ok(request) = requests.try_recv()
    {
        push(request);
        queued += 1;
    }
    let wanted = previous_batch.min(MAX_BATCH);
    let deadline = Instant::now() + linger;
    while queued < wanted {
        match requests.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(request) => {
                push(request);
                queued += 1;
            }
            Err(_) => break,
        }
    }
}

/// Writes one batch, the tree nodes it completes and the new head in one transaction; returns
/// the new head and right edge of the tree.
fn commit(
    db: &crate::Database,
    durability: redb::Durability,
    tip: &Head,
    tree: &Result<Frontier, String>,
    batch: impl ExactSizeIterator<Item = Prepared>,
) -> Result<(Head, Frontier, Vec<Receipt>), Failure> {
    let recorded_millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut receipts = Vec::with_capacity(batch.len());
    let mut seq = tip.seq;
    let mut hash = tip.hash;
    // Cloned, so a failed commit leaves the writer's right edge as it was.
    let mut frontier = tree_at(tree, tip.seq);
    let mut completed = Vec::with_capacity(64);
    let mut txn = db.begin_write().map_err(storage)?;
    txn.set_durability(durability).map_err(storage)?;
    let head = {
        let mut table = txn.open_table(ENTRIES).map_err(storage)?;
        let mut nodes = txn.open_table(NODES).map_err(storage)?;
        for entry in batch {
            seq = seq.checked_add(1).ok_or(Failure::Exhausted(seq))?;
            // Checked after the sequence number, so a ledger that cannot grow says so first.
            let frontier = match &mut frontier {
                Ok(frontier) => frontier,
                Err(failure) => return Err(failure.clone()),
            };
            let (stored, entry_hash) = entry.seal(seq, &hash, recorded_millis);
            // Never overwrite: an entry already there was written outside the ledger, and is
            // evidence. Returning drops the transaction, which aborts it.
            if table
                .insert(seq, stored.as_slice())
                .map_err(storage)?
                .is_some()
            {
                return Err(Failure::AlreadyExists(seq));
            }
            frontier
                .push(entry_leaf(&entry_hash), |level, index, node| {
                    if tree::is_stored(level) {
                        completed.push((level, index, *node));
                    }
                })
                .map_err(|_| Failure::Exhausted(seq))?;
            for (level, index, node) in completed.drain(..) {
                // Levels are below 64: the tree has fewer than 2^64 leaves.
                nodes
                    .insert((level as u8, index), node.0)
                    .map_err(storage)?;
            }
            hash = entry_hash;
            receipts.push(Receipt {
                seq,
                hash: entry_hash,
            });
        }
        let head = Head {
            seq,
            hash,
            entries: tip.entries + receipts.len() as u64,
        };
        let mut head_table = txn.open_table(HEAD).map_err(storage)?;
        head_table
            .insert(HEAD_KEY, (head.seq, head.hash.0, head.entries))
            .map_err(storage)?;
        head
    };
    let frontier = frontier?;
    txn.commit().map_err(storage)?;
    Ok((head, frontier, receipts))
}

/// The right edge of the tree of the first `size` entries, which the next entry extends.
fn tree_at(tree: &Result<Frontier, String>, size: u64) -> Result<Frontier, Failure> {
    match tree {
        Ok(frontier) if frontier.size() == size => Ok(frontier.clone()),
        Ok(frontier) => Err(Failure::TreeUnavailable(format!(
            "the tree covers {} entries but the head is entry {size}",
            frontier.size()
        ))),
        Err(reason) => Err(Failure::TreeUnavailable(reason.clone())),
    }
}
