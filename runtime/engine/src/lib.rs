//! The GRACE host engine.
//!
//! Reads top-down like the data flow of a run:
//! - [`event`]: the `TriggerEvent` that starts a playbook, validated;
//! - [`manifest`] and [`grants`]: what a guest is and what it may do, parsed once into typed rules
//!   ([`promql_grant`]: metrics grants, checked on parsed PromQL);
//! - [`condition`]: the expression language of trigger conditions and dedup keys;
//! - [`component`] and [`engine`]: loading components, the sandboxed wasmtime runtime, runs;
//!   [`artifacts`]: compiled components kept on disk between processes;
//! - `capabilities/`: one module per WIT interface, each handing its call to the [`pipeline`];
//! - [`trust`]: the seam where the trust core decides after the grants;
//! - `wasi_clock`: WASI's monotonic clock and its waits on the run clock;
//! - [`run`]: what a run reports;
//! - [`bounds`]: what one run may make the host hold;
//! - [`text`]: text from guests shown to people, control characters escaped.

pub mod artifacts;
pub mod bindings;
pub mod bounds;
mod capabilities;
pub mod component;
pub mod engine;
pub mod fence;
mod host;
pub mod journal;
mod limiter;
pub mod pipeline;
pub mod run;
pub mod text;
pub mod trust;
mod wasi_clock;

// The vocabulary lives in `grace-model`; these paths stay for the engine's users.
pub use grace_model::{condition, event, glob, grants, manifest, promql_grant};

pub use component::{CompiledComponent, Guest, LoadError};
pub use engine::{Engine, EngineConfig, RunEnv};
pub use event::TriggerEvent;
pub use manifest::{Kind, Manifest, ManifestError};
pub use run::{Failure, FailureKind, RunReport, RunStatus, TimelineEntry};
