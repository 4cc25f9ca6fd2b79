//! Signed playbooks: a detached Ed25519 signature over a playbook's component and manifest, made
//! by `grace playbook sign` and checked by the server against its trust roots before an upload is
//! stored.
//!
//! The signature file (`playbook.toml.sig` next to the manifest by default) is text:
//!
//! ```text
//! grace-playbook-signature v1
//! key release-team+1a2b3c4d
//! component sha256:<hex of the component's bytes>
//! manifest sha256:<hex of the manifest file's exact bytes>
//! signature <base64 of the 64-byte Ed25519 signature>
//! ```
//!
//! The signed message is domain-separated and binds both digests, so neither the component nor
//! the manifest (its grants, its triggers) can be swapped under a signature:
//!
//! ```text
//! grace-playbook-signature v1\ncomponent sha256:<hex>\nmanifest sha256:<hex>\n
//! ```
//!
//! Keys are the named Ed25519 keys of `grace keys generate` ([`grace_ledger::SigningKey`],
//! signed-note format); `key` names the signer as `<name>+<key id>`, which the server looks up
//! among its trust roots (`[[trust_roots]]` in `grace.toml`).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use grace_ledger::{KeyError, SigningKey, VerifierKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first line of a signature file, and the start of the signed message.
pub const FORMAT: &str = "grace-playbook-signature v1";

/// The largest signature file accepted.
pub const MAX_SIGNATURE_BYTES: usize = 4096;

/// `sha256:<hex>` of `bytes`: how the server names components and manifests.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The message a signature covers.
pub fn message(component_digest: &str, manifest_digest: &str) -> String {
    format!("{FORMAT}\ncomponent {component_digest}\nmanifest {manifest_digest}\n")
}

/// Where a manifest's signature goes unless told otherwise: `<manifest file>.sig`.
pub fn default_path(manifest: &Path) -> PathBuf {
    let mut name = manifest.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// A parsed signature file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The signer, `<name>+<key id>`.
    pub key: String,
    /// The component digest it claims.
    pub component: String,
    /// The manifest digest it claims.
    pub manifest: String,
    /// The Ed25519 signature.
    pub signature: Vec<u8>,
}

/// Why a signature file is malformed or a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The file is not a signature file.
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    /// The upload carries no signature and unsigned uploads are not allowed.
    #[error(
        "the upload is not signed: sign it with `grace playbook sign <dir> --key <key>` by a key among the server's trust roots (or start the server with `--allow-unsigned-playbooks` for development)"
    )]
    Unsigned,
    /// No trust root has this key.
    #[error("the signing key `{0}` is not among the server's trust roots")]
    UnknownKey(String),
    /// The component is not the one signed.
    #[error(
        "the component's digest `{actual}` is not the signed one (`{signed}`, key `{key}`): the component was changed after signing"
    )]
    ComponentMismatch {
        /// The signer.
        key: String,
        /// The digest signed.
        signed: String,
        /// The digest uploaded.
        actual: String,
    },
    /// The manifest is not the one signed.
    #[error(
        "the manifest's digest `{actual}` is not the signed one (`{signed}`, key `{key}`): the manifest was changed after signing"
    )]
    ManifestMismatch {
        /// The signer.
        key: String,
        /// The digest signed.
        signed: String,
        /// The digest uploaded.
        actual: String,
    },
    /// The Ed25519 signature does not verify.
    #[error(
        "the signature by key `{0}` does not verify: the signature file was altered or made by another key"
    )]
    BadSignature(String),
}

impl Signature {
    /// Signs a component and a manifest's exact bytes with `key`.
    pub fn sign(key: &SigningKey, component: &[u8], manifest: &[u8]) -> Signature {
        let (component, manifest) = (digest(component), digest(manifest));
        let signature = key.sign(message(&component, &manifest).as_bytes()).to_vec();
        let v = key.verifier();
        Signature {
            key: format!("{}+{:08x}", v.name(), v.id()),
            component,
            manifest,
            signature,
        }
    }

    /// The signature file's text.
    pub fn to_text(&self) -> String {
        format!(
            "{FORMAT}\nkey {}\ncomponent {}\nmanifest {}\nsignature {}\n",
            self.key,
            self.component,
            self.manifest,
            BASE64.encode(&self.signature)
        )
    }

