//! The actions policies talk about: one per capability function that acts on a resource. What
//! each action is (its Cedar id, resource kind, groups, read or change) is said once, in the
//! capability descriptors of `grace-model`; `grace.cedarschema` is checked against them.

pub use grace_model::capability::{Action, ResourceKind};
