//! GRACE's host server: the HTTP API, the trigger mesh at work, runs that survive restarts.
//!
//! - [`config`]: settings from defaults, `grace.toml`, flags and environment; [`limits`]: its
//!   `[limits]`, what manifests may ask and what each run may hold;
//! - [`store`]: playbooks, runs and events in the data directory's redb database;
//! - [`app`]: ingest → match → run, and the operations the API exposes;
//! - [`api`]: the axum routers, one per resource; [`error`]: their one error type;
//! - [`auth`]: bearer tokens with scopes, the route table, the [`auth::Caller`] extractor and
//!   the audit trail; [`signing`]: signed playbook uploads and the trust roots;
//! - [`listener`]: the serve loop: connection limit, header read timeout, graceful shutdown;
//!   [`tls`]: the certificate it serves HTTPS with, reloaded on SIGHUP;
//! - [`metrics`]: the `/metrics` endpoint;
//! - [`replay`]: recorded events against playbooks, in virtual time;
//! - [`sources`]: Alertmanager webhooks and pushed metrics turned into events;
//! - [`supervisor`]: the background tasks, restarted when they die, their health in `/healthz`.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod providers;
pub mod replay;
pub mod runs;
pub mod signing;
pub mod sources;
pub mod store;
pub mod supervisor;
pub mod tls;
pub mod trust;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use app::{App, StartError};
pub use config::ServeConfig;

/// A started server.
pub struct Server {
    /// The shared state.
    pub app: Arc<App>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The certificate served, when the API speaks HTTPS.
    pub tls: Option<Arc<tls::TlsCertificates>>,
    listener: tokio::net::TcpListener,
}

impl Server {
    /// Reads the TLS pair if any, opens the data directory, recovers, and binds the listener.
    pub async fn bind(config: ServeConfig) -> Result<Server, StartError> {
        let listen = config.listen;
        // Before anything else: a bad certificate is a bad setting, said at once.
        let tls = match &config.tls {
            Some(files) => Some(tls::TlsCertificates::load(&files.cert, &files.key)?),
            None => None,
        };
        let app = App::start(config).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| StartError::Other(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Other(e.to_string()))?;
        Ok(Server {
            app,
            addr,
            tls,
            listener,
        })
    }

    /// The base URL clients reach it at: `https://` with TLS, else `http://`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Serves until `shutdown` resolves, within the configured connection limits (see
    /// [`listener`]). With TLS, SIGHUP reloads the certificate and key (see [`tls`]).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = listener::ConnectionLimits {
            max_connections: self.app.config.max_connections,
            header_read_timeout: self.app.config.header_read_timeout,
        };
        let tls = match &self.tls {
            Some(certificates) => {
                #[cfg(unix)]
                reload_on_sighup(certificates.clone())?;
                Some(
                    certificates
                        .server_config()
                        .map_err(|e| std::io::Error::other(e.to_string()))?,
                )
            }
            None => None,
        };
        listener::serve(self.listener, api::router(self.app), limits, tls, shutdown).await
    }
}

/// Reloads `certificates` on each SIGHUP, for as long as the runtime runs; a pair that cannot
/// be used is logged and the old one kept.
#[cfg(unix)]
fn reload_on_sighup(certificates: Arc<tls::TlsCertificates>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match certificates.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!("SIGHUP: TLS certificate not reloaded, the old one stays: {e}")
                }
            }
        }
    });
    Ok(())
}
