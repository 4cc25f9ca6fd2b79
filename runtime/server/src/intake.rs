//! The way in for events: a batch is checked against the queue, stored durably in the event
//! log, then queued for the [scheduler](crate::scheduler)'s matcher, all of it or none of it.
//!
//! The API's publish routes call [`Intake::ingest_from`]; polled sources and collectors send
//! their batches over the [source supervisor](crate::sources::supervisor)'s channel, which
//! [`Intake::pump`] empties.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use grace_engine::TriggerEvent;
use grace_engine::event::system_now_millis;
use grace_executor::Clock;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::simulation::{EventTimeBound, TooFarAhead};
use crate::sources::supervisor::Batch;
use crate::store::{EventLog, Publisher, StoreError};
use crate::supervisor::TaskError;
use crate::trust::HostTrust;

/// An accepted event on its way to the matcher.
pub(crate) struct Queued {
    pub(crate) seq: u64,
    pub(crate) event: TriggerEvent,
    /// What the health graph said of the event's resource when it was accepted.
    pub(crate) graph: Option<serde_json::Value>,
    pub(crate) received_at: u64,
    pub(crate) accepted: Instant,
    /// In a cluster: where the event is in the cluster's event log (imported events only).
    pub(crate) origin: Option<Origin>,
}

/// Where an imported event is in the cluster's event log: its runs' ids derive from it, so a
/// replica that imports the event again (the previous owner died before its checkpoint moved)
/// finds the runs already made rather than making them twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The shard.
    pub(crate) shard: u32,
    /// The stream sequence.
    pub(crate) seq: u64,
}

/// Why a batch was not accepted (nothing of it was stored).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// No events.
    #[error("the batch is empty")]
    Empty,
    /// Larger than the queue could ever hold.
    #[error(
        "a batch of {batch} events can never fit the event queue ({capacity} events): send smaller batches"
    )]
    NeverFits {
        /// Events in the batch.
        batch: usize,
        /// The queue's capacity.
        capacity: usize,
    },
    /// The queue cannot take it now.
    #[error(
        "the event queue holds {depth} of {capacity} events and cannot take {batch} more; nothing was stored, retry later"
    )]
    QueueFull {
        /// Events in the batch.
        batch: usize,
        /// Events waiting now.
        depth: usize,
        /// The queue's capacity.
        capacity: usize,
    },
    /// In simulation, an event stamped too far ahead (see [`crate::simulation`]).
    #[error("{error}")]
    TooFarAhead {
        /// Which event, and the bound.
        error: TooFarAhead,
        /// Events in the batch: a batch of one names the field `timestamp`, a longer one
        /// `events[i].timestamp`.
        batch: usize,
    },
    /// The event log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The storing task ended without an answer.
    #[error("the ingest task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// In a cluster: the cluster's event log did not store the batch (the events before the
    /// failure may be stored; publishing the batch again adds none of them twice).
    #[error("the cluster's event log is unavailable, retry: {0}")]
    Cluster(String),
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Empty => ApiError::field("events", e.to_string()),
            IngestError::NeverFits { .. } => ApiError::too_large(e.to_string()),
            IngestError::QueueFull {
                batch,
                depth,
                capacity,
            } => ApiError::queue_full(batch, depth, capacity),
            IngestError::TooFarAhead { error, batch } => {
                let field = if batch == 1 {
                    "timestamp".to_owned()
                } else {
                    format!("events[{}].timestamp", error.index)
                };
                let message = if batch == 1 {
                    error.to_string()
                } else {
                    format!("events[{}]: {error}", error.index)
                };
                ApiError::field(field, message)
            }
            IngestError::Store(e) => e.into(),
            IngestError::Task(e) => ApiError::internal(e.to_string()),
            IngestError::Cluster(_) => ApiError::overloaded(e.to_string()),
        }
    }
}

/// Stores and queues events.
pub struct Intake {
    events: EventLog,
    queue: mpsc::Sender<Queued>,
    capacity: usize,
    metrics: Arc<Metrics>,
    trust: Arc<HostTrust>,
    clock: Arc<dyn Clock>,
    /// In simulation, how far ahead events may be stamped.
    time_bound: Option<EventTimeBound>,
    /// In a cluster: where accepted events go (the shard owners import them, see
    /// [`crate::shard_import`]).
    shared: Option<grace_cluster::events::EventStream>,
    /// With `[graph]`: the graph whose facts about each event's resource are stored with it.
    graph: Option<Arc<crate::graph::Graph>>,
    /// The series' anomaly detectors, scoring metric events before they are stored.
    anomalies: Option<Arc<crate::anomaly::Anomalies>>,
}

