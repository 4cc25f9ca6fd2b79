//! `containers`: containers on a Docker-compatible engine, within `[grants.containers]`.
//! Containers outside the granted labels are invisible to `list` and refused to every action.
//! Each call goes to the provider (an engine) the host routes its resource to: the container
//! reference for calls on one container (and, once resolved, the container's name must route to
//! the same provider), the selector as [`grace_model::resource::selector_id`] writes it for
//! `list` and `scale`.

use grace_executor::containers::{self as exec, CLONE_LABEL};
use grace_executor::{
    Capability, ContainerExecutor, ExecError, Labels, Provider, Reconciled, ident,
};
use grace_model::capability;
use serde_json::json;

use super::{described_by, labels_from_guest, labels_json, labels_to_guest};
use crate::bindings::containers::{Container, ContainerState, Health, Host};
use crate::bindings::types::{Error, Label};
use crate::grants::{ContainerAction, ContainerGrant, not_granted};
use crate::host::HostState;
use crate::pipeline::{Call, Planned, Refusal, Scope, preview};
use crate::trust::Proposal;

/// The most lines `logs` returns: what a run report can show, not a log archive.
const MAX_LOG_TAIL: u32 = 1000;

/// The resource lock every container change takes. Services are label selectors that can
/// overlap (`{app=web}` and `{app=web,env=prod}`), and a restart changes the service a scale
/// counts, so container changes on a host are serialized as one resource.
const LOCK: &str = "containers";

fn grant(scope: &Scope) -> Result<&ContainerGrant, Refusal> {
    scope
        .grants
        .containers
        .as_ref()
        .ok_or_else(|| not_granted("containers", &scope.guest).into())
}

/// A selector as a resource to route: the service's id, `key=value` pairs sorted by key and
/// joined by `,`, with `,` and `=` inside keys and values escaped, so that a value holding
/// them (`{app: "web,env=prod"}`) cannot be routed as another selector. (Repeated keys, which
/// collapse here, are refused before anything acts.)
fn selector_resource(selector: &[Label]) -> String {
    grace_model::resource::selector_id(
        &selector
            .iter()
            .map(|l| (l.key.clone(), l.value.clone()))
            .collect(),
    )
}

/// The provider checks every container call starts with, once its identifiers are valid: the
/// resolved provider is the one the grant names, if it names one.
fn check_provider(
    scope: &Scope,
    provider: &Provider<dyn ContainerExecutor>,
    resource: &str,
) -> Result<(), Refusal> {
    scope
        .grants
        .check_provider(Capability::Containers, resource, provider.name())?;
    Ok(())
}

impl From<exec::Container> for Container {
    fn from(c: exec::Container) -> Self {
        Container {
            id: c.id,
            name: c.name,
            image: c.image,
            labels: labels_to_guest(c.labels),
            state: match c.state {
                exec::ContainerState::Created => ContainerState::Created,
                exec::ContainerState::Running => ContainerState::Running,
                exec::ContainerState::Paused => ContainerState::Paused,
                exec::ContainerState::Restarting => ContainerState::Restarting,
                exec::ContainerState::Exited => ContainerState::Exited,
                exec::ContainerState::Dead => ContainerState::Dead,
            },
            health: match c.health {
                exec::Health::None => Health::None,
                exec::Health::Starting => Health::Starting,
                exec::Health::Healthy => Health::Healthy,
                exec::Health::Unhealthy => Health::Unhealthy,
            },
        }
    }
}

/// Labels that differ from one replica to the next by design, so a service's members may
/// disagree on them: GRACE's own clone marker, and Compose's replica number.
const PER_INSTANCE: [&str; 2] = [CLONE_LABEL, "com.docker.compose.container-number"];

