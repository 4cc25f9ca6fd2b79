//! The cluster's event log: the stream `GRACE_EVENTS`, one subject per shard
//! (`grace.events.<shard>`), replicated by the engine.
//!
//! Any replica accepts events: each is published to its resource's shard with a message id
//! derived from its content, so the same event sent to two replicas (an Alertmanager
//! notification fanned out, a publisher retrying on another replica) is stored once — the
//! engine drops a message whose id it saw within the stream's duplicate window. An event is
//! acknowledged to its publisher once the engine acknowledged it, i.e. once a quorum of the
//! engine's nodes stored it.
//!
//! The shard's owner reads the shard's subject in order ([`ShardReader`]) and imports each
//! event into its own pipeline; how far it got is the shard's import checkpoint
//! (`import.<shard>` in the bucket `grace_shards`), written by compare-and-set after the events
//! are durable in the owner's store, so the next owner starts after it.

use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::connect::Engine;
use crate::error::ClusterError;
use crate::members::within;
use crate::schema::{BucketSpec, create_checked};
use crate::settings::ClusterSettings;
use crate::shards::shard_of;

/// The stream's name.
pub const STREAM: &str = "GRACE_EVENTS";

/// The largest event the stream takes (an API body is at most a few MiB, a batch of events).
pub const MAX_EVENT_BYTES: i32 = 1024 * 1024;

/// How long the engine remembers message ids to drop duplicates.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The subject of shard `shard`'s events.
pub fn subject(shard: u32) -> String {
    format!("grace.events.{shard}")
}

