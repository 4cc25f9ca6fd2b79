//! What the trust core is told about the resource a call acts on: the resource with the
//! attributes policies and guardrails match on, its state before the call and the change the
//! call proposes. Capabilities build these while checking grants, from the resource's own
//! state as the provider reports it (never from the guest's description of it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capability::ResourceKind;

/// What an action acts on, with the attributes policies and guardrails match on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Its kind; must be the kind the action acts on.
    pub kind: ResourceKind,
    /// Its id within the kind: the group's name, the container's id or name, the service's
    /// selector (`app=web,env=prod`), `namespace/name` of a deployment, the query text.
    pub id: String,
    /// Its name (for a deployment, without the namespace). Defaults to the id.
    #[serde(default)]
    pub name: String,
    /// The deployment's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `prod`, `staging`, `dev`... `None` when nobody said: policies then see `"unknown"` and
    /// the risk model counts it as nearly as risky as production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Its tier (`frontend`, `db`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The team that owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The container's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Labels or tags (Cedar tags: `resource.getTag("app")`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How many services depend on it (`[[trust.resource]] dependents`, or its direct
    /// dependents in the health graph, whichever is more): widens the blast radius.
    #[serde(default)]
    pub dependents: u32,
    /// What depends on it, as the health graph knows (direct dependents first): the
    /// blast-radius factor weighs each by its traffic share and whether this is its only
    /// healthy upstream, and names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downstream: Vec<Downstream>,
}

/// Something that depends on a resource, as the health graph knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downstream {
    /// Its graph id, e.g. `service:shop/checkout`.
    pub id: String,
    /// 1 for a direct dependent, more for theirs.
    pub depth: u32,
    /// Its share of the resource's incoming requests, in thousandths, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_permille: Option<u16>,
    /// Its health (`healthy`, `degraded`, `unhealthy`, `unknown`).
    pub health: String,
    /// Whether the resource is the only upstream of its kind it depends on that is not
    /// unhealthy: disrupting the resource leaves it nothing to fall back on.
    #[serde(default)]
    pub only_healthy_upstream: bool,
}

impl Resource {
    fn new(kind: ResourceKind, id: String, name: String) -> Self {
        Resource {
            kind,
            id,
            name,
            namespace: None,
            environment: None,
            tier: None,
            owner: None,
            image: None,
            labels: BTreeMap::new(),
            dependents: 0,
            downstream: Vec::new(),
        }
    }

    /// An Auto Scaling group.
    pub fn group(name: impl Into<String>) -> Self {
        let name = name.into();
        Resource::new(ResourceKind::Group, name.clone(), name)
    }

    /// A container, by the id or name the playbook used.
    pub fn container(id: impl Into<String>) -> Self {
        let id = id.into();
        Resource::new(ResourceKind::Container, id.clone(), id)
    }

    /// The containers carrying every label of `selector`; its id is the selector as
    /// [`selector_id`] writes it, and the labels are its tags.
    pub fn service<K: Into<String>, V: Into<String>>(
        selector: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let labels: BTreeMap<String, String> = selector
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let id = selector_id(&labels);
        let mut r = Resource::new(ResourceKind::Service, id.clone(), id);
        r.labels = labels;
        r
    }

    /// A Kubernetes deployment; its id is `namespace/name`.
    pub fn deployment(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        let (namespace, name) = (namespace.into(), name.into());
        let mut r = Resource::new(
            ResourceKind::Deployment,
            format!("{namespace}/{name}"),
            name,
        );
        r.namespace = Some(namespace);
        r
    }

    /// A metrics query.
    pub fn query(expr: impl Into<String>) -> Self {
        let expr = expr.into();
        Resource::new(ResourceKind::Query, expr.clone(), expr)
    }

    /// A node of the health graph, by its id (`service:shop/web`); a service's namespace is
    /// read from its id.
    pub fn node(id: impl Into<String>) -> Self {
        let id = id.into();
        let namespace = id
            .strip_prefix("service:")
            .and_then(|key| key.split_once('/'))
            .map(|(ns, _)| ns.to_owned());
        let mut r = Resource::new(ResourceKind::Node, id.clone(), id);
        r.namespace = namespace;
        r
    }

