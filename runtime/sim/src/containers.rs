//! Containers in the simulation: the container model and the simulated [`ContainerExecutor`].
//!
//! What it does not model: images (any reference is accepted), health check timing (a started
//! container is healthy at once, or has no health status if it has no health check), pausing,
//! and exit codes. Ids are a 12-digit hex counter, so they are the same in every run.
//!
//! A container's "output" is a short log of what happened to it since the clock started (created
//! as a clone, started, restarted, stopped, health changes), one line per event stamped with
//! the virtual clock, so `logs` answers the same in every run. Only the newest
//! [`MAX_LOG_LINES`] lines are kept.

use std::collections::VecDeque;

use grace_executor::containers::{CLONE_LABEL, Change, Container, ContainerState, Health};
use grace_executor::{ContainerExecutor, ExecError, Labels, Reconciled};
use serde::{Deserialize, Serialize};

use crate::fleet::ContainerSpec;
use crate::simulation::Simulation;
use crate::snapshot::rfc3339;

/// The most containers one `scale` call may ask for: every one of them is kept in memory.
const MAX_REPLICAS: u32 = 1_000;

/// The most log lines kept per container; older lines are dropped first.
pub(crate) const MAX_LOG_LINES: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ContainerRecord {
    container: Container,
    /// Whether the container has a health check: `none` health in the fleet file means it has not.
    has_health_check: bool,
    /// What happened to it, oldest first, at most [`MAX_LOG_LINES`] lines.
    log: VecDeque<String>,
}

/// RFC 3339 time of `nanos` since the epoch, as an engine writes `State.StartedAt`.
fn start_time(nanos: i128) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A start time [`start_time`] wrote, in nanoseconds since the epoch.
fn start_nanos(text: &str) -> Option<i128> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp_nanos)
}

impl ContainerRecord {
    /// Runs the container (fresh processes: healthy at once if it has a health check), logging
    /// `event` and the health change at `now`.
    fn run(&mut self, event: &str, now: u64) {
        self.record(event, now);
        // The start time a real engine reports (`State.StartedAt`, with nanoseconds): each
        // start strictly later than the last one, even within one simulated millisecond, so a
        // restart is always told apart from the start before it.
        let previous = self.container.started_at.as_deref().and_then(start_nanos);
        let nanos = (i128::from(now) * 1_000_000).max(previous.map_or(0, |p| p + 1));
        self.container.started_at = start_time(nanos);
        self.container.state = ContainerState::Running;
        let health = if self.has_health_check {
            Health::Healthy
        } else {
            Health::None
        };
        self.set_health(health, now);
    }

    fn set_health(&mut self, health: Health, now: u64) {
        if self.container.health != health {
            let line = format!(
                "health: {} -> {}",
                health_name(self.container.health),
                health_name(health)
            );
            self.container.health = health;
            self.record(&line, now);
        }
    }

    /// Appends `event` stamped with `now`, dropping the oldest line beyond the bound.
    fn record(&mut self, event: &str, now: u64) {
        if self.log.len() == MAX_LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(format!("{} {event}", rfc3339(now)));
    }
}

