//! Verification: walks the chain from entry 1 and reports the first entry that is not what the
//! ledger wrote.
//!
//! For each sequence number, in order, it checks that the entry is there, that its stored hash
//! matches its stored body (hashed as it is, not re-encoded), that it decodes, that it says it
//! is the entry it is stored as, and that it links to the previous entry's hash. Then it checks
//! the head record against the last entry, which catches a truncated tail, entries added past
//! the head, and a rewritten last entry.

use std::fmt;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, TableError};
use serde::{Deserialize, Serialize};

use crate::tables::{ENTRIES, HEAD, HEAD_KEY};
use crate::{Hash, Head, LedgerError, codec};

/// What a successful verification covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// How many entries were checked: all of them.
    pub entries: u64,
    /// The hash of the last entry, which the whole chain leads to; `None` for an empty ledger.
    pub head: Option<Hash>,
}

/// The first entry found not to be what the ledger wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tampering {
    /// The sequence number of the first bad entry.
    pub seq: u64,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Problem {
    /// Its stored hash does not match its stored contents.
    Modified,
    /// It is absent although later entries exist: it was removed.
    Missing,
    /// It is a valid entry, but of another sequence number: entries were moved or swapped.
    Reordered {
        /// The sequence number the entry stored here says it has.
        found_seq: u64,
    },
    /// Its `prev_hash` is not the previous entry's hash: an entry before it was rewritten, hash
    /// and all, or it was taken from another chain.
    BrokenLink,
    /// Its hash matches, but its contents cannot be decoded.
    Undecodable {
        /// Why.
        reason: String,
    },
    /// An entry is stored under sequence number 0, which the ledger never uses.
    Unexpected,
    /// The head record disagrees with the last entry: the tail was truncated, entries were
    /// added past the head outside the ledger, or the last entry was rewritten.
    HeadMismatch {
        /// The last sequence number according to the head record (0 if there is none).
        head_seq: u64,
        /// The last sequence number actually stored.
        last_seq: u64,
    },
}

impl fmt::Display for Tampering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match &self.problem {
            Problem::Modified => write!(
                f,
                "entry {seq} was modified: its hash does not match its contents"
            ),
            Problem::Missing => write!(
                f,
                "entry {seq} is missing: it was removed while later entries remain"
            ),
            Problem::Reordered { found_seq } => write!(
                f,
                "entry {seq} is out of place: the entry stored there is entry {found_seq}, so entries were moved or swapped"
            ),
            Problem::BrokenLink => write!(
                f,
                "entry {seq} has a broken link: its previous hash is not the hash of entry {}, so an earlier entry was rewritten",
                seq.saturating_sub(1)
            ),
            Problem::Undecodable { reason } => {
                write!(f, "entry {seq} cannot be decoded: {reason}")
            }
            Problem::Unexpected => write!(
                f,
                "entry {seq} should not exist: sequence numbers start at 1"
            ),
            Problem::HeadMismatch { head_seq, last_seq } => {
                if *head_seq == 0 {
                    write!(
                        f,
                        "entry {seq} is not covered by a head record: the ledger file was written outside the ledger"
                    )
                } else if last_seq < head_seq {
                    write!(
                        f,
                        "entry {seq} is missing: the head record says the ledger ends at entry {head_seq} but it ends at entry {last_seq}, so its tail was truncated"
                    )
                } else if last_seq > head_seq {
                    write!(
                        f,
                        "entry {seq} is past the head record, which ends at entry {head_seq}: it was appended outside the ledger"
                    )
                } else {
                    write!(
                        f,
                        "entry {seq} does not match the head record: the last entry was rewritten"
                    )
                }
            }
        }
    }
}

impl std::error::Error for Tampering {}

/// The stored head record, if any.
pub(crate) fn read_head(txn: &ReadTransaction) -> Result<Option<Head>, LedgerError> {
    let table = match txn.open_table(HEAD) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(LedgerError::read(e)),
    };
    let row = table.get(HEAD_KEY).map_err(LedgerError::read)?;
    Ok(row.map(|row| {
        let (seq, hash, entries) = row.value();
        Head {
            seq,
            hash: Hash(hash),
            entries,
        }
    }))
}

/// Verifies the whole ledger in one read transaction, so concurrent appends do not interfere.
pub(crate) fn verify(db: &redb::Database) -> Result<VerifyReport, LedgerError> {
    let txn = db.begin_read().map_err(LedgerError::read)?;
    let head = read_head(&txn)?;
    let head_seq = head.map_or(0, |h| h.seq);
    let tampered = |seq, problem| Err(LedgerError::Tampered(Tampering { seq, problem }));

    let table = match txn.open_table(ENTRIES) {
        Ok(table) => Some(table),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(LedgerError::read(e)),
    };
    // The last entry checked so far (0: none); the next one expected follows it.
    let mut last_seq: u64 = 0;
    let mut prev = Hash::ZERO;
    if let Some(table) = &table {
        let stored_last = table
            .last()
            .map_err(LedgerError::read)?
            .map_or(0, |(k, _)| k.value());
        for item in table.iter().map_err(LedgerError::read)? {
            let (key, value) = item.map_err(LedgerError::read)?;
            let seq = key.value();
            let expected = last_seq.saturating_add(1);
            if seq == 0 {
                return tampered(0, Problem::Unexpected);
            }
            if seq > expected && expected <= head_seq {
                return tampered(expected, Problem::Missing);
            }
            if seq > head_seq {
                return tampered(
                    seq,
                    Problem::HeadMismatch {
                        head_seq,
                        last_seq: stored_last,
                    },
                );
            }
            prev = check_entry(seq, value.value(), &prev)?;
            last_seq = seq;
        }
    }

    if last_seq < head_seq {
        return tampered(
            last_seq.saturating_add(1),
            Problem::HeadMismatch { head_seq, last_seq },
        );
    }
    match head {
        // Entries past the head were reported in the loop, so here last_seq == head_seq.
        Some(head) if head.hash != prev || head.entries != last_seq => {
            tampered(last_seq, Problem::HeadMismatch { head_seq, last_seq })
        }
        Some(head) => Ok(VerifyReport {
            entries: last_seq,
            head: Some(head.hash),
        }),
        None => Ok(VerifyReport {
            entries: 0,
            head: None,
        }),
    }
}

/// Checks one stored entry against its key and the previous hash; returns its hash.
fn check_entry(seq: u64, stored: &[u8], prev: &Hash) -> Result<Hash, LedgerError> {
    let tampered = |problem| LedgerError::Tampered(Tampering { seq, problem });
    let undecodable = |e: codec::DecodeError| {
        tampered(Problem::Undecodable {
            reason: e.to_string(),
        })
    };
    let (body, stored_hash) = codec::split(stored).map_err(undecodable)?;
    if codec::hash_body(body) != stored_hash {
        return Err(tampered(Problem::Modified));
    }
    let entry = codec::decode(stored).map_err(undecodable)?;
    if entry.seq != seq {
        return Err(tampered(Problem::Reordered {
            found_seq: entry.seq,
        }));
    }
    if entry.prev_hash != *prev {
        return Err(tampered(Problem::BrokenLink));
    }
    Ok(stored_hash)
}
