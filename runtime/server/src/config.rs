//! Server settings: defaults, overridden by `grace.toml`, overridden by flags and environment
//! variables (the command line resolves those; see `grace serve --help`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything `grace serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// Run against the simulated fleet.
    pub simulate: bool,
    /// The simulated fleet (the default fleet when `None`).
    pub fleet: Option<PathBuf>,
    /// Events that may wait to be matched; beyond it publishers get `429`.
    pub queue_capacity: usize,
    /// Largest request body for events and other JSON.
    pub max_body_bytes: usize,
    /// Largest playbook upload.
    pub max_upload_bytes: usize,
    /// Connections served at once; more get `503 overloaded`.
    pub max_connections: usize,
    /// Longest wait for a request's headers (slow clients are cut off).
    pub header_read_timeout: Duration,
    /// Longest wait for a whole request body (`408` after it).
    pub body_read_timeout: Duration,
    /// How long events are kept.
    pub event_retention: Duration,
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
    pub retry_backoff: Duration,
    /// A Prometheus base URL: when set, the `metrics` capability queries it, even in
    /// simulation (instant queries are then evaluated at Prometheus' own time).
    pub prometheus: Option<String>,
    /// Built-in polled sources.
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
    /// `checkpoint_every` while it grows, served at `GET /v1/ledger/checkpoint`.
    pub checkpoint_key: Option<PathBuf>,
    /// How often a checkpoint is signed.
    pub checkpoint_every: Duration,
    /// `[trust]`: the trust core's risk model, guardrails, approval wait and resource
    /// descriptions (policies are managed through the API).
    pub trust: crate::trust::TrustSettings,
    /// No authentication: every caller gets every scope (`--insecure-no-auth`, development
    /// only; refused unless the listen address is loopback).
    pub insecure_no_auth: bool,
    /// HTTPS with this certificate and key (`tls_cert`, `tls_key`); see [`crate::tls`].
    pub tls: Option<TlsFiles>,
    /// Plain HTTP on a non-loopback address (`--insecure-plaintext`): bearer tokens then cross
    /// the network in clear. Without it, such a listen address needs `tls`.
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
}

/// `[auth]`: who may sign in besides holders of the server's own tokens.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `[auth.oidc]`: bearer JWTs of one OpenID Connect issuer (see [`crate::auth::oidc`]).
    #[serde(default)]
    pub oidc: Option<crate::auth::oidc::OidcConfig>,
}

/// The PEM files the server's TLS pair is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (`tls_cert`).
    pub cert: PathBuf,
    /// The private key (`tls_key`).
    pub key: PathBuf,
}

/// `[sources]`: built-in sources GRACE polls itself, with no Wasm collector to write.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    /// `[[sources.promql]]`: PromQL queries (see [`crate::sources::promql`]).
    #[serde(default)]
    pub promql: Vec<crate::sources::promql::PromqlConfig>,
    /// `[[sources.containers]]`: container health (see [`crate::sources::containers`]).
    #[serde(default)]
    pub containers: Vec<crate::sources::containers::ContainersConfig>,
    /// `[[sources.cloudwatch]]`: CloudWatch metrics (see [`crate::sources::cloudwatch`]).
    #[serde(default)]
    pub cloudwatch: Vec<crate::sources::cloudwatch::CloudWatchConfig>,
}

impl SourcesConfig {
    /// Every configured source's name, with the key it is configured under.
    pub fn names(&self) -> impl Iterator<Item = (String, &str)> {
        let promql = self
            .promql
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("sources.promql[{i}].name"), c.name.as_str()));
        let containers = self
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("sources.containers[{i}].name"), c.name.as_str()));
        let cloudwatch = self
            .cloudwatch
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("sources.cloudwatch[{i}].name"), c.name.as_str()));
        promql.chain(containers).chain(cloudwatch)
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from(".grace"),
            simulate: false,
            fleet: None,
            queue_capacity: 10_000,
            max_body_bytes: 4 * 1024 * 1024,
            max_upload_bytes: 64 * 1024 * 1024,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            event_retention: Duration::from_secs(7 * 24 * 3600),
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
            tls: None,
            insecure_plaintext: false,
            trust_roots: Vec::new(),
            allow_unsigned_playbooks: false,
            limits: crate::limits::ServerLimits::default(),
            auth: AuthConfig::default(),
        }
    }
}