/// Docker's name of a health status (`none` for no health check).
pub(crate) fn health_name(health: Health) -> &'static str {
    match health {
        Health::None => "none",
        Health::Starting => "starting",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

/// Every container, in creation order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
                    // Not started since the simulation began.
                    started_at: None,
                },
                has_health_check: spec.health != Health::None,
                log: VecDeque::new(),
            });
        }
        containers
    }

    /// Why these containers, restored from a saved state, cannot be the fleet file's
    /// `initial` ones after changes: every container of the file is still there (under its id,
    /// name and image) and the others are clones of them, no more than scaling can make, each
    /// with a bounded log.
    pub fn check_against(&self, initial: &Containers) -> Result<(), String> {
        for first in &initial.records {
            let c = &first.container;
            let kept = self.records.iter().any(|r| {
                (&r.container.id, &r.container.name, &r.container.image)
                    == (&c.id, &c.name, &c.image)
            });
            if !kept {
                return Err(format!(
                    "container `{}` of the fleet file is missing or changed",
                    c.name
                ));
            }
        }
        let limit = initial
            .records
            .len()
            .saturating_mul(MAX_REPLICAS as usize + 1);
        if self.records.len() > limit {
            return Err(format!(
                "{} containers, more than scaling the fleet file's {} can make ({limit})",
                self.records.len(),
                initial.records.len()
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for r in &self.records {
            if !ids.insert(&r.container.id) || !names.insert(&r.container.name) {
                return Err(format!(
                    "container `{}` (id `{}`) appears twice",
                    r.container.name, r.container.id
                ));
            }
        }
        for r in &self.records {
            let name = &r.container.name;
            let original = initial.records.iter().any(|i| i.container.name == *name);
            let clone_of_file = r.container.labels.contains_key(CLONE_LABEL)
                && initial
                    .records
                    .iter()
                    .any(|i| base_name(&i.container.name) == base_name(name));
            if !original && !clone_of_file {
                return Err(format!(
                    "container `{name}` is neither the fleet file's nor a clone of one of them"
                ));
            }
            if r.log.len() > MAX_LOG_LINES {
                return Err(format!(
                    "container `{name}` keeps {} log lines, more than {MAX_LOG_LINES}",
                    r.log.len()
                ));
            }
        }
        // Ids to come are made from `created`: one already taken, or none left, would repeat
        // an id.
        if self.created == u64::MAX
            || self
                .records
                .iter()
                .any(|r| u64::from_str_radix(&r.container.id, 16).is_ok_and(|n| n > self.created))
        {
            return Err(format!(
                "the count of containers created ({}) is behind the ids in use or exhausted",
                self.created
            ));
        }
        Ok(())
    }

    /// The fleet file's containers (clones left out), by name, as JSON to compare.
    pub fn originals(&self) -> Vec<(String, serde_json::Value)> {
        self.records
            .iter()
            .filter(|r| !r.container.labels.contains_key(CLONE_LABEL))
            .map(|r| {
                (
                    r.container.name.clone(),
                    serde_json::to_value(r).unwrap_or_default(),
                )
            })
            .collect()
    }

    fn next_id(&mut self) -> String {
        self.created = self.created.saturating_add(1);
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

    /// Whether `change`, whose earlier outcome is unknown, is in place, read as a real engine's
    /// inspect would be.
    pub fn reconcile(&self, change: &Change) -> Result<Reconciled<Container>, ExecError> {
        let record = &self.records[self.find(change.id())?];
        Ok(grace_executor::containers::reconcile_read(
            change,
            record.container.clone(),
            start_nanos,
        ))
    }

    /// Restarts a container: running, and healthy if it has a health check.
    pub fn restart(&mut self, id: &str, now: u64) -> Result<Container, ExecError> {
        let i = self.find(id)?;
        let record = &mut self.records[i];
        record.run("restarted", now);
        Ok(record.container.clone())
    }

    /// Starts a container; starting a running one changes nothing, as with Docker.
    pub fn start(&mut self, id: &str, now: u64) -> Result<Container, ExecError> {
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
            _ => record.run("started", now),
        }
        Ok(record.container.clone())
    }

    /// Stops a container: exited, with no health status.
    pub fn stop(&mut self, id: &str, now: u64) -> Result<Container, ExecError> {
        let i = self.find(id)?;
        let record = &mut self.records[i];
        if record.container.state != ContainerState::Exited {
            record.record("stopped", now);
            record.container.state = ContainerState::Exited;
        }
        record.set_health(Health::None, now);
        Ok(record.container.clone())
    }

    /// The last `tail` lines of a container's log, oldest first.
    pub fn logs(&self, id: &str, tail: u32) -> Result<Vec<String>, ExecError> {
        let log = &self.records[self.find(id)?].log;
        let tail = usize::try_from(tail).unwrap_or(usize::MAX).min(log.len());
        Ok(log.iter().skip(log.len() - tail).cloned().collect())
    }

    /// Makes exactly `replicas` running containers carry `selector`: clones the first of them
    /// (by name) as `<base>-<k>`, or removes the newest ones.
    pub fn scale(
        &mut self,
        selector: &Labels,
        replicas: u32,
        now: u64,
    ) -> Result<Vec<Container>, ExecError> {
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
                // A new container: none of the template's history, and no health until it runs.
                clone.log.clear();
                clone.container.health = Health::None;
                clone
                    .container
                    .labels
                    .insert(CLONE_LABEL.to_owned(), template.container.name.clone());
                clone.record(
                    &format!("created as a clone of `{}`", template.container.name),
                    now,
                );
                clone.run("started", now);
                tracing::debug!(container = %clone.container.name, "simulated container created");
                self.records.push(clone);
            }
        } else {
            // As on a real engine (grace-docker's `scale`): clones first, newest first, then the
            // others; only clones are removed, the others are stopped and kept.
            let surplus = running.len() - target;
            let mut victims: Vec<usize> = (0..self.records.len())
                .rev()
                .filter(|&i| {
                    let c = &self.records[i].container;
                    c.state == ContainerState::Running && carries(c, selector)
                })
                .collect();
            victims.sort_by_key(|&i| !self.records[i].container.labels.contains_key(CLONE_LABEL));
            victims.truncate(surplus);
            let (mut removed, stopped): (Vec<usize>, Vec<usize>) = victims
                .into_iter()
                .partition(|&i| self.records[i].container.labels.contains_key(CLONE_LABEL));
            for i in stopped {
                let record = &mut self.records[i];
                record.record("stopped to scale down", now);
                record.container.state = ContainerState::Exited;
                record.set_health(Health::None, now);
                tracing::debug!(container = %record.container.name, "simulated container stopped");
            }
            // Descending, so earlier removals do not shift later indices.
            removed.sort_unstable_by(|a, b| b.cmp(a));
            for i in removed {
                let gone = self.records.remove(i);
                tracing::debug!(container = %gone.container.name, "simulated container removed");
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
        self.sim
            .change_world(|world, now| world.containers.restart(id, now))
    }

    async fn start(&self, id: &str) -> Result<Container, ExecError> {
        self.sim
            .change_world(|world, now| world.containers.start(id, now))
    }

    async fn stop(&self, id: &str) -> Result<Container, ExecError> {
        self.sim
            .change_world(|world, now| world.containers.stop(id, now))
    }

    async fn scale(&self, selector: &Labels, replicas: u32) -> Result<Vec<Container>, ExecError> {
        self.sim
            .change_world(|world, now| world.containers.scale(selector, replicas, now))
    }

    async fn logs(&self, id: &str, tail: u32) -> Result<Vec<String>, ExecError> {
        self.sim
            .with_world(|world, _| world.containers.logs(id, tail))
    }

    async fn reconcile(&self, change: &Change) -> Result<Reconciled<Container>, ExecError> {
        self.sim
            .with_world(|world, _| world.containers.reconcile(change))
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

    /// 2026-01-01T00:00:00Z.
    const T0: u64 = 1_767_225_600_000;

    fn one_container(health: Health) -> Containers {
        Containers::new(&[ContainerSpec {
            name: "web-1".to_owned(),
            image: "localhost/busybox:local".to_owned(),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            state: ContainerState::Running,
            health,
        }])
    }

    #[test]
    fn logs_record_what_happened_with_virtual_clock_stamps() {
        let mut containers = one_container(Health::Unhealthy);
        assert_eq!(containers.logs("web-1", 10), Ok(vec![]));
        containers.restart("web-1", T0 + 1_000).expect("exists");
        containers.stop("web-1", T0 + 2_500).expect("exists");
        containers.start("web-1", T0 + 3_000).expect("exists");
        assert_eq!(
            containers.logs("web-1", 10),
            Ok(vec![
                "2026-01-01T00:00:01Z restarted".to_owned(),
                "2026-01-01T00:00:01Z health: unhealthy -> healthy".to_owned(),
                "2026-01-01T00:00:02.5Z stopped".to_owned(),
                "2026-01-01T00:00:02.5Z health: healthy -> none".to_owned(),
                "2026-01-01T00:00:03Z started".to_owned(),
                "2026-01-01T00:00:03Z health: none -> healthy".to_owned(),
            ])
        );
    }

    #[test]
    fn logs_tail_keeps_the_newest_lines_oldest_first() {
        let mut containers = one_container(Health::None);
        containers.stop("web-1", T0).expect("exists");
        containers.start("web-1", T0 + 1_000).expect("exists");
        containers.stop("web-1", T0 + 2_000).expect("exists");
        assert_eq!(
            containers.logs("web-1", 2),
            Ok(vec![
                "2026-01-01T00:00:01Z started".to_owned(),
                "2026-01-01T00:00:02Z stopped".to_owned(),
            ])
        );
        assert_eq!(containers.logs("web-1", 0), Ok(vec![]));
        assert!(matches!(
            containers.logs("web-9", 1),
            Err(ExecError::NotFound(_))
        ));
    }

    #[test]
    fn logs_are_bounded() {
        let mut containers = one_container(Health::None);
        for i in 0..MAX_LOG_LINES as u64 {
            containers.restart("web-1", T0 + i * 1_000).expect("exists");
        }
        let log = containers.logs("web-1", u32::MAX).expect("exists");
        assert_eq!(log.len(), MAX_LOG_LINES);
        assert_eq!(log[0], "2026-01-01T00:00:00Z restarted");
        containers.restart("web-1", T0 + 3_600_000).expect("exists");
        let log = containers.logs("web-1", u32::MAX).expect("exists");
        assert_eq!(log.len(), MAX_LOG_LINES);
        assert_eq!(log[0], "2026-01-01T00:00:01Z restarted");
        assert_eq!(log[MAX_LOG_LINES - 1], "2026-01-01T01:00:00Z restarted");
    }

    #[test]
    fn a_clone_starts_its_own_log() {
        let mut containers = one_container(Health::Healthy);
        containers.restart("web-1", T0).expect("exists");
        let web: Labels = [("app".to_owned(), "web".to_owned())].into();
        containers.scale(&web, 2, T0 + 5_000).expect("exists");
        assert_eq!(
            containers.logs("web-2", 10),
            Ok(vec![
                "2026-01-01T00:00:05Z created as a clone of `web-1`".to_owned(),
                "2026-01-01T00:00:05Z started".to_owned(),
                "2026-01-01T00:00:05Z health: none -> healthy".to_owned(),
            ])
        );
    }
}
