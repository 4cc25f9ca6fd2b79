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
//!   [`metrics`] (also reachable under its older path, `crate::promql_grant`); the same series
//!   entries grant the `anomaly` capability's reads of one series
//!   ([`MetricsGrant::check_series`]);
//! - `graph`: `namespaces`, `max_depth` (reads of the health graph; no `provider`);
//! - `notify`: `channels` (exact), `max_messages`, `max_bytes` (messages to the team; no
//!   `provider`: the host's `[integrations]` say where Slack is);
//! - every table: `provider`, the one provider its calls may reach (see [`Grants::check_provider`]).
//!
//! One module per capability (`scaling`, `containers`, `kubernetes`, `metrics`) holds its grant,
//! its checks and its table as written; `bounds` holds the rules they share. This module holds
//! what a caller sees of all of them: [`Grants`], [`Denial`] and [`not_granted`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::manifest::{Kind, ManifestError};
use crate::provider::{Capability, check_provider_name};

mod bounds;
mod containers;
mod graph;
mod kubernetes;
pub mod metrics;
mod notify;
mod scaling;

pub use containers::{ContainerAction, ContainerGrant};
pub use graph::{DEFAULT_GRAPH_DEPTH, GraphGrant, MAX_GRAPH_DEPTH};
pub use kubernetes::{KubernetesAction, KubernetesGrant};
pub use metrics::{MetricsGrant, QueryError, SeriesGrant, SeriesName};
pub use notify::{
    DEFAULT_BYTES, DEFAULT_MESSAGES, MAX_BYTES, MAX_MESSAGE_BYTES, MAX_MESSAGES, NotifyGrant,
};
pub use scaling::ScalingGrant;

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
    /// `[grants.graph]`.
    pub graph: Option<GraphGrant>,
    /// `[grants.notify]`.
    pub notify: Option<NotifyGrant>,
    /// The provider each table names (`provider = "aws-eu"`), by capability.
    pub providers: BTreeMap<Capability, String>,
}

impl Grants {
    /// Checks the provider the host's configuration routed a call to against the one the
    /// grant names, if it names one: a call is refused, never rerouted, when they differ.
    pub fn check_provider(
        &self,
        capability: Capability,
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

/// The denial for a capability the manifest does not grant.
pub fn not_granted(capability: &str, playbook: &str) -> Denial {
    Denial(format!(
        "capability `{capability}` is not granted to `{playbook}` (add [grants.{capability}] to its manifest)"
    ))
}

/// Grants as written in the manifest.
pub(crate) mod raw {
    use super::*;

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Grants {
        scaling: Option<scaling::RawScaling>,
        containers: Option<containers::RawContainers>,
        kubernetes: Option<kubernetes::RawKubernetes>,
        metrics: Option<metrics::raw::Metrics>,
        graph: Option<graph::RawGraph>,
        notify: Option<notify::RawNotify>,
    }

    impl Grants {
        /// The typed grants of a manifest of this kind and version, or the first field that is
        /// out of range or inconsistent.
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
                    ("graph", self.graph.is_some()),
                    ("notify", self.notify.is_some()),
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
                    check_provider_name(&name)
                        .map(|()| (capability, name))
                        .map_err(|m| {
                            ManifestError::invalid(format!("grants.{capability}.provider"), m)
                        }),
                )
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
            let scaling = self
                .scaling
                .map(scaling::RawScaling::validate)
                .transpose()?;
            let containers = self
                .containers
                .map(containers::RawContainers::validate)
                .transpose()?;
            let kubernetes = self
                .kubernetes
                .map(kubernetes::RawKubernetes::validate)
                .transpose()?;
            let metrics = self
                .metrics
                .map(|m| m.validate(manifest_version))
                .transpose()?;
            let graph = self.graph.map(graph::RawGraph::validate).transpose()?;
            let notify = self.notify.map(notify::RawNotify::validate).transpose()?;
            Ok(super::Grants {
                scaling,
                containers,
                kubernetes,
                metrics,
                graph,
                notify,
                providers,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    /// A playbook manifest with these grant tables, for the tests of every capability.
    pub(super) fn manifest(grants: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(&format!(
            "manifest_version = 1\nname = \"p\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"p.wasm\"\n{grants}"
        ))
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
    fn an_unknown_container_action_is_refused_naming_every_known_one() {
        let e = Manifest::parse("manifest_version = 2\nname = \"p\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"p.wasm\"\n[[triggers]]\nevent_type = \"x\"\n[grants.containers]\nlabels = { app = \"web\" }\nactions = [\"exec\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grants.containers.actions[0]"), "{e}");
        for action in ContainerAction::ALL {
            assert!(e.contains(&format!("`{}`", action.name())), "{e}");
        }
    }

    #[test]
    fn collectors_cannot_be_granted_actions() {
        let e = Manifest::parse("manifest_version = 1\nname = \"c\"\nversion = \"1.0.0\"\nkind = \"collector\"\ncomponent = \"c.wasm\"\n[grants.scaling]\ngroups = [\"*\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("grants.scaling"), "{e}");
    }
}
