//! The canonical binary encoding of ledger entries, and the hash that chains them.
//!
//! The bytes stored under key `seq` in [`ENTRIES`](crate::tables::ENTRIES) are `body || hash`:
//!
//! ```text
//! body (version 1: a decision without the trust core's details)
//!   offset  size  field
//!   0       1     version          = 1
//!   1       8     seq              u64, big-endian
//!   9       32    prev_hash        hash of entry seq - 1; all zeros for entry 1
//!   41      8     recorded_millis  u64, big-endian: wall clock at append
//!   49      8     at_millis        u64, big-endian: run clock at the call
//!   57      ..    run_id           string
//!           ..    playbook         string
//!           ..    digest           string
//!           ..    interface        string
//!           ..    function         string
//!           ..    args             JSON
//!           1     verdict          0 = allowed, 1 = denied
//!           ..    reason           string
//!           ..    result           JSON
//!
//! body (version 2: a decision with the trust core's details)
//!   the fields of version 1, with version = 2, and after `reason`:
//!           ..    trust            JSON, always an object
//!   then `result` as in version 1
//!
//! hash      32    SHA-256("grace-ledger-v1\0" || body), whatever the version
//!
//! string = u32 big-endian byte length || UTF-8 bytes
//! JSON   = u32 big-endian byte length || canonical JSON text
//! ```
//!
//! Canonical JSON is JSON without whitespace, object keys sorted bytewise, numbers as
//! `serde_json` prints them, and strings escaped the way `serde_json` escapes them (`\"`, `\\`,
//! `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as `\u00xx`, everything else as is).
//! The order of keys in memory does not matter, so the encoding is the same whether or not some
//! crate in the build enables `serde_json`'s `preserve_order`.
//!
//! The fixed-width header comes first so the writer can fill in `seq`, `prev_hash` and
//! `recorded_millis` after the rest was encoded on the appender's thread, and so `run_id` can be
//! read without decoding the whole entry. Both versions share the header.
//!
//! An entry whose [`Decision::trust`] is `None` is written as version 1 and one with trust
//! details as version 2, so each entry has exactly one encoding, and entries recorded before
//! version 2 existed keep their bytes, hashes and Merkle leaves. The version byte is part of the
//! hashed body, so the hash domain needs no version of its own.
//!
//! Decoding is strict: it rejects unknown versions and verdicts, truncated input, invalid UTF-8,
//! invalid or non-canonical JSON, trust details that are not an object and trailing bytes, each
//! with a typed [`DecodeError`]. It never panics, whatever the input. It does not check the
//! hash: [`split`] and [`hash_body`] do, and [`Ledger::verify`](crate::Ledger::verify) hashes the
//! stored body bytes as they are, whatever their version.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Decision, Entry, Hash, NewEntry, Verdict};

/// The encoding version of an entry without the trust core's details ([`Decision::trust`] is
/// `None`).
pub const VERSION_1: u8 = 1;

/// The encoding version of an entry with the trust core's details: version 1 plus a `trust` JSON
/// object after `reason`.
pub const VERSION_2: u8 = 2;

/// Prefixed to the body before hashing, so a ledger hash cannot be mistaken for any other
/// SHA-256 of the same bytes.
pub const DOMAIN: &[u8] = b"grace-ledger-v1\0";

/// How deeply JSON arrays and objects may nest in `args`, `trust` and `result`.
///
/// Well below `serde_json`'s own parsing limit, so whatever is written can be read back.
pub const MAX_JSON_DEPTH: usize = 64;

/// The largest encoded entry an append accepts, in bytes.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024 * 1024;

const OFFSET_SEQ: usize = 1;
const OFFSET_PREV_HASH: usize = 9;
const OFFSET_RECORDED: usize = 41;
const OFFSET_AT: usize = 49;
const HEADER_LEN: usize = 57;
const HASH_LEN: usize = 32;

/// Why an entry cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A JSON value nests arrays or objects more than [`MAX_JSON_DEPTH`] levels deep.
    #[error("`{field}` is nested more than {MAX_JSON_DEPTH} levels deep")]
    TooDeep {
        /// `args`, `trust` or `result`.
        field: &'static str,
    },
    /// A JSON field that must be an object is some other JSON value.
    #[error("`{field}` is not a JSON object")]
    NotAnObject {
        /// `trust`.
        field: &'static str,
    },
    /// The encoded entry would exceed [`MAX_ENTRY_BYTES`].
    #[error("entry is larger than {MAX_ENTRY_BYTES} bytes once encoded (at `{field}`)")]
    TooLarge {
        /// The field that took the entry over the limit.
        field: &'static str,
    },
}

