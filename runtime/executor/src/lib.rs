//! The seam between GRACE's capabilities and the systems they act on.
//!
//! Each capability of the WIT package (`scaling`, `containers`, `kubernetes`, `metrics`) has one
//! executor trait here. The simulated fleet implements all of them; the real backends (AWS Auto
//! Scaling, a Docker-compatible engine, Kubernetes, Prometheus) implement the same traits, so a
//! playbook that passed its dry-run runs unchanged against production.
//!
//! Executors know nothing of WebAssembly, grants or the ledger: they receive arguments that the
//! engine has already checked and do exactly what they are asked.

pub mod budget;
pub mod clock;
pub mod containers;
mod error;
pub mod ident;
pub mod kubernetes;
pub mod locks;
pub mod metrics;
pub mod scaling;

use std::sync::Arc;

pub use clock::{Clock, SystemClock, VirtualClock};
pub use containers::ContainerExecutor;
pub use error::ExecError;
pub use ident::IdentError;
pub use kubernetes::KubernetesExecutor;
pub use locks::{ResourceGuard, ResourceLocks};
pub use metrics::MetricsExecutor;
pub use scaling::ScalingExecutor;

pub use grace_model::Labels;

/// The executors a run acts through, one per capability, plus the clock it runs on and the
/// locks on the resources they serve.
///
/// A host makes one `Executors` and gives every run a clone: the clones share the executors
/// and the [`ResourceLocks`], which is what serializes changes of one resource across runs.
///
/// A missing executor means the capability has no backend configured here: calls to it fail
/// with [`ExecError::Unavailable`] even when the manifest grants them.
#[derive(Clone)]
pub struct Executors {
    /// The run clock: virtual in simulation, the system clock in production.
    pub clock: Arc<dyn Clock>,
    /// Auto Scaling groups.
    pub scaling: Option<Arc<dyn ScalingExecutor>>,
    /// Containers.
    pub containers: Option<Arc<dyn ContainerExecutor>>,
    /// Kubernetes deployments.
    pub kubernetes: Option<Arc<dyn KubernetesExecutor>>,
    /// Metric queries.
    pub metrics: Option<Arc<dyn MetricsExecutor>>,
    /// Locks on resources being changed, shared by every run holding a clone.
    pub locks: Arc<ResourceLocks>,
}

impl Executors {
    /// No backend for any capability, on the given clock.
    pub fn none(clock: Arc<dyn Clock>) -> Self {
        Executors {
            clock,
            scaling: None,
            containers: None,
            kubernetes: None,
            metrics: None,
            locks: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executors")
            .field("clock", &self.clock)
            .field("scaling", &self.scaling.is_some())
            .field("containers", &self.containers.is_some())
            .field("kubernetes", &self.kubernetes.is_some())
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}
