//! `grace.toml`, read once: one serde model ([`ServeConfig`]) with its defaults, overlaid by
//! flags and `GRACE_*` variables in one place ([`Overrides`]), then checked section by section.
//!
//! Precedence, strongest first: a flag, its `GRACE_*` variable (clap reads both: a flag beats
//! its variable), the file, the default. Every duration, here and in every section, is a
//! humantime string (`"90s"`, `"5m"`, `"1h 30m"`) read by `humantime_serde`; a flag's duration
//! is read by the same parser. Unknown keys are refused, naming the key and the file.
//!
//! Each section is its own type, checked by the module of what it configures:
//!
//! | section | type | checked by |
//! |---|---|---|
//! | top-level keys | [`ServeConfig`] | [`ServeConfig::validate`] (here) |
//! | `tls_cert`, `tls_key` | [`crate::tls::TlsFiles`] | [`crate::tls::TlsFiles::pair`] |
//! | `[limits]` | [`crate::limits::ServerLimits`] | [`crate::limits::ServerLimits::validate`] |
//! | `[trust]` | [`crate::trust::TrustSettings`] | [`crate::trust::TrustSettings::validate`] |
//! | `[[trust_roots]]` | [`crate::signing::TrustRootConfig`] | [`crate::signing::TrustRoots::load`] |
//! | `[auth]` | [`crate::auth::AuthConfig`] | [`crate::auth::AuthConfig::validate`] |
//! | `[storage]` | [`crate::store::StorageSettings`] | nothing to check: one switch |
//! | `[sources]` | [`crate::sources::SourcesConfig`] | [`crate::sources::SourcesConfig::validate`] |
//! | `[aws]`, `[docker]`, `[kubernetes]` | the executor crates' settings | their own `validate` |
//! | `[graph]` | [`crate::graph::GraphConfig`] | [`crate::graph::GraphConfig::validate`] |
//! | `[anomaly]` | [`crate::anomaly::AnomalyConfig`] | [`crate::anomaly::AnomalyConfig::validate`] |
//! | `[outcomes]` | [`crate::outcomes::OutcomesConfig`] | [`crate::outcomes::OutcomesConfig::validate`] |
//! | `[meta]` | [`crate::meta::MetaConfig`] | [`crate::meta::MetaConfig::validate`] |
//! | `[integrations]`, `[[notify]]` | [`crate::notify::config`] | [`crate::notify::config::IntegrationsConfig::validate`], [`crate::notify::config::validate_routes`] |
//!
//! A new section is a field of [`ServeConfig`] (serde reads it), its type in the module of what
//! it configures, and one line in [`ServeConfig::validate`]; `docs/configuration.md` lists it.

mod overlay;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use self::overlay::Overrides;
pub use crate::auth::AuthConfig;
pub use crate::config_error::ConfigError;
pub use crate::sources::SourcesConfig;
pub use crate::tls::TlsFiles;