/// Why bytes are not an encoded entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends inside a field.
    #[error("entry ends inside `{field}`")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The version byte is not one this crate knows.
    #[error("unknown encoding version {0}")]
    UnknownVersion(u8),
    /// The verdict byte is neither allowed (0) nor denied (1).
    #[error("unknown verdict {0}")]
    UnknownVerdict(u8),
    /// A string field is not UTF-8.
    #[error("`{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// A JSON field does not parse.
    #[error("`{field}` is not valid JSON: {message}")]
    InvalidJson {
        /// `args`, `trust` or `result`.
        field: &'static str,
        /// What the parser said.
        message: String,
    },
    /// A JSON field parses, but is not written the canonical way.
    #[error("`{field}` is not canonical JSON")]
    NonCanonicalJson {
        /// `args`, `trust` or `result`.
        field: &'static str,
    },
    /// A JSON field that must be an object is some other JSON value.
    #[error("`{field}` is not a JSON object")]
    NotAnObject {
        /// `trust`.
        field: &'static str,
    },
    /// Bytes follow the hash.
    #[error("{count} unexpected bytes after the entry")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

/// SHA-256 over [`DOMAIN`] and `body`: the hash an entry with this body must carry.
pub fn hash_body(body: &[u8]) -> Hash {
    Hash(
        Sha256::new()
            .chain_update(DOMAIN)
            .chain_update(body)
            .finalize()
            .into(),
    )
}

/// Splits stored bytes into the body and the hash stored after it, without decoding the body.
pub fn split(stored: &[u8]) -> Result<(&[u8], Hash), DecodeError> {
    let body_len = stored
        .len()
        .checked_sub(HASH_LEN)
        .ok_or(DecodeError::Truncated { field: "hash" })?;
    let (body, hash) = stored.split_at(body_len);
    let hash: [u8; HASH_LEN] = hash
        .try_into()
        .map_err(|_| DecodeError::Truncated { field: "hash" })?;
    Ok((body, Hash(hash)))
}

/// Encodes an entry as stored: its body followed by `entry.hash`, as given.
///
/// The hash is not recomputed, so this can also write an entry whose hash is wrong; use
/// [`hash_body`] over [`encode_body`] for the right one.
pub fn encode(entry: &Entry) -> Result<Vec<u8>, EncodeError> {
    let mut out = encode_body(entry)?;
    out.extend_from_slice(&entry.hash.0);
    Ok(out)
}

/// Encodes the body of an entry: everything but its hash.
pub fn encode_body(entry: &Entry) -> Result<Vec<u8>, EncodeError> {
    let mut out = encode_fields(&Fields {
        run_id: &entry.run_id,
        playbook: &entry.playbook,
        digest: &entry.digest,
        interface: &entry.interface,
        function: &entry.function,
        args: &entry.args,
        decision: &entry.decision,
        result: &entry.result,
        at_millis: entry.at_millis,
    })?;
    write_header(&mut out, entry.seq, &entry.prev_hash, entry.recorded_millis);
    Ok(out)
}

/// Decodes an entry from its stored bytes (`body || hash`), strictly. Does not check the hash.
pub fn decode(stored: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader { bytes: stored };
    let version = r.version()?;
    let seq = r.u64("seq")?;
    let prev_hash = r.hash("prev_hash")?;
    let recorded_millis = r.u64("recorded_millis")?;
    let at_millis = r.u64("at_millis")?;
    let run_id = r.string("run_id")?;
    let playbook = r.string("playbook")?;
    let digest = r.string("digest")?;
    let interface = r.string("interface")?;
    let function = r.string("function")?;
    let args = r.json("args")?;
    let verdict = match r.u8("verdict")? {
        0 => Verdict::Allowed,
        1 => Verdict::Denied,
        other => return Err(DecodeError::UnknownVerdict(other)),
    };
    let reason = r.string("reason")?;
    let trust = match version {
        VERSION_2 => Some(r.json_object("trust")?),
        _ => None,
    };
    let result = r.json("result")?;
    let hash = r.hash("hash")?;
    if !r.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes {
            count: r.bytes.len(),
        });
    }
    Ok(Entry {
        seq,
        recorded_millis,
        run_id,
        playbook,
        digest,
        interface,
        function,
        args,
        decision: Decision {
            verdict,
            reason,
            trust,
        },
        result,
        at_millis,
        prev_hash,
        hash,
    })
}

