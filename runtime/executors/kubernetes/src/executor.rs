//! [`KubernetesExecutor`] for [`Kube`]: every operation as `kubectl` does it, each request under
//! the call time limit.

use std::future::Future;
use std::time::Duration;

use grace_executor::kubernetes::{Change, Deployment, MAX_REVISIONS, Revision};
use grace_executor::{ExecError, KubernetesExecutor, Reconciled, ident};
use k8s_openapi::api::apps::v1::{Deployment as ApiDeployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v1::ScaleSpec;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use tokio::time::Instant;

use crate::client::Kube;
use crate::convert;
use crate::errors::{from_kube, timed_out};

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The annotation of a deployment's and its ReplicaSets' revisions.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// The most ReplicaSets one history read lists (a page of the API's list).
const MAX_REPLICA_SETS: u32 = 500;

/// The pause before retry `attempt` (1, 2, ...) of a conflicting write: short, since the other
/// writer is usually done, and growing, in case it is not.
fn conflict_backoff(attempt: u32) -> Duration {
    Duration::from_millis(10u64 << attempt.clamp(1, 6).saturating_sub(1))
}

/// Checks `namespace` and `name` by Kubernetes' rules before they go anywhere near a request.
///
/// kube formats both into the URL path as given (it only refuses empty names), so `cart#-canary`
/// would reach the server as `…/deployments/cart`. The engine has checked them already; this is
/// defence in depth. What passes is lowercase letters, digits, `-` and `.` (no `.` or `..`
/// alone), all unreserved in a URL path: nothing left to percent-encode.
fn checked(namespace: &str, name: &str) -> Result<(), ExecError> {
    ident::k8s_namespace("namespace", namespace)?;
    ident::k8s_deployment_name("name", name)?;
    Ok(())
}

impl Kube {
    /// The deployments of `namespace`, which [`checked`] has accepted.
    fn deployments(&self, namespace: &str) -> Api<ApiDeployment> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Runs one API request under `limit`.
    pub(crate) async fn call<T>(
        &self,
        operation: &str,
        limit: Duration,
        request: impl Future<Output = kube::Result<T>>,
    ) -> Result<T, ExecError> {
        match tokio::time::timeout(limit, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let error = from_kube(operation, &self.server, &e);
                tracing::debug!(operation, %error, "kubernetes request failed");
                Err(error)
            }
            Err(_) => Err(timed_out(operation, &self.server, limit)),
        }
    }

    async fn read(
        &self,
        namespace: &str,
        name: &str,
        limit: Duration,
    ) -> Result<Deployment, ExecError> {
        let object = self.read_object(namespace, name, limit).await?;
        Ok(convert::deployment(namespace, name, &object))
    }

    /// The ReplicaSets `object` (the deployment `namespace/name`) owns as their controller,
    /// listed by its selector's labels as `kubectl rollout history` does, each with its
    /// template.
    async fn owned_replica_sets(
        &self,
        namespace: &str,
        name: &str,
        object: &ApiDeployment,
    ) -> Result<Vec<ReplicaSet>, ExecError> {
        let uid = object.metadata.uid.as_deref().unwrap_or_default();
        if object
            .spec
            .selector
            .match_expressions
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            return Err(ExecError::Other(format!(
                "deployment `{namespace}/{name}` selects its pods with matchExpressions: its ReplicaSets are not listed by them (only matchLabels)"
            )));
        }
        // The selector is the API server's answer, whose labels it validated; kube escapes
        // the query string it goes into.
        let selector = object
            .spec
            .selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let params = ListParams::default()
            .labels(&selector)
            .limit(MAX_REPLICA_SETS);
        let operation = format!("list the ReplicaSets of deployment `{namespace}/{name}`");
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), namespace);
        let list = self
            .call(&operation, self.call_timeout, api.list(&params))
            .await?;
        // One page is all that is read: a deployment with more ReplicaSets than that is
        // refused rather than judged on part of its history.
        if list
            .metadata
            .continue_
            .as_deref()
            .is_some_and(|c| !c.is_empty())
        {
            return Err(ExecError::Other(format!(
                "more than {MAX_REPLICA_SETS} ReplicaSets match deployment `{namespace}/{name}`'s selector: its history is not read in part"
            )));
        }
        Ok(list
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == uid)
            })
            .collect())
    }

    /// The revisions of `object`, newest first, at most [`MAX_REVISIONS`], with the
    /// ReplicaSet of each.
    async fn revisions(
        &self,
        namespace: &str,
        name: &str,
        object: &ApiDeployment,
    ) -> Result<Vec<(Revision, ReplicaSet)>, ExecError> {
        let mut revisions: Vec<(Revision, ReplicaSet)> = self
            .owned_replica_sets(namespace, name, object)
            .await?
            .into_iter()
            .filter_map(|rs| Some((convert::revision(&rs)?, rs)))
            .collect();
        revisions.sort_by_key(|(r, _)| std::cmp::Reverse(r.revision));
        revisions.truncate(MAX_REVISIONS);
        Ok(revisions)
    }

    /// One conditional write's outcome in a read-then-write loop: `Some` when it landed,
    /// `None` after a `409 Conflict` to read again (past a pause, at most `conflict_retries`
    /// times), and the error when it failed otherwise or conflicted once too often.
    async fn settled<T>(
        &self,
        written: Result<T, ExecError>,
        retries: &mut u32,
        what: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<T>, ExecError> {
        match written {
            Ok(written) => Ok(Some(written)),
            Err(ExecError::Conflict(message)) if *retries < self.conflict_retries => {
                *retries += 1;
                tracing::debug!(namespace, name, retries = *retries, %message, "{what} conflicted; reading again");
                tokio::time::sleep(conflict_backoff(*retries)).await;
                Ok(None)
            }
            Err(ExecError::Conflict(message)) => Err(ExecError::Conflict(format!(
                "{message}; gave up after {} attempts: another writer keeps changing it",
                *retries + 1
            ))),
            Err(other) => Err(other),
        }
    }

    async fn read_object(
        &self,
        namespace: &str,
        name: &str,
        limit: Duration,
    ) -> Result<ApiDeployment, ExecError> {
        let operation = format!("read deployment `{namespace}/{name}`");
        self.call(&operation, limit, self.deployments(namespace).get(name))
            .await
    }
}

