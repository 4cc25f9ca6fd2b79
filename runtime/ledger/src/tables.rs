//! The ledger's redb tables, declared together.
//!
//! They are public so that tools (and tests) can open the database file directly, e.g. to
//! inspect it or to tamper with it on purpose. Anything that writes [`ENTRIES`], [`HEAD`] or
//! [`NODES`] outside [`Ledger`](crate::Ledger) breaks the chain or the tree, and
//! [`Ledger::verify`](crate::Ledger::verify) says where. [`CHECKPOINTS`] only keeps copies of
//! signed checkpoints, which verify by themselves.

use redb::TableDefinition;

/// Every entry, keyed by its sequence number (from 1), valued `body || hash` as described in
/// [`codec`](crate::codec).
pub const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("ledger/entries");

/// The end of the chain: one row, under [`HEAD_KEY`], valued `(seq, hash, entries)` of the last
/// committed entry. Written in the same transaction as the entries it covers, so a truncated or
/// extended tail shows up as a disagreement between this row and the last entry.
pub const HEAD: TableDefinition<&str, (u64, [u8; 32], u64)> = TableDefinition::new("ledger/head");

/// The key of the only row of [`HEAD`].
pub const HEAD_KEY: &str = "head";

/// The Merkle tree over the entries (see [`merkle`](crate::merkle)): the root of every complete
/// subtree of [`NODES_FROM_LEVEL`] and up, keyed by `(level, index)`, the subtree of `2^level`
/// entries starting at leaf `index << level` (entry `(index << level) + 1`). Smaller subtrees
/// are hashed from the entries' stored hashes when needed.
///
/// Written in the same transaction as the entries it covers, so it always describes exactly the
/// entries committed: one row per `2^(NODES_FROM_LEVEL - 1)` entries on average. Any proof reads
/// O(log n) of them and at most two blocks of `2^NODES_FROM_LEVEL` entries; the tree's right
/// edge ([`Frontier`](crate::merkle::Frontier)), from which appends extend it, is the subtrees
/// at the positions [`Frontier::positions`](crate::merkle::Frontier::positions) lists.
pub const NODES: TableDefinition<(u8, u64), [u8; 32]> = TableDefinition::new("ledger/nodes");

/// The lowest level of the tree that [`NODES`] stores: subtrees of 16 entries and up.
pub const NODES_FROM_LEVEL: u32 = 4;

/// Signed checkpoints the ledger issued, keyed by tree size, valued by the checkpoint's text
/// (a signed note, see [`SignedCheckpoint`](crate::SignedCheckpoint)). Only the latest
/// [`CHECKPOINTS_KEPT`] are kept: a server hands out the last one, and a client that kept an
/// older one proves the ledger extends it with a consistency proof.
pub const CHECKPOINTS: TableDefinition<u64, &str> = TableDefinition::new("ledger/checkpoints");

/// How many checkpoints [`CHECKPOINTS`] keeps.
pub const CHECKPOINTS_KEPT: usize = 64;
