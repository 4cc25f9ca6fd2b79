//! The Merkle tree functions against RFC 6962's published test vectors (as used by Certificate
//! Transparency's implementations, transparency-dev/merkle `proof/verify_test.go`), and as
//! properties over every tree size up to a few hundred leaves and sampled larger ones.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use grace_ledger::Hash;
use grace_ledger::merkle::{
    self, Frontier, ProofError, Subtrees, consistency_len, consistency_path, inclusion_len,
    inclusion_path, leaf_hash, node_hash, root_from_inclusion, verify_consistency,
    verify_inclusion,
};

fn h(hex: &str) -> Hash {
    hex.parse().unwrap()
}

/// The eight leaves of the RFC 6962 test tree.
fn rfc_leaves() -> Vec<Hash> {
    let data: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    data.iter().map(|d| leaf_hash(d)).collect()
}

/// The roots of the trees of the first 1 to 8 of those leaves.
fn rfc_roots() -> Vec<Hash> {
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    .into_iter()
    .map(h)
    .collect()
}

/// (leaf index, tree size, proof) from the published vectors.
fn rfc_inclusion_proofs() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (0, 1, vec![]),
        (
            0,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            5,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            3,
            vec![h(
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            )],
        ),
        (
            1,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

/// (old size, new size, proof) from the published vectors.
fn rfc_consistency_proofs() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

#[test]
fn the_empty_tree_root_is_sha256_of_nothing() {
    assert_eq!(
        merkle::empty_root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(merkle::root(&[]), merkle::empty_root());
}

#[test]
fn roots_of_the_rfc6962_test_leaves_match_the_published_roots() {
    let leaves = rfc_leaves();
    for (n, expected) in rfc_roots().into_iter().enumerate() {
        assert_eq!(merkle::root(&leaves[..=n]), expected, "tree size {}", n + 1);
    }
}

#[test]
fn inclusion_proofs_are_the_published_ones_and_verify() {
    let leaves = rfc_leaves();
    let roots = rfc_roots();
    for (index, size, proof) in rfc_inclusion_proofs() {
        let made = inclusion_path(&leaves[..], index, size).unwrap();
        assert_eq!(made, proof, "leaf {index} in tree {size}");
        let root = roots[size as usize - 1];
        let leaf = leaves[index as usize];
        assert_eq!(root_from_inclusion(&leaf, index, size, &proof), Ok(root));
        verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
    }
}

#[test]
fn consistency_proofs_are_the_published_ones_and_verify() {
    let leaves = rfc_leaves();
    let roots = rfc_roots();
    for (old, new, proof) in rfc_consistency_proofs() {
        let made = consistency_path(&leaves[..], old, new).unwrap();
        assert_eq!(made, proof, "from {old} to {new}");
        let (old_root, new_root) = (roots[old as usize - 1], roots[new as usize - 1]);
        verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
    }
}

/// What a corrupted inclusion probe changes: (description, leaf index, tree size, proof, root,
/// leaf).
type InclusionProbe = (&'static str, u64, u64, Vec<Hash>, Hash, Hash);

/// The ways transparency-dev corrupts a valid inclusion proof; every one must fail.
fn corrupted_inclusion_probes(
    index: u64,
    size: u64,
    proof: &[Hash],
    root: Hash,
    leaf: Hash,
) -> Vec<InclusionProbe> {
    let some = h(SOME_HASH);
    let with = |extra: Hash, front: bool| {
        let mut p = proof.to_vec();
        if front {
            p.insert(0, extra);
        } else {
            p.push(extra);
        }
        p
    };
    let mut probes = vec![
        (
            "index - 1",
            index.wrapping_sub(1),
            size,
            proof.to_vec(),
            root,
            leaf,
        ),
        ("index + 1", index + 1, size, proof.to_vec(), root, leaf),
        ("index ^ 2", index ^ 2, size, proof.to_vec(), root, leaf),
        ("size * 2", index, size * 2, proof.to_vec(), root, leaf),
        ("size / 2", index, size / 2, proof.to_vec(), root, leaf),
        ("wrong leaf", index, size, proof.to_vec(), root, some),
        (
            "empty root",
            index,
            size,
            proof.to_vec(),
            merkle::empty_root(),
            leaf,
        ),
        ("random root", index, size, proof.to_vec(), some, leaf),
        (
            "trailing garbage",
            index,
            size,
            with(Hash::ZERO, false),
            root,
            leaf,
        ),
        ("trailing root", index, size, with(root, false), root, leaf),
        (
            "preceding garbage",
            index,
            size,
            with(Hash::ZERO, true),
            root,
            leaf,
        ),
        ("preceding root", index, size, with(root, true), root, leaf),
    ];
    for i in 0..proof.len() {
        let mut p = proof.to_vec();
        p[i].0[0] ^= 8;
        probes.push(("modified hash", index, size, p, root, leaf));
    }
    if !proof.is_empty() {
        let p = proof[..proof.len() - 1].to_vec();
        probes.push(("removed hash", index, size, p, root, leaf));
    }
    if proof.len() > 1 {
        let mut p = vec![proof[0], some];
        p.extend_from_slice(&proof[1..]);
        probes.push(("inserted hash", index, size, p, root, leaf));
    }
    probes
}

#[test]
fn corrupted_inclusion_proofs_are_rejected() {
    let leaves = rfc_leaves();
    let roots = rfc_roots();
    for (index, size, proof) in rfc_inclusion_proofs() {
        let (root, leaf) = (roots[size as usize - 1], leaves[index as usize]);
        for (what, i, n, p, r, l) in corrupted_inclusion_probes(index, size, &proof, root, leaf) {
            assert!(
                verify_inclusion(&l, i, n, &p, &r).is_err(),
                "{what}: leaf {index} in tree {size} verified"
            );
        }
    }
}

#[test]
fn corrupted_consistency_proofs_are_rejected() {
    let roots = rfc_roots();
    let some = h(SOME_HASH);
    for (old, new, proof) in rfc_consistency_proofs() {
        if proof.is_empty() {
            continue;
        }
        let (r1, r2) = (roots[old as usize - 1], roots[new as usize - 1]);
        let with = |extra: Hash, front: bool| {
            let mut p = proof.clone();
            if front {
                p.insert(0, extra);
            } else {
                p.push(extra);
            }
            p
        };
        let mut probes = vec![
            ("old - 1", old - 1, new, r1, r2, proof.clone()),
            ("old + 1", old + 1, new, r1, r2, proof.clone()),
            ("old ^ 2", old ^ 2, new, r1, r2, proof.clone()),
            ("new * 2", old, new * 2, r1, r2, proof.clone()),
            ("new / 2", old, new / 2, r1, r2, proof.clone()),
            ("wrong old root", old, new, some, r2, proof.clone()),
            ("wrong new root", old, new, r1, some, proof.clone()),
            ("swapped roots", old, new, r2, r1, proof.clone()),
            ("empty proof", old, new, r1, r2, vec![]),
            (
                "trailing garbage",
                old,
                new,
                r1,
                r2,
                with(Hash::ZERO, false),
            ),
            ("trailing old root", old, new, r1, r2, with(r1, false)),
            ("trailing new root", old, new, r1, r2, with(r2, false)),
            (
                "preceding garbage",
                old,
                new,
                r1,
                r2,
                with(Hash::ZERO, true),
            ),
            ("preceding old root", old, new, r1, r2, with(r1, true)),
            ("preceding new root", old, new, r1, r2, with(r2, true)),
            (
                "preceding first hash",
                old,
                new,
                r1,
                r2,
                with(proof[0], true),
            ),
            (
                "truncated",
                old,
                new,
                r1,
                r2,
                proof[..proof.len() - 1].to_vec(),
            ),
        ];
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i].0[0] ^= 16;
            probes.push(("modified hash", old, new, r1, r2, p));
        }
        for (what, m, n, a, b, p) in probes {
            assert!(
                verify_consistency(m, n, &a, &b, &p).is_err(),
                "{what}: {old} to {new} verified"
            );
        }
    }
}

#[test]
fn trivial_consistency_cases_follow_the_reference_verifier() {
    let (a, b) = (h(SOME_HASH), merkle::empty_root());
    // Equal sizes: the same root and nothing to prove.
    verify_consistency(0, 0, &a, &a, &[]).unwrap();
    verify_consistency(1, 1, &b, &b, &[]).unwrap();
    assert!(verify_consistency(0, 0, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 1, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 1, &b, &b, &[b]).is_err());
    // Any tree extends the empty one, with an empty proof.
    verify_consistency(0, 1, &a, &b, &[]).unwrap();
    assert!(verify_consistency(0, 1, &b, &b, &[b]).is_err());
    // Time does not run backwards, and a real extension needs a proof.
    assert_eq!(
        verify_consistency(2, 1, &a, &b, &[]),
        Err(ProofError::SizesOutOfOrder {
            old_size: 2,
            new_size: 1
        })
    );
    assert!(matches!(
        verify_consistency(1, 2, &a, &b, &[]),
        Err(ProofError::WrongLength {
            expected: 1,
            got: 0
        })
    ));
}

#[test]
fn inclusion_of_a_leaf_outside_the_tree_is_refused_by_name() {
    let leaf = h(SOME_HASH);
    for (index, size) in [(0, 0), (1, 0), (1, 1), (2, 1)] {
        assert_eq!(
            verify_inclusion(&leaf, index, size, &[], &leaf),
            Err(ProofError::IndexOutOfRange {
                index,
                tree_size: size
            })
        );
    }
    // A one-leaf tree: the leaf is the root and the proof is empty.
    verify_inclusion(&leaf, 0, 1, &[], &leaf).unwrap();
    assert!(verify_inclusion(&leaf, 0, 1, &[], &merkle::empty_root()).is_err());
}

/// Every complete subtree of a tree, as the ledger stores them: built by pushing the leaves
/// through a frontier, so proofs take O(log n) lookups even for large trees.
struct NodeMap(HashMap<(u32, u64), Hash>);

impl NodeMap {
    fn of(leaves: &[Hash]) -> NodeMap {
        let mut nodes = HashMap::new();
        let mut frontier = Frontier::new();
        for leaf in leaves {
            frontier
                .push(*leaf, |level, index, hash| {
                    nodes.insert((level, index), *hash);
                })
                .unwrap();
        }
        NodeMap(nodes)
    }
}

impl Subtrees for NodeMap {
    type Error = (u32, u64);

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, (u32, u64)> {
        self.0.get(&(level, index)).copied().ok_or((level, index))
    }
}

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

#[test]
fn every_inclusion_proof_in_every_tree_up_to_300_leaves_verifies_for_its_leaf_only() {
    let all = leaves(300);
    let nodes = NodeMap::of(&all);
    for size in 1..=300u64 {
        let root = merkle::root(&all[..size as usize]);
        for index in 0..size {
            let proof = inclusion_path(&nodes, index, size).unwrap();
            assert_eq!(proof.len(), inclusion_len(index, size));
            let leaf = all[index as usize];
            verify_inclusion(&leaf, index, size, &proof, &root)
                .unwrap_or_else(|e| panic!("leaf {index} of {size}: {e}"));
            // The same proof shows no other leaf, nor this leaf anywhere else.
            let other = all[((index + 1) % size) as usize];
            if size > 1 {
                assert!(verify_inclusion(&other, index, size, &proof, &root).is_err());
                assert!(verify_inclusion(&leaf, (index + 1) % size, size, &proof, &root).is_err());
            }
        }
    }
}

#[test]
fn every_consistency_proof_between_trees_up_to_130_leaves_verifies_and_tampering_fails() {
    let all = leaves(130);
    let nodes = NodeMap::of(&all);
    let roots: Vec<Hash> = (0..=130).map(|n| merkle::root(&all[..n])).collect();
    for new in 1..=130u64 {
        for old in 0..=new {
            let proof = consistency_path(&nodes, old, new).unwrap();
            assert_eq!(proof.len(), consistency_len(old, new));
            let (r1, r2) = (roots[old as usize], roots[new as usize]);
            verify_consistency(old, new, &r1, &r2, &proof)
                .unwrap_or_else(|e| panic!("{old} to {new}: {e}"));
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i].0[31] ^= 1;
                assert!(
                    verify_consistency(old, new, &r1, &r2, &bad).is_err(),
                    "{old} to {new} with hash {i} flipped"
                );
            }
            // A tree whose last leaf differs is not an extension.
            if old > 0 && old < new {
                let mut forged = all[..old as usize].to_vec();
                *forged.last_mut().unwrap() = leaf_hash(b"forged");
                let forged_root = merkle::root(&forged);
                assert!(verify_consistency(old, new, &forged_root, &r2, &proof).is_err());
            }
        }
    }
}