/// The strategic merge patch of a rollout restart marked `stamp`; with `version`, it names the
/// `metadata.resourceVersion` it may only apply to.
fn restart_patch(stamp: &str, version: Option<&str>) -> serde_json::Value {
    let mut patch = serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}
    });
    if let Some(version) = version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": version });
    }
    patch
}

fn progress(d: &Deployment) -> String {
    format!(
        "{} of {} replicas ready ({} updated, {} available, generation {} observed {})",
        d.ready_replicas,
        d.replicas,
        d.updated_replicas,
        d.available_replicas,
        d.generation,
        d.observed_generation
    )
}

#[async_trait::async_trait]
impl KubernetesExecutor for Kube {
    async fn get_deployment(&self, namespace: &str, name: &str) -> Result<Deployment, ExecError> {
        checked(namespace, name)?;
        self.read(namespace, name, self.call_timeout).await
    }

    /// Through the scale subresource, as `kubectl scale` does: read the scale, write it back
    /// with the new replica count and the version read, and on `409 Conflict` read again, up to
    /// `conflict_retries` times.
    async fn scale_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> Result<Deployment, ExecError> {
        checked(namespace, name)?;
        let wanted = grace_executor::kubernetes::replicas_i32(replicas)?;
        let operation = format!("scale deployment `{namespace}/{name}` to {replicas}");
        let api = self.deployments(namespace);
        let mut retries = 0;
        loop {
            let mut scale = self
                .call(&operation, self.call_timeout, api.get_scale(name))
                .await?;
            if scale.spec.as_ref().and_then(|s| s.replicas) == Some(wanted) {
                break;
            }
            // `metadata.resourceVersion` stays as read: the write lands only on what was read.
            scale.spec = Some(ScaleSpec {
                replicas: Some(wanted),
            });
            let written = self
                .call(
                    &operation,
                    self.call_timeout,
                    api.replace_scale(name, &PostParams::default(), &scale),
                )
                .await;
            if self
                .settled(written, &mut retries, "scale", namespace, name)
                .await?
                .is_some()
            {
                break;
            }
        }
        tracing::info!(namespace, name, replicas, retries, "deployment scaled");
        self.read(namespace, name, self.call_timeout)
            .await
            .map_err(ExecError::after_change)
    }

