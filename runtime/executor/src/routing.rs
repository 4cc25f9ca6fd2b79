//! `[[providers]]`: the configuration of providers and of which resources each serves, and its
//! validation into [`Routes`] per capability.
//!
//! ```toml
//! # A provider defined here: a kind, the capability it serves, its own settings.
//! [[providers]]
//! name = "aws-eu"          # unique on the host; what grants name and the ledger records
//! kind = "aws"             # aws | docker | kubernetes | prometheus (each serves one capability)
//! resources = ["web-*"]    # globs over the capability's resource names
//! [providers.settings]     # the same keys as the kind's own section ([aws] here)
//! region = "eu-west-1"
//!
//! # Routes to a provider that exists without an entry: `sim` (in simulation) and the
//! # providers of the kind sections (`[aws]` is `aws`, `[docker]` is `docker`, ...).
//! [[providers]]
//! name = "sim"
//! capability = "scaling"   # needed when the provider serves several capabilities
//! resources = ["canary-*"]
//! default = true           # serves the resources no route matches
//! ```
//!
//! Resolution is first match wins, in file order (see [`crate::providers`]). A capability's
//! default is the entry marked `default = true`, else the provider the host offers for it
//! without configuration (a kind section's, else the simulation's), else none: then resources
//! no route matches are refused. Configurations that could mean two things are refused: two
//! providers of one name, two defaults of one capability, one glob routed twice in one
//! capability, an entry routing nothing.
//!
//! What a resource is, per capability: a group name (`scaling`), a container reference, or a
//! label selector written `key=value,key=value` sorted by key (`containers`),
//! `namespace/name` (`kubernetes`), the query text (`metrics`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::providers::{Capability, Route, Routes};

pub use grace_model::provider::MAX_PROVIDER_NAME_LEN;

/// One `[[providers]]` entry; `S` is the host's settings type for `[providers.settings]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig<S> {
    /// The provider's name: lowercase letters, digits and `-`.
    pub name: String,
    /// Defines a new provider of this kind; absent, the entry routes to an existing provider.
    #[serde(default)]
    pub kind: Option<String>,
    /// The capability routed; may be left out when the provider serves only one.
    #[serde(default)]
    pub capability: Option<Capability>,
    /// Globs of the resources this provider serves.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Whether it serves the capability's resources no route matches.
    #[serde(default)]
    pub default: bool,
    /// A defined provider's settings (`kind` required).
    #[serde(default)]
    pub settings: Option<S>,
}

/// A `[[providers]]` configuration that cannot be used; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct RoutingError {
    /// The field, e.g. `providers[1].resources[0]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn error(field: impl Into<String>, message: impl Into<String>) -> RoutingError {
    RoutingError {
        field: field.into(),
        message: message.into(),
    }
}

pub use grace_model::provider::check_provider_name;

/// What a host offers before `[[providers]]` is read.
#[derive(Debug, Clone, Default)]
pub struct Offered {
    /// Providers that exist without an entry (`sim`, the kind sections'), with the
    /// capabilities each serves.
    pub providers: BTreeMap<String, Vec<Capability>>,
    /// Each capability's default without configuration.
    pub defaults: BTreeMap<Capability, String>,
    /// The kinds an entry may define, with the capability each serves.
    pub kinds: Vec<(&'static str, Capability)>,
}

/// A provider an entry defines, for the host to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defined {
    /// The entry's index in `[[providers]]`.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// The capability it serves.
    pub capability: Capability,
}

/// `[[providers]]` validated: the providers to build and the routes of each capability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// Providers the entries define.
    pub defined: Vec<Defined>,
    /// Routes per capability (every capability present).
    pub routes: BTreeMap<Capability, Routes>,
}

