//! The seam between GRACE's capabilities and the systems they act on.
//!
//! Each capability of the WIT package (`scaling`, `containers`, `kubernetes`, `metrics`) has one
//! executor trait here; the host-wide reads (`graph`, `anomaly`) have one reader trait each, and
//! `notify` one queue for the host's messages. A **provider** is a configured real thing or the
//! simulation that implements one: the simulated fleet implements all of them; the real
//! providers (AWS Auto Scaling, Docker-compatible engines, Kubernetes clusters, Prometheus)
//! implement the same traits, so a playbook that passed its dry-run runs unchanged against
//! production. A capability
//! may have several providers side by side; configuration says which serves a resource
//! ([`providers`], [`routing`]).
//!
//! Executors know nothing of WebAssembly, grants or the ledger: they receive arguments that the
//! engine has already checked and do exactly what they are asked.

pub mod anomaly;
pub mod budget;
pub mod clock;
pub mod containers;
mod error;
pub mod graph;
pub mod ident;
pub mod kubernetes;
pub mod locks;
pub mod metrics;
pub mod notify;
pub mod providers;
pub mod reconcile;
pub mod routing;
pub mod scaling;

use std::sync::Arc;

pub use anomaly::{AnomalyReader, NoDetectorHistory};
pub use clock::{Clock, SystemClock, VirtualClock};
pub use containers::ContainerExecutor;
pub use error::ExecError;
pub use graph::GraphReader;
pub use ident::IdentError;
pub use kubernetes::KubernetesExecutor;
pub use locks::{ResourceGuard, ResourceLocks};
pub use metrics::MetricsExecutor;
pub use notify::{DryRunMessages, NotifyExecutor};
pub use providers::{Capability, Provider, Providers, RouteError, Routes};
pub use reconcile::Reconciled;
pub use scaling::ScalingExecutor;

pub use grace_model::Labels;

/// The providers a run acts through, by name per capability, plus the clock it runs on and the
/// locks on the resources they serve.
///
/// A host makes one `Executors` and gives every run a clone: the clones share the providers
/// and the [`ResourceLocks`], which is what serializes changes of one resource across runs.
///
/// A capability with no provider is not available here: calls to it fail with
/// [`ExecError::Unavailable`] even when the manifest grants them.
#[derive(Clone)]
pub struct Executors {
    /// The run clock: virtual in simulation, the system clock in production.
    pub clock: Arc<dyn Clock>,
    /// Groups of instances.
    pub scaling: Providers<dyn ScalingExecutor>,
    /// Containers.
    pub containers: Providers<dyn ContainerExecutor>,
    /// Kubernetes deployments.
    pub kubernetes: Providers<dyn KubernetesExecutor>,
    /// Metric queries.
    pub metrics: Providers<dyn MetricsExecutor>,
    /// The health graph, when the host keeps one.
    pub graph: Option<Arc<dyn GraphReader>>,
    /// The anomaly detectors' scores and forecasts, when the host keeps any.
    pub anomaly: Option<Arc<dyn AnomalyReader>>,
    /// Where playbooks' messages are queued, when the host has somewhere to send them.
    pub notify: Option<Arc<dyn NotifyExecutor>>,
    /// Locks on resources being changed, shared by every run holding a clone.
    pub locks: Arc<ResourceLocks>,
}

impl Executors {
    /// No provider for any capability, on the given clock.
    pub fn none(clock: Arc<dyn Clock>) -> Self {
        Executors {
            clock,
            scaling: Providers::none(),
            containers: Providers::none(),
            kubernetes: Providers::none(),
            metrics: Providers::none(),
            graph: None,
            anomaly: None,
            notify: None,
            locks: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executors")
            .field("clock", &self.clock)
            .field("scaling", &self.scaling)
            .field("containers", &self.containers)
            .field("kubernetes", &self.kubernetes)
            .field("metrics", &self.metrics)
            .finish()
    }
}