/// The labels of a service's members: what the trust core is told the service is. Members
/// must agree on every label (but the per-instance ones): a policy or guardrail may read any
/// label (`resource.hasTag("pci")`), and a selector spanning a `pci` container and a plain one
/// must not be judged as the plain one, nor as the `pci` one alone. Such a selector is refused;
/// the guest can narrow it.
fn shared_labels(members: &[exec::Container]) -> Result<Labels, Refusal> {
    let Some((first, rest)) = members.split_first() else {
        return Ok(Labels::new());
    };
    let own = |c: &exec::Container| -> Labels {
        c.labels
            .iter()
            .filter(|(k, _)| !PER_INSTANCE.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let shared = own(first);
    for member in rest {
        let theirs = own(member);
        if let Some(key) = shared
            .keys()
            .chain(theirs.keys())
            .find(|k| shared.get(*k) != theirs.get(*k))
        {
            let show =
                |v: Option<&String>| v.map_or_else(|| "none".to_owned(), |v| format!("`{v}`"));
            return Err(Refusal::Invalid(format!(
                "the selector spans containers that differ in label `{key}` ({} and {}); narrow it to containers labelled alike",
                show(shared.get(key)),
                show(theirs.get(key))
            )));
        }
    }
    Ok(shared)
}

/// Running containers, and those of them that are healthy (or have no health check), as the
/// trust core counts a service's capacity.
fn service_state(members: &[exec::Container]) -> grace_model::resource::State {
    let running = members
        .iter()
        .filter(|c| c.state == exec::ContainerState::Running);
    let capacity = running.clone().count();
    let healthy = running
        .filter(|c| matches!(c.health, exec::Health::Healthy | exec::Health::None))
        .count();
    grace_model::resource::State::new(
        u32::try_from(capacity).unwrap_or(u32::MAX),
        u32::try_from(healthy).unwrap_or(u32::MAX),
    )
}

/// What restarting, stopping or starting `target` does, for the trust core. The state is that
/// of its service (the containers sharing its `app` label, within the grants) when it has one,
/// so that restarting one of five replicas weighs less than restarting the only one.
async fn container_proposal(
    executor: &dyn ContainerExecutor,
    grant: &ContainerGrant,
    action: ContainerAction,
    target: &exec::Container,
) -> Result<Proposal, ExecError> {
    let members = match target.labels.get("app") {
        Some(app) => {
            let selector = grace_executor::Labels::from([("app".to_owned(), app.clone())]);
            executor
                .list(&selector)
                .await?
                .into_iter()
                .filter(|c| grant.in_scope(&c.labels))
                .collect()
        }
        None => vec![target.clone()],
    };
    let change = match action {
        ContainerAction::Stop => grace_model::resource::Change::Stop { instances: 1 },
        ContainerAction::Start => grace_model::resource::Change::Start { instances: 1 },
        _ => grace_model::resource::Change::Restart { instances: 1 },
    };
    Ok(Proposal {
        resource: container_resource(target),
        state: service_state(&members),
        change,
    })
}

/// A container as the trust core is told of it: by its name (as policies and guardrails name
/// containers), with its image, and its labels as tags, all as its provider reports them.
fn container_resource(target: &exec::Container) -> grace_model::resource::Resource {
    described_by(
        grace_model::resource::Resource::container(&target.name).image(&target.image),
        &target.labels,
    )
}

/// The refusal for a container the guest may not see: the same whether it does not exist or
/// lies outside the grant, and naming only what the guest wrote, so refusals cannot be used to
/// enumerate containers outside the grant.
fn hidden(reference: &str) -> Refusal {
    Refusal::Denied(format!(
        "container `{reference}` does not exist or is outside this playbook's grant"
    ))
}

/// Resolves the guest's reference (a name or an id, possibly a prefix) once, to the container
/// it names now, and checks that container is in scope. Everything after acts on the resolved
/// container's full id: the engine resolves names and id prefixes anew on every call, so acting
/// on the guest's text could reach another container than the one checked.
async fn resolve(
    executor: &dyn ContainerExecutor,
    grant: &ContainerGrant,
    reference: &str,
) -> Result<exec::Container, Refusal> {
    let target = match executor.inspect(reference).await {
        Ok(target) => target,
        // The engine being down says nothing about containers; every other failure might (an
        // ambiguous id prefix is an error that counts containers outside the grant).
        Err(e @ (ExecError::Unavailable(_) | ExecError::TimedOut(_))) => return Err(e.into()),
        Err(_) => return Err(hidden(reference)),
    };
    if !grant.in_scope(&target.labels) {
        return Err(hidden(reference));
    }
    Ok(target)
}

/// Routes and the grant's provider are checked again on the resolved container's name: the
/// call was routed on the guest's text (an id, an id prefix), which the configuration's routes
/// (written for names) may send elsewhere than the container's own. A container whose name
/// routes to another provider than the one that resolved it is refused: that provider may hold
/// another container of that name.
fn check_resolved_route(
    scope: &Scope,
    provider: &Provider<dyn ContainerExecutor>,
    reference: &str,
    target: &exec::Container,
) -> Result<(), Refusal> {
    let owner = scope.executors.containers.route(&target.name)?;
    if owner.name() != provider.name() {
        return Err(Refusal::Denied(format!(
            "container `{reference}` was found on provider `{}`, but its name routes to provider `{}`",
            provider.name(),
            owner.name()
        )));
    }
    check_provider(scope, provider, &target.name)
}

impl HostState {
    /// restart, start and stop: the same checks, a different provider call.
    async fn change_one(
        &mut self,
        action: ContainerAction,
        id: String,
    ) -> wasmtime::Result<Result<Container, Error>> {
        let routed = self.run.executors.containers.route(&id);
        let descriptor = match action {
            ContainerAction::Start => &capability::containers::START,
            ContainerAction::Stop => &capability::containers::STOP,
            _ => &capability::containers::RESTART,
        };
        let call = Call::change(descriptor, id.clone(), json!({ "id": preview(&id) }))
            .locking(LOCK)
            .via(&routed);
        let r = self
            .run
            .perform_change(
                call,
                move |scope| async move {
                    let executor = routed?;
                    ident::container_ref("id", &id)?;
                    let grant = grant(&scope)?;
                    check_provider(&scope, &executor, &id)?;
                    grant.check_action(action)?;
                    let target = resolve(&*executor, grant, &id).await?;
                    check_resolved_route(&scope, &executor, &id, &target)?;
                    grant.check_change(action, &target.name, &target.labels, scope.changes)?;
                    let proposal = container_proposal(&*executor, grant, action, &target).await?;
                    // What a restart is read back against: the container and its start time
                    // just before it, both as the engine reports them (no clock compared).
                    let before = match action {
                        ContainerAction::Restart => json!({
                            "container_id": target.id,
                            "started_at": target.started_at,
                        }),
                        _ => serde_json::Value::Null,
                    };
                    Ok(Planned {
                        plan: (executor, target.id),
                        proposal,
                        before,
                    })
                },
                move |(executor, id), earlier| {
                    let executor = executor.clone();
                    let text = |field: &str| {
                        earlier
                            .before
                            .get(field)
                            .and_then(serde_json::Value::as_str)
                            .map(str::to_owned)
                    };
                    let change = match action {
                        ContainerAction::Start => Some(exec::Change::Start { id: id.clone() }),
                        ContainerAction::Stop => Some(exec::Change::Stop { id: id.clone() }),
                        // Done when the container the intent found started again since.
                        _ => text("container_id").map(|container_id| exec::Change::Restart {
                            id: id.clone(),
                            container_id,
                            started_at: text("started_at"),
                        }),
                    };
                    async move {
                        match change {
                            Some(change) => executor.reconcile(&change).await,
                            None => Ok(Reconciled::Conflict(
                                "the earlier attempt's intent did not record which container it restarted and when that container had started, so whether the restart happened cannot be told".into(),
                            )),
                        }
                    }
                },
                move |_, (executor, id)| async move {
                    match action {
                        ContainerAction::Restart => executor.restart(&id).await,
                        ContainerAction::Start => executor.start(&id).await,
                        ContainerAction::Stop => executor.stop(&id).await,
                        ContainerAction::List | ContainerAction::Scale | ContainerAction::Logs => {
                            Err(ExecError::Other(format!(
                                "`{}` is not a single-container action",
                                action.name()
                            )))
                        }
                    }
                },
            )
            .await?;
        Ok(r.map(Container::from))
    }
}

impl Host for HostState {
    async fn list(
        &mut self,
        selector: Vec<Label>,
    ) -> wasmtime::Result<Result<Vec<Container>, Error>> {
        let resource = selector_resource(&selector);
        let routed = self.run.executors.containers.route(&resource);
        let call = Call::read(
            &capability::containers::LIST,
            json!({ "selector": labels_json(&selector) }),
        )
        // A list is judged on the selector the guest asked for (its labels as tags), not on
        // containers resolved from it: it looks at a selection, which may span containers
        // labelled differently (unlike a scale, refusing that would refuse ordinary lists), and
        // what it returns is only what the grant lets the guest see.
        .on(grace_model::resource::Resource::service(
            selector.iter().map(|l| (l.key.clone(), l.value.clone())),
        ))
        .via(&routed);
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    let executor = routed?;
                    let selector = labels_from_guest("selector", selector)?;
                    let grant = grant(&scope)?;
                    check_provider(&scope, &executor, &resource)?;
                    grant.check_action(ContainerAction::List)?;
                    Ok((executor, selector))
                },
                |scope, (executor, selector)| async move {
                    let all = executor.list(&selector).await?;
                    let grant = scope.grants.containers.as_ref();
                    Ok(all
                        .into_iter()
                        .filter(|c| grant.is_some_and(|g| g.in_scope(&c.labels)))
                        .collect::<Vec<_>>())
                },
            )
            .await?;
        Ok(r.map(|cs| cs.into_iter().map(Container::from).collect()))
    }

    async fn restart(&mut self, id: String) -> wasmtime::Result<Result<Container, Error>> {
        self.change_one(ContainerAction::Restart, id).await
    }

    async fn logs(
        &mut self,
        id: String,
        tail: u32,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let routed = self.run.executors.containers.route(&id);
        let call = Call::read(
            &capability::containers::LOGS,
            json!({ "id": preview(&id), "tail": tail }),
        )
        .via(&routed);
        self.run
            .perform_on(
                call,
                move |scope| async move {
                    let executor = routed?;
                    ident::container_ref("id", &id)?;
                    if tail > MAX_LOG_TAIL {
                        return Err(Refusal::Invalid(format!(
                            "`tail` is {tail}, above the limit of {MAX_LOG_TAIL} lines"
                        )));
                    }
                    let grant = grant(&scope)?;
                    check_provider(&scope, &executor, &id)?;
                    grant.check_action(ContainerAction::Logs)?;
                    let target = resolve(&*executor, grant, &id).await?;
                    check_resolved_route(&scope, &executor, &id, &target)?;
                    grant.check_read(ContainerAction::Logs, &target.name, &target.labels)?;
                    // The trust core judges the container found, not the guest's text for it
                    // (an id or an id prefix would slip past a policy naming the container).
                    Ok(((executor, target.id.clone()), container_resource(&target)))
                },
                move |_, (executor, id)| async move { executor.logs(&id, tail).await },
            )
            .await
    }

    async fn start(&mut self, id: String) -> wasmtime::Result<Result<Container, Error>> {
        self.change_one(ContainerAction::Start, id).await
    }

    async fn stop(&mut self, id: String) -> wasmtime::Result<Result<Container, Error>> {
        self.change_one(ContainerAction::Stop, id).await
    }

    async fn scale(
        &mut self,
        selector: Vec<Label>,
        replicas: u32,
    ) -> wasmtime::Result<Result<Vec<Container>, Error>> {
        let resource = selector_resource(&selector);
        let routed = self.run.executors.containers.route(&resource);
        let call = Call::change(
            &capability::containers::SCALE,
            labels_json(&selector).to_string(),
            json!({ "selector": labels_json(&selector), "replicas": replicas }),
        )
        .locking(LOCK)
        .via(&routed);
        let r =
            self.run
                .perform_change(
                    call,
                    move |scope| async move {
                        let executor = routed?;
                        let selector = labels_from_guest("selector", selector)?;
                        let grant = grant(&scope)?;
                        check_provider(&scope, &executor, &resource)?;
                        grant.check_scale(&selector, replicas, scope.changes)?;
                        let members = executor.list(&selector).await?;
                        let members: Vec<_> = members
                            .into_iter()
                            .filter(|c| grant.in_scope(&c.labels))
                            .collect();
                        // The trust core judges the containers themselves, not the guest's
                        // description of them: a selector that leaves `env` out still scales
                        // production containers, and must be judged as production.
                        let own = shared_labels(&members)?;
                        let proposal = Proposal {
                            resource: described_by(
                                grace_model::resource::Resource::service(selector.clone()),
                                &own,
                            ),
                            state: service_state(&members),
                            change: grace_model::resource::Change::Capacity { to: replicas },
                        };
                        Ok(Planned::new((executor, selector), proposal))
                    },
                    // A scale makes a count true: exactly the count the earlier attempt asked
                    // for running means it is in place, whoever made it. The earlier count, not
                    // this retry's: a playbook asking for "running + 1" reads the containers
                    // the lost attempt started, and asks for one more.
                    move |(executor, selector), earlier| {
                        let replicas = earlier
                            .args
                            .get("replicas")
                            .and_then(serde_json::Value::as_u64)
                            .and_then(|r| u32::try_from(r).ok())
                            .unwrap_or(replicas);
                        let (executor, selector) = (executor.clone(), selector.clone());
                        async move {
                            let running: Vec<exec::Container> = executor
                                .list(&selector)
                                .await?
                                .into_iter()
                                .filter(|c| c.state == exec::ContainerState::Running)
                                .collect();
                            Ok(if u32::try_from(running.len()).ok() == Some(replicas) {
                                Reconciled::Done(running)
                            } else {
                                Reconciled::NotApplied
                            })
                        }
                    },
                    move |_, (executor, selector)| async move {
                        executor.scale(&selector, replicas).await
                    },
                )
                .await?;
        Ok(r.map(|cs| cs.into_iter().map(Container::from).collect()))
    }
}
