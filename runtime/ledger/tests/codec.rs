//! The canonical encoding: round trips, canonical JSON, strict and panic-free decoding.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use grace_ledger::codec::{self, DecodeError, EncodeError, MAX_JSON_DEPTH};
use grace_ledger::{Decision, Entry, Hash};
use serde_json::{Value, json};

fn entry(seq: u64, args: Value, decision: Decision, result: Value) -> Entry {
    let mut entry = Entry {
        seq,
        recorded_millis: 1_700_000_000_123,
        run_id: "run-0f3c".into(),
        playbook: "restart-unhealthy".into(),
        digest: format!("sha256:{}", "9f".repeat(32)),
        interface: "containers".into(),
        function: "restart".into(),
        args,
        decision,
        result,
        at_millis: 42,
        prev_hash: Hash([7; 32]),
        hash: Hash::ZERO,
    };
    entry.hash = codec::hash_body(&codec::encode_body(&entry).expect("encodable"));
    entry
}

fn samples() -> Vec<Entry> {
    vec![
        entry(
            1,
            json!({ "id": "c-1", "labels": { "z": 1, "a": [true, null, -3, 2.5e-7] } }),
            Decision::allowed("grant containers.restart on `c-*`"),
            json!({ "ok": null }),
        ),
        entry(
            u64::MAX,
            json!("quote \" backslash \\ nul \u{0} unicode é 🦀 \u{2028}"),
            Decision::denied(""),
            json!({ "err": { "denied": "no grant" }, "": [], "n": [u64::MAX, i64::MIN, 0.1] }),
        ),
        entry(2, json!(null), Decision::allowed("x"), json!([[[[]]], {}])),
        entry(
            3,
            json!({ "group": "web", "desired": 6 }),
            Decision::allowed("policy `scale-limits` allowed").with_trust(trust()),
            json!({ "ok": { "desired-capacity": 6 } }),
        ),
        entry(
            4,
            json!([]),
            Decision::denied("risk 91 over 80").with_trust(json!({})),
            json!({ "err": { "denied": "risk 91 over 80" } }),
        ),
    ]
}

