//! The `kubernetes` interface: Kubernetes deployments (a cluster through kubeconfig, or the simulated fleet).

use super::{Effect, Function, Governed, GrantRule, Interface, ResourceKind};
use crate::grants::KubernetesAction;

/// The interface and its functions, in WIT order.
pub static INTERFACE: Interface = Interface {
    name: "kubernetes",
    functions: &[
        &GET_DEPLOYMENT,
        &SCALE_DEPLOYMENT,
        &ROLLOUT_RESTART,
        &WAIT_FOR_ROLLOUT,
        &ROLLOUT_HISTORY,
        &ROLLOUT_UNDO,
    ],
};

/// `kubernetes.get-deployment`.
pub static GET_DEPLOYMENT: Function = Function {
    interface: "kubernetes",
    name: "get-deployment",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "kubernetes::GetDeployment",
        resource: ResourceKind::Deployment,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Kubernetes(KubernetesAction::Get),
};

/// `kubernetes.scale-deployment`.
pub static SCALE_DEPLOYMENT: Function = Function {
    interface: "kubernetes",
    name: "scale-deployment",
    effect: Effect::Change,
    governed: Some(Governed {
        cedar_id: "kubernetes::ScaleDeployment",
        resource: ResourceKind::Deployment,
        groups: &["capacity"],
    }),
    lock: Some("kubernetes"),
    grant: GrantRule::Kubernetes(KubernetesAction::Scale),
};

/// `kubernetes.rollout-restart`.
pub static ROLLOUT_RESTART: Function = Function {
    interface: "kubernetes",
    name: "rollout-restart",
    effect: Effect::Change,
    governed: Some(Governed {
        cedar_id: "kubernetes::RolloutRestart",
        resource: ResourceKind::Deployment,
        groups: &["restart"],
    }),
    lock: Some("kubernetes"),
    grant: GrantRule::Kubernetes(KubernetesAction::Restart),
};

/// `kubernetes.wait-for-rollout`.
pub static WAIT_FOR_ROLLOUT: Function = Function {
    interface: "kubernetes",
    name: "wait-for-rollout",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "kubernetes::WaitForRollout",
        resource: ResourceKind::Deployment,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Kubernetes(KubernetesAction::Get),
};

/// `kubernetes.rollout-history`.
pub static ROLLOUT_HISTORY: Function = Function {
    interface: "kubernetes",
    name: "rollout-history",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "kubernetes::RolloutHistory",
        resource: ResourceKind::Deployment,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Kubernetes(KubernetesAction::Get),
};

/// `kubernetes.rollout-undo`.
pub static ROLLOUT_UNDO: Function = Function {
    interface: "kubernetes",
    name: "rollout-undo",
    effect: Effect::Change,
    governed: Some(Governed {
        cedar_id: "kubernetes::RolloutUndo",
        resource: ResourceKind::Deployment,
        groups: &["rollback"],
    }),
    lock: Some("kubernetes"),
    grant: GrantRule::Kubernetes(KubernetesAction::Rollback),
};
