//! `[grants.kubernetes]`: which namespaces and deployments a guest may read, scale or restart,
//! between which replica counts, by how much per call and how often per run.

use serde::Deserialize;

use super::bounds::{Bounds, actions, check_changes, globs, min_max, positive};
use super::{Denial, deny};
use crate::glob::{self, Glob};
use crate::manifest::ManifestError;

/// A Kubernetes action a grant can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KubernetesAction {
    /// `get-deployment` and `wait-for-rollout`.
    Get,
    /// `scale-deployment`.
    Scale,
    /// `rollout-restart`.
    Restart,
    /// `rollout-undo`.
    Rollback,
}

impl KubernetesAction {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "get" => KubernetesAction::Get,
            "scale" => KubernetesAction::Scale,
            "restart" => KubernetesAction::Restart,
            "rollback" => KubernetesAction::Rollback,
            _ => return None,
        })
    }

    /// The action's name, as in manifests.
    pub fn name(self) -> &'static str {
        match self {
            KubernetesAction::Get => "get",
            KubernetesAction::Scale => "scale",
            KubernetesAction::Restart => "restart",
            KubernetesAction::Rollback => "rollback",
        }
    }
}

/// Which deployments, which actions, how far.
#[derive(Debug, Clone)]
pub struct KubernetesGrant {
    /// Namespaces in scope.
    pub namespaces: Vec<Glob>,
    /// Deployment names in scope.
    pub deployments: Vec<Glob>,
    /// Allowed actions.
    pub actions: Vec<KubernetesAction>,
    /// Never scale below.
    pub min_replicas: Option<u32>,
    /// Never scale above.
    pub max_replicas: Option<u32>,
    /// At most this change per call.
    pub max_step: Option<u32>,
    /// Changing calls (scale, restart) per run.
    pub max_changes: u32,
}

impl KubernetesGrant {
    /// Is the action allowed on this deployment?
    pub fn check_target(
        &self,
        action: KubernetesAction,
        namespace: &str,
        name: &str,
    ) -> Result<(), Denial> {
        if !self.actions.contains(&action) {
            return deny(format!(
                "kubernetes action `{}` is not granted (granted: {})",
                action.name(),
                self.actions
                    .iter()
                    .map(|a| format!("`{}`", a.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.namespaces.iter().any(|g| g.matches(namespace)) {
            return deny(format!(
                "namespace `{namespace}` is not granted (granted namespaces: {})",
                glob::list(&self.namespaces)
            ));
        }
        if !self.deployments.iter().any(|g| g.matches(name)) {
            return deny(format!(
                "deployment `{namespace}/{name}` is not granted (granted deployments: {})",
                glob::list(&self.deployments)
            ));
        }
        Ok(())
    }

    /// May the deployment go from `current` to `desired` replicas?
    pub fn check_scale(
        &self,
        namespace: &str,
        name: &str,
        current: u32,
        desired: u32,
        changes_so_far: u32,
    ) -> Result<(), Denial> {
        self.check_target(KubernetesAction::Scale, namespace, name)?;
        check_changes("scale-deployment", changes_so_far, self.max_changes)?;
        Bounds {
            what: &format!("deployment `{namespace}/{name}`"),
            unit: "replicas",
            min: self.min_replicas,
            max: self.max_replicas,
            max_step: self.max_step,
        }
        .check(current, desired)
    }

    /// May the deployment be restarted?
    pub fn check_restart(
        &self,
        namespace: &str,
        name: &str,
        changes_so_far: u32,
    ) -> Result<(), Denial> {
        self.check_target(KubernetesAction::Restart, namespace, name)?;
        check_changes("rollout-restart", changes_so_far, self.max_changes)
    }

    /// May the guest roll `namespace/name` back, having made `changes_so_far` changes?
    pub fn check_rollback(
        &self,
        namespace: &str,
        name: &str,
        changes_so_far: u32,
    ) -> Result<(), Denial> {
        self.check_target(KubernetesAction::Rollback, namespace, name)?;
        check_changes("rollout-undo", changes_so_far, self.max_changes)
    }
}

/// `[grants.kubernetes]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKubernetes {
    /// `provider`: read by [`super::raw`].
    pub(super) provider: Option<String>,
    namespaces: Vec<String>,
    deployments: Option<Vec<String>>,
    actions: Vec<String>,
    min_replicas: Option<u32>,
    max_replicas: Option<u32>,
    max_step: Option<u32>,
    max_changes: Option<u32>,
}

impl RawKubernetes {
    /// The typed grant, or the first field that is out of range or inconsistent.
    pub(super) fn validate(self) -> Result<KubernetesGrant, ManifestError> {
        let t = "grants.kubernetes";
        min_max(
            t,
            ("min_replicas", self.min_replicas),
            ("max_replicas", self.max_replicas),
        )?;
        positive("grants.kubernetes.max_step", self.max_step)?;
        positive("grants.kubernetes.max_changes", self.max_changes)?;
        Ok::<_, ManifestError>(KubernetesGrant {
            namespaces: globs("grants.kubernetes.namespaces", self.namespaces)?,
            deployments: match self.deployments {
                Some(d) => globs("grants.kubernetes.deployments", d)?,
                None => vec![Glob::new("*")],
            },
            actions: actions(
                "grants.kubernetes.actions",
                self.actions,
                KubernetesAction::parse,
                "`get`, `scale`, `restart`",
            )?,
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            max_step: self.max_step,
            max_changes: self.max_changes.unwrap_or(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::tests::manifest;

    #[test]
    fn kubernetes_checks_action_namespace_and_replicas() {
        let g = manifest("[grants.kubernetes]\nnamespaces = [\"shop\"]\nactions = [\"get\", \"scale\"]\nmax_replicas = 6\nmax_step = 3\n")
            .unwrap()
            .grants
            .kubernetes
            .unwrap();
        assert!(g.check_scale("shop", "checkout", 2, 4, 0).is_ok());
        assert!(g.check_scale("kube-system", "dns", 2, 4, 0).is_err());
        assert!(g.check_scale("shop", "checkout", 2, 7, 0).is_err());
        assert!(g.check_restart("shop", "checkout", 0).is_err());
        assert!(
            g.check_target(KubernetesAction::Get, "shop", "cart")
                .is_ok()
        );
    }
}
