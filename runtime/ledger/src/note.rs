//! Signed notes (C2SP signed-note, as Go's `golang.org/x/mod/sumdb/note` writes them): the
//! envelope a checkpoint travels in.
//!
//! ```text
//! <text, ending in a newline>
//! <blank line>
//! — <key name> <base64(4-byte key id || signature)>      one line per signature
//! ```
//!
//! The signature covers the text, final newline included. Notes are UTF-8 with no control
//! characters but newlines; the text ends at the last blank line. Parsing checks the shape and
//! decodes the signature lines; checking a signature is a separate step, done by
//! [`SignedCheckpoint::verify`](crate::SignedCheckpoint::verify).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::keys::{SigningKey, VerifierKey, check_name};

/// The largest note accepted, in bytes: a checkpoint is well under 1 KiB.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// The most signature lines accepted (the signed-note spec requires at least 16).
pub const MAX_SIGNATURES: usize = 100;
/// What starts a signature line: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteSignature {
    /// The signing key's name.
    pub name: String,
    /// The signing key's id.
    pub key_id: u32,
    /// The signature (64 bytes for Ed25519; other algorithms differ).
    pub signature: Vec<u8>,
}

/// Whether a note is signed by a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signed {
    /// A signature line of the key verifies.
    Yes,
    /// No signature line names the key.
    Absent,
    /// A signature line names the key but does not verify.
    Invalid,
}

/// A parsed note: its text and signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note<'a> {
    /// The signed text, final newline included.
    pub(crate) text: &'a str,
    /// The signature lines, in order.
    pub(crate) signatures: Vec<NoteSignature>,
}

impl<'a> Note<'a> {
    /// Parses a note's shape; the reason names what is wrong.
    pub(crate) fn parse(note: &'a str) -> Result<Note<'a>, String> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(format!("it is larger than {MAX_NOTE_BYTES} bytes"));
        }
        if let Some(c) = note.chars().find(|&c| c < ' ' && c != '\n') {
            return Err(format!(
                "it contains the control character {}",
                c.escape_unicode()
            ));
        }
        if !note.ends_with('\n') {
            return Err("it does not end with a newline".into());
        }
        let Some(blank) = note.rfind("\n\n") else {
            return Err("no blank line separates the text from the signatures".into());
        };
        let (text, lines) = (&note[..=blank], &note[blank + 2..]);
        let mut signatures = Vec::new();
        for line in lines.split_terminator('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(format!("it has more than {MAX_SIGNATURES} signatures"));
            }
            signatures.push(parse_signature(line)?);
        }
        if signatures.is_empty() {
            return Err("it has no signature lines".into());
        }
        Ok(Note { text, signatures })
    }
}

/// Whether a signature of `key` among `signatures` verifies over `text`. A signature line with
/// the key's name and id that does not verify makes the note [`Signed::Invalid`], even if
/// another does: a note is not half signed.
pub(crate) fn verified_by(text: &str, signatures: &[NoteSignature], key: &VerifierKey) -> Signed {
    let mut outcome = Signed::Absent;
    for sig in signatures {
        if sig.name == key.name() && sig.key_id == key.id() {
            if !key.verifies(text.as_bytes(), &sig.signature) {
                return Signed::Invalid;
            }
            outcome = Signed::Yes;
        }
    }
    outcome
}

/// The signature line of `key` over `text` (which ends in a newline), newline included.
pub(crate) fn signature_line(key: &SigningKey, text: &str) -> String {
    let mut blob = Vec::with_capacity(68);
    blob.extend_from_slice(&key.verifier().id().to_be_bytes());
    blob.extend_from_slice(&key.sign(text.as_bytes()));
    format!(
        "{SIGNATURE_PREFIX}{} {}\n",
        key.name(),
        BASE64.encode(&blob)
    )
}

fn parse_signature(line: &str) -> Result<NoteSignature, String> {
    let bad = |reason: &str| format!("signature line `{}` {reason}", line.escape_debug());
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or_else(|| bad("does not start with an em dash and a space"))?;
    let (name, blob) = rest
        .split_once(' ')
        .ok_or_else(|| bad("is not `— <key name> <signature>`"))?;
    check_name(name).map_err(|e| bad(&format!("names no valid key: {e}")))?;
    let blob = BASE64
        .decode(blob)
        .map_err(|_| bad("does not end in base64"))?;
    if blob.len() <= 4 {
        return Err(bad("holds no signature after the key id"));
    }
    let (id, signature) = blob.split_at(4);
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
        signature: signature.to_vec(),
    })
}
