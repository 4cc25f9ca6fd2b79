//! What each capability function is, said once.
//!
//! Every function of every WIT interface the host implements has one [`Function`] descriptor
//! here, in the file of its interface: whether it reads or changes the world, the kind of
//! resource it acts on, the Cedar action policies name it by and the action groups it belongs
//! to, the exclusivity lock the trigger matcher takes for a playbook that may call it, and the
//! grant rule that decides whether a manifest allows it at all.
//!
//! Everything else derives from these descriptors or is checked against them by a test:
//! - the trust core's actions ([`Action`]) are the descriptors that act on a resource;
//! - the Cedar schema's actions are checked against them (`grace-trust`'s schema tests);
//! - the WIT is checked against them (`tests/wit.rs` parses `wit/` with `wit-parser`: a WIT
//!   function without a descriptor, or a descriptor without a WIT function, fails);
//! - the matcher's locks ([`locks_for`]) and the engine's calls (interface, function, read or
//!   change) come from them.
//!
//! Adding a function: add its descriptor to its interface's file and to that file's `FUNCTIONS`;
//! the tests say what else must agree (the WIT, the Cedar schema).

pub mod anomaly;
pub mod clock;
pub mod config;
pub mod containers;
pub mod graph;
pub mod kubernetes;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod scaling;

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::grants::{ContainerAction, Grants, KubernetesAction};

/// One WIT interface the host implements.
#[derive(Debug)]
pub struct Interface {
    /// Its WIT name, e.g. `scaling`.
    pub name: &'static str,
    /// Its functions, in WIT order.
    pub functions: &'static [&'static Function],
}

/// Every interface, in the order of `wit/grace.wit`.
pub const INTERFACES: [&Interface; 10] = [
    &log::INTERFACE,
    &clock::INTERFACE,
    &config::INTERFACE,
    &scaling::INTERFACE,
    &containers::INTERFACE,
    &kubernetes::INTERFACE,
    &metrics::INTERFACE,
    &graph::INTERFACE,
    &anomaly::INTERFACE,
    &notify::INTERFACE,
];

/// What a call does to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Touches only the run itself (its timeline, its clock, its configuration): no resource,
    /// nothing for a policy to decide.
    Local,
    /// Looks at a resource without changing it.
    Read,
    /// Changes a resource: counted against `max_changes`, keyed for idempotency, checked by
    /// guardrails, serialized with other changes of the resource.
    Change,
}

/// What an action acts on; each kind is a Cedar entity type `Grace::<Kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    /// A group of instances with a desired capacity (`Grace::Group`).
    Group,
    /// One container (`Grace::Container`).
    Container,
    /// The containers a label selector picks (`Grace::Service`).
    Service,
    /// A Kubernetes deployment (`Grace::Deployment`).
    Deployment,
    /// A metrics query, or a series named by its selector (`Grace::Query`).
    Query,
    /// A node of the health graph (`Grace::Node`).
    Node,
    /// Where a message goes: `slack:#ops` (`Grace::Channel`).
    Channel,
}

impl ResourceKind {
    /// Every kind.
    pub const ALL: [ResourceKind; 7] = [
        ResourceKind::Group,
        ResourceKind::Container,
        ResourceKind::Service,
        ResourceKind::Deployment,
        ResourceKind::Query,
        ResourceKind::Node,
        ResourceKind::Channel,
    ];

    /// The lowercase name used in configuration and in change-history keys (`group`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::Group => "group",
            ResourceKind::Container => "container",
            ResourceKind::Service => "service",
            ResourceKind::Deployment => "deployment",
            ResourceKind::Query => "query",
            ResourceKind::Node => "node",
            ResourceKind::Channel => "channel",
        }
    }

    /// Whether resources of this kind have a state a change alters (capacity, health): not
    /// queries and graph nodes, which are only read, nor channels, where a message changes
    /// nothing running.
    pub fn has_state(self) -> bool {
        !matches!(
            self,
            ResourceKind::Query | ResourceKind::Node | ResourceKind::Channel
        )
    }

    /// The Cedar entity type, e.g. `Grace::Group`.
    pub fn cedar_type(self) -> &'static str {
        match self {
            ResourceKind::Group => "Grace::Group",
            ResourceKind::Container => "Grace::Container",
            ResourceKind::Service => "Grace::Service",
            ResourceKind::Deployment => "Grace::Deployment",
            ResourceKind::Query => "Grace::Query",
            ResourceKind::Node => "Grace::Node",
            ResourceKind::Channel => "Grace::Channel",
        }
    }
}

/// Which part of a manifest's grants allows a function at all (the bounds within the grant are
/// checked by the grant's own `check_*` methods, with the call's arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantRule {
    /// Always allowed: the function touches only the run.
    Always,
    /// `[grants.scaling]`: every function of the interface, on the granted groups.
    Scaling,
    /// `[grants.containers]` listing this action.
    Containers(ContainerAction),
    /// `[grants.kubernetes]` listing this action.
    Kubernetes(KubernetesAction),
    /// `[grants.metrics]`: reads of the granted series (queries, and the series' anomaly scores
    /// and forecasts).
    Metrics,
    /// `[grants.graph]`: reads of the health graph, within the granted namespaces.
    Graph,
    /// `[grants.notify]`: messages to the granted channels.
    Notify,
}

