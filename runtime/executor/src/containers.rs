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
    /// When its process last started, as the engine reports it (`State.StartedAt`, on the
    /// engine's clock); `None` when it never started. Compared only with other readings of the
    /// same container, never with this host's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

/// A change of one container whose earlier outcome is unknown, as its intent recorded it.
///
/// `scale` has none: it makes a count true, so [`ContainerExecutor::list`] reads it back
/// (exactly that many running matches: in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `restart`: judged by the container's own start record, never by a clock: done when the
    /// container the intent found (`container_id`) started again since (its start time is no
    /// longer `started_at`, read just before the restart); not made while it is still
    /// `started_at`; a conflict when the reference now names another container (it was
    /// recreated since).
    Restart {
        /// The container as the retry resolves it (its full id).
        id: String,
        /// The full id of the container the intent found.
        container_id: String,
        /// Its start time as read before the restart ([`Container::started_at`]).
        started_at: Option<String>,
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

/// How a change whose outcome is unknown reads on `container`, inspected now. `parse_time`
/// reads the engine's start times (to tell a later start from an earlier one: both are on the
/// engine's clock).
pub fn reconcile_read(
    change: &Change,
    container: Container,
    parse_time: fn(&str) -> Option<i128>,
) -> Reconciled<Container> {
    let running = container.state == ContainerState::Running;
    let done = match change {
        Change::Restart {
            container_id,
            started_at,
            ..
        } => {
            if container.id != *container_id {
                return Reconciled::Conflict(format!(
                    "container `{}` is another container than the one the restart was decided on (id `{container_id}` then, `{}` now): it was recreated since, so it is not restarted again",
                    container.name, container.id
                ));
            }
            match (started_at, &container.started_at) {
                (_, None) => false,
                (None, Some(_)) => true,
                // Not started again, and not running either: the earlier restart may be
                // stopping it right now (Docker has no precondition to make a restart
                // conditional), so a second one is not sent after it.
                (Some(then), Some(now)) if then == now && !running => {
                    return Reconciled::Conflict(format!(
                        "container `{}` has not started again since {then} and is {}, not running: the earlier restart may still be under way, so it is not restarted again",
                        container.name,
                        format!("{:?}", container.state).to_lowercase()
                    ));
                }
                (Some(then), Some(now)) if then == now => false,
                (Some(then), Some(now)) => match (parse_time(then), parse_time(now)) {
                    (Some(t), Some(n)) if n < t => {
                        return Reconciled::Conflict(format!(
                            "container `{}` reports a start at {now}, before the start at {then} read when the restart was decided: whether it restarted cannot be told",
                            container.name
                        ));
                    }
                    _ => true,
                },
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, started_at: Option<&str>) -> Container {
        Container {
            id: id.into(),
            name: "web-1".into(),
            image: "web:1".into(),
            labels: Labels::new(),
            state: ContainerState::Running,
            health: Health::None,
            started_at: started_at.map(str::to_owned),
        }
    }

    fn restart(container_id: &str, started_at: Option<&str>) -> Change {
        Change::Restart {
            id: "web-1".into(),
            container_id: container_id.into(),
            started_at: started_at.map(str::to_owned),
        }
    }

    /// Seconds, for these tests' times (`"10"`).
    fn seconds(text: &str) -> Option<i128> {
        text.parse::<i128>().ok()
    }

    #[test]
    fn a_restart_is_done_when_the_same_container_started_again_since() {
        let read = reconcile_read(
            &restart("c1", Some("10")),
            container("c1", Some("20")),
            seconds,
        );
        assert!(matches!(read, Reconciled::Done(_)), "{read:?}");
    }

    #[test]
    fn a_restart_is_not_applied_while_the_container_keeps_the_start_read_before_it() {
        let read = reconcile_read(
            &restart("c1", Some("10")),
            container("c1", Some("10")),
            seconds,
        );
        assert_eq!(read, Reconciled::NotApplied);
    }

    #[test]
    fn a_restart_not_started_again_whose_container_is_not_running_is_a_conflict_not_a_redo() {
        // The earlier restart may be stopping it now: a second restart would follow it.
        for state in [ContainerState::Exited, ContainerState::Restarting] {
            let mut stopping = container("c1", Some("10"));
            stopping.state = state;
            let read = reconcile_read(&restart("c1", Some("10")), stopping, seconds);
            let Reconciled::Conflict(message) = read else {
                panic!("expected a conflict, got {read:?}")
            };
            assert!(message.contains("not running"), "{message}");
        }
    }

    #[test]
    fn a_restart_of_a_container_recreated_since_is_a_conflict() {
        let read = reconcile_read(
            &restart("c1", Some("10")),
            container("c2", Some("20")),
            seconds,
        );
        let Reconciled::Conflict(message) = read else {
            panic!("expected a conflict, got {read:?}")
        };
        assert!(
            message.contains("`c1`") && message.contains("`c2`"),
            "{message}"
        );
    }

    #[test]
    fn a_start_earlier_than_the_one_read_before_the_restart_is_a_conflict() {
        let read = reconcile_read(
            &restart("c1", Some("20")),
            container("c1", Some("10")),
            seconds,
        );
        assert!(matches!(read, Reconciled::Conflict(_)), "{read:?}");
    }
}
