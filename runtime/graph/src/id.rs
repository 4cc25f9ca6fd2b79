//! Node identity: what a node is and the one id every source must agree on for it.
//!
//! An id is `<kind>:<key>`:
//!
//! | kind | key | example |
//! | --- | --- | --- |
//! | `service` | `<namespace>/<workload>` | `service:shop/checkout` |
//! | `group` | the group's name | `group:web-prod` |
//! | `instance` | the instance's id | `instance:i-0abc` |
//! | `container` | the container's name | `container:shop-web-1` |
//! | `target` | `<job>/<host:port>` of a scrape target | `target:node/10.0.0.5:9100` |
//!
//! A *service* is a workload: a Kubernetes deployment, a Docker Compose service, an Istio or
//! Linkerd workload. Every source that sees one names it by namespace and workload, so the same
//! service seen through Kubernetes, Prometheus targets and mesh metrics is one node (the rules
//! for reading a namespace and workload from labels are [`Identity`]'s).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest key accepted (the longest Kubernetes name is 253; AWS group names reach 255).
pub const MAX_KEY_LEN: usize = 512;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// A workload: namespace and name.
    Service,
    /// A group of like instances (an Auto Scaling group).
    Group,
    /// One instance of a group.
    Instance,
    /// One container.
    Container,
    /// One Prometheus scrape target.
    Target,
}

impl NodeKind {
    /// Every kind.
    pub const ALL: [NodeKind; 5] = [
        NodeKind::Service,
        NodeKind::Group,
        NodeKind::Instance,
        NodeKind::Container,
        NodeKind::Target,
    ];

    /// Its name, the prefix of its ids.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Service => "service",
            NodeKind::Group => "group",
            NodeKind::Instance => "instance",
            NodeKind::Container => "container",
            NodeKind::Target => "target",
        }
    }

    fn from_name(name: &str) -> Option<NodeKind> {
        NodeKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a text is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// No `<kind>:` prefix, or an unknown kind.
    #[error(
        "`{0}` is not a node id: ids are `<kind>:<key>` with kind service, group, instance, container or target"
    )]
    Kind(String),
    /// The key breaks its kind's rules.
    #[error("node id `{id}`: {why}")]
    Key {
        /// The id, escaped.
        id: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// A node's id, `<kind>:<key>`, checked by its kind's rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

/// A name segment (namespace, workload, job): what Kubernetes, Compose, Istio and Prometheus
/// allow in the names GRACE reads, without separators or spaces.
fn segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `c` is an invisible formatting character (zero-width, bidirectional controls): text
/// holding one can read as something else on a terminal.
pub(crate) fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// A free-form key (group names, instance ids, container names, addresses): printable,
/// no whitespace, no invisible formatting, bounded.
fn free_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_KEY_LEN
        && !s
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || invisible(c))
}

impl NodeId {
    fn checked(kind: NodeKind, key: &str) -> Result<NodeId, IdError> {
        let id = format!("{}:{key}", kind.name());
        let bad = |why| IdError::Key {
            id: id.escape_debug().to_string(),
            why,
        };
        match kind {
            NodeKind::Service => {
                let (ns, wl) = key
                    .split_once('/')
                    .ok_or_else(|| bad("a service is `<namespace>/<workload>`"))?;
                if !segment_ok(ns) || !segment_ok(wl) {
                    return Err(bad(
                        "namespace and workload are 1 to 253 letters, digits, `-`, `_` or `.`",
                    ));
                }
            }
            NodeKind::Target => {
                let (job, address) = key
                    .split_once('/')
                    .ok_or_else(|| bad("a target is `<job>/<host:port>`"))?;
                if !segment_ok(job) || !free_ok(address) {
                    return Err(bad("a target is `<job>/<host:port>`"));
                }
            }
            NodeKind::Group | NodeKind::Instance | NodeKind::Container => {
                if !free_ok(key) {
                    return Err(bad(
                        "the key is 1 to 512 printable characters without whitespace",
                    ));
                }
            }
        }
        Ok(NodeId(id))
    }

    /// A workload: `service:<namespace>/<workload>`.
    pub fn service(namespace: &str, workload: &str) -> Result<NodeId, IdError> {
        NodeId::checked(NodeKind::Service, &format!("{namespace}/{workload}"))
    }

    /// A group: `group:<name>`.
    pub fn group(name: &str) -> Result<NodeId, IdError> {
        NodeId::checked(NodeKind::Group, name)
    }

    /// An instance: `instance:<id>`.
    pub fn instance(id: &str) -> Result<NodeId, IdError> {
        NodeId::checked(NodeKind::Instance, id)
    }

    /// A container: `container:<name>`.
    pub fn container(name: &str) -> Result<NodeId, IdError> {
        NodeId::checked(NodeKind::Container, name)
    }

    /// A scrape target: `target:<job>/<address>`.
    pub fn target(job: &str, address: &str) -> Result<NodeId, IdError> {
        NodeId::checked(NodeKind::Target, &format!("{job}/{address}"))
    }