impl GrantRule {
    /// Whether `grants` allow the function at all.
    pub fn allows(self, grants: &Grants) -> bool {
        match self {
            GrantRule::Always => true,
            GrantRule::Scaling => grants.scaling.is_some(),
            GrantRule::Containers(a) => grants
                .containers
                .as_ref()
                .is_some_and(|c| c.actions.contains(&a)),
            GrantRule::Kubernetes(a) => grants
                .kubernetes
                .as_ref()
                .is_some_and(|k| k.actions.contains(&a)),
            GrantRule::Metrics => grants.metrics.is_some(),
            GrantRule::Graph => grants.graph.is_some(),
            GrantRule::Notify => grants.notify.is_some(),
        }
    }
}

/// How the trust core knows a function that acts on a resource.
#[derive(Debug)]
pub struct Governed {
    /// The Cedar action id: `Grace::Action::"<cedar_id>"`, e.g. `scaling::SetDesiredCapacity`.
    pub cedar_id: &'static str,
    /// The kind of resource it acts on.
    pub resource: ResourceKind,
    /// The Cedar action groups it is in, besides `read` or `change` (which follow from its
    /// [`Effect`]) and its interface's name: e.g. `capacity`, `restart`.
    pub groups: &'static [&'static str],
}

/// One capability function.
#[derive(Debug)]
pub struct Function {
    /// The WIT interface, e.g. `scaling`.
    pub interface: &'static str,
    /// The WIT function, e.g. `set-desired-capacity`.
    pub name: &'static str,
    /// What it does to the world.
    pub effect: Effect,
    /// How policies name it; `None` exactly when its effect is [`Effect::Local`].
    pub governed: Option<Governed>,
    /// The exclusivity lock a playbook that may call it holds while it runs (the matcher's
    /// `capability:resource` lock): the interface's name for changes, `None` for reads.
    pub lock: Option<&'static str>,
    /// The grant that allows it.
    pub grant: GrantRule,
}

impl Function {
    /// Whether it changes the world.
    pub fn is_change(&self) -> bool {
        self.effect == Effect::Change
    }

    /// Whether it changes the state of the resource it acts on: a change of a resource that
    /// has one ([`ResourceKind::has_state`]). A message is a change (it acts outside the run and
    /// is keyed) that alters no resource: it takes no lock, carries no risk, is in the action
    /// group of its interface only (not `change`), and guardrails do not cover it by default.
    pub fn alters_resource(&self) -> bool {
        self.is_change()
            && self
                .governed
                .as_ref()
                .is_some_and(|g| g.resource.has_state())
    }

    /// The trust core's action for it; `None` for functions that touch only the run.
    pub fn action(&'static self) -> Option<Action> {
        self.governed.as_ref().map(|governed| Action {
            function: self,
            governed,
        })
    }
}

/// Every function of every interface.
pub fn functions() -> impl Iterator<Item = &'static Function> {
    INTERFACES
        .into_iter()
        .flat_map(|i| i.functions.iter().copied())
}

/// The descriptor of `interface.function`.
pub fn function(interface: &str, function: &str) -> Option<&'static Function> {
    functions().find(|f| f.interface == interface && f.name == function)
}

/// The exclusivity locks a playbook with these grants takes while it runs, sorted and without
/// repeats: one per interface whose granted functions include a change.
pub fn locks_for(grants: &Grants) -> Vec<String> {
    let mut locks: Vec<String> = functions()
        .filter(|f| f.grant.allows(grants))
        .filter_map(|f| f.lock.map(str::to_owned))
        .collect();
    locks.sort();
    locks.dedup();
    locks
}

/// A capability function the trust core decides about: policies name it
/// `Grace::Action::"scaling::SetDesiredCapacity"`. Serialized as its Cedar id.
#[derive(Clone, Copy)]
pub struct Action {
    function: &'static Function,
    governed: &'static Governed,
}

impl Action {
    /// Every action, in the order of [`INTERFACES`] and their functions ([`Action::index`]).
    pub fn all() -> impl Iterator<Item = Action> {
        functions().filter_map(Function::action)
    }

    /// How many actions there are.
    pub fn count() -> usize {
        Action::all().count()
    }

    /// Position in [`Action::all`].
    pub fn index(self) -> usize {
        Action::all().position(|a| a == self).unwrap_or(usize::MAX)
    }

    /// The action of a host call, from its WIT interface and function (`scaling`,
    /// `set-desired-capacity`); `None` for a function that touches only the run or that does
    /// not exist.
    pub fn from_call(interface: &str, function_name: &str) -> Option<Action> {
        function(interface, function_name)?.action()
    }

    /// The action named by its Cedar id, e.g. `containers::Restart`.
    pub fn from_cedar_id(id: &str) -> Option<Action> {
        Action::all().find(|a| a.cedar_id() == id)
    }

