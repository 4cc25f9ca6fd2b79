//! Named Ed25519 keys that sign checkpoints, in the text formats of Go's signed-note package
//! (`golang.org/x/mod/sumdb/note`), so checkpoints interoperate with C2SP tooling:
//!
//! ```text
//! signing key (secret):  PRIVATE+KEY+<name>+<key id>+<base64(0x01 || 32-byte Ed25519 seed)>
//! verifier key (public): <name>+<key id>+<base64(0x01 || 32-byte Ed25519 public key)>
//!
//! key id = SHA-256(name || 0x0A || 0x01 || public key)[..4], as 8 lowercase hex digits
//! ```
//!
//! `0x01` is signed-note's signature type for Ed25519. A key name is non-empty and holds no
//! whitespace, `+` or control characters; the ledger's checkpoints use it as their origin, so
//! name a key after the ledger it signs for (`grace.example.com/ledger`).
//!
//! A key file holds one such line and a final newline. [`SigningKey::save`] creates it with mode
//! 0600 and never overwrites an existing file; [`SigningKey::load`] warns when the file is
//! readable by others.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};

/// signed-note's signature type byte for Ed25519.
const ALG_ED25519: u8 = 0x01;
/// What starts the text of a signing key.
const SECRET_PREFIX: &str = "PRIVATE+KEY+";
/// The longest key name accepted, in bytes.
const MAX_NAME_BYTES: usize = 256;
/// The largest key file read.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Why a key cannot be made, parsed, read or written.
///
/// Messages never contain secret key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key name breaks a rule.
    #[error("key name `{name}` is invalid: {reason}")]
    InvalidName {
        /// The name (sanitised: control characters escaped).
        name: String,
        /// The rule.
        reason: &'static str,
    },
    /// The text is not a key of the kind expected.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// `signing key` or `verifier key`.
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The key file cannot be read.
    #[error("key file `{}` cannot be read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// The key file cannot be written (or already exists).
    #[error("key file `{}` cannot be written: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new key: {reason}")]
    Random {
        /// What the operating system reported.
        reason: String,
    },
}

/// Makes a new signing key named `name` from the operating system's randomness.
pub fn generate_key(name: &str) -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random {
        reason: e.to_string(),
    })?;
    SigningKey::from_seed(name, &seed)
}

/// A named Ed25519 signing key: what signs checkpoints. Secret.
///
/// Parses from and [`to_text`](SigningKey::to_text)s into the `PRIVATE+KEY+…` format. Its
/// `Debug` shows the name and key id only.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    verifier: VerifierKey,
}

impl SigningKey {
    /// The key named `name` with the 32-byte Ed25519 secret `seed`.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<SigningKey, KeyError> {
        check_name(name)?;
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let verifier = VerifierKey::new(name, key.verifying_key());
        Ok(SigningKey { key, verifier })
    }

    /// The key's name: the origin of the checkpoints it signs.
    pub fn name(&self) -> &str {
        &self.verifier.name
    }

    /// The public half, to hand to whoever verifies checkpoints.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// The Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The key as text, `PRIVATE+KEY+<name>+<key id>+<base64>`: secret, like the key.
    pub fn to_text(&self) -> String {
        let mut data = Vec::with_capacity(33);
        data.push(ALG_ED25519);
        data.extend_from_slice(self.key.as_bytes());
        format!(
            "{SECRET_PREFIX}{}+{:08x}+{}",
            self.name(),
            self.verifier.id,
            BASE64.encode(&data)
        )
    }

    /// Reads a key file (see the module documentation).
    pub fn load(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
        let path = path.as_ref();
        let text = read_key_file(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    "signing key file is readable by other users; `chmod 600` it"
                );
            }
        }
        text.trim_end().parse()
    }

    /// Writes the key to a new file, readable by its owner only. Fails if `path` exists.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        write_key_file(path.as_ref(), &self.to_text(), 0o600)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.verifier.name)
            .field("id", &format_args!("{:08x}", self.verifier.id))
            .finish_non_exhaustive()
    }
}

