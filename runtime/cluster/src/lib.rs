//! GRACE's clustered mode: several `grace serve` replicas sharing the work through NATS
//! JetStream, the distributed engine that keeps the shared state (no consensus or replication
//! is written here).
//!
//! - [`settings`]: `[cluster]` in `grace.toml`.
//! - [`connect`]: the engine connection, with credentials and TLS, and whether it is up.
//! - [`schema`]: every stream and bucket, declared once, created or checked at start.
//! - [`events`]: the cluster's event log, one subject per shard, deduplicated by content.
//! - [`lease`]: shard leases on key-value revisions, with fencing tokens.
//! - [`members`]: replica heartbeats.
//! - [`shards`]: which shard a resource belongs to.
//! - [`runs`]: runs and their change journals, so that a run outlives its replica.
//! - [`approvals`]: approval requests and their votes, seen and decided from any replica.
//! - [`ledgers`]: each replica's published checkpoints, and its ledger read from any replica.
//! - [`playbooks`]: the playbook catalogue and components, so that one upload reaches every
//!   replica.
//! - [`policies`]: the Cedar policy sets, so that a policy holds on every replica.
//! - [`credentials`]: API tokens and principals, so that a token works on every replica.
//! - [`resource_changes`]: each resource's recent changes, for the guardrails of any replica.
//! - [`membership`]: a replica's ownership loop and the fence check before an action.
//! - [`status`]: what `grace cluster status` shows.
//!
//! **The rule for everything clustered**: state that decides what a replica does (claims,
//! windows, approvals, change intents, budgets, detector state, paused playbooks, ...) lives in
//! the engine when GRACE runs clustered, never only in one replica's redb; a replica's own
//! store keeps only what is its own (its ledger chain, its caches). `docs/cluster.md` says
//! this for the capabilities to come.

pub mod approvals;
pub mod connect;
pub mod credentials;
pub mod error;
pub mod events;
mod keyed;
pub use keyed::{Records, Stored};
pub mod lease;
pub mod ledgers;
pub mod members;
pub mod membership;
pub mod playbooks;
pub mod policies;
pub mod resource_changes;
pub mod runs;
pub mod schema;
pub mod settings;
pub mod shards;
pub mod status;

pub use connect::Engine;
pub use error::{ClusterError, SettingsError};
pub use membership::{Cluster, FencePermit, Fenced};
pub use settings::ClusterSettings;
pub use status::ClusterStatus;
