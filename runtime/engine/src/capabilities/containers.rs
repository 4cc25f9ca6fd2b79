//! `containers`: containers on a Docker-compatible engine, within `[grants.containers]`.
//! Containers outside the granted labels are invisible to `list` and refused to every action.

use std::sync::Arc;

use grace_executor::containers as exec;
use grace_executor::{ContainerExecutor, ExecError};
use serde_json::json;

use super::{labels_from_guest, labels_json, labels_to_guest};
use crate::bindings::containers::{Container, ContainerState, Health, Host};
use crate::bindings::types::{Error, Label};
use crate::grants::{ContainerAction, ContainerGrant, not_granted};
use crate::host::HostState;
use crate::pipeline::{Call, Refusal, Scope, check_text, preview};

/// The most lines `logs` returns: what a run report can show, not a log archive.
const MAX_LOG_TAIL: u32 = 1000;

fn grant(scope: &Scope) -> Result<&ContainerGrant, Refusal> {
    scope
        .grants
        .containers
        .as_ref()
        .ok_or_else(|| not_granted("containers", &scope.guest).into())
}

fn executor(scope: &Scope) -> Result<Arc<dyn ContainerExecutor>, ExecError> {
    scope.executors.containers.clone().ok_or_else(|| {
        ExecError::Unavailable("no container backend is configured on this host".into())
    })
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

impl HostState {
    /// restart, start and stop: the same checks, a different backend call.
    async fn change_one(
        &mut self,
        action: ContainerAction,
        id: String,
    ) -> wasmtime::Result<Result<Container, Error>> {
        let call = Call::change(
            "containers",
            action.name(),
            id.clone(),
            json!({ "id": preview(&id) }),
        );
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    check_text("id", &id)?;
                    let grant = grant(&scope)?;
                    grant.check_action(action)?;
                    let target = executor(&scope)?.inspect(&id).await?;
                    grant.check_change(action, &target.name, &target.labels, scope.changes)?;
                    Ok(id)
                },
                move |scope, id| async move {
                    let executor = executor(&scope)?;
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
        let call = Call::read(
            "containers",
            "list",
            json!({ "selector": labels_json(&selector) }),
        );
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    grant(&scope)?.check_action(ContainerAction::List)?;
                    labels_from_guest("selector", selector)
                },
                |scope, selector| async move {
                    let all = executor(&scope)?.list(&selector).await?;
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
        let call = Call::read(
            "containers",
            "logs",
            json!({ "id": preview(&id), "tail": tail }),
        );
        self.run
            .perform(
                call,
                move |scope| async move {
                    check_text("id", &id)?;
                    if tail > MAX_LOG_TAIL {
                        return Err(Refusal::Invalid(format!(
                            "`tail` is {tail}, above the limit of {MAX_LOG_TAIL} lines"
                        )));
                    }
                    let grant = grant(&scope)?;
                    grant.check_action(ContainerAction::Logs)?;
                    let target = executor(&scope)?.inspect(&id).await?;
                    grant.check_read(ContainerAction::Logs, &target.name, &target.labels)?;
                    Ok(id)
                },
                move |scope, id| async move { executor(&scope)?.logs(&id, tail).await },
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
        let call = Call::change(
            "containers",
            "scale",
            labels_json(&selector).to_string(),
            json!({ "selector": labels_json(&selector), "replicas": replicas }),
        );
        let r =
            self.run
                .perform(
                    call,
                    move |scope| async move {
                        let selector = labels_from_guest("selector", selector)?;
                        grant(&scope)?.check_scale(&selector, replicas, scope.changes)?;
                        Ok(selector)
                    },
                    move |scope, selector| async move {
                        executor(&scope)?.scale(&selector, replicas).await
                    },
                )
                .await?;
        Ok(r.map(|cs| cs.into_iter().map(Container::from).collect()))
    }
}
