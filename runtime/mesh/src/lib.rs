//! The trigger mesh: which playbooks an event starts.
//!
//! Every loaded trigger whose event-type and resource globs match an event gets a [`Decision`]:
//! [`Decision::Fire`], or [`Decision::Suppressed`] with the reason. The checks, in order:
//! the trigger's condition, its hold window (`for`), one fire per playbook per event, the
//! playbook's cooldown for the resource, the dedup key of its active runs, and the exclusivity
//! locks (`capability:resource`) of every playbook's active runs. A fired run holds its locks
//! and dedup key until its [`RunKey`] is handed to [`Mesh::run_finished`].
//!
//! Pure decision logic: no I/O and no clock but the events' own timestamps (milliseconds), so
//! replaying a recorded incident gives the same decisions. `docs/triggers.md` is the reference:
//! the condition language, every rule above, out-of-order events and what memory can grow.
//!
//! - [`mesh`]: the [`Mesh`], its index and its state;
//! - [`decision`]: [`Decision`], [`Suppression`], [`RunKey`];
//! - [`checkpoint`]: the mesh's memory as data, so a restart need not replay every event;
//! - `pattern`: globs compiled for allocation-free matching;
//! - `windows`: the capped table of hold windows.

pub mod checkpoint;
pub mod decision;
pub mod mesh;
mod pattern;
mod windows;

pub use checkpoint::MeshCheckpoint;
pub use decision::{Decision, RunKey, Suppression};
pub use mesh::{DEFAULT_MAX_WINDOWS, Mesh, MeshStats, PlaybookTriggers, lock_capabilities};
