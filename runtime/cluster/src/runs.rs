//! Runs in the engine, so that they outlive the replica that started them.
//!
//! - **The run board**, bucket `grace_runs`, key `run.<shard>.<run id>`: one value per run, the
//!   run as the server describes it (opaque here). A run is created once ([`RunBoard::create`]:
//!   a second creation of the same id finds it), and every later write is a compare-and-set on
//!   the revision its writer read ([`RunBoard::update`]), so of two replicas that both believe
//!   they hold a run, only one writes: the other learns the run moved.
//! - **The change journal**, stream `GRACE_CHANGES`, subject `grace.changes.<run id>`: the
//!   intent and the outcome of every change a run made, in order, whichever replica made it
//!   ([`RunBoard::journal`]), read back by the replica that takes the run over
//!   ([`RunBoard::journal_of`]).
//!
//! Run ids are lowercase hex (the server derives them from the event's place in the log), so
//! they are valid subject tokens and keys; any other id is refused before a request is built.
//! Both are kept `event_retention`: a run refers to its event by its place in the event log.

use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use futures_util::StreamExt;

use crate::connect::Engine;
use crate::error::ClusterError;
use crate::keyed::{Keyed, Kind};
use crate::members::within;
use crate::schema::{BucketSpec, create_checked};
use crate::settings::ClusterSettings;

/// The change journal's stream.
pub const JOURNAL: &str = "GRACE_CHANGES";

/// The largest run record and the largest change record.
pub const MAX_RECORD_BYTES: i32 = 512 * 1024;

/// The most records of one run read back, and their most bytes: a run's records are bounded by
/// the host's limits per run, far below.
pub const MAX_JOURNAL_RECORDS: usize = 100_000;
/// See [`MAX_JOURNAL_RECORDS`].
pub const MAX_JOURNAL_BYTES: usize = 64 * 1024 * 1024;

/// The most runs of one shard listed at once.
pub const MAX_LISTED: usize = 100_000;

/// The run board's bucket.
pub fn board(settings: &ClusterSettings) -> BucketSpec {
    BucketSpec {
        name: "grace_runs",
        history: 1,
        max_age: settings.event_retention,
        max_value_bytes: MAX_RECORD_BYTES,
    }
}

