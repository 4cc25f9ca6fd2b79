//! Kubernetes deployments.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{ExecError, Reconciled};

/// The parts of an `apps/v1` Deployment's spec and status a playbook reasons about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Desired replicas (`spec.replicas`).
    pub replicas: u32,
    /// `status.readyReplicas`.
    pub ready_replicas: u32,
    /// `status.updatedReplicas`.
    pub updated_replicas: u32,
    /// `status.availableReplicas`.
    pub available_replicas: u32,
    /// `metadata.generation`.
    pub generation: u64,
    /// `status.observedGeneration`.
    pub observed_generation: u64,
    /// `metadata.resourceVersion` as read: the precondition of a write that must not land on
    /// anything newer. `None` where the provider has no such thing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

impl Deployment {
    /// Whether the rollout is complete, by the rule `kubectl rollout status` applies.
    pub fn is_rolled_out(&self) -> bool {
        self.observed_generation >= self.generation
            && self.updated_replicas == self.replicas
            && self.ready_replicas == self.replicas
            && self.available_replicas == self.replicas
    }
}

/// A change of a deployment whose earlier outcome is unknown, as its intent recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `scale-deployment`: done when `spec.replicas` is `replicas`; when it is not, and the
    /// deployment is no longer at `resource_version` (read before the change), someone else
    /// wrote it since: a conflict.
    Scale {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The replicas asked for.
        replicas: u32,
        /// The deployment's version read before the change, if the provider has versions.
        resource_version: Option<String>,
    },
    /// `rollout-restart`: done when the pod template carries `stamp`, the restart marker the
    /// change was made with (unique per call: see [`restart_stamp`]).
    RolloutRestart {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The marker written by the restart.
        stamp: String,
    },
}

/// `replicas` as the API holds it: `spec.replicas` is an `int32`, so a larger count is refused
/// the same way by every provider, the simulation (a dry-run refuses what production would)
/// and the guest boundary.
pub fn replicas_i32(replicas: u32) -> Result<i32, ExecError> {
    i32::try_from(replicas).map_err(|_| {
        ExecError::InvalidArgument(format!(
            "`replicas` is {replicas}, above the limit of {} (Kubernetes' int32)",
            i32::MAX
        ))
    })
}

/// A restart marker for one `rollout-restart` call: now, in RFC 3339 with nanoseconds, and
/// strictly later than every marker this process made before, so two calls never share one
/// (even in one nanosecond of the system clock, or when the clock steps back). The marker is
/// chosen before the change's intent is recorded, so a retry can read it back and tell
/// whether the restart happened.
pub fn restart_stamp() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    let nanos = loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(nanos)).to_string()
}

/// Acts on deployments.
#[async_trait::async_trait]
pub trait KubernetesExecutor: Send + Sync {
    /// Reads a deployment.
    async fn get_deployment(&self, namespace: &str, name: &str) -> Result<Deployment, ExecError>;
    /// Sets `spec.replicas` through the scale subresource.
    async fn scale_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> Result<Deployment, ExecError>;
    /// Sets `spec.replicas` only if the deployment is still at `resource_version`: the redo of a
    /// change whose outcome was unknown, which must not undo another writer's change. A newer
    /// version is a [`ExecError::Conflict`], reported rather than retried on a fresh read.
    async fn scale_deployment_at_version(
        &self,
        namespace: &str,
        name: &str,
        replicas: u32,
        resource_version: &str,
    ) -> Result<Deployment, ExecError>;
    /// Restarts every pod, as `kubectl rollout restart` does, marking the pod template with
    /// `stamp` ([`restart_stamp`]); a template already carrying `stamp` is left as it is.
    async fn rollout_restart(
        &self,
        namespace: &str,
        name: &str,
        stamp: &str,
    ) -> Result<Deployment, ExecError>;
    /// Waits until the rollout is complete, or `timeout` passes on the run clock.
    async fn wait_for_rollout(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Deployment, ExecError>;
    /// Reads the deployment and says whether `change`, whose earlier outcome is unknown, is in
    /// place (see [`crate::reconcile`]).
    async fn reconcile(&self, change: &Change) -> Result<Reconciled<Deployment>, ExecError>;
}

/// How a scale whose outcome is unknown reads on `deployment` (as read now): at the target,
/// done; otherwise a conflict if the deployment moved past the version read before the change
/// (someone wrote it since), else not applied.
pub fn reconcile_scale(
    deployment: Deployment,
    replicas: u32,
    resource_version: Option<&str>,
) -> Reconciled<Deployment> {
    if deployment.replicas == replicas {
        return Reconciled::Done(deployment);
    }
    match (resource_version, deployment.resource_version.as_deref()) {
        (Some(then), Some(now)) if then != now => Reconciled::Conflict(format!(
            "deployment `{}/{}` has {} replicas, not {replicas}, and was written since the change was decided (resourceVersion {then}, now {now}): it is not scaled again over the other writer's change",
            deployment.namespace, deployment.name, deployment.replicas
        )),
        _ => Reconciled::NotApplied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_stamps_made_back_to_back_differ_and_are_rfc3339() {
        let stamps: Vec<String> = (0..1000).map(|_| restart_stamp()).collect();
        let distinct: std::collections::BTreeSet<&String> = stamps.iter().collect();
        assert_eq!(distinct.len(), stamps.len());
        for stamp in &stamps {
            assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
        }
    }
}
