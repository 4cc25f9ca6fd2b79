//! The event log: every accepted event, durable before it is acknowledged.
//!
//! Publishers hand batches to one writer thread, which drains everything queued, writes it in
//! one transaction and fsyncs once (group commit): many concurrent publishers share one fsync,
//! and a `202 Accepted` always means the events survive a crash.
//!
//! The writer runs under the [`Supervisor`]: a panic fails the batch in hand (its publishers get
//! an error) and the writer starts again on the same queue, so one bad record never stops
//! ingestion.

use std::sync::Arc;
use std::sync::mpsc;

use grace_engine::TriggerEvent;
use grace_ledger::Database;
use redb::{Durability, ReadableTable};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::tables::{EVENTS, EVENTS_LAST_SEQ, META};
use super::{StoreError, db};
use crate::supervisor::Supervisor;

/// Who published an event through the API: the token, by id and name (absent for events from
/// polled sources and collectors, which their `source` names, and on a server started with
/// `--insecure-no-auth`, where no one is identified).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publisher {
    /// The token's id (`tok_...`).
    pub token_id: String,
    /// The token's name.
    pub name: String,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When GRACE accepted it (wall clock, milliseconds since the epoch).
    pub received_at: u64,
    /// The token that published it, if it came through the API with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_by: Option<Publisher>,
    /// The event.
    pub event: TriggerEvent,
    /// What the health graph said of the event's resource when it was accepted (see
    /// [`crate::graph::Graph::facts`]): trigger conditions read it as `event.graph`, and read
    /// it from here when the events are matched again, so that the decisions do not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<serde_json::Value>,
}

/// [`StoredEvent`] borrowing its event: the same JSON, without copying the event to write it.
#[derive(Serialize)]
struct StoredEventRef<'a> {
    seq: u64,
    received_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    published_by: Option<&'a Publisher>,
    event: &'a TriggerEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    graph: Option<&'a serde_json::Value>,
}

struct Request {
    events: Arc<Vec<TriggerEvent>>,
    /// Each event's graph facts, by position (shorter than `events`: none for the rest).
    graph: Vec<Option<serde_json::Value>>,
    received_at: u64,
    published_by: Option<Publisher>,
    reply: oneshot::Sender<Result<(u64, u64), StoreError>>,
}

/// Appends events durably; cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    tx: mpsc::Sender<Request>,
}

/// Most events written in one transaction.
const MAX_BATCH: usize = 65_536;

impl EventLog {
    /// Starts the writer thread; sequence numbers continue from the stored log.
    pub fn start(db: Arc<Database>, supervisor: Arc<Supervisor>) -> Result<EventLog, StoreError> {
        let mut last = last_seq(&db)?;
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("grace-events".into())
            .spawn(move || {
                supervisor.run_thread("event-writer", || {
                    // After a panic, the log is re-read: what was committed is what counts.
                    if let Ok(stored) = last_seq(&db) {
                        last = last.max(stored);
                    }
                    writer(&db, &rx, &mut last);
                });
            })
            .map_err(|e| StoreError::Db(format!("cannot start the event writer: {e}")))?;
        Ok(EventLog { tx })
    }

    /// Appends a batch; resolves to its first and last sequence numbers once durable.
    ///
    /// The events are shared with the writer rather than copied; it lets go of them before it
    /// answers, so the caller can take them back with `Arc::try_unwrap`.
    ///
    /// `graph` holds each event's graph facts, by position (empty: none).
    pub async fn append(
        &self,
        events: Arc<Vec<TriggerEvent>>,
        graph: Vec<Option<serde_json::Value>>,
        received_at: u64,
        published_by: Option<Publisher>,
    ) -> Result<(u64, u64), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                events,
                graph,
                received_at,
                published_by,
                reply,
            })
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

fn db_of<E: std::fmt::Display>(e: E) -> StoreError {
    db(e)
}

/// The highest sequence number given so far.
fn last_seq(db: &Database) -> Result<u64, StoreError> {
    use redb::ReadableDatabase;
    let tx = db.begin_read().map_err(db_of)?;
    let table = tx.open_table(EVENTS).map_err(db_of)?;
    let stored = table.last().map_err(db_of)?.map_or(0, |(k, _)| k.value());
    let meta = tx.open_table(META).map_err(db_of)?;
    let given = meta
        .get(EVENTS_LAST_SEQ)
        .map_err(db_of)?
        .map_or(0, |v| v.value());
    Ok(stored.max(given))
}

/// Writes batches until every sender is gone.
fn writer(db: &Database, rx: &mpsc::Receiver<Request>, last: &mut u64) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let mut count = batch[0].events.len();
        while count < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => {
                    count += r.events.len();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        match write(db, &batch, *last) {
            Ok(new_last) => {
                let mut seq = *last;
                for Request { events, reply, .. } in batch {
                    let first = seq + 1;
                    seq += events.len() as u64;
                    drop(events);
                    let _ = reply.send(Ok((first, seq)));
                }
                *last = new_last;
            }
            Err(e) => {
                tracing::error!("event log commit failed: {e}");
                for Request { events, reply, .. } in batch {
                    drop(events);
                    let _ = reply.send(Err(StoreError::Db(e.to_string())));
                }
            }
        }
    }
}

fn write(db: &Database, batch: &[Request], last: u64) -> Result<u64, StoreError> {
    let mut tx = db.begin_write().map_err(db_of)?;
    tx.set_durability(Durability::Immediate).map_err(db_of)?;
    let mut seq = last;
    {
        let mut table = tx.open_table(EVENTS).map_err(db_of)?;
        for r in batch {
            for (i, event) in r.events.iter().enumerate() {
                seq += 1;
                let stored = StoredEventRef {
                    seq,
                    received_at: r.received_at,
                    published_by: r.published_by.as_ref(),
                    event,
                    graph: r.graph.get(i).and_then(Option::as_ref),
                };
                let bytes = serde_json::to_vec(&stored).map_err(db_of)?;
                table.insert(seq, bytes.as_slice()).map_err(db_of)?;
            }
        }
        let mut meta = tx.open_table(META).map_err(db_of)?;
        meta.insert(EVENTS_LAST_SEQ, seq).map_err(db_of)?;
    }
    tx.commit().map_err(db_of)?;
    Ok(seq)
}
