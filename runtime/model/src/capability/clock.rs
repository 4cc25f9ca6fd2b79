//! The `clock` interface: The run's clock: touches only the run.

use super::{Effect, Function, GrantRule, Interface};

/// The interface and its functions, in WIT order.
pub static INTERFACE: Interface = Interface {
    name: "clock",
    functions: &[&NOW, &SLEEP],
};

/// `clock.now`.
pub static NOW: Function = Function {
    interface: "clock",
    name: "now",
    effect: Effect::Local,
    governed: None,
    lock: None,
    grant: GrantRule::Always,
};

/// `clock.sleep`.
pub static SLEEP: Function = Function {
    interface: "clock",
    name: "sleep",
    effect: Effect::Local,
    governed: None,
    lock: None,
    grant: GrantRule::Always,
};
