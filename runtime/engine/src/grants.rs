//! Capability grants: what a guest may do, parsed once from its manifest into typed rules.
//!
//! Deny by default: a capability without a `[grants.<capability>]` table is not granted, an empty
//! list grants nothing (and is refused at load time as a likely mistake), and every bound is
//! checked here, in one place, by the `check_*` methods the capability modules call. The checks
//! return a [`Denial`] whose text the guest receives as `error::denied` and the ledger records.
//!
//! Accepted forms (see `docs/manifest.md`):
//! - `scaling`: `groups` (globs), `min_capacity`, `max_capacity`, `max_step`, `max_changes`;
//! - `containers`: `labels` (key = value glob), `actions`, `min_replicas` (default 1),
//!   `max_replicas`, `max_changes`;
//! - `kubernetes`: `namespaces`, `deployments` (globs), `actions`, `min_replicas`, `max_replicas`,
//!   `max_step`, `max_changes`;
//! - `metrics`: `series` (metric, labels, regex) and `max_range`, checked on parsed PromQL by
//!   [`crate::promql_grant`];
//! - every table: `provider`, the one provider its calls may reach (see [`Grants::check_provider`]).

use std::collections::BTreeMap;

use grace_executor::Labels;

use crate::glob::{self, Glob};
use crate::manifest::{Kind, ManifestError};
pub use crate::promql_grant::{MetricsGrant, QueryError, SeriesGrant};

/// Why a call was refused by the grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial(pub String);

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn deny<T>(message: impl Into<String>) -> Result<T, Denial> {
    Err(Denial(message.into()))
}

/// All grants of one manifest.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// `[grants.scaling]`.
    pub scaling: Option<ScalingGrant>,
    /// `[grants.containers]`.
    pub containers: Option<ContainerGrant>,
    /// `[grants.kubernetes]`.
    pub kubernetes: Option<KubernetesGrant>,
    /// `[grants.metrics]`.
    pub metrics: Option<MetricsGrant>,
    /// The provider each table names (`provider = "aws-eu"`), by capability.
    pub providers: BTreeMap<grace_executor::Capability, String>,
}

impl Grants {
    /// Checks the provider the host's configuration routed a call to against the one the
    /// grant names, if it names one: a call is refused, never rerouted, when they differ.
    pub fn check_provider(
        &self,
        capability: grace_executor::Capability,
        resource: &str,
        routed: &str,
    ) -> Result<(), Denial> {
        match self.providers.get(&capability) {
            Some(named) if named != routed => deny(format!(
                "the grant names provider `{named}`, but this host routes {capability} resource `{resource}` to provider `{routed}`: refused, not rerouted"
            )),
            _ => Ok(()),
        }
    }
}

/// Which groups of instances, and how far.
#[derive(Debug, Clone)]
pub struct ScalingGrant {
    /// Groups in scope.
    pub groups: Vec<Glob>,
    /// Never set below.
    pub min_capacity: Option<u32>,
    /// Never set above.
    pub max_capacity: Option<u32>,
    /// At most this change per call.
    pub max_step: Option<u32>,
    /// `set-desired-capacity` calls per run.
    pub max_changes: u32,
}

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
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "list" => ContainerAction::List,
            "restart" => ContainerAction::Restart,
            "start" => ContainerAction::Start,
            "stop" => ContainerAction::Stop,
            "scale" => ContainerAction::Scale,
            "logs" => ContainerAction::Logs,
            _ => return None,
        })
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

/// A Kubernetes action a grant can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KubernetesAction {
    /// `get-deployment` and `wait-for-rollout`.
    Get,
    /// `scale-deployment`.
    Scale,
    /// `rollout-restart`.
    Restart,
}

impl KubernetesAction {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "get" => KubernetesAction::Get,
            "scale" => KubernetesAction::Scale,
            "restart" => KubernetesAction::Restart,
            _ => return None,
        })
    }

    /// The action's name, as in manifests.
    pub fn name(self) -> &'static str {
        match self {
            KubernetesAction::Get => "get",
            KubernetesAction::Scale => "scale",
            KubernetesAction::Restart => "restart",
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

/// Bounds shared by the capacity-like checks of scaling and Kubernetes.
struct Bounds<'a> {
    what: &'a str,
    unit: &'a str,
    min: Option<u32>,
    max: Option<u32>,
    max_step: Option<u32>,
}