/// Trust details shaped like the trust core's, though the ledger does not look inside.
fn trust() -> Value {
    json!({
        "risk": { "score": 42, "factors": [{ "name": "blast-radius", "weight": 30 }] },
        "policies": ["scale-limits"],
        "guardrail": null,
        "approval": { "by": "alice@example.com", "at_millis": 1_700_000_000_000_u64 },
        "note": "é \u{0} \"quoted\"",
    })
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn decoding_an_encoded_entry_gives_the_same_entry() {
    for original in samples() {
        let bytes = codec::encode(&original).unwrap();
        assert_eq!(codec::decode(&bytes).unwrap(), original);
    }
}

#[test]
fn the_stored_hash_is_sha256_of_the_domain_and_the_body() {
    use sha2::{Digest, Sha256};
    let original = samples().remove(0);
    let bytes = codec::encode(&original).unwrap();
    let (body, hash) = codec::split(&bytes).unwrap();

    let mut hasher = Sha256::new();
    hasher.update(b"grace-ledger-v1\0");
    hasher.update(body);
    let expected: [u8; 32] = hasher.finalize().into();
    assert_eq!(hash, Hash(expected));
    assert_eq!(hash, original.hash);
    assert_eq!(body[0], codec::VERSION_1);
    assert_eq!(body[1..9], original.seq.to_be_bytes());
    assert_eq!(body[9..41], original.prev_hash.0);
}

#[test]
fn json_is_encoded_without_whitespace_with_keys_in_bytewise_order() {
    let mut map = serde_json::Map::new();
    for key in ["b", "é", "aa", "a", "B", "_"] {
        map.insert(key.to_owned(), json!({ "y": 1, "x": [2, "s p"] }));
    }
    let text = codec::canonical_json(&Value::Object(map)).unwrap();
    let inner = r#"{"x":[2,"s p"],"y":1}"#;
    assert_eq!(
        text,
        format!(r#"{{"B":{inner},"_":{inner},"a":{inner},"aa":{inner},"b":{inner},"é":{inner}}}"#)
    );
}

#[test]
fn json_nested_up_to_the_limit_round_trips_and_deeper_is_refused() {
    let nest = |depth| {
        let mut v = json!(0);
        for _ in 0..depth {
            v = json!([v]);
        }
        v
    };
    let fits = entry(1, nest(MAX_JSON_DEPTH), Decision::allowed(""), json!(null));
    let bytes = codec::encode(&fits).unwrap();
    assert_eq!(codec::decode(&bytes).unwrap(), fits);

    let mut too_deep = fits;
    too_deep.result = nest(MAX_JSON_DEPTH + 1);
    assert_eq!(
        codec::encode(&too_deep),
        Err(EncodeError::TooDeep { field: "result" })
    );
}

#[test]
fn decode_rejects_every_truncated_prefix() {
    for original in samples() {
        let bytes = codec::encode(&original).unwrap();
        for len in 0..bytes.len() {
            assert!(
                codec::decode(&bytes[..len]).is_err(),
                "a {len}-byte prefix decoded"
            );
        }
    }
}

#[test]
fn decode_rejects_trailing_bytes() {
    let mut bytes = codec::encode(&samples()[0]).unwrap();
    bytes.push(0);
    assert_eq!(
        codec::decode(&bytes),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
}

#[test]
fn decode_rejects_unknown_versions_and_verdicts() {
    let original = samples().remove(0);
    let mut bytes = codec::encode(&original).unwrap();
    bytes[0] = 3;
    assert_eq!(codec::decode(&bytes), Err(DecodeError::UnknownVersion(3)));
    bytes[0] = 0;
    assert_eq!(codec::decode(&bytes), Err(DecodeError::UnknownVersion(0)));

    // The verdict byte follows the `args` JSON text, which ends with `}`.
    let mut bytes = codec::encode(&original).unwrap();
    let args = codec::canonical_json(&original.args).unwrap();
    let at = find(&bytes, args.as_bytes()) + args.len();
    bytes[at] = 7;
    assert_eq!(codec::decode(&bytes), Err(DecodeError::UnknownVerdict(7)));
}

#[test]
fn decode_rejects_json_that_is_not_in_canonical_form() {
    let original = entry(1, json!({ "a": 1.0 }), Decision::allowed(""), json!(null));
    let mut bytes = codec::encode(&original).unwrap();
    // Same value, same length, another spelling.
    let at = find(&bytes, b"1.0");
    bytes[at..at + 3].copy_from_slice(b"1e0");
    assert_eq!(
        codec::decode(&bytes),
        Err(DecodeError::NonCanonicalJson { field: "args" })
    );
}

#[test]
fn decode_rejects_invalid_utf8() {
    let original = samples().remove(0);
    let mut bytes = codec::encode(&original).unwrap();
    let at = find(&bytes, b"restart-unhealthy");
    bytes[at] = 0xff;
    assert_eq!(
        codec::decode(&bytes),
        Err(DecodeError::InvalidUtf8 { field: "playbook" })
    );
}

#[test]
fn decode_never_panics_on_random_byte_flips_and_accepts_only_canonical_encodings() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let originals: Vec<Vec<u8>> = samples()
        .iter()
        .map(|e| codec::encode(e).unwrap())
        .collect();
    for round in 0..20_000 {
        let mut bytes = originals[round % originals.len()].clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
        if rng.below(8) == 0 {
            let len = rng.below(bytes.len());
            bytes.truncate(len);
        }
        if let Ok(decoded) = codec::decode(&bytes) {
            // Whatever decodes is the one encoding of what it decodes to.
            assert_eq!(codec::encode(&decoded).unwrap(), bytes, "round {round}");
        }
    }
}

#[test]
fn decode_never_panics_on_random_garbage() {
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let len = rng.below(300);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Make it past the version byte and the lengths now and then.
        if !bytes.is_empty() && rng.below(2) == 0 {
            bytes[0] = if rng.below(2) == 0 {
                codec::VERSION_1
            } else {
                codec::VERSION_2
            };
        }
        let _ = codec::decode(&bytes);
        let _ = codec::split(&bytes);
    }
}

#[test]
fn hashes_print_as_lowercase_hex_and_parse_back() {
    let hash = Hash([0xab; 32]);
    let text = hash.to_string();
    assert_eq!(text, "ab".repeat(32));
    assert_eq!(text.parse::<Hash>().unwrap(), hash);
    assert_eq!(text.to_uppercase().parse::<Hash>().unwrap(), hash);
    assert_eq!(serde_json::to_string(&hash).unwrap(), format!("\"{text}\""));
    assert_eq!(
        serde_json::from_str::<Hash>(&format!("\"{text}\"")).unwrap(),
        hash
    );
    assert!("abc".parse::<Hash>().is_err());
    assert!("zz".repeat(32).parse::<Hash>().is_err());
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in the encoding")
}