/// An event as the cluster's event log holds it: with who published it and when it was
/// received, which the importing replica stores with it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct SharedEvent {
    pub(crate) event: TriggerEvent,
    pub(crate) publisher: Option<Publisher>,
    pub(crate) received_at: u64,
    /// What the receiving replica's health graph said of the event's resource: the replica
    /// that imports the event matches it on these facts, not on its own graph's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) graph: Option<serde_json::Value>,
}

impl Intake {
    /// An intake appending to `events` and queueing on `queue` (of `capacity` events).
    pub(crate) fn new(
        events: EventLog,
        queue: mpsc::Sender<Queued>,
        capacity: usize,
        metrics: Arc<Metrics>,
        trust: Arc<HostTrust>,
        clock: Arc<dyn Clock>,
    ) -> Intake {
        Intake {
            events,
            queue,
            capacity,
            metrics,
            trust,
            clock,
            time_bound: None,
            shared: None,
            graph: None,
            anomalies: None,
        }
    }

    /// Stores with each event what `graph` says of its resource, for `event.graph` in trigger
    /// conditions.
    pub(crate) fn with_graph(mut self, graph: Arc<crate::graph::Graph>) -> Intake {
        self.graph = Some(graph);
        self
    }

    /// Scores metric events with `anomalies` before they are stored (`crate::anomaly`).
    pub(crate) fn with_anomalies(mut self, anomalies: Arc<crate::anomaly::Anomalies>) -> Intake {
        self.anomalies = Some(anomalies);
        self
    }

    /// What the graph says of `event`'s resource now, if the intake has a graph.
    fn facts(&self, event: &TriggerEvent) -> Option<serde_json::Value> {
        self.graph.as_ref()?.facts(&event.resource)
    }

    /// In a cluster: accepted events go to the cluster's event log, not to this replica's.
    pub(crate) fn with_shared_log(mut self, log: grace_cluster::events::EventStream) -> Intake {
        self.shared = Some(log);
        self
    }

    /// In simulation: refuses events stamped further ahead than `bound` allows.
    pub(crate) fn with_time_bound(mut self, bound: EventTimeBound) -> Intake {
        self.time_bound = Some(bound);
        self
    }

    /// Accepts a batch from a polled source or a collector.
    pub async fn ingest(
        self: &Arc<Self>,
        events: Vec<TriggerEvent>,
    ) -> Result<(u64, u64), IngestError> {
        self.ingest_as(events, None).await
    }

    /// Accepts a batch published through the API: the events record the caller's token.
    pub async fn ingest_from(
        self: &Arc<Self>,
        events: Vec<TriggerEvent>,
        caller: &crate::auth::Caller,
    ) -> Result<(u64, u64), IngestError> {
        // The anonymous caller of `--insecure-no-auth` has no token to record.
        let publisher = (!caller.token_id.is_empty()).then(|| Publisher {
            token_id: caller.token_id.clone(),
            name: caller.name.clone(),
        });
        self.ingest_as(events, publisher).await
    }

    async fn ingest_as(
        self: &Arc<Self>,
        events: Vec<TriggerEvent>,
        publisher: Option<Publisher>,
    ) -> Result<(u64, u64), IngestError> {
        let this = self.clone();
        // Once stored, the events must reach the matcher: the store-then-queue step runs in its
        // own task, which a client hanging up (dropping this future) cannot cut short.
        tokio::spawn(async move { this.ingest_now(events, publisher).await }).await?
    }