impl Bounds<'_> {
    fn check(&self, current: u32, desired: u32) -> Result<(), Denial> {
        if let Some(min) = self.min
            && desired < min
        {
            return deny(format!(
                "{} {desired} for {} is below the granted min {min}",
                self.unit, self.what
            ));
        }
        if let Some(max) = self.max
            && desired > max
        {
            return deny(format!(
                "{} {desired} for {} is above the granted max {max}",
                self.unit, self.what
            ));
        }
        if let Some(step) = self.max_step {
            let change = desired.abs_diff(current);
            if change > step {
                return deny(format!(
                    "changing {} from {current} to {desired} is a step of {change}, above the granted max_step {step}",
                    self.what
                ));
            }
        }
        Ok(())
    }
}

fn check_changes(function: &str, done: u32, max: u32) -> Result<(), Denial> {
    if done >= max {
        return deny(format!(
            "{function} was already called {done} time(s) in this run; the grant allows {max} (max_changes)"
        ));
    }
    Ok(())
}

/// The denial for a capability the manifest does not grant.
pub fn not_granted(capability: &str, playbook: &str) -> Denial {
    Denial(format!(
        "capability `{capability}` is not granted to `{playbook}` (add [grants.{capability}] to its manifest)"
    ))
}

impl ScalingGrant {
    /// Is the group in scope?
    pub fn check_group(&self, group: &str) -> Result<(), Denial> {
        if self.groups.iter().any(|g| g.matches(group)) {
            Ok(())
        } else {
            deny(format!(
                "group `{group}` is not granted (granted groups: {})",
                glob::list(&self.groups)
            ))
        }
    }

    /// May the group go from `current` to `desired`, with `changes_so_far` changes this run?
    pub fn check_set_capacity(
        &self,
        group: &str,
        current: u32,
        desired: u32,
        changes_so_far: u32,
    ) -> Result<(), Denial> {
        self.check_group(group)?;
        check_changes("set-desired-capacity", changes_so_far, self.max_changes)?;
        Bounds {
            what: &format!("group `{group}`"),
            unit: "capacity",
            min: self.min_capacity,
            max: self.max_capacity,
            max_step: self.max_step,
        }
        .check(current, desired)
    }
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
}

/// Grants as written in the manifest.
pub(crate) mod raw {
    use std::collections::BTreeMap;

