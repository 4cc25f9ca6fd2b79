//! The source supervisor: starts, replaces and stops the polled sources (the `[[sources.*]]` of
//! `grace.toml` and the enabled collectors), each a supervised task of its own, and keeps their
//! health for `GET /v1/sources`.
//!
//! Sources do not call the intake: each gets a sender of a bounded channel
//! ([`BATCH_CAPACITY`] batches), whose receiver the server hands to
//! [`Intake::pump`](crate::intake::Intake::pump), so that a source knows nothing of the server
//! around it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use grace_engine::TriggerEvent;
use tokio::sync::mpsc;

use super::health::Sources;
use super::poll::{self, Poller, Schedule};
use crate::supervisor::Supervisor;
use crate::sync::lock;

/// Batches waiting for the intake at most; a source with a batch to send waits for room.
pub const BATCH_CAPACITY: usize = 64;

/// The events of one successful poll.
#[derive(Debug)]
pub struct Batch {
    /// The source's name.
    pub source: String,
    /// Its events, checked by [`TriggerEvent::validate`].
    pub events: Vec<TriggerEvent>,
}

/// The polled sources and every source's health.
pub struct SourceSupervisor {
    health: Sources,
    supervisor: Arc<Supervisor>,
    pollers: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    batches: mpsc::Sender<Batch>,
    gate: Option<poll::Gate>,
}

impl SourceSupervisor {
    /// A supervisor whose sources' batches come out of the returned receiver.
    pub fn new(supervisor: Arc<Supervisor>) -> (SourceSupervisor, mpsc::Receiver<Batch>) {
        let (batches, rx) = mpsc::channel(BATCH_CAPACITY);
        let sources = SourceSupervisor {
            health: Sources::default(),
            supervisor,
            pollers: Mutex::new(HashMap::new()),
            batches,
            gate: None,
        };
        (sources, rx)
    }

    /// Polls each source only while `gate` says so for its name: in a cluster, only the
    /// replica holding the shard of `source:<name>` polls it (the others would publish the same
    /// samples again, stamped differently).
    pub fn gated(mut self, gate: poll::Gate) -> SourceSupervisor {
        self.gate = Some(gate);
        self
    }

    /// Every source's health.
    pub fn health(&self) -> &Sources {
        &self.health
    }

    /// Starts polling a source, replacing a poller of the same name.
    pub fn poll(
        &self,
        name: &str,
        kind: &'static str,
        target: String,
        poller: Arc<dyn Poller>,
        schedule: Schedule,
    ) {
        let pace = poll::Pace {
            gate: self.gate.clone(),
            wake: None,
        };
        self.start(name, kind, target, poller, schedule, pace);
    }

    /// Starts polling a source on every replica, whatever the gate says: for sources that only
    /// read the world into this replica's own state (health-graph discovery), which every
    /// replica needs. `wake` makes it poll at once, between its scheduled polls.
    pub fn poll_everywhere(
        &self,
        name: &str,
        kind: &'static str,
        target: String,
        poller: Arc<dyn Poller>,
        schedule: Schedule,
        wake: Arc<tokio::sync::Notify>,
    ) {
        let pace = poll::Pace {
            gate: None,
            wake: Some(wake),
        };
        self.start(name, kind, target, poller, schedule, pace);
    }

    fn start(
        &self,
        name: &str,
        kind: &'static str,
        target: String,
        poller: Arc<dyn Poller>,
        schedule: Schedule,
        pace: poll::Pace,
    ) {
        let state = self
            .health
            .polled(name, kind, target, schedule.unhealthy_after);
        let (batches, source) = (self.batches.clone(), name.to_owned());
        let task = self.supervisor.spawn(&format!("source:{name}"), move || {
            let run = poll::run(
                batches.clone(),
                source.clone(),
                poller.clone(),
                schedule,
                state.clone(),
                pace.clone(),
            );
            async move {
                run.await;
                Ok(())
            }
        });
        if let Some(old) = lock(&self.pollers).insert(name.to_owned(), task.abort_handle()) {
            old.abort();
        }
    }

    /// Stops a source and forgets its health (a collector disabled or replaced).
    pub fn stop(&self, name: &str) {
        self.health.remove(name);
        self.supervisor.forget(&format!("source:{name}"));
        if let Some(task) = lock(&self.pollers).remove(name) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use grace_executor::ExecError;

    use super::*;
    use crate::sources::poll::Polled;

    struct OneEvent;

    #[async_trait::async_trait]
    impl Poller for OneEvent {
        async fn poll(&self) -> Result<Polled, ExecError> {
            let event = TriggerEvent {
                event_type: "metrics.latency".into(),
                source: "test".into(),
                actor: "latency".into(),
                resource: "web".into(),
                payload: serde_json::json!({}),
                timestamp: 1_000,
            };
            Ok(Polled {
                events: vec![event],
                stale: 0,
            })
        }
    }

    #[tokio::test]
    async fn a_polled_sources_events_reach_the_channel_named_by_their_source() {
        let (sources, mut rx) = SourceSupervisor::new(Arc::new(Supervisor::default()));
        let schedule = Schedule {
            every: Duration::from_secs(3600),
            ..Schedule::default()
        };
        sources.poll("latency", "test", "t".into(), Arc::new(OneEvent), schedule);
        let batch = rx.recv().await.unwrap();
        assert_eq!(batch.source, "latency");
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].event_type, "metrics.latency");
        assert_eq!(
            sources.health().get("latency").unwrap().snapshot().events,
            1
        );
    }

    #[tokio::test]
    async fn a_stopped_source_sends_nothing_more_and_loses_its_health() {
        let (sources, mut rx) = SourceSupervisor::new(Arc::new(Supervisor::default()));
        let schedule = Schedule {
            every: Duration::from_millis(1000),
            ..Schedule::default()
        };
        sources.poll("latency", "test", "t".into(), Arc::new(OneEvent), schedule);
        rx.recv().await.unwrap();
        sources.stop("latency");
        assert!(sources.health().get("latency").is_none());
        // The poller's task is aborted, its sender dropped with it: only `sources` holds one.
        drop(sources);
        while rx.recv().await.is_some() {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_gated_source_polls_only_while_its_gate_is_open() {
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = open.clone();
        let (sources, mut rx) = SourceSupervisor::new(Arc::new(Supervisor::default()));
        let sources = sources.gated(Arc::new(move |name: &str| {
            name == "latency" && gate.load(std::sync::atomic::Ordering::SeqCst)
        }));
        let schedule = Schedule {
            every: Duration::from_secs(5),
            ..Schedule::default()
        };
        sources.poll("latency", "test", "t".into(), Arc::new(OneEvent), schedule);
        // Another replica polls it: nothing comes, however long.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(rx.try_recv().is_err());
        assert_eq!(
            sources.health().get("latency").unwrap().snapshot().events,
            0
        );
        // This replica takes the source's shard: it polls within a second.
        open.store(true, std::sync::atomic::Ordering::SeqCst);
        let batch = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(batch.source, "latency");
    }
}
