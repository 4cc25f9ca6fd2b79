//! The manifest as written, before validation: serde's view of the TOML, and its validation into
//! the typed [`Manifest`](super::Manifest), field by field.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::parse::{Size, parse_duration, parse_size, validate_name, validate_version};
use super::{
    Hold, Kind, MANIFEST_VERSION, MAX_HOST_CALLS, MAX_LOG_BYTES, MAX_MEMORY_BYTES, MAX_TIMEOUT,
    MAX_TOTAL_LOG_BYTES, ManifestError, OLDEST_MANIFEST_VERSION,
};
use crate::condition::{Condition, KeyTemplate};
use crate::glob::Glob;
use crate::grants;

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
