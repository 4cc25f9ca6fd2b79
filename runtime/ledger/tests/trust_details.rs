//! Encoding version 2: ledger entries that carry the trust core's decision details, next to the
//! version 1 entries recorded before (and without) them.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use common::{call, tamper, tampering, temp_ledger};
use grace_ledger::codec::{self, DecodeError, EncodeError, MAX_JSON_DEPTH};
use grace_ledger::{
    Decision, Durability, Entry, Hash, Ledger, LedgerError, NewEntry, Problem, SigningKey,
    generate_key,
};
use serde_json::{Value, json};

/// The golden entry's stored bytes as version 1, written by the encoder before version 2
/// existed: entries without trust details must keep exactly these bytes (and so their hash).
const GOLDEN_V1: &str = concat!(
    "01000000000000000307070707070707070707070707070707070707070707070707070707070707",
    "070000018bcfe5687b000000000000002a0000000872756e2d306633630000001172657374617274",
    "2d756e6865616c7468790000000f7368613235363a39663966396639660000000a636f6e7461696e",
    "65727300000007726573746172740000001a7b22666f726365223a66616c73652c226964223a2263",
    "2d31227d00000000216772616e7420636f6e7461696e6572732e72657374617274206f6e2060632d",
    "2a600000000b7b226f6b223a6e756c6c7dc5fbc180458342338c4907e370810018cb0590d4c6552a",
    "2198c3d248990ebc26",
);

/// The golden entry's stored bytes with [`golden_trust`]: version 2.
const GOLDEN_V2: &str = concat!(
    "02000000000000000307070707070707070707070707070707070707070707070707070707070707",
    "070000018bcfe5687b000000000000002a0000000872756e2d306633630000001172657374617274",
    "2d756e6865616c7468790000000f7368613235363a39663966396639660000000a636f6e7461696e",
    "65727300000007726573746172740000001a7b22666f726365223a66616c73652c226964223a2263",
    "2d31227d00000000216772616e7420636f6e7461696e6572732e72657374617274206f6e2060632d",
    "2a600000004a7b22617070726f76616c223a7b226279223a22616c696365227d2c227269736b223a",
    "7b22666163746f7273223a5b22626c6173742d726164697573225d2c2273636f7265223a34327d7d",
    "0000000b7b226f6b223a6e756c6c7d2196e745ba93a77194c0ec25e6f6a7a8df4d4425173e794d38",
    "4e240c04ff42a2",
);

fn golden_trust() -> Value {
    json!({
        "risk": { "score": 42, "factors": ["blast-radius"] },
        "approval": { "by": "alice" },
    })
}

fn golden(trust: Option<Value>) -> Entry {
    let mut decision = Decision::allowed("grant containers.restart on `c-*`");
    if let Some(trust) = trust {
        decision = decision.with_trust(trust);
    }
    let mut entry = Entry {
        seq: 3,
        recorded_millis: 1_700_000_000_123,
        run_id: "run-0f3c".into(),
        playbook: "restart-unhealthy".into(),
        digest: format!("sha256:{}", "9f".repeat(4)),
        interface: "containers".into(),
        function: "restart".into(),
        args: json!({ "id": "c-1", "force": false }),
        decision,
        result: json!({ "ok": null }),
        at_millis: 42,
        prev_hash: Hash([7; 32]),
        hash: Hash::ZERO,
    };
    // Entries that cannot be encoded keep a zero hash: the tests refusing them need them still.
    if let Ok(body) = codec::encode_body(&entry) {
        entry.hash = codec::hash_body(&body);
    }
    entry
}

/// A stored version 2 entry with the trust JSON text replaced by `text` (hash recomputed, so only
/// the decoder's strictness can refuse it).
fn v2_with_trust_text(text: &[u8]) -> Vec<u8> {
    let entry = golden(Some(golden_trust()));
    let canonical = codec::canonical_json(&golden_trust()).unwrap();
    let body = codec::encode_body(&entry).unwrap();
    let at = find(&body, canonical.as_bytes());
    let mut forged = body[..at - 4].to_vec();
    forged.extend_from_slice(&u32::try_from(text.len()).unwrap().to_be_bytes());
    forged.extend_from_slice(text);
    forged.extend_from_slice(&body[at + canonical.len()..]);
    let hash = codec::hash_body(&forged);
    forged.extend_from_slice(&hash.0);
    forged
}

fn with_trust(i: u64, trust: Value) -> NewEntry {
    let mut entry = call("run-mixed", i);
    entry.decision = entry.decision.with_trust(trust);
    entry
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in the encoding")
}

#[test]
fn an_entry_without_trust_details_keeps_the_version_1_bytes_written_before_version_2() {
    let entry = golden(None);
    let bytes = codec::encode(&entry).unwrap();
    assert_eq!(hex::encode(&bytes), GOLDEN_V1);
    assert_eq!(bytes[0], codec::VERSION_1);
    assert_eq!(codec::decode(&bytes).unwrap(), entry);
}

