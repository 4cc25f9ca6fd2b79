//! Signed checkpoints: their format, their keys, and what verifying a ledger against one catches
//! that verifying the ledger alone cannot.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{call, ledger_with, temp_ledger};
use grace_ledger::codec;
use grace_ledger::tables::{ENTRIES, HEAD, HEAD_KEY, NODES};
use grace_ledger::{
    Checkpoint, CheckpointError, Durability, Hash, Inconsistency, KeyError, Ledger, LedgerError,
    SignedCheckpoint, SigningKey, VerifierKey, generate_key,
};
use redb::ReadableTable;

fn key() -> SigningKey {
    SigningKey::from_seed("grace.example.com/ledger", &[42; 32]).unwrap()
}

/// A checkpoint of this origin for `tree_size` entries under a root of `root` bytes, signed by
/// [`key`].
fn signed_by_key(tree_size: u64, root: u8) -> SignedCheckpoint {
    Checkpoint {
        origin: "grace.example.com/ledger".into(),
        tree_size,
        root_hash: Hash([root; 32]),
        timestamp_millis: 1,
    }
    .sign(&key())
    .unwrap()
}

/// The reference key pair and note of Go's signed-note package (golang.org/x/mod/sumdb/note).
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIGNATURE: &str =
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";

#[test]
fn keys_and_signatures_match_the_go_signed_note_reference_byte_for_byte() {
    let key = SigningKey::from_str(GO_SKEY).unwrap();
    assert_eq!(key.name(), "PeterNeumann");
    assert_eq!(key.to_text(), GO_SKEY);
    assert_eq!(key.verifier().to_string(), GO_VKEY);
    assert_eq!(VerifierKey::from_str(GO_VKEY).unwrap(), *key.verifier());

    let mut blob = key.verifier().id().to_be_bytes().to_vec();
    blob.extend_from_slice(&key.sign(GO_TEXT.as_bytes()));
    assert_eq!(BASE64.encode(&blob), GO_SIGNATURE);
    assert!(key.verifier().verifies(GO_TEXT.as_bytes(), &blob[4..]));
}

#[test]
fn a_signed_checkpoint_is_a_c2sp_checkpoint_in_a_signed_note() {
    let checkpoint = Checkpoint {
        origin: "grace.example.com/ledger".into(),
        tree_size: 1024,
        root_hash: Hash([0xe1; 32]),
        timestamp_millis: 1_767_225_900_000,
    };
    let signed = checkpoint.sign(&key()).unwrap();
    let text = signed.to_string();
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines[0], "grace.example.com/ledger");
    assert_eq!(lines[1], "1024");
    assert_eq!(lines[2], BASE64.encode([0xe1; 32]));
    assert_eq!(lines[3], "timestamp 1767225900000");
    assert_eq!(lines[4], "");
    assert!(
        lines[5].starts_with("\u{2014} grace.example.com/ledger "),
        "{text}"
    );
    assert_eq!(lines[6], "", "the note ends with a newline");
    assert_eq!(lines.len(), 7);

    assert_eq!(signed.verify(key().verifier()).unwrap(), &checkpoint);
    assert_eq!(SignedCheckpoint::parse(&text).unwrap(), signed);
}

#[test]
fn a_checkpoint_the_ledger_signs_names_its_tree_head_and_verifies_with_the_key() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 9);
    let ledger = Ledger::open(&path, Durability::None).unwrap();

    let signed = ledger.sign_checkpoint(&key()).unwrap();
    let checkpoint = signed.verify(key().verifier()).unwrap();
    let head = ledger.tree_head().unwrap();
    assert_eq!(checkpoint.origin, "grace.example.com/ledger");
    assert_eq!(
        (checkpoint.tree_size, checkpoint.root_hash),
        (head.size, head.root)
    );
    assert!(checkpoint.timestamp_millis > 1_700_000_000_000);
    assert_eq!(ledger.verify_checkpoint(checkpoint).unwrap().entries, 9);
}

