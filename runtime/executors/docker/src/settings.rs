//! `[docker]` in `grace.toml`: where the engine is and how long GRACE waits for it.
//!
//! ```toml
//! [docker]
//! host = "unix:///run/podman/podman.sock"   # default: DOCKER_HOST, else /var/run/docker.sock
//! call_timeout = "10s"                       # one API call; default 10 s
//! stop_timeout = "10s"                       # a container gets to stop; default 10 s
//! ```
//!
//! Both durations are humantime strings (`"1500ms"`, `"2m"`), as every duration of `grace.toml`.
//! Accepted hosts are `unix://<path>` and plain-HTTP `tcp://<host>:<port>` or
//! `http://<host>:<port>`; TLS and SSH transports are refused rather than silently used in clear.

use std::time::Duration;

use serde::Deserialize;

/// The default time limit of one call to the engine.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The default time a container is given to stop before it is killed.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine socket used when neither the settings nor `DOCKER_HOST` name one, as the Docker
/// CLI and bollard do.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How to reach a Docker-compatible engine (Docker Engine, or Podman's Docker API service).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSettings {
    /// The engine's address, `unix:///path/to/socket` or `tcp://host:port`; `None` means
    /// `DOCKER_HOST`, else [`DEFAULT_HOST`].
    pub host: Option<String>,
    /// The time limit of one API call; `stop` and `restart` get [`Self::stop_timeout`] on top.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// How long a container is given to stop (SIGTERM) before the engine kills it; the engine
    /// takes whole seconds, so this is rounded up.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings {
            host: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
        }
    }
}

/// The engine's address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// A Unix socket path.
    Unix(String),
    /// A plain-HTTP address, `tcp://` or `http://` as given.
    Http(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{path}"),
            Host::Http(address) => f.write_str(address),
        }
    }
}

/// Why the settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The host is not a `unix://`, `tcp://` or `http://` address.
    #[error(
        "docker.host: `{0}` is not a supported engine address (use `unix:///path/to/socket` or `tcp://host:port`)"
    )]
    UnsupportedHost(String),
    /// A time limit is zero.
    #[error("docker.{0}: must be more than zero")]
    ZeroTimeout(&'static str),
}

impl DockerSettings {
    /// The engine address these settings name, falling back to `DOCKER_HOST` then
    /// [`DEFAULT_HOST`], checked.
    pub(crate) fn resolve_host(&self) -> Result<Host, SettingsError> {
        let host = match &self.host {
            Some(h) => h.clone(),
            None => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| DEFAULT_HOST.to_owned()),
        };
        parse_host(&host)
    }

    /// Checks the time limits.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.call_timeout.is_zero() {
            return Err(SettingsError::ZeroTimeout("call_timeout"));
        }
        Ok(())
    }

    /// [`Self::stop_timeout`] in the whole seconds the engine API takes, rounded up.
    pub(crate) fn stop_timeout_secs(&self) -> i32 {
        let secs = self.stop_timeout.as_secs() + u64::from(self.stop_timeout.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

fn parse_host(host: &str) -> Result<Host, SettingsError> {
    let unsupported = || SettingsError::UnsupportedHost(host.to_owned());
    if let Some(path) = host.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(unsupported());
        }
        return Ok(Host::Unix(path.to_owned()));
    }
    for scheme in ["tcp://", "http://"] {
        if let Some(address) = host.strip_prefix(scheme) {
            if address.is_empty() || address.contains(['/', '?', '#', ' ']) {
                return Err(unsupported());
            }
            return Ok(Host::Http(host.to_owned()));
        }
    }
    Err(unsupported())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(text: &str) -> Result<DockerSettings, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_section_is_the_defaults() {
        assert_eq!(parse("").unwrap(), DockerSettings::default());
        assert_eq!(
            DockerSettings::default().call_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(DockerSettings::default().stop_timeout_secs(), 10);
    }

    #[test]
    fn durations_are_duration_strings() {
        let s = parse(
            "host = \"unix:///run/podman.sock\"\ncall_timeout = \"1500ms\"\nstop_timeout = \"3s\"\n",
        )
        .unwrap();
        assert_eq!(s.host.as_deref(), Some("unix:///run/podman.sock"));
        assert_eq!(s.call_timeout, Duration::from_millis(1500));
        assert_eq!(s.stop_timeout_secs(), 3);
        let s = parse("stop_timeout = \"2500ms\"\n").unwrap();
        assert_eq!(s.stop_timeout_secs(), 3, "rounded up to whole seconds");
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_refused() {
        let e = parse("socket = \"/x\"\n").unwrap_err();
        assert!(e.contains("unknown field `socket`"), "{e}");
        let e = parse("call_timeout = \"soon\"\n").unwrap_err();
        assert!(e.contains("\"soon\", expected a duration"), "{e}");
        // One syntax for every duration: a bare number has no unit to read it by.
        let e = parse("stop_timeout = 3\n").unwrap_err();
        assert!(e.contains("expected a duration"), "{e}");
    }

    #[test]
    fn hosts_are_unix_sockets_or_plain_http() {
        assert_eq!(
            parse_host("unix:///run/podman.sock"),
            Ok(Host::Unix("/run/podman.sock".to_owned()))
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1:2375"),
            Ok(Host::Http("tcp://127.0.0.1:2375".to_owned()))
        );
        assert!(parse_host("http://127.0.0.1:2375").is_ok());
        for bad in [
            "unix://",
            "https://h:2376",
            "ssh://h",
            "/run/docker.sock",
            "tcp://h/p",
        ] {
            assert_eq!(
                parse_host(bad),
                Err(SettingsError::UnsupportedHost(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_settings_embed_as_a_docker_section() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct GraceToml {
            docker: DockerSettings,
        }
        let file: GraceToml =
            toml::from_str("[docker]\nhost = \"tcp://127.0.0.1:2375\"\nstop_timeout = \"1m\"\n")
                .unwrap();
        assert_eq!(file.docker.host.as_deref(), Some("tcp://127.0.0.1:2375"));
        assert_eq!(file.docker.call_timeout, DEFAULT_CALL_TIMEOUT);
        assert_eq!(file.docker.stop_timeout_secs(), 60);
    }

    #[test]
    fn a_zero_call_timeout_is_refused() {
        let s = parse("call_timeout = \"0s\"\n").unwrap();
        assert_eq!(
            s.validate(),
            Err(SettingsError::ZeroTimeout("call_timeout"))
        );
    }
}
