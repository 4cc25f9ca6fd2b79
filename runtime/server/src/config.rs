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
//! | `[sources]` | [`crate::sources::SourcesConfig`] | [`crate::sources::SourcesConfig::validate`] |
//! | `[aws]`, `[docker]`, `[kubernetes]` | the executor crates' settings | their own `validate` |
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
    /// Most events one collector pass may return; a pass over it fails.
    pub collector_max_events: usize,
    /// Most bytes (event types, resources and payloads) one collector pass may return; a pass
    /// over it fails.
    pub collector_max_bytes: usize,
    /// Runs executing at once.
    pub max_concurrent_runs: usize,
    /// Attempts per run when a backend error is transient.
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
    // `[[providers]]` (several named providers per capability) will be read here, as one more
    // field whose type lives with the executors it routes to.
    /// A signing key (`grace keys generate`): the server signs a checkpoint of the ledger every
    /// `checkpoint_every` while it grows, served at `GET /v1/ledger/checkpoint`.
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
        }
    }
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
    /// The file is not valid TOML, or not a `grace.toml`: an unknown key, a value of the wrong
    /// type, a duration that is not one (the message names the key and shows its line).
    #[error("`{path}` is not a valid configuration: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why, with the line.
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

impl ConfigError {
    /// A refused value of `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field,
            message: message.into(),
        }
    }
}

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
        ServeConfig::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses the text of a `grace.toml`.
    pub fn parse(text: &str) -> Result<ServeConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
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
        crate::signing::TrustRoots::load(&self.trust_roots)
            .map_err(|message| ConfigError::invalid("trust_roots", message))?;
        self.auth.validate()?;
        self.limits.validate()?;
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
            .map_err(|message| ConfigError::invalid("sources", message))
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

    /// Whether any real backend is configured.
    pub fn has_backends(&self) -> bool {
        self.prometheus.is_some()
            || self.docker.is_some()
            || self.kubernetes.is_some()
            || self.aws.is_some()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(text: &str) -> ServeConfig {
        ServeConfig::parse(text).unwrap()
    }

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
            tls_cert: Some("tls.crt".into()),
            tls_key: Some("tls.key".into()),
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
            tls_cert: Some("tls.crt".into()),
            tls_key: Some("tls.key".into()),
            ..ServeConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("insecure_plaintext: "), "{e}");
    }

    #[test]
    fn tls_cert_and_key_are_read_from_the_file_and_come_together() {
        let c = parse("tls_cert = \"a.crt\"\ntls_key = \"a.key\"\n");
        c.validate().unwrap();
        assert_eq!(
            c.tls(),
            Some(TlsFiles {
                cert: "a.crt".into(),
                key: "a.key".into()
            })
        );
        let e = parse("tls_cert = \"a.crt\"\n").validate().unwrap_err();
        assert!(e.to_string().starts_with("tls_key: missing"), "{e}");
        let e = parse("tls_key = \"a.key\"\n").validate().unwrap_err();
        assert!(e.to_string().starts_with("tls_cert: missing"), "{e}");
    }

    #[test]
    fn trust_roots_are_read_and_a_bad_one_is_named() {
        let key = grace_ledger::generate_key("release-team").unwrap();
        let text = format!(
            "[[trust_roots]]\nname = \"release\"\npublic_key = \"{}\"\n",
            key.verifier()
        );
        let c = parse(&text);
        c.validate().unwrap();
        assert_eq!(c.trust_roots[0].name, "release");

        let bad = "[[trust_roots]]\nname = \"ops\"\npublic_key = \"ops+00000000+AAAA\"\n";
        let e = parse(bad).validate().unwrap_err().to_string();
        assert!(e.starts_with("trust_roots: trust_roots[0] (`ops`)"), "{e}");
    }

    #[test]
    fn the_prometheus_url_is_read_and_checked() {
        let c = parse("prometheus = \"http://127.0.0.1:9090\"");
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
        let c = parse(text);
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
        let e = parse(&twice).validate().unwrap_err();
        assert!(e.to_string().contains("sources.promql[1].name"), "{e}");

        let no_url = text.replace("prometheus = \"http://127.0.0.1:9090\"", "");
        let e = parse(&no_url).validate().unwrap_err();
        assert!(e.to_string().contains("sources.promql[0].url"), "{e}");
    }

    /// A `grace.toml` setting every duration of every section to `d`. A CloudWatch period is
    /// 1s, 5s, 10s, 30s or whole minutes (CloudWatch's own rule): it gets `2m` when `d` is not
    /// whole minutes.
    fn every_duration(d: &str) -> String {
        let whole_minutes = humantime::parse_duration(d)
            .unwrap()
            .as_secs()
            .is_multiple_of(60);
        let period = if whole_minutes { d } else { "2m" };
        format!(
            r#"
header_read_timeout = "{d}"
body_read_timeout = "{d}"
event_retention = "{d}"
retry_backoff = "{d}"
checkpoint_every = "{d}"
[limits]
timeout = "{d}"
[trust]
approval_ttl = "{d}"
[auth.oidc]
issuer = "https://idp.example.com"
audience = "grace"
clock_skew = "{d}"
jwks_refresh = "{d}"
[aws]
call_timeout = "{d}"
wait_delay = "{d}"
[docker]
call_timeout = "{d}"
stop_timeout = "{d}"
[kubernetes]
call_timeout = "{d}"
poll_interval = "{d}"
[[sources.promql]]
name = "p"
query = "up"
event_type = "metrics.up"
every = "{d}"
timeout = "{d}"
max_age = "{d}"
[[sources.containers]]
name = "c"
selector = {{ app = "web" }}
every = "{d}"
timeout = "{d}"
[[sources.cloudwatch]]
name = "w"
event_type = "metrics.cpu"
metric = {{ id = "cpu", namespace = "AWS/EC2", metric_name = "CPUUtilization", stat = "Average", period = "{period}" }}
every = "{d}"
timeout = "{d}"
max_age = "{d}"
lookback = "{d}"
"#
        )
    }

    /// Where [`durations_of`] puts the CloudWatch metric's period.
    const CLOUDWATCH_PERIOD: usize = 20;

    /// Every duration the model holds, as read.
    fn durations_of(c: &ServeConfig) -> Vec<Option<Duration>> {
        let oidc = c.auth.oidc.as_ref().unwrap();
        let (aws, docker, kube) = (
            c.aws.as_ref().unwrap(),
            c.docker.as_ref().unwrap(),
            c.kubernetes.as_ref().unwrap(),
        );
        let (p, k, w) = (
            &c.sources.promql[0],
            &c.sources.containers[0],
            &c.sources.cloudwatch[0],
        );
        vec![
            Some(c.header_read_timeout),
            Some(c.body_read_timeout),
            Some(c.event_retention),
            Some(c.retry_backoff),
            Some(c.checkpoint_every),
            Some(c.limits.caps.timeout),
            c.trust.approval_ttl,
            oidc.clock_skew,
            oidc.jwks_refresh,
            Some(aws.call_timeout),
            Some(aws.wait_delay),
            Some(docker.call_timeout),
            Some(docker.stop_timeout),
            Some(kube.call_timeout),
            Some(kube.poll_interval),
            p.every,
            p.timeout,
            p.max_age,
            k.every,
            k.timeout,
            Some(w.metric.period),
            w.every,
            w.timeout,
            w.max_age,
            w.lookback,
        ]
    }

    #[test]
    fn a_duration_is_read_as_90s_5m_or_1h_30m_everywhere_a_duration_is() {
        for (text, expected) in [
            ("90s", Duration::from_secs(90)),
            ("5m", Duration::from_secs(300)),
            ("1h 30m", Duration::from_secs(5400)),
        ] {
            let c = parse(&every_duration(text));
            let read = durations_of(&c);
            assert_eq!(read.len(), 25);
            for (i, d) in read.into_iter().enumerate() {
                if i == CLOUDWATCH_PERIOD && !expected.as_secs().is_multiple_of(60) {
                    assert_eq!(d, Some(Duration::from_secs(120)));
                    continue;
                }
                assert_eq!(d, Some(expected), "duration {i} written `{text}`");
            }
        }
    }

    #[test]
    fn a_duration_that_is_not_one_is_refused_showing_its_key() {
        for key in ["event_retention", "checkpoint_every"] {
            let e = ServeConfig::parse(&format!("{key} = \"soon\"")).unwrap_err();
            assert!(e.contains(key) && e.contains("\"soon\""), "{e}");
        }
        let e = ServeConfig::parse("[limits]\ntimeout = 600").unwrap_err();
        assert!(
            e.contains("timeout") && e.contains("expected a duration"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_is_refused_naming_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grace.toml");
        for (text, key) in [
            ("max_conections = 10\n", "max_conections"),
            ("[limits]\nmax_log_byts = 1\n", "max_log_byts"),
            ("[trust]\napproval = \"1h\"\n", "approval"),
            ("[docker]\nsocket = \"/x\"\n", "socket"),
            (
                "[[sources.promql]]\nname = \"p\"\nquery = \"up\"\nevent_type = \"m\"\nevry = \"1m\"\n",
                "evry",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = ServeConfig::read(&path).unwrap_err().to_string();
            assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
            assert!(e.contains(&path.display().to_string()), "{e}");
        }
    }

    #[test]
    fn the_flag_only_switches_are_not_file_keys() {
        for key in ["insecure_no_auth", "insecure_plaintext"] {
            let e = ServeConfig::parse(&format!("{key} = true")).unwrap_err();
            assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
        }
    }

    #[test]
    fn the_file_beats_the_defaults_and_keeps_them_for_keys_it_does_not_set() {
        let c = parse("queue_capacity = 5\n[limits]\nmax_log_bytes = 1024\n");
        assert_eq!(c.queue_capacity, 5);
        assert_eq!(c.limits.caps.max_log_bytes, 1024);
        let d = ServeConfig::default();
        assert_eq!(
            (c.max_concurrent_runs, c.listen, c.limits.run),
            (d.max_concurrent_runs, d.listen, d.limits.run)
        );
    }

    #[test]
    fn an_override_beats_the_file_and_leaves_the_keys_it_does_not_give() {
        let mut c = parse(
            "queue_capacity = 5\nmax_connections = 7\nevent_retention = \"1d\"\nsimulate = true\ntls_cert = \"file.crt\"\ntls_key = \"file.key\"\n",
        );
        Overrides {
            queue_capacity: Some(9),
            event_retention: Some(Duration::from_secs(60)),
            tls_key: Some("flag.key".into()),
            ..Overrides::default()
        }
        .apply(&mut c)
        .unwrap();
        assert_eq!(c.queue_capacity, 9);
        assert_eq!(c.event_retention, Duration::from_secs(60));
        assert_eq!(c.max_connections, 7, "not overridden");
        assert!(c.simulate, "an absent switch does not turn the file's off");
        assert_eq!(
            c.tls(),
            Some(TlsFiles {
                cert: "file.crt".into(),
                key: "flag.key".into()
            }),
            "each half of the pair is overridden on its own"
        );
    }

    #[test]
    fn the_complete_file_of_the_reference_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let section = doc.split("## A complete file").nth(1).unwrap();
        let toml = section.split("```toml\n").nth(1).unwrap();
        let toml = toml.split("```").next().unwrap();
        let c = parse(toml);
        c.validate().unwrap();
        assert_eq!(format!("{c:?}"), format!("{:?}", ServeConfig::default()));
        // The commented-out tables are accepted too.
        let uncommented: String = toml
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        parse(&uncommented);
    }

    #[test]
    fn each_sections_validation_names_its_field() {
        for (text, field) in [
            ("queue_capacity = 0", "queue_capacity: "),
            ("checkpoint_every = \"10ms\"", "checkpoint_every: "),
            (
                "[limits]\nmax_response_bytes = 1",
                "limits.max_response_bytes: ",
            ),
            (
                "[trust]\napproval_ttl = \"0s\"",
                "trust: trust.approval_ttl: ",
            ),
            (
                "[[trust.resource]]\nmatch = \" \"",
                "trust: trust.resource[0].match: ",
            ),
            (
                "[auth.oidc]\nissuer = \"ftp://idp\"\naudience = \"grace\"",
                "auth.oidc.issuer: ",
            ),
            ("[aws]\nregion = \"EU West\"", "aws: aws.region: "),
            ("[docker]\nhost = \"ssh://box\"", "docker: "),
            (
                "[kubernetes]\ncontext = \"\"",
                "kubernetes: kubernetes.context: ",
            ),
            (
                "[[sources.containers]]\nname = \"c\"\nselector = {}",
                "sources: sources.containers[0].selector: ",
            ),
            (
                "[aws]\nregion = \"eu-west-1\"\n[[sources.cloudwatch]]\nname = \"w\"\nevent_type = \"m.cpu\"\nlookback = \"1s\"\nmetric = { id = \"cpu\", namespace = \"AWS/EC2\", metric_name = \"CPUUtilization\", stat = \"Average\", period = \"1m\" }",
                "sources: sources.cloudwatch[0].lookback: ",
            ),
            ("tls_cert = \"a.crt\"", "tls_key: "),
        ] {
            let e = parse(text).validate().unwrap_err().to_string();
            assert!(e.starts_with(field), "{text}: {e}");
        }
    }
}
