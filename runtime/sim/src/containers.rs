//! Containers in the simulation: the container model and the simulated [`ContainerExecutor`].
//!
//! What it does not model: images (any reference is accepted), health check timing (a started
//! container is healthy at once, or has no health status if it has no health check), pausing,
//! and exit codes. Ids are a 12-digit hex counter, so they are the same in every run.

use grace_executor::containers::{Container, ContainerState, Health};
use grace_executor::{ContainerExecutor, ExecError, Labels};

use crate::fleet::ContainerSpec;
use crate::simulation::Simulation;

/// The most containers one `scale` call may ask for: every one of them is kept in memory.
const MAX_REPLICAS: u32 = 1_000;

#[derive(Debug, Clone)]
struct ContainerRecord {
    container: Container,
    /// Whether the container has a health check: `none` health in the fleet file means it has not.
    has_health_check: bool,
}

impl ContainerRecord {
    fn run(&mut self) {
        self.container.state = ContainerState::Running;
        self.container.health = if self.has_health_check {
            Health::Healthy
        } else {
            Health::None
        };
    }
}

/// Every container, in creation order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Containers {
    records: Vec<ContainerRecord>,
    created: u64,
}

impl Containers {
    pub fn new(specs: &[ContainerSpec]) -> Containers {
        let mut containers = Containers::default();
        for spec in specs {
            let id = containers.next_id();
            containers.records.push(ContainerRecord {
                container: Container {
                    id,
                    name: spec.name.clone(),
                    image: spec.image.clone(),
                    labels: spec.labels.clone(),
                    state: spec.state,
                    health: spec.health,
                },
                has_health_check: spec.health != Health::None,
            });
        }
        containers
    }

    fn next_id(&mut self) -> String {
        self.created += 1;
        format!("{:012x}", self.created)
    }

    /// Every container, sorted by name.
    pub fn all(&self) -> Vec<Container> {
        self.list(&Labels::new())
    }

