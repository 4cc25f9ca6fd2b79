//! Verification: walks the chain from entry 1 and reports the first entry that is not what the
//! ledger wrote.
//!
//! For each sequence number, in order, it checks that the entry is there, that its stored hash
//! matches its stored body (hashed as it is, not re-encoded), that it decodes, that it says it
//! is the entry it is stored as, and that it links to the previous entry's hash. Then it checks
//! the head record against the last entry, which catches a truncated tail, entries added past
//! the head, and a rewritten last entry.
//!
//! Along the way it rebuilds the Merkle tree from the entries' hashes and compares every node it
//! completes with the stored one; at the end, that the node table holds no other node. So a
//! tampered node table is found even where the entries are intact, and the root reported is the
//! root of the entries as they are, not as the node table says. Problems of the chain come
//! first: a rewritten entry also disagrees with its leaf, but what is wrong is the entry, which
//! the broken link (or head record) after it says.

use std::fmt;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, TableError};
use serde::{Deserialize, Serialize};

use crate::merkle::{Frontier, entry_leaf};
use crate::tables::{ENTRIES, HEAD, HEAD_KEY, NODES, NODES_FROM_LEVEL};
use crate::tree::NodeTable;
use crate::{Hash, Head, LedgerError, codec};

/// What a successful verification covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// How many entries were checked: all of them.
    pub entries: u64,
    /// The hash of the last entry, which the whole chain leads to; `None` for an empty ledger.
    pub head: Option<Hash>,
    /// The Merkle root of all the entries, recomputed from them: what a checkpoint of the
    /// ledger as it is would sign (the empty tree's root for an empty ledger).
    pub root: Hash,
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
    /// The entries are intact, but the stored Merkle tree node over them is not their hash.
    /// The entry named is the first the node covers.
    TreeNodeModified {
        /// The node's level (0: a leaf).
        level: u32,
        /// The node's index at that level.
        index: u64,
    },
    /// The Merkle tree node over intact entries is absent. The entry named is the first the
    /// node covers.
    TreeNodeMissing {
        /// The node's level (0: a leaf).
        level: u32,
        /// The node's index at that level.
        index: u64,
    },
    /// The node table holds a node past the end of the ledger, or of a level it does not store:
    /// it was written outside the ledger. The entry named is the first the node claims to cover.
    TreeNodeExtra {
        /// The node's level (0: a leaf).
        level: u32,
        /// The node's index at that level.
        index: u64,
    },
}

