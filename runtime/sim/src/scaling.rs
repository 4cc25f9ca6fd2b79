//! Groups of instances and the services they serve: the group model, the latency model, and the
//! simulated [`ScalingExecutor`].
//!
//! A group keeps every instance it ever launched, with its launch, in-service and removal times,
//! and a log of its desired capacity. Instance states are never stored, only computed from those
//! times, so the group can be described exactly at any moment, past or future, which is what
//! metric queries about the past need.

use std::time::Duration;

use grace_executor::scaling::{Group, Instance, LifecycleState};
use grace_executor::{ExecError, ScalingExecutor};
use serde::{Deserialize, Serialize};

use crate::fleet::{GroupSpec, ServiceSpec};
use crate::simulation::{Simulation, millis};

/// The most changes of desired capacity, and the most removed instances, a group remembers:
/// older ones are forgotten, so the saved state of a simulation that runs for months stays
/// bounded. Queries about times before the oldest change kept see that change's capacity.
pub const MAX_GROUP_HISTORY: usize = 1_000;

/// Utilisation at and above which a service counts as saturated.
const SATURATION: f64 = 0.95;

/// How many times its base latency a saturated service (or one with no capacity) answers in.
const SATURATED_FACTOR: f64 = 20.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct InstanceRecord {
    id: String,
    launched_at: u64,
    in_service_at: u64,
    removed_at: Option<u64>,
}

impl InstanceRecord {
    fn exists_at(&self, t: u64) -> bool {
        self.launched_at <= t && self.removed_at.is_none_or(|removed| t < removed)
    }
}

/// A group of instances: its limits, its desired-capacity log and every instance it launched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupState {
    pub name: String,
    pub min_size: u32,
    pub max_size: u32,
    warmup_millis: u64,
    /// `(time, desired capacity)`, oldest first; the first entry is the fleet file's, at time 0.
    desired_log: Vec<(u64, u32)>,
    /// In launch order, removed ones included (the newest [`MAX_GROUP_HISTORY`] of those).
    instances: Vec<InstanceRecord>,
    /// How many instances the group ever launched, forgotten ones included: ids number on
    /// from it. Absent in states saved before history was bounded (nothing was forgotten then).
    #[serde(default)]
    launched: u64,
}

impl GroupState {
    /// The group as the fleet file describes it: its initial instances have always been in service.
    pub fn new(spec: &GroupSpec) -> GroupState {
        let mut group = GroupState {
            name: spec.name.clone(),
            min_size: spec.min_size,
            max_size: spec.max_size,
            warmup_millis: millis(spec.warmup),
            desired_log: vec![(0, spec.desired_capacity)],
            instances: Vec::new(),
            launched: 0,
        };
        for _ in 0..spec.desired_capacity {
            group.launch(0, 0);
        }
        group
    }

    fn launch(&mut self, launched_at: u64, in_service_at: u64) {
        self.launched = self
            .launched
            .max(self.instances.len() as u64)
            .saturating_add(1);
        let id = format!("i-{}-{:04}", self.name, self.launched);
        self.instances.push(InstanceRecord {
            id,
            launched_at,
            in_service_at,
            removed_at: None,
        });
    }

    fn existing_at(&self, t: u64) -> impl DoubleEndedIterator<Item = &InstanceRecord> {
        self.instances.iter().filter(move |i| i.exists_at(t))
    }

    /// The desired capacity at `t`.
    pub fn desired_at(&self, t: u64) -> u32 {
        self.desired_log
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .or(self.desired_log.first())
            .map_or(0, |(_, desired)| *desired)
    }

    /// Instances in service at `t`.
    pub fn in_service_at(&self, t: u64) -> u32 {
        count(self.existing_at(t).filter(|i| i.in_service_at <= t))
    }

    /// Instances launched but not yet in service at `t`.
    pub fn pending_at(&self, t: u64) -> u32 {
        count(self.existing_at(t).filter(|i| i.in_service_at > t))
    }

    /// The group as the executor trait describes it, at `t`.
    pub fn describe(&self, t: u64) -> Group {
        let instances = self
            .existing_at(t)
            .map(|i| Instance {
                id: i.id.clone(),
                lifecycle_state: if i.in_service_at <= t {
                    LifecycleState::InService
                } else {
                    LifecycleState::Pending
                },
                healthy: true,
            })
            .collect();
        Group {
            name: self.name.clone(),
            min_size: self.min_size,
            max_size: self.max_size,
            desired_capacity: self.desired_at(t),
            instances,
        }
    }

