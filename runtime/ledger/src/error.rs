//! The one error type of the ledger.

use std::path::PathBuf;
use std::sync::Arc;

use crate::Hash;
use crate::checkpoint::CheckpointError;
use crate::codec::{DecodeError, EncodeError};
use crate::verify::Tampering;

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The database file cannot be opened or created, or its tables cannot be set up.
    #[error("ledger file `{}` cannot be opened: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the database reported.
        source: redb::Error,
    },
    /// The writer thread cannot be started.
    #[error("ledger writer cannot be started: {source}")]
    Spawn {
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// The entry cannot be encoded, so it was not recorded (and took no sequence number).
    #[error("entry cannot be recorded: {source}")]
    InvalidEntry {
        /// Why.
        #[from]
        source: EncodeError,
    },
    /// The batch this entry was part of could not be committed: none of its entries was recorded.
    #[error("ledger entries cannot be committed: {source}")]
    Commit {
        /// What the database reported; shared by every entry of the batch.
        source: Arc<redb::Error>,
    },
    /// The next sequence number is already taken although the head record ends before it:
    /// something wrote to the ledger file outside the ledger. Nothing is overwritten.
    #[error(
        "entry {seq} already exists although the head record ends before it: the ledger file was written outside GRACE; run `grace ledger verify`"
    )]
    AlreadyExists {
        /// The sequence number the append would have taken.
        seq: u64,
    },
    /// No sequence number is left: the head record says the ledger ends at `u64::MAX`, which
    /// only tampering can bring about.
    #[error(
        "entry {seq} is the last possible one: the ledger cannot grow; run `grace ledger verify`"
    )]
    Exhausted {
        /// The sequence number of the last entry.
        seq: u64,
    },
    /// The writer stopped before answering, so whether the entry was recorded is unknown.
    #[error("ledger writer stopped before confirming the entry")]
    WriterStopped,
    /// Reading the database failed.
    #[error("ledger cannot be read: {source}")]
    Read {
        /// What the database reported.
        source: redb::Error,
    },
    /// A stored entry cannot be decoded (see [`Ledger::verify`](crate::Ledger::verify) for
    /// whether it was tampered with).
    #[error("entry {seq} cannot be decoded: {source}")]
    Undecodable {
        /// The entry's sequence number.
        seq: u64,
        /// Why.
        source: DecodeError,
    },
    /// Verification found the ledger tampered with; this names the first bad entry.
    #[error("ledger was tampered with: {0}")]
    Tampered(Tampering),
    /// The ledger does not extend a checkpoint: its tail was truncated or entries were rewritten.
    #[error("ledger does not match the checkpoint: {0}")]
    Inconsistent(Inconsistency),
    /// Writing to the database failed (e.g. storing a checkpoint).
    #[error("ledger cannot be written: {source}")]
    Write {
        /// What the database reported.
        source: redb::Error,
    },
    /// The Merkle tree cannot be extended, so appends are refused rather than leave entries out
    /// of it: its right edge is missing and entries are missing too.
    #[error("ledger tree cannot be extended: {reason}; run `grace ledger verify`")]
    TreeUnavailable {
        /// Why.
        reason: String,
    },
    /// A node of the stored Merkle tree that a proof or root needs is absent: the tree table was
    /// changed outside the ledger.
    #[error(
        "ledger tree node at level {level}, index {index} is missing; run `grace ledger verify`"
    )]
    MissingNode {
        /// The node's level (0: a leaf).
        level: u32,
        /// The node's index at that level.
        index: u64,
    },
    /// A proof or root was asked for a tree larger than the ledger.
    #[error("the ledger holds {size} entries, fewer than the tree size {tree_size} asked for")]
    BeyondHead {
        /// The tree size asked for.
        tree_size: u64,
        /// How many entries the ledger holds.
        size: u64,
    },
    /// An inclusion proof was asked for an entry outside the tree.
    #[error("entry {seq} is not in the tree of the first {tree_size} entries")]
    NotInTree {
        /// The entry's sequence number.
        seq: u64,
        /// The tree size.
        tree_size: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error(
        "no consistency proof goes from tree size {old_size} to the smaller tree size {new_size}"
    )]
    SizesOutOfOrder {
        /// The earlier tree size.
        old_size: u64,
        /// The later tree size.
        new_size: u64,
    },
    /// A checkpoint cannot be made, parsed or verified.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// How the ledger fails to extend a checkpoint it issued earlier.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Inconsistency {
    /// The ledger holds fewer entries than the checkpoint covers.
    #[error(
        "the checkpoint covers {checkpoint_size} entries but the ledger holds {ledger_size}: its tail was truncated"
    )]
    Truncated {
        /// The checkpoint's tree size.
        checkpoint_size: u64,
        /// How many entries the ledger holds.
        ledger_size: u64,
    },
    /// The ledger's first `tree_size` entries hash to another root than the checkpoint's.
    #[error(
        "the first {tree_size} entries hash to root {ledger_root}, not to the checkpoint's {checkpoint_root}: entries were rewritten, or the checkpoint is of another ledger"
    )]
    Rewritten {
        /// The checkpoint's tree size.
        tree_size: u64,
        /// The root the checkpoint signs.
        checkpoint_root: Hash,
        /// The root of the ledger's first `tree_size` entries.
        ledger_root: Hash,
    },
}

impl LedgerError {
    /// A failed read of the database, of whatever kind redb reports.
    pub(crate) fn read(source: impl Into<redb::Error>) -> Self {
        LedgerError::Read {
            source: source.into(),
        }
    }

    /// A failed write to the database.
    pub(crate) fn write(source: impl Into<redb::Error>) -> Self {
        LedgerError::Write {
            source: source.into(),
        }
    }

    /// Whether this says the ledger is not what it wrote or signed: tampering found by
    /// verification, or a mismatch with a checkpoint. Other errors are failures to check.
    pub fn is_tampering(&self) -> bool {
        matches!(
            self,
            LedgerError::Tampered(_) | LedgerError::Inconsistent(_)
        )
    }

    /// The first bad entry, if this is a verification failure.
    pub fn tampering(&self) -> Option<&Tampering> {
        match self {
            LedgerError::Tampered(t) => Some(t),
            _ => None,
        }
    }
}
