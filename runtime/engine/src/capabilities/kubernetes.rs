//! `kubernetes`: deployments, within `[grants.kubernetes]`.

use std::sync::Arc;
use std::time::Duration;

use grace_executor::kubernetes as exec;
use grace_executor::{ExecError, KubernetesExecutor, ident};
use grace_model::capability;
use serde_json::json;

use crate::bindings::kubernetes::{Deployment, Host};
use crate::bindings::types::Error;
use crate::grants::{KubernetesAction, KubernetesGrant, not_granted};
use crate::host::HostState;
use crate::pipeline::{Call, Refusal, Scope, preview};
use crate::trust::Proposal;

fn grant(scope: &Scope) -> Result<&KubernetesGrant, Refusal> {
    scope
        .grants
        .kubernetes
        .as_ref()
        .ok_or_else(|| not_granted("kubernetes", &scope.guest).into())
}

/// The checks most Kubernetes calls start with: valid names, the action granted on that target.
fn granted_target<'s>(
    scope: &'s Scope,
    action: KubernetesAction,
    namespace: &str,
    name: &str,
) -> Result<&'s KubernetesGrant, Refusal> {
    check_names(namespace, name)?;
    let grant = grant(scope)?;
    grant.check_target(action, namespace, name)?;
    Ok(grant)
}

fn executor(scope: &Scope) -> Result<Arc<dyn KubernetesExecutor>, ExecError> {
    scope.executors.kubernetes.clone().ok_or_else(|| {
        ExecError::Unavailable("no kubernetes backend is configured on this host".into())
    })
}

fn target_args(namespace: &str, name: &str) -> serde_json::Value {
    json!({ "namespace": preview(namespace), "name": preview(name) })
}

/// The namespace and name by Kubernetes' own rules, checked before any grant: what passes is
/// exactly what kube puts into the request path, so the grant sees what the API server gets.
fn check_names(namespace: &str, name: &str) -> Result<(), Refusal> {
    ident::k8s_namespace("namespace", namespace)?;
    ident::k8s_deployment_name("name", name)?;
    Ok(())
}

/// A replica count the API can hold: `spec.replicas` is an `int32`.
fn check_replicas(replicas: u32) -> Result<i32, Refusal> {
    i32::try_from(replicas).map_err(|_| {
        Refusal::Invalid(format!(
            "`replicas` is {replicas}, above the limit of {} (Kubernetes' int32)",
            i32::MAX
        ))
    })
}

/// A deployment's state for the trust core: its replicas, and the ready ones.
fn deployment_state(d: &exec::Deployment) -> grace_model::resource::State {
    grace_model::resource::State::new(d.replicas, d.ready_replicas)
}

impl From<exec::Deployment> for Deployment {
    fn from(d: exec::Deployment) -> Self {
        Deployment {
            namespace: d.namespace,
            name: d.name,
            replicas: d.replicas,
            ready_replicas: d.ready_replicas,
            updated_replicas: d.updated_replicas,
            available_replicas: d.available_replicas,
            generation: d.generation,
            observed_generation: d.observed_generation,
        }
    }
}

impl Host for HostState {
    async fn get_deployment(
        &mut self,
        namespace: String,
        name: String,
    ) -> wasmtime::Result<Result<Deployment, Error>> {
        let call = Call::read(
            &capability::kubernetes::GET_DEPLOYMENT,
            target_args(&namespace, &name),
        )
        .on(grace_model::resource::Resource::deployment(
            &namespace, &name,
        ));
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    granted_target(&scope, KubernetesAction::Get, &namespace, &name)?;
                    Ok((namespace, name))
                },
                |scope, (namespace, name)| async move {
                    executor(&scope)?.get_deployment(&namespace, &name).await
                },
            )
            .await?;
        Ok(r.map(Deployment::from))
    }

    async fn scale_deployment(
        &mut self,
        namespace: String,
        name: String,
        replicas: u32,
    ) -> wasmtime::Result<Result<Deployment, Error>> {
        let mut args = target_args(&namespace, &name);
        args["replicas"] = json!(replicas);
        let call = Call::change(
            &capability::kubernetes::SCALE_DEPLOYMENT,
            format!("{namespace}/{name}"),
            args,
        );
        let r = self
            .run
            .perform_change(
                call,
                move |scope| async move {
                    check_replicas(replicas)?;
                    let grant = granted_target(&scope, KubernetesAction::Scale, &namespace, &name)?;
                    let current = executor(&scope)?.get_deployment(&namespace, &name).await?;
                    grant.check_scale(
                        &namespace,
                        &name,
                        current.replicas,
                        replicas,
                        scope.changes,
                    )?;
                    let proposal = Proposal {
                        resource: grace_model::resource::Resource::deployment(&namespace, &name),
                        state: deployment_state(&current),
                        change: grace_model::resource::Change::Capacity { to: replicas },
                    };
                    Ok(((namespace, name), proposal))
                },
                move |scope, (namespace, name)| async move {
                    executor(&scope)?
                        .scale_deployment(&namespace, &name, replicas)
                        .await
                },
            )
            .await?;
        Ok(r.map(Deployment::from))
    }

    async fn rollout_restart(
        &mut self,
        namespace: String,
        name: String,
    ) -> wasmtime::Result<Result<Deployment, Error>> {
        let call = Call::change(
            &capability::kubernetes::ROLLOUT_RESTART,
            format!("{namespace}/{name}"),
            target_args(&namespace, &name),
        );
        let r = self
            .run
            .perform_change(
                call,
                move |scope| async move {
                    check_names(&namespace, &name)?;
                    grant(&scope)?.check_restart(&namespace, &name, scope.changes)?;
                    let current = executor(&scope)?.get_deployment(&namespace, &name).await?;
                    let proposal = Proposal {
                        resource: grace_model::resource::Resource::deployment(&namespace, &name),
                        state: deployment_state(&current),
                        change: grace_model::resource::Change::rolling_restart(current.replicas),
                    };
                    Ok(((namespace, name), proposal))
                },
                |scope, (namespace, name)| async move {
                    executor(&scope)?.rollout_restart(&namespace, &name).await
                },
            )
            .await?;
        Ok(r.map(Deployment::from))
    }

    async fn wait_for_rollout(
        &mut self,
        namespace: String,
        name: String,
        timeout_millis: u64,
    ) -> wasmtime::Result<Result<Deployment, Error>> {
        let mut args = target_args(&namespace, &name);
        args["timeout_millis"] = json!(timeout_millis);
        let call = Call::read(&capability::kubernetes::WAIT_FOR_ROLLOUT, args).on(
            grace_model::resource::Resource::deployment(&namespace, &name),
        );
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    granted_target(&scope, KubernetesAction::Get, &namespace, &name)?;
                    Ok((namespace, name))
                },
                move |scope, (namespace, name)| async move {
                    let timeout = Duration::from_millis(timeout_millis).min(scope.remaining());
                    executor(&scope)?
                        .wait_for_rollout(&namespace, &name, timeout)
                        .await
                },
            )
            .await?;
        Ok(r.map(Deployment::from))
    }
}