/// The canonical JSON text of a value (see the module documentation).
pub fn canonical_json(value: &Value) -> Result<String, EncodeError> {
    let mut out = Vec::new();
    write_json(&mut out, value, 0, "value")?;
    // Only UTF-8 went in (string contents, ASCII punctuation and escapes), so this never copies.
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// An entry encoded on the appender's side: the body, with `seq`, `prev_hash` and
/// `recorded_millis` still to be filled in by the writer.
#[derive(Debug)]
pub(crate) struct Prepared(Vec<u8>);

impl Prepared {
    /// Encodes everything the appender knows.
    pub(crate) fn new(entry: &NewEntry) -> Result<Self, EncodeError> {
        encode_fields(&Fields {
            run_id: &entry.run_id,
            playbook: &entry.playbook,
            digest: &entry.digest,
            interface: &entry.interface,
            function: &entry.function,
            args: &entry.args,
            decision: &entry.decision,
            result: &entry.result,
            at_millis: entry.at_millis,
        })
        .map(Prepared)
    }

    /// Places the entry in the chain: fills in the header, hashes the body and appends the hash.
    /// Returns the bytes to store and the entry's hash.
    pub(crate) fn seal(self, seq: u64, prev_hash: &Hash, recorded_millis: u64) -> (Vec<u8>, Hash) {
        let mut out = self.0;
        write_header(&mut out, seq, prev_hash, recorded_millis);
        let hash = hash_body(&out);
        out.extend_from_slice(&hash.0);
        (out, hash)
    }
}

/// Reads only the `run_id` of stored bytes, for scans that skip most entries.
pub(crate) fn peek_run_id(stored: &[u8]) -> Result<&str, DecodeError> {
    let mut r = Reader { bytes: stored };
    r.version()?;
    r.take(HEADER_LEN - 1, "at_millis")?;
    let bytes = r.sized("run_id")?;
    std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { field: "run_id" })
}

/// The fields an appender provides, borrowed from a [`NewEntry`] or an [`Entry`].
struct Fields<'a> {
    run_id: &'a str,
    playbook: &'a str,
    digest: &'a str,
    interface: &'a str,
    function: &'a str,
    args: &'a Value,
    decision: &'a Decision,
    result: &'a Value,
    at_millis: u64,
}

/// Encodes a body with a zeroed `seq`, `prev_hash` and `recorded_millis`.
fn encode_fields(f: &Fields<'_>) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(512);
    out.push(match f.decision.trust {
        None => VERSION_1,
        Some(_) => VERSION_2,
    });
    out.resize(OFFSET_AT, 0);
    out.extend_from_slice(&f.at_millis.to_be_bytes());
    debug_assert_eq!(out.len(), HEADER_LEN);
    write_str(&mut out, f.run_id, "run_id")?;
    write_str(&mut out, f.playbook, "playbook")?;
    write_str(&mut out, f.digest, "digest")?;
    write_str(&mut out, f.interface, "interface")?;
    write_str(&mut out, f.function, "function")?;
    write_json_field(&mut out, f.args, "args")?;
    out.push(match f.decision.verdict {
        Verdict::Allowed => 0,
        Verdict::Denied => 1,
    });
    write_str(&mut out, &f.decision.reason, "reason")?;
    if let Some(trust) = &f.decision.trust {
        if !trust.is_object() {
            return Err(EncodeError::NotAnObject { field: "trust" });
        }
        write_json_field(&mut out, trust, "trust")?;
    }
    write_json_field(&mut out, f.result, "result")?;
    Ok(out)
}

