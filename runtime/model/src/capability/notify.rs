//! The `notify` interface: messages from a playbook to the team, on the channels its
//! `[grants.notify]` allows, within its bytes and messages per run.
//!
//! Sending is a change: it acts outside the run and cannot be taken back, so it is keyed like
//! every change (a retried run does not post twice) and decided by the trust core on the
//! channel (`Grace::Channel`). It changes no resource's state, so it takes no exclusivity lock
//! and carries no blast radius.

use super::{Effect, Function, Governed, GrantRule, Interface, ResourceKind};

/// The interface and its functions, in WIT order.
pub static INTERFACE: Interface = Interface {
    name: "notify",
    functions: &[&SEND],
};

/// `notify.send`.
pub static SEND: Function = Function {
    interface: "notify",
    name: "send",
    effect: Effect::Change,
    governed: Some(Governed {
        cedar_id: "notify::Send",
        resource: ResourceKind::Channel,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Notify,
};