    /// Its descriptor.
    pub fn function(self) -> &'static Function {
        self.function
    }

    fn governed(self) -> &'static Governed {
        self.governed
    }

    /// The WIT interface, e.g. `scaling`.
    pub fn interface(self) -> &'static str {
        self.function.interface
    }

    /// The WIT function, e.g. `set-desired-capacity`.
    pub fn function_name(self) -> &'static str {
        self.function.name
    }

    /// The Cedar action id, e.g. `scaling::SetDesiredCapacity`.
    pub fn cedar_id(self) -> &'static str {
        self.governed().cedar_id
    }

    /// The kind of resource it acts on.
    pub fn resource_kind(self) -> ResourceKind {
        self.governed().resource
    }

    /// Whether it changes the world (reads are never checked by guardrails and carry no risk).
    pub fn is_change(self) -> bool {
        self.function.is_change()
    }

    /// The action groups it is in, e.g. `["change", "capacity", "scaling"]`: `read` or
    /// `change` (neither for a message: it reads nothing and alters no resource, so a policy
    /// over `change`, a freeze, does not silence it), the descriptor's own groups, then the
    /// interface.
    pub fn groups(self) -> Vec<&'static str> {
        let mut groups = Vec::new();
        if !self.is_change() {
            groups.push("read");
        } else if self.function.alters_resource() {
            groups.push("change");
        }
        groups.extend_from_slice(self.governed().groups);
        groups.push(self.function.interface);
        groups
    }

    /// Every action group any action is in: `read`, `change`, the descriptors' own groups and
    /// the interfaces that have actions.
    pub fn all_groups() -> Vec<&'static str> {
        let mut groups: Vec<&'static str> = Vec::new();
        for a in Action::all() {
            for g in a.groups() {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        groups
    }
}

// Descriptors are statics: one address per function.
impl PartialEq for Action {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.function, other.function)
    }
}

impl Eq for Action {}

impl Hash for Action {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(self.function, state);
    }
}

impl PartialOrd for Action {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Action {
    /// By position in [`Action::all`], so that sets of actions print in the descriptors' order.
    fn cmp(&self, other: &Self) -> Ordering {
        self.index().cmp(&other.index())
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Action({})", self.cedar_id())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cedar_id())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.cedar_id())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        Action::from_cedar_id(&id).ok_or_else(|| {
            let known: Vec<&str> = Action::all().map(Action::cedar_id).collect();
            serde::de::Error::custom(format!(
                "unknown action `{id}`; the actions are {}",
                known.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_kinds_are_listed_in_declaration_order() {
        // The trust core indexes its Cedar entity types by `kind as usize`.
        for (i, k) in ResourceKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{}", k.name());
        }
    }

    #[test]
    fn exactly_the_local_functions_are_not_governed() {
        for f in functions() {
            assert_eq!(
                f.effect == Effect::Local,
                f.governed.is_none(),
                "{}.{}",
                f.interface,
                f.name
            );
        }
    }

    #[test]
    fn changes_of_a_resource_and_only_those_take_the_interface_lock() {
        // A message changes no resource's state: two playbooks may post about the same
        // resource at once.
        for f in functions() {
            let expected = f.alters_resource().then_some(f.interface);
            assert_eq!(f.lock, expected, "{}.{}", f.interface, f.name);
        }
    }

    #[test]
    fn cedar_ids_are_unique_and_named_after_the_interface() {
        let mut seen = std::collections::BTreeSet::new();
        for a in Action::all() {
            assert!(seen.insert(a.cedar_id()), "{} twice", a.cedar_id());
            let prefix = format!("{}::", a.interface());
            assert!(a.cedar_id().starts_with(&prefix), "{}", a.cedar_id());
        }
    }

    #[test]
    fn each_interface_lists_only_its_own_functions() {
        for i in INTERFACES {
            for f in i.functions {
                assert_eq!(f.interface, i.name, "{}", f.name);
            }
        }
    }

    #[test]
    fn actions_serialize_as_their_cedar_ids_and_back() {
        for a in Action::all() {
            let json = serde_json::to_value(a).unwrap_or_default();
            assert_eq!(json, serde_json::Value::String(a.cedar_id().to_owned()));
            let back: Action = serde_json::from_value(json).unwrap();
            assert_eq!(back, a);
        }
        let err = serde_json::from_str::<Action>("\"containers::Exec\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown action `containers::Exec`"),
            "{err}"
        );
    }

    #[test]
    fn a_grant_of_logs_only_takes_no_lock() {
        let m = crate::manifest::Manifest::parse(
            r#"
            manifest_version = 2
            name = "reader"
            version = "1.0.0"
            kind = "playbook"
            component = "reader.wasm"
            [[triggers]]
            event_type = "x"
            [grants.containers]
            labels = { app = "web" }
            actions = ["list", "logs"]
            "#,
        )
        .unwrap();
        assert!(locks_for(&m.grants).is_empty());
    }
}