#[test]
fn a_checkpoint_altered_after_signing_does_not_verify() {
    let signed = signed_by_key(20, 7);
    let altered = signed.to_string().replacen("\n20\n", "\n15\n", 1);
    let err = SignedCheckpoint::parse(&altered)
        .unwrap()
        .verify(key().verifier())
        .unwrap_err();
    assert!(matches!(err, CheckpointError::BadSignature { .. }), "{err}");
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[test]
fn a_checkpoint_is_trusted_only_with_the_key_that_signed_it() {
    let signed = signed_by_key(3, 1);
    // Same name, another key: a different key id, so not this key's signature at all.
    let impostor = SigningKey::from_seed("grace.example.com/ledger", &[1; 32]).unwrap();
    let err = signed.verify(impostor.verifier()).unwrap_err();
    assert!(matches!(err, CheckpointError::NotSigned { .. }), "{err}");
}

#[test]
fn signature_lines_of_other_keys_are_ignored_as_witnesses_would_be() {
    let signed = signed_by_key(3, 1);
    let witness = format!(
        "{signed}\u{2014} witness.example.com {}\n",
        BASE64.encode([9u8; 68])
    );
    let parsed = SignedCheckpoint::parse(&witness).unwrap();
    assert_eq!(parsed.signatures().len(), 2);
    parsed.verify(key().verifier()).unwrap();
}

#[test]
fn malformed_checkpoints_are_refused_with_the_reason() {
    let root = BASE64.encode([3u8; 32]);
    let sig = format!("\u{2014} k {}\n", BASE64.encode([0u8; 68]));
    let cases = [
        (String::new(), "does not end with a newline"),
        (format!("o\n1\n{root}\ntimestamp 1\n"), "no blank line"),
        (
            format!("o\n1\n{root}\ntimestamp 1\n\n"),
            "no signature lines",
        ),
        (format!("o\n01\n{root}\ntimestamp 1\n\n{sig}"), "line 2"),
        (format!("o\n-1\n{root}\ntimestamp 1\n\n{sig}"), "line 2"),
        (
            format!("o\n18446744073709551616\n{root}\ntimestamp 1\n\n{sig}"),
            "line 2",
        ),
        (format!("o\n1\nAAAA\ntimestamp 1\n\n{sig}"), "line 3"),
        (format!("o\n1\n{root}\ntime 1\n\n{sig}"), "line 4"),
        (format!("o\n1\n{root}\n\n{sig}"), "3 lines"),
        (
            format!("\n1\n{root}\ntimestamp 1\n\n{sig}"),
            "origin is empty",
        ),
        (
            format!("o\n1\n{root}\ntimestamp 1\n\n- k AAAA\n"),
            "em dash",
        ),
        (
            format!("o\n1\n{root}\ntimestamp 1\n\n\u{2014} k+1 AAAAAAAA\n"),
            "`+`",
        ),
        (
            format!("o\n1\n{root}\ntimestamp 1\n\n\u{2014} k AAAA\n"),
            "no signature",
        ),
        (
            format!("o\r\n1\n{root}\ntimestamp 1\n\n{sig}"),
            "control character",
        ),
    ];
    for (text, reason) in cases {
        match SignedCheckpoint::parse(&text) {
            Err(CheckpointError::Malformed { reason: got }) => {
                assert!(got.contains(reason), "{text:?}: `{got}` lacks `{reason}`")
            }
            other => panic!("{text:?} gave {other:?}"),
        }
    }
}

#[test]
fn verifying_against_a_checkpoint_accepts_the_ledger_and_its_extensions() {
    let (_dir, path) = temp_ledger();
    ledger_with(&path, 12);
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    let signed = ledger.sign_checkpoint(&key()).unwrap();
    for i in 0..7 {
        ledger.append_blocking(call("run-2", i)).unwrap();
    }
    let checkpoint = signed.verify(key().verifier()).unwrap();
    let report = ledger.verify_checkpoint(checkpoint).unwrap();
    assert_eq!(report.entries, 19);

    // A client holding only the checkpoint checks a proof of the newer tree against it.
    let proof = ledger
        .prove_consistency(checkpoint.tree_size, None)
        .unwrap();
    proof.verify_from(checkpoint).unwrap();
    assert_eq!(proof.new_root, report.root);
    let inclusion = ledger.prove_inclusion(5, Some(12)).unwrap();
    inclusion.verify_against(checkpoint).unwrap();
}

/// A ledger of 20 entries at a fresh path, and the checkpoint it signed then.
fn ledger_signed_at_20() -> (tempfile::TempDir, std::path::PathBuf, SignedCheckpoint) {
    let (dir, path) = temp_ledger();
    ledger_with(&path, 20);
    let signed = {
        let ledger = Ledger::open(&path, Durability::None).unwrap();
        ledger.sign_checkpoint(&key()).unwrap()
    };
    (dir, path, signed)
}

/// Opens the ledger at `path`, whose chain alone must verify with `entries` entries, and
/// returns it with what verifying it against `signed` says (an error).
fn refused_by_checkpoint(
    path: &std::path::Path,
    entries: u64,
    signed: &SignedCheckpoint,
) -> (Ledger, LedgerError) {
    let ledger = Ledger::open(path, Durability::None).unwrap();
    assert_eq!(
        ledger.verify().unwrap().entries,
        entries,
        "the chain alone looks fine"
    );
    let err = ledger
        .verify_checkpoint(signed.verify(key().verifier()).unwrap())
        .unwrap_err();
    (ledger, err)
}

/// Removes entries `from..` and the tree nodes over them, and rewrites the head record to end
/// before them: a truncation with every internal record made to agree.
fn truncate_consistently(path: &std::path::Path, from: u64) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut entries = txn.open_table(ENTRIES).unwrap();
        let last = codec::decode(entries.get(from - 1).unwrap().unwrap().value()).unwrap();
        entries.retain(|seq, _| seq < from).unwrap();
        let mut head = txn.open_table(HEAD).unwrap();
        head.insert(HEAD_KEY, (last.seq, last.hash.0, last.seq))
            .unwrap();
        let mut nodes = txn.open_table(NODES).unwrap();
        nodes
            .retain(|(level, index), _| ((index + 1) << level) < from)
            .unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn a_truncated_tail_that_the_ledger_alone_cannot_see_is_caught_by_an_older_checkpoint() {
    let (_dir, path, signed) = ledger_signed_at_20();
    truncate_consistently(&path, 16);

    let (ledger, err) = refused_by_checkpoint(&path, 15, &signed);
    assert!(
        matches!(
            err,
            LedgerError::Inconsistent(Inconsistency::Truncated {
                checkpoint_size: 20,
                ledger_size: 15
            })
        ),
        "{err}"
    );
    assert!(err.is_tampering());
    assert_eq!(
        err.to_string(),
        "ledger does not match the checkpoint: the checkpoint covers 20 entries but the ledger holds 15: its tail was truncated"
    );
    // Nor will the ledger sign a checkpoint that contradicts the one it signed before.
    assert!(matches!(
        ledger.sign_checkpoint(&key()),
        Err(LedgerError::Inconsistent(Inconsistency::Truncated { .. }))
    ));
}

#[test]
fn history_rewritten_with_a_consistent_chain_and_tree_is_caught_by_an_older_checkpoint() {
    let (_dir, path, signed) = ledger_signed_at_20();
    // An attacker who knows the scheme rewrites entry 7, re-chains every entry after it,
    // rewrites the head record and drops the tree, which the ledger rebuilds when opened.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut entries = txn.open_table(ENTRIES).unwrap();
            let mut prev = Hash::ZERO;
            for seq in 1..=20 {
                let mut entry = codec::decode(entries.get(seq).unwrap().unwrap().value()).unwrap();
                if seq == 7 {
                    entry.decision = grace_ledger::Decision::allowed("nothing to see here");
                }
                entry.prev_hash = prev;
                entry.hash = codec::hash_body(&codec::encode_body(&entry).unwrap());
                prev = entry.hash;
                entries
                    .insert(seq, codec::encode(&entry).unwrap().as_slice())
                    .unwrap();
            }
            txn.open_table(HEAD)
                .unwrap()
                .insert(HEAD_KEY, (20, prev.0, 20))
                .unwrap();
        }
        txn.delete_table(NODES).unwrap();
        txn.commit().unwrap();
    }

    let (_, err) = refused_by_checkpoint(&path, 20, &signed);
    assert!(
        matches!(
            err,
            LedgerError::Inconsistent(Inconsistency::Rewritten { tree_size: 20, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("entries were rewritten"), "{err}");
}

#[test]
fn the_ledger_keeps_its_latest_checkpoints_and_hands_out_the_last() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    assert!(ledger.latest_checkpoint().unwrap().is_none());
    let empty = ledger.sign_checkpoint(&key()).unwrap();
    assert_eq!(empty.unverified().tree_size, 0);
    assert_eq!(
        empty.unverified().root_hash,
        grace_ledger::merkle::empty_root()
    );
    for i in 0..70 {
        ledger.append_blocking(call("run-1", i)).unwrap();
        ledger.sign_checkpoint(&key()).unwrap();
    }
    let kept = ledger.checkpoints().unwrap();
    assert_eq!(kept.len(), grace_ledger::tables::CHECKPOINTS_KEPT);
    assert_eq!(kept.first().unwrap().unverified().tree_size, 7);
    let latest = ledger.latest_checkpoint().unwrap().unwrap();
    assert_eq!(latest, *kept.last().unwrap());
    assert_eq!(latest.verify(key().verifier()).unwrap().tree_size, 70);
}

#[test]
fn a_generated_key_is_saved_privately_loads_back_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.key");
    let key = generate_key("grace.example.com/ledger").unwrap();
    key.save(&path).unwrap();

    let loaded = SigningKey::load(&path).unwrap();
    assert_eq!(loaded.verifier(), key.verifier());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("PRIVATE+KEY+grace.example.com/ledger+"));
    assert!(text.ends_with('\n'));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let other = generate_key("grace.example.com/ledger").unwrap();
    assert_ne!(other.verifier(), key.verifier(), "keys are random");
    assert!(matches!(other.save(&path), Err(KeyError::Write { .. })));
    assert_eq!(SigningKey::load(&path).unwrap().verifier(), key.verifier());

    let public = dir.path().join("ledger.pub");
    key.verifier().save(&public).unwrap();
    assert_eq!(VerifierKey::load(&public).unwrap(), *key.verifier());
}

