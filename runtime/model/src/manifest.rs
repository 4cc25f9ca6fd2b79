//! `playbook.toml`: parsing and validating a guest's manifest.
//!
//! The format is documented in `docs/manifest.md`. Parsing is strict: unknown keys are errors,
//! every value is checked, and every error names the field it is about. A manifest that parses
//! is fully typed: durations are `Duration`s, sizes are bytes, grants are the typed rules of
//! [`crate::grants`], so nothing downstream re-parses strings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::condition::{Condition, KeyTemplate};
use crate::glob::Glob;
use crate::grants::{self, Grants};

/// The newest manifest version this host understands. Version 2 changed `[grants.metrics]` to
/// series entries checked on parsed PromQL; a version-1 manifest still loads when it grants no
/// metrics (nothing else changed), and is refused with the entries to write when it does.
pub const MANIFEST_VERSION: u32 = 2;
/// The oldest manifest version this host understands.
pub const OLDEST_MANIFEST_VERSION: u32 = 1;
/// The largest linear memory a guest may ask for.
pub const MAX_MEMORY_BYTES: u64 = 256 * 1024 * 1024;
/// The longest run a manifest may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The most host calls a run may ask for.
pub const MAX_HOST_CALLS: u32 = 1_000_000;
/// The longest log message a manifest may allow.
pub const MAX_LOG_BYTES: u32 = 1024 * 1024;
/// The most a manifest may allow a run to log in all.
pub const MAX_TOTAL_LOG_BYTES: u64 = 64 * 1024 * 1024;
/// Largest manifest text: manifests are a few KiB; a bound keeps a hostile one (22 MB of
/// grants took 8 s to parse) from slowing every load and listing.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// Whether a guest responds to events or produces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Exports `run(event) -> outcome`.
    Playbook,
    /// Exports `collect() -> events`.
    Collector,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Playbook => "playbook",
            Kind::Collector => "collector",
        })
    }
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Unique name: lowercase letters, digits and `-`.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Playbook or collector.
    pub kind: Kind,
    /// Free text.
    pub description: Option<String>,
    /// The built component, resolved against the manifest's directory when loaded from a file.
    pub component: PathBuf,
    /// Which events start this playbook (empty for collectors).
    pub triggers: Vec<Trigger>,
    /// How often a collector runs (`None` for playbooks).
    pub schedule: Option<Duration>,
    /// Bounds on the guest.
    pub limits: Limits,
    /// Configuration the guest reads through the `config` interface.
    pub config: BTreeMap<String, String>,
    /// What the guest may do.
    pub grants: Grants,
}

/// A trigger: which events start the playbook. The trigger mesh (`grace-mesh`) decides, event by
/// event, whether it fires; `docs/triggers.md` describes how.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// Glob over the event type.
    pub event_type: Glob,
    /// Glob over the event's resource.
    pub resource: Glob,
    /// An expression over the event, e.g. `value > 500`; `None` matches every event.
    pub condition: Option<Condition>,
    /// How long, or for how many events, the condition must hold before the trigger fires.
    pub hold_for: Option<Hold>,
    /// Events with the same key are one incident: no second run while the first is active.
    pub dedup_key: Option<KeyTemplate>,
    /// Minimum time between runs of the playbook for one resource.
    pub cooldown: Option<Duration>,
}

/// A trigger's `for`: how long the condition must hold before the trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hold {
    /// True on every matching event for at least this long (`for = "2m"`), by event timestamps.
    Duration(Duration),
    /// True on this many consecutive matching events (`for = "3 events"`).
    Events(u32),
}

