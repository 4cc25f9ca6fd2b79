//! Groups of instances: a named set of like instances with a desired capacity, converging to
//! it (an AWS Auto Scaling group, a GCP managed instance group, an Azure scale set). Each
//! provider maps its cloud's terms onto these; they stay inside its crate.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ExecError, IdentError, Reconciled};

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LifecycleState {
    /// Launched, not yet serving.
    Pending,
    /// Serving traffic.
    InService,
    /// Being removed.
    Terminating,
}

/// One instance of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Instance id.
    pub id: String,
    /// Lifecycle state.
    pub lifecycle_state: LifecycleState,
    /// Whether its health checks pass.
    pub healthy: bool,
}

/// A group as its provider describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Smallest capacity the group allows.
    pub min_size: u32,
    /// Largest capacity the group allows.
    pub max_size: u32,
    /// The capacity the group is converging to.
    pub desired_capacity: u32,
    /// Its instances, in a stable order.
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

    /// Whether the desired capacity is in service and nothing else is left over.
    pub fn is_settled(&self) -> bool {
        self.in_service() == self.desired_capacity
            && u32::try_from(self.instances.len()).unwrap_or(u32::MAX) == self.desired_capacity
    }
}

/// A change of a group whose earlier outcome is unknown, as its intent recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `set-desired-capacity`: done when the group's desired capacity is `desired`.
    SetDesiredCapacity {
        /// The group.
        group: String,
        /// The capacity asked for.
        desired: u32,
    },
}

/// Acts on groups of instances.
#[async_trait::async_trait]
pub trait ScalingExecutor: Send + Sync {
    /// Checks a group name by this provider's own rules (its cloud's), before any grant sees
    /// it: what passes is exactly what the provider's API gets. `argument` names it in errors.
    fn check_group_name<'a>(
        &self,
        argument: &'static str,
        name: &'a str,
    ) -> Result<&'a str, IdentError>;
    /// Describes a group.
    async fn describe_group(&self, name: &str) -> Result<Group, ExecError>;
    /// Sets the desired capacity; fails with `InvalidArgument` outside the group's min/max size.
    async fn set_desired_capacity(&self, name: &str, desired: u32) -> Result<Group, ExecError>;
    /// Waits until the desired capacity is in service, or `timeout` passes on the run clock.
    async fn wait_in_service(&self, name: &str, timeout: Duration) -> Result<Group, ExecError>;
    /// Reads the group and says whether `change`, whose earlier outcome is unknown, is in place
    /// (see [`crate::reconcile`]).
    async fn reconcile(&self, change: &Change) -> Result<Reconciled<Group>, ExecError>;
}

/// The reconciliation every scaling provider shares: a desired capacity is a target state, so
/// the group as read at the target means the change is done, whoever made it.
pub fn reconcile_read(change: &Change, group: Group) -> Reconciled<Group> {
    match change {
        Change::SetDesiredCapacity { desired, .. } if group.desired_capacity == *desired => {
            Reconciled::Done(group)
        }
        Change::SetDesiredCapacity { .. } => Reconciled::NotApplied,
    }
}