/// The stream's configuration: kept `event_retention`, at most `events_max_bytes`, refusing
/// new events when full (an event is never dropped unread to make room; publishers get an
/// error and retry).
pub fn stream_config(settings: &ClusterSettings) -> Config {
    Config {
        name: STREAM.to_owned(),
        subjects: vec!["grace.events.*".to_owned()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        num_replicas: settings.engine_replicas,
        max_age: settings.event_retention,
        max_bytes: settings.events_max_bytes,
        // No limit per subject (the server answers -1 for "none", and the answer is compared).
        max_messages_per_subject: -1,
        max_message_size: MAX_EVENT_BYTES,
        discard: DiscardPolicy::New,
        duplicate_window: DUPLICATE_WINDOW,
        allow_direct: true,
        ..Config::default()
    }
}

/// Import checkpoints, `import.<shard>` → the last stream sequence the shard's owner imported.
pub fn checkpoints() -> BucketSpec {
    BucketSpec {
        name: "grace_shards",
        history: 1,
        max_age: Duration::ZERO,
        max_value_bytes: 4096,
    }
}

/// The message id of an event: a digest of its content as serialized, so that the same event
/// published twice is one message.
pub fn message_id(event_json: &[u8]) -> String {
    let digest = Sha256::digest(event_json);
    let mut id = String::with_capacity(64);
    for byte in digest {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// One event published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Its shard.
    pub shard: u32,
    /// Its stream sequence (the first publication's, for a duplicate).
    pub sequence: u64,
    /// Whether the engine had it already.
    pub duplicate: bool,
}

/// The cluster's event log.
#[derive(Clone)]
pub struct EventStream {
    engine: Engine,
    shards: u32,
    timeout: Duration,
    checkpoints: kv::Store,
}

impl EventStream {
    /// Creates the stream and the checkpoint bucket, or checks those there.
    pub async fn open(engine: &Engine, settings: &ClusterSettings) -> Result<Self, ClusterError> {
        let wanted = stream_config(settings);
        let got = create_checked(
            engine,
            &wanted,
            "every replica must have the same cluster.event_retention, cluster.events_max_bytes \
             and cluster.engine_replicas",
        )
        .await?;
        if got.duplicate_window != wanted.duplicate_window || got.max_bytes != wanted.max_bytes {
            return Err(ClusterError::schema(
                STREAM,
                format!(
                    "the engine answered with duplicate_window {:?} and max_bytes {}, not {:?} and {}",
                    got.duplicate_window, got.max_bytes, wanted.duplicate_window, wanted.max_bytes
                ),
            ));
        }
        let checkpoints = checkpoints()
            .ensure(engine, settings.engine_replicas)
            .await?;
        Ok(EventStream {
            engine: engine.clone(),
            shards: settings.shards,
            timeout: settings.request_timeout,
            checkpoints,
        })
    }

    /// Publishes events, each `(resource, message id, payload)` (see [`message_id`]), and
    /// waits until the engine stored every one. A failure leaves the events before it stored:
    /// a publisher retrying the whole batch adds nothing twice.
    pub async fn publish(
        &self,
        events: Vec<(String, String, Vec<u8>)>,
    ) -> Result<Vec<Published>, ClusterError> {
        let js = self.engine.jetstream();
        let mut pending = Vec::with_capacity(events.len());
        for (resource, id, payload) in events {
            let shard = shard_of(&resource, self.shards);
            let ack = js
                .send_publish(
                    subject(shard),
                    PublishMessage::build()
                        .payload(payload.into())
                        .message_id(id),
                )
                .await
                .map_err(|e| ClusterError::unavailable("publish event", e))?;
            pending.push((shard, ack));
        }
        let mut published = Vec::with_capacity(pending.len());
        for (shard, ack) in pending {
            let ack = ack
                .await
                .map_err(|e| ClusterError::unavailable("publish event", e))?;
            published.push(Published {
                shard,
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            });
        }
        Ok(published)
    }

    /// The events of `shard` published since `since` (wall clock, by the engine's stamp), up to
    /// stream sequence `through`, at most the last `max` of them: what a new owner offers its
    /// trigger mesh, without firing, so that windows and cooldowns survive the move.
    pub async fn recent(
        &self,
        shard: u32,
        through: u64,
        since: std::time::SystemTime,
        max: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, ClusterError> {
        let mut recent = std::collections::VecDeque::new();
        if through == 0 || max == 0 {
            return Ok(Vec::new());
        }
        let mut reader = self
            .reader_with(
                shard,
                DeliverPolicy::ByStartTime {
                    start_time: since.into(),
                },
            )
            .await?;
        // The reader stops at `through`, or once it handed out everything published (the
        // engine's count), or after MAX_RECENT_SCAN events. No event coming within the request
        // timeout while some are pending is an error, not the end of the past.
        let mut scanned = 0usize;
        let mut bytes = 0usize;
        while !reader.caught_up() {
            if scanned >= MAX_RECENT_SCAN {
                tracing::warn!(
                    shard,
                    scanned,
                    "the shard's recent past is longer than GRACE replays: its oldest part is left out"
                );
                break;
            }
            let batch = tokio::time::timeout(self.timeout, reader.next_batch(1024))
                .await
                .map_err(|_| {
                    ClusterError::unavailable(
                        "read shard events",
                        "no event came while some are pending",
                    )
                })??;
            scanned += batch.len();
            let mut done = false;
            for (seq, payload) in batch {
                if seq > through {
                    done = true;
                    break;
                }
                bytes += payload.len();
                recent.push_back((seq, payload));
                while recent.len() > max || bytes > MAX_RECENT_BYTES {
                    let Some((_, dropped)) = recent.pop_front() else {
                        break;
                    };
                    bytes -= dropped.len();
                }
            }
            if done {
                break;
            }
        }
        Ok(recent.into())
    }

    /// The import checkpoint of `shard` and the revision to compare against when moving it:
    /// `(0, 0)` before any import.
    pub async fn checkpoint(&self, shard: u32) -> Result<(u64, u64), ClusterError> {
        let key = format!("import.{shard}");
        // A read can be behind: the compare-and-set in [`Self::advance`] is what decides.
        let entry = within(self.timeout, "read import checkpoint", async {
            self.checkpoints
                .entry(&key)
                .await
                .map_err(|e| ClusterError::unavailable("read import checkpoint", e))
        })
        .await?;
        match entry.filter(|e| e.operation == kv::Operation::Put) {
            None => Ok((0, 0)),
            Some(e) => {
                // A sequence the next event can follow (not u64::MAX).
                let through = std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok())
                    .filter(|t| t.checked_add(1).is_some())
                    .ok_or_else(|| ClusterError::Corrupt {
                        key,
                        message: "not a sequence number".into(),
                    })?;
                Ok((through, e.revision))
            }
        }
    }

    /// Moves `shard`'s checkpoint to `through`, if it is still at `revision`:
    /// [`ClusterError::Conflict`] when another replica moved it (this one lost the shard).
    /// Returns the new revision.
    pub async fn advance(
        &self,
        shard: u32,
        through: u64,
        revision: u64,
    ) -> Result<u64, ClusterError> {
        let key = format!("import.{shard}");
        within(self.timeout, "write import checkpoint", async {
            match self
                .checkpoints
                .update(&key, through.to_string().into(), revision)
                .await
            {
                Ok(revision) => Ok(revision),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    Err(ClusterError::Conflict { key: key.clone() })
                }
                Err(e) => Err(ClusterError::unavailable("write import checkpoint", e)),
            }
        })
        .await
    }

    /// The event at stream sequence `seq` and its shard, if the log still holds it.
    pub async fn event_at(&self, seq: u64) -> Result<Option<(u32, Vec<u8>)>, ClusterError> {
        within(self.timeout, "read event", async {
            let stream = self
                .engine
                .jetstream()
                .get_stream(STREAM)
                .await
                .map_err(|e| ClusterError::unavailable("read event", e))?;
            match stream.direct_get(seq).await {
                Ok(message) => {
                    let shard = message
                        .subject
                        .as_str()
                        .strip_prefix("grace.events.")
                        .and_then(|s| s.parse::<u32>().ok())
                        .filter(|s| *s < self.shards)
                        .ok_or_else(|| ClusterError::Corrupt {
                            key: format!("event {seq}"),
                            message: "not under a shard's subject".into(),
                        })?;
                    Ok(Some((shard, message.payload.to_vec())))
                }
                Err(e)
                    if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound =>
                {
                    Ok(None)
                }
                Err(e) => Err(ClusterError::unavailable("read event", e)),
            }
        })
        .await
    }

    /// The engine node leading the event log now (its stream's Raft leader), if it has one.
    pub async fn leader(&self) -> Result<Option<String>, ClusterError> {
        within(self.timeout, "read event stream", async {
            let stream = self
                .engine
                .jetstream()
                .get_stream(STREAM)
                .await
                .map_err(|e| ClusterError::unavailable("read event stream", e))?;
            Ok(stream
                .cached_info()
                .cluster
                .as_ref()
                .and_then(|c| c.leader.clone()))
        })
        .await
    }

    /// Reads `shard`'s events in order from stream sequence `from`.
    pub async fn reader(&self, shard: u32, from: u64) -> Result<ShardReader, ClusterError> {
        self.reader_with(
            shard,
            DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
        )
        .await
    }

    async fn reader_with(
        &self,
        shard: u32,
        deliver_policy: DeliverPolicy,
    ) -> Result<ShardReader, ClusterError> {
        let stream = within(self.timeout, "open event stream", async {
            self.engine
                .jetstream()
                .get_stream(STREAM)
                .await
                .map_err(|e| ClusterError::unavailable("open event stream", e))
        })
        .await?;
        let consumer = within(self.timeout, "read shard events", async {
            stream
                .create_consumer(OrderedConfig {
                    filter_subject: subject(shard),
                    deliver_policy,
                    ..OrderedConfig::default()
                })
                .await
                .map_err(|e| ClusterError::unavailable("read shard events", e))
        })
        .await?;
        let pending = consumer.cached_info().num_pending;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| ClusterError::unavailable("read shard events", e))?;
        Ok(ShardReader { messages, pending })
    }
}

