//! Tampering with the database file behind the ledger's back, and what verification says.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use common::{call, ledger_with, stored, tamper, tampering, temp_ledger};
use grace_ledger::codec;
use grace_ledger::tables::{ENTRIES, HEAD, HEAD_KEY, NODES};
use grace_ledger::{Durability, Ledger, LedgerError, Problem, Tampering};
use redb::ReadableTable;

/// Rewrites entry `seq` with `change` applied to its decoded contents and a correct hash for
/// the new contents, as an attacker who knows the scheme would.
fn rewrite_and_rehash(
    table: &mut redb::Table<'_, u64, &'static [u8]>,
    seq: u64,
    change: impl FnOnce(&mut grace_ledger::Entry),
) {
    let mut entry = codec::decode(&stored(table, seq)).expect("a valid entry");
    change(&mut entry);
    let body = codec::encode_body(&entry).expect("encodable");
    entry.hash = codec::hash_body(&body);
    let bytes = codec::encode(&entry).expect("encodable");
    table.insert(seq, bytes.as_slice()).expect("rewrite entry");
}

#[test]
fn a_clean_ledger_verifies() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 20);
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    assert_eq!(ledger.verify().unwrap().entries, 20);
}

#[test]
fn changing_one_byte_of_an_entry_is_reported_as_modified() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 20);
    tamper(&path, |entries| {
        let mut bytes = stored(entries, 7);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        entries.insert(7, bytes.as_slice()).unwrap();
    });

    let found = tampering(&path);
    assert_eq!(
        found,
        Tampering {
            seq: 7,
            problem: Problem::Modified
        }
    );
    assert_eq!(
        found.to_string(),
        "entry 7 was modified: its hash does not match its contents"
    );
}

#[test]
fn changing_one_byte_of_a_stored_hash_is_reported_as_modified() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 5);
    tamper(&path, |entries| {
        let mut bytes = stored(entries, 5);
        *bytes.last_mut().unwrap() ^= 0x80;
        entries.insert(5, bytes.as_slice()).unwrap();
    });

    assert_eq!(tampering(&path).problem, Problem::Modified);
}

#[test]
fn deleting_an_entry_in_the_middle_is_reported_as_missing() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 20);
    tamper(&path, |entries| {
        entries.remove(9).unwrap().unwrap();
    });

    let found = tampering(&path);
    assert_eq!(
        found,
        Tampering {
            seq: 9,
            problem: Problem::Missing
        }
    );
    assert!(
        found.to_string().starts_with("entry 9 is missing"),
        "{found}"
    );
}

#[test]
fn swapping_two_entries_is_reported_as_reordered_at_the_first() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 20);
    tamper(&path, |entries| {
        let (fifth, twelfth) = (stored(entries, 5), stored(entries, 12));
        entries.insert(5, twelfth.as_slice()).unwrap();
        entries.insert(12, fifth.as_slice()).unwrap();
    });

    let found = tampering(&path);
    assert_eq!(
        found,
        Tampering {
            seq: 5,
            problem: Problem::Reordered { found_seq: 12 }
        }
    );
    assert!(
        found.to_string().contains("entry 5 is out of place"),
        "{found}"
    );
}

#[test]
fn deleting_the_last_entry_is_reported_as_a_head_mismatch() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 20);
    tamper(&path, |entries| {
        entries.remove(20).unwrap().unwrap();
    });

    let found = tampering(&path);
    assert_eq!(
        found,
        Tampering {
            seq: 20,
            problem: Problem::HeadMismatch {
                head_seq: 20,
                last_seq: 19
            }
        }
    );
    assert!(found.to_string().contains("truncated"), "{found}");
}

#[test]
fn rewriting_an_entry_with_a_recomputed_hash_breaks_the_next_link() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 20);
    tamper(&path, |entries| {
        rewrite_and_rehash(entries, 10, |e| e.function = "set-desired-capacitz".into());
    });

    let found = tampering(&path);
    assert_eq!(
        found,
        Tampering {
            seq: 11,
            problem: Problem::BrokenLink
        }
    );
    assert!(
        found.to_string().contains("entry 11 has a broken link"),
        "{found}"
    );
}