/// `grace.toml`: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `listen = "127.0.0.1:7070"`.
    pub listen: Option<SocketAddr>,
    /// `data_dir = ".grace"`.
    pub data_dir: Option<PathBuf>,
    /// `simulate = true`.
    pub simulate: Option<bool>,
    /// `fleet = "fleet.toml"`.
    pub fleet: Option<PathBuf>,
    /// `queue_capacity = 10000`.
    pub queue_capacity: Option<usize>,
    /// `max_body_bytes = 4194304`.
    pub max_body_bytes: Option<usize>,
    /// `max_upload_bytes = 67108864`.
    pub max_upload_bytes: Option<usize>,
    /// `max_connections = 1024`.
    pub max_connections: Option<usize>,
    /// `header_read_timeout = "10s"`.
    pub header_read_timeout: Option<String>,
    /// `body_read_timeout = "30s"`.
    pub body_read_timeout: Option<String>,
    /// `event_retention = "7d"`.
    pub event_retention: Option<String>,
    /// `collector_max_events = 1000`.
    pub collector_max_events: Option<usize>,
    /// `collector_max_bytes = 1048576`.
    pub collector_max_bytes: Option<usize>,
    /// `max_concurrent_runs = 8`.
    pub max_concurrent_runs: Option<usize>,
    /// `max_attempts = 3`.
    pub max_attempts: Option<u32>,
    /// `retry_backoff = "1s"`.
    pub retry_backoff: Option<String>,
    /// `prometheus = "http://127.0.0.1:9090"`.
    pub prometheus: Option<String>,
    /// `[[sources.promql]]` and the other built-in sources.
    pub sources: Option<SourcesConfig>,
    /// `[docker]`.
    pub docker: Option<grace_docker::DockerSettings>,
    /// `[kubernetes]`.
    pub kubernetes: Option<grace_kubernetes::KubeSettings>,
    /// `[aws]`.
    pub aws: Option<grace_aws::AwsSettings>,
    /// `[[providers]]`: `name`, `kind`, `capability`, `resources`, `default`, `[providers.settings]`.
    pub providers: Option<Vec<crate::providers::ProviderSection>>,
    /// `checkpoint_key = "/etc/grace/ledger.key"`.
    pub checkpoint_key: Option<PathBuf>,
    /// `checkpoint_every = "1m"`.
    pub checkpoint_every: Option<String>,
    /// `[trust]`: risk weights, `[[trust.guardrail]]`, `approval_ttl`, `[[trust.resource]]`.
    pub trust: Option<crate::trust::TrustSettings>,
    /// `[[trust_roots]]`: `name = "release-team"`, `public_key = "<key text or .pub file>"`.
    pub trust_roots: Option<Vec<crate::signing::TrustRootConfig>>,
    /// `allow_unsigned_playbooks = true`.
    pub allow_unsigned_playbooks: Option<bool>,
    /// `[limits]`: caps on what manifests ask and bounds on every run.
    pub limits: Option<crate::limits::LimitsFile>,
    /// `[auth.oidc]`: `issuer`, `audience`, `jwks_url`, `scopes_claim`, ...
    pub auth: Option<AuthConfig>,
    /// `tls_cert = "/etc/grace/tls.crt"`: serve HTTPS with this certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// `tls_key = "/etc/grace/tls.key"`: and this private key (PEM).
    pub tls_key: Option<PathBuf>,
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A value is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// Why.
        message: String,
    },
}