    use grace_executor::Capability;
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Grants {
        scaling: Option<Scaling>,
        containers: Option<Containers>,
        kubernetes: Option<Kubernetes>,
        metrics: Option<crate::promql_grant::raw::Metrics>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Scaling {
        provider: Option<String>,
        groups: Vec<String>,
        min_capacity: Option<u32>,
        max_capacity: Option<u32>,
        max_step: Option<u32>,
        max_changes: Option<u32>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Containers {
        provider: Option<String>,
        labels: BTreeMap<String, String>,
        actions: Vec<String>,
        min_replicas: Option<u32>,
        max_replicas: Option<u32>,
        max_changes: Option<u32>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Kubernetes {
        provider: Option<String>,
        namespaces: Vec<String>,
        deployments: Option<Vec<String>>,
        actions: Vec<String>,
        min_replicas: Option<u32>,
        max_replicas: Option<u32>,
        max_step: Option<u32>,
        max_changes: Option<u32>,
    }

    fn globs(field: &str, list: Vec<String>) -> Result<Vec<Glob>, ManifestError> {
        if list.is_empty() {
            return Err(ManifestError::invalid(
                field,
                "must not be empty (an empty list grants nothing; remove the table to deny the capability)",
            ));
        }
        if let Some(blank) = list.iter().position(|g| g.trim().is_empty()) {
            return Err(ManifestError::invalid(
                format!("{field}[{blank}]"),
                "must not be empty",
            ));
        }
        Ok(list.into_iter().map(Glob::new).collect())
    }

    fn min_max(
        table: &str,
        (min_name, min): (&str, Option<u32>),
        (max_name, max): (&str, Option<u32>),
    ) -> Result<(), ManifestError> {
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err(ManifestError::invalid(
                format!("{table}.{max_name}"),
                format!("`{hi}` is below {min_name} `{lo}`"),
            ));
        }
        Ok(())
    }

    fn positive(field: &str, value: Option<u32>) -> Result<(), ManifestError> {
        if value == Some(0) {
            return Err(ManifestError::invalid(
                field,
                "must be at least 1 (remove the grant to forbid changes)",
            ));
        }
        Ok(())
    }

    fn actions<A: Ord>(
        field: &str,
        list: Vec<String>,
        parse: fn(&str) -> Option<A>,
        known: &str,
    ) -> Result<Vec<A>, ManifestError> {
        if list.is_empty() {
            return Err(ManifestError::invalid(field, "must not be empty"));
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, name) in list.iter().enumerate() {
            let action = parse(name).ok_or_else(|| {
                ManifestError::invalid(
                    format!("{field}[{i}]"),
                    format!("`{name}` is not an action (known: {known})"),
                )
            })?;
            out.push(action);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    impl Grants {
        pub(crate) fn validate(
            self,
            kind: Kind,
            manifest_version: u32,
        ) -> Result<super::Grants, ManifestError> {
            if kind == Kind::Collector {
                for (name, present) in [
                    ("scaling", self.scaling.is_some()),
                    ("containers", self.containers.is_some()),
                    ("kubernetes", self.kubernetes.is_some()),
                ] {
                    if present {
                        return Err(ManifestError::invalid(
                            format!("grants.{name}"),
                            "collectors observe, they do not act: only `metrics` can be granted",
                        ));
                    }
                }
            }
            let providers = [
                (
                    Capability::Scaling,
                    self.scaling.as_ref().and_then(|s| s.provider.clone()),
                ),
                (
                    Capability::Containers,
                    self.containers.as_ref().and_then(|c| c.provider.clone()),
                ),
                (
                    Capability::Kubernetes,
                    self.kubernetes.as_ref().and_then(|k| k.provider.clone()),
                ),
                (
                    Capability::Metrics,
                    self.metrics.as_ref().and_then(|m| m.provider.clone()),
                ),
            ]
            .into_iter()
            .filter_map(|(capability, name)| {
                let name = name?;
                Some(
                    grace_executor::routing::check_provider_name(&name)
                        .map(|()| (capability, name))
                        .map_err(|m| {
                            ManifestError::invalid(format!("grants.{capability}.provider"), m)
                        }),
                )
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
            let scaling = self
                .scaling
                .map(|s| {
                    let t = "grants.scaling";
                    min_max(
                        t,
                        ("min_capacity", s.min_capacity),
                        ("max_capacity", s.max_capacity),
                    )?;
                    positive("grants.scaling.max_step", s.max_step)?;
                    positive("grants.scaling.max_changes", s.max_changes)?;
                    Ok::<_, ManifestError>(ScalingGrant {
                        groups: globs("grants.scaling.groups", s.groups)?,
                        min_capacity: s.min_capacity,
                        max_capacity: s.max_capacity,
                        max_step: s.max_step,
                        max_changes: s.max_changes.unwrap_or(1),
                    })
                })
                .transpose()?;
            let containers = self
                .containers
                .map(|c| {
                    if c.labels.is_empty() {
                        return Err(ManifestError::invalid(
                            "grants.containers.labels",
                            "must not be empty: name the labels that put a container in scope",
                        ));
                    }
                    positive("grants.containers.max_changes", c.max_changes)?;
                    let actions = actions(
                        "grants.containers.actions",
                        c.actions,
                        ContainerAction::parse,
                        "`list`, `restart`, `start`, `stop`, `scale`",
                    )?;
                    // Without a ceiling one call could ask for the engine's limit of replicas:
                    // scaling is granted only with an explicit one.
                    if actions.contains(&ContainerAction::Scale) && c.max_replicas.is_none() {
                        return Err(ManifestError::invalid(
                            "grants.containers.max_replicas",
                            "is required when `scale` is granted: the most replicas a run may ask for",
                        ));
                    }
                    let min_replicas = c.min_replicas.unwrap_or(1);
                    min_max(
                        "grants.containers",
                        ("min_replicas", Some(min_replicas)),
                        ("max_replicas", c.max_replicas),
                    )?;
                    Ok(ContainerGrant {
                        labels: c
                            .labels
                            .into_iter()
                            .map(|(k, v)| (k, Glob::new(v)))
                            .collect(),
                        actions,
                        min_replicas,
                        max_replicas: c.max_replicas,
                        max_changes: c.max_changes.unwrap_or(1),
                    })
                })
                .transpose()?;
            let kubernetes = self
                .kubernetes
                .map(|k| {
                    let t = "grants.kubernetes";
                    min_max(
                        t,
                        ("min_replicas", k.min_replicas),
                        ("max_replicas", k.max_replicas),
                    )?;
                    positive("grants.kubernetes.max_step", k.max_step)?;
                    positive("grants.kubernetes.max_changes", k.max_changes)?;
                    Ok::<_, ManifestError>(KubernetesGrant {
                        namespaces: globs("grants.kubernetes.namespaces", k.namespaces)?,
                        deployments: match k.deployments {
                            Some(d) => globs("grants.kubernetes.deployments", d)?,
                            None => vec![Glob::new("*")],
                        },
                        actions: actions(
                            "grants.kubernetes.actions",
                            k.actions,
                            KubernetesAction::parse,
                            "`get`, `scale`, `restart`",
                        )?,
                        min_replicas: k.min_replicas,
                        max_replicas: k.max_replicas,
                        max_step: k.max_step,
                        max_changes: k.max_changes.unwrap_or(1),
                    })
                })
                .transpose()?;
            let metrics = self
                .metrics
                .map(|m| m.validate(manifest_version))
                .transpose()?;
            Ok(super::Grants {
                scaling,
                containers,
                kubernetes,
                metrics,
                providers,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn manifest(grants: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(&format!(
            "manifest_version = 1\nname = \"p\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"p.wasm\"\n{grants}"
        ))
    }

    fn scaling() -> ScalingGrant {
        manifest("[grants.scaling]\ngroups = [\"api-*\"]\nmin_capacity = 2\nmax_capacity = 12\nmax_step = 2\nmax_changes = 2\n")
            .unwrap()
            .grants
            .scaling
            .unwrap()
    }

    #[test]
    fn scaling_within_bounds_is_allowed() {
        assert_eq!(scaling().check_set_capacity("api-asg", 3, 5, 0), Ok(()));
        assert_eq!(scaling().check_set_capacity("api-asg", 3, 2, 1), Ok(()));
    }

    #[test]
    fn scaling_outside_the_granted_groups_is_denied() {
        let e = scaling()
            .check_set_capacity("batch-asg", 1, 2, 0)
            .unwrap_err();
        assert!(e.0.contains("`batch-asg` is not granted"), "{e}");
    }

    #[test]
    fn scaling_steps_and_bounds_are_enforced() {
        let g = scaling();
        assert!(
            g.check_set_capacity("api-asg", 3, 6, 0)
                .unwrap_err()
                .0
                .contains("max_step 2")
        );
        assert!(
            g.check_set_capacity("api-asg", 12, 13, 0)
                .unwrap_err()
                .0
                .contains("max 12")
        );
        assert!(
            g.check_set_capacity("api-asg", 2, 1, 0)
                .unwrap_err()
                .0
                .contains("min 2")
        );
        assert!(
            g.check_set_capacity("api-asg", 3, 4, 2)
                .unwrap_err()
                .0
                .contains("max_changes")
        );
    }

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

    #[test]
    fn footguns_are_rejected_at_load() {
        for (grants, field) in [
            ("[grants.scaling]\ngroups = []\n", "grants.scaling.groups"),
            (
                "[grants.scaling]\ngroups = [\"a\"]\nmin_capacity = 5\nmax_capacity = 2\n",
                "grants.scaling.max_capacity",
            ),
            (
                "[grants.scaling]\ngroups = [\"a\"]\nmax_step = 0\n",
                "grants.scaling.max_step",
            ),
            (
                "[grants.containers]\nlabels = {}\nactions = [\"list\"]\n",
                "grants.containers.labels",
            ),
            (
                "[grants.containers]\nlabels = { app = \"x\" }\nactions = [\"delete\"]\n",
                "grants.containers.actions[0]",
            ),
            (
                "[grants.containers]\nlabels = { app = \"x\" }\nactions = [\"scale\"]\n",
                "grants.containers.max_replicas",
            ),
            (
                "[grants.metrics]\nqueries = [\"\"]\n",
                "grants.metrics.queries",
            ),
        ] {
            let e = manifest(grants).unwrap_err().to_string();
            assert!(e.starts_with(field), "expected `{field}`: {e}");
        }
        let e = manifest("[grants.scaling]\ngroups = [\"a\"]\nmax_stepp = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_stepp"), "{e}");
    }

    #[test]
    fn collectors_cannot_be_granted_actions() {
        let e = Manifest::parse("manifest_version = 1\nname = \"c\"\nversion = \"1.0.0\"\nkind = \"collector\"\ncomponent = \"c.wasm\"\n[grants.scaling]\ngroups = [\"*\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("grants.scaling"), "{e}");
    }
}
