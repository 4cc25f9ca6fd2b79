//! `playbook.toml`: parsing and validating a guest's manifest.
//!
//! The format is documented in `docs/manifest.md`. Parsing is strict: unknown keys are errors,
//! every value is checked, and every error names the field it is about. A manifest that parses
//! is fully typed: durations are `Duration`s, sizes are bytes, grants are the typed rules of
//! [`crate::grants`], so nothing downstream re-parses strings.
//!
//! In parts: this module holds the manifest's types and its entry points ([`Manifest::load`],
//! [`Manifest::parse`]); `raw` is serde's view of the TOML and its validation into these types,
//! `parse` the field parsers it uses (durations, sizes, names, versions), `hold` a trigger's
//! `for`, and `error` the [`ManifestError`] every part returns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::condition::{Condition, KeyTemplate};
use crate::glob::Glob;
use crate::grants::Grants;

mod error;
mod hold;
mod parse;
mod raw;

pub use error::ManifestError;
pub use hold::Hold;
pub(crate) use parse::parse_duration;

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
}
