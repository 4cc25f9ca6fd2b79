//! Enabled Wasm collectors as polled sources (see [`crate::sources::poll`]): one pass per poll,
//! in one of the guest slots runs use too, its output refused as a whole when it passes the
//! server's caps.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use grace_engine::{Engine, Guest, RunEnv, TriggerEvent};
use grace_executor::ExecError;
use tokio::sync::Semaphore;

use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::sources::poll::{Polled, Poller, Schedule};
use crate::sources::supervisor::SourceSupervisor;

/// What collector passes run with, shared by every collector.
pub struct Collectors {
    engine: Engine,
    /// What every pass runs with: the executors, the ledger, the trust core (a collector's
    /// queries are decided like a playbook's calls) and the host's run bounds.
    env: RunEnv,
    config: Arc<ServeConfig>,
    metrics: Arc<Metrics>,
    /// Slots for guests running at once, shared with the runs (see `crate::scheduler`).
    slots: Arc<Semaphore>,
    /// Polls the collectors.
    sources: Arc<SourceSupervisor>,
}

impl Collectors {
    /// Collectors polled by `sources`.
    pub fn new(
        engine: Engine,
        env: RunEnv,
        config: Arc<ServeConfig>,
        metrics: Arc<Metrics>,
        slots: Arc<Semaphore>,
        sources: Arc<SourceSupervisor>,
    ) -> Collectors {
        Collectors {
            engine,
            env,
            config,
            metrics,
            slots,
            sources,
        }
    }

    /// Runs an enabled collector on its schedule (first pass at once, failures retried with
    /// backoff); the events it emits are ingested like published ones. Replaces the
    /// collector's previous schedule, if any.
    pub fn schedule(self: &Arc<Self>, guest: &Guest) {
        let every = guest.manifest.schedule.unwrap_or(Duration::from_secs(60));
        let schedule = Schedule {
            every,
            // A pass is bounded by its manifest's deadline; this only catches a stuck slot wait.
            timeout: every.max(Duration::from_secs(60)),
            ..Schedule::default()
        };
        let poller = Arc::new(CollectorPoller {
            collectors: self.clone(),
            guest: guest.clone(),
        });
        let target = format!("{}@{}", guest.manifest.name, guest.manifest.version);
        self.sources
            .poll(&guest.manifest.name, "collector", target, poller, schedule);
    }

    /// Stops a collector's schedule.
    pub fn stop(&self, name: &str) {
        self.sources.stop(name);
    }
}

struct CollectorPoller {
    collectors: Arc<Collectors>,
    guest: Guest,
}

#[async_trait::async_trait]
impl Poller for CollectorPoller {
    async fn poll(&self) -> Result<Polled, ExecError> {
        let c = &self.collectors;
        let _slot = c
            .slots
            .acquire()
            .await
            .map_err(|_| ExecError::Unavailable("the server is shutting down".into()))?;
        let report = c.engine.run_collector(&self.guest, &c.env).await;
        c.metrics
            .host_calls
            .fetch_add(u64::from(report.host_calls), Ordering::Relaxed);
        let over_cap = report
            .failure
            .is_none()
            .then(|| output_over_cap(&c.config, &report.events))
            .flatten();
        c.metrics
            .collector_pass(report.failure.is_none() && over_cap.is_none());
        if let Some(message) = over_cap {
            tracing::warn!(collector = %self.guest.manifest.name, "collector pass refused: {message}");
            return Err(ExecError::InvalidArgument(message));
        }
        match report.failure {
            Some(f) => Err(ExecError::Other(format!("{:?}: {}", f.kind, f.message))),
            None => Ok(Polled {
                events: report.events,
                stale: 0,
            }),
        }
    }
}

/// Why a collector pass's output is refused: more events or bytes than the server allows per
/// pass (`collector_max_events`, `collector_max_bytes`). The whole pass is dropped, so a
/// collector cannot flood the event log a little under the cap at every pass unnoticed: its
/// source turns unhealthy and `GET /v1/sources` shows why.
fn output_over_cap(config: &ServeConfig, events: &[TriggerEvent]) -> Option<String> {
    if events.len() > config.collector_max_events {
        return Some(format!(
            "the pass returned {} events, above the server's `collector_max_events` of {}",
            events.len(),
            config.collector_max_events
        ));
    }
    let bytes: usize = events
        .iter()
        .map(|e| e.event_type.len() + e.resource.len() + e.payload_text().len())
        .sum();
    (bytes > config.collector_max_bytes).then(|| {
        format!(
            "the pass returned {bytes} bytes of events, above the server's `collector_max_bytes` of {}",
            config.collector_max_bytes
        )
    })
}
