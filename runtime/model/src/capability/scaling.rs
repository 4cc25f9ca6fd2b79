//! The `scaling` interface: Groups of instances with a desired capacity (a cloud's auto scaling groups, or the simulated fleet).

use super::{Effect, Function, Governed, GrantRule, Interface, ResourceKind};

/// The interface and its functions, in WIT order.
pub static INTERFACE: Interface = Interface {
    name: "scaling",
    functions: &[&DESCRIBE_GROUP, &SET_DESIRED_CAPACITY, &WAIT_IN_SERVICE],
};

/// `scaling.describe-group`.
pub static DESCRIBE_GROUP: Function = Function {
    interface: "scaling",
    name: "describe-group",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "scaling::DescribeGroup",
        resource: ResourceKind::Group,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Scaling,
};

/// `scaling.set-desired-capacity`.
pub static SET_DESIRED_CAPACITY: Function = Function {
    interface: "scaling",
    name: "set-desired-capacity",
    effect: Effect::Change,
    governed: Some(Governed {
        cedar_id: "scaling::SetDesiredCapacity",
        resource: ResourceKind::Group,
        groups: &["capacity"],
    }),
    lock: Some("scaling"),
    grant: GrantRule::Scaling,
};

/// `scaling.wait-in-service`.
pub static WAIT_IN_SERVICE: Function = Function {
    interface: "scaling",
    name: "wait-in-service",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "scaling::WaitInService",
        resource: ResourceKind::Group,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Scaling,
};
