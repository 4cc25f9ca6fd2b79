//! The one error type of the ledger.

use std::path::PathBuf;
use std::sync::Arc;

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
}

impl LedgerError {
    /// A failed read of the database, of whatever kind redb reports.
    pub(crate) fn read(source: impl Into<redb::Error>) -> Self {
        LedgerError::Read {
            source: source.into(),
        }
    }

    /// The first bad entry, if this is a verification failure.
    pub fn tampering(&self) -> Option<&Tampering> {
        match self {
            LedgerError::Tampered(t) => Some(t),
            _ => None,
        }
    }
}
