//! The `graph` interface: the health graph, read only.

use super::{Effect, Function, Governed, GrantRule, Interface, ResourceKind};

/// The interface and its functions, in WIT order.
pub static INTERFACE: Interface = Interface {
    name: "graph",
    functions: &[&GET_NODE, &DEPENDENTS, &DEPENDENCIES],
};

/// `graph.get-node`.
pub static GET_NODE: Function = Function {
    interface: "graph",
    name: "get-node",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "graph::GetNode",
        resource: ResourceKind::Node,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Graph,
};

/// `graph.dependents`.
pub static DEPENDENTS: Function = Function {
    interface: "graph",
    name: "dependents",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "graph::Dependents",
        resource: ResourceKind::Node,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Graph,
};

/// `graph.dependencies`.
pub static DEPENDENCIES: Function = Function {
    interface: "graph",
    name: "dependencies",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "graph::Dependencies",
        resource: ResourceKind::Node,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Graph,
};
