//! GRACE's host server: the HTTP API, the trigger mesh at work, runs that survive restarts.
//!
//! The server is a composition of parts with one job each ([`app`] builds them; no part knows
//! the app, and handlers take only the parts they need):
//!
//! - [`intake`]: events in (API, sources, collectors), stored durably, then queued;
//! - [`shard_import`]: in a cluster, the owned shards' events imported from the cluster's event log;
//! - [`scheduler`]: queue → trigger mesh → runs: claims and exclusivity, workers, retries with
//!   backoff, approvals, cancel and resume; [`triggers`]: the mesh and claims it shares with
//!   the registry; [`runs`]: a run's record and states;
//! - [`registry`]: playbook and collector versions, their compiled components (a bounded cache
//!   of superseded ones); [`collectors`]: enabled collectors polled like sources;
//! - [`sources`]: Alertmanager webhooks, pushed metrics and polled sources turned into events;
//!   its [`sources::supervisor`] runs the polled ones and sends their batches to the intake
//!   over a bounded channel;
//! - [`providers`]: what runs act through, built from the settings and `[[providers]]`; [`trust`]: the trust core;
//! - [`store`]: playbooks, runs and events in the data directory's redb database;
//! - [`config`]: settings from defaults, `grace.toml`, flags and environment, and
//!   [`config_error`], the error every section's check returns; [`limits`]: its `[limits]`,
//!   what manifests may ask and what each run may hold;
//! - [`api`]: the axum routers, one per resource, and [`api::state`], the parts handlers take;
//!   [`error`]: their one error type;
//! - [`auth`]: bearer tokens with scopes, the route table, the [`auth::Caller`] extractor and
//!   the audit trail; [`signing`]: signed playbook uploads and the trust roots;
//! - [`listener`]: the serve loop: connection limit, header read timeout, graceful shutdown;
//!   [`tls`]: the certificate it serves HTTPS with, reloaded on SIGHUP;
//! - [`simulation`]: with `--simulate`, what may move the simulated fleet's clock, and its
//!   state kept across restarts;
//! - [`metrics`]: the `/metrics` endpoint; [`replay`]: recorded events against playbooks, in
//!   virtual time;
//! - [`supervisor`]: the background tasks, restarted when they die, their health in `/healthz`;
//!   [`maintenance`]: event retention and ledger checkpoints; [`sync`]: the one way to lock.

pub mod anomaly;
pub mod api;
pub mod app;
pub mod auth;
pub mod cluster_ledger;
pub mod collectors;
pub mod config;
pub mod config_error;
pub mod dashboard;
pub mod error;
pub mod fence;
pub mod graph;
pub mod incidents;
pub mod intake;
pub mod limits;
pub mod listener;
pub mod maintenance;
pub mod meta;
pub mod metrics;
pub mod notify;
pub mod outcomes;
pub mod providers;
pub mod registry;
pub mod replay;
pub mod runs;
pub mod scheduler;
pub mod shard_import;
pub mod shared_credentials;
pub mod shared_playbooks;
pub mod shared_policies;
pub mod shared_runs;
pub mod signing;
pub mod simulation;
pub mod sources;
pub mod store;
pub mod supervisor;
pub mod sync;
pub mod tls;
pub mod triggers;
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
        let tls = match &config.tls() {
            Some(files) => Some(tls::TlsCertificates::load(&files.cert, &files.key)?),
            None => None,
        };
        let app = App::start(config).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Io {
                what: format!("cannot listen on {listen}"),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Io {
            what: "cannot read the listening address".into(),
            source,
        })?;
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
        // The dashboard's event streams never end by themselves: end them as shutdown begins,
        // so that the requests in flight can finish.
        let dashboard = self.app.dashboard.clone();
        let shutdown = async move {
            shutdown.await;
            dashboard.live.close();
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