    /// Sets the desired capacity at `now`: launches instances that are pending for the group's
    /// warmup, or removes the newest ones at once.
    pub fn set_desired_capacity(&mut self, now: u64, desired: u32) -> Result<(), ExecError> {
        if desired < self.min_size || desired > self.max_size {
            return Err(ExecError::InvalidArgument(format!(
                "desired capacity `{desired}` is outside group `{}`'s size limits: min {}, max {}",
                self.name, self.min_size, self.max_size
            )));
        }
        let existing = self.existing_at(now).count();
        let target = usize::try_from(desired).unwrap_or(usize::MAX);
        if target > existing {
            let in_service_at = now.saturating_add(self.warmup_millis);
            for _ in existing..target {
                self.launch(now, in_service_at);
            }
        } else {
            let newest: Vec<usize> = (0..self.instances.len())
                .rev()
                .filter(|&i| self.instances[i].exists_at(now))
                .take(existing - target)
                .collect();
            for i in newest {
                self.instances[i].removed_at = Some(now);
            }
        }
        match self.desired_log.last_mut() {
            Some(last) if last.0 == now => last.1 = desired,
            _ => self.desired_log.push((now, desired)),
        }
        self.forget_old_history();
        Ok(())
    }

    /// Keeps the newest [`MAX_GROUP_HISTORY`] changes of desired capacity and removed
    /// instances; instances that exist are always kept.
    pub fn forget_old_history(&mut self) {
        if self.desired_log.len() > MAX_GROUP_HISTORY {
            let excess = self.desired_log.len() - MAX_GROUP_HISTORY;
            self.desired_log.drain(..excess);
        }
        let removed = self
            .instances
            .iter()
            .filter(|i| i.removed_at.is_some())
            .count();
        if removed > MAX_GROUP_HISTORY {
            self.launched = self.launched.max(self.instances.len() as u64);
            let mut removal_times: Vec<u64> =
                self.instances.iter().filter_map(|i| i.removed_at).collect();
            removal_times.sort_unstable();
            // Forget those removed at or before this time, oldest first, up to the excess.
            let mut excess = removed - MAX_GROUP_HISTORY;
            let cutoff = removal_times[excess - 1];
            self.instances.retain(|i| match i.removed_at {
                Some(at) if at <= cutoff && excess > 0 => {
                    excess -= 1;
                    false
                }
                _ => true,
            });
        }
    }

    /// Why this group, restored from a saved state, cannot be the file's group `initial`
    /// (as the fleet file describes it) after changes: another name or limits, a desired
    /// capacity outside the limits, more instances than the limit allows.
    pub fn check_against(&self, initial: &GroupState) -> Result<(), String> {
        let name = &initial.name;
        if self.name != *name
            || (self.min_size, self.max_size, self.warmup_millis)
                != (initial.min_size, initial.max_size, initial.warmup_millis)
        {
            return Err(format!(
                "group `{}` is not the fleet file's group `{name}` (name, size limits or warmup differ)",
                self.name
            ));
        }
        if let Some((_, d)) = self
            .desired_log
            .iter()
            .find(|(_, d)| *d < self.min_size || *d > self.max_size)
        {
            return Err(format!(
                "group `{name}` has a desired capacity of {d}, outside its limits {}..={}",
                self.min_size, self.max_size
            ));
        }
        let existing = self
            .instances
            .iter()
            .filter(|i| i.removed_at.is_none())
            .count();
        // The bounds `trim` keeps (one more change of each kind may be pending it).
        if self.desired_log.len() > MAX_GROUP_HISTORY + 1
            || self.instances.len() > existing + MAX_GROUP_HISTORY + 1
        {
            return Err(format!(
                "group `{name}` keeps {} capacity changes and {} instances, more history than {MAX_GROUP_HISTORY} of each",
                self.desired_log.len(),
                self.instances.len()
            ));
        }
        if self.launched == u64::MAX {
            return Err(format!(
                "group `{name}` has launched too many instances to launch more"
            ));
        }
        if self.desired_log.is_empty() || existing > self.max_size as usize {
            return Err(format!(
                "group `{name}` has {existing} instances, more than its maximum of {}",
                self.max_size
            ));
        }
        Ok(())
    }

    /// When the last pending instance comes into service, if any is pending at `now`.
    pub fn settles_at(&self, now: u64) -> Option<u64> {
        self.existing_at(now)
            .map(|i| i.in_service_at)
            .filter(|&t| t > now)
            .max()
    }
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}

/// A service and its latency model.
#[derive(Debug, Clone)]
pub(crate) struct ServiceState {
    pub name: String,
    pub group: String,
    pub load_rps: f64,
    pub rps_per_instance: f64,
    pub base_latency_ms: f64,
}

impl ServiceState {
    pub fn new(spec: &ServiceSpec) -> ServiceState {
        ServiceState {
            name: spec.name.clone(),
            group: spec.group.clone(),
            load_rps: spec.load_rps,
            rps_per_instance: spec.rps_per_instance,
            base_latency_ms: spec.base_latency_ms,
        }
    }

    /// What `in_service` instances serve, in requests per second.
    pub fn capacity_rps(&self, in_service: u32) -> f64 {
        f64::from(in_service) * self.rps_per_instance
    }

    /// Load over capacity; `None` when there is no capacity (and some load).
    pub fn utilisation(&self, in_service: u32) -> Option<f64> {
        let capacity = self.capacity_rps(in_service);
        if capacity > 0.0 {
            Some(self.load_rps / capacity)
        } else if self.load_rps == 0.0 {
            Some(0.0)
        } else {
            None
        }
    }