    /// The containers carrying every label of `selector`, sorted by name.
    pub fn list(&self, selector: &Labels) -> Vec<Container> {
        let mut found: Vec<Container> = self
            .records
            .iter()
            .filter(|r| carries(&r.container, selector))
            .map(|r| r.container.clone())
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    fn find(&self, id: &str) -> Result<usize, ExecError> {
        self.records
            .iter()
            .position(|r| r.container.id == id)
            .or_else(|| self.records.iter().position(|r| r.container.name == id))
            .ok_or_else(|| ExecError::NotFound(format!("no container with id or name `{id}`")))
    }

    pub fn inspect(&self, id: &str) -> Result<Container, ExecError> {
        Ok(self.records[self.find(id)?].container.clone())
    }

    /// Restarts a container: running, and healthy if it has a health check.
    pub fn restart(&mut self, id: &str) -> Result<Container, ExecError> {
        let i = self.find(id)?;
        let record = &mut self.records[i];
        record.run();
        Ok(record.container.clone())
    }

    /// Starts a container; starting a running one changes nothing, as with Docker.
    pub fn start(&mut self, id: &str) -> Result<Container, ExecError> {
        let i = self.find(id)?;
        let record = &mut self.records[i];
        match record.container.state {
            ContainerState::Running => {}
            ContainerState::Paused => {
                return Err(ExecError::Conflict(format!(
                    "container `{}` is paused: unpause it instead",
                    record.container.name
                )));
            }
            _ => record.run(),
        }
        Ok(record.container.clone())
    }

    /// Stops a container: exited, with no health status.
    pub fn stop(&mut self, id: &str) -> Result<Container, ExecError> {
        let i = self.find(id)?;
        let record = &mut self.records[i];
        record.container.state = ContainerState::Exited;
        record.container.health = Health::None;
        Ok(record.container.clone())
    }

    /// Makes exactly `replicas` running containers carry `selector`: clones the first of them
    /// (by name) as `<base>-<k>`, or removes the newest ones.
    pub fn scale(&mut self, selector: &Labels, replicas: u32) -> Result<Vec<Container>, ExecError> {
        if replicas > MAX_REPLICAS {
            return Err(ExecError::InvalidArgument(format!(
                "`{replicas}` replicas is more than the simulation's limit of {MAX_REPLICAS}"
            )));
        }
        let matching = self.list(selector);
        let running: Vec<&Container> = matching
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .collect();
        let template = running
            .first()
            .copied()
            .or(matching.first())
            .ok_or_else(|| {
                ExecError::NotFound(format!(
                    "no container carries `{}`, so there is none to scale",
                    format_labels(selector)
                ))
            })?;
        let target = usize::try_from(replicas).unwrap_or(usize::MAX);
        if running.len() < target {
            let template = self.records[self.find(&template.id)?].clone();
            let base = base_name(&template.container.name).to_owned();
            let mut k = 1u32;
            for _ in running.len()..target {
                while self
                    .records
                    .iter()
                    .any(|r| r.container.name == format!("{base}-{k}"))
                {
                    k += 1;
                }
                let id = self.next_id();
                let mut clone = template.clone();
                clone.container.id = id;
                clone.container.name = format!("{base}-{k}");
                clone.run();
                tracing::debug!(container = %clone.container.name, "simulated container created");
                self.records.push(clone);
            }
        } else {
            let surplus = running.len() - target;
            let newest: Vec<usize> = (0..self.records.len())
                .rev()
                .filter(|&i| {
                    let c = &self.records[i].container;
                    c.state == ContainerState::Running && carries(c, selector)
                })
                .take(surplus)
                .collect();
            // `newest` is in descending order, so earlier removals do not shift later indices.
            for i in newest {
                let removed = self.records.remove(i);
                tracing::debug!(container = %removed.container.name, "simulated container removed");
            }
        }
        Ok(self
            .list(selector)
            .into_iter()
            .filter(|c| c.state == ContainerState::Running)
            .collect())
    }
}

fn carries(container: &Container, selector: &Labels) -> bool {
    selector
        .iter()
        .all(|(k, v)| container.labels.get(k) == Some(v))
}

/// `web-1` → `web`; names without a numeric suffix are their own base.
fn base_name(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, n))
            if !base.is_empty() && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

/// `app=web,tier=frontend`, in key order.
pub(crate) fn format_labels(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The simulated Docker-compatible engine.
#[derive(Debug, Clone)]
pub(crate) struct SimContainers {
    pub sim: Simulation,
}

#[async_trait::async_trait]
impl ContainerExecutor for SimContainers {
    async fn list(&self, selector: &Labels) -> Result<Vec<Container>, ExecError> {
        Ok(self
            .sim
            .with_world(|world, _| world.containers.list(selector)))
    }

    async fn inspect(&self, id: &str) -> Result<Container, ExecError> {
        self.sim.with_world(|world, _| world.containers.inspect(id))
    }

    async fn restart(&self, id: &str) -> Result<Container, ExecError> {
        self.sim.with_world(|world, _| world.containers.restart(id))
    }

    async fn start(&self, id: &str) -> Result<Container, ExecError> {
        self.sim.with_world(|world, _| world.containers.start(id))
    }

    async fn stop(&self, id: &str) -> Result<Container, ExecError> {
        self.sim.with_world(|world, _| world.containers.stop(id))
    }

    async fn scale(&self, selector: &Labels, replicas: u32) -> Result<Vec<Container>, ExecError> {
        self.sim
            .with_world(|world, _| world.containers.scale(selector, replicas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_name_strips_a_numeric_suffix_only() {
        assert_eq!(base_name("web-1"), "web");
        assert_eq!(base_name("web-12"), "web");
        assert_eq!(base_name("web"), "web");
        assert_eq!(base_name("web-a"), "web-a");
        assert_eq!(base_name("-1"), "-1");
    }
}