    /// Parses a signature file.
    pub fn parse(text: &str) -> Result<Signature, SignatureError> {
        let bad = |m: &str| SignatureError::Malformed(m.to_owned());
        if text.len() > MAX_SIGNATURE_BYTES {
            return Err(bad("it is larger than a signature file"));
        }
        let mut lines = text.lines();
        if lines.next().map(str::trim_end) != Some(FORMAT) {
            return Err(bad(&format!("its first line is not `{FORMAT}`")));
        }
        let (mut key, mut component, mut manifest, mut signature) = (None, None, None, None);
        for line in lines.map(str::trim_end).filter(|l| !l.is_empty()) {
            let (field, value) = line.split_once(' ').ok_or_else(|| {
                bad(&format!(
                    "line `{}` is not `<field> <value>`",
                    line.escape_debug()
                ))
            })?;
            let slot = match field {
                "key" => &mut key,
                "component" => &mut component,
                "manifest" => &mut manifest,
                "signature" => &mut signature,
                other => {
                    return Err(bad(&format!("unknown field `{}`", other.escape_debug())));
                }
            };
            if slot.replace(value.to_owned()).is_some() {
                return Err(bad(&format!("field `{field}` appears twice")));
            }
        }
        let need =
            |v: Option<String>, f: &str| v.ok_or_else(|| bad(&format!("field `{f}` is missing")));
        let signature = BASE64
            .decode(need(signature, "signature")?)
            .map_err(|_| bad("`signature` is not base64"))?;
        if signature.len() != 64 {
            return Err(bad("`signature` is not 64 bytes"));
        }
        Ok(Signature {
            key: need(key, "key")?,
            component: need(component, "component")?,
            manifest: need(manifest, "manifest")?,
            signature,
        })
    }
}

/// Who signed a stored version: shown by the API and `grace playbook show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBy {
    /// The trust root's name in `grace.toml`.
    pub trust_root: String,
    /// The key, `<name>+<key id>`.
    pub key: String,
}

/// One trusted key, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRootConfig {
    /// A name for people and the API (`release-team`).
    pub name: String,
    /// The public key: its text (`<name>+<id>+<base64>`, as in the `.pub` file of
    /// `grace keys generate`) or the path of such a file.
    pub public_key: String,
}

/// Why a configured trust root cannot be used; the message names it
/// (`trust_roots[1] (release-team)`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustRootError {
    /// A root without a name.
    #[error("trust_roots[{index}]: `name` is empty")]
    EmptyName {
        /// Its place in `trust_roots`.
        index: usize,
    },
    /// `public_key` is neither a key nor a file.
    #[error("{at}: `public_key` is neither a public key ({reason}) nor an existing file")]
    NotAKey {
        /// The root.
        at: String,
        /// Why the text is not a key.
        reason: KeyError,
    },
    /// The key file cannot be used.
    #[error("{at}: {source}")]
    KeyFile {
        /// The root.
        at: String,
        /// Why.
        source: KeyError,
    },
    /// Two roots with one key.
    #[error("{at}: the same key as trust root `{other}`")]
    Duplicate {
        /// The root.
        at: String,
        /// The root with the same key.
        other: String,
    },
}

impl TrustRootConfig {
    /// A key file (`--trust-root release.key.pub`), named after its key.
    pub fn from_key_file(path: &Path) -> Result<TrustRootConfig, KeyError> {
        let key = VerifierKey::load(path)?;
        Ok(TrustRootConfig {
            name: key.name().to_owned(),
            public_key: key.to_string(),
        })
    }
}

/// The keys uploads may be signed by.
#[derive(Debug, Clone, Default)]
pub struct TrustRoots {
    roots: Vec<(String, VerifierKey)>,
}

impl TrustRoots {
    /// Reads every configured root; an error names the root (`trust_roots[1] (release-team)`).
    pub fn load(config: &[TrustRootConfig]) -> Result<TrustRoots, TrustRootError> {
        let mut roots: Vec<(String, VerifierKey)> = Vec::new();
        for (i, root) in config.iter().enumerate() {
            let at = format!("trust_roots[{i}] (`{}`)", root.name);
            if root.name.trim().is_empty() {
                return Err(TrustRootError::EmptyName { index: i });
            }
            let text = root.public_key.trim();
            let key = match text.parse::<VerifierKey>() {
                Ok(k) => k,
                Err(reason) => {
                    let path = Path::new(text);
                    if !path.exists() {
                        return Err(TrustRootError::NotAKey { at, reason });
                    }
                    VerifierKey::load(path).map_err(|source| TrustRootError::KeyFile {
                        at: at.clone(),
                        source,
                    })?
                }
            };
            if let Some((other, _)) = roots
                .iter()
                .find(|(_, k)| k.id() == key.id() && k.name() == key.name())
            {
                return Err(TrustRootError::Duplicate {
                    at,
                    other: other.clone(),
                });
            }
            roots.push((root.name.clone(), key));
        }
        Ok(TrustRoots { roots })
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The trusted keys, `(trust root name, key)`.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &VerifierKey)> {
        self.roots.iter().map(|(n, k)| (n.as_str(), k))
    }