    /// p95 latency in milliseconds: `base / (1 - u)` below saturation, `base * 20` at or above
    /// it and with no instance in service.
    pub fn p95_latency_ms(&self, in_service: u32) -> f64 {
        match self.utilisation(in_service) {
            Some(u) if in_service > 0 && u < SATURATION => self.base_latency_ms / (1.0 - u),
            _ => self.base_latency_ms * SATURATED_FACTOR,
        }
    }
}

/// The simulated groups.
#[derive(Debug, Clone)]
pub(crate) struct SimScaling {
    pub sim: Simulation,
}

#[async_trait::async_trait]
impl ScalingExecutor for SimScaling {
    /// AWS's rules: the simulated fleet stands in for AWS Auto Scaling, so a dry-run refuses
    /// the names AWS would.
    fn check_group_name<'a>(
        &self,
        argument: &'static str,
        name: &'a str,
    ) -> Result<&'a str, grace_executor::IdentError> {
        grace_executor::ident::aws_group_name(argument, name)
    }

    async fn describe_group(&self, name: &str) -> Result<Group, ExecError> {
        self.sim
            .with_world(|world, now| Ok(world.group(name)?.describe(now)))
    }

    async fn set_desired_capacity(&self, name: &str, desired: u32) -> Result<Group, ExecError> {
        self.sim.change_world(|world, now| {
            let group = world.group_mut(name)?;
            group.set_desired_capacity(now, desired)?;
            tracing::debug!(group = name, desired, "simulated group capacity set");
            Ok(group.describe(now))
        })
    }

    async fn reconcile(
        &self,
        change: &grace_executor::scaling::Change,
    ) -> Result<grace_executor::Reconciled<Group>, ExecError> {
        let grace_executor::scaling::Change::SetDesiredCapacity { group, .. } = change;
        let read = self.describe_group(group).await?;
        Ok(grace_executor::scaling::reconcile_read(change, read))
    }

    async fn wait_in_service(&self, name: &str, timeout: Duration) -> Result<Group, ExecError> {
        let clock = self.sim.clock();
        let deadline = self.sim.with_world(|world, now| {
            world
                .group(name)
                .map(|_| now.saturating_add(millis(timeout)))
        })?;
        loop {
            let (group, settles_at, now) = self.sim.with_world(|world, now| {
                let group = world.group(name)?;
                Ok::<_, ExecError>((group.describe(now), group.settles_at(now), now))
            })?;
            let Some(settles_at) = settles_at else {
                return Ok(group);
            };
            if now >= deadline {
                return Err(ExecError::TimedOut(format!(
                    "group `{name}` has {} of {} instances in service after waiting {}",
                    group.in_service(),
                    group.desired_capacity,
                    humantime::format_duration(timeout)
                )));
            }
            let until = settles_at.min(deadline);
            grace_executor::Clock::sleep(clock.as_ref(), Duration::from_millis(until - now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(warmup_secs: u64) -> GroupState {
        GroupState::new(&GroupSpec {
            name: "g".to_owned(),
            min_size: 1,
            max_size: 10,
            desired_capacity: 2,
            warmup: Duration::from_secs(warmup_secs),
        })
    }

    #[test]
    fn past_states_are_computed_from_the_launch_log() {
        let mut g = group(60);
        g.set_desired_capacity(1_000, 4).expect("in range");
        g.set_desired_capacity(100_000, 1).expect("in range");
        assert_eq!(
            (g.desired_at(999), g.in_service_at(999), g.pending_at(999)),
            (2, 2, 0)
        );
        assert_eq!(
            (
                g.desired_at(1_000),
                g.in_service_at(1_000),
                g.pending_at(1_000)
            ),
            (4, 2, 2)
        );
        assert_eq!((g.desired_at(61_000), g.in_service_at(61_000)), (4, 4));
        assert_eq!((g.desired_at(100_000), g.in_service_at(100_000)), (1, 1));
        let ids: Vec<_> = g
            .describe(100_000)
            .instances
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(
            ids,
            ["i-g-0001"],
            "scaling down removes the newest instances"
        );
    }

    #[test]
    fn instance_ids_count_up_and_are_never_reused() {
        let mut g = group(0);
        g.set_desired_capacity(10, 1).expect("in range");
        g.set_desired_capacity(20, 3).expect("in range");
        let ids: Vec<_> = g.describe(20).instances.into_iter().map(|i| i.id).collect();
        assert_eq!(ids, ["i-g-0001", "i-g-0003", "i-g-0004"]);
    }

    #[test]
    fn latency_model_follows_utilisation() {
        let s = ServiceState {
            name: "s".to_owned(),
            group: "g".to_owned(),
            load_rps: 520.0,
            rps_per_instance: 200.0,
            base_latency_ms: 120.0,
        };
        assert!((s.p95_latency_ms(3) - 900.0).abs() < 1e-9);
        assert!((s.p95_latency_ms(5) - 250.0).abs() < 1e-9);
        assert_eq!(s.p95_latency_ms(2), 2_400.0, "u = 1.3 is saturated");
        assert_eq!(s.p95_latency_ms(0), 2_400.0);
        assert_eq!(s.utilisation(0), None);
        assert_eq!(s.utilisation(4), Some(0.65));
    }
}