#[test]
fn an_entry_with_trust_details_is_version_2_and_matches_its_golden_bytes() {
    let entry = golden(Some(golden_trust()));
    let bytes = codec::encode(&entry).unwrap();
    assert_eq!(hex::encode(&bytes), GOLDEN_V2);
    assert_eq!(codec::decode(&bytes).unwrap(), entry);
}

#[test]
fn version_2_is_version_1_with_the_trust_json_inserted_after_the_reason() {
    let v1 = codec::encode_body(&golden(None)).unwrap();
    let v2 = codec::encode_body(&golden(Some(golden_trust()))).unwrap();
    let trust = codec::canonical_json(&golden_trust()).unwrap();
    let result = codec::canonical_json(&json!({ "ok": null })).unwrap();
    // `result` is last: its length prefix and text end the body.
    let split = v1.len() - (4 + result.len());

    let mut expected = v1[..split].to_vec();
    expected[0] = codec::VERSION_2;
    expected.extend_from_slice(&u32::try_from(trust.len()).unwrap().to_be_bytes());
    expected.extend_from_slice(trust.as_bytes());
    expected.extend_from_slice(&v1[split..]);
    assert_eq!(v2, expected);
}

#[test]
fn trust_details_round_trip_in_canonical_form_whatever_their_key_order() {
    let mut map = serde_json::Map::new();
    for key in ["z", "approval", "é", "A"] {
        map.insert(key.to_owned(), json!({ "b": [1, 2.5, null], "a": "x\ny" }));
    }
    let entry = golden(Some(Value::Object(map)));
    let bytes = codec::encode(&entry).unwrap();
    assert_eq!(bytes[0], codec::VERSION_2);
    assert_eq!(codec::decode(&bytes).unwrap(), entry);

    let empty = golden(Some(json!({})));
    let bytes = codec::encode(&empty).unwrap();
    assert_eq!(bytes[0], codec::VERSION_2);
    assert_eq!(codec::decode(&bytes).unwrap(), empty);
}

#[test]
fn trust_details_that_are_not_an_object_cannot_be_encoded() {
    for trust in [
        json!(null),
        json!(42),
        json!("high"),
        json!([1]),
        json!(true),
    ] {
        assert_eq!(
            codec::encode(&golden(Some(trust.clone()))),
            Err(EncodeError::NotAnObject { field: "trust" }),
            "{trust}"
        );
    }
}

#[test]
fn trust_details_nested_deeper_than_the_limit_cannot_be_encoded() {
    let nest = |depth| {
        let mut v = json!(0);
        for _ in 1..depth {
            v = json!([v]);
        }
        json!({ "deep": v })
    };
    let fits = golden(Some(nest(MAX_JSON_DEPTH)));
    assert_eq!(codec::decode(&codec::encode(&fits).unwrap()).unwrap(), fits);
    assert_eq!(
        codec::encode(&golden(Some(nest(MAX_JSON_DEPTH + 1)))),
        Err(EncodeError::TooDeep { field: "trust" })
    );
}

#[test]
fn decode_rejects_a_version_2_entry_with_trailing_bytes() {
    let mut bytes = hex::decode(GOLDEN_V2).unwrap();
    bytes.extend_from_slice(b"\0\0");
    assert_eq!(
        codec::decode(&bytes),
        Err(DecodeError::TrailingBytes { count: 2 })
    );
}

#[test]
fn decode_rejects_every_truncated_prefix_of_a_version_2_entry() {
    let bytes = hex::decode(GOLDEN_V2).unwrap();
    for len in 0..bytes.len() {
        assert!(codec::decode(&bytes[..len]).is_err(), "{len} bytes decoded");
    }
}

#[test]
fn decode_rejects_trust_details_that_are_not_json() {
    let bytes = v2_with_trust_text(b"{\"risk\":");
    assert!(
        matches!(
            codec::decode(&bytes),
            Err(DecodeError::InvalidJson { field: "trust", .. })
        ),
        "{:?}",
        codec::decode(&bytes)
    );
}