impl FileConfig {
    /// Reads `path`; a missing file is an empty configuration only when `required` is false.
    pub fn load(path: &Path, required: bool) -> Result<FileConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(FileConfig::default());
            }
            Err(e) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    message: e.to_string(),
                });
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Applies this file over the defaults.
    pub fn apply(self, mut c: ServeConfig) -> Result<ServeConfig, ConfigError> {
        let duration = |field: &'static str, text: &str| {
            humantime::parse_duration(text).map_err(|e| ConfigError::Invalid {
                field,
                message: format!("`{text}` is not a duration ({e})"),
            })
        };
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.simulate {
            c.simulate = v;
        }
        if let Some(v) = self.fleet {
            c.fleet = Some(v);
        }
        if let Some(v) = self.queue_capacity {
            c.queue_capacity = v;
        }
        if let Some(v) = self.max_body_bytes {
            c.max_body_bytes = v;
        }
        if let Some(v) = self.max_upload_bytes {
            c.max_upload_bytes = v;
        }
        if let Some(v) = self.max_connections {
            c.max_connections = v;
        }
        if let Some(v) = self.header_read_timeout {
            c.header_read_timeout = duration("header_read_timeout", &v)?;
        }
        if let Some(v) = self.body_read_timeout {
            c.body_read_timeout = duration("body_read_timeout", &v)?;
        }
        if let Some(v) = self.event_retention {
            c.event_retention = duration("event_retention", &v)?;
        }
        if let Some(v) = self.collector_max_events {
            c.collector_max_events = v;
        }
        if let Some(v) = self.collector_max_bytes {
            c.collector_max_bytes = v;
        }
        if let Some(v) = self.max_concurrent_runs {
            c.max_concurrent_runs = v;
        }
        if let Some(v) = self.max_attempts {
            c.max_attempts = v;
        }
        if let Some(v) = self.retry_backoff {
            c.retry_backoff = duration("retry_backoff", &v)?;
        }
        if let Some(v) = self.prometheus {
            c.prometheus = Some(v);
        }
        if let Some(v) = self.sources {
            c.sources = v;
        }
        if let Some(v) = self.docker {
            c.docker = Some(v);
        }
        if let Some(v) = self.kubernetes {
            c.kubernetes = Some(v);
        }
        if let Some(v) = self.aws {
            c.aws = Some(v);
        }
        if let Some(v) = self.providers {
            c.providers = v;
        }
        if let Some(v) = self.checkpoint_key {
            c.checkpoint_key = Some(v);
        }
        if let Some(v) = self.checkpoint_every {
            c.checkpoint_every = duration("checkpoint_every", &v)?;
        }
        if let Some(v) = self.trust {
            c.trust = v;
        }
        if let Some(v) = self.trust_roots {
            c.trust_roots = v;
        }
        if let Some(v) = self.allow_unsigned_playbooks {
            c.allow_unsigned_playbooks = v;
        }
        if let Some(v) = self.limits {
            c.limits = v.resolve()?;
        }
        if let Some(v) = self.auth {
            c.auth = v;
        }
        c.tls = tls_files(self.tls_cert, self.tls_key)?;
        Ok(c)
    }
}

/// The TLS pair from its two settings, given together or not at all.
pub fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Invalid {
            field: "tls_key",
            message: "missing: tls_cert needs its key (`--tls-key FILE` or `tls_key`)".into(),
        }),
        (None, Some(_)) => Err(ConfigError::Invalid {
            field: "tls_cert",
            message: "missing: tls_key needs its certificate (`--tls-cert FILE` or `tls_cert`)"
                .into(),
        }),
    }
}

