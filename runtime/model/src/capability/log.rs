//! The `log` interface: Structured logging into the run's timeline and the ledger: touches only the run.

use super::{Effect, Function, GrantRule, Interface};

/// The interface and its functions, in WIT order.
pub static INTERFACE: Interface = Interface {
    name: "log",
    functions: &[&LOG],
};

/// `log.log`.
pub static LOG: Function = Function {
    interface: "log",
    name: "log",
    effect: Effect::Local,
    governed: None,
    lock: None,
    grant: GrantRule::Always,
};