impl Hold {
    /// Parses `2m` (any humantime duration) or `3 events` / `1 event`; zero is refused.
    pub fn parse(text: &str) -> Result<Hold, String> {
        let text = text.trim();
        let count = text
            .strip_suffix("events")
            .or_else(|| text.strip_suffix("event"));
        if let Some(count) = count {
            return match count.trim().parse::<u32>() {
                Ok(0) => Err(
                    "`0 events` would never hold; leave `for` out to fire on the first event"
                        .into(),
                ),
                Ok(n) => Ok(Hold::Events(n)),
                Err(_) => Err(format!(
                    "`{text}` is not a count of events like `3 events` (at most {})",
                    u32::MAX
                )),
            };
        }
        match humantime::parse_duration(text) {
            Ok(d) if d.is_zero() => Err(format!(
                "`{text}` is zero; leave `for` out to fire on the first event"
            )),
            Ok(d) => Ok(Hold::Duration(d)),
            Err(_) => Err(format!(
                "`{text}` is not a duration like `2m` or a count like `3 events`"
            )),
        }
    }
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Duration(d) => write!(f, "{}", humantime::format_duration(*d)),
            Hold::Events(1) => f.write_str("1 event"),
            Hold::Events(n) => write!(f, "{n} events"),
        }
    }
}

/// Serialized as written in manifests: `"2m"` or `"3 events"`.
impl Serialize for Hold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Bounds on one run of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The run's deadline, on the run clock and on the wall clock.
    pub timeout: Duration,
    /// Wasm fuel (roughly instructions).
    pub fuel: u64,
    /// Linear memory, in bytes.
    pub memory_bytes: u64,
    /// Host calls per run.
    pub max_host_calls: u32,
    /// Bytes per log message.
    pub max_log_bytes: u32,
    /// Bytes logged per run, in all.
    pub max_total_log_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(60),
            fuel: 1_000_000_000,
            memory_bytes: 64 * 1024 * 1024,
            max_host_calls: 1000,
            max_log_bytes: 4096,
            max_total_log_bytes: 1024 * 1024,
        }
    }
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest `{path}`: {source}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid TOML, or has unknown or mistyped keys.
    #[error("{0}")]
    Syntax(String),
    /// A value is out of range or inconsistent.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as a TOML path (e.g. `grants.scaling.max_step`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ManifestError {
    /// The error for `field`, with what is wrong with it.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ManifestError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Manifest {
    /// Reads and validates a manifest file; the component path is resolved against its directory.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        use std::io::Read;
        let read_error = |source| ManifestError::Read {
            path: path.to_owned(),
            source,
        };
        // Read one byte past the limit at most, so that a huge file is refused unread.
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read_error)?
            .take(MAX_MANIFEST_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        let mut manifest = Manifest::parse(&text).map_err(|e| match e {
            ManifestError::Syntax(msg) => {
                ManifestError::Syntax(format!("in `{}`: {msg}", path.display()))
            }
            other => other,
        })?;
        if manifest.component.is_relative() {
            let dir = path.parent().unwrap_or(Path::new("."));
            manifest.component = dir.join(&manifest.component);
        }
        Ok(manifest)
    }

    /// Parses and validates manifest text; the component path is left as written.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::invalid(
                "manifest",
                format!(
                    "is {} bytes or more, above the limit of {MAX_MANIFEST_BYTES}",
                    text.len()
                ),
            ));
        }
        let raw: raw::Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        raw.validate()
    }
}

/// Parses a humantime duration (`90s`, `5m`, `1h 30m`) for the named field.
pub(crate) fn parse_duration(field: &str, text: &str) -> Result<Duration, ManifestError> {
    humantime::parse_duration(text)
        .map_err(|e| ManifestError::invalid(field, format!("`{text}` is not a duration ({e})")))
}

/// Parses a size: an integer number of bytes, or a number with `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`.
pub(crate) fn parse_size(field: &str, value: &raw::Size) -> Result<u64, ManifestError> {
    let text = match value {
        raw::Size::Bytes(n) => return Ok(*n),
        raw::Size::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || {
        ManifestError::invalid(
            field,
            format!("`{text}` is not a size (write e.g. `64MiB` or a number of bytes)"),
        )
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(multiplier).ok_or_else(bad)
}

fn validate_name(name: &str) -> Result<(), ManifestError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ManifestError::invalid(
            "name",
            format!(
                "`{name}` must be 1-64 lowercase letters, digits and `-`, not starting or ending with `-`"
            ),
        ))
    }
}