    async fn ingest_now(
        &self,
        events: Vec<TriggerEvent>,
        publisher: Option<Publisher>,
    ) -> Result<(u64, u64), IngestError> {
        let n = events.len();
        if n == 0 {
            return Err(IngestError::Empty);
        }
        if n > self.capacity {
            return Err(IngestError::NeverFits {
                batch: n,
                capacity: self.capacity,
            });
        }
        // Before anything is stored or acknowledged: the timestamps as parsed.
        if let Some(bound) = &self.time_bound {
            bound
                .check(&events)
                .map_err(|error| IngestError::TooFarAhead { error, batch: n })?;
        }
        let mut events = events;
        // In a cluster the shared log deduplicates events by their content: they go there as
        // received, unscored (docs/anomaly.md, "Limits").
        if let Some(anomalies) = self.anomalies.as_ref().filter(|_| self.shared.is_none()) {
            // Scoring may refit forecasts (milliseconds each): off the async workers.
            let anomalies = anomalies.clone();
            let (room, now) = (self.capacity - n, self.clock.now_millis());
            let scored =
                tokio::task::spawn_blocking(move || anomalies.score(events, room, now)).await?;
            // Alarms ride with their batch; what would take it past the queue's capacity is
            // dropped (counted as throttled): the samples themselves are never refused for it.
            self.metrics
                .events_throttled
                .fetch_add(scored.dropped as u64, Ordering::Relaxed);
            events = scored.events;
        }
        let n = events.len();
        if let Some(log) = &self.shared {
            return self.publish_shared(log, events, publisher).await;
        }
        let Ok(permits) = self.queue.try_reserve_many(n) else {
            self.metrics
                .events_throttled
                .fetch_add(n as u64, Ordering::Relaxed);
            return Err(IngestError::QueueFull {
                batch: n,
                depth: self.queue_depth(),
                capacity: self.capacity,
            });
        };
        let origins = vec![None; n];
        let (first, last) = self
            .store_and_queue(
                events,
                origins,
                None,
                permits,
                system_now_millis(),
                publisher,
            )
            .await?;
        self.metrics
            .events_accepted
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok((first, last))
    }

    /// Publishes a checked batch to the cluster's event log, each event keyed by its content
    /// (the same event sent to two replicas is stored once). Answers the stream sequences.
    async fn publish_shared(
        &self,
        log: &grace_cluster::events::EventStream,
        events: Vec<TriggerEvent>,
        publisher: Option<Publisher>,
    ) -> Result<(u64, u64), IngestError> {
        let received_at = system_now_millis();
        let mut outgoing = Vec::with_capacity(events.len());
        for event in events {
            let id = grace_cluster::events::message_id(
                &serde_json::to_vec(&event).map_err(|e| IngestError::Cluster(e.to_string()))?,
            );
            let resource = event.resource.clone();
            let shared = SharedEvent {
                graph: self.facts(&event),
                event,
                publisher: publisher.clone(),
                received_at,
            };
            let payload =
                serde_json::to_vec(&shared).map_err(|e| IngestError::Cluster(e.to_string()))?;
            outgoing.push((resource, id, payload));
        }
        let published = log
            .publish(outgoing)
            .await
            .map_err(|e| IngestError::Cluster(e.to_string()))?;
        let fresh = published.iter().filter(|p| !p.duplicate).count() as u64;
        self.metrics
            .events_accepted
            .fetch_add(fresh, Ordering::Relaxed);
        let first = published.iter().map(|p| p.sequence).min().unwrap_or(0);
        let last = published.iter().map(|p| p.sequence).max().unwrap_or(0);
        Ok((first, last))
    }