#[test]
fn rewriting_the_last_entry_with_a_recomputed_hash_is_caught_by_the_head_record() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 20);
    tamper(&path, |entries| {
        rewrite_and_rehash(entries, 20, |e| {
            e.result = serde_json::json!({ "ok": "forged" })
        });
    });

    assert_eq!(
        tampering(&path),
        Tampering {
            seq: 20,
            problem: Problem::HeadMismatch {
                head_seq: 20,
                last_seq: 20
            }
        }
    );
}

#[test]
fn an_entry_appended_outside_the_ledger_is_reported_and_never_overwritten() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 20);
    let mut forged_bytes = Vec::new();
    tamper(&path, |entries| {
        // A well-formed entry 21, linked to entry 20: only the head record gives it away.
        let mut forged = codec::decode(&stored(entries, 20)).unwrap();
        forged.prev_hash = forged.hash;
        forged.seq = 21;
        forged.hash = codec::hash_body(&codec::encode_body(&forged).unwrap());
        forged_bytes = codec::encode(&forged).unwrap();
        entries.insert(21, forged_bytes.as_slice()).unwrap();
    });

    assert_eq!(
        tampering(&path),
        Tampering {
            seq: 21,
            problem: Problem::HeadMismatch {
                head_seq: 20,
                last_seq: 21
            }
        }
    );
    let ledger = Ledger::open(&path, Durability::Immediate).unwrap();
    let err = ledger.append_blocking(call("run-1", 99)).unwrap_err();
    assert!(
        matches!(err, LedgerError::AlreadyExists { seq: 21 }),
        "{err:?}"
    );
    assert_eq!(ledger.head().unwrap().map(|h| h.seq), Some(20));
    let entry_21 = ledger.entries(21, 1).unwrap().remove(0);
    assert_eq!(codec::encode(&entry_21).unwrap(), forged_bytes);
}

#[test]
fn a_correctly_hashed_entry_that_does_not_decode_is_reported_as_undecodable() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 5);
    tamper(&path, |entries| {
        let body = b"\x09not an entry".to_vec();
        let mut bytes = body.clone();
        bytes.extend_from_slice(&codec::hash_body(&body).0);
        entries.insert(3, bytes.as_slice()).unwrap();
    });

    let found = tampering(&path);
    assert_eq!(found.seq, 3);
    assert!(
        matches!(found.problem, Problem::Undecodable { .. }),
        "{found:?}"
    );
}

#[test]
fn an_entry_stored_under_seq_zero_is_reported() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 5);
    tamper(&path, |entries| {
        let first = stored(entries, 1);
        entries.insert(0, first.as_slice()).unwrap();
    });

    assert_eq!(
        tampering(&path),
        Tampering {
            seq: 0,
            problem: Problem::Unexpected
        }
    );
}

#[test]
fn verification_reports_the_first_problem_in_sequence_order() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 20);
    tamper(&path, |entries| {
        let mut bytes = stored(entries, 15);
        bytes[70] ^= 0xff;
        entries.insert(15, bytes.as_slice()).unwrap();
        entries.remove(8).unwrap().unwrap();
    });

    assert_eq!(
        tampering(&path),
        Tampering {
            seq: 8,
            problem: Problem::Missing
        }
    );
}

#[test]
fn tampering_is_an_error_whose_message_names_the_first_bad_entry() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 3);
    tamper(&path, |entries| {
        entries.remove(2).unwrap().unwrap();
    });

    let err = Ledger::open(&path, Durability::None)
        .unwrap()
        .verify()
        .unwrap_err();
    assert_eq!(err.tampering().map(|t| t.seq), Some(2));
    assert_eq!(
        err.to_string(),
        "ledger was tampered with: entry 2 is missing: it was removed while later entries remain"
    );
}

#[test]
fn a_failed_batch_does_not_advance_the_chain() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 20);
    tamper(&path, |entries| {
        let copy = stored(entries, 3);
        entries.insert(21, copy.as_slice()).unwrap();
    });
    let ledger = Ledger::open(&path, Durability::Immediate).unwrap();
    assert!(matches!(
        ledger.append_blocking(call("run-1", 0)),
        Err(LedgerError::AlreadyExists { seq: 21 })
    ));

    // Clear the way through the shared database handle; the next append takes 21 after all.
    let db = ledger.database();
    let txn = db.begin_write().unwrap();
    txn.open_table(ENTRIES).unwrap().remove(21).unwrap();
    txn.commit().unwrap();
    let receipt = ledger.append_blocking(call("run-1", 1)).unwrap();

    assert_eq!(receipt.seq, 21);
    assert_eq!(ledger.verify().unwrap().entries, 21);
}

