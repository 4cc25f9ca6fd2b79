//! Kubernetes deployments (a cluster through kubeconfig, or the simulated fleet).
//!
//! Needs `[grants.kubernetes]` in the manifest: its `namespaces`, `deployments` and `actions`
//! (`get` also allows [`wait_for_rollout`] and [`rollout_history`]; `rollback` allows
//! [`rollout_undo`]) bound every call.

use std::time::Duration;

use crate::bindings::playbook::grace::playbook::kubernetes as wit;
use crate::clock::millis;
use crate::{Error, Result};

/// The parts of an `apps/v1` Deployment's spec and status a playbook reasons about.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Reads a deployment.
pub fn get_deployment(namespace: &str, name: &str) -> Result<Deployment> {
    wit::get_deployment(namespace, name)
        .map(deployment)
        .map_err(Error::from_host)
}

/// Sets the replica count through the scale subresource.
pub fn scale_deployment(namespace: &str, name: &str, replicas: u32) -> Result<Deployment> {
    wit::scale_deployment(namespace, name, replicas)
        .map(deployment)
        .map_err(Error::from_host)
}

/// Restarts every pod of the deployment, as `kubectl rollout restart` does.
pub fn rollout_restart(namespace: &str, name: &str) -> Result<Deployment> {
    wit::rollout_restart(namespace, name)
        .map(deployment)
        .map_err(Error::from_host)
}

/// Waits until the deployment's rollout is complete, for at most `timeout` on the run clock.
pub fn wait_for_rollout(namespace: &str, name: &str, timeout: Duration) -> Result<Deployment> {
    wit::wait_for_rollout(namespace, name, millis(timeout))
        .map(deployment)
        .map_err(Error::from_host)
}

/// One revision of a deployment's pod template (in a cluster, a ReplicaSet it owns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Its number; the highest is the current one.
    pub revision: u64,
    /// When it was made, in milliseconds since the Unix epoch: for the current revision, when
    /// the deployment last got a new template (a rollback reuses an old revision's, and its
    /// time).
    pub created_millis: u64,
    /// Its containers' images.
    pub images: Vec<String>,
    /// Why it was made (`kubernetes.io/change-cause`), when someone said.
    pub change_cause: Option<String>,
}

/// The deployment's revisions, newest first (at most 50), as `kubectl rollout history` lists
/// them. Needs `get` in the grant's `actions`.
pub fn rollout_history(namespace: &str, name: &str) -> Result<Vec<Revision>> {
    wit::rollout_history(namespace, name)
        .map(|list| {
            list.into_iter()
                .map(|r| Revision {
                    revision: r.revision,
                    created_millis: r.created_millis,
                    images: r.images,
                    change_cause: r.change_cause,
                })
                .collect()
        })
        .map_err(Error::from_host)
}

/// Rolls the pod template back to `to_revision` (0: the newest revision older than the
/// current one), as `kubectl rollout undo` does: every pod is replaced. Needs `rollback` in the
/// grant's `actions`; a change like a rollout restart (counted, keyed, decided by the trust
/// core as `kubernetes::RolloutUndo`).
pub fn rollout_undo(namespace: &str, name: &str, to_revision: u64) -> Result<Deployment> {
    wit::rollout_undo(namespace, name, to_revision)
        .map(deployment)
        .map_err(Error::from_host)
}

fn deployment(d: wit::Deployment) -> Deployment {
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
