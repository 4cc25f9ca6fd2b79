//! `kubernetes`: deployments, within `[grants.kubernetes]`, on the provider (a cluster) the
//! host routes each `namespace/name` to.

use std::time::Duration;

use grace_executor::kubernetes as exec;
use grace_executor::{Capability, KubernetesExecutor, Provider, RouteError, ident};
use grace_model::capability;
use serde_json::json;

use crate::bindings::kubernetes::{Deployment, Host, Revision};
use crate::bindings::types::Error;
use crate::grants::{KubernetesAction, KubernetesGrant, not_granted};
use crate::host::HostState;
use crate::pipeline::{Call, Planned, Refusal, Scope, preview};
use crate::trust::Proposal;

fn grant(scope: &Scope) -> Result<&KubernetesGrant, Refusal> {
    scope
        .grants
        .kubernetes
        .as_ref()
        .ok_or_else(|| not_granted("kubernetes", &scope.guest).into())
}

/// A Kubernetes provider, as resolved for one deployment.
type Routed = Result<Provider<dyn KubernetesExecutor>, RouteError>;

/// The provider the host routes `namespace/name` to.
fn route(host: &HostState, namespace: &str, name: &str) -> Routed {
    host.run
        .executors
        .kubernetes
        .route(&format!("{namespace}/{name}"))
}

/// The checks every Kubernetes call starts with: the provider, valid names (by Kubernetes' rules,
/// the same for every cluster), and the provider the grant names.
fn routed_target<'s>(
    scope: &'s Scope,
    routed: Routed,
    namespace: &str,
    name: &str,
) -> Result<(&'s KubernetesGrant, Provider<dyn KubernetesExecutor>), Refusal> {
    let provider = routed?;
    check_names(namespace, name)?;
    let grant = grant(scope)?;
    scope.grants.check_provider(
        Capability::Kubernetes,
        &format!("{namespace}/{name}"),
        provider.name(),
    )?;
    Ok((grant, provider))
}

/// The checks most Kubernetes calls start with: [`routed_target`], then the action granted on
/// that target.
fn granted_target<'s>(
    scope: &'s Scope,
    routed: Routed,
    action: KubernetesAction,
    namespace: &str,
    name: &str,
) -> Result<(&'s KubernetesGrant, Provider<dyn KubernetesExecutor>), Refusal> {
    let (grant, provider) = routed_target(scope, routed, namespace, name)?;
    grant.check_target(action, namespace, name)?;
    Ok((grant, provider))
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
    exec::replicas_i32(replicas).map_err(|e| match e {
        grace_executor::ExecError::InvalidArgument(message) => Refusal::Invalid(message),
        other => Refusal::Invalid(other.to_string()),
    })
}

/// The `metadata.generation` an earlier attempt's intent recorded, if any.
fn recorded_generation(earlier: &crate::pipeline::Unknown) -> Option<u64> {
    earlier
        .before
        .get("generation")
        .and_then(serde_json::Value::as_u64)
}

