//! The connection to the engine: NATS options from `[cluster]`, and whether the connection is up
//! now (for readiness).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ClusterError;
use crate::settings::{ClusterSettings, ClusterTls};

/// Largest certificate or key file read.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// How often the client pings the server: a connection cut without a reset (a partition) is
/// noticed after two unanswered pings, well within a lease.
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// A connection to the engine, shared by everything clustered in one replica.
#[derive(Clone)]
pub struct Engine {
    js: jetstream::Context,
    link: Arc<Link>,
}

/// What the client reported last about its connection.
#[derive(Default)]
struct Link {
    up: AtomicBool,
    disconnects: AtomicU64,
}

impl Engine {
    /// Connects with the settings' URLs, credentials and TLS. Fails when no node answers within
    /// the request timeout; once connected, the client reconnects by itself forever (to any
    /// node of the cluster, or only to the URLs given without `discover_servers`), and
    /// [`Engine::connected`] says whether it is connected now.
    pub async fn connect(settings: &ClusterSettings) -> Result<Engine, ClusterError> {
        let urls = settings.nats.join(",");
        let fail = |message: String| ClusterError::Connect {
            urls: urls.clone(),
            message,
        };
        let link = Arc::new(Link::default());
        let events = link.clone();
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("grace {}", settings.replica_name()))
            .ping_interval(PING_INTERVAL)
            .connection_timeout(settings.request_timeout)
            .request_timeout(Some(settings.request_timeout))
            .max_reconnects(None)
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => events.up.store(true, Ordering::SeqCst),
                        async_nats::Event::Disconnected => {
                            events.up.store(false, Ordering::SeqCst);
                            events.disconnects.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!("disconnected from the engine");
                        }
                        async_nats::Event::Closed => events.up.store(false, Ordering::SeqCst),
                        other => tracing::debug!(event = %other, "engine connection event"),
                    }
                }
            });
        if !settings.discover_servers {
            options = options.ignore_discovered_servers();
        }
        if let Some(path) = &settings.credentials {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| fail(format!("credentials {}: {e}", path.display())))?;
        }
        if let Some(token) = &settings.token {
            options = options.token(token.clone());
        }
        if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let tls_urls = settings.nats.iter().any(|u| u.starts_with("tls://"));
        if settings.tls.is_some() || tls_urls {
            let config = client_tls(settings.tls.as_ref()).map_err(fail)?;
            options = options.require_tls(true).tls_client_config(config);
        }
        let addrs: Vec<async_nats::ServerAddr> = settings
            .nats
            .iter()
            .map(|u| u.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| fail(format!("{e}")))?;
        let client = options
            .connect(addrs)
            .await
            .map_err(|e| fail(e.to_string()))?;
        link.up.store(true, Ordering::SeqCst);
        let js = jetstream::ContextBuilder::new()
            .timeout(settings.request_timeout)
            .build(client);
        Ok(Engine { js, link })
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Whether the client is connected to a node now.
    pub fn connected(&self) -> bool {
        self.link.up.load(Ordering::SeqCst)
    }

    /// How many times the connection was lost since start.
    pub fn disconnects(&self) -> u64 {
        self.link.disconnects.load(Ordering::Relaxed)
    }
}

/// The rustls configuration: the CA given (else the system's roots) and the client certificate
/// if any, on aws-lc-rs.
fn client_tls(tls: Option<&ClusterTls>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match tls.and_then(|t| t.ca.as_deref()) {
        Some(ca) => {
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.ca {}: {e}", ca.display()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err("no system certificate authorities: set tls.ca".to_owned());
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    match tls.map(|t| (t.cert.as_deref(), t.key.as_deref())) {
        Some((Some(cert), Some(key))) => {
            let chain = read_certs(cert)?;
            let key_pem = read_bounded(key)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| format!("tls.key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls.cert: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_bounded(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "{}: larger than {MAX_PEM_BYTES} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}
