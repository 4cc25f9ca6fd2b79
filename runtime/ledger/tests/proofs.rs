//! The ledger's Merkle tree: maintained with every append, surviving reopening, and the proofs
//! it gives verifying with nothing but a root.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use common::{call, ledger_with, temp_ledger};
use grace_ledger::merkle::{self, entry_leaf, verify_consistency, verify_inclusion};
use grace_ledger::tables::NODES;
use grace_ledger::{Durability, Hash, Ledger, LedgerError, ProofError, TreeHead};

/// The root of the tree over the ledger's entries, straight from the RFC definition.
fn root_of_entries(ledger: &Ledger, n: u64) -> Hash {
    let leaves: Vec<Hash> = ledger
        .entries(1, n as usize)
        .unwrap()
        .iter()
        .map(|e| entry_leaf(&e.hash))
        .collect();
    assert_eq!(leaves.len() as u64, n);
    merkle::root(&leaves)
}

#[test]
fn the_tree_head_after_each_append_is_the_root_of_the_entries_so_far() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    assert_eq!(
        ledger.tree_head().unwrap(),
        TreeHead {
            size: 0,
            root: merkle::empty_root()
        }
    );
    for i in 0..40 {
        ledger.append_blocking(call("run-1", i)).unwrap();
        let head = ledger.tree_head().unwrap();
        assert_eq!(head.size, i + 1);
        assert_eq!(
            head.root,
            root_of_entries(&ledger, i + 1),
            "after {} entries",
            i + 1
        );
    }
    assert_eq!(
        ledger.verify().unwrap().root,
        ledger.tree_head().unwrap().root
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_committed_together_in_groups_form_the_same_tree_as_one_by_one() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move { ledger.append(call("run-1", i)).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(ledger.stats().largest_batch > 1, "appends were grouped");
    assert_eq!(
        ledger.tree_head().unwrap().root,
        root_of_entries(&ledger, 300)
    );
    ledger.verify().unwrap();
}

#[test]
fn every_entry_has_an_inclusion_proof_in_every_tree_that_holds_it() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 33);
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    let entries = ledger.entries(1, 100).unwrap();
    for size in 1..=33 {
        let root = ledger.root_at(size).unwrap();
        assert_eq!(root, root_of_entries(&ledger, size));
        for entry in &entries[..size as usize] {
            let path = ledger.inclusion_proof(entry.seq, size).unwrap();
            verify_inclusion(&entry_leaf(&entry.hash), entry.seq - 1, size, &path, &root)
                .unwrap_or_else(|e| panic!("entry {} in tree {size}: {e}", entry.seq));
        }
    }
}

#[test]
fn an_inclusion_proof_carries_what_a_client_needs_to_check_it() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 21);
    let ledger = Ledger::open(&path, Durability::None).unwrap();

    let proof = ledger.prove_inclusion(13, None).unwrap();
    let entry = ledger.entries(13, 1).unwrap().remove(0);
    assert_eq!((proof.seq, proof.tree_size), (13, 21));
    assert_eq!(proof.entry_hash, entry.hash);
    assert_eq!(proof.root_hash, ledger.tree_head().unwrap().root);
    proof.verify(&proof.root_hash).unwrap();

    // Against another root it fails, and for an older tree it is another proof.
    assert!(matches!(
        proof.verify(&ledger.root_at(20).unwrap()),
        Err(ProofError::RootMismatch { .. })
    ));
    let older = ledger.prove_inclusion(13, Some(16)).unwrap();
    older.verify(&ledger.root_at(16).unwrap()).unwrap();

    // It travels as JSON with hex hashes.
    let json = serde_json::to_value(&proof).unwrap();
    assert_eq!(json["entry_hash"], entry.hash.to_string());
    let back: grace_ledger::InclusionProof = serde_json::from_value(json).unwrap();
    assert_eq!(back, proof);
}

