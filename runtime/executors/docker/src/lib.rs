//! GRACE's `containers` capability on a Docker-compatible engine: Docker Engine, or Podman's
//! Docker API service, through bollard.
//!
//! [`Docker`] implements [`ContainerExecutor`] so that a playbook that passed its dry-run on the
//! simulated fleet acts the same way on real containers:
//!
//! - `list` gives every container (running or not) carrying all the selector's labels, using
//!   the API's label filter, then inspects each one for its health, sorted by name.
//! - `inspect`, `start`, `stop`, `restart` and `logs` take an id or a name; `stop` and
//!   `restart` give the container [`DockerSettings::stop_timeout`] to exit.
//! - `scale` makes exactly N running containers carry the selector (see [`scale`] for what a
//!   clone copies).
//!
//! [`Docker::discover`] reports every container and the workloads they make up to the health
//! graph (`grace_graph`), bounded by the caller.
//!
//! Every API call has a time limit ([`DockerSettings::call_timeout`]) and every failure becomes
//! an [`ExecError`] naming the operation and the container (see [`error`] for the mapping).
//!
//! Connecting is lazy: [`Docker::connect`] only checks the settings, and the first call reaches
//! the engine (negotiating the API version, so an engine older than bollard's default API still
//! answers). GRACE can thus start before the engine; calls fail with
//! [`ExecError::Unavailable`] until it is up, and the engine retries those.

mod containers;
mod discover;
pub mod error;
mod logs;
mod model;
mod podman;
pub mod scale;
mod settings;

use std::future::Future;
use std::time::Duration;

#[cfg(doc)]
use grace_executor::ContainerExecutor;
use grace_executor::ExecError;
use tokio::sync::OnceCell;

pub use logs::MAX_TAIL;
pub use scale::MAX_REPLICAS;
pub use settings::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_HOST, DEFAULT_STOP_TIMEOUT, DockerSettings, SettingsError,
};

use settings::Host;

/// A Docker-compatible engine, as GRACE's container provider.
#[derive(Debug)]
pub struct Docker {
    host: Host,
    settings: DockerSettings,
    /// The bollard client, made on first use (see the crate documentation).
    engine: OnceCell<bollard::Docker>,
}

/// What the engine says it is, for health checks and `grace` diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// The engine's own version, e.g. `4.3.1` for Podman or `27.3.1` for Docker.
    pub version: String,
    /// The newest Docker API version it speaks, e.g. `1.41`.
    pub api_version: String,
}

impl Docker {
    /// A provider for the engine the settings name. Checks the settings only: nothing is
    /// contacted until the first call.
    pub fn connect(settings: &DockerSettings) -> Result<Docker, SettingsError> {
        settings.validate()?;
        let host = settings.resolve_host()?;
        Ok(Docker {
            host,
            settings: settings.clone(),
            engine: OnceCell::new(),
        })
    }

    /// The engine's address, e.g. `unix:///run/podman/podman.sock`.
    pub fn host(&self) -> String {
        self.host.to_string()
    }

    /// Checks that the engine answers (`GET /_ping`).
    pub async fn ping(&self) -> Result<(), ExecError> {
        let what = "ping the engine";
        let engine = self.engine(what).await?;
        self.call(what, self.settings.call_timeout, engine.ping())
            .await
            .map(|_| ())
    }

    /// The engine's version (`GET /version`).
    pub async fn version(&self) -> Result<EngineVersion, ExecError> {
        let what = "ask the engine's version";
        let engine = self.engine(what).await?;
        let v = self
            .call(what, self.settings.call_timeout, engine.version())
            .await?;
        Ok(EngineVersion {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
        })
    }

    /// The bollard client, connected and version-negotiated on first use. A failed attempt is
    /// not remembered: the next call tries again.
    async fn engine(&self, what: &str) -> Result<&bollard::Docker, ExecError> {
        self.engine
            .get_or_try_init(|| async {
                // bollard's own limit only covers waiting for response headers; ours (below)
                // covers whole calls, so bollard's must never be the shorter one.
                let limit = self.settings.call_timeout + self.settings.stop_timeout;
                let secs = limit.as_secs() + 1;
                let version = bollard::API_DEFAULT_VERSION;
                let engine = match &self.host {
                    Host::Unix(path) => bollard::Docker::connect_with_unix(path, secs, version),
                    Host::Http(address) => {
                        bollard::Docker::connect_with_http(address, secs, version)
                    }
                }
                .map_err(|e| error::map(&self.host, what, e))?;
                self.call(what, self.settings.call_timeout, engine.negotiate_version())
                    .await
            })
            .await
    }

    /// Runs one API call with a time limit, mapping its failure.
    async fn call<T>(
        &self,
        what: &str,
        limit: Duration,
        call: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, ExecError> {
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let e = error::map(&self.host, what, e);
                tracing::debug!(host = %self.host, error = %e, "docker call failed");
                Err(e)
            }
            Err(_) => Err(error::timed_out(&self.host, what, limit)),
        }
    }

    /// The time limit of a call that waits for a container to stop.
    fn stopping_limit(&self) -> Duration {
        self.settings.call_timeout + self.settings.stop_timeout
    }
}