    /// Stores events imported from the cluster's event log (this replica owns their shard)
    /// and queues them for the matcher, waiting for room in the queue rather than refusing:
    /// they were acknowledged to their publishers already. Events published together (one
    /// publisher, one receipt time) are stored together.
    pub(crate) async fn import(
        &self,
        events: Vec<(Origin, SharedEvent)>,
    ) -> Result<(), IngestError> {
        // Facts another replica computed are outside input: a shape they cannot have is
        // dropped (the event is matched as if the graph knew nothing of its resource).
        let checked = |facts: Option<serde_json::Value>| {
            facts.filter(|f| {
                let ok = grace_graph::HealthGraph::valid_facts(f);
                if !ok {
                    tracing::warn!("an imported event's graph facts are malformed: dropped");
                }
                ok
            })
        };
        let mut events = events
            .into_iter()
            .map(|(origin, mut e)| {
                e.graph = checked(e.graph.take());
                (origin, e)
            })
            .peekable();
        while let Some((origin, first)) = events.next() {
            let mut group = vec![(first.event, (Some(origin), first.graph))];
            while let Some((origin, next)) = events.next_if(|(_, e)| {
                e.received_at == first.received_at && e.publisher == first.publisher
            }) {
                group.push((next.event, (Some(origin), next.graph)));
            }
            for chunk in group.chunks(self.capacity.max(1)) {
                let permits = self
                    .queue
                    .reserve_many(chunk.len())
                    .await
                    .map_err(|_| IngestError::Cluster("the matcher has stopped".into()))?;
                let (events, imported): (Vec<TriggerEvent>, Vec<_>) = chunk.iter().cloned().unzip();
                let (origins, graph) = imported.into_iter().unzip();
                self.store_and_queue(
                    events,
                    origins,
                    Some(graph),
                    permits,
                    first.received_at,
                    first.publisher.clone(),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Stores `events` durably in this server's event log, then queues them for the matcher on
    /// `permits` (one each, reserved before): what accepting an event means on one server, and
    /// what importing one means in a cluster.
    ///
    /// `graph` is each event's graph facts when they came with it (imported events: the
    /// receiving replica's); otherwise this intake's graph is asked.
    async fn store_and_queue(
        &self,
        events: Vec<TriggerEvent>,
        origins: Vec<Option<Origin>>,
        graph: Option<Vec<Option<serde_json::Value>>>,
        permits: mpsc::PermitIterator<'_, Queued>,
        received_at: u64,
        publisher: Option<Publisher>,
    ) -> Result<(u64, u64), IngestError> {
        let accepted = Instant::now();
        let graph = graph.unwrap_or_else(|| events.iter().map(|e| self.facts(e)).collect());
        let events = Arc::new(events);
        let (first, last) = self
            .events
            .append(events.clone(), graph.clone(), received_at, publisher)
            .await?;
        // The writer has let go of the batch by now: take it back without copying.
        let events = Arc::try_unwrap(events).unwrap_or_else(|shared| (*shared).clone());
        if let Some(bound) = &self.time_bound {
            bound.accepted(&events);
        }
        for event in &events {
            self.trust.observe(event);
            if let Some(graph) = &self.graph {
                graph.event_seen(&event.event_type);
            }
        }
        let mut graph = graph.into_iter();
        for (((permit, event), seq), origin) in permits.zip(events).zip(first..=last).zip(origins) {
            permit.send(Queued {
                seq,
                event,
                graph: graph.next().flatten(),
                received_at,
                accepted,
                origin,
            });
        }
        Ok((first, last))
    }

    /// Hands the polled sources' batches (see [`crate::sources::supervisor`]) to
    /// [`ingest`](Intake::ingest), in the order they come. The receiver outlives a start of
    /// this task, so a restarted pump takes up the same channel. Ends when every sender is gone.
    pub async fn pump(
        self: Arc<Self>,
        rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Batch>>>,
    ) -> Result<(), TaskError> {
        let mut rx = rx.lock().await;
        while let Some(batch) = rx.recv().await {
            let n = batch.events.len();
            match self.ingest(batch.events).await {
                Ok((first, last)) => {
                    tracing::debug!(source = %batch.source, events = n, first, last, "polled")
                }
                // Counted as throttled; the next poll brings newer data.
                Err(e) => {
                    tracing::warn!(source = %batch.source, events = n, "polled events were not accepted: {e}")
                }
            }
        }
        Ok(())
    }

    /// Queues events read back from the log (accepted before a restart, not yet matched),
    /// waiting for room: the matcher takes events in sequence order whatever order they arrive.
    pub(crate) async fn requeue(&self, backlog: Vec<crate::store::StoredEvent>) {
        if let Some(bound) = &self.time_bound {
            let events: Vec<TriggerEvent> = backlog.iter().map(|e| e.event.clone()).collect();
            bound.accepted(&events);
        }
        for e in backlog {
            // Not imported now: in a cluster, the shard's owner imports it again from the
            // cluster's log (see `crate::scheduler`).
            let q = Queued {
                seq: e.seq,
                event: e.event,
                graph: e.graph,
                received_at: e.received_at,
                accepted: Instant::now(),
                origin: None,
            };
            if self.queue.send(q).await.is_err() {
                break;
            }
        }
    }

    /// Now, on the run clock (virtual in simulation): the timestamp of events that carry none.
    pub fn now_millis(&self) -> u64 {
        self.clock.now_millis()
    }

    /// Events waiting to be matched.
    pub fn queue_depth(&self) -> usize {
        self.capacity - self.queue.capacity()
    }

    /// Most events waiting at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
