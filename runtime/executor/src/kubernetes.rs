//! Kubernetes deployments.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ExecError;

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
    /// Restarts every pod, as `kubectl rollout restart` does.
    async fn rollout_restart(&self, namespace: &str, name: &str) -> Result<Deployment, ExecError>;
    /// Waits until the rollout is complete, or `timeout` passes on the run clock.
    async fn wait_for_rollout(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Deployment, ExecError>;
}