/// A text field `field` an earlier attempt's intent recorded, if any.
fn recorded_text(earlier: &crate::pipeline::Unknown, field: &str) -> Option<String> {
    earlier
        .before
        .get(field)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
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
        let routed = route(self, &namespace, &name);
        let call = Call::read(
            &capability::kubernetes::GET_DEPLOYMENT,
            target_args(&namespace, &name),
        )
        .on(grace_model::resource::Resource::deployment(
            &namespace, &name,
        ))
        .via(&routed);
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    let (_, provider) =
                        granted_target(&scope, routed, KubernetesAction::Get, &namespace, &name)?;
                    Ok((provider, namespace, name))
                },
                |_, (provider, namespace, name)| async move {
                    provider.get_deployment(&namespace, &name).await
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
        let routed = route(self, &namespace, &name);
        let call = Call::change(
            &capability::kubernetes::SCALE_DEPLOYMENT,
            format!("{namespace}/{name}"),
            args,
        )
        .via(&routed);
        let r = self
            .run
            .perform_change(
                call,
                move |scope| async move {
                    check_replicas(replicas)?;
                    let (grant, provider) =
                        granted_target(&scope, routed, KubernetesAction::Scale, &namespace, &name)?;
                    let current = provider.get_deployment(&namespace, &name).await?;
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
                    // The spec's generation the change is decided on: a retry after an unknown
                    // outcome redoes the change only if nobody changed the spec since.
                    let before = json!({ "generation": current.generation });
                    Ok(Planned {
                        plan: (provider, namespace, name),
                        proposal,
                        before,
                    })
                },
                // The replicas the earlier attempt asked for: a retry's playbook, reading the
                // deployment that attempt scaled, may ask for more.
                move |(provider, namespace, name), earlier| {
                    let provider = provider.clone();
                    let change = exec::Change::Scale {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        replicas: earlier
                            .args
                            .get("replicas")
                            .and_then(serde_json::Value::as_u64)
                            .and_then(|r| u32::try_from(r).ok())
                            .unwrap_or(replicas),
                        generation: recorded_generation(earlier),
                    };
                    async move { provider.reconcile(&change).await }
                },
                move |scope, (provider, namespace, name)| async move {
                    match scope.earlier.as_ref().and_then(recorded_generation) {
                        // A redo after an unknown outcome: only on the spec it was decided on.
                        Some(generation) => {
                            let change = exec::Change::Scale {
                                namespace,
                                name,
                                replicas,
                                generation: Some(generation),
                            };
                            provider.redo(&change).await
                        }
                        None => provider.scale_deployment(&namespace, &name, replicas).await,
                    }
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
        let routed = route(self, &namespace, &name);
        let call = Call::change(
            &capability::kubernetes::ROLLOUT_RESTART,
            format!("{namespace}/{name}"),
            target_args(&namespace, &name),
        )
        .via(&routed);
        let r = self
            .run
            .perform_change(
                call,
                move |scope| async move {
                    let (grant, provider) = routed_target(&scope, routed, &namespace, &name)?;
                    grant.check_restart(&namespace, &name, scope.changes)?;
                    let current = provider.get_deployment(&namespace, &name).await?;
                    let proposal = Proposal {
                        resource: grace_model::resource::Resource::deployment(&namespace, &name),
                        state: deployment_state(&current),
                        change: grace_model::resource::Change::rolling_restart(current.replicas),
                    };
                    // The restart's marker, unique per call, chosen before the intent is
                    // recorded, and the marker the template carried then; a redo of a restart
                    // whose outcome was unknown writes the marker its first attempt chose,
                    // and only over the marker that attempt read.
                    let (stamp, before) = match &scope.earlier {
                        Some(earlier) => (
                            recorded_text(earlier, "restart_stamp")
                                .unwrap_or_else(exec::restart_stamp),
                            recorded_text(earlier, "restarted_at"),
                        ),
                        None => (exec::restart_stamp(), current.restarted_at.clone()),
                    };
                    Ok(Planned {
                        before: json!({ "restart_stamp": stamp, "restarted_at": before }),
                        plan: (provider, namespace, name, stamp, before),
                        proposal,
                    })
                },
                |(provider, namespace, name, stamp, before), _| {
                    let provider = provider.clone();
                    let change = exec::Change::RolloutRestart {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        stamp: stamp.clone(),
                        before: before.clone(),
                    };
                    async move { provider.reconcile(&change).await }
                },
                |scope, (provider, namespace, name, stamp, before)| async move {
                    if scope.earlier.is_none() {
                        return provider.rollout_restart(&namespace, &name, &stamp).await;
                    }
                    // A redo after an unknown outcome: only over the marker it was decided on.
                    let change = exec::Change::RolloutRestart {
                        namespace,
                        name,
                        stamp,
                        before,
                    };
                    provider.redo(&change).await
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
        let routed = route(self, &namespace, &name);
        let call = Call::read(&capability::kubernetes::WAIT_FOR_ROLLOUT, args)
            .on(grace_model::resource::Resource::deployment(
                &namespace, &name,
            ))
            .via(&routed);
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    let (_, provider) =
                        granted_target(&scope, routed, KubernetesAction::Get, &namespace, &name)?;
                    Ok((provider, namespace, name))
                },
                move |scope, (provider, namespace, name)| async move {
                    let timeout = Duration::from_millis(timeout_millis).min(scope.remaining());
                    provider.wait_for_rollout(&namespace, &name, timeout).await
                },
            )
            .await?;
        Ok(r.map(Deployment::from))
    }

    async fn rollout_history(
        &mut self,
        namespace: String,
        name: String,
    ) -> wasmtime::Result<Result<Vec<Revision>, Error>> {
        let routed = route(self, &namespace, &name);
        let call = Call::read(
            &capability::kubernetes::ROLLOUT_HISTORY,
            target_args(&namespace, &name),
        )
        .on(grace_model::resource::Resource::deployment(
            &namespace, &name,
        ))
        .via(&routed);
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    let (_, provider) =
                        granted_target(&scope, routed, KubernetesAction::Get, &namespace, &name)?;
                    Ok((provider, namespace, name))
                },
                |_, (provider, namespace, name)| async move {
                    // Bounded whatever the provider answers.
                    let mut history = provider.rollout_history(&namespace, &name).await?;
                    history.truncate(exec::MAX_REVISIONS);
                    Ok(history)
                },
            )
            .await?;
        Ok(r.map(|h| h.into_iter().map(Revision::from).collect()))
    }

    async fn rollout_undo(
        &mut self,
        namespace: String,
        name: String,
        to_revision: u64,
    ) -> wasmtime::Result<Result<Deployment, Error>> {
        let mut args = target_args(&namespace, &name);
        args["to_revision"] = json!(to_revision);
        let routed = route(self, &namespace, &name);
        let call = Call::change(
            &capability::kubernetes::ROLLOUT_UNDO,
            format!("{namespace}/{name}"),
            args,
        )
        .via(&routed);
        let r = self
            .run
            .perform_change(
                call,
                move |scope| async move {
                    let (grant, provider) = routed_target(&scope, routed, &namespace, &name)?;
                    grant.check_rollback(&namespace, &name, scope.changes)?;
                    let current = provider.get_deployment(&namespace, &name).await?;
                    // A redo after an unknown outcome goes where its first attempt decided to,
                    // from the template it decided on.
                    let change = match scope.earlier.as_ref().and_then(recorded_rollback) {
                        Some(change) => change,
                        // Made by an earlier attempt: replayed, not planned again (the revision
                        // it went to has been renumbered since).
                        None if scope.replaying => exec::Change::RolloutUndo {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            revision: to_revision,
                            to: String::new(),
                            before: String::new(),
                            generation: current.generation,
                        },
                        None => plan_rollback(&provider, &current, to_revision).await?,
                    };
                    let exec::Change::RolloutUndo {
                        revision,
                        to,
                        before,
                        generation,
                        ..
                    } = &change
                    else {
                        return Err(Refusal::Failed(grace_executor::ExecError::Other(
                            "a rollback planned as another change".into(),
                        )));
                    };
                    let proposal = Proposal {
                        resource: grace_model::resource::Resource::deployment(&namespace, &name),
                        state: deployment_state(&current),
                        // Every pod is replaced, as by a rollout restart.
                        change: grace_model::resource::Change::rolling_restart(current.replicas),
                    };
                    Ok(Planned {
                        before: json!({
                            "revision": revision, "to": to, "before": before,
                            "generation": generation,
                        }),
                        plan: (provider, change),
                        proposal,
                    })
                },
                |(provider, change), _| {
                    let (provider, change) = (provider.clone(), change.clone());
                    async move { provider.reconcile(&change).await }
                },
                |_, (provider, change)| async move { provider.rollout_undo(&change).await },
            )
            .await?;
        Ok(r.map(Deployment::from))
    }
}