#[test]
fn a_head_at_the_last_sequence_number_refuses_appends_instead_of_wrapping() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 2);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(HEAD)
            .unwrap()
            .insert(HEAD_KEY, (u64::MAX, [0u8; 32], u64::MAX))
            .unwrap();
        txn.commit().unwrap();
    }
    let ledger = Ledger::open(&path, Durability::None).unwrap();

    let err = ledger.append_blocking(call("run-1", 0)).unwrap_err();
    assert!(
        matches!(err, LedgerError::Exhausted { seq: u64::MAX }),
        "{err:?}"
    );
    assert_eq!(
        ledger.verify().unwrap_err().tampering().map(|t| t.seq),
        Some(3)
    );
}

/// Opens the ledger file raw and changes its Merkle tree node table with `change`, committing.
fn tamper_tree(
    path: &std::path::Path,
    change: impl FnOnce(&mut redb::Table<'_, (u8, u64), [u8; 32]>),
) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut nodes = txn.open_table(NODES).unwrap();
        change(&mut nodes);
    }
    txn.commit().unwrap();
}

#[test]
fn changing_a_stored_tree_node_over_intact_entries_is_reported_with_the_entries_it_covers() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 40);
    tamper_tree(&path, |nodes| {
        nodes.insert((4, 1), [0xaa; 32]).unwrap();
    });

    let found = tampering(&path);
    assert_eq!(
        found,
        Tampering {
            seq: 17,
            problem: Problem::TreeNodeModified { level: 4, index: 1 }
        }
    );
    assert_eq!(
        found.to_string(),
        "the Merkle tree node at level 4, index 1 over entries 17 to 32 was modified: the entries are intact but the node is not their hash"
    );
}

#[test]
fn changing_the_node_over_the_whole_tree_is_reported_even_though_every_entry_verifies() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 32);
    tamper_tree(&path, |nodes| {
        let mut root = nodes.get((5, 0)).unwrap().unwrap().value();
        root[0] ^= 1;
        nodes.insert((5, 0), root).unwrap();
    });

    assert_eq!(
        tampering(&path),
        Tampering {
            seq: 1,
            problem: Problem::TreeNodeModified { level: 5, index: 0 }
        }
    );
}

#[test]
fn deleting_a_stored_tree_node_is_reported_as_missing() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 40);
    tamper_tree(&path, |nodes| {
        nodes.remove((4, 0)).unwrap().unwrap();
    });

    let found = tampering(&path);
    assert_eq!(
        found,
        Tampering {
            seq: 1,
            problem: Problem::TreeNodeMissing { level: 4, index: 0 }
        }
    );
    assert!(
        found.to_string().contains("entries 1 to 16 is missing"),
        "{found}"
    );
    // Proofs that need it say so rather than prove something else.
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    assert!(matches!(
        ledger.inclusion_proof(20, 40),
        Err(LedgerError::MissingNode { level: 4, index: 0 })
    ));
}

#[test]
fn a_tree_node_past_the_end_of_the_ledger_or_below_the_stored_levels_is_reported() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 40);
    tamper_tree(&path, |nodes| {
        // Level 4, index 2 covers entries 33 to 48, which do not all exist.
        nodes.insert((4, 2), [0x11; 32]).unwrap();
    });
    let found = tampering(&path);
    assert_eq!(
        found,
        Tampering {
            seq: 33,
            problem: Problem::TreeNodeExtra { level: 4, index: 2 }
        }
    );
    assert!(
        found.to_string().contains("written outside the ledger"),
        "{found}"
    );

    let (_dir, path) = temp_ledger();
    ledger_with(&path, 40);
    tamper_tree(&path, |nodes| {
        nodes.insert((0, 3), [0x11; 32]).unwrap();
    });
    assert_eq!(
        tampering(&path).problem,
        Problem::TreeNodeExtra { level: 0, index: 3 }
    );
}

#[test]
fn a_rewritten_entry_is_reported_as_the_entry_not_as_its_tree_leaf() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 8);
    tamper(&path, |entries| {
        rewrite_and_rehash(entries, 4, |e| e.run_id = "run-forged".into());
    });

    // Its leaf no longer matches either, but what is wrong is the entry: the link after it.
    assert_eq!(
        tampering(&path),
        Tampering {
            seq: 5,
            problem: Problem::BrokenLink
        }
    );
}
