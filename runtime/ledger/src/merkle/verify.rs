//! Proof verification, RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), step by step.
//!
//! Pure functions of the proof and what the client already trusts (a root and size from a
//! verified checkpoint): a client needs nothing else. A proof of the wrong length is refused
//! before any hashing, with the length it should have had.

use crate::Hash;

use super::{consistency_len, inclusion_len, node_hash};

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf {index} is not in a tree of {tree_size} leaves")]
    IndexOutOfRange {
        /// The leaf index (an entry's `seq - 1`).
        index: u64,
        /// The tree size.
        tree_size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("a tree of {old_size} leaves cannot be extended into one of {new_size}")]
    SizesOutOfOrder {
        /// The size of the earlier tree.
        old_size: u64,
        /// The size of the later tree.
        new_size: u64,
    },
    /// The proof does not have the number of hashes a proof for these sizes has.
    #[error("the proof has {got} hashes where one for these tree sizes has {expected}")]
    WrongLength {
        /// How many a valid proof has.
        expected: usize,
        /// How many this one has.
        got: usize,
    },
    /// The proof leads to another root than the one trusted.
    #[error("the proof leads to root {computed}, not to the expected {expected}")]
    RootMismatch {
        /// The root the proof leads to.
        computed: Hash,
        /// The root it should have led to.
        expected: Hash,
    },
    /// The proof is for another tree size than the trusted root's.
    #[error("the proof is for a tree of {proof} leaves, the trusted root for one of {trusted}")]
    TreeSizeMismatch {
        /// The tree size of the proof.
        proof: u64,
        /// The tree size of the trusted root (a checkpoint's).
        trusted: u64,
    },
    /// A consistency proof leads to another root of the old tree than the one trusted.
    #[error("the proof leads to old root {computed}, not to the expected {expected}")]
    OldRootMismatch {
        /// The old root the proof leads to.
        computed: Hash,
        /// The old root it should have led to.
        expected: Hash,
    },
}

/// The root that an inclusion proof of `leaf` at `index` in a tree of `tree_size` leaves leads
/// to (RFC 9162 §2.1.3.2 without the final comparison).
pub fn root_from_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let expected = inclusion_len(index, tree_size);
    let wrong_length = ProofError::WrongLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    let (mut f, mut s) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            // Climb past the levels where this node has no sibling (the right edge).
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    Ok(r)
}

/// Checks that `proof` shows `leaf` at `index` in the tree of `tree_size` leaves whose root is
/// `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion(leaf, index, tree_size, proof)?;
    if computed != *root {
        return Err(ProofError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// Checks that `proof` shows the tree of `new_size` leaves with root `new_root` to extend the
/// tree of `old_size` leaves with root `old_root`, unchanged (RFC 9162 §2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots; any tree extends the empty one, with an
/// empty proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    let expected = consistency_len(old_size, new_size);
    let wrong_length = ProofError::WrongLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch {
                computed: *old_root,
                expected: *new_root,
            })
        };
    }
    if old_size == 0 {
        return Ok(());
    }
    // A complete old tree is a node of the new one: its root starts the path.
    let (first, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        match proof.split_first() {
            Some(split) => split,
            None => return Err(wrong_length),
        }
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch {
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(())
}
