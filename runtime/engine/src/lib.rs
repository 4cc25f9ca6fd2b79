//! The GRACE host engine.
//!
//! Reads top-down like the data flow of a run:
//! - [`event`]: the `TriggerEvent` that starts a playbook, validated;
//! - [`manifest`] and [`grants`]: what a guest is and what it may do, parsed once into typed rules
//!   ([`promql_grant`]: metrics grants, checked on parsed PromQL);
//! - [`condition`]: the expression language of trigger conditions and dedup keys;
//! - [`component`] and [`engine`]: loading components, the sandboxed wasmtime runtime, runs;
//! - `capabilities/`: one module per WIT interface, each handing its call to the [`pipeline`];
//! - [`trust`]: the seam where the trust core decides after the grants;
//! - [`run`]: what a run reports.

pub mod bindings;
mod capabilities;
pub mod component;
pub mod condition;
pub mod engine;
pub mod event;
pub mod glob;
pub mod grants;
mod host;
mod limiter;
pub mod manifest;
pub mod pipeline;
pub mod promql_grant;
pub mod run;
pub mod trust;

pub use component::{CompiledComponent, Guest, LoadError};
pub use engine::{Engine, EngineConfig, RunEnv};
pub use event::TriggerEvent;
pub use manifest::{Kind, Manifest, ManifestError};
pub use run::{Failure, FailureKind, RunReport, RunStatus, TimelineEntry};