/// Everything `grace serve` needs: `grace.toml` as serde reads it, every key optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on (`listen`).
    pub listen: SocketAddr,
    /// Where the database lives (`data_dir`).
    pub data_dir: PathBuf,
    /// Run against the simulated fleet (`simulate`).
    pub simulate: bool,
    /// The simulated fleet (the default fleet when `None`).
    pub fleet: Option<PathBuf>,
    /// In simulation, how far past both the simulation's time and the wall clock an event's
    /// `timestamp` may be (`max_event_skew`): virtual time follows the events, and a later one is
    /// refused at intake rather than moving the simulated fleet into the future.
    #[serde(with = "humantime_serde")]
    pub max_event_skew: Duration,
    /// Events that may wait to be matched; beyond it publishers get `429`.
    pub queue_capacity: usize,
    /// Largest request body for events and other JSON.
    pub max_body_bytes: usize,
    /// Largest playbook upload.
    pub max_upload_bytes: usize,
    /// Connections served at once; more get `503 overloaded`.
    pub max_connections: usize,
    /// Longest wait for a request's headers (slow clients are cut off).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest wait for a whole request body (`408` after it).
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// How long events are kept.
    #[serde(with = "humantime_serde")]
    pub event_retention: Duration,
    /// Matched events between two checkpoints of the trigger mesh's memory: a restart replays
    /// fewer than this many to rebuild windows and cooldowns.
    pub mesh_checkpoint_events: usize,
    /// Most events one collector pass may return; a pass over it fails.
    pub collector_max_events: usize,
    /// Most bytes (event types, resources and payloads) one collector pass may return; a pass
    /// over it fails.
    pub collector_max_bytes: usize,
    /// Runs executing at once.
    pub max_concurrent_runs: usize,
    /// Attempts per run when a provider error is transient.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// A Prometheus base URL: when set, the `metrics` capability queries it, even in
    /// simulation (instant queries are then evaluated at Prometheus' own time).
    pub prometheus: Option<String>,
    /// Built-in polled sources (`[[sources.*]]`).
    pub sources: SourcesConfig,
    /// `[docker]`: the `containers` capability acts on this engine.
    pub docker: Option<grace_docker::DockerSettings>,
    /// `[kubernetes]`: the `kubernetes` capability acts on this cluster.
    pub kubernetes: Option<grace_kubernetes::KubeSettings>,
    /// `[aws]`: the `scaling` capability acts on Auto Scaling groups, CloudWatch sources read here.
    pub aws: Option<grace_aws::AwsSettings>,
    /// `[[providers]]`: more providers, and which resources each serves (see
    /// [`crate::providers`]).
    pub providers: Vec<crate::providers::ProviderSection>,
    /// A signing key (`grace keys generate`): the server signs a checkpoint of the ledger every
    /// `checkpoint_every`, idle or not (so a verifier's `--max-age` tells a live signer from a
    /// replayed checkpoint), served at `GET /v1/ledger/checkpoint`.
    pub checkpoint_key: Option<PathBuf>,
    /// How often a checkpoint is signed.
    #[serde(with = "humantime_serde")]
    pub checkpoint_every: Duration,
    /// `[trust]`: the trust core's risk model, guardrails, approval wait and resource
    /// descriptions (policies are managed through the API).
    pub trust: crate::trust::TrustSettings,
    /// No authentication: every caller gets every scope (`--insecure-no-auth`, development
    /// only; refused unless the listen address is loopback). A flag only, never a file key: a
    /// file copied to production must not carry it along.
    #[serde(skip)]
    pub insecure_no_auth: bool,
    /// HTTPS with this certificate chain (PEM, leaf first); needs `tls_key`. See [`Self::tls`].
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Plain HTTP on a non-loopback address (`--insecure-plaintext`): bearer tokens then cross
    /// the network in clear. Without it, such a listen address needs TLS. A flag only.
    #[serde(skip)]
    pub insecure_plaintext: bool,
    /// The keys playbook uploads may be signed by (`[[trust_roots]]`).
    pub trust_roots: Vec<crate::signing::TrustRootConfig>,
    /// Accept unsigned uploads, marked `signed: false` (`allow_unsigned_playbooks`, development
    /// only). Badly signed uploads are refused all the same.
    pub allow_unsigned_playbooks: bool,
    /// `[limits]`: what any manifest may ask for, and the host's bounds on every run.
    pub limits: crate::limits::ServerLimits,
    /// `[auth]`: sign-in by OIDC besides the server's own tokens.
    pub auth: AuthConfig,
    /// `[storage]`: how the database prepares for a crash.
    pub storage: crate::store::StorageSettings,
    /// `[cluster]`: several replicas sharing the work through NATS JetStream (see
    /// `docs/cluster.md`); absent, the server runs alone on its own database.
    pub cluster: Option<grace_cluster::ClusterSettings>,
    /// `[graph]`: the health graph, kept current by discovery (see `docs/graph.md`); absent,
    /// nothing is discovered.
    pub graph: Option<crate::graph::GraphConfig>,
    /// `[anomaly]`: anomaly scores on metric events and `anomaly` alarms (see
    /// `docs/anomaly.md`); on by default.
    pub anomaly: crate::anomaly::AnomalyConfig,
    /// `[integrations]`: Slack, PagerDuty, Jira and GitHub (see `docs/integrations.md`).
    pub integrations: crate::notify::config::IntegrationsConfig,
    /// `[[notify]]`: which runs are told where.
    pub notify: Vec<crate::notify::config::NotifyRoute>,
    /// `[outcomes]`: how long a run's signal may take to clear (see `docs/outcomes.md`).
    pub outcomes: crate::outcomes::OutcomesConfig,
    /// `[meta]`: when the meta-loop pauses a flapping playbook (see `docs/outcomes.md`).
    pub meta: crate::meta::MetaConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from(".grace"),
            simulate: false,
            fleet: None,
            max_event_skew: DEFAULT_MAX_EVENT_SKEW,
            queue_capacity: 10_000,
            max_body_bytes: 4 * 1024 * 1024,
            max_upload_bytes: 64 * 1024 * 1024,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            event_retention: Duration::from_secs(7 * 24 * 3600),
            mesh_checkpoint_events: 4096,
            collector_max_events: 1000,
            collector_max_bytes: 1024 * 1024,
            max_concurrent_runs: 8,
            max_attempts: 3,
            retry_backoff: Duration::from_secs(1),
            prometheus: None,
            sources: SourcesConfig::default(),
            docker: None,
            kubernetes: None,
            aws: None,
            providers: Vec::new(),
            checkpoint_key: None,
            checkpoint_every: Duration::from_secs(60),
            trust: crate::trust::TrustSettings::default(),
            insecure_no_auth: false,
            tls_cert: None,
            tls_key: None,
            insecure_plaintext: false,
            trust_roots: Vec::new(),
            allow_unsigned_playbooks: false,
            limits: crate::limits::ServerLimits::default(),
            auth: AuthConfig::default(),
            storage: crate::store::StorageSettings::default(),
            cluster: None,
            graph: None,
            anomaly: crate::anomaly::AnomalyConfig::default(),
            integrations: crate::notify::config::IntegrationsConfig::default(),
            notify: Vec::new(),
            outcomes: crate::outcomes::OutcomesConfig::default(),
            meta: crate::meta::MetaConfig::default(),
        }
    }
}

