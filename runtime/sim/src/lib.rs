//! GRACE's simulated fleet: groups of instances, the services they serve, containers, Kubernetes
//! deployments and metric series, behind the same executor traits as the real providers, on a
//! [`VirtualClock`](grace_executor::VirtualClock).
//!
//! A dry-run of a ten-minute incident takes milliseconds and is deterministic: the same fleet
//! driven by the same calls gives the same results and the same [`FleetSnapshot`], byte for
//! byte. There is no randomness, no wall time and no hash-map order anywhere in it.
//!
//! ```
//! use grace_sim::{Fleet, Simulation};
//!
//! let sim = Simulation::new(&Fleet::default_fleet());
//! let executors = sim.executors(); // scaling, containers, kubernetes, metrics + the clock
//! # drop(executors);
//! println!("{}", sim.snapshot());
//! ```
//!
//! The world is described by a fleet file ([`fleet`]); `playbooks/fleet.toml` is the default.
//! The models, one module per executor trait:
//!
//! - groups: instances launched by a capacity increase are pending for the group's warmup, then
//!   in service; a decrease removes the newest instances at once;
//! - services: p95 latency is `base / (1 - u)` for utilisation `u = load / capacity` below 0.95,
//!   and `base * 20` at or above it;
//! - containers: restart, start, stop and scale act at once;
//! - deployments: scaling up and restarts complete after the deployment's rollout duration;
//! - metrics: `[[series]]` answer their exact query text; otherwise a selector over the built-in
//!   metrics, evaluated from the model at each sample's time, past ones included;
//! - the health graph: [`Simulation::observe`] reports all of it, and the fleet file's
//!   `[[dependencies]]`, as one discovery source's observation, so dry-runs see a graph too.

pub mod fleet;

mod containers;
mod discover;
mod kubernetes;
mod metrics;
mod saved;
mod scaling;
mod selector;
mod simulation;
mod snapshot;

pub use fleet::{Fleet, FleetError};
pub use saved::{Restored, SaveState, SavedState, SavedStateError};
pub use scaling::MAX_GROUP_HISTORY;
pub use simulation::{MAX_SEEDS, PROVIDER, Simulation};
pub use snapshot::{FleetSnapshot, GroupSnapshot, ServiceSnapshot};
