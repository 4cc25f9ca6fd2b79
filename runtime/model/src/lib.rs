//! GRACE's vocabulary: the plain data every other crate speaks, with its parsers and nothing
//! that runs. No wasmtime, no Cedar, no redb, no tokio: the trigger matcher, the fuzz targets,
//! the trust core and the engine all depend on this crate, and none of them should have to build
//! a runtime to read a manifest.
//!
//! - [`event`]: the `TriggerEvent` that starts a playbook, validated;
//! - [`manifest`] and [`grants`]: what a guest is and what it may do, parsed once into typed
//!   rules ([`promql_grant`]: metrics grants, checked on parsed PromQL);
//! - [`condition`]: the expression language of trigger conditions and dedup keys;
//! - [`glob`]: the one glob of grants, guardrails and provider routes;
//! - [`capability`]: one descriptor per capability function, the single place that says what it
//!   is (read or change, resource kind, Cedar action, lock, grant rule);
//! - [`resource`]: what the trust core is told about the resource a call acts on.

pub mod capability;
pub mod condition;
pub mod event;
pub mod glob;
pub mod grants;
pub mod manifest;
pub mod promql_grant;
pub mod resource;

pub use capability::{Action, ResourceKind};
pub use event::TriggerEvent;
pub use manifest::{Kind, Manifest, ManifestError};

/// Labels as key/value pairs, ordered so that they print and hash the same way every time.
pub type Labels = std::collections::BTreeMap<String, String>;