#[test]
fn consistency_proofs_between_every_pair_of_sizes_verify() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 24);
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    for new in 0..=24 {
        for old in 0..=new {
            let proof = ledger.consistency_proof(old, new).unwrap();
            let (r1, r2) = (ledger.root_at(old).unwrap(), ledger.root_at(new).unwrap());
            verify_consistency(old, new, &r1, &r2, &proof)
                .unwrap_or_else(|e| panic!("{old} to {new}: {e}"));
        }
    }
    let bundle = ledger.prove_consistency(5, None).unwrap();
    assert_eq!((bundle.old_size, bundle.new_size), (5, 24));
    bundle.verify().unwrap();
}

#[test]
fn proofs_outside_the_ledger_are_refused_with_what_was_asked() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 5);
    let ledger = Ledger::open(&path, Durability::None).unwrap();

    assert!(matches!(
        ledger.inclusion_proof(6, 5),
        Err(LedgerError::NotInTree {
            seq: 6,
            tree_size: 5
        })
    ));
    assert!(matches!(
        ledger.inclusion_proof(0, 5),
        Err(LedgerError::NotInTree { seq: 0, .. })
    ));
    let err = ledger.inclusion_proof(1, 9).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the ledger holds 5 entries, fewer than the tree size 9 asked for"
    );
    assert!(matches!(
        ledger.consistency_proof(4, 3),
        Err(LedgerError::SizesOutOfOrder {
            old_size: 4,
            new_size: 3
        })
    ));
    assert!(matches!(
        ledger.root_at(6),
        Err(LedgerError::BeyondHead {
            tree_size: 6,
            size: 5
        })
    ));
}

#[test]
fn the_tree_survives_reopening_and_later_appends_extend_it() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 11);
    let first = {
        let ledger = Ledger::open(&path, Durability::None).unwrap();
        ledger.tree_head().unwrap()
    };
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    assert_eq!(ledger.tree_head().unwrap(), first);
    for i in 0..6 {
        ledger.append_blocking(call("run-9", i)).unwrap();
    }
    assert_eq!(ledger.root_at(11).unwrap(), first.root);
    assert_eq!(
        ledger.tree_head().unwrap().root,
        root_of_entries(&ledger, 17)
    );
    let proof = ledger.consistency_proof(11, 17).unwrap();
    verify_consistency(11, 17, &first.root, &ledger.root_at(17).unwrap(), &proof).unwrap();
    ledger.verify().unwrap();
}

#[test]
fn a_ledger_written_before_the_tree_existed_gets_its_tree_when_opened() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 37);
    let expected = {
        let ledger = Ledger::open(&path, Durability::None).unwrap();
        ledger.tree_head().unwrap()
    };
    // What the previous version of the ledger wrote: entries and head, no node table.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        assert!(txn.delete_table(NODES).unwrap());
        txn.commit().unwrap();
    }

    let ledger = Ledger::open(&path, Durability::None).unwrap();
    assert_eq!(ledger.tree_head().unwrap(), expected);
    ledger.append_blocking(call("run-1", 99)).unwrap();
    assert_eq!(ledger.verify().unwrap().entries, 38);
    assert_eq!(
        ledger.tree_head().unwrap().root,
        root_of_entries(&ledger, 38)
    );
}

#[test]
fn a_tree_that_cannot_be_rebuilt_refuses_appends_instead_of_leaving_entries_out() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 8);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(NODES).unwrap();
        txn.open_table(grace_ledger::tables::ENTRIES)
            .unwrap()
            .remove(4)
            .unwrap();
        txn.commit().unwrap();
    }

    // It still opens, so that it can be verified.
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    let err = ledger.append_blocking(call("run-1", 0)).unwrap_err();
    assert!(
        matches!(&err, LedgerError::TreeUnavailable { reason } if reason.contains("entry 4 is missing")),
        "{err}"
    );
    assert_eq!(
        ledger.verify().unwrap_err().tampering().map(|t| t.seq),
        Some(4)
    );
}
