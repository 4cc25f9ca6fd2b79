//! The ledger's redb tables, declared together.
//!
//! They are public so that tools (and tests) can open the database file directly, e.g. to
//! inspect it or to tamper with it on purpose. Anything that writes these tables outside
//! [`Ledger`](crate::Ledger) breaks the chain, and [`Ledger::verify`](crate::Ledger::verify)
//! says where.

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
