//! [`Kube`]: a connection to one cluster's API server, and how it is made.

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::errors::ConnectError;
use crate::settings::KubeSettings;

/// GRACE's Kubernetes provider: one cluster, reached through kube.
///
/// Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct Kube {
    pub(crate) client: kube::Client,
    /// The API server's URL, for messages.
    pub(crate) server: String,
    pub(crate) call_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) conflict_retries: u32,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("server", &self.server)
            .field("call_timeout", &self.call_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("conflict_retries", &self.conflict_retries)
            .finish_non_exhaustive()
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

impl Kube {
    /// Connects as `settings` say: the kubeconfig file `kubeconfig` when set, otherwise the one
    /// kube finds (`KUBECONFIG`, then `~/.kube/config`), at `context` or the current context;
    /// with neither set and no kubeconfig found, the in-cluster service account.
    ///
    /// Nothing is sent to the server yet: a wrong address shows at the first call, as
    /// [`grace_executor::ExecError::Unavailable`]. Call within a Tokio runtime.
    pub async fn connect(settings: &KubeSettings) -> Result<Kube, ConnectError> {
        settings.validate().map_err(ConnectError::Settings)?;
        let options = KubeConfigOptions {
            context: settings.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match &settings.kubeconfig {
            Some(path) => {
                let unusable = |e: &dyn std::error::Error| ConnectError::Kubeconfig {
                    path: Some(path.clone()),
                    message: chain(e),
                };
                let file = Kubeconfig::read_from(path).map_err(|e| unusable(&e))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| unusable(&e))?
            }
            // A context names a kubeconfig entry: falling back to in-cluster would ignore it.
            None if settings.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| ConnectError::Kubeconfig {
                    path: None,
                    message: chain(&e),
                })?,
            None => kube::Config::infer()
                .await
                .map_err(|e| ConnectError::NotConfigured(chain(&e)))?,
        };
        Kube::from_config(config, settings)
    }

    /// Connects to the API server at `url` (`http://127.0.0.1:6443`) without credentials: for
    /// test servers and `kubectl proxy`. `settings` gives the time limits and retries; its
    /// `kubeconfig` and `context` must be unset, since they would not be used.
    ///
    /// Call within a Tokio runtime.
    pub fn for_url(url: &str, settings: &KubeSettings) -> Result<Kube, ConnectError> {
        settings.validate().map_err(ConnectError::Settings)?;
        if settings.kubeconfig.is_some() || settings.context.is_some() {
            return Err(ConnectError::Settings(
                "a Kubernetes provider for a URL uses no kubeconfig or context: unset them"
                    .to_owned(),
            ));
        }
        let invalid = |message: String| ConnectError::InvalidUrl {
            url: url.to_owned(),
            message,
        };
        let uri: http::Uri = url.parse().map_err(|e| invalid(format!("{e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(invalid("the scheme must be http or https".to_owned()));
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("it has no host".to_owned()));
        }
        Kube::from_config(kube::Config::new(uri), settings)
    }

    fn from_config(
        mut config: kube::Config,
        settings: &KubeSettings,
    ) -> Result<Kube, ConnectError> {
        // kube's client starts a background task: without a runtime it would panic.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConnectError::Client(
                "the Kubernetes client must be created within a Tokio runtime".to_owned(),
            ));
        }
        // A process that also links the AWS SDK has two rustls providers (ring, aws-lc-rs) and
        // rustls refuses to guess: choose ring for the process, unless someone chose already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        config.connect_timeout = Some(settings.call_timeout);
        // No retries inside the client: kube's default retries 429/503 for minutes, which would
        // turn an unavailable server into a timeout; GRACE's engine retries transient errors
        // itself, with its own budget, and the ledger sees each attempt.
        config.default_retry = false;
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let client = kube::Client::try_from(config).map_err(|e| ConnectError::Client(chain(&e)))?;
        tracing::debug!(%server, "kubernetes provider configured");
        Ok(Kube {
            client,
            server,
            call_timeout: settings.call_timeout,
            poll_interval: settings.poll_interval,
            conflict_retries: settings.conflict_retries,
        })
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }
}
