//! TLS for the API: the server's certificate and key, and their reload.
//!
//! The pair is read from two PEM files (`tls_cert`, `tls_key`), each at most
//! [`MAX_PEM_BYTES`]: the certificate file holds the chain, leaf first; the key file one private
//! key (PKCS#8, PKCS#1 or SEC1). The key must match the leaf's public key, checked at load.
//!
//! [`TlsCertificates::reload`] reads the files again (on SIGHUP, see [`crate::Server::serve`]):
//! a good new pair serves every handshake from then on, while connections already established
//! keep the session they negotiated; a bad one is refused and the old pair stays.
//!
//! The cryptography is rustls' default provider, `aws-lc-rs`, named explicitly: the dependency
//! tree also builds `ring` (through kube), and rustls refuses to guess between two.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Largest certificate or key file read: a chain of a few certificates is a few KiB.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The PEM files the server's TLS pair is read from (`tls_cert`, `tls_key` in `grace.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (`tls_cert`).
    pub cert: PathBuf,
    /// The private key (`tls_key`).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The pair from its two settings, given together or not at all.
    pub fn pair(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, crate::config_error::ConfigError> {
        use crate::config_error::ConfigError;
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError::invalid(
                "tls_key",
                "missing: tls_cert needs its key (`--tls-key FILE` or `tls_key`)",
            )),
            (None, Some(_)) => Err(ConfigError::invalid(
                "tls_cert",
                "missing: tls_key needs its certificate (`--tls-cert FILE` or `tls_cert`)",
            )),
        }
    }
}

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read, or is larger than [`MAX_PEM_BYTES`].
    #[error("cannot read `{path}`: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The certificate file holds no usable certificate.
    #[error("tls_cert: `{path}` {message}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The key file holds no usable private key.
    #[error("tls_key: `{path}` {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The key is not the certificate's, or rustls refused the pair.
    #[error("tls_key: `{key}` does not go with `{cert}`: {message}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        message: String,
    },
}

/// The crypto provider of every TLS connection the server (and the CLI) makes.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificate and key the server presents, swapped on reload.
#[derive(Debug)]
pub struct TlsCertificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl TlsCertificates {
    /// Reads the pair at `cert` and `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<TlsCertificates>, TlsError> {
        let provider = provider();
        let pair = read_pair(cert, key, &provider)?;
        Ok(Arc::new(TlsCertificates {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(pair)),
        }))
    }

    /// Reads the files again: a good pair replaces the current one for new handshakes; on an
    /// error the current pair stays and the error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.cert, &self.key, &self.provider)?;
        // A poisoned lock only means a reader panicked holding it; the value is a whole `Arc`.
        let mut current = crate::sync::write(&self.current);
        *current = Arc::new(pair);
        Ok(())
    }

    /// The certificate chain served now, leaf first.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current().cert.clone()
    }

    fn current(&self) -> Arc<CertifiedKey> {
        crate::sync::read(&self.current).clone()
    }

    /// The rustls server configuration: HTTP/1.1 only (what the serve loop speaks), TLS 1.2 and
    /// 1.3, the certificate chosen at each handshake from the current pair.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Pair {
                cert: self.cert.clone(),
                key: self.key.clone(),
                message: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for TlsCertificates {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reads a file of at most [`MAX_PEM_BYTES`].
fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read as _;
    let read = |message: String| TlsError::Read {
        path: path.to_owned(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| read(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read(e.to_string()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(read(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    Ok(bytes)
}

/// Reads and checks a pair: at least one certificate, one private key, and the key matching
/// the leaf.
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_bounded(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate {
            path: cert.to_owned(),
            message: format!("is not PEM: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.to_owned(),
            message: "holds no `CERTIFICATE` block".into(),
        });
    }
    let key_pem = read_bounded(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        message: format!("holds no private key: {e}"),
    })?;
    // `from_der` checks the key against the leaf's public key.
    CertifiedKey::from_der(chain, private, provider).map_err(|e| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let made = rcgen::generate_simple_self_signed(sans).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn a_pair_is_loaded_and_serves_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a", &["localhost"]);
        let tls = TlsCertificates::load(&cert, &key).unwrap();
        let pem = std::fs::read(&cert).unwrap();
        let expected = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(tls.chain(), vec![expected]);
        tls.server_config().unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_pair(dir.path(), "a", &["localhost"]);
        let (_, other_key) = write_pair(dir.path(), "b", &["localhost"]);
        let e = TlsCertificates::load(&cert, &other_key)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tls_key: "), "{e}");
        assert!(e.contains("b.key") && e.contains("a.crt"), "{e}");
    }

    #[test]
    fn a_certificate_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_pair(dir.path(), "a", &["localhost"]);
        let e = TlsCertificates::load(&key, &key).unwrap_err().to_string();
        assert!(
            e.starts_with("tls_cert: ") && e.contains("no `CERTIFICATE`"),
            "{e}"
        );
    }

    #[test]
    fn an_oversized_file_is_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_pair(dir.path(), "a", &["localhost"]);
        let big = dir.path().join("big.crt");
        std::fs::write(&big, vec![b'a'; MAX_PEM_BYTES as usize + 1]).unwrap();
        let e = TlsCertificates::load(&big, &key).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn a_reload_serves_the_new_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a", &["localhost"]);
        let tls = TlsCertificates::load(&cert, &key).unwrap();
        let before = tls.chain();
        let (new_cert, new_key) = write_pair(dir.path(), "b", &["localhost"]);
        std::fs::rename(&new_cert, &cert).unwrap();
        std::fs::rename(&new_key, &key).unwrap();
        tls.reload().unwrap();
        assert_ne!(tls.chain(), before);
        let pem = std::fs::read(&cert).unwrap();
        assert_eq!(
            tls.chain(),
            vec![CertificateDer::from_pem_slice(&pem).unwrap()]
        );
    }

    #[test]
    fn a_bad_pair_on_reload_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a", &["localhost"]);
        let tls = TlsCertificates::load(&cert, &key).unwrap();
        let before = tls.chain();
        // A new certificate whose key was not replaced: the pair does not match.
        let (new_cert, _) = write_pair(dir.path(), "b", &["localhost"]);
        std::fs::rename(&new_cert, &cert).unwrap();
        let e = tls.reload().unwrap_err().to_string();
        assert!(e.starts_with("tls_key: "), "{e}");
        assert_eq!(tls.chain(), before);
        // A truncated key file: the same.
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(tls.chain(), before);
    }
}
