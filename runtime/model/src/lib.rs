//! GRACE's vocabulary: the plain data every other crate speaks, with its parsers and nothing
//! that runs. No wasmtime, no Cedar, no redb, no tokio: the trigger matcher, the fuzz targets,
//! the trust core and the engine all depend on this crate, and none of them should have to build
//! a runtime to read a manifest.
//!
//! - [`event`]: the `TriggerEvent` that starts a playbook, validated;
//! - [`manifest`]: what a guest is (`playbook.toml`), parsed once into typed values
//!   (`manifest/{error, parse, hold, raw}`: its error, field parsers, a trigger's `for`, and
//!   serde's view of the TOML);
//! - [`grants`]: what a guest may do, one module per capability
//!   (`grants/{scaling, containers, kubernetes, metrics}`) and the bounds they share
//!   (`grants/bounds`); metrics grants are checked on parsed PromQL (`grants/metrics/{walk,
//!   selector, raw}`) and keep their older path, [`promql_grant`];
//! - [`condition`]: the expression language of trigger conditions and dedup keys
//!   (`condition/{lex, parse, eval, template}`);
//! - [`channel`]: where a notification goes (`slack:#ops`, `pagerduty`, `jira`);
//! - [`glob`]: the one glob of grants, guardrails and provider routes;
//! - [`capability`]: one descriptor per capability function, the single place that says what it
//!   is (read or change, resource kind, Cedar action, lock, grant rule);
//! - [`text`]: which characters of outside text are hidden (controls, bidi overrides);
//! - [`resource`]: what the trust core is told about the resource a call acts on.
//!
//! Inside each module the parts use their parent's shared types, and no part uses a sibling that
//! uses it back. Between modules, `manifest` and `grants` still refer to each other: a manifest
//! holds its grants, and grants are validated against the manifest's kind, with its error.

pub mod capability;
pub mod channel;
pub mod condition;
pub mod event;
pub mod glob;
pub mod grants;
pub mod manifest;
pub mod provider;
pub mod resource;
pub mod text;

/// `[grants.metrics]` under its older path: the metrics grant lives with the other grants, in
/// [`grants::metrics`].
pub use grants::metrics as promql_grant;

pub use capability::{Action, ResourceKind};
pub use event::TriggerEvent;
pub use manifest::{Kind, Manifest, ManifestError};

/// Labels as key/value pairs, ordered so that they print and hash the same way every time.
pub type Labels = std::collections::BTreeMap<String, String>;
