//! The right edge of a growing tree: what appending needs to extend it and to know its root.
//!
//! The tree of size `n` splits into one complete subtree per set bit of `n`, largest first (13 =
//! 8 + 4 + 1 leaves). Their roots are the frontier (transparency-dev calls it a compact range).
//! Appending a leaf merges it with the equally sized subtrees at the end, completing one node per
//! merge, and the root of the whole tree is the frontier folded from the right. So appending is
//! O(1) amortised, and the frontier is at most 64 hashes.

use crate::Hash;

use super::{empty_root, node_hash};

/// The roots of the complete subtrees that make up a tree, largest first, and its size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    roots: Vec<Hash>,
}

/// A tree already holds `u64::MAX` leaves and cannot take another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the tree holds the most leaves it can")]
pub struct TreeFull;

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// A frontier from its parts: `roots` are the roots of the subtrees listed by
    /// [`Frontier::positions`] for `size`, in that order. `None` if there are not as many.
    pub fn from_roots(size: u64, roots: Vec<Hash>) -> Option<Frontier> {
        (roots.len() == size.count_ones() as usize).then_some(Frontier { size, roots })
    }

    /// Where the subtrees of a tree of `size` leaves are, largest first: `(level, index)`, the
    /// subtree of `2^level` leaves starting at leaf `index << level`.
    pub fn positions(size: u64) -> impl Iterator<Item = (u32, u64)> {
        (0..64u32).rev().filter_map(move |level| {
            let bit = 1u64 << level;
            // The leaves before this subtree are the higher bits of `size`.
            (size & bit != 0).then(|| (level, (size & !(bit | (bit - 1))) >> level))
        })
    }

    /// How many leaves the tree holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the subtrees, largest first (see [`Frontier::positions`]).
    pub fn roots(&self) -> &[Hash] {
        &self.roots
    }

    /// Appends a leaf hash. `completed` sees every node this completes, the leaf itself first,
    /// as `(level, index, hash)`.
    pub fn push(
        &mut self,
        leaf: Hash,
        mut completed: impl FnMut(u32, u64, &Hash),
    ) -> Result<(), TreeFull> {
        let index = self.size;
        let size = index.checked_add(1).ok_or(TreeFull)?;
        completed(0, index, &leaf);
        let mut hash = leaf;
        let mut level = 0;
        // Each trailing one bit of the old size is a subtree of this node's size to its left.
        while (index >> level) & 1 == 1 {
            let Some(left) = self.roots.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
            level += 1;
            completed(level, index >> level, &hash);
        }
        self.roots.push(hash);
        self.size = size;
        Ok(())
    }

    /// The root of the tree (MTH of its leaves).
    pub fn root(&self) -> Hash {
        let mut roots = self.roots.iter().rev();
        let Some(last) = roots.next() else {
            return empty_root();
        };
        roots.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::merkle::{leaf_hash, root};

    #[test]
    fn the_root_after_each_push_is_the_root_of_the_leaves_so_far() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), root(&[]));
        for (n, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf, |_, _, _| {}).unwrap();
            assert_eq!(frontier.root(), root(&leaves[..=n]), "size {}", n + 1);
            assert_eq!(frontier.roots().len(), (n + 1).count_ones() as usize);
        }
    }

    #[test]
    fn pushing_reports_each_completed_node_once_with_its_hash() {
        let leaves: Vec<Hash> = (0u32..16).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut frontier = Frontier::new();
        let mut nodes = Vec::new();
        for leaf in &leaves {
            frontier
                .push(*leaf, |level, index, hash| {
                    nodes.push((level, index, *hash))
                })
                .unwrap();
        }
        // 16 leaves, 8 + 4 + 2 + 1 interior nodes.
        assert_eq!(nodes.len(), 31);
        for (level, index, hash) in nodes {
            let width = 1usize << level;
            let start = index as usize * width;
            assert_eq!(
                hash,
                root(&leaves[start..start + width]),
                "({level}, {index})"
            );
        }
    }

    #[test]
    fn positions_list_the_subtrees_of_a_size_largest_first() {
        assert_eq!(Frontier::positions(0).count(), 0);
        assert_eq!(
            Frontier::positions(13).collect::<Vec<_>>(),
            [(3, 0), (2, 2), (0, 12)]
        );
        assert_eq!(
            Frontier::positions(u64::MAX).next(),
            Some((63, 0)),
            "the largest subtree of the largest tree"
        );
        assert_eq!(
            Frontier::positions(u64::MAX).last(),
            Some((0, u64::MAX - 1))
        );
    }

    #[test]
    fn a_full_tree_refuses_another_leaf() {
        let mut frontier = Frontier::from_roots(u64::MAX, vec![Hash::ZERO; 64]).unwrap();
        assert_eq!(frontier.push(Hash::ZERO, |_, _, _| {}), Err(TreeFull));
        assert_eq!(frontier.size(), u64::MAX);
    }
}