impl Routing {
    /// Validates `entries` against what the host offers.
    pub fn compile<S>(
        entries: &[ProviderConfig<S>],
        offered: &Offered,
    ) -> Result<Routing, RoutingError> {
        let mut serves = offered.providers.clone();
        let mut defined = Vec::new();
        // First pass: names and definitions, so an entry may route to a provider defined below.
        for (i, entry) in entries.iter().enumerate() {
            let at = |field: &str| format!("providers[{i}].{field}");
            check_provider_name(&entry.name).map_err(|m| error(at("name"), m))?;
            let Some(kind) = &entry.kind else {
                if entry.settings.is_some() {
                    return Err(error(
                        at("settings"),
                        "belongs to a provider defined in this entry: add `kind`",
                    ));
                }
                continue;
            };
            let capability = offered
                .kinds
                .iter()
                .find(|(k, _)| k == kind)
                .map(|(_, c)| *c)
                .ok_or_else(|| {
                    let known: Vec<_> = offered
                        .kinds
                        .iter()
                        .map(|(k, _)| format!("`{k}`"))
                        .collect();
                    error(
                        at("kind"),
                        format!(
                            "`{}` is not a provider kind (known: {})",
                            kind.escape_debug(),
                            known.join(", ")
                        ),
                    )
                })?;
            if serves.contains_key(&entry.name) {
                return Err(error(
                    at("name"),
                    format!(
                        "`{}` is already a provider on this host: give this one another name",
                        entry.name
                    ),
                ));
            }
            if entry.settings.is_none() {
                return Err(error(
                    at("settings"),
                    format!(
                        "is required to define a `{kind}` provider: the same keys as its own section"
                    ),
                ));
            }
            serves.insert(entry.name.clone(), vec![capability]);
            defined.push(Defined {
                index: i,
                name: entry.name.clone(),
                kind: kind.clone(),
                capability,
            });
        }
        let mut routes: BTreeMap<Capability, Routes> = Capability::ALL
            .into_iter()
            .map(|c| (c, Routes::default()))
            .collect();
        // Where each glob and default came from, to name the first in an error.
        let mut seen: BTreeMap<(Capability, &str), usize> = BTreeMap::new();
        let mut defaults: BTreeMap<Capability, usize> = BTreeMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let at = |field: &str| format!("providers[{i}].{field}");
            let Some(served) = serves.get(&entry.name) else {
                let known: Vec<_> = serves.keys().map(|k| format!("`{k}`")).collect();
                return Err(error(
                    at("name"),
                    format!(
                        "`{}` names no provider on this host (known: {}): define it with `kind`",
                        entry.name,
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            };
            let capability = match (entry.capability, served.as_slice()) {
                (Some(c), _) if served.contains(&c) => c,
                (Some(c), _) => {
                    let list: Vec<_> = served.iter().map(|c| format!("`{c}`")).collect();
                    return Err(error(
                        at("capability"),
                        format!(
                            "`{}` does not serve `{c}` (it serves {})",
                            entry.name,
                            list.join(", ")
                        ),
                    ));
                }
                (None, [only]) => *only,
                (None, _) => {
                    return Err(error(
                        at("capability"),
                        format!("is required: `{}` serves several capabilities", entry.name),
                    ));
                }
            };
            if entry.resources.is_empty() && !entry.default {
                return Err(error(
                    at("resources"),
                    "is empty and the entry is not a default: it routes nothing to its provider",
                ));
            }
            let table = routes.entry(capability).or_default();
            for (j, pattern) in entry.resources.iter().enumerate() {
                if pattern.trim().is_empty() {
                    return Err(error(
                        format!("providers[{i}].resources[{j}]"),
                        "must not be empty",
                    ));
                }
                if let Some(first) = seen.insert((capability, pattern.as_str()), i) {
                    return Err(error(
                        format!("providers[{i}].resources[{j}]"),
                        format!(
                            "`{}` is already routed by providers[{first}]: a {capability} resource has one provider",
                            pattern.escape_debug()
                        ),
                    ));
                }
                table.routes.push(Route {
                    pattern: pattern.clone(),
                    provider: entry.name.clone(),
                });
            }
            if entry.default {
                if let Some(first) = defaults.insert(capability, i) {
                    return Err(error(
                        at("default"),
                        format!(
                            "`{capability}` already has a default provider, `{}` (providers[{first}])",
                            entries[first].name
                        ),
                    ));
                }
                table.default = Some(entry.name.clone());
            }
        }
        for (capability, table) in &mut routes {
            if table.default.is_none() {
                table.default = offered.defaults.get(capability).cloned();
            }
        }
        Ok(Routing { defined, routes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Entry = ProviderConfig<BTreeMap<String, String>>;

    /// What a simulating host with `[aws]` offers.
    fn offered() -> Offered {
        let mut o = Offered {
            kinds: vec![
                ("aws", Capability::Scaling),
                ("docker", Capability::Containers),
            ],
            ..Offered::default()
        };
        o.providers.insert("sim".into(), Capability::ALL.to_vec());
        o.providers.insert("aws".into(), vec![Capability::Scaling]);
        for c in Capability::ALL {
            o.defaults.insert(c, "sim".into());
        }
        o.defaults.insert(Capability::Scaling, "aws".into());
        o
    }

    /// `(name, kind, capability, resources, default)`.
    type Row<'a> = (
        &'a str,
        Option<&'a str>,
        Option<Capability>,
        &'a [&'a str],
        bool,
    );

    fn entries(toml_like: &[Row<'_>]) -> Vec<Entry> {
        toml_like
            .iter()
            .map(|(name, kind, capability, resources, default)| Entry {
                name: (*name).into(),
                kind: kind.map(str::to_owned),
                capability: *capability,
                resources: resources.iter().map(|r| (*r).to_owned()).collect(),
                default: *default,
                settings: kind.map(|_| BTreeMap::new()),
            })
            .collect()
    }

    fn error_of(e: &[Entry]) -> RoutingError {
        Routing::compile(e, &offered()).unwrap_err()
    }

    #[test]
    fn routes_keep_their_order_and_defaults_fall_back_to_what_the_host_offers() {
        let r = Routing::compile(
            &entries(&[
                ("aws-eu", Some("aws"), None, &["web-*"], false),
                (
                    "sim",
                    None,
                    Some(Capability::Scaling),
                    &["canary-*", "web-canary"],
                    false,
                ),
            ]),
            &offered(),
        )
        .unwrap();
        let scaling = &r.routes[&Capability::Scaling];
        let order: Vec<_> = scaling
            .routes
            .iter()
            .map(|r| (r.pattern.as_str(), r.provider.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("web-*", "aws-eu"),
                ("canary-*", "sim"),
                ("web-canary", "sim")
            ]
        );
        assert_eq!(scaling.default.as_deref(), Some("aws"));
        assert_eq!(
            r.routes[&Capability::Metrics].default.as_deref(),
            Some("sim")
        );
        assert_eq!(
            r.defined,
            [Defined {
                index: 0,
                name: "aws-eu".into(),
                kind: "aws".into(),
                capability: Capability::Scaling
            }]
        );
    }

    #[test]
    fn an_entry_marked_default_is_its_capabilitys_default() {
        let r = Routing::compile(
            &entries(&[("sim", None, Some(Capability::Scaling), &[], true)]),
            &offered(),
        )
        .unwrap();
        assert_eq!(
            r.routes[&Capability::Scaling].default.as_deref(),
            Some("sim")
        );
    }

    #[test]
    fn two_defaults_of_one_capability_are_refused_naming_the_field() {
        let e = error_of(&entries(&[
            ("aws", None, None, &[], true),
            ("sim", None, Some(Capability::Scaling), &[], true),
        ]));
        assert_eq!(e.field, "providers[1].default");
        assert!(
            e.message
                .contains("already has a default provider, `aws` (providers[0])"),
            "{e}"
        );
    }

    #[test]
    fn one_glob_routed_twice_in_a_capability_is_refused_naming_the_field() {
        let e = error_of(&entries(&[
            ("aws", None, None, &["web-*"], false),
            (
                "sim",
                None,
                Some(Capability::Scaling),
                &["api-*", "web-*"],
                false,
            ),
        ]));
        assert_eq!(e.field, "providers[1].resources[1]");
        assert!(
            e.message
                .contains("`web-*` is already routed by providers[0]"),
            "{e}"
        );
    }

    #[test]
    fn a_route_to_no_provider_is_refused_naming_the_field() {
        let e = error_of(&entries(&[("aws-us", None, None, &["web-*"], false)]));
        assert_eq!(e.field, "providers[0].name");
        assert!(
            e.message
                .contains("`aws-us` names no provider on this host (known: `aws`, `sim`)"),
            "{e}"
        );
    }

    #[test]
    fn a_provider_serving_several_capabilities_needs_the_capability_named() {
        let e = error_of(&entries(&[("sim", None, None, &["web-*"], false)]));
        assert_eq!(e.field, "providers[0].capability");
    }

    #[test]
    fn a_capability_the_provider_does_not_serve_is_refused_naming_the_field() {
        let e = error_of(&entries(&[(
            "aws",
            None,
            Some(Capability::Containers),
            &["web-*"],
            false,
        )]));
        assert_eq!(e.field, "providers[0].capability");
        assert!(
            e.message
                .contains("`aws` does not serve `containers` (it serves `scaling`)"),
            "{e}"
        );
    }

    #[test]
    fn an_entry_routing_nothing_is_refused_naming_the_field() {
        let e = error_of(&entries(&[("aws-eu", Some("aws"), None, &[], false)]));
        assert_eq!(e.field, "providers[0].resources");
    }

    #[test]
    fn an_unknown_kind_and_a_taken_name_are_refused_naming_the_field() {
        let e = error_of(&entries(&[("gcp-eu", Some("gcp"), None, &["*"], false)]));
        assert_eq!(e.field, "providers[0].kind");
        assert!(e.message.contains("known: `aws`, `docker`"), "{e}");
        let e = error_of(&entries(&[("aws", Some("aws"), None, &["*"], false)]));
        assert_eq!(e.field, "providers[0].name");
        assert!(e.message.contains("already a provider"), "{e}");
    }

    #[test]
    fn settings_without_a_kind_and_a_kind_without_settings_are_refused() {
        let mut e = entries(&[("aws", None, None, &["*"], false)]);
        e[0].settings = Some(BTreeMap::new());
        assert_eq!(error_of(&e).field, "providers[0].settings");
        let mut e = entries(&[("aws-eu", Some("aws"), None, &["*"], false)]);
        e[0].settings = None;
        assert_eq!(error_of(&e).field, "providers[0].settings");
    }

    #[test]
    fn provider_names_are_lowercase_words() {
        assert_eq!(check_provider_name("aws-eu-1"), Ok(()));
        for bad in ["", "AWS", "1aws", "aws eu", "aws_eu", &"a".repeat(64)] {
            assert!(check_provider_name(bad).is_err(), "{bad}");
        }
        let e = error_of(&entries(&[("Aws", None, None, &["*"], false)]));
        assert_eq!(e.field, "providers[0].name");
    }

    #[test]
    fn an_empty_glob_is_refused_naming_the_field() {
        let e = error_of(&entries(&[("aws", None, None, &["web-*", " "], false)]));
        assert_eq!(e.field, "providers[0].resources[1]");
    }
}