#[test]
fn decode_rejects_trust_details_not_in_canonical_form() {
    for text in [
        &br#"{"risk": 1}"#[..],
        br#"{"b":1,"a":2}"#,
        br#"{"score":1.0e1}"#,
        br#"{"s":"\u0041"}"#,
    ] {
        assert_eq!(
            codec::decode(&v2_with_trust_text(text)),
            Err(DecodeError::NonCanonicalJson { field: "trust" }),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn decode_rejects_trust_details_that_are_not_an_object() {
    for text in [&b"null"[..], b"42", b"\"high\"", b"[]", b"false"] {
        assert_eq!(
            codec::decode(&v2_with_trust_text(text)),
            Err(DecodeError::NotAnObject { field: "trust" }),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn decode_rejects_trust_details_nested_deeper_than_the_limit() {
    let mut text = String::from("{\"deep\":");
    text.push_str(&"[".repeat(MAX_JSON_DEPTH));
    text.push('0');
    text.push_str(&"]".repeat(MAX_JSON_DEPTH));
    text.push('}');
    assert!(
        matches!(
            codec::decode(&v2_with_trust_text(text.as_bytes())),
            Err(DecodeError::InvalidJson { field: "trust", .. })
        ),
        "{:?}",
        codec::decode(&v2_with_trust_text(text.as_bytes()))
    );
}

#[test]
fn relabelling_the_version_byte_does_not_decode() {
    let mut v1 = hex::decode(GOLDEN_V1).unwrap();
    v1[0] = codec::VERSION_2;
    assert!(codec::decode(&v1).is_err());
    let mut v2 = hex::decode(GOLDEN_V2).unwrap();
    v2[0] = codec::VERSION_1;
    assert!(codec::decode(&v2).is_err());
}

#[test]
fn the_json_form_of_a_decision_without_trust_details_is_unchanged() {
    let plain = Decision::denied("no grant");
    assert_eq!(
        serde_json::to_value(&plain).unwrap(),
        json!({ "verdict": "denied", "reason": "no grant" })
    );
    let old: Decision =
        serde_json::from_value(json!({ "verdict": "denied", "reason": "no grant" })).unwrap();
    assert_eq!(old, plain);

    let detailed = Decision::allowed("ok").with_trust(golden_trust());
    let value = serde_json::to_value(&detailed).unwrap();
    assert_eq!(value["trust"], golden_trust());
    assert_eq!(serde_json::from_value::<Decision>(value).unwrap(), detailed);
}

#[test]
fn a_chain_of_version_1_and_version_2_entries_verifies_and_proves_inclusion() {
    let (_dir, path) = temp_ledger();
    let key: SigningKey = generate_key("grace.test/ledger").unwrap();
    let checkpoint = {
        let ledger = Ledger::open(&path, Durability::None).unwrap();
        for i in 0..12 {
            let entry = if i % 3 == 1 {
                with_trust(
                    i,
                    json!({ "risk": { "score": i * 8 }, "approval": { "by": "bob" } }),
                )
            } else {
                call("run-mixed", i)
            };
            ledger.append_blocking(entry).unwrap();
        }
        ledger.sign_checkpoint(&key).unwrap()
    };

    let ledger = Ledger::open(&path, Durability::None).unwrap();
    let report = ledger.verify().unwrap();
    assert_eq!(report.entries, 12);
    let entries = ledger.entries(1, 100).unwrap();
    for (i, entry) in (0u64..).zip(&entries) {
        let expected_version = if i % 3 == 1 {
            codec::VERSION_2
        } else {
            codec::VERSION_1
        };
        let body = codec::encode_body(entry).unwrap();
        assert_eq!(body[0], expected_version, "entry {}", entry.seq);
        assert_eq!(codec::hash_body(&body), entry.hash);
        assert_eq!(entry.decision.trust.is_some(), i % 3 == 1);
        let proof = ledger.prove_inclusion(entry.seq, None).unwrap();
        assert_eq!(proof.entry_hash, entry.hash);
        proof.verify(&report.root).unwrap();
    }
    assert_eq!(
        entries[1].decision.trust,
        Some(json!({ "risk": { "score": 8 }, "approval": { "by": "bob" } }))
    );
    let verified = checkpoint.verify(key.verifier()).unwrap();
    ledger.verify_checkpoint(verified).unwrap();
    assert_eq!(ledger.entries_for_run("run-mixed").unwrap(), entries);

    // The chain goes on from a version 2 head.
    ledger.append_blocking(with_trust(12, json!({}))).unwrap();
    assert_eq!(ledger.verify().unwrap().entries, 13);
}

#[test]
fn changing_the_recorded_approver_is_detected() {
    let (_dir, path) = temp_ledger();
    {
        let ledger = Ledger::open(&path, Durability::None).unwrap();
        ledger.append_blocking(call("run-1", 0)).unwrap();
        ledger
            .append_blocking(with_trust(1, json!({ "approval": { "by": "alice" } })))
            .unwrap();
        ledger.append_blocking(call("run-1", 2)).unwrap();
    }
    tamper(&path, |table| {
        let mut bytes = common::stored(table, 2);
        let at = find(&bytes, b"alice");
        bytes[at..at + 5].copy_from_slice(b"mallo");
        table.insert(2, bytes.as_slice()).unwrap();
    });
    let found = tampering(&path);
    assert_eq!((found.seq, found.problem), (2, Problem::Modified));
}

#[test]
fn appending_trust_details_that_are_not_an_object_is_refused_and_takes_no_seq() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path, Durability::None).unwrap();
    let err = ledger
        .append_blocking(with_trust(0, json!(["not", "an", "object"])))
        .unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::InvalidEntry {
                source: EncodeError::NotAnObject { field: "trust" }
            }
        ),
        "{err:?}"
    );
    assert_eq!(ledger.append_blocking(call("run-1", 1)).unwrap().seq, 1);
}
