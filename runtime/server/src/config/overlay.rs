//! Flags and `GRACE_*` environment variables over `grace.toml`: the one place they meet.
//!
//! [`Overrides`] is what `grace serve` accepts on its command line; with the `cli` feature it
//! is a `clap::Args`, so each flag, its variable and the file key it overrides are declared
//! together, here. clap gives a flag precedence over its variable; [`Overrides::apply`] gives
//! both precedence over the file. Durations are read by `humantime::parse_duration`, the parser
//! behind every duration of the file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, ServeConfig};

/// The settings a flag or a `GRACE_*` variable may override; `None` (or `false`) leaves the
/// file's value.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct Overrides {
    /// Address to listen on [default: 127.0.0.1:7070].
    #[cfg_attr(feature = "cli", arg(long, env = "GRACE_LISTEN"))]
    pub listen: Option<SocketAddr>,
    /// Data directory (holds the database) [default: .grace].
    #[cfg_attr(feature = "cli", arg(long, env = "GRACE_DATA_DIR"))]
    pub data_dir: Option<PathBuf>,
    /// Run against the simulated fleet instead of real backends.
    #[cfg_attr(feature = "cli", arg(long, env = "GRACE_SIMULATE"))]
    pub simulate: bool,
    /// The simulated fleet (TOML); the examples' default fleet when absent.
    #[cfg_attr(feature = "cli", arg(long, env = "GRACE_FLEET"))]
    pub fleet: Option<PathBuf>,
    /// In simulation, how far past both the simulation's time and the wall clock an event may
    /// be stamped; later ones are refused, e.g. `15m` [default: 15m].
    #[cfg_attr(feature = "cli", arg(long, value_name = "DURATION", env = "GRACE_MAX_EVENT_SKEW", value_parser = humantime::parse_duration))]
    pub max_event_skew: Option<Duration>,
    /// Events that may wait to be matched before publishers get 429 [default: 10000].
    #[cfg_attr(feature = "cli", arg(long, env = "GRACE_QUEUE_CAPACITY"))]
    pub queue_capacity: Option<usize>,
    /// Runs executing at once [default: 8].
    #[cfg_attr(feature = "cli", arg(long, env = "GRACE_MAX_CONCURRENT_RUNS"))]
    pub max_concurrent_runs: Option<usize>,
    /// Largest JSON request body in bytes [default: 4194304].
    #[cfg_attr(feature = "cli", arg(long, env = "GRACE_MAX_BODY_BYTES"))]
    pub max_body_bytes: Option<usize>,
    /// Largest playbook upload in bytes [default: 67108864].
    #[cfg_attr(feature = "cli", arg(long, env = "GRACE_MAX_UPLOAD_BYTES"))]
    pub max_upload_bytes: Option<usize>,
    /// Connections served at once; more get `503 overloaded` [default: 1024].
    #[cfg_attr(feature = "cli", arg(long, env = "GRACE_MAX_CONNECTIONS"))]
    pub max_connections: Option<usize>,
    /// Longest wait for a request's headers before the connection is cut, e.g. `10s`
    /// [default: 10s].
    #[cfg_attr(feature = "cli", arg(long, value_name = "DURATION", env = "GRACE_HEADER_READ_TIMEOUT", value_parser = humantime::parse_duration))]
    pub header_read_timeout: Option<Duration>,
    /// Longest wait for a whole request body (`408` after it), e.g. `30s` [default: 30s].
    #[cfg_attr(feature = "cli", arg(long, value_name = "DURATION", env = "GRACE_BODY_READ_TIMEOUT", value_parser = humantime::parse_duration))]
    pub body_read_timeout: Option<Duration>,
    /// How long events are kept, e.g. `7d` [default: 7d].
    #[cfg_attr(feature = "cli", arg(long, value_name = "DURATION", env = "GRACE_EVENT_RETENTION", value_parser = humantime::parse_duration))]
    pub event_retention: Option<Duration>,
    /// A Prometheus base URL (e.g. `http://127.0.0.1:9090`): the `metrics` capability queries
    /// it, even with `--simulate`.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "URL", env = "GRACE_PROMETHEUS")
    )]
    pub prometheus: Option<String>,
    /// DEVELOPMENT ONLY: no authentication, every caller may do anything. Refused unless the
    /// listen address is loopback; logged loudly.
    #[cfg_attr(feature = "cli", arg(long))]
    pub insecure_no_auth: bool,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs `--tls-key`. SIGHUP
    /// reloads the pair. `grace init --tls` makes one to try it.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "FILE", env = "GRACE_TLS_CERT")
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE", env = "GRACE_TLS_KEY"))]
    pub tls_key: Option<PathBuf>,
    /// Plain HTTP on a non-loopback `--listen` address (behind a TLS proxy you trust): bearer
    /// tokens then cross the network in clear. Logged loudly.
    #[cfg_attr(feature = "cli", arg(long))]
    pub insecure_plaintext: bool,
    /// DEVELOPMENT ONLY: accept unsigned playbook uploads (marked `signed: false`); badly signed
    /// ones are still refused. Logged loudly.
    #[cfg_attr(feature = "cli", arg(long, env = "GRACE_ALLOW_UNSIGNED_PLAYBOOKS"))]
    pub allow_unsigned_playbooks: bool,
    /// A public key (`.pub` file of `grace keys generate`) playbook uploads may be signed by,
    /// added to `[[trust_roots]]` of grace.toml (repeatable).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub trust_root: Vec<PathBuf>,
    /// This replica's name in a cluster (`[cluster] replica`), for replicas sharing one
    /// settings file.
    #[cfg_attr(feature = "cli", arg(long, value_name = "NAME", env = "GRACE_REPLICA"))]
    pub replica: Option<String>,
    /// The token the cluster's NATS servers ask for (`[cluster] token`), kept out of the file.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "TOKEN",
            env = "GRACE_CLUSTER_TOKEN",
            hide_env_values = true
        )
    )]
    pub cluster_token: Option<String>,
}