    /// Reads an id, checking its kind's rules.
    pub fn parse(text: &str) -> Result<NodeId, IdError> {
        let (kind, key) = text
            .split_once(':')
            .ok_or_else(|| IdError::Kind(text.escape_debug().to_string()))?;
        let kind = NodeKind::from_name(kind)
            .ok_or_else(|| IdError::Kind(text.escape_debug().to_string()))?;
        NodeId::checked(kind, key)
    }

    /// Its kind.
    pub fn kind(&self) -> NodeKind {
        self.0
            .split_once(':')
            .and_then(|(k, _)| NodeKind::from_name(k))
            .unwrap_or(NodeKind::Service)
    }

    /// Its key, after `<kind>:`.
    pub fn key(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, key)| key)
    }

    /// A service's namespace.
    pub fn namespace(&self) -> Option<&str> {
        (self.kind() == NodeKind::Service)
            .then(|| self.key().split_once('/').map(|(ns, _)| ns))
            .flatten()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        NodeId::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// How a service's namespace and workload are read from labels (Prometheus target labels,
/// container labels, Auto Scaling group tags): the first label of each list that is present
/// wins. `[graph.identity]` in `grace.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Identity {
    /// Labels naming the namespace, in order of preference.
    pub namespace_labels: Vec<String>,
    /// Labels naming the workload, in order of preference.
    pub workload_labels: Vec<String>,
    /// The namespace of a workload whose labels name none (plain Docker hosts, VMs).
    pub default_namespace: String,
}

impl Default for Identity {
    fn default() -> Self {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Identity {
            namespace_labels: owned(&[
                "namespace",
                "kubernetes_namespace",
                "com.docker.compose.project",
            ]),
            workload_labels: owned(&[
                "workload",
                "app.kubernetes.io/name",
                "app",
                "com.docker.compose.service",
            ]),
            default_namespace: "default".to_owned(),
        }
    }
}

impl Identity {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.workload_labels.is_empty() {
            return Err("graph.identity.workload_labels: must name at least one label".into());
        }
        if !segment_ok(&self.default_namespace) {
            return Err(
                "graph.identity.default_namespace: 1 to 253 letters, digits, `-`, `_` or `.`"
                    .into(),
            );
        }
        Ok(())
    }

    /// The service labels say a thing belongs to, if they name a workload (and the names are
    /// valid ids).
    pub fn service(&self, labels: &BTreeMap<String, String>) -> Option<NodeId> {
        let first = |keys: &[String]| {
            keys.iter()
                .find_map(|k| labels.get(k).filter(|v| !v.is_empty()))
        };
        let workload = first(&self.workload_labels)?;
        let namespace = first(&self.namespace_labels).unwrap_or(&self.default_namespace);
        NodeId::service(namespace, workload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_with_their_kind() {
        for id in [
            NodeId::service("shop", "checkout").unwrap(),
            NodeId::group("web-prod").unwrap(),
            NodeId::instance("i-0abc").unwrap(),
            NodeId::container("shop-web-1").unwrap(),
            NodeId::target("node", "10.0.0.5:9100").unwrap(),
        ] {
            let back = NodeId::parse(id.as_str()).unwrap();
            assert_eq!(back, id);
            assert_eq!(back.kind().name(), id.as_str().split(':').next().unwrap());
        }
        assert_eq!(
            NodeId::service("shop", "web").unwrap().namespace(),
            Some("shop")
        );
    }

    #[test]
    fn ids_breaking_their_kinds_rules_are_refused_with_the_reason() {
        for bad in [
            "checkout",
            "pod:shop/web",
            "service:shop",
            "service:shop/web/x",
            "service:/web",
            "service:shop/we b",
            "container:",
            "group:a\nb",
            "group:web\u{202E}dorp",
            "target:10.0.0.5:9100",
        ] {
            assert!(NodeId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let e = NodeId::parse("service:sh\u{1b}op/web")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\\u{1b}"), "escaped: {e}");
    }

    #[test]
    fn identity_reads_the_first_present_labels_and_falls_back_to_the_default_namespace() {
        let identity = Identity::default();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            identity.service(&labels(&[
                ("namespace", "shop"),
                ("app", "web"),
                ("workload", "web-v2")
            ])),
            Some(NodeId::service("shop", "web-v2").unwrap())
        );
        assert_eq!(
            identity.service(&labels(&[
                ("com.docker.compose.project", "shop"),
                ("com.docker.compose.service", "db")
            ])),
            Some(NodeId::service("shop", "db").unwrap())
        );
        assert_eq!(
            identity.service(&labels(&[("app", "web")])),
            Some(NodeId::service("default", "web").unwrap())
        );
        assert_eq!(identity.service(&labels(&[("job", "node")])), None);
        assert_eq!(identity.service(&labels(&[("app", "bad name")])), None);
    }
}
