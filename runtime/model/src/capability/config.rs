//! The `config` interface: The playbook's own configuration (`[config]` of its manifest): touches only the run.

use super::{Effect, Function, GrantRule, Interface};

/// The interface and its functions, in WIT order.
pub static INTERFACE: Interface = Interface {
    name: "config",
    functions: &[&GET],
};

/// `config.get`.
pub static GET: Function = Function {
    interface: "config",
    name: "get",
    effect: Effect::Local,
    governed: None,
    lock: None,
    grant: GrantRule::Always,
};