impl ServeConfig {
    /// Checks the values make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        if self.queue_capacity == 0 || self.queue_capacity > 10_000_000 {
            return invalid("queue_capacity", "must be within 1..=10000000");
        }
        // The engine refuses more than its own limit per pass whatever is set here.
        if self.collector_max_events == 0
            || self.collector_max_events > grace_engine::engine::MAX_COLLECTED_EVENTS
        {
            return invalid("collector_max_events", "must be within 1..=1000");
        }
        if self.collector_max_bytes < 1024 || self.collector_max_bytes > 64 * 1024 * 1024 {
            return invalid("collector_max_bytes", "must be within 1024..=67108864");
        }
        if self.max_concurrent_runs == 0 || self.max_concurrent_runs > 1024 {
            return invalid("max_concurrent_runs", "must be within 1..=1024");
        }
        if self.max_attempts == 0 || self.max_attempts > 20 {
            return invalid("max_attempts", "must be within 1..=20");
        }
        if self.max_body_bytes < 1024 {
            return invalid("max_body_bytes", "must be at least 1024");
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return invalid("max_connections", "must be within 1..=1000000");
        }
        if self.header_read_timeout < Duration::from_millis(100) {
            return invalid("header_read_timeout", "must be at least 100ms");
        }
        if self.body_read_timeout < Duration::from_millis(100) {
            return invalid("body_read_timeout", "must be at least 100ms");
        }
        if !self.simulate && self.fleet.is_some() {
            return invalid("fleet", "a fleet only makes sense with --simulate");
        }
        if let Some(url) = &self.prometheus {
            grace_prometheus::parse_base_url(url).map_err(|message| ConfigError::Invalid {
                field: "prometheus",
                message,
            })?;
        }
        self.trust
            .validate()
            .map_err(|message| ConfigError::Invalid {
                field: "trust",
                message,
            })?;
        if let Some(k) = &self.kubernetes {
            k.validate().map_err(|message| ConfigError::Invalid {
                field: "kubernetes",
                message,
            })?;
        }
        if self.insecure_no_auth && !self.listen.ip().is_loopback() {
            return invalid(
                "insecure_no_auth",
                &format!(
                    "--insecure-no-auth is for development on loopback only, and `{}` is not a loopback address: listen on 127.0.0.1 or use tokens (`grace init`)",
                    self.listen
                ),
            );
        }
        self.check_transport()?;
        crate::signing::TrustRoots::load(&self.trust_roots).map_err(|message| {
            ConfigError::Invalid {
                field: "trust_roots",
                message,
            }
        })?;
        if let Some(oidc) = &self.auth.oidc {
            oidc.settings()
                .map_err(|(field, message)| ConfigError::Invalid { field, message })?;
        }
        if self.checkpoint_every < Duration::from_secs(1) {
            return invalid("checkpoint_every", "must be at least 1s");
        }
        if let Some(a) = &self.aws {
            a.validate().map_err(|e| ConfigError::Invalid {
                field: "aws",
                message: e.to_string(),
            })?;
        }
        if let Some(d) = &self.docker {
            grace_docker::Docker::connect(d).map_err(|e| ConfigError::Invalid {
                field: "docker",
                message: e.to_string(),
            })?;
        }
        self.check_sources()
    }

    /// A non-loopback listen address needs TLS, or `--insecure-plaintext` said out loud: a
    /// bearer token sent in clear is a token given away.
    fn check_transport(&self) -> Result<(), ConfigError> {
        if self.tls.is_some() && self.insecure_plaintext {
            return Err(ConfigError::Invalid {
                field: "insecure_plaintext",
                message: "--insecure-plaintext contradicts tls_cert/tls_key: drop one".into(),
            });
        }
        if self.tls.is_none() && !self.insecure_plaintext && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                field: "listen",
                message: format!(
                    "`{}` is not a loopback address, and without TLS bearer tokens would cross the network in clear: pass `--tls-cert FILE --tls-key FILE` (`grace init --tls` makes a pair to try it), or `--insecure-plaintext` behind a TLS proxy you trust",
                    self.listen
                ),
            });
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

    fn check_sources(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| {
            // The message starts with the key (`sources.promql[0].query: ...`).
            Err(ConfigError::Invalid {
                field: "sources",
                message,
            })
        };
        if let Err(message) =
            crate::sources::promql::build_all(&self.sources.promql, self.prometheus.as_deref())
        {
            return invalid(message);
        }
        for (i, c) in self.sources.cloudwatch.iter().enumerate() {
            if let Err(message) = c.check(&format!("sources.cloudwatch[{i}]")) {
                return invalid(message);
            }
            if self.aws.is_none() {
                return invalid(format!(
                    "sources.cloudwatch[{i}]: CloudWatch needs [aws] in grace.toml"
                ));
            }
        }
        for (i, c) in self.sources.containers.iter().enumerate() {
            if let Err(message) = c.check(&format!("sources.containers[{i}]")) {
                return invalid(message);
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (key, name) in self.sources.names() {
            if matches!(name, "alertmanager" | "metrics-push") || !seen.insert(name) {
                return invalid(format!("{key}: `{name}` is the name of another source"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn insecure_no_auth_is_refused_beyond_loopback() {
        let c = ServeConfig {
            insecure_no_auth: true,
            listen: "0.0.0.0:7070".parse().unwrap(),
            ..ServeConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("insecure_no_auth: "), "{e}");
        assert!(e.contains("0.0.0.0:7070") && e.contains("loopback"), "{e}");
        for loopback in ["127.0.0.1:7070", "[::1]:7070"] {
            let c = ServeConfig {
                insecure_no_auth: true,
                listen: loopback.parse().unwrap(),
                ..ServeConfig::default()
            };
            c.validate().unwrap();
        }
    }

    #[test]
    fn a_non_loopback_listen_without_tls_is_refused_naming_the_ways_out() {
        for address in ["0.0.0.0:7070", "[::]:7070", "192.0.2.10:7070"] {
            let c = ServeConfig {
                listen: address.parse().unwrap(),
                ..ServeConfig::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.starts_with("listen: "), "{e}");
            assert!(
                e.contains(address)
                    && e.contains("--tls-cert")
                    && e.contains("--insecure-plaintext"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_non_loopback_listen_is_accepted_with_tls_or_insecure_plaintext() {
        let with_tls = ServeConfig {
            listen: "0.0.0.0:7070".parse().unwrap(),
            tls: Some(TlsFiles {
                cert: "tls.crt".into(),
                key: "tls.key".into(),
            }),
            ..ServeConfig::default()
        };
        with_tls.validate().unwrap();
        let plaintext = ServeConfig {
            listen: "0.0.0.0:7070".parse().unwrap(),
            insecure_plaintext: true,
            ..ServeConfig::default()
        };
        plaintext.validate().unwrap();
        // Loopback needs neither.
        ServeConfig::default().validate().unwrap();
    }

    #[test]
    fn insecure_plaintext_with_tls_is_refused() {
        let c = ServeConfig {
            insecure_plaintext: true,
            tls: Some(TlsFiles {
                cert: "tls.crt".into(),
                key: "tls.key".into(),
            }),
            ..ServeConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("insecure_plaintext: "), "{e}");
    }

    #[test]
    fn tls_cert_and_key_are_read_from_the_file_and_come_together() {
        let c = toml::from_str::<FileConfig>("tls_cert = \"a.crt\"\ntls_key = \"a.key\"\n")
            .unwrap()
            .apply(ServeConfig::default())
            .unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "a.crt".into(),
                key: "a.key".into()
            })
        );
        let e = toml::from_str::<FileConfig>("tls_cert = \"a.crt\"\n")
            .unwrap()
            .apply(ServeConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tls_key: missing"), "{e}");
        let e = toml::from_str::<FileConfig>("tls_key = \"a.key\"\n")
            .unwrap()
            .apply(ServeConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tls_cert: missing"), "{e}");
    }

    #[test]
    fn trust_roots_are_read_and_a_bad_one_is_named() {
        let key = grace_ledger::generate_key("release-team").unwrap();
        let text = format!(
            "[[trust_roots]]\nname = \"release\"\npublic_key = \"{}\"\n",
            key.verifier()
        );
        let c = toml::from_str::<FileConfig>(&text)
            .unwrap()
            .apply(ServeConfig::default())
            .unwrap();
        c.validate().unwrap();
        assert_eq!(c.trust_roots[0].name, "release");

        let bad = "[[trust_roots]]\nname = \"ops\"\npublic_key = \"ops+00000000+AAAA\"\n";
        let e = toml::from_str::<FileConfig>(bad)
            .unwrap()
            .apply(ServeConfig::default())
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("trust_roots: trust_roots[0] (`ops`)"), "{e}");
    }

    #[test]
    fn the_prometheus_url_is_read_and_checked() {
        let file: FileConfig = toml::from_str("prometheus = \"http://127.0.0.1:9090\"").unwrap();
        let c = file.apply(ServeConfig::default()).unwrap();
        assert_eq!(c.prometheus.as_deref(), Some("http://127.0.0.1:9090"));
        c.validate().unwrap();

        for bad in ["127.0.0.1:9090", "ftp://metrics", "not a url"] {
            let c = ServeConfig {
                prometheus: Some(bad.to_owned()),
                ..ServeConfig::default()
            };
            let e = c.validate().unwrap_err();
            assert!(e.to_string().starts_with("prometheus: "), "{e}");
        }
    }

    #[test]
    fn promql_sources_are_read_and_checked_naming_the_key() {
        let text = r#"
            prometheus = "http://127.0.0.1:9090"
            [[sources.promql]]
            name = "api-latency"
            query = 'histogram_quantile(0.95, sum(rate(x_bucket[1m])) by (le))'
            event_type = "metrics.latency"
            every = "15s"
        "#;
        let file: FileConfig = toml::from_str(text).unwrap();
        let c = file.apply(ServeConfig::default()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.sources.promql[0].name, "api-latency");

        let twice = format!(
            "{text}
[[sources.promql]]
name = \"api-latency\"
query = 'up'
event_type = \"metrics.up\"
"
        );
        let file: FileConfig = toml::from_str(&twice).unwrap();
        let e = file
            .apply(ServeConfig::default())
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("sources.promql[1].name"), "{e}");

        let no_url = text.replace("prometheus = \"http://127.0.0.1:9090\"", "");
        let file: FileConfig = toml::from_str(&no_url).unwrap();
        let e = file
            .apply(ServeConfig::default())
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("sources.promql[0].url"), "{e}");
    }
}
