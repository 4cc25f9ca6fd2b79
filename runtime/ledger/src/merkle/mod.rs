//! The Merkle tree over ledger entries, exactly as RFC 9162 §2.1 (RFC 6962 §2.1) defines it, and
//! the proofs it gives: that an entry is in the ledger ([inclusion](inclusion_path)) and that a
//! later ledger extends an earlier one without changing it ([consistency](consistency_path)).
//!
//! Hashes are SHA-256 with the RFC's domain separation:
//!
//! ```text
//! MTH({})          = SHA-256()                          the empty tree
//! leaf hash        = SHA-256(0x00 || leaf data)
//! node hash        = SHA-256(0x01 || left || right)
//! MTH(D[0:n])      = node hash(MTH(D[0:k]), MTH(D[k:n]))  k = largest power of two < n
//! ```
//!
//! The leaf data of ledger entry `seq` is its 32-byte chain hash ([`Entry::hash`]), and its leaf
//! index is `seq - 1` ([`entry_leaf`]). The chain hash already covers the entry's whole canonical
//! encoding, `prev_hash` included ([`crate::codec`]), so the leaf commits to the entry as much as
//! hashing the encoding again would; and a client holding only a [`Receipt`] or an entry's hash
//! can check a proof without the entry's bytes. The tree of the first `n` entries is the tree of
//! size `n`; its root is what a [checkpoint](crate::Checkpoint) signs.
//!
//! Everything here is pure: the verification functions ([`verify_inclusion`],
//! [`verify_consistency`]) are what a client that holds only a checkpoint and a proof runs. Proof
//! generation reads subtree hashes through [`Subtrees`]; the ledger implements it over the node
//! table it maintains (see [`tables::NODES`](crate::tables::NODES)), and a slice of leaf hashes
//! implements it in memory.
//!
//! [`Entry::hash`]: crate::Entry::hash
//! [`Receipt`]: crate::Receipt

mod frontier;
mod proof;
mod verify;

use sha2::{Digest, Sha256};

use crate::Hash;

pub use frontier::{Frontier, TreeFull};
pub use proof::{
    MissingLeaves, Subtrees, consistency_len, consistency_path, inclusion_len, inclusion_path,
    subtree_root,
};
pub use verify::{ProofError, root_from_inclusion, verify_consistency, verify_inclusion};

/// Prefixed to leaf data before hashing (RFC 9162 §2.1.1).
pub const LEAF_PREFIX: u8 = 0x00;

/// Prefixed to two child hashes before hashing (RFC 9162 §2.1.1).
pub const NODE_PREFIX: u8 = 0x01;

/// The hash of a leaf: SHA-256 over [`LEAF_PREFIX`] and `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Hash(
        Sha256::new()
            .chain_update([LEAF_PREFIX])
            .chain_update(data)
            .finalize()
            .into(),
    )
}

/// The hash of an interior node: SHA-256 over [`NODE_PREFIX`], `left` and `right`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash(
        Sha256::new()
            .chain_update([NODE_PREFIX])
            .chain_update(left.0)
            .chain_update(right.0)
            .finalize()
            .into(),
    )
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The leaf hash of a ledger entry whose chain hash is `entry_hash`.
pub fn entry_leaf(entry_hash: &Hash) -> Hash {
    leaf_hash(entry_hash.as_bytes())
}

/// MTH over `leaves` (leaf hashes, in order), straight from the RFC's recursive definition.
///
/// Hashes every node: for checking, tests and small trees. The ledger computes roots from the
/// subtree hashes it stores instead.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = largest_power_of_two_below(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The largest power of two strictly less than `n`, for `n >= 2` (1 for smaller `n`).
pub(crate) fn largest_power_of_two_below(n: u64) -> u64 {
    if n < 2 {
        return 1;
    }
    1 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_point_is_the_largest_power_of_two_below_the_size() {
        let cases = [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (u64::MAX, 1 << 63),
        ];
        for (n, k) in cases {
            assert_eq!(largest_power_of_two_below(n), k, "n = {n}");
        }
    }
}