impl FromStr for SigningKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<SigningKey, KeyError> {
        let malformed = |reason| KeyError::Malformed {
            what: "signing key",
            reason,
        };
        let rest = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(malformed("it does not start with `PRIVATE+KEY+`"))?;
        let (name, id, data) =
            split_key(rest).ok_or(malformed("expected `PRIVATE+KEY+<name>+<id>+<key>`"))?;
        let seed: [u8; 32] = key_data(data).ok_or(malformed(
            "the key is not base64 of an Ed25519 type byte and 32 bytes",
        ))?;
        let key = SigningKey::from_seed(name, &seed)?;
        if key.verifier.id != id {
            return Err(malformed("its key id does not match the key"));
        }
        Ok(key)
    }
}

/// A named Ed25519 public key: what verifies checkpoints.
///
/// Parses from and displays as `<name>+<key id>+<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    fn new(name: &str, key: ed25519_dalek::VerifyingKey) -> VerifierKey {
        VerifierKey {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        }
    }

    /// The key's name, which its signature lines carry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id, which its signatures start with.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether `signature` is this key's Ed25519 signature of `message` (strict verification:
    /// no malleable signatures).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.key
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(&bytes))
            .is_ok()
    }

    /// Reads a verifier key file.
    pub fn load(path: impl AsRef<Path>) -> Result<VerifierKey, KeyError> {
        read_key_file(path.as_ref())?.trim_end().parse()
    }

    /// Writes the key to a new file. Fails if `path` exists.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        write_key_file(path.as_ref(), &self.to_string(), 0o644)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut data = Vec::with_capacity(33);
        data.push(ALG_ED25519);
        data.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, BASE64.encode(&data))
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl FromStr for VerifierKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<VerifierKey, KeyError> {
        let malformed = |reason| KeyError::Malformed {
            what: "verifier key",
            reason,
        };
        let (name, id, data) = split_key(text).ok_or(malformed("expected `<name>+<id>+<key>`"))?;
        check_name(name)?;
        let bytes: [u8; 32] = key_data(data).ok_or(malformed(
            "the key is not base64 of an Ed25519 type byte and 32 bytes",
        ))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| malformed("the key is not an Ed25519 public key"))?;
        if key.is_weak() {
            return Err(malformed("the key is a weak (small order) Ed25519 key"));
        }
        let verifier = VerifierKey::new(name, key);
        if verifier.id != id {
            return Err(malformed("its key id does not match the key"));
        }
        Ok(verifier)
    }
}

/// The signed-note key id of an Ed25519 key.
fn key_id(name: &str, key: &ed25519_dalek::VerifyingKey) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(key.as_bytes())
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Checks a key name against signed-note's rules (and a length limit).
pub(crate) fn check_name(name: &str) -> Result<(), KeyError> {
    let invalid = |reason| KeyError::InvalidName {
        name: name.escape_debug().to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(invalid("it is longer than 256 bytes"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains whitespace or control characters"));
    }
    if name.contains('+') {
        return Err(invalid("it contains `+`"));
    }
    Ok(())
}

/// Splits `<name>+<8 hex digits>+<data>`; the data may contain `+` itself.
fn split_key(text: &str) -> Option<(&str, u32, &str)> {
    let mut parts = text.splitn(3, '+');
    let (name, id, data) = (parts.next()?, parts.next()?, parts.next()?);
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((name, u32::from_str_radix(id, 16).ok()?, data))
}

/// Decodes `base64(0x01 || 32 bytes)`.
fn key_data(data: &str) -> Option<[u8; 32]> {
    let bytes = BASE64.decode(data).ok()?;
    let (&alg, key) = bytes.split_first()?;
    if alg != ALG_ED25519 {
        return None;
    }
    key.try_into().ok()
}

fn read_key_file(path: &Path) -> Result<String, KeyError> {
    let read_error = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than a key file",
        )));
    }
    std::fs::read_to_string(path).map_err(read_error)
}

fn write_key_file(path: &Path, text: &str, mode: u32) -> Result<(), KeyError> {
    let write_error = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(write_error)
}
