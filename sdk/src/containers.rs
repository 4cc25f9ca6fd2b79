//! Containers on a Docker-compatible engine (or the simulated fleet).
//!
//! Needs `[grants.containers]` in the manifest: only containers whose labels match its `labels`
//! are in scope, and only its `actions` are allowed. Selectors are any iterable of key/value
//! pairs: `[("app", "web")]`, a [`Labels`] map, or what [`parse_selector`] returns.

use crate::bindings::playbook::grace::playbook::containers as wit;
use crate::{Error, Labels, Result, labels};

/// A container's run state, as the Docker Engine API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl Container {
    /// Whether the container's health check fails.
    pub fn is_unhealthy(&self) -> bool {
        self.health == Health::Unhealthy
    }

    /// Whether the container is running and not failing its health check.
    pub fn is_healthy(&self) -> bool {
        self.state == ContainerState::Running && self.health != Health::Unhealthy
    }
}

/// Lists the containers that carry all the labels of `selector`.
///
/// ```no_run
/// let web = grace_sdk::containers::list([("app", "web")])?;
/// # Ok::<(), grace_sdk::Error>(())
/// ```
pub fn list<K, V>(selector: impl IntoIterator<Item = (K, V)>) -> Result<Vec<Container>>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    wit::list(&labels::to_wit(selector))
        .map(|cs| cs.into_iter().map(container).collect())
        .map_err(Error::from_host)
}

/// Restarts a container by id or name.
pub fn restart(id: &str) -> Result<Container> {
    wit::restart(id).map(container).map_err(Error::from_host)
}

/// Starts a stopped container by id or name.
pub fn start(id: &str) -> Result<Container> {
    wit::start(id).map(container).map_err(Error::from_host)
}

/// Stops a running container by id or name.
pub fn stop(id: &str) -> Result<Container> {
    wit::stop(id).map(container).map_err(Error::from_host)
}

/// The last `tail` lines (at most 1000) of a container's output, oldest first: for a run's
/// report, or to tell a crash from a hang before acting. Needs `"logs"` in the granted actions.
pub fn logs(id: &str, tail: u32) -> Result<Vec<String>> {
    wit::logs(id, tail).map_err(Error::from_host)
}

/// Makes exactly `replicas` containers carry the selector's labels, cloning or removing
/// containers of that service; returns them.
pub fn scale<K, V>(
    selector: impl IntoIterator<Item = (K, V)>,
    replicas: u32,
) -> Result<Vec<Container>>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    wit::scale(&labels::to_wit(selector), replicas)
        .map(|cs| cs.into_iter().map(container).collect())
        .map_err(Error::from_host)
}

/// Parses a selector written as `key=value` pairs separated by commas, e.g.
/// `app=web,tier=frontend`. Spaces around keys and values are ignored; empty pairs are skipped.
///
/// ```
/// let selector = grace_sdk::containers::parse_selector("app=web, tier=frontend")?;
/// assert_eq!(selector["tier"], "frontend");
/// # Ok::<(), grace_sdk::Error>(())
/// ```
pub fn parse_selector(selector: &str) -> Result<Labels> {
    selector
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(Error::msg(format_args!(
                "selector `{selector}`: `{pair}` is not a `key=value` pair"
            ))),
        })
        .collect()
}

fn container(c: wit::Container) -> Container {
    Container {
        id: c.id,
        name: c.name,
        image: c.image,
        labels: labels::from_wit(c.labels),
        state: match c.state {
            wit::ContainerState::Created => ContainerState::Created,
            wit::ContainerState::Running => ContainerState::Running,
            wit::ContainerState::Paused => ContainerState::Paused,
            wit::ContainerState::Restarting => ContainerState::Restarting,
            wit::ContainerState::Exited => ContainerState::Exited,
            wit::ContainerState::Dead => ContainerState::Dead,
        },
        health: match c.health {
            wit::Health::None => Health::None,
            wit::Health::Starting => Health::Starting,
            wit::Health::Healthy => Health::Healthy,
            wit::Health::Unhealthy => Health::Unhealthy,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_comma_separated_pairs() {
        let s = parse_selector(" app=web ,tier = frontend,").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s["app"], "web");
        assert_eq!(s["tier"], "frontend");
    }

    #[test]
    fn selector_pairs_without_equals_are_rejected() {
        let err = parse_selector("app=web,frontend").unwrap_err();
        assert_eq!(
            err.to_string(),
            "selector `app=web,frontend`: `frontend` is not a `key=value` pair"
        );
    }
}