/// The change journal's configuration.
pub fn journal_config(settings: &ClusterSettings) -> Config {
    Config {
        name: JOURNAL.to_owned(),
        subjects: vec!["grace.changes.*".to_owned()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        num_replicas: settings.engine_replicas,
        max_age: settings.event_retention,
        max_messages_per_subject: -1,
        max_message_size: MAX_RECORD_BYTES,
        // Kept `event_retention`, or until the run is taken off the board (its journal with
        // it); no size limit, so no record is dropped before.
        discard: DiscardPolicy::Old,
        allow_direct: true,
        ..Config::default()
    }
}

/// Whether `id` is a run id the engine can hold: 1 to 64 lowercase hex digits.
pub fn valid_run_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a run id may be, for messages.
const RULE: &str = "a run id in the engine is 1 to 64 lowercase hex digits";

fn checked(id: &str) -> Result<&str, ClusterError> {
    if valid_run_id(id) {
        Ok(id)
    } else {
        Err(ClusterError::Corrupt {
            key: format!("run {:?}", id.chars().take(80).collect::<String>()),
            message: RULE.into(),
        })
    }
}

pub use crate::keyed::Stored as BoardRun;

/// The run board and the change journal.
#[derive(Clone)]
pub struct RunBoard {
    engine: Engine,
    board: Keyed,
    timeout: Duration,
}

impl RunBoard {
    /// Creates the bucket and the stream, or checks those there.
    pub async fn open(engine: &Engine, settings: &ClusterSettings) -> Result<Self, ClusterError> {
        create_checked(
            engine,
            &journal_config(settings),
            "every replica must have the same cluster.event_retention and cluster.engine_replicas",
        )
        .await?;
        let board = board(settings)
            .ensure(engine, settings.engine_replicas)
            .await?;
        Ok(RunBoard {
            engine: engine.clone(),
            board: Keyed::new(
                board,
                settings.request_timeout,
                Kind {
                    prefix: "run",
                    what: "run",
                    valid: valid_run_id,
                    rule: RULE,
                },
            ),
            timeout: settings.request_timeout,
        })
    }

    /// The runs of `shard`.
    fn shard(&self, shard: u32) -> Keyed {
        self.board.under(format!("run.{shard}"))
    }

    /// Puts a new run on the board; `None` when a run of that id is there already (created by
    /// an earlier owner of the shard, which matched the same event).
    pub async fn create(
        &self,
        shard: u32,
        id: &str,
        value: Vec<u8>,
    ) -> Result<Option<u64>, ClusterError> {
        self.shard(shard).create(id, value).await
    }

    /// Writes run `id` if it is still at `revision`: [`ClusterError::Conflict`] when another
    /// replica wrote it since (it took the run over). Returns the new revision.
    pub async fn update(
        &self,
        shard: u32,
        id: &str,
        value: Vec<u8>,
        revision: u64,
    ) -> Result<u64, ClusterError> {
        self.shard(shard).update(id, value, revision).await
    }

    /// Run `id` of `shard`, if it is on the board.
    pub async fn get(&self, shard: u32, id: &str) -> Result<Option<BoardRun>, ClusterError> {
        self.shard(shard).get(id).await
    }

    /// Every run of `shard` on the board (at most [`MAX_LISTED`]).
    pub async fn list(&self, shard: u32) -> Result<Vec<BoardRun>, ClusterError> {
        self.shard(shard).list(MAX_LISTED).await
    }

    /// Takes run `id` off the board, with every value it had, and its journal.
    pub async fn remove(&self, shard: u32, id: &str) -> Result<(), ClusterError> {
        let board = self.shard(shard);
        let subject = board.subject(id)?;
        within(self.timeout, "remove run", async {
            let journal = self
                .engine
                .jetstream()
                .get_stream(JOURNAL)
                .await
                .map_err(|e| ClusterError::unavailable("remove run", e))?;
            journal
                .purge()
                .filter(format!("grace.changes.{id}"))
                .await
                .map_err(|e| ClusterError::unavailable("remove run", e))?;
            board
                .stream()
                .purge()
                .filter(subject)
                .await
                .map(|_| ())
                .map_err(|e| ClusterError::unavailable("remove run", e))
        })
        .await
    }

    /// Appends `record` to run `id`'s journal once the engine stored it; answers its stream
    /// sequence.
    pub async fn journal(&self, id: &str, record: Vec<u8>) -> Result<u64, ClusterError> {
        let subject = format!("grace.changes.{}", checked(id)?);
        within(self.timeout, "journal change", async {
            let ack = self
                .engine
                .jetstream()
                .publish(subject, record.into())
                .await
                .map_err(|e| ClusterError::unavailable("journal change", e))?
                .await
                .map_err(|e| ClusterError::unavailable("journal change", e))?;
            Ok(ack.sequence)
        })
        .await
    }

    /// Run `id`'s journal, in order, each record with its stream sequence.
    pub async fn journal_of(&self, id: &str) -> Result<Vec<(u64, Vec<u8>)>, ClusterError> {
        let subject = format!("grace.changes.{}", checked(id)?);
        within(self.timeout, "read journal", async {
            let stream = self
                .engine
                .jetstream()
                .get_stream(JOURNAL)
                .await
                .map_err(|e| ClusterError::unavailable("read journal", e))?;
            let consumer = stream
                .create_consumer(OrderedConfig {
                    filter_subject: subject,
                    deliver_policy: DeliverPolicy::All,
                    ..OrderedConfig::default()
                })
                .await
                .map_err(|e| ClusterError::unavailable("read journal", e))?;
            let mut records = Vec::new();
            if consumer.cached_info().num_pending == 0 {
                return Ok(records);
            }
            let mut messages = consumer
                .messages()
                .await
                .map_err(|e| ClusterError::unavailable("read journal", e))?;
            let mut bytes = 0usize;
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| ClusterError::unavailable("read journal", e))?;
                let info = message
                    .info()
                    .map_err(|e| ClusterError::unavailable("read journal", e))?;
                let pending = info.pending;
                bytes += message.payload.len();
                if records.len() >= MAX_JOURNAL_RECORDS || bytes > MAX_JOURNAL_BYTES {
                    return Err(ClusterError::Corrupt {
                        key: format!("journal of run {id}"),
                        message: "longer than any run writes".into(),
                    });
                }
                records.push((info.stream_sequence, message.payload.to_vec()));
                if pending == 0 {
                    break;
                }
            }
            Ok(records)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_hex_so_no_subject_or_key_can_be_forged() {
        assert!(valid_run_id("0123abcdef"));
        assert!(!valid_run_id(""));
        assert!(!valid_run_id("ABC"));
        assert!(!valid_run_id("a.b"));
        assert!(!valid_run_id("a*"));
        assert!(!valid_run_id("a>"));
        assert!(!valid_run_id(&"a".repeat(65)));
        assert!(checked("x y").is_err());
    }

    #[test]
    fn the_journal_and_the_board_keep_what_they_hold_as_long_as_the_events() {
        let config = journal_config(&ClusterSettings::default());
        assert_eq!(config.discard, DiscardPolicy::Old);
        assert_eq!(config.subjects, ["grace.changes.*"]);
        assert_eq!(
            board(&ClusterSettings::default()).max_age,
            ClusterSettings::default().event_retention
        );
    }
}