    /// Checks `signature` over an upload's component and manifest bytes.
    pub fn verify(
        &self,
        signature: &Signature,
        component: &[u8],
        manifest: &[u8],
    ) -> Result<SignedBy, SignatureError> {
        let (name, key) = self
            .roots
            .iter()
            .find(|(_, k)| format!("{}+{:08x}", k.name(), k.id()) == signature.key)
            .ok_or_else(|| SignatureError::UnknownKey(signature.key.clone()))?;
        let (component, manifest) = (digest(component), digest(manifest));
        if component != signature.component {
            return Err(SignatureError::ComponentMismatch {
                key: signature.key.clone(),
                signed: signature.component.clone(),
                actual: component,
            });
        }
        if manifest != signature.manifest {
            return Err(SignatureError::ManifestMismatch {
                key: signature.key.clone(),
                signed: signature.manifest.clone(),
                actual: manifest,
            });
        }
        if !key.verifies(
            message(&component, &manifest).as_bytes(),
            &signature.signature,
        ) {
            return Err(SignatureError::BadSignature(signature.key.clone()));
        }
        Ok(SignedBy {
            trust_root: name.clone(),
            key: signature.key.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn roots(key: &SigningKey) -> TrustRoots {
        TrustRoots::load(&[TrustRootConfig {
            name: "release-team".into(),
            public_key: key.verifier().to_string(),
        }])
        .unwrap()
    }

    #[test]
    fn a_signature_by_a_trusted_key_verifies_and_names_the_root() {
        let key = grace_ledger::generate_key("release").unwrap();
        let sig = Signature::sign(&key, b"wasm", b"manifest");
        let parsed = Signature::parse(&sig.to_text()).unwrap();
        assert_eq!(parsed, sig);
        let by = roots(&key).verify(&parsed, b"wasm", b"manifest").unwrap();
        assert_eq!(by.trust_root, "release-team");
        assert!(by.key.starts_with("release+"));
    }

    #[test]
    fn a_swapped_component_or_manifest_or_an_unknown_key_is_refused() {
        let key = grace_ledger::generate_key("release").unwrap();
        let sig = Signature::sign(&key, b"wasm", b"manifest");
        let trusted = roots(&key);
        assert!(matches!(
            trusted.verify(&sig, b"other wasm", b"manifest"),
            Err(SignatureError::ComponentMismatch { .. })
        ));
        assert!(matches!(
            trusted.verify(&sig, b"wasm", b"manifest "),
            Err(SignatureError::ManifestMismatch { .. })
        ));
        let stranger = grace_ledger::generate_key("release").unwrap();
        let by_stranger = Signature::sign(&stranger, b"wasm", b"manifest");
        assert!(matches!(
            trusted.verify(&by_stranger, b"wasm", b"manifest"),
            Err(SignatureError::UnknownKey(_))
        ));
        // The stranger's bytes under the trusted key's name.
        let forged = Signature {
            key: sig.key.clone(),
            ..by_stranger
        };
        assert!(matches!(
            trusted.verify(&forged, b"wasm", b"manifest"),
            Err(SignatureError::BadSignature(_))
        ));
    }

    #[test]
    fn malformed_files_are_refused_saying_why() {
        for (text, why) in [
            ("hello", "first line"),
            ("grace-playbook-signature v1\nkey a+00000000\n", "missing"),
            ("grace-playbook-signature v1\nkey a\nkey b\n", "twice"),
            ("grace-playbook-signature v1\nowner me\n", "unknown field"),
        ] {
            let e = Signature::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_bad_trust_root_is_named() {
        let e = TrustRoots::load(&[TrustRootConfig {
            name: "ops".into(),
            public_key: "/no/such/key.pub".into(),
        }])
        .unwrap_err();
        assert!(e.to_string().starts_with("trust_roots[0] (`ops`)"), "{e}");
    }

    #[test]
    fn the_default_signature_path_is_next_to_the_manifest() {
        assert_eq!(
            default_path(Path::new("p/playbook.toml")),
            PathBuf::from("p/playbook.toml.sig")
        );
    }
}
