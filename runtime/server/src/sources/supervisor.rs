//! The source supervisor: starts, replaces and stops the polled sources (the `[[sources.*]]` of
//! `grace.toml` and the enabled collectors), each a supervised task of its own, and keeps their
//! health for `GET /v1/sources`.
//!
//! Sources do not call the intake: each gets a sender of a bounded channel
//! ([`BATCH_CAPACITY`] batches) and the [`pump`] hands the batches to [`Intake::ingest`], so
//! that a source knows nothing of the server around it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use grace_engine::TriggerEvent;
use grace_executor::Executors;
use tokio::sync::mpsc;

use super::containers::ContainersSource;
use super::health::Sources;
use super::poll::{self, Poller, Schedule};
use crate::config::{ConfigError, ServeConfig};
use crate::intake::Intake;
use crate::supervisor::{Supervisor, TaskError};
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
}

impl SourceSupervisor {
    /// A supervisor whose sources' batches come out of the returned receiver (see [`pump`]).
    pub fn new(supervisor: Arc<Supervisor>) -> (SourceSupervisor, mpsc::Receiver<Batch>) {
        let (batches, rx) = mpsc::channel(BATCH_CAPACITY);
        let sources = SourceSupervisor {
            health: Sources::default(),
            supervisor,
            pollers: Mutex::new(HashMap::new()),
            batches,
        };
        (sources, rx)
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

    /// Starts the sources of `grace.toml`: the push endpoints' health, and every polled source.
    pub fn start_configured(
        &self,
        config: &ServeConfig,
        executors: &Executors,
        cloudwatch: Option<&grace_aws::CloudWatch>,
    ) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: "sources",
            message,
        };
        self.health.pushed(
            "alertmanager",
            "alertmanager",
            "POST /v1/sources/alertmanager".into(),
        );
        self.health.pushed(
            "metrics-push",
            "metrics-push",
            "POST /v1/sources/metrics".into(),
        );
        let promql = super::promql::build_all(&config.sources.promql, config.prometheus.as_deref())
            .map_err(invalid)?;
        for (source, schedule) in promql {
            let (name, target) = (source.name().to_owned(), source.query().to_owned());
            self.poll(&name, "promql", target, source, schedule);
        }
        let cloudwatch = super::cloudwatch::build_all(&config.sources.cloudwatch, cloudwatch)
            .map_err(invalid)?;
        for (source, schedule) in cloudwatch {
            let (name, target) = (source.name().to_owned(), source.target());
            self.poll(&name, "cloudwatch", target, source, schedule);
        }
        for (i, c) in config.sources.containers.iter().enumerate() {
            let (source, schedule) = ContainersSource::new(
                c,
                executors.containers.clone(),
                executors.clock.clone(),
                &format!("sources.containers[{i}]"),
            )
            .map_err(invalid)?;
            let (name, target) = (source.name().to_owned(), source.target());
            self.poll(&name, "containers", target, Arc::new(source), schedule);
        }
        Ok(())
    }
}

/// Whether `name` is a push source or a source configured in `grace.toml` (collectors may not
/// take these names).
pub fn is_configured(config: &ServeConfig, name: &str) -> bool {
    matches!(name, "alertmanager" | "metrics-push")
        || config.sources.names().any(|(_, n)| n == name)
}

/// Hands the sources' batches to the intake, in the order they come. The receiver outlives a
/// start of this task, so a restarted pump takes up the same channel. Ends when every sender
/// is gone.
pub async fn pump(
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Batch>>>,
    intake: Arc<Intake>,
) -> Result<(), TaskError> {
    let mut rx = rx.lock().await;
    while let Some(batch) = rx.recv().await {
        let n = batch.events.len();
        match intake.ingest(batch.events).await {
            Ok((first, last)) => {
                tracing::debug!(source = %batch.source, events = n, first, last, "polled")
            }
            // Counted as throttled by the intake; the next poll brings newer data.
            Err(e) => {
                tracing::warn!(source = %batch.source, events = n, "polled events were not accepted: {e}")
            }
        }
    }
    Ok(())
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
                event_type: "HighLatency".into(),
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
        assert_eq!(batch.events[0].event_type, "HighLatency");
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
}
