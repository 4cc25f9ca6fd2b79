//! [`ContainerExecutor`] for [`Docker`]: one engine call per operation (plus an inspect for the
//! state after a change), each under its time limit.

use crate::podman::{self, States};
use std::collections::HashMap;

use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, RestartContainerOptionsBuilder,
    StartContainerOptions, StopContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use grace_executor::containers::{Change, Container};
use grace_executor::{ContainerExecutor, ExecError, Labels, Reconciled};

use crate::Docker;
use crate::model::{Inspected, carries, check_reference, format_labels, time_nanos};

/// How many containers `list` inspects at once: enough to hide latency, few enough not to crowd
/// the engine.
const CONCURRENT_INSPECTS: usize = 8;

impl Docker {
    /// Inspects one container by id or name (already checked).
    pub(crate) async fn inspect_one(&self, id: &str) -> Result<Inspected, ExecError> {
        let what = format!("inspect container `{id}`");
        let engine = self.engine(&what).await?;
        let raw = self
            .call(&what, self.settings.call_timeout, async {
                podman::readable(
                    engine
                        .inspect_container(id, None::<InspectContainerOptions>)
                        .await,
                    States::Inspect,
                )
            })
            .await?;
        Inspected::new(raw)
    }

    /// Every container (running or not) carrying all of `selector`, inspected, sorted by name.
    ///
    /// The selector's labels are checked first: they go to the engine as `key=value` filters,
    /// and a key holding `=` would filter on something else than what was asked.
    pub(crate) async fn list_inspected(
        &self,
        selector: &Labels,
    ) -> Result<Vec<Inspected>, ExecError> {
        grace_executor::ident::docker_labels("selector", selector)?;
        let what = if selector.is_empty() {
            "list containers".to_owned()
        } else {
            format!("list containers carrying `{}`", format_labels(selector))
        };
        let engine = self.engine(&what).await?;
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        if !selector.is_empty() {
            filters.insert(
                "label".to_owned(),
                selector.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            );
        }
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .call(&what, self.settings.call_timeout, async {
                podman::readable(engine.list_containers(Some(options)).await, States::List)
            })
            .await?;
        let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
        let inspected: Vec<Option<Inspected>> = futures_util::stream::iter(ids)
            .map(|id| async move {
                match self.inspect_one(&id).await {
                    Ok(i) => Ok(Some(i)),
                    // Removed between the list and the inspect: it is no longer there to list.
                    Err(ExecError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffered(CONCURRENT_INSPECTS)
            .try_collect()
            .await?;
        // The engine filtered already; checking again costs nothing and does not depend on
        // every engine's filter semantics.
        let mut found: Vec<Inspected> = inspected
            .into_iter()
            .flatten()
            .filter(|i| carries(&i.container.labels, selector))
            .collect();
        found.sort_by(|a, b| a.container.name.cmp(&b.container.name));
        Ok(found)
    }

    /// Starts a container by id or name (already checked); starting a running one is a no-op.
    pub(crate) async fn start_one(&self, id: &str) -> Result<(), ExecError> {
        let what = format!("start container `{id}`");
        let engine = self.engine(&what).await?;
        self.call(
            &what,
            self.settings.call_timeout,
            engine.start_container(id, None::<StartContainerOptions>),
        )
        .await
    }

    /// Stops a container by id or name (already checked); stopping a stopped one is a no-op.
    pub(crate) async fn stop_one(&self, id: &str) -> Result<(), ExecError> {
        let what = format!("stop container `{id}`");
        let engine = self.engine(&what).await?;
        let options = StopContainerOptionsBuilder::default()
            .t(self.settings.stop_timeout_secs())
            .build();
        self.call(
            &what,
            self.stopping_limit(),
            engine.stop_container(id, Some(options)),
        )
        .await
    }
}

#[async_trait::async_trait]
impl ContainerExecutor for Docker {
    async fn list(&self, selector: &Labels) -> Result<Vec<Container>, ExecError> {
        Ok(self
            .list_inspected(selector)
            .await?
            .into_iter()
            .map(|i| i.container)
            .collect())
    }

    async fn inspect(&self, id: &str) -> Result<Container, ExecError> {
        let id = check_reference(id)?;
        Ok(self.inspect_one(id).await?.container)
    }

    async fn restart(&self, id: &str) -> Result<Container, ExecError> {
        let id = check_reference(id)?;
        let what = format!("restart container `{id}`");
        let engine = self.engine(&what).await?;
        let options = RestartContainerOptionsBuilder::default()
            .t(self.settings.stop_timeout_secs())
            .build();
        self.call(
            &what,
            self.stopping_limit(),
            engine.restart_container(id, Some(options)),
        )
        .await?;
        tracing::info!(container = id, "restarted");
        Ok(self
            .inspect_one(id)
            .await
            .map_err(ExecError::after_change)?
            .container)
    }

    async fn start(&self, id: &str) -> Result<Container, ExecError> {
        let id = check_reference(id)?;
        self.start_one(id).await?;
        tracing::info!(container = id, "started");
        Ok(self
            .inspect_one(id)
            .await
            .map_err(ExecError::after_change)?
            .container)
    }

    async fn stop(&self, id: &str) -> Result<Container, ExecError> {
        let id = check_reference(id)?;
        self.stop_one(id).await?;
        tracing::info!(container = id, "stopped");
        Ok(self
            .inspect_one(id)
            .await
            .map_err(ExecError::after_change)?
            .container)
    }

    async fn scale(&self, selector: &Labels, replicas: u32) -> Result<Vec<Container>, ExecError> {
        crate::scale::scale(self, selector, replicas).await
    }

    async fn logs(&self, id: &str, tail: u32) -> Result<Vec<String>, ExecError> {
        let id = check_reference(id)?;
        crate::logs::logs(self, id, tail).await
    }

    /// One inspect: the run state, and for a restart the container's id and `State.StartedAt`
    /// against those read just before the restart (both from the engine: no two clocks are
    /// compared).
    async fn reconcile(&self, change: &Change) -> Result<Reconciled<Container>, ExecError> {
        let id = check_reference(change.id())?;
        let inspected = self.inspect_one(id).await?;
        Ok(grace_executor::containers::reconcile_read(
            change,
            inspected.container,
            time_nanos,
        ))
    }
}
