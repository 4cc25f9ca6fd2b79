//! The `containers` interface: Containers on a Docker-compatible engine (or the simulated fleet).

use super::{Effect, Function, Governed, GrantRule, Interface, ResourceKind};
use crate::grants::ContainerAction;

/// The interface and its functions, in WIT order.
pub static INTERFACE: Interface = Interface {
    name: "containers",
    functions: &[&LIST, &RESTART, &START, &STOP, &LOGS, &SCALE],
};

/// `containers.list`.
pub static LIST: Function = Function {
    interface: "containers",
    name: "list",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "containers::List",
        resource: ResourceKind::Service,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Containers(ContainerAction::List),
};

/// `containers.restart`.
pub static RESTART: Function = Function {
    interface: "containers",
    name: "restart",
    effect: Effect::Change,
    governed: Some(Governed {
        cedar_id: "containers::Restart",
        resource: ResourceKind::Container,
        groups: &["restart"],
    }),
    lock: Some("containers"),
    grant: GrantRule::Containers(ContainerAction::Restart),
};

/// `containers.start`.
pub static START: Function = Function {
    interface: "containers",
    name: "start",
    effect: Effect::Change,
    governed: Some(Governed {
        cedar_id: "containers::Start",
        resource: ResourceKind::Container,
        groups: &[],
    }),
    lock: Some("containers"),
    grant: GrantRule::Containers(ContainerAction::Start),
};

/// `containers.stop`.
pub static STOP: Function = Function {
    interface: "containers",
    name: "stop",
    effect: Effect::Change,
    governed: Some(Governed {
        cedar_id: "containers::Stop",
        resource: ResourceKind::Container,
        groups: &[],
    }),
    lock: Some("containers"),
    grant: GrantRule::Containers(ContainerAction::Stop),
};

/// `containers.logs`.
pub static LOGS: Function = Function {
    interface: "containers",
    name: "logs",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "containers::Logs",
        resource: ResourceKind::Container,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Containers(ContainerAction::Logs),
};

/// `containers.scale`.
pub static SCALE: Function = Function {
    interface: "containers",
    name: "scale",
    effect: Effect::Change,
    governed: Some(Governed {
        cedar_id: "containers::Scale",
        resource: ResourceKind::Service,
        groups: &["capacity"],
    }),
    lock: Some("containers"),
    grant: GrantRule::Containers(ContainerAction::Scale),
};