impl Overrides {
    /// Sets every setting given here over `config`'s. A switch given here turns its setting on
    /// (a file's `simulate = true` is not turned off by an absent flag); `--trust-root` keys
    /// are added to the file's.
    pub fn apply(self, config: &mut ServeConfig) -> Result<(), ConfigError> {
        /// `config.field = value` for each field given.
        macro_rules! set {
            ($($field:ident),* $(,)?) => {
                $(if let Some(value) = self.$field {
                    config.$field = value;
                })*
            };
        }
        set!(
            listen,
            data_dir,
            queue_capacity,
            max_concurrent_runs,
            max_body_bytes,
            max_upload_bytes,
            max_connections,
            header_read_timeout,
            body_read_timeout,
            event_retention,
            max_event_skew,
        );
        // Optional settings: a flag gives them a value.
        if self.fleet.is_some() {
            config.fleet = self.fleet;
        }
        if self.prometheus.is_some() {
            config.prometheus = self.prometheus;
        }
        // Each half of the TLS pair overrides its own key; the pair is checked as one after.
        if self.tls_cert.is_some() {
            config.tls_cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            config.tls_key = self.tls_key;
        }
        config.simulate |= self.simulate;
        config.allow_unsigned_playbooks |= self.allow_unsigned_playbooks;
        // Flags only: the file has no such keys.
        config.insecure_no_auth = self.insecure_no_auth;
        config.insecure_plaintext = self.insecure_plaintext;
        if self.replica.is_some() || self.cluster_token.is_some() {
            let Some(cluster) = config.cluster.as_mut() else {
                return Err(ConfigError::invalid(
                    "cluster",
                    "--replica and --cluster-token need a [cluster] section in the settings file",
                ));
            };
            if self.replica.is_some() {
                cluster.replica = self.replica;
            }
            if self.cluster_token.is_some() {
                cluster.token = self.cluster_token;
            }
        }
        for path in &self.trust_root {
            config.trust_roots.push(
                crate::signing::TrustRootConfig::from_key_file(path)
                    .map_err(|e| ConfigError::invalid("--trust-root", e.to_string()))?,
            );
        }
        Ok(())
    }
}