/// Fills in the header fields the writer decides. `out` starts with a full header.
fn write_header(out: &mut [u8], seq: u64, prev_hash: &Hash, recorded_millis: u64) {
    for (offset, bytes) in [
        (OFFSET_SEQ, &seq.to_be_bytes()[..]),
        (OFFSET_PREV_HASH, &prev_hash.0[..]),
        (OFFSET_RECORDED, &recorded_millis.to_be_bytes()[..]),
    ] {
        if let Some(slot) = out.get_mut(offset..offset + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
    }
}

fn write_sized(out: &mut Vec<u8>, bytes: &[u8], field: &'static str) -> Result<(), EncodeError> {
    // MAX_ENTRY_BYTES fits a u32, so the length prefix cannot overflow below it.
    let too_large = EncodeError::TooLarge { field };
    if out.len() + 4 + bytes.len() > MAX_ENTRY_BYTES - HASH_LEN {
        return Err(too_large);
    }
    let len = u32::try_from(bytes.len()).map_err(|_| too_large)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn write_str(out: &mut Vec<u8>, s: &str, field: &'static str) -> Result<(), EncodeError> {
    write_sized(out, s.as_bytes(), field)
}

fn write_json_field(out: &mut Vec<u8>, v: &Value, field: &'static str) -> Result<(), EncodeError> {
    let mut text = Vec::with_capacity(256);
    write_json(&mut text, v, 0, field)?;
    write_sized(out, &text, field)
}

fn write_json(
    out: &mut Vec<u8>,
    v: &Value,
    depth: usize,
    field: &'static str,
) -> Result<(), EncodeError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            if depth >= MAX_JSON_DEPTH {
                return Err(EncodeError::TooDeep { field });
            }
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, item, depth + 1, field)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            if depth >= MAX_JSON_DEPTH {
                return Err(EncodeError::TooDeep { field });
            }
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // Keys in a map are unique, so an unstable sort is deterministic.
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(out, key);
                out.push(b':');
                write_json(out, value, depth + 1, field)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A cursor over untrusted bytes: every read is bounds-checked and fails with a typed error.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError::Truncated { field });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        self.take(N, field)?
            .try_into()
            .map_err(|_| DecodeError::Truncated { field })
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads the version byte: one of the versions this crate knows.
    fn version(&mut self) -> Result<u8, DecodeError> {
        match self.u8("version")? {
            version @ (VERSION_1 | VERSION_2) => Ok(version),
            other => Err(DecodeError::UnknownVersion(other)),
        }
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_be_bytes)
    }

    fn hash(&mut self, field: &'static str) -> Result<Hash, DecodeError> {
        self.array(field).map(Hash)
    }

    fn sized(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = u32::from_be_bytes(self.array(field)?);
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated { field })?;
        self.take(len, field)
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let bytes = self.sized(field)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    fn json(&mut self, field: &'static str) -> Result<Value, DecodeError> {
        let text = self.sized(field)?;
        let value: Value = serde_json::from_slice(text).map_err(|e| DecodeError::InvalidJson {
            field,
            message: e.to_string(),
        })?;
        let mut canonical = Vec::with_capacity(text.len());
        match write_json(&mut canonical, &value, 0, field) {
            Ok(()) if canonical == text => Ok(value),
            Ok(()) => Err(DecodeError::NonCanonicalJson { field }),
            Err(e) => Err(DecodeError::InvalidJson {
                field,
                message: e.to_string(),
            }),
        }
    }

    fn json_object(&mut self, field: &'static str) -> Result<Value, DecodeError> {
        let value = self.json(field)?;
        if value.is_object() {
            Ok(value)
        } else {
            Err(DecodeError::NotAnObject { field })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_escaped_like_serde_json() {
        let s =
            "quote \" backslash \\ controls \u{0}\u{1f}\u{8}\u{c}\n\r\t del \u{7f} é 🦀 \u{2028}";
        let mut ours = Vec::new();
        write_json_string(&mut ours, s);
        let theirs = serde_json::to_vec(s).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap()
        );
    }

    #[test]
    fn numbers_are_printed_like_serde_json() {
        let v = json!([
            0,
            -1,
            u64::MAX,
            i64::MIN,
            1.5,
            1e300,
            -0.0,
            0.1,
            100000000000000000000.0
        ]);
        assert_eq!(
            canonical_json(&v).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
    }

    #[test]
    fn run_id_can_be_read_without_decoding_the_rest() {
        let entry = NewEntry {
            run_id: "run-7".into(),
            playbook: "p".into(),
            digest: "sha256:00".into(),
            interface: "run".into(),
            function: "started".into(),
            args: json!({}),
            decision: Decision::allowed("lifecycle"),
            result: json!(null),
            at_millis: 5,
        };
        let (stored, _) = Prepared::new(&entry).unwrap().seal(1, &Hash::ZERO, 9);
        assert_eq!(peek_run_id(&stored).unwrap(), "run-7");

        let detailed = NewEntry {
            decision: Decision::allowed("lifecycle").with_trust(json!({ "risk": 3 })),
            ..entry
        };
        let (stored, _) = Prepared::new(&detailed).unwrap().seal(2, &Hash::ZERO, 9);
        assert_eq!(stored[0], VERSION_2);
        assert_eq!(peek_run_id(&stored).unwrap(), "run-7");
    }
}