/// How far ahead of the simulation's time (and of the wall clock) an event may be stamped, unless
/// `max_event_skew` says otherwise: enough for a recorded incident published in one batch whose
/// samples are minutes apart, far too little to move the simulated fleet into another year.
pub const DEFAULT_MAX_EVENT_SKEW: Duration = Duration::from_secs(15 * 60);

/// Where the settings file is: the one named (it must exist), else `grace.toml` in the current
/// directory when it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    /// `--config FILE` (`GRACE_CONFIG`): missing is an error.
    Named(PathBuf),
    /// `grace.toml` if present; the defaults otherwise.
    Default,
}

/// The file read when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "grace.toml";

impl ServeConfig {
    /// The whole configuration: the defaults, the file, then `overrides` (flags and
    /// environment); checked.
    pub fn load(file: &ConfigFile, overrides: Overrides) -> Result<ServeConfig, ConfigError> {
        let mut config = match file {
            ConfigFile::Named(path) => ServeConfig::read(path)?,
            ConfigFile::Default => {
                let path = Path::new(DEFAULT_CONFIG_FILE);
                match path.try_exists() {
                    Ok(false) => ServeConfig::default(),
                    _ => ServeConfig::read(path)?,
                }
            }
        };
        overrides.apply(&mut config)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads one settings file; keys it does not set keep their defaults.
    pub fn read(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        ServeConfig::parse(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }

    /// Parses the text of a `grace.toml`.
    pub fn parse(text: &str) -> Result<ServeConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// The TLS pair, when both halves are set ([`Self::validate`] refuses one without the
    /// other).
    pub fn tls(&self) -> Option<TlsFiles> {
        TlsFiles::pair(self.tls_cert.clone(), self.tls_key.clone())
            .ok()
            .flatten()
    }

    /// Checks the values make sense together: the top-level keys here, each section by its
    /// own module. The error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_bounds()?;
        if self.max_event_skew < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "max_event_skew",
                "must be at least 1s",
            ));
        }
        if !self.simulate && self.fleet.is_some() {
            return Err(ConfigError::invalid(
                "fleet",
                "a fleet only makes sense with --simulate",
            ));
        }
        if let Some(url) = &self.prometheus {
            grace_prometheus::parse_base_url(url)
                .map_err(|message| ConfigError::invalid("prometheus", message))?;
        }
        self.trust
            .validate()
            .map_err(|message| ConfigError::invalid("trust", message))?;
        if let Some(k) = &self.kubernetes {
            k.validate()
                .map_err(|message| ConfigError::invalid("kubernetes", message))?;
        }
        self.check_transport()?;
        if let Some(g) = &self.graph {
            g.validate()
                .map_err(|(field, message)| ConfigError::Invalid {
                    field: "graph",
                    message: format!("{field}: {message}"),
                })?;
        }
        self.anomaly
            .validate()
            .map_err(|(field, message)| ConfigError::Invalid {
                field: "anomaly",
                message: format!("{field}: {message}"),
            })?;
        self.outcomes
            .validate()
            .map_err(|(field, message)| ConfigError::Invalid {
                field: "outcomes",
                message: format!("{field}: {message}"),
            })?;
        self.meta
            .validate()
            .map_err(|(field, message)| ConfigError::Invalid {
                field: "meta",
                message: format!("{field}: {message}"),
            })?;
        if let Some(c) = &self.cluster {
            c.validate()
                .map_err(|e| ConfigError::invalid("cluster", e.to_string()))?;
            // The engine keeps approval requests, and the runs waiting for them,
            // `event_retention` after their last write: a request must be decided or expired
            // before.
            let ttl = self
                .trust
                .approval_ttl
                .unwrap_or(crate::trust::DEFAULT_APPROVAL_TTL);
            if ttl >= c.event_retention {
                return Err(ConfigError::invalid(
                    "trust.approval_ttl",
                    format!(
                        "must be shorter than cluster.event_retention ({}s): the engine keeps approval requests and the runs waiting for them that long",
                        c.event_retention.as_secs()
                    ),
                ));
            }
        }
        crate::signing::TrustRoots::load(&self.trust_roots)
            .map_err(|e| ConfigError::invalid("trust_roots", e.to_string()))?;
        self.auth.validate()?;
        self.limits.validate()?;
        self.integrations.validate()?;
        crate::notify::config::validate_routes(&self.notify, &self.integrations)?;
        if let Some(a) = &self.aws {
            a.validate()
                .map_err(|e| ConfigError::invalid("aws", e.to_string()))?;
        }
        if let Some(d) = &self.docker {
            grace_docker::Docker::connect(d)
                .map_err(|e| ConfigError::invalid("docker", e.to_string()))?;
        }
        // The message starts with the key (`sources.promql[0].query: ...`).
        self.sources
            .validate(self.prometheus.as_deref(), self.aws.is_some())
            .map_err(|e| ConfigError::invalid("sources", e.to_string()))
    }

    /// The top-level sizes, counts and durations, each within its range.
    fn check_bounds(&self) -> Result<(), ConfigError> {
        let within = |field, value: usize, min: usize, max: usize| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::invalid(
                    field,
                    format!("must be within {min}..={max}"),
                ))
            }
        };
        let at_least = |field, value: Duration, min: &str, least: Duration| {
            if value < least {
                Err(ConfigError::invalid(
                    field,
                    format!("must be at least {min}"),
                ))
            } else {
                Ok(())
            }
        };
        within("queue_capacity", self.queue_capacity, 1, 10_000_000)?;
        within(
            "mesh_checkpoint_events",
            self.mesh_checkpoint_events,
            1,
            crate::triggers::MAX_MESH_CHECKPOINT_EVENTS,
        )?;
        // The engine refuses more than its own limit per pass whatever is set here.
        within(
            "collector_max_events",
            self.collector_max_events,
            1,
            grace_engine::engine::MAX_COLLECTED_EVENTS,
        )?;
        within(
            "collector_max_bytes",
            self.collector_max_bytes,
            1024,
            64 * 1024 * 1024,
        )?;
        within("max_concurrent_runs", self.max_concurrent_runs, 1, 1024)?;
        within("max_attempts", self.max_attempts as usize, 1, 20)?;
        // Doubled at every retry: a bound keeps the arithmetic (and the wait) sane.
        if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&self.retry_backoff) {
            return Err(ConfigError::invalid(
                "retry_backoff",
                "must be within 10ms..=1h",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "max_body_bytes",
                "must be at least 1024",
            ));
        }
        within("max_connections", self.max_connections, 1, 1_000_000)?;
        let ms100 = Duration::from_millis(100);
        at_least(
            "header_read_timeout",
            self.header_read_timeout,
            "100ms",
            ms100,
        )?;
        at_least("body_read_timeout", self.body_read_timeout, "100ms", ms100)?;
        at_least(
            "checkpoint_every",
            self.checkpoint_every,
            "1s",
            Duration::from_secs(1),
        )
    }

    /// A non-loopback listen address needs TLS, or `--insecure-plaintext` said out loud: a
    /// bearer token sent in clear is a token given away. No authentication is for loopback
    /// only.
    fn check_transport(&self) -> Result<(), ConfigError> {
        if self.insecure_no_auth && !self.listen.ip().is_loopback() {
            return Err(ConfigError::invalid(
                "insecure_no_auth",
                format!(
                    "--insecure-no-auth is for development on loopback only, and `{}` is not a loopback address: listen on 127.0.0.1 or use tokens (`grace init`)",
                    self.listen
                ),
            ));
        }
        let tls = TlsFiles::pair(self.tls_cert.clone(), self.tls_key.clone())?;
        if tls.is_some() && self.insecure_plaintext {
            return Err(ConfigError::invalid(
                "insecure_plaintext",
                "--insecure-plaintext contradicts tls_cert/tls_key: drop one",
            ));
        }
        if tls.is_none() && !self.insecure_plaintext && !self.listen.ip().is_loopback() {
            return Err(ConfigError::invalid(
                "listen",
                format!(
                    "`{}` is not a loopback address, and without TLS bearer tokens would cross the network in clear: pass `--tls-cert FILE --tls-key FILE` (`grace init --tls` makes a pair to try it), or `--insecure-plaintext` behind a TLS proxy you trust",
                    self.listen
                ),
            ));
        }
        Ok(())
    }

    /// Whether any real provider is configured.
    pub fn has_providers(&self) -> bool {
        self.prometheus.is_some()
            || self.docker.is_some()
            || self.kubernetes.is_some()
            || self.aws.is_some()
            || !self.providers.is_empty()
    }
}

#[cfg(test)]
mod tests;
