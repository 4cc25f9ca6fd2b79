//! `[cluster]` in `grace.toml`: where the engine is, how to sign in to it, and the timing of
//! shard leases. Every replica of one cluster must agree on `shards`, `lease_ttl` and
//! `engine_replicas`: the engine's streams and buckets are created with them, and a replica
//! whose values differ is refused at start (see [`crate::schema`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::SettingsError;

/// The settings of clustered mode.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// The engine's URLs, `nats://host:port` or `tls://host:port` (one or several nodes of the
    /// same NATS cluster; the client finds the others).
    pub nats: Vec<String>,
    /// Whether the client may also connect to the other nodes the engine's servers advertise
    /// (the default); `false` keeps it on the URLs given, for an engine behind a proxy or NAT
    /// whose advertised addresses are not reachable from here.
    pub discover_servers: bool,
    /// This replica's name in the cluster: letters, digits, `-` and `_`, at most 64. Default: the
    /// host name (each replica must have its own).
    pub replica: Option<String>,
    /// How many shards the trigger work is cut into (by resource). Fixed for the life of a
    /// cluster.
    pub shards: u32,
    /// How long a shard lease lasts without renewal: the engine drops it then (the lease
    /// bucket's `max_age`), and another replica may take the shard. Must stay well above the
    /// time the engine needs to elect a new stream leader (about 5 s measured with 2.9).
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How often leases are renewed and the replica's heartbeat written.
    #[serde(with = "humantime_serde")]
    pub renew_every: Duration,
    /// How many copies the engine keeps of every stream and bucket (1, 3 or 5; 3 survives the
    /// loss of one node).
    pub engine_replicas: usize,
    /// The time limit of one request to the engine.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long the cluster's event log keeps events (the stream's `max_age`).
    #[serde(with = "humantime_serde")]
    pub event_retention: Duration,
    /// The most bytes the cluster's event log holds; when full, new events are refused (their
    /// publishers retry), never old ones dropped unread.
    pub events_max_bytes: i64,
    /// A NATS credentials file (JWT and NKey seed), for servers with decentralized auth.
    pub credentials: Option<PathBuf>,
    /// A token, for servers configured with `authorization { token }`. Prefer
    /// `GRACE_CLUSTER_TOKEN` over writing it here.
    pub token: Option<String>,
    /// A user, for servers configured with users and passwords.
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<String>,
    /// TLS to the engine: a CA to trust instead of the system's roots, and a client
    /// certificate for servers that ask for one.
    pub tls: Option<ClusterTls>,
}

/// TLS to the engine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTls {
    /// PEM file of the certificate authorities to trust for the engine's certificate.
    pub ca: Option<PathBuf>,
    /// PEM file of this replica's client certificate (with `key`).
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key: Option<PathBuf>,
}

/// The fraction of `lease_ttl` a replica stops trusting its lease before the engine drops it:
/// what covers a renewal's time in flight and the rate at which two clocks may drift.
pub const LEASE_MARGIN_DIVISOR: u32 = 5;

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            nats: Vec::new(),
            discover_servers: true,
            replica: None,
            shards: 64,
            lease_ttl: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
            engine_replicas: 3,
            request_timeout: Duration::from_secs(5),
            event_retention: Duration::from_secs(7 * 24 * 3600),
            events_max_bytes: 1024 * 1024 * 1024,
            credentials: None,
            token: None,
            user: None,
            password: None,
            tls: None,
        }
    }
}

impl ClusterSettings {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.nats.is_empty() {
            return Err(SettingsError::new(
                "nats",
                "at least one engine URL is needed",
            ));
        }
        for url in &self.nats {
            check_url(url)?;
        }
        if let Some(replica) = &self.replica {
            check_replica_name(replica).map_err(|m| SettingsError::new("replica", m))?;
        }
        if !(1..=4096).contains(&self.shards) {
            return Err(SettingsError::new("shards", "must be within 1..=4096"));
        }
        if ![1, 3, 5].contains(&self.engine_replicas) {
            return Err(SettingsError::new("engine_replicas", "must be 1, 3 or 5"));
        }
        if self.lease_ttl < Duration::from_secs(1) || self.lease_ttl > Duration::from_secs(600) {
            return Err(SettingsError::new("lease_ttl", "must be within 1s..=10m"));
        }
        // A lease must survive two renewals lost in a row, and be renewed before its margin.
        if self.renew_every.is_zero() || self.renew_every > (self.lease_ttl - self.margin()) / 3 {
            return Err(SettingsError::new(
                "renew_every",
                format!(
                    "must be more than 0 and at most a third of lease_ttl less its margin \
                     ({:?} here)",
                    (self.lease_ttl - self.margin()) / 3
                ),
            ));
        }
        // A renewal that times out must leave time for another before the lease's trust ends.
        if self.request_timeout.is_zero()
            || self.request_timeout > (self.lease_ttl - self.margin()) / 2
        {
            return Err(SettingsError::new(
                "request_timeout",
                format!(
                    "must be more than 0 and at most half of lease_ttl less its margin ({:?} here)",
                    (self.lease_ttl - self.margin()) / 2
                ),
            ));
        }
        if self.event_retention < Duration::from_secs(60)
            || self.event_retention > Duration::from_secs(366 * 24 * 3600)
        {
            return Err(SettingsError::new(
                "event_retention",
                "must be within 1m..=366d",
            ));
        }
        if self.events_max_bytes < 16 * 1024 * 1024 {
            return Err(SettingsError::new(
                "events_max_bytes",
                "must be at least 16 MiB",
            ));
        }
        if self.password.is_some() != self.user.is_some() {
            return Err(SettingsError::new("user", "user and password go together"));
        }
        let auth_ways = [
            self.credentials.is_some(),
            self.token.is_some(),
            self.user.is_some(),
        ];
        if auth_ways.iter().filter(|set| **set).count() > 1 {
            return Err(SettingsError::new(
                "credentials",
                "choose one of credentials, token, or user and password",
            ));
        }
        if let Some(tls) = &self.tls
            && tls.cert.is_some() != tls.key.is_some()
        {
            return Err(SettingsError::new("tls.cert", "cert and key go together"));
        }
        Ok(())
    }

    /// How long before the engine drops a lease its holder stops trusting it.
    pub fn margin(&self) -> Duration {
        self.lease_ttl / LEASE_MARGIN_DIVISOR
    }

    /// The replica name: the one set, else the host name made valid.
    pub fn replica_name(&self) -> String {
        self.replica.clone().unwrap_or_else(default_replica_name)
    }
}

