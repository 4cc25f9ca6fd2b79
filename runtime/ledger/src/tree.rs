//! The Merkle tree as the ledger stores it: subtree hashes read from [`NODES`] (or hashed from
//! the entries, for the small subtrees it does not store) for proofs, the right edge loaded when
//! the ledger opens, and the node table built from the entries of a ledger written before the
//! tree existed (or whose right edge is gone).
//!
//! Only subtrees of [`NODES_FROM_LEVEL`] and up are stored: one row per 8 entries on average
//! instead of two, which keeps the tree's cost on appends small. A smaller subtree is hashed
//! from the stored hashes of its at most `2^NODES_FROM_LEVEL` entries when a proof needs it, and a
//! proof needs at most two such blocks: O(log n) reads either way.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, TableError};

use crate::merkle::{self, Frontier, Subtrees, entry_leaf};
use crate::tables::{ENTRIES, NODES, NODES_FROM_LEVEL};
use crate::{Hash, LedgerError, Problem, Tampering, codec};

/// The node table, opened for reading.
pub(crate) type NodeTable = redb::ReadOnlyTable<(u8, u64), [u8; 32]>;
/// The entries table, opened for reading.
pub(crate) type EntryTable = redb::ReadOnlyTable<u64, &'static [u8]>;

/// The tree as stored: the node table for large subtrees, the entries for small ones. An absent
/// table holds nothing.
pub(crate) struct StoredTree<N, E> {
    pub(crate) nodes: Option<N>,
    pub(crate) entries: Option<E>,
}

impl StoredTree<NodeTable, EntryTable> {
    /// The tree as a read transaction sees it.
    pub(crate) fn open(txn: &ReadTransaction) -> Result<Self, LedgerError> {
        fn absent_is_none<T>(table: Result<T, TableError>) -> Result<Option<T>, LedgerError> {
            match table {
                Ok(table) => Ok(Some(table)),
                Err(TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(LedgerError::read(e)),
            }
        }
        Ok(StoredTree {
            nodes: absent_is_none(txn.open_table(NODES))?,
            entries: absent_is_none(txn.open_table(ENTRIES))?,
        })
    }
}

impl<N, E> Subtrees for StoredTree<N, E>
where
    N: ReadableTable<(u8, u64), [u8; 32]>,
    E: ReadableTable<u64, &'static [u8]>,
{
    type Error = LedgerError;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        let missing = LedgerError::MissingNode { level, index };
        if level < NODES_FROM_LEVEL {
            return self.hash_entries(level, index);
        }
        let (Ok(stored_level), Some(nodes)) = (u8::try_from(level), &self.nodes) else {
            return Err(missing);
        };
        nodes
            .get((stored_level, index))
            .map_err(LedgerError::read)?
            .map(|hash| Hash(hash.value()))
            .ok_or(missing)
    }
}

impl<N, E: ReadableTable<u64, &'static [u8]>> StoredTree<N, E> {
    /// The root of a small subtree, hashed from its entries' stored hashes.
    fn hash_entries(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        let width = 1u64 << level;
        // Leaf i is entry i + 1.
        let first = index
            .checked_mul(width)
            .and_then(|leaf| leaf.checked_add(1))
            .ok_or(LedgerError::MissingNode { level, index })?;
        let missing = |seq| {
            LedgerError::Tampered(Tampering {
                seq,
                problem: Problem::Missing,
            })
        };
        let Some(entries) = &self.entries else {
            return Err(missing(first));
        };
        let mut leaves = Vec::with_capacity(1 << NODES_FROM_LEVEL);
        for item in entries
            .range(first..)
            .map_err(LedgerError::read)?
            .take(width as usize)
        {
            let (key, value) = item.map_err(LedgerError::read)?;
            let expected = first + leaves.len() as u64;
            if key.value() != expected {
                return Err(missing(expected));
            }
            let (_, hash) =
                codec::split(value.value()).map_err(|source| LedgerError::Undecodable {
                    seq: expected,
                    source,
                })?;
            leaves.push(entry_leaf(&hash));
        }
        if leaves.len() as u64 != width {
            return Err(missing(first + leaves.len() as u64));
        }
        Ok(merkle::root(&leaves))
    }
}

