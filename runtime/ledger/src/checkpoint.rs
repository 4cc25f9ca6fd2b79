//! Signed checkpoints: the ledger's tree size and Merkle root at a moment, signed with Ed25519,
//! in the C2SP tlog-checkpoint format inside a signed note ([`crate::note`]).
//!
//! ```text
//! grace.example.com/ledger                          origin: the signing key's name
//! 1024                                              tree size: entries covered, decimal
//! 4SbSR6z+Umkz3ZrVLIQ/jS/6lzfW2ZNKqjiSfmIdJpU=      root hash: base64 of the Merkle root
//! timestamp 1767225900000                           extension: signing time, Unix milliseconds
//!
//! — grace.example.com/ledger Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5…
//! ```
//!
//! The timestamp is an extension line, so it is signed like the rest; tlog tooling that does not
//! know it ignores it. Parsing is strict: exactly these four lines, a size without leading
//! zeros, a root of exactly 32 bytes, at least one signature line. A parsed checkpoint is not
//! trusted until [`SignedCheckpoint::verify`] has checked its signature against a known key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Hash;
use crate::keys::{SigningKey, VerifierKey};
use crate::note::{Note, NoteSignature, Signed, signature_line, verified_by};

/// The extension line's key word.
const TIMESTAMP: &str = "timestamp ";

/// Why a checkpoint cannot be parsed, read or trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The text is not a signed checkpoint.
    #[error("checkpoint is malformed: {reason}")]
    Malformed {
        /// What is wrong, and where.
        reason: String,
    },
    /// No signature line is by the key.
    #[error("checkpoint is not signed by key `{key}`")]
    NotSigned {
        /// The key, `<name>+<id>`.
        key: String,
    },
    /// A signature line names the key but does not verify: the checkpoint was altered or forged.
    #[error("checkpoint signature by key `{key}` does not verify: the checkpoint was altered")]
    BadSignature {
        /// The key, `<name>+<id>`.
        key: String,
    },
    /// The checkpoint file cannot be read.
    #[error("checkpoint file `{}` cannot be read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },
}

fn malformed(reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed {
        reason: reason.into(),
    }
}

/// The ledger's tree head at a moment: what a signed checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Which ledger: the name of the key that signs its checkpoints.
    pub origin: String,
    /// How many entries the tree covers: entries 1 to `tree_size`.
    pub tree_size: u64,
    /// The Merkle root of those entries ([`crate::merkle`]).
    pub root_hash: Hash,
    /// When the checkpoint was signed, in milliseconds since the Unix epoch.
    pub timestamp_millis: u64,
}

impl Checkpoint {
    /// The note text: the four lines that get signed.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n{TIMESTAMP}{}\n",
            self.origin,
            self.tree_size,
            BASE64.encode(self.root_hash.0),
            self.timestamp_millis
        )
    }

    /// Parses the note text of a checkpoint (see the module documentation).
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("its text does not end with a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, timestamp] = lines[..] else {
            return Err(malformed(format!(
                "its text has {} lines where a checkpoint has 4: origin, tree size, root hash, timestamp",
                lines.len()
            )));
        };
        if origin.is_empty() {
            return Err(malformed("line 1: the origin is empty"));
        }
        let tree_size = decimal(size)
            .ok_or_else(|| malformed(format!("line 2: `{size}` is not a tree size")))?;
        let root_hash = BASE64
            .decode(root)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(Hash)
            .ok_or_else(|| malformed(format!("line 3: `{root}` is not a base64 SHA-256 hash")))?;
        let timestamp_millis = timestamp
            .strip_prefix(TIMESTAMP)
            .and_then(decimal)
            .ok_or_else(|| {
                malformed(format!(
                    "line 4: `{timestamp}` is not `timestamp <unix milliseconds>`"
                ))
            })?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
            timestamp_millis,
        })
    }

    /// Signs the checkpoint. The origin should be the key's name (C2SP tlog-checkpoint);
    /// [`Ledger::sign_checkpoint`](crate::Ledger::sign_checkpoint) makes it so.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedCheckpoint, CheckpointError> {
        let body = self.body();
        let text = format!("{body}\n{}", signature_line(key, &body));
        // Parsing what was just written checks the origin (no newline, no control character)
        // and keeps one code path for every signed checkpoint.
        SignedCheckpoint::parse(&text)
    }
}

/// A checkpoint with its signatures, as text: what a ledger hands out and a client keeps.
///
/// Displays (and serializes) as the exact text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    text: String,
    /// Where the signed text ends in `text`.
    body_len: usize,
    checkpoint: Checkpoint,
    signatures: Vec<NoteSignature>,
}

impl SignedCheckpoint {
    /// Parses a signed checkpoint. Checks its shape, not its signatures: see
    /// [`SignedCheckpoint::verify`].
    pub fn parse(text: &str) -> Result<SignedCheckpoint, CheckpointError> {
        let note = Note::parse(text).map_err(malformed)?;
        let checkpoint = Checkpoint::parse_body(note.text)?;
        Ok(SignedCheckpoint {
            text: text.to_owned(),
            body_len: note.text.len(),
            checkpoint,
            signatures: note.signatures,
        })
    }

    /// Reads and parses a checkpoint file.
    pub fn load(path: impl AsRef<Path>) -> Result<SignedCheckpoint, CheckpointError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CheckpointError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        SignedCheckpoint::parse(&text)
    }

    /// The checkpoint, once a signature by `key` verifies over it.
    ///
    /// Signature lines of other keys are ignored (signed-note: they may be witnesses'); a line
    /// with this key's name and id that does not verify fails the whole checkpoint.
    pub fn verify(&self, key: &VerifierKey) -> Result<&Checkpoint, CheckpointError> {
        let key_label = || format!("{}+{:08x}", key.name(), key.id());
        let body = self.text.get(..self.body_len).unwrap_or_default();
        match verified_by(body, &self.signatures, key) {
            Signed::Yes => Ok(&self.checkpoint),
            Signed::Absent => Err(CheckpointError::NotSigned { key: key_label() }),
            Signed::Invalid => Err(CheckpointError::BadSignature { key: key_label() }),
        }
    }

    /// The checkpoint, without checking any signature: for display, or for a caller that
    /// verified it already. Trust nothing in it otherwise.
    pub fn unverified(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The signature lines, decoded.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// The checkpoint's text, signature lines included.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for SignedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for SignedCheckpoint {
    type Err = CheckpointError;

    fn from_str(text: &str) -> Result<SignedCheckpoint, CheckpointError> {
        SignedCheckpoint::parse(text)
    }
}

impl Serialize for SignedCheckpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for SignedCheckpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SignedCheckpoint::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A decimal without sign or leading zeros ("0" itself is fine), as tlog-checkpoint sizes are.
fn decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}