/// The most payload bytes in one batch a reader hands out (each event is at most
/// [`MAX_EVENT_BYTES`]).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The most events [`EventStream::recent`] reads (it keeps the last `max` of them): a shard's
/// day can be long.
pub const MAX_RECENT_SCAN: usize = 200_000;

/// The most payload bytes [`EventStream::recent`] keeps for one shard.
pub const MAX_RECENT_BYTES: usize = 32 * 1024 * 1024;

/// A shard's events in stream order.
pub struct ShardReader {
    messages: async_nats::jetstream::consumer::pull::Ordered,
    /// Events of the shard after the last one handed out, when it was delivered.
    pending: u64,
}

impl ShardReader {
    /// Whether every event of the shard published so far was handed out (as the engine counted
    /// when the last one was delivered).
    pub fn caught_up(&self) -> bool {
        self.pending == 0
    }

    fn entry(
        &mut self,
        message: Result<
            async_nats::jetstream::Message,
            async_nats::jetstream::consumer::pull::OrderedError,
        >,
    ) -> Result<(u64, Vec<u8>), ClusterError> {
        let message = message.map_err(|e| ClusterError::unavailable("read shard events", e))?;
        let info = message
            .info()
            .map_err(|e| ClusterError::unavailable("read shard events", e))?;
        self.pending = info.pending;
        Ok((info.stream_sequence, message.payload.to_vec()))
    }

    /// The next events: waits for one, then takes what else has arrived, up to `max` events
    /// and [`MAX_BATCH_BYTES`]. Each is its stream sequence and payload.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<(u64, Vec<u8>)>, ClusterError> {
        let mut batch = Vec::new();
        let first =
            self.messages.next().await.ok_or_else(|| {
                ClusterError::unavailable("read shard events", "the reader ended")
            })?;
        batch.push(self.entry(first)?);
        let mut bytes = batch[0].1.len();
        while batch.len() < max && bytes < MAX_BATCH_BYTES {
            match futures_util::FutureExt::now_or_never(self.messages.next()) {
                Some(Some(message)) => {
                    let e = self.entry(message)?;
                    bytes += e.1.len();
                    batch.push(e);
                }
                _ => break,
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_event_has_the_same_id_and_another_another() {
        let a = message_id(br#"{"event_type":"x","timestamp":1}"#);
        assert_eq!(a, message_id(br#"{"event_type":"x","timestamp":1}"#));
        assert_ne!(a, message_id(br#"{"event_type":"x","timestamp":2}"#));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn the_stream_refuses_new_events_when_full_rather_than_dropping_unread_ones() {
        let config = stream_config(&ClusterSettings::default());
        assert_eq!(config.discard, DiscardPolicy::New);
        assert!(config.max_bytes > 0);
        assert_eq!(subject(7), "grace.events.7");
    }
}