    /// A notification channel, by its name (`slack:#ops`, see [`crate::channel`]).
    pub fn channel(channel: &crate::channel::Channel) -> Self {
        let id = channel.name();
        Resource::new(ResourceKind::Channel, id.clone(), id)
    }

    /// Sets the environment.
    #[must_use]
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Sets the tier.
    #[must_use]
    pub fn tier(mut self, tier: impl Into<String>) -> Self {
        self.tier = Some(tier.into());
        self
    }

    /// Sets the owner.
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Sets the image.
    #[must_use]
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the number of dependents.
    #[must_use]
    pub fn dependents(mut self, dependents: u32) -> Self {
        self.dependents = dependents;
        self
    }

    /// Its name (the id when no name was given).
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }

    /// The environment policies see: `"unknown"` when none was given.
    pub fn environment_or_unknown(&self) -> &str {
        self.environment.as_deref().unwrap_or("unknown")
    }

    /// The key its changes are counted under: `<kind>/<id>`, e.g. `group/web-prod`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind.name(), self.id)
    }
}

/// A label selector as one text, to route it and to name it (a service's id):
/// `key=value` pairs sorted by key and joined with `,`, where `\`, `,` and `=` inside a key or
/// a value are escaped with `\`. Label keys and values may hold `,` and `=`, and without the
/// escapes `{app: "web,env=prod"}` would be written as `{app: web, env: prod}` is, and be routed
/// and judged as that other selector; escaped, two selectors never share an id, and selectors
/// without those characters are written as before.
pub fn selector_id(labels: &BTreeMap<String, String>) -> String {
    fn escaped(out: &mut String, text: &str) {
        for c in text.chars() {
            if matches!(c, '\\' | ',' | '=') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    let mut id = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            id.push(',');
        }
        escaped(&mut id, k);
        id.push('=');
        escaped(&mut id, v);
    }
    id
}

/// What is known of the resource's state before the action. For a single container, describe
/// the service it is part of when known (the containers sharing its service labels), otherwise
/// the container alone (capacity 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Desired capacity: a group's desired capacity, a deployment's replicas, a service's
    /// running containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Healthy instances (in service and healthy, ready replicas, healthy running containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<u32>,
}

impl State {
    /// A state with both numbers known.
    pub fn new(capacity: u32, healthy: u32) -> Self {
        State {
            capacity: Some(capacity),
            healthy: Some(healthy),
        }
    }
}

/// What the action would do to the resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Change {
    /// Nothing (reads).
    #[default]
    None,
    /// Set the capacity (desired capacity, replicas, containers) to `to`.
    Capacity {
        /// The new capacity.
        to: u32,
    },
    /// Restart: `instances` are out of service at once while they restart.
    Restart {
        /// How many are down at the same time.
        instances: u32,
    },
    /// Stop `instances`.
    Stop {
        /// How many.
        instances: u32,
    },
    /// Start `instances` (they are not healthy until they have started).
    Start {
        /// How many.
        instances: u32,
    },
}

impl Change {
    /// What `kubectl rollout restart` takes down at once with the default rolling update
    /// strategy: `maxUnavailable` 25% of `replicas`, rounded down (0 for fewer than 4 replicas,
    /// where the surge pod keeps capacity up).
    pub fn rolling_restart(replicas: u32) -> Self {
        Change::Restart {
            instances: replicas / 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_selector_id_is_its_pairs_sorted_by_key() {
        assert_eq!(
            selector_id(&labels(&[("env", "prod"), ("app", "web")])),
            "app=web,env=prod"
        );
    }

    #[test]
    fn a_value_holding_separators_does_not_share_an_id_with_two_labels() {
        let smuggled = selector_id(&labels(&[("app", "web,env=prod")]));
        let two = selector_id(&labels(&[("app", "web"), ("env", "prod")]));
        assert_ne!(smuggled, two);
        assert_eq!(smuggled, r"app=web\,env\=prod");
        // The escape itself is escaped, so `\,` written by the guest stays apart too.
        assert_ne!(
            selector_id(&labels(&[("app", r"web\"), ("env", "prod")])),
            selector_id(&labels(&[("app", r"web\,env=prod")]))
        );
    }
}
