//! `[grants.containers]`: which containers (by label) a guest may act on, with which actions,
//! how many replicas a `scale` may ask for and how many changes a run may make.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::bounds::{actions, check_changes, min_max, positive};
use super::{Denial, deny};
use crate::Labels;
use crate::glob::Glob;
use crate::manifest::ManifestError;

/// A container action a grant can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContainerAction {
    /// `list`.
    List,
    /// `restart`.
    Restart,
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `scale`.
    Scale,
    /// `logs`: read a container's output.
    Logs,
}

impl ContainerAction {
    /// Every action, in the order manifests list them in errors.
    pub const ALL: [ContainerAction; 6] = [
        ContainerAction::List,
        ContainerAction::Logs,
        ContainerAction::Restart,
        ContainerAction::Start,
        ContainerAction::Stop,
        ContainerAction::Scale,
    ];

    fn parse(s: &str) -> Option<Self> {
        ContainerAction::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The action's name, as in manifests and WIT.
    pub fn name(self) -> &'static str {
        match self {
            ContainerAction::List => "list",
            ContainerAction::Restart => "restart",
            ContainerAction::Start => "start",
            ContainerAction::Stop => "stop",
            ContainerAction::Scale => "scale",
            ContainerAction::Logs => "logs",
        }
    }
}

/// Which containers, which actions.
#[derive(Debug, Clone)]
pub struct ContainerGrant {
    /// A container is in scope when it carries every key with a value matching the glob.
    pub labels: BTreeMap<String, Glob>,
    /// Allowed actions.
    pub actions: Vec<ContainerAction>,
    /// `scale` never below (1 unless the manifest says otherwise: scaling a service to nothing
    /// must be granted explicitly, with `min_replicas = 0`).
    pub min_replicas: u32,
    /// `scale` never above.
    pub max_replicas: Option<u32>,
    /// Changing calls (restart, start, stop, scale) per run.
    pub max_changes: u32,
}

