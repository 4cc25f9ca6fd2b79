//! Containers on a Docker-compatible engine.

use serde::{Deserialize, Serialize};

use crate::{ExecError, Labels, Reconciled};

/// The label GRACE puts on every container it creates to scale a service up, naming the
/// template it was cloned from. Scaling down removes only containers carrying it: containers
/// people created are stopped, never removed.
pub const CLONE_LABEL: &str = "grace.clone-of";

/// A container's run state, as the Docker Engine API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Being restarted.
    Restarting,
    /// Stopped.
    Exited,
    /// Could not be stopped or removed.
    Dead,
}

/// A container's health check status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// The container has no health check.
    None,
    /// Within the health check's start period.
    Starting,
    /// The health check passes.
    Healthy,
    /// The health check fails.
    Unhealthy,
}

/// A container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Engine id.
    pub id: String,
    /// Name, without a leading slash.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Labels.
    pub labels: Labels,
    /// Run state.
    pub state: ContainerState,
    /// Health.
    pub health: Health,
}

/// A change of one container whose earlier outcome is unknown, as its intent recorded it.
///
/// `scale` has none: it makes a count true, so [`ContainerExecutor::list`] reads it back
/// (exactly that many running matches: in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `restart`: done when the container's process started after `since_millis`, when the
    /// change was decided (its intent's time, milliseconds since the epoch).
    Restart {
        /// Id or name.
        id: String,
        /// When the restart was decided.
        since_millis: u64,
    },
    /// `start`: done when the container runs.
    Start {
        /// Id or name.
        id: String,
    },
    /// `stop`: done when the container does not run.
    Stop {
        /// Id or name.
        id: String,
    },
}

impl Change {
    /// The container it names.
    pub fn id(&self) -> &str {
        match self {
            Change::Restart { id, .. } | Change::Start { id } | Change::Stop { id } => id,
        }
    }
}

/// How a change whose outcome is unknown reads on `container`, inspected now, which the
/// engine says started at `started_at_millis` (`None`: never started).
pub fn reconcile_read(
    change: &Change,
    container: Container,
    started_at_millis: Option<u64>,
) -> Reconciled<Container> {
    let running = container.state == ContainerState::Running;
    let done = match change {
        Change::Restart { since_millis, .. } => {
            running && started_at_millis.is_some_and(|at| at >= *since_millis)
        }
        Change::Start { .. } => running,
        Change::Stop { .. } => !running,
    };
    if done {
        Reconciled::Done(container)
    } else {
        Reconciled::NotApplied
    }
}

/// Acts on containers.
#[async_trait::async_trait]
pub trait ContainerExecutor: Send + Sync {
    /// Containers carrying every label of `selector`, sorted by name.
    async fn list(&self, selector: &Labels) -> Result<Vec<Container>, ExecError>;
    /// One container by id or name.
    async fn inspect(&self, id: &str) -> Result<Container, ExecError>;
    /// Restarts a container by id or name.
    async fn restart(&self, id: &str) -> Result<Container, ExecError>;
    /// Starts a container by id or name.
    async fn start(&self, id: &str) -> Result<Container, ExecError>;
    /// Stops a container by id or name.
    async fn stop(&self, id: &str) -> Result<Container, ExecError>;
    /// Makes exactly `replicas` running containers carry `selector`, starting stopped ones or
    /// cloning one of them as the template (clones carry [`CLONE_LABEL`]) to scale up, and
    /// stopping the newest to scale down (clones first; only clones are removed, never with
    /// their volumes); returns the running ones sorted by name.
    async fn scale(&self, selector: &Labels, replicas: u32) -> Result<Vec<Container>, ExecError>;
    /// The last `tail` lines a container by id or name wrote to stdout and stderr, oldest first
    /// (fewer when it wrote fewer; none when `tail` is 0).
    async fn logs(&self, id: &str, tail: u32) -> Result<Vec<String>, ExecError>;
    /// Reads the container and says whether `change`, whose earlier outcome is unknown, is in
    /// place (see [`crate::reconcile`]).
    async fn reconcile(&self, change: &Change) -> Result<Reconciled<Container>, ExecError>;
}