#[test]
fn proofs_from_stored_subtrees_equal_proofs_from_the_leaves_in_sampled_large_trees() {
    let all = leaves(20_000);
    let nodes = NodeMap::of(&all);
    // A fixed pseudo-random walk over sizes and indices (xorshift), the same every run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let mut frontier = Frontier::new();
    let mut roots = vec![frontier.root()];
    for leaf in &all {
        frontier.push(*leaf, |_, _, _| {}).unwrap();
        roots.push(frontier.root());
    }
    for _ in 0..300 {
        let size = 1 + next(all.len() as u64);
        let index = next(size);
        let proof = inclusion_path(&nodes, index, size).unwrap();
        verify_inclusion(
            &all[index as usize],
            index,
            size,
            &proof,
            &roots[size as usize],
        )
        .unwrap();
        let old = next(size + 1);
        let proof = consistency_path(&nodes, old, size).unwrap();
        verify_consistency(
            old,
            size,
            &roots[old as usize],
            &roots[size as usize],
            &proof,
        )
        .unwrap();
    }
    // And the in-memory leaf slice agrees with the stored subtrees.
    for (index, size) in [
        (0, 20_000),
        (12_345, 16_384),
        (19_999, 20_000),
        (4_095, 4_097),
    ] {
        assert_eq!(
            inclusion_path(&all[..], index, size).unwrap(),
            inclusion_path(&nodes, index, size).unwrap()
        );
    }
}

#[test]
fn a_node_hash_is_sha256_of_0x01_and_both_children() {
    let (l, r) = (leaf_hash(b"l"), leaf_hash(b"r"));
    let mut data = vec![1u8];
    data.extend_from_slice(&l.0);
    data.extend_from_slice(&r.0);
    use sha2::Digest;
    assert_eq!(
        node_hash(&l, &r).0,
        <[u8; 32]>::from(sha2::Sha256::digest(&data))
    );
    assert_eq!(merkle::root(&[l, r]), node_hash(&l, &r));
}
