//! Groups of instances: a named set of like instances converging to a desired capacity, served
//! by a cloud provider (an AWS Auto Scaling group, ...) or the simulated fleet.
//!
//! Needs `[grants.scaling]` in the manifest; calls outside its `groups`, capacity bounds,
//! `max_step` or `max_changes` fail with [`Error::Denied`].

use std::time::Duration;

use crate::bindings::playbook::grace::playbook::scaling as wit;
use crate::clock::millis;
use crate::{Error, Result};

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleState {
    /// Launched, not yet serving.
    Pending,
    /// Serving traffic.
    InService,
    /// Being removed.
    Terminating,
}

/// One instance of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Instance id.
    pub id: String,
    /// Lifecycle state.
    pub lifecycle_state: LifecycleState,
    /// Whether its health checks pass.
    pub healthy: bool,
}

/// A group and its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Smallest capacity the group allows.
    pub min_size: u32,
    /// Largest capacity the group allows.
    pub max_size: u32,
    /// The capacity the group is converging to.
    pub desired_capacity: u32,
    /// Its instances.
    pub instances: Vec<Instance>,
}

impl Group {
    /// How many instances are in service and healthy.
    pub fn in_service(&self) -> u32 {
        let n = self
            .instances
            .iter()
            .filter(|i| i.lifecycle_state == LifecycleState::InService && i.healthy)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Describes a group and its instances.
pub fn describe_group(name: &str) -> Result<Group> {
    wit::describe_group(name)
        .map(group)
        .map_err(Error::from_host)
}

/// Sets a group's desired capacity, within the group's size limits and the granted bounds.
/// Returns the group as it is right after the change (new instances still pending).
pub fn set_desired_capacity(name: &str, desired_capacity: u32) -> Result<Group> {
    wit::set_desired_capacity(name, desired_capacity)
        .map(group)
        .map_err(Error::from_host)
}

/// Waits until the group has its desired capacity in service and healthy, for at most
/// `timeout` on the run clock.
pub fn wait_in_service(name: &str, timeout: Duration) -> Result<Group> {
    wit::wait_in_service(name, millis(timeout))
        .map(group)
        .map_err(Error::from_host)
}

fn group(g: wit::Group) -> Group {
    Group {
        name: g.name,
        min_size: g.min_size,
        max_size: g.max_size,
        desired_capacity: g.desired_capacity,
        instances: g
            .instances
            .into_iter()
            .map(|i| Instance {
                id: i.id,
                lifecycle_state: match i.lifecycle_state {
                    wit::LifecycleState::Pending => LifecycleState::Pending,
                    wit::LifecycleState::InService => LifecycleState::InService,
                    wit::LifecycleState::Terminating => LifecycleState::Terminating,
                },
                healthy: i.healthy,
            })
            .collect(),
    }
}