impl ContainerGrant {
    /// Is the action allowed?
    pub fn check_action(&self, action: ContainerAction) -> Result<(), Denial> {
        if self.actions.contains(&action) {
            Ok(())
        } else {
            deny(format!(
                "container action `{}` is not granted (granted: {})",
                action.name(),
                self.actions
                    .iter()
                    .map(|a| format!("`{}`", a.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    /// Is a container with these labels in scope?
    pub fn in_scope(&self, labels: &Labels) -> bool {
        self.labels
            .iter()
            .all(|(k, glob)| labels.get(k).is_some_and(|v| glob.matches(v)))
    }

    fn describe_scope(&self) -> String {
        self.labels
            .iter()
            .map(|(k, g)| format!("{k}={g}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// May `action` read the container with these labels (not a change: no change budget)?
    pub fn check_read(
        &self,
        action: ContainerAction,
        container: &str,
        labels: &Labels,
    ) -> Result<(), Denial> {
        self.check_action(action)?;
        if !self.in_scope(labels) {
            return deny(format!(
                "container `{container}` is outside the granted labels `{}`",
                self.describe_scope()
            ));
        }
        Ok(())
    }

    /// May this changing action touch the container with these labels?
    pub fn check_change(
        &self,
        action: ContainerAction,
        container: &str,
        labels: &Labels,
        changes_so_far: u32,
    ) -> Result<(), Denial> {
        self.check_action(action)?;
        if !self.in_scope(labels) {
            return deny(format!(
                "container `{container}` is outside the granted labels `{}`",
                self.describe_scope()
            ));
        }
        check_changes(action.name(), changes_so_far, self.max_changes)
    }

    /// May the service selected by `selector` be scaled to `replicas`? The selector must pin every
    /// granted label, so that the containers it creates are in scope too.
    pub fn check_scale(
        &self,
        selector: &Labels,
        replicas: u32,
        changes_so_far: u32,
    ) -> Result<(), Denial> {
        self.check_action(ContainerAction::Scale)?;
        if !self.in_scope(selector) {
            return deny(format!(
                "selector `{}` does not pin the granted labels `{}`",
                selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                self.describe_scope()
            ));
        }
        if replicas < self.min_replicas {
            return deny(format!(
                "{replicas} replicas is below the granted min_replicas {}",
                self.min_replicas
            ));
        }
        if let Some(max) = self.max_replicas
            && replicas > max
        {
            return deny(format!(
                "{replicas} replicas is above the granted max_replicas {max}"
            ));
        }
        check_changes("scale", changes_so_far, self.max_changes)
    }
}

/// `[grants.containers]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContainers {
    labels: BTreeMap<String, String>,
    actions: Vec<String>,
    min_replicas: Option<u32>,
    max_replicas: Option<u32>,
    max_changes: Option<u32>,
}

impl RawContainers {
    /// The typed grant, or the first field that is out of range or inconsistent.
    pub(super) fn validate(self) -> Result<ContainerGrant, ManifestError> {
        if self.labels.is_empty() {
            return Err(ManifestError::invalid(
                "grants.containers.labels",
                "must not be empty: name the labels that put a container in scope",
            ));
        }
        positive("grants.containers.max_changes", self.max_changes)?;
        let actions = actions(
            "grants.containers.actions",
            self.actions,
            ContainerAction::parse,
            &ContainerAction::ALL
                .iter()
                .map(|a| format!("`{}`", a.name()))
                .collect::<Vec<_>>()
                .join(", "),
        )?;
        // Without a ceiling one call could ask for the engine's limit of replicas:
        // scaling is granted only with an explicit one.
        if actions.contains(&ContainerAction::Scale) && self.max_replicas.is_none() {
            return Err(ManifestError::invalid(
                "grants.containers.max_replicas",
                "is required when `scale` is granted: the most replicas a run may ask for",
            ));
        }
        let min_replicas = self.min_replicas.unwrap_or(1);
        min_max(
            "grants.containers",
            ("min_replicas", Some(min_replicas)),
            ("max_replicas", self.max_replicas),
        )?;
        Ok(ContainerGrant {
            labels: self
                .labels
                .into_iter()
                .map(|(k, v)| (k, Glob::new(v)))
                .collect(),
            actions,
            min_replicas,
            max_replicas: self.max_replicas,
            max_changes: self.max_changes.unwrap_or(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::tests::manifest;

    #[test]
    fn container_scope_is_every_granted_label() {
        let g = manifest(
            "[grants.containers]\nlabels = { app = \"web*\" }\nactions = [\"list\", \"restart\"]\n",
        )
        .unwrap()
        .grants
        .containers
        .unwrap();
        let web: Labels = [("app".to_string(), "web".to_string())].into();
        let cache: Labels = [("app".to_string(), "cache".to_string())].into();
        assert!(
            g.check_change(ContainerAction::Restart, "web-1", &web, 0)
                .is_ok()
        );
        assert!(
            g.check_change(ContainerAction::Restart, "cache-1", &cache, 0)
                .is_err()
        );
        assert!(
            g.check_change(ContainerAction::Stop, "web-1", &web, 0)
                .is_err()
        );
        assert!(
            g.check_change(ContainerAction::Restart, "web-1", &web, 1)
                .is_err()
        );
        assert!(g.check_scale(&web, 2, 0).is_err(), "scale is not granted");
    }

    #[test]
    fn container_scale_to_zero_needs_an_explicit_min_replicas() {
        let grant = |extra: &str| {
            manifest(&format!(
                "[grants.containers]\nlabels = {{ app = \"web\" }}\nactions = [\"scale\"]\nmax_replicas = 5\n{extra}"
            ))
            .unwrap()
            .grants
            .containers
            .unwrap()
        };
        let web: Labels = [("app".to_string(), "web".to_string())].into();
        let by_default = grant("");
        let e = by_default.check_scale(&web, 0, 0).unwrap_err().0;
        assert_eq!(e, "0 replicas is below the granted min_replicas 1");
        assert!(by_default.check_scale(&web, 1, 0).is_ok());
        assert!(grant("min_replicas = 0\n").check_scale(&web, 0, 0).is_ok());
        assert!(grant("min_replicas = 2\n").check_scale(&web, 1, 0).is_err());
        let e = manifest(
            "[grants.containers]\nlabels = { app = \"web\" }\nactions = [\"scale\"]\nmin_replicas = 3\nmax_replicas = 2\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("grants.containers.max_replicas"), "{e}");
    }
}