#[test]
fn key_names_follow_the_signed_note_rules() {
    for bad in ["", "has space", "has+plus", "tab\there", "new\nline"] {
        assert!(
            matches!(generate_key(bad), Err(KeyError::InvalidName { .. })),
            "{bad:?}"
        );
    }
    generate_key("grace.example.com/ledger-1").unwrap();
}

#[test]
fn malformed_keys_are_refused_without_echoing_the_secret() {
    let good = key().to_text();
    let secret = good.rsplit('+').next().unwrap().to_owned();
    let wrong_id = good.replace(&format!("+{:08x}+", key().verifier().id()), "+00000000+");
    for text in [
        good.replacen("PRIVATE+KEY+", "PRIVATE-KEY+", 1),
        wrong_id,
        format!("{good}AA"),
        good.replacen("+A", "+B", 1),
    ] {
        let err = SigningKey::from_str(&text).unwrap_err();
        assert!(matches!(err, KeyError::Malformed { .. }), "{err}");
        assert!(!err.to_string().contains(&secret), "{err}");
        assert!(!format!("{err:?}").contains(&secret), "{err:?}");
    }
    assert!(!format!("{:?}", key()).contains(&secret));
    assert!(
        VerifierKey::from_str(&good).is_err(),
        "a secret key is no verifier key"
    );
}
