//! `[grants.graph]`: reads of the health graph, within the granted namespaces and depth.
//!
//! ```toml
//! [grants.graph]
//! namespaces = ["shop"]   # optional: only services of these namespaces (no other node kinds)
//! max_depth = 3           # optional, default 3, at most 10
//! ```
//!
//! Without `namespaces` every node is visible. With it, a guest sees only `service:` nodes of
//! those namespaces: asking for another node is denied, and walks leave the others out.

use serde::Deserialize;

use super::{Denial, deny};
use crate::manifest::ManifestError;

/// The deepest walk any grant allows.
pub const MAX_GRAPH_DEPTH: u32 = 10;
/// A walk's depth when the grant does not say.
pub const DEFAULT_GRAPH_DEPTH: u32 = 3;

/// Which nodes a guest may read, and how far it may walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphGrant {
    /// The namespaces of the services it may see; `None`: every node.
    pub namespaces: Option<Vec<String>>,
    /// The deepest walk.
    pub max_depth: u32,
}

impl GraphGrant {
    /// Whether a node of `kind` (`service`, `group`...) in `namespace` (services only) is
    /// visible.
    pub fn visible(&self, kind: &str, namespace: Option<&str>) -> bool {
        match &self.namespaces {
            None => true,
            Some(granted) => {
                kind == "service" && namespace.is_some_and(|ns| granted.iter().any(|g| g == ns))
            }
        }
    }

    /// May the guest read node `id` (of `kind`, in `namespace`)?
    pub fn check_node(&self, id: &str, kind: &str, namespace: Option<&str>) -> Result<(), Denial> {
        if self.visible(kind, namespace) {
            return Ok(());
        }
        deny(format!(
            "node `{id}` is not granted (granted: services of namespaces {})",
            self.namespaces
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// May the guest walk `depth` steps?
    pub fn check_depth(&self, depth: u32) -> Result<(), Denial> {
        if depth <= self.max_depth {
            Ok(())
        } else {
            deny(format!(
                "depth {depth} is more than the granted max_depth {}",
                self.max_depth
            ))
        }
    }
}

/// `[grants.graph]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGraph {
    namespaces: Option<Vec<String>>,
    max_depth: Option<u32>,
}

impl RawGraph {
    /// The typed grant, or the first field that is out of range.
    pub(super) fn validate(self) -> Result<GraphGrant, ManifestError> {
        let max_depth = self.max_depth.unwrap_or(DEFAULT_GRAPH_DEPTH);
        if !(1..=MAX_GRAPH_DEPTH).contains(&max_depth) {
            return Err(ManifestError::invalid(
                "grants.graph.max_depth",
                format!("must be within 1..={MAX_GRAPH_DEPTH}"),
            ));
        }
        if let Some(namespaces) = &self.namespaces {
            if namespaces.is_empty() {
                return Err(ManifestError::invalid(
                    "grants.graph.namespaces",
                    "an empty list grants nothing: leave it out to grant every node",
                ));
            }
            for ns in namespaces {
                let ok = !ns.is_empty()
                    && ns.len() <= 253
                    && ns
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !ok {
                    return Err(ManifestError::invalid(
                        "grants.graph.namespaces",
                        format!(
                            "`{}` is not a namespace (1 to 253 letters, digits, `-`, `_`, `.`)",
                            ns.escape_debug()
                        ),
                    ));
                }
            }
        }
        Ok(GraphGrant {
            namespaces: self.namespaces,
            max_depth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::manifest;

    #[test]
    fn a_graph_grant_limits_namespaces_and_depth() {
        let m = manifest("[grants.graph]\nnamespaces = [\"shop\"]\nmax_depth = 2\n").unwrap();
        let g = m.grants.graph.unwrap();
        assert!(g.visible("service", Some("shop")));
        assert!(!g.visible("service", Some("pay")));
        assert!(!g.visible("group", None));
        assert!(g.check_depth(2).is_ok());
        assert!(g.check_depth(3).unwrap_err().0.contains("max_depth 2"));
        let open = manifest("[grants.graph]\n").unwrap().grants.graph.unwrap();
        assert!(open.visible("container", None));
        assert_eq!(open.max_depth, 3);
    }

    #[test]
    fn bad_graph_grants_name_their_field() {
        for (grants, field) in [
            (
                "[grants.graph]\nnamespaces = []\n",
                "grants.graph.namespaces",
            ),
            (
                "[grants.graph]\nnamespaces = [\"a b\"]\n",
                "grants.graph.namespaces",
            ),
            ("[grants.graph]\nmax_depth = 11\n", "grants.graph.max_depth"),
            ("[grants.graph]\nmax_depth = 0\n", "grants.graph.max_depth"),
            ("[grants.graph]\nnodes = [\"x\"]\n", "unknown field `nodes`"),
        ] {
            let e = manifest(grants).unwrap_err().to_string();
            assert!(e.contains(field), "{grants}: {e}");
        }
    }
}