fn validate_version(version: &str) -> Result<(), ManifestError> {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    if parts.len() == 3 && parts.iter().all(numeric) && version.len() <= 64 {
        Ok(())
    } else {
        Err(ManifestError::invalid(
            "version",
            format!("`{version}` is not a semantic version like `1.2.3`"),
        ))
    }
}

/// The manifest as written, before validation: serde's view of the TOML.
pub(crate) mod raw {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Manifest {
        manifest_version: u32,
        name: String,
        version: String,
        kind: Kind,
        description: Option<String>,
        component: PathBuf,
        #[serde(default)]
        triggers: Vec<Trigger>,
        schedule: Option<Schedule>,
        #[serde(default)]
        limits: Limits,
        #[serde(default)]
        config: BTreeMap<String, ConfigValue>,
        #[serde(default)]
        grants: grants::raw::Grants,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Trigger {
        event_type: String,
        resource: Option<String>,
        condition: Option<String>,
        #[serde(rename = "for")]
        hold_for: Option<String>,
        dedup_key: Option<String>,
        cooldown: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Schedule {
        every: String,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Limits {
        timeout: Option<String>,
        fuel: Option<u64>,
        memory: Option<Size>,
        max_host_calls: Option<u32>,
        max_log_bytes: Option<u32>,
        max_total_log_bytes: Option<Size>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(crate) enum Size {
        Bytes(u64),
        Text(String),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ConfigValue {
        String(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }

    impl Manifest {
        pub(crate) fn validate(self) -> Result<super::Manifest, ManifestError> {
            if !(OLDEST_MANIFEST_VERSION..=MANIFEST_VERSION).contains(&self.manifest_version) {
                return Err(ManifestError::invalid(
                    "manifest_version",
                    format!(
                        "`{}` is not supported (this host understands {OLDEST_MANIFEST_VERSION} to {MANIFEST_VERSION})",
                        self.manifest_version
                    ),
                ));
            }
            validate_name(&self.name)?;
            validate_version(&self.version)?;
            if self.component.as_os_str().is_empty() {
                return Err(ManifestError::invalid("component", "must not be empty"));
            }
            let triggers = self
                .triggers
                .into_iter()
                .enumerate()
                .map(|(i, t)| t.validate(i))
                .collect::<Result<Vec<_>, _>>()?;
            let schedule = match (self.kind, self.schedule) {
                (Kind::Playbook, Some(_)) => {
                    return Err(ManifestError::invalid(
                        "schedule",
                        "only collectors have a schedule; playbooks are started by triggers",
                    ));
                }
                (Kind::Collector, None) => Some(std::time::Duration::from_secs(60)),
                (Kind::Collector, Some(s)) => {
                    let every = parse_duration("schedule.every", &s.every)?;
                    if every < std::time::Duration::from_secs(1) {
                        return Err(ManifestError::invalid(
                            "schedule.every",
                            format!("`{}` is shorter than the minimum of 1s", s.every),
                        ));
                    }
                    Some(every)
                }
                (Kind::Playbook, None) => None,
            };
            if self.kind == Kind::Collector && !triggers.is_empty() {
                return Err(ManifestError::invalid(
                    "triggers",
                    "collectors are not triggered by events; give them a [schedule]",
                ));
            }
            let limits = self.limits.validate()?;
            let config = self
                .config
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        ConfigValue::String(s) => s,
                        ConfigValue::Integer(n) => n.to_string(),
                        ConfigValue::Float(x) => x.to_string(),
                        ConfigValue::Bool(b) => b.to_string(),
                    };
                    (k, v)
                })
                .collect();
            let grants = self.grants.validate(self.kind, self.manifest_version)?;
            Ok(super::Manifest {
                name: self.name,
                version: self.version,
                kind: self.kind,
                description: self.description,
                component: self.component,
                triggers,
                schedule,
                limits,
                config,
                grants,
            })
        }
    }

    impl Trigger {
        fn validate(self, i: usize) -> Result<super::Trigger, ManifestError> {
            let field = |name: &str| format!("triggers[{i}].{name}");
            if self.event_type.trim().is_empty() {
                return Err(ManifestError::invalid(
                    field("event_type"),
                    "must not be empty",
                ));
            }
            let not_blank = |name: &str, v: &Option<String>, hint: &str| match v {
                Some(text) if text.trim().is_empty() => Err(ManifestError::invalid(
                    field(name),
                    format!("must not be empty ({hint})"),
                )),
                _ => Ok(()),
            };
            not_blank(
                "condition",
                &self.condition,
                "leave it out to match every event",
            )?;
            not_blank(
                "dedup_key",
                &self.dedup_key,
                "leave it out to allow concurrent runs",
            )?;
            let condition = self
                .condition
                .as_deref()
                .map(|text| {
                    Condition::parse(text)
                        .map_err(|e| ManifestError::invalid(field("condition"), e.to_string()))
                })
                .transpose()?;
            let dedup_key = self
                .dedup_key
                .as_deref()
                .map(|text| {
                    KeyTemplate::parse(text)
                        .map_err(|e| ManifestError::invalid(field("dedup_key"), e.to_string()))
                })
                .transpose()?;
            let hold_for = self
                .hold_for
                .as_deref()
                .map(|text| Hold::parse(text).map_err(|e| ManifestError::invalid(field("for"), e)))
                .transpose()?;
            let cooldown = self
                .cooldown
                .as_deref()
                .map(|text| parse_duration(&field("cooldown"), text))
                .transpose()?;
            Ok(super::Trigger {
                event_type: Glob::new(self.event_type),
                resource: Glob::new(self.resource.unwrap_or_else(|| "*".into())),
                condition,
                hold_for,
                dedup_key,
                cooldown,
            })
        }
    }

    impl Limits {
        fn validate(self) -> Result<super::Limits, ManifestError> {
            let defaults = super::Limits::default();
            let timeout = match &self.timeout {
                Some(t) => parse_duration("limits.timeout", t)?,
                None => defaults.timeout,
            };
            if timeout.is_zero() || timeout > MAX_TIMEOUT {
                return Err(ManifestError::invalid(
                    "limits.timeout",
                    "must be more than 0s and at most 24h",
                ));
            }
            let fuel = self.fuel.unwrap_or(defaults.fuel);
            if fuel == 0 {
                return Err(ManifestError::invalid("limits.fuel", "must be more than 0"));
            }
            let memory_bytes = match &self.memory {
                Some(m) => parse_size("limits.memory", m)?,
                None => defaults.memory_bytes,
            };
            if !(1024 * 1024..=MAX_MEMORY_BYTES).contains(&memory_bytes) {
                return Err(ManifestError::invalid(
                    "limits.memory",
                    format!("{memory_bytes} bytes is outside 1MiB..=256MiB"),
                ));
            }
            let max_host_calls = self.max_host_calls.unwrap_or(defaults.max_host_calls);
            if max_host_calls == 0 || max_host_calls > MAX_HOST_CALLS {
                return Err(ManifestError::invalid(
                    "limits.max_host_calls",
                    format!("`{max_host_calls}` is outside 1..={MAX_HOST_CALLS}"),
                ));
            }
            let max_log_bytes = self.max_log_bytes.unwrap_or(defaults.max_log_bytes);
            if max_log_bytes == 0 || max_log_bytes > MAX_LOG_BYTES {
                return Err(ManifestError::invalid(
                    "limits.max_log_bytes",
                    format!("`{max_log_bytes}` is outside 1..={MAX_LOG_BYTES}"),
                ));
            }
            let max_total_log_bytes = match &self.max_total_log_bytes {
                Some(m) => parse_size("limits.max_total_log_bytes", m)?,
                None => defaults.max_total_log_bytes,
            };
            if max_total_log_bytes == 0 || max_total_log_bytes > MAX_TOTAL_LOG_BYTES {
                return Err(ManifestError::invalid(
                    "limits.max_total_log_bytes",
                    format!("{max_total_log_bytes} bytes is outside 1..={MAX_TOTAL_LOG_BYTES}"),
                ));
            }
            Ok(super::Limits {
                timeout,
                fuel,
                memory_bytes,
                max_host_calls,
                max_log_bytes,
                max_total_log_bytes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
manifest_version = 1
name = "scale-on-latency"
version = "0.1.0"
kind = "playbook"
component = "x.wasm"
"#;

    fn with(extra: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(&format!("{MINIMAL}{extra}"))
    }

    fn error_of(text: &str) -> String {
        match Manifest::parse(text) {
            Ok(_) => panic!("manifest was accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_manifest_gets_default_limits_and_no_grants() {
        let m = with("").unwrap();
        assert_eq!(m.name, "scale-on-latency");
        assert_eq!(m.kind, Kind::Playbook);
        assert_eq!(m.limits, Limits::default());
        assert!(m.grants.scaling.is_none());
        assert!(m.grants.containers.is_none());
        assert!(m.grants.kubernetes.is_none());
        assert!(m.grants.metrics.is_none());
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let e = error_of(&format!("{MINIMAL}colour = \"blue\"\n"));
        assert!(e.contains("colour"), "{e}");
        let e = with("[limits]\nmemroy = \"1MiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("memroy"), "{e}");
    }

    #[test]
    fn missing_required_fields_are_named() {
        let e = error_of(
            "manifest_version = 1\nname = \"x\"\nversion = \"1.0.0\"\nkind = \"playbook\"\n",
        );
        assert!(e.contains("component"), "{e}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (
                MINIMAL.replace("scale-on-latency", "Scale On Latency"),
                "name",
            ),
            (MINIMAL.replace("0.1.0", "one"), "version"),
            (
                MINIMAL.replace("manifest_version = 1", "manifest_version = 9"),
                "manifest_version",
            ),
            (
                format!("{MINIMAL}[limits]\ntimeout = \"soon\"\n"),
                "limits.timeout",
            ),
            (
                format!("{MINIMAL}[limits]\nmemory = \"1TiB\"\n"),
                "limits.memory",
            ),
            (
                format!("{MINIMAL}[limits]\nmemory = \"lots\"\n"),
                "limits.memory",
            ),
            (
                format!("{MINIMAL}[limits]\nmax_host_calls = 0\n"),
                "limits.max_host_calls",
            ),
            (
                format!("{MINIMAL}[[triggers]]\nevent_type = \"\"\n"),
                "triggers[0].event_type",
            ),
            (
                format!("{MINIMAL}[[triggers]]\nevent_type = \"a\"\ncooldown = \"x\"\n"),
                "triggers[0].cooldown",
            ),
            (
                format!("{MINIMAL}[[triggers]]\nevent_type = \"a\"\ncondition = \"value >\"\n"),
                "triggers[0].condition",
            ),
            (
                format!("{MINIMAL}[[triggers]]\nevent_type = \"a\"\ncondition = \" \"\n"),
                "triggers[0].condition",
            ),
            (
                format!("{MINIMAL}[[triggers]]\nevent_type = \"a\"\nfor = \"soon\"\n"),
                "triggers[0].for",
            ),
            (
                format!("{MINIMAL}[[triggers]]\nevent_type = \"a\"\nfor = \"0 events\"\n"),
                "triggers[0].for",
            ),
            (
                format!("{MINIMAL}[[triggers]]\nevent_type = \"a\"\ndedup_key = \"{{resource\"\n"),
                "triggers[0].dedup_key",
            ),
            (
                format!("{MINIMAL}[schedule]\nevery = \"60s\"\n"),
                "schedule",
            ),
        ];
        for (text, field) in cases {
            let e = error_of(&text);
            assert!(
                e.starts_with(field),
                "expected an error about `{field}`, got: {e}"
            );
        }
    }

    #[test]
    fn sizes_and_durations_parse() {
        let m = with("[limits]\nmemory = \"16MiB\"\ntimeout = \"15m\"\nfuel = 5\n").unwrap();
        assert_eq!(m.limits.memory_bytes, 16 * 1024 * 1024);
        assert_eq!(m.limits.timeout, Duration::from_secs(900));
        assert_eq!(m.limits.fuel, 5);
        let m = with("[limits]\nmemory = 2097152\n").unwrap();
        assert_eq!(m.limits.memory_bytes, 2 * 1024 * 1024);
    }

    #[test]
    fn config_values_become_strings() {
        let m =
            with("[config]\nthreshold_ms = 500\ngroup = \"api-asg\"\nratio = 0.5\ndry = true\n")
                .unwrap();
        assert_eq!(m.config["threshold_ms"], "500");
        assert_eq!(m.config["group"], "api-asg");
        assert_eq!(m.config["ratio"], "0.5");
        assert_eq!(m.config["dry"], "true");
    }

    #[test]
    fn collectors_have_a_schedule_and_no_triggers() {
        let collector = MINIMAL.replace("kind = \"playbook\"", "kind = \"collector\"");
        let m = Manifest::parse(&collector).unwrap();
        assert_eq!(m.schedule, Some(Duration::from_secs(60)));
        let e = error_of(&format!("{collector}[[triggers]]\nevent_type = \"x\"\n"));
        assert!(e.starts_with("triggers"), "{e}");
    }

    #[test]
    fn triggers_parse_into_typed_conditions_holds_and_keys() {
        let m = with(
            r#"
[[triggers]]
event_type = "metrics.latency"
resource = "api-*"
condition = "value > 500 && labels.env == 'prod'"
for = "2m"
dedup_key = "{resource}:{labels.alertname}"
cooldown = "10m"

[[triggers]]
event_type = "container.unhealthy"
for = "3 events"

[[triggers]]
event_type = "x.*"
for = "1 event"
"#,
        )
        .unwrap();
        let t = &m.triggers[0];
        assert_eq!(t.event_type.as_str(), "metrics.latency");
        assert_eq!(t.resource.as_str(), "api-*");
        assert_eq!(
            t.condition.as_ref().unwrap().as_str(),
            "value > 500 && labels.env == 'prod'"
        );
        assert_eq!(t.hold_for, Some(Hold::Duration(Duration::from_secs(120))));
        assert_eq!(
            t.dedup_key.as_ref().unwrap().as_str(),
            "{resource}:{labels.alertname}"
        );
        assert_eq!(t.cooldown, Some(Duration::from_secs(600)));
        let t = &m.triggers[1];
        assert_eq!(t.resource.as_str(), "*");
        assert_eq!(t.condition, None);
        assert_eq!(t.hold_for, Some(Hold::Events(3)));
        assert_eq!(m.triggers[2].hold_for, Some(Hold::Events(1)));
    }

    #[test]
    fn condition_errors_name_the_trigger_and_the_column() {
        let e = with("[[triggers]]\nevent_type = \"a\"\n[[triggers]]\nevent_type = \"b\"\ncondition = \"value > && x\"\n")
            .unwrap_err();
        match e {
            ManifestError::Invalid { field, message } => {
                assert_eq!(field, "triggers[1].condition");
                assert_eq!(message, "column 9: expected a value after `>`");
            }
            other => panic!("expected an invalid condition, got {other}"),
        }
    }

    #[test]
    fn holds_parse_as_durations_or_event_counts() {
        assert_eq!(
            Hold::parse("90s"),
            Ok(Hold::Duration(Duration::from_secs(90)))
        );
        assert_eq!(Hold::parse("3 events"), Ok(Hold::Events(3)));
        assert_eq!(Hold::parse("1 event"), Ok(Hold::Events(1)));
        assert_eq!(Hold::parse("2events"), Ok(Hold::Events(2)));
        for bad in ["0s", "0 events", "-1 events", "many events", "soon", ""] {
            assert!(Hold::parse(bad).is_err(), "`{bad}` was accepted");
        }
        assert_eq!(Hold::Duration(Duration::from_secs(120)).to_string(), "2m");
        assert_eq!(Hold::Events(1).to_string(), "1 event");
        assert_eq!(Hold::Events(3).to_string(), "3 events");
        assert_eq!(
            serde_json::to_string(&Hold::Events(3)).unwrap(),
            "\"3 events\""
        );
    }
}