    /// As `kubectl rollout restart` does: a strategic merge patch setting the pod template's
    /// `kubectl.kubernetes.io/restartedAt` annotation, so every pod is replaced. The value is
    /// the caller's `stamp` (a time with nanoseconds, unique per call), not the time of the
    /// request: a retry writes the same value, which changes nothing if the first write landed.
    async fn rollout_restart(
        &self,
        namespace: &str,
        name: &str,
        stamp: &str,
    ) -> Result<Deployment, ExecError> {
        checked(namespace, name)?;
        let operation = format!("restart deployment `{namespace}/{name}`");
        let patch = restart_patch(stamp, None);
        let object = self
            .call(
                &operation,
                self.call_timeout,
                self.deployments(namespace).patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                ),
            )
            .await?;
        tracing::info!(namespace, name, "deployment restarted");
        Ok(convert::deployment(namespace, name, &object))
    }

    async fn rollout_history(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<Revision>, ExecError> {
        checked(namespace, name)?;
        let object = self.read_object(namespace, name, self.call_timeout).await?;
        Ok(self
            .revisions(namespace, name, &object)
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    /// As `kubectl rollout undo` does: the deployment's pod template replaced by the revision's
    /// ReplicaSet's (without its `pod-template-hash` label), written with the `resourceVersion`
    /// of the read it was judged on, so a write by someone else in between is a conflict.
    async fn rollout_undo(&self, change: &Change) -> Result<Deployment, ExecError> {
        let Change::RolloutUndo {
            namespace,
            name,
            revision,
            to,
            ..
        } = change
        else {
            return Err(ExecError::InvalidArgument(
                "rollout_undo takes a rollback".into(),
            ));
        };
        let (namespace, name) = (namespace.as_str(), name.as_str());
        checked(namespace, name)?;
        let mut retries = 0;
        loop {
            let mut object = self.read_object(namespace, name, self.call_timeout).await?;
            match change.read_back(convert::deployment(namespace, name, &object)) {
                Reconciled::Done(deployment) => return Ok(deployment),
                Reconciled::Conflict(message) => return Err(ExecError::Conflict(message)),
                Reconciled::NotApplied => {}
            }
            let target = self
                .revisions(namespace, name, &object)
                .await?
                .into_iter()
                .find(|(r, _)| r.revision == *revision && r.template_hash == *to)
                .and_then(|(_, rs)| rs.spec.template)
                .ok_or_else(|| {
                    ExecError::Conflict(format!(
                        "deployment `{namespace}/{name}` no longer keeps revision {revision} with the template it was decided on ({to})"
                    ))
                })?;
            let mut template = target;
            if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
                labels.remove("pod-template-hash");
            }
            object.spec.template = template;
            let operation = format!(
                "roll deployment `{namespace}/{name}` back to revision {revision} if still at resourceVersion {}",
                object.metadata.resource_version.as_deref().unwrap_or("?")
            );
            let written = self
                .call(
                    &operation,
                    self.call_timeout,
                    self.deployments(namespace)
                        .replace(name, &PostParams::default(), &object),
                )
                .await;
            // Written since it was read: status updates during a rollout do that all the time.
            // Read again; the read-back refuses it if someone changed the spec.
            if let Some(written) = self
                .settled(written, &mut retries, "rollback", namespace, name)
                .await?
            {
                tracing::info!(namespace, name, revision, retries, "deployment rolled back");
                return Ok(convert::deployment(namespace, name, &written));
            }
        }
    }

    /// One read of the deployment, judged by [`Change::read_back`]: its replicas and
    /// `metadata.generation` for a scale, the pod template's `restartedAt` for a restart.
    async fn reconcile(&self, change: &Change) -> Result<Reconciled<Deployment>, ExecError> {
        let (namespace, name) = change.target();
        checked(namespace, name)?;
        let read = self.read(namespace, name, self.call_timeout).await?;
        Ok(change.read_back(read))
    }

    /// One read judged by [`Change::read_back`], then one write naming the read's
    /// `resourceVersion`: a `PUT` of the scale subresource, or the restart's patch carrying
    /// `metadata.resourceVersion` (which the API server takes as a precondition). A `409
    /// Conflict` is reported as it is, not retried on a fresh read.
    async fn redo(&self, change: &Change) -> Result<Deployment, ExecError> {
        // A rollback is judged on its read and written on its version already.
        if let Change::RolloutUndo { .. } = change {
            return self.rollout_undo(change).await;
        }
        let (namespace, name) = change.target();
        checked(namespace, name)?;
        let object = self.read_object(namespace, name, self.call_timeout).await?;
        match change.read_back(convert::deployment(namespace, name, &object)) {
            Reconciled::Done(deployment) => return Ok(deployment),
            Reconciled::Conflict(message) => return Err(ExecError::Conflict(message)),
            Reconciled::NotApplied => {}
        }
        let Some(version) = object.metadata.resource_version else {
            return Err(ExecError::Other(format!(
                "deployment `{namespace}/{name}` was read without a resourceVersion, so it cannot be changed on condition that nobody else wrote it"
            )));
        };
        let api = self.deployments(namespace);
        let written = match change {
            Change::Scale { replicas, .. } => {
                let wanted = grace_executor::kubernetes::replicas_i32(*replicas)?;
                let operation = format!(
                    "scale deployment `{namespace}/{name}` to {replicas} if still at resourceVersion {version}"
                );
                let scale = k8s_openapi::api::autoscaling::v1::Scale {
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(namespace.to_owned()),
                        resource_version: Some(version.clone()),
                        ..Default::default()
                    },
                    spec: Some(ScaleSpec {
                        replicas: Some(wanted),
                    }),
                    status: None,
                };
                self.call(
                    &operation,
                    self.call_timeout,
                    api.replace_scale(name, &PostParams::default(), &scale),
                )
                .await
                .map(|_| None)
            }
            Change::RolloutRestart { stamp, .. } => {
                let operation = format!(
                    "restart deployment `{namespace}/{name}` if still at resourceVersion {version}"
                );
                self.call(
                    &operation,
                    self.call_timeout,
                    api.patch(
                        name,
                        &PatchParams::default(),
                        &Patch::Strategic(restart_patch(stamp, Some(&version))),
                    ),
                )
                .await
                .map(Some)
            }
            Change::RolloutUndo { .. } => return self.rollout_undo(change).await,
        };
        let written = match written {
            Ok(written) => written,
            Err(ExecError::Conflict(message)) => {
                return Err(ExecError::Conflict(format!(
                    "{message}; it was written since it was read back, so the change is not made over the other writer's"
                )));
            }
            Err(other) => return Err(other),
        };
        tracing::info!(namespace, name, resource_version = %version, ?change, "deployment change redone on its version");
        match written {
            Some(object) => Ok(convert::deployment(namespace, name, &object)),
            None => self
                .read(namespace, name, self.call_timeout)
                .await
                .map_err(ExecError::after_change),
        }
    }

    /// Reads the deployment every `poll_interval` until its rollout is complete (the rule of
    /// `kubectl rollout status`), for at most `timeout` of wall time. A read that fails
    /// transiently is retried at the next poll; any other failure ends the wait.
    async fn wait_for_rollout(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Deployment, ExecError> {
        checked(namespace, name)?;
        let deadline = Instant::now() + timeout;
        let mut last: Option<Deployment> = None;
        let mut last_error: Option<ExecError> = None;
        let mut first = true;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Even a zero timeout gets one full read: "is it rolled out now?".
            let limit = if first && remaining.is_zero() {
                self.call_timeout
            } else {
                self.call_timeout.min(remaining)
            };
            first = false;
            if !limit.is_zero() {
                match self.read(namespace, name, limit).await {
                    Ok(d) if d.is_rolled_out() => return Ok(d),
                    Ok(d) => {
                        last = Some(d);
                        last_error = None;
                    }
                    Err(e) if e.is_transient() => last_error = Some(e),
                    Err(e) => return Err(e),
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                let waited = humantime::format_duration(timeout);
                let state = last.as_ref().map_or_else(
                    || "could not be read".to_owned(),
                    |d| format!("has {}", progress(d)),
                );
                let cause = last_error
                    .map(|e| format!("; last read failed: {e}"))
                    .unwrap_or_default();
                return Err(ExecError::TimedOut(format!(
                    "deployment `{namespace}/{name}` {state} after waiting {waited}{cause}"
                )));
            }
            tokio::time::sleep(self.poll_interval.min(remaining)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_backoff_grows_and_stays_short() {
        assert_eq!(conflict_backoff(1), Duration::from_millis(10));
        assert_eq!(conflict_backoff(2), Duration::from_millis(20));
        assert_eq!(conflict_backoff(100), Duration::from_millis(320));
    }

    #[test]
    fn restart_stamps_are_rfc3339_utc_with_nanoseconds() {
        let stamp = grace_executor::kubernetes::restart_stamp();
        assert!(stamp.ends_with('Z') && stamp.contains('T'), "{stamp}");
        assert!(
            stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
            "{stamp}"
        );
        let fraction = stamp.rsplit_once('.').map(|(_, f)| f);
        assert_eq!(fraction.map(str::len), Some("123456789Z".len()), "{stamp}");
    }
}