/// Whether a completed node is one the node table stores.
pub(crate) fn is_stored(level: u32) -> bool {
    level >= NODES_FROM_LEVEL
}

/// The right edge of the stored tree of `size` entries.
pub(crate) fn load_frontier<S: Subtrees<Error = LedgerError>>(
    tree: &S,
    size: u64,
) -> Result<Frontier, LedgerError> {
    let roots = Frontier::positions(size)
        .map(|(level, index)| tree.subtree(level, index))
        .collect::<Result<Vec<_>, _>>()?;
    Frontier::from_roots(size, roots).ok_or(LedgerError::TreeUnavailable {
        reason: "the stored tree has the wrong number of subtrees".into(),
    })
}

/// What the writer extends: the right edge of the tree of the first `size` entries, or why there
/// is none (appends are refused then, rather than leave entries out of the tree).
///
/// Loads the right edge from [`NODES`] and the last entries. If nodes are missing, as in a
/// ledger written before the tree existed, rebuilds the whole table from the entries' stored
/// hashes in one transaction; if entries are missing too (tampering), nothing is written and the
/// reason is returned.
pub(crate) fn prepare(
    db: &crate::Database,
    size: u64,
) -> Result<Result<Frontier, String>, redb::Error> {
    {
        let txn = db.begin_read()?;
        let loaded = StoredTree::open(&txn).and_then(|tree| load_frontier(&tree, size));
        match loaded {
            Ok(frontier) => return Ok(Ok(frontier)),
            Err(LedgerError::Read { source }) => return Err(source),
            Err(_) => {}
        }
    }
    tracing::warn!(
        entries = size,
        "the ledger's Merkle tree is missing nodes (the ledger predates it, or the tree table was changed); rebuilding it from the entries"
    );
    let txn = db.begin_write()?;
    let outcome = {
        txn.delete_table(NODES)?;
        let mut nodes = txn.open_table(NODES)?;
        let entries = txn.open_table(ENTRIES)?;
        rebuild(&entries, &mut nodes, size)?
    };
    match outcome {
        Ok(frontier) => {
            txn.commit()?;
            tracing::info!(entries = size, "the ledger's Merkle tree was rebuilt");
            Ok(Ok(frontier))
        }
        Err(reason) => {
            // Dropping the transaction aborts it: the table stays as it was.
            tracing::error!(
                "the ledger's Merkle tree cannot be rebuilt: {reason}; appends will fail; run `grace ledger verify`"
            );
            Ok(Err(reason))
        }
    }
}

/// Hashes entries 1 to `size` into `nodes`; `Err` names the first entry that is in the way.
fn rebuild(
    entries: &redb::Table<'_, u64, &'static [u8]>,
    nodes: &mut redb::Table<'_, (u8, u64), [u8; 32]>,
    size: u64,
) -> Result<Result<Frontier, String>, redb::Error> {
    let mut frontier = Frontier::new();
    let mut completed = Vec::with_capacity(64);
    for item in entries.range(1..)? {
        if frontier.size() == size {
            break;
        }
        let (key, value) = item?;
        let expected = frontier.size() + 1;
        if key.value() != expected {
            return Ok(Err(format!("entry {expected} is missing")));
        }
        let hash = match codec::split(value.value()) {
            Ok((_, hash)) => hash,
            Err(e) => return Ok(Err(format!("entry {expected} cannot be read: {e}"))),
        };
        if frontier
            .push(entry_leaf(&hash), |level, index, hash| {
                if is_stored(level) {
                    completed.push((level, index, *hash));
                }
            })
            .is_err()
        {
            return Ok(Err("the tree is full".into()));
        }
        for (level, index, hash) in completed.drain(..) {
            // Levels are below 64.
            nodes.insert((level as u8, index), hash.0)?;
        }
    }
    if frontier.size() != size {
        return Ok(Err(format!("entry {} is missing", frontier.size() + 1)));
    }
    Ok(Ok(frontier))
}
