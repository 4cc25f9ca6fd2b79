//! The glob patterns GRACE matches names with: one implementation, in `grace-model`, so that a
//! pattern means the same in grants, guardrails and provider routes.

pub use grace_model::glob::{Glob, matches};
