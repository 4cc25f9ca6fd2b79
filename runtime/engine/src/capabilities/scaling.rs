//! `scaling`: Auto Scaling groups, within `[grants.scaling]`.

use std::sync::Arc;
use std::time::Duration;

use grace_executor::scaling as exec;
use grace_executor::{ExecError, ScalingExecutor, ident};
use grace_model::capability;
use serde_json::json;

use crate::bindings::scaling::{Group, Host, Instance, LifecycleState};
use crate::bindings::types::Error;
use crate::grants::{ScalingGrant, not_granted};
use crate::host::HostState;
use crate::pipeline::{Call, Refusal, Scope, preview};
use crate::trust::Proposal;

fn grant(scope: &Scope) -> Result<&ScalingGrant, Refusal> {
    scope
        .grants
        .scaling
        .as_ref()
        .ok_or_else(|| not_granted("scaling", &scope.guest).into())
}

/// The checks every scaling call starts with: a group name by AWS's rules (checked before any
/// grant, so the grant sees exactly what AWS gets), within the granted groups.
fn granted_group<'s>(scope: &'s Scope, name: &str) -> Result<&'s ScalingGrant, Refusal> {
    ident::aws_group_name("name", name)?;
    let grant = grant(scope)?;
    grant.check_group(name)?;
    Ok(grant)
}

fn executor(scope: &Scope) -> Result<Arc<dyn ScalingExecutor>, ExecError> {
    scope.executors.scaling.clone().ok_or_else(|| {
        ExecError::Unavailable("no scaling backend is configured on this host".into())
    })
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
        let call = Call::read(
            &capability::scaling::DESCRIBE_GROUP,
            json!({ "group": preview(&name) }),
        )
        .on(grace_model::resource::Resource::group(&name));
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    granted_group(&scope, &name)?;
                    Ok(name)
                },
                |scope, name| async move { executor(&scope)?.describe_group(&name).await },
            )
            .await?;
        Ok(r.map(Group::from))
    }

    async fn set_desired_capacity(
        &mut self,
        name: String,
        desired_capacity: u32,
    ) -> wasmtime::Result<Result<Group, Error>> {
        let call = Call::change(
            &capability::scaling::SET_DESIRED_CAPACITY,
            name.clone(),
            json!({ "group": preview(&name), "desired_capacity": desired_capacity }),
        );
        let r = self
            .run
            .perform_change(
                call,
                move |scope| async move {
                    // Out-of-scope groups are refused before the backend is even asked about them.
                    let grant = granted_group(&scope, &name)?;
                    let current = executor(&scope)?.describe_group(&name).await?;
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
                    Ok((name, proposal))
                },
                move |scope, name| async move {
                    executor(&scope)?
                        .set_desired_capacity(&name, desired_capacity)
                        .await
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
        let call = Call::read(
            &capability::scaling::WAIT_IN_SERVICE,
            json!({ "group": preview(&name), "timeout_millis": timeout_millis }),
        )
        .on(grace_model::resource::Resource::group(&name));
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    granted_group(&scope, &name)?;
                    Ok(name)
                },
                move |scope, name| async move {
                    // Never wait past the run's own deadline.
                    let timeout = Duration::from_millis(timeout_millis).min(scope.remaining());
                    executor(&scope)?.wait_in_service(&name, timeout).await
                },
            )
            .await?;
        Ok(r.map(Group::from))
    }
}