/// The entries a tree node covers, first and last, for messages.
fn node_span(level: u32, index: u64) -> (u128, u128) {
    // Levels past 63 only come from a tampered table; saturate rather than overflow.
    let level = level.min(64);
    let first = (u128::from(index) << level).saturating_add(1);
    (first, first.saturating_add((1u128 << level) - 1))
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
            Problem::TreeNodeModified { level, index } => {
                let (first, last) = node_span(*level, *index);
                write!(
                    f,
                    "the Merkle tree node at level {level}, index {index} over entries {first} to {last} was modified: the entries are intact but the node is not their hash"
                )
            }
            Problem::TreeNodeMissing { level, index } => {
                let (first, last) = node_span(*level, *index);
                write!(
                    f,
                    "the Merkle tree node at level {level}, index {index} over entries {first} to {last} is missing: it was removed from the tree table"
                )
            }
            Problem::TreeNodeExtra { level, index } => {
                let (first, _) = node_span(*level, *index);
                write!(
                    f,
                    "the Merkle tree node at level {level}, index {index} (from entry {first}) should not be in the tree table, being past the end of the ledger or below the levels it stores: it was written outside the ledger"
                )
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
///
/// With `root_at`, also returns the Merkle root of the first `root_at` entries as recomputed
/// from them (`None` if the ledger holds fewer).
pub(crate) fn verify(
    db: &crate::Database,
    root_at: Option<u64>,
) -> Result<(VerifyReport, Option<Hash>), LedgerError> {
    let txn = db.begin_read().map_err(LedgerError::read)?;
    let head = read_head(&txn)?;
    let head_seq = head.map_or(0, |h| h.seq);
    let tampered = |seq, problem| Err(LedgerError::Tampered(Tampering { seq, problem }));

    let table = match txn.open_table(ENTRIES) {
        Ok(table) => Some(table),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(LedgerError::read(e)),
    };
    let nodes = match txn.open_table(NODES) {
        Ok(table) => Some(table),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(LedgerError::read(e)),
    };
    // The last entry checked so far (0: none); the next one expected follows it.
    let mut last_seq: u64 = 0;
    let mut prev = Hash::ZERO;
    // The tree of the entries checked so far, and the nodes the last one completed.
    let mut tree = Frontier::new();
    let mut completed = Vec::with_capacity(64);
    // The first node found wrong, reported once the chain is known to be intact.
    let mut tree_problem: Option<Tampering> = None;
    let mut root_at_size = (root_at == Some(0)).then(|| tree.root());
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
            // Entries so far are 1..=seq without gaps, so this leaf is leaf seq - 1. A full tree
            // cannot happen: seq 0 was refused above.
            let _ = tree.push(entry_leaf(&prev), |level, index, hash| {
                completed.push((level, index, *hash));
            });
            for (level, index, hash) in completed.drain(..) {
                if tree_problem.is_none() && crate::tree::is_stored(level) {
                    tree_problem = check_node(nodes.as_ref(), level, index, &hash)?;
                }
            }
            if root_at == Some(seq) {
                root_at_size = Some(tree.root());
            }
        }
    }

    if last_seq < head_seq {
        return tampered(
            last_seq.saturating_add(1),
            Problem::HeadMismatch { head_seq, last_seq },
        );
    }
    let head = match head {
        // Entries past the head were reported in the loop, so here last_seq == head_seq.
        Some(head) if head.hash != prev || head.entries != last_seq => {
            return tampered(last_seq, Problem::HeadMismatch { head_seq, last_seq });
        }
        Some(head) => Some(head.hash),
        None => None,
    };
    if let Some(problem) = tree_problem {
        return Err(LedgerError::Tampered(problem));
    }
    if let Some(nodes) = &nodes {
        check_no_extra_nodes(nodes, last_seq)?;
    }
    let report = VerifyReport {
        entries: last_seq,
        head,
        root: tree.root(),
    };
    Ok((report, root_at_size))
}

/// Checks a node the entries complete against the stored one; returns what is wrong with it.
fn check_node(
    nodes: Option<&NodeTable>,
    level: u32,
    index: u64,
    hash: &Hash,
) -> Result<Option<Tampering>, LedgerError> {
    // Levels are below 64.
    let stored = match nodes {
        Some(nodes) => nodes
            .get((level as u8, index))
            .map_err(LedgerError::read)?
            .map(|stored| stored.value()),
        None => None,
    };
    let problem = match stored {
        Some(stored) if stored == hash.0 => return Ok(None),
        Some(_) => Problem::TreeNodeModified { level, index },
        None => Problem::TreeNodeMissing { level, index },
    };
    Ok(Some(Tampering {
        seq: (index << level).saturating_add(1),
        problem,
    }))
}

/// Checks that the node table holds only the nodes of the tree of `size` entries, which were
/// all found and checked already: it holds `size >> level` nodes at each stored level.
fn check_no_extra_nodes(nodes: &NodeTable, size: u64) -> Result<(), LedgerError> {
    use redb::ReadableTableMetadata as _;
    let expected: u128 = (NODES_FROM_LEVEL..64)
        .map(|level| u128::from(size >> level))
        .sum();
    if u128::from(nodes.len().map_err(LedgerError::read)?) == expected {
        return Ok(());
    }
    for item in nodes.iter().map_err(LedgerError::read)? {
        let (key, _) = item.map_err(LedgerError::read)?;
        let (level, index) = key.value();
        let level = u32::from(level);
        let end = u128::from(index)
            .checked_add(1)
            .and_then(|n| n.checked_shl(level))
            .unwrap_or(u128::MAX);
        if !crate::tree::is_stored(level) || level >= 64 || end > u128::from(size) {
            return Err(LedgerError::Tampered(Tampering {
                seq: index
                    .checked_shl(level)
                    .map_or(u64::MAX, |first| first.saturating_add(1)),
                problem: Problem::TreeNodeExtra { level, index },
            }));
        }
    }
    Ok(())
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