/// Where a rollback of `current` to `to_revision` goes, from its history: refused while the
/// deployment's controller has not caught up with its spec, or when its template is none of
/// its revisions (a rollback "to the previous one" would then skip the one running).
async fn plan_rollback(
    provider: &Provider<dyn KubernetesExecutor>,
    current: &exec::Deployment,
    to_revision: u64,
) -> Result<exec::Change, Refusal> {
    let (namespace, name) = (&current.namespace, &current.name);
    let conflict = |m: String| Refusal::Failed(grace_executor::ExecError::Conflict(m));
    if current.observed_generation < current.generation {
        return Err(conflict(format!(
            "deployment `{namespace}/{name}` has not rolled out its spec yet (generation {}, observed {}): not rolled back until its revisions say where it is",
            current.generation, current.observed_generation
        )));
    }
    let now = current.template_hash.clone().unwrap_or_default();
    let history = provider.rollout_history(namespace, name).await?;
    let Some(running) = history.iter().find(|r| r.template_hash == now) else {
        return Err(conflict(format!(
            "deployment `{namespace}/{name}`'s pod template is none of its {} revisions: not rolled back",
            history.len()
        )));
    };
    let target = exec::rollback_target(&history, running.revision, to_revision)?;
    Ok(exec::Change::RolloutUndo {
        namespace: namespace.clone(),
        name: name.clone(),
        revision: target.revision,
        to: target.template_hash.clone(),
        before: now,
        generation: current.generation,
    })
}

/// The rollback an earlier attempt's intent recorded, if it recorded one.
fn recorded_rollback(earlier: &crate::pipeline::Unknown) -> Option<exec::Change> {
    let namespace = earlier.args.get("namespace")?.as_str()?.to_owned();
    let name = earlier.args.get("name")?.as_str()?.to_owned();
    Some(exec::Change::RolloutUndo {
        namespace,
        name,
        revision: earlier.before.get("revision")?.as_u64()?,
        to: recorded_text(earlier, "to")?,
        before: recorded_text(earlier, "before")?,
        generation: recorded_generation(earlier)?,
    })
}

impl From<exec::Revision> for Revision {
    fn from(r: exec::Revision) -> Self {
        Revision {
            revision: r.revision,
            created_millis: r.created_millis,
            images: r.images,
            change_cause: r.change_cause,
        }
    }
}
