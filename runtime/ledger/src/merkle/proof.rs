//! Proof generation, RFC 9162 §2.1.3.1 (`PATH`) and §2.1.4.1 (`PROOF`/`SUBPROOF`), over any
//! store of complete subtree hashes.
//!
//! Every subtree the RFC's recursion visits starts at a multiple of its own size rounded up to a
//! power of two, so it splits into complete, aligned subtrees: one per set bit of its size. A
//! store that keeps the root of every complete subtree therefore answers any proof with O(log n)
//! reads: each hash of a path is one stored subtree, except the one at the right edge of the tree,
//! which folds at most log n of them.

use crate::Hash;

use super::{largest_power_of_two_below, node_hash, root};

/// A source of the roots of complete subtrees: what proofs are made of.
pub trait Subtrees {
    /// Why a subtree hash cannot be read.
    type Error;

    /// The root of the complete subtree of `2^level` leaves that starts at leaf
    /// `index << level`.
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// A subtree was asked of a slice of leaves that does not hold all of its leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subtree at level {level}, index {index} lies beyond the leaves")]
pub struct MissingLeaves {
    /// The subtree's level.
    pub level: u32,
    /// The subtree's index at that level.
    pub index: u64,
}

/// Leaf hashes in memory: hashes the subtree's leaves on every call, O(2^level).
impl Subtrees for [Hash] {
    type Error = MissingLeaves;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, MissingLeaves> {
        let missing = MissingLeaves { level, index };
        let width = 1usize.checked_shl(level).ok_or(missing)?;
        let start = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(width))
            .ok_or(missing)?;
        let end = start.checked_add(width).ok_or(missing)?;
        self.get(start..end).map(root).ok_or(missing)
    }
}

/// `MTH(D[start:end])` for a subtree of the RFC's structure (`start` aligned as described in the
/// module documentation), from the complete subtrees it splits into.
pub fn subtree_root<S: Subtrees + ?Sized>(
    tree: &S,
    start: u64,
    end: u64,
) -> Result<Hash, S::Error> {
    let mut parts = Vec::with_capacity(8);
    let mut at = start;
    let mut remaining = end.saturating_sub(start);
    while remaining > 0 {
        let level = 63 - remaining.leading_zeros();
        parts.push(tree.subtree(level, at >> level)?);
        at += 1 << level;
        remaining -= 1 << level;
    }
    let mut parts = parts.into_iter().rev();
    let Some(last) = parts.next() else {
        return Ok(super::empty_root());
    };
    Ok(parts.fold(last, |right, left| node_hash(&left, &right)))
}

/// The inclusion proof (audit path) of leaf `index` in the tree of the first `size` leaves:
/// RFC 9162 `PATH(index, D[0:size])`, lowest sibling first.
///
/// Expects `index < size` and a `tree` holding at least `size` leaves; otherwise the result is
/// meaningless (an empty path, or the store's error), never a panic.
pub fn inclusion_path<S: Subtrees + ?Sized>(
    tree: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut path = Vec::with_capacity(64);
    let (mut start, mut end) = (0, size);
    // Walks from the root down to the leaf, so the siblings come out highest first.
    while end - start > 1 && index < end {
        let k = largest_power_of_two_below(end - start);
        if index < start + k {
            path.push(subtree_root(tree, start + k, end)?);
            end = start + k;
        } else {
            path.push(subtree_root(tree, start, start + k)?);
            start += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// How many hashes the inclusion proof of leaf `index` in a tree of `size` leaves has (0 when
/// `index >= size`).
pub fn inclusion_len(index: u64, size: u64) -> usize {
    let (mut start, mut end, mut len) = (0, size, 0);
    while end - start > 1 && index < end {
        let k = largest_power_of_two_below(end - start);
        if index < start + k {
            end = start + k;
        } else {
            start += k;
        }
        len += 1;
    }
    len
}

/// The consistency proof between the trees of the first `old_size` and `new_size` leaves:
/// RFC 9162 `PROOF(old_size, D[0:new_size])`, lowest hash first. Empty when `old_size` is 0 or
/// equals `new_size`: there is nothing to prove.
///
/// Expects `old_size <= new_size` and a `tree` holding at least `new_size` leaves; otherwise the
/// result is meaningless, never a panic.
pub fn consistency_path<S: Subtrees + ?Sized>(
    tree: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut path = Vec::with_capacity(64);
    if old_size == 0 || old_size >= new_size {
        return Ok(path);
    }
    // SUBPROOF(m, D[start:end], complete), unrolled: m counts leaves from `start`.
    let (mut start, mut end, mut m, mut complete) = (0, new_size, old_size, true);
    loop {
        if m == end - start {
            if !complete {
                path.push(subtree_root(tree, start, end)?);
            }
            break;
        }
        let k = largest_power_of_two_below(end - start);
        if m <= k {
            path.push(subtree_root(tree, start + k, end)?);
            end = start + k;
        } else {
            path.push(subtree_root(tree, start, start + k)?);
            start += k;
            m -= k;
            complete = false;
        }
    }
    path.reverse();
    Ok(path)
}

/// How many hashes the consistency proof from `old_size` to `new_size` has.
pub fn consistency_len(old_size: u64, new_size: u64) -> usize {
    if old_size == 0 || old_size >= new_size {
        return 0;
    }
    let (mut start, mut end, mut m, mut complete, mut len) = (0, new_size, old_size, true, 0);
    loop {
        if m == end - start {
            return len + usize::from(!complete);
        }
        let k = largest_power_of_two_below(end - start);
        if m <= k {
            end = start + k;
        } else {
            start += k;
            m -= k;
            complete = false;
        }
        len += 1;
    }
}
