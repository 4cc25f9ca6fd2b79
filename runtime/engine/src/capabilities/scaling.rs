//! `scaling`: groups of instances, within `[grants.scaling]`, on the provider the host routes
//! each group to.

use std::time::Duration;

use grace_executor::scaling as exec;
use grace_executor::{Capability, Provider, RouteError, ScalingExecutor};
use grace_model::capability;
use serde_json::json;

use crate::bindings::scaling::{Group, Host, Instance, LifecycleState};
use crate::bindings::types::Error;
use crate::grants::{ScalingGrant, not_granted};
use crate::host::HostState;
use crate::pipeline::{Call, Planned, Refusal, Scope, preview};
use crate::trust::Proposal;

fn grant(scope: &Scope) -> Result<&ScalingGrant, Refusal> {
    scope
        .grants
        .scaling
        .as_ref()
        .ok_or_else(|| not_granted("scaling", &scope.guest).into())
}

/// A scaling provider, as resolved for one group.
type Routed = Result<Provider<dyn ScalingExecutor>, RouteError>;

/// The checks every scaling call starts with: the provider the group is routed to, the group
/// name by that provider's rules (checked before any grant, so the grant sees exactly what the
/// provider gets), within the granted groups and the provider the grant names.
fn granted_group<'s>(
    scope: &'s Scope,
    routed: Routed,
    name: &str,
) -> Result<(&'s ScalingGrant, Provider<dyn ScalingExecutor>), Refusal> {
    let provider = routed?;
    provider.check_group_name("name", name)?;
    let grant = grant(scope)?;
    scope
        .grants
        .check_provider(Capability::Scaling, name, provider.name())?;
    grant.check_group(name)?;
    Ok((grant, provider))
}

/// A group's state for the trust core: its desired capacity, and the instances in service and
/// healthy.
fn group_state(group: &exec::Group) -> grace_model::resource::State {
    let healthy = group
        .instances
        .iter()
        .filter(|i| i.healthy && i.lifecycle_state == exec::LifecycleState::InService)
        .count();
    grace_model::resource::State::new(
        group.desired_capacity,
        u32::try_from(healthy).unwrap_or(u32::MAX),
    )
}

impl From<exec::Group> for Group {
    fn from(g: exec::Group) -> Self {
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
                        exec::LifecycleState::Pending => LifecycleState::Pending,
                        exec::LifecycleState::InService => LifecycleState::InService,
                        exec::LifecycleState::Terminating => LifecycleState::Terminating,
                    },
                    healthy: i.healthy,
                })
                .collect(),
        }
    }
}

impl Host for HostState {
    async fn describe_group(&mut self, name: String) -> wasmtime::Result<Result<Group, Error>> {
        let routed = self.run.executors.scaling.route(&name);
        let call = Call::read(
            &capability::scaling::DESCRIBE_GROUP,
            json!({ "group": preview(&name) }),
        )
        .on(grace_model::resource::Resource::group(&name))
        .via(&routed);
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    let (_, provider) = granted_group(&scope, routed, &name)?;
                    Ok((provider, name))
                },
                |_, (provider, name)| async move { provider.describe_group(&name).await },
            )
            .await?;
        Ok(r.map(Group::from))
    }

    async fn set_desired_capacity(
        &mut self,
        name: String,
        desired_capacity: u32,
    ) -> wasmtime::Result<Result<Group, Error>> {
        let routed = self.run.executors.scaling.route(&name);
        let call = Call::change(
            &capability::scaling::SET_DESIRED_CAPACITY,
            name.clone(),
            json!({ "group": preview(&name), "desired_capacity": desired_capacity }),
        )
        .via(&routed);
        let r = self
            .run
            .perform_change(
                call,
                move |scope| async move {
                    // Out-of-scope groups are refused before the provider is even asked about them.
                    let (grant, provider) = granted_group(&scope, routed, &name)?;
                    let current = provider.describe_group(&name).await?;
                    grant.check_set_capacity(
                        &name,
                        current.desired_capacity,
                        desired_capacity,
                        scope.changes,
                    )?;
                    let proposal = Proposal {
                        resource: grace_model::resource::Resource::group(&name),
                        state: group_state(&current),
                        change: grace_model::resource::Change::Capacity {
                            to: desired_capacity,
                        },
                    };
                    Ok(Planned::new((provider, name), proposal))
                },
                // The capacity the earlier attempt asked for: a retry's playbook, reading the
                // group that attempt scaled, may ask for more.
                move |(provider, name), earlier| {
                    let desired = earlier
                        .args
                        .get("desired_capacity")
                        .and_then(serde_json::Value::as_u64)
                        .and_then(|d| u32::try_from(d).ok())
                        .unwrap_or(desired_capacity);
                    let (provider, change) = (
                        provider.clone(),
                        exec::Change::SetDesiredCapacity {
                            group: name.clone(),
                            desired,
                        },
                    );
                    async move { provider.reconcile(&change).await }
                },
                move |_, (provider, name)| async move {
                    provider.set_desired_capacity(&name, desired_capacity).await
                },
            )
            .await?;
        Ok(r.map(Group::from))
    }

    async fn wait_in_service(
        &mut self,
        name: String,
        timeout_millis: u64,
    ) -> wasmtime::Result<Result<Group, Error>> {
        let routed = self.run.executors.scaling.route(&name);
        let call = Call::read(
            &capability::scaling::WAIT_IN_SERVICE,
            json!({ "group": preview(&name), "timeout_millis": timeout_millis }),
        )
        .on(grace_model::resource::Resource::group(&name))
        .via(&routed);
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    let (_, provider) = granted_group(&scope, routed, &name)?;
                    Ok((provider, name))
                },
                move |scope, (provider, name)| async move {
                    // Never wait past the run's own deadline.
                    let timeout = Duration::from_millis(timeout_millis).min(scope.remaining());
                    provider.wait_in_service(&name, timeout).await
                },
            )
            .await?;
        Ok(r.map(Group::from))
    }
}
