//! `[kubernetes]` in `grace.toml`: which cluster, and how patient to be with it.
//!
//! ```toml
//! [kubernetes]
//! kubeconfig = "/etc/grace/kubeconfig"  # default: $KUBECONFIG, ~/.kube/config, in-cluster
//! context = "prod-eu"                    # default: the kubeconfig's current context
//! call_timeout = "10s"                   # one API request
//! poll_interval = "1s"                   # between reads while waiting for a rollout
//! conflict_retries = 5                   # re-reads after a 409 before giving up
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The default time limit of one API request.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The default pause between reads while waiting for a rollout.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The default number of retries of a write that met a `409 Conflict`.
pub const DEFAULT_CONFLICT_RETRIES: u32 = 5;

/// How GRACE reaches a Kubernetes cluster; every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeSettings {
    /// A kubeconfig file to use instead of inferring one (`KUBECONFIG`, `~/.kube/config`, then
    /// the in-cluster service account).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of its current context.
    pub context: Option<String>,
    /// The time limit of one API request (`"10s"`).
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// The pause between reads while waiting for a rollout (`"1s"`).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How many times a write that met a `409 Conflict` is retried on a fresh read before the
    /// call fails with a conflict.
    pub conflict_retries: u32,
}

impl Default for KubeSettings {
    fn default() -> Self {
        KubeSettings {
            kubeconfig: None,
            context: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            conflict_retries: DEFAULT_CONFLICT_RETRIES,
        }
    }
}

impl KubeSettings {
    /// Checks the values make sense: the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.call_timeout.is_zero() {
            return Err("kubernetes.call_timeout: must be positive".to_owned());
        }
        if self.poll_interval.is_zero() {
            return Err("kubernetes.poll_interval: must be positive".to_owned());
        }
        if self.conflict_retries > 100 {
            return Err("kubernetes.conflict_retries: must be within 0..=100".to_owned());
        }
        if self.context.as_deref().is_some_and(str::is_empty) {
            return Err("kubernetes.context: must not be empty".to_owned());
        }
        Ok(())
    }
}
