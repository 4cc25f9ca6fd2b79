//! Write GRACE playbooks and collectors in Rust.
//!
//! A playbook is a WebAssembly component that responds to one [`TriggerEvent`] with an
//! [`Outcome`]; a collector looks at the world and emits trigger events. Both run sandboxed and
//! act on the world only through the capability modules here ([`scaling`], [`containers`],
//! [`kubernetes`], [`metrics`], [`graph`] to read the health graph, [`anomaly`] to read the
//! host's anomaly scores and forecasts, and [`notify`] to post to the team), each call bounded
//! by the grants of the guest's
//! `playbook.toml` and recorded in the ledger. [`log`], [`clock`] and [`config`] are always available.
//! [`alert`] reads the events of GRACE's Alertmanager receiver (`alert.firing`,
//! `alert.resolved`): labels, annotations, times and the alert's value.
//!
//! ```no_run
//! use grace_sdk::prelude::*;
//!
//! struct ScaleOut;
//!
//! impl Playbook for ScaleOut {
//!     fn run(event: TriggerEvent) -> Result<Outcome> {
//!         let p95 = event.payload_f64("value")?;
//!         let group = grace_sdk::scaling::describe_group("api-asg")?;
//!         let to = (group.desired_capacity + 2).min(group.max_size);
//!         grace_sdk::scaling::set_desired_capacity(&group.name, to)?;
//!         Ok(Outcome::changed(format!("p95 {p95} ms: scaled to {to}")))
//!     }
//! }
//!
//! grace_sdk::export_playbook!(ScaleOut);
//! ```
//!
//! Build guests as `cdylib` crates for `wasm32-wasip2`; see the README for the whole workflow.
#![deny(missing_docs)]

// The generated bindings name the runtime through this crate (`::grace_sdk::__private`), so
// that the export macros work from guest crates that do not depend on wit-bindgen.
extern crate self as grace_sdk;

// Generated code: unsafe ABI glue, undocumented items, and clippy-unfriendly shapes.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings;
mod error;
mod event;
mod guest;
mod labels;
mod outcome;

pub mod alert;
pub mod anomaly;
pub mod clock;
pub mod config;
pub mod containers;
pub mod graph;
pub mod kubernetes;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod scaling;

pub use error::{Error, Result};
pub use event::TriggerEvent;
pub use guest::{Collector, Playbook};
pub use outcome::Outcome;
pub use serde_json;

/// Labels, as on containers and metric series, ordered by key.
pub type Labels = std::collections::BTreeMap<String, String>;

/// The names most guests need: `use grace_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{Collector, Error, Outcome, Playbook, Result, TriggerEvent};
    pub use serde_json::json;
}

/// Used by the export macros; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::{collector, playbook};
    pub use crate::guest::{CollectorExport, PlaybookExport};
    pub use wit_bindgen;
}