/// `nats://` or `tls://` with a host and a port, and nothing the client would read as options.
fn check_url(url: &str) -> Result<(), SettingsError> {
    let bad = |m: &str| SettingsError::new("nats", format!("`{}`: {m}", url.escape_debug()));
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .ok_or_else(|| bad("must start with nats:// or tls://"))?;
    if rest.contains('@') {
        return Err(bad(
            "credentials belong in `token` or `user`/`password`, not in the URL",
        ));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("needs a port (host:port)"))?;
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
    {
        return Err(bad("the host is not a host name or an IP address"));
    }
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("the port must be a number within 1..=65535"))?;
    Ok(())
}

/// A replica name is part of engine keys (`replica.<name>`) and of metric labels.
pub fn check_replica_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".to_owned());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "`{}`: only letters, digits, `-` and `_`",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// The host name with every other character replaced by `-`, cut to 64.
fn default_replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default();
    let name: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "grace".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_nats() -> ClusterSettings {
        ClusterSettings {
            nats: vec!["nats://127.0.0.1:4222".to_owned()],
            ..ClusterSettings::default()
        }
    }

    fn refused(settings: &ClusterSettings) -> &'static str {
        settings.validate().unwrap_err().field
    }

    #[test]
    fn defaults_with_an_engine_are_valid() {
        with_nats().validate().unwrap();
        assert_eq!(with_nats().margin(), Duration::from_secs(3));
    }

    #[test]
    fn each_bad_value_names_its_key() {
        assert_eq!(refused(&ClusterSettings::default()), "nats");
        for url in [
            "http://127.0.0.1:4222",
            "nats://127.0.0.1",
            "nats://user:pw@127.0.0.1:4222",
            "nats://127.0.0.1:0",
            "nats://127.0.0.1:4222/?x=1",
            "nats:// :4222",
        ] {
            let s = ClusterSettings {
                nats: vec![url.to_owned()],
                ..ClusterSettings::default()
            };
            assert_eq!(refused(&s), "nats", "{url}");
        }
        let cases: Vec<(ClusterSettings, &str)> = vec![
            (
                ClusterSettings {
                    replica: Some("a.b".to_owned()),
                    ..with_nats()
                },
                "replica",
            ),
            (
                ClusterSettings {
                    shards: 0,
                    ..with_nats()
                },
                "shards",
            ),
            (
                ClusterSettings {
                    engine_replicas: 2,
                    ..with_nats()
                },
                "engine_replicas",
            ),
            (
                ClusterSettings {
                    renew_every: Duration::from_secs(5),
                    ..with_nats()
                },
                "renew_every",
            ),
            (
                ClusterSettings {
                    request_timeout: Duration::from_secs(7),
                    ..with_nats()
                },
                "request_timeout",
            ),
            (
                ClusterSettings {
                    user: Some("u".to_owned()),
                    ..with_nats()
                },
                "user",
            ),
            (
                ClusterSettings {
                    token: Some("t".to_owned()),
                    user: Some("u".to_owned()),
                    password: Some("p".to_owned()),
                    ..with_nats()
                },
                "credentials",
            ),
        ];
        for (settings, field) in cases {
            assert_eq!(refused(&settings), field, "{settings:?}");
        }
    }

    #[test]
    fn parses_durations_and_refuses_unknown_keys() {
        let s: ClusterSettings = toml_like(
            r#"{"nats": ["tls://nats.example:4222"], "lease_ttl": "30s", "renew_every": "5s"}"#,
        )
        .unwrap();
        assert_eq!(s.lease_ttl, Duration::from_secs(30));
        s.validate().unwrap();
        assert!(toml_like(r#"{"nats": [], "leases": "30s"}"#).is_err());
    }

    fn toml_like(json: &str) -> Result<ClusterSettings, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn replica_names_are_engine_key_safe() {
        check_replica_name("grace-1_a").unwrap();
        for bad in ["", "a.b", "a b", "a*", &"x".repeat(65)] {
            assert!(check_replica_name(bad).is_err(), "{bad}");
        }
        check_replica_name(&default_replica_name()).unwrap();
    }
}
