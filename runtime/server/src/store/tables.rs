//! The server's redb tables, declared together. They live in the same database file as the
//! ledger's (`grace.redb`), so one data directory holds everything.

use redb::TableDefinition;

/// Component bytes by digest (`sha256:<hex>`): stored once however many versions share them.
pub const COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("server/components");
/// Playbooks and collectors by name: JSON [`super::PlaybookRecord`] with every version.
pub const PLAYBOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("server/playbooks");
/// Runs by id: JSON [`crate::runs::RunRecord`].
pub const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("server/runs");
/// Events by sequence number: JSON [`super::StoredEvent`].
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("server/events");
/// The simulated fleet's state in `grace serve --simulate`, under [`SIMULATION_STATE`]: JSON
/// [`grace_sim::SavedState`] (see [`crate::simulation`]).
pub const SIMULATION: TableDefinition<&str, &[u8]> = TableDefinition::new("server/simulation");
/// The one key of [`SIMULATION`].
pub const SIMULATION_STATE: &str = "state";
/// Counters: [`MATCHED_THROUGH`], [`MESH_CHECKPOINT_THROUGH`], [`RUN_KEYS_THROUGH`],
/// [`SIMULATION_CLOCK`].
pub const META: TableDefinition<&str, u64> = TableDefinition::new("server/meta");
/// The trigger mesh's checkpoint under [`MESH_CHECKPOINT`]: JSON
/// [`grace_mesh::MeshCheckpoint`], the mesh's memory after the events through
/// [`MESH_CHECKPOINT_THROUGH`].
pub const MESH: TableDefinition<&str, &[u8]> = TableDefinition::new("server/mesh");

/// The health graph under [`GRAPH_SNAPSHOT`]: JSON [`grace_graph::Snapshot`], written every
/// `graph.persist_every` so that a restart does not start blind (see [`crate::graph`]).
pub const GRAPH: TableDefinition<&str, &[u8]> = TableDefinition::new("server/graph");

/// The one key of [`GRAPH`].
pub const GRAPH_SNAPSHOT: &str = "snapshot";

/// The key of the mesh's checkpoint in [`MESH`].
pub const MESH_CHECKPOINT: &str = "checkpoint";

/// The last event sequence number the mesh's checkpoint covers.
pub const MESH_CHECKPOINT_THROUGH: &str = "mesh.checkpoint_through";

/// The largest run key number (see `grace_mesh::RunKey`) stored with a run: a restarted mesh
/// numbers its runs after it without reading every run.
pub const RUN_KEYS_THROUGH: &str = "runs.keys_through";

/// The last event sequence number given out: numbering never restarts, even if pruning empties
/// the events table.
pub const EVENTS_LAST_SEQ: &str = "events.last_seq";

/// In simulation, the virtual clock's reading (ms) when the last matched batch was stored.
pub const SIMULATION_CLOCK: &str = "simulation.clock";

/// The last event sequence number whose matching (and the runs it created) is stored.
pub const MATCHED_THROUGH: &str = "events.matched_through";

/// Runs not yet final (queued, running, waiting for approval, interrupted) by (state name,
/// id): what a restart must look at, without reading every run, and by state so that it reads
/// only the states it acts on (interrupted runs, which pile up until someone resumes or cancels
/// them, are not read at all). Written in the transaction that writes the run (see
/// `run_index`), so the two never disagree.
pub const UNFINISHED_RUNS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("server/runs_unfinished_by_state");

/// The unfinished runs by id alone, as index versions 1 and 2 kept them: deleted when the
/// indexes are rebuilt at version 3.
pub const UNFINISHED_RUNS_BY_ID: TableDefinition<&str, ()> =
    TableDefinition::new("server/runs_unfinished");

/// Failed runs by (finish time ms, id), valued by playbook name: the failures a restart feeds
/// back to the trust core. Entries older than `run_index::RECENT_FAILURES_MS` are pruned as
/// new ones come in.
pub const RECENT_FAILURES: TableDefinition<(u64, &str), &str> =
    TableDefinition::new("server/runs_recent_failures");

/// Every run by (creation time ms, id), valued by the run's state (its name): the API's
/// newest-first listing reads from its end and stops at its limit, instead of reading and
/// sorting every run ever stored, and a write knows the state it moves the run from (for
/// [`RUN_COUNT_PREFIX`]) without decoding the run. A run's creation time never changes, so its
/// entry is never moved.
pub const RUNS_BY_CREATED: TableDefinition<(u64, &str), &str> =
    TableDefinition::new("server/runs_by_created");

/// Runs not yet judged (see `crate::outcomes`), by id: what a restart watches again. Written
/// in the transaction that writes the run: a run is in it from its creation until its
/// recovery is stored.
pub const UNJUDGED_RUNS: TableDefinition<&str, ()> = TableDefinition::new("server/runs_unjudged");

/// The judged runs' outcomes by (playbook, resource, creation time ms, run id), valued by JSON
/// `crate::outcomes::learning::Judged`: what the learning is rebuilt from at start. At most
/// `crate::outcomes::learning::KEPT` per playbook and resource (the oldest are pruned by the
/// write that adds one), written in the transaction that judges the run.
pub const RUN_OUTCOMES: TableDefinition<(&str, &str, u64, &str), &[u8]> =
    TableDefinition::new("server/run_outcomes");

/// Playbooks paused for a resource by the meta-loop, by (playbook, resource): JSON
/// `crate::meta::Pause`, until a person resumes them.
pub const PAUSES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("server/pauses");

/// Under [`META`], `RUN_COUNT_PREFIX` + a state's name counts the runs in that state (what
/// `/metrics` reports), kept by each run's write.
pub const RUN_COUNT_PREFIX: &str = "runs.count.";

/// Set (to the index's version) once [`UNFINISHED_RUNS`], [`RECENT_FAILURES`],
/// [`RUNS_BY_CREATED`] and the counts under [`RUN_COUNT_PREFIX`] cover every run: absent in a
/// data directory written before the index, or older than its layout, which is then built once
/// from a full scan.
pub const RUN_INDEX_VERSION: &str = "runs.index_version";
