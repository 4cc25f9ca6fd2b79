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
pub mod replay;
pub mod runs;
pub mod signing;
pub mod sources;
pub mod store;
pub mod supervisor;
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
    listener: tokio::net::TcpListener,
}

impl Server {
    /// Opens the data directory, recovers, and binds the listener.
    pub async fn bind(config: ServeConfig) -> Result<Server, StartError> {
        let listen = config.listen;
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
            listener,
        })
    }

    /// Serves until `shutdown` resolves, within the configured connection limits (see
    /// [`listener`]).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = listener::ConnectionLimits {
            max_connections: self.app.config.max_connections,
            header_read_timeout: self.app.config.header_read_timeout,
        };
        listener::serve(self.listener, api::router(self.app), limits, shutdown).await
    }
}
