//! `[limits]` in `grace.toml`: the most any manifest may ask for on this server, and the host's
//! own bounds on every run, whatever its manifest says.
//!
//! ```toml
//! [limits]
//! timeout = "10m"                 # caps limits.timeout
//! memory = 67108864               # caps limits.memory, bytes
//! fuel = 10000000000              # caps limits.fuel
//! max_host_calls = 10000          # caps limits.max_host_calls
//! max_log_bytes = 65536           # caps limits.max_log_bytes
//! max_total_log_bytes = 4194304   # caps limits.max_total_log_bytes
//! max_result_record_bytes = 65536 # a larger result is recorded as preview, size and digest
//! max_recorded_bytes = 67108864   # bytes one run may put on record in all
//! max_timeline_entries = 10000    # recorded host calls one run may make
//! max_response_bytes = 16777216   # largest answer a provider reads for one call
//! ```
//!
//! A manifest asking more than a cap is refused at upload, with the field and the cap named:
//! refusing tells the author at once, where clamping would change, unseen, the limits the
//! playbook was tested with. Manifests stored before a cap was lowered keep running, clamped.

use std::time::Duration;

use grace_engine::bounds::{ManifestCaps, RunBounds};
use serde::Deserialize;

use crate::config::ConfigError;

/// `[limits]` as written; every key optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Caps `limits.timeout` (a duration, `"10m"`).
    pub timeout: Option<String>,
    /// Caps `limits.memory`, in bytes.
    pub memory: Option<u64>,
    /// Caps `limits.fuel`.
    pub fuel: Option<u64>,
    /// Caps `limits.max_host_calls`.
    pub max_host_calls: Option<u32>,
    /// Caps `limits.max_log_bytes`.
    pub max_log_bytes: Option<u32>,
    /// Caps `limits.max_total_log_bytes`, in bytes.
    pub max_total_log_bytes: Option<u64>,
    /// Largest result recorded whole, in bytes.
    pub max_result_record_bytes: Option<usize>,
    /// Bytes one run may put on record in all.
    pub max_recorded_bytes: Option<u64>,
    /// Recorded host calls one run may make.
    pub max_timeline_entries: Option<usize>,
    /// Largest answer a provider reads for one call, in bytes.
    pub max_response_bytes: Option<u64>,
}

/// The server's limits, resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerLimits {
    /// What a manifest may ask for.
    pub caps: ManifestCaps,
    /// What the host allows each run.
    pub run: RunBounds,
}

impl LimitsFile {
    /// Checks each value and applies it over the defaults.
    pub fn resolve(self) -> Result<ServerLimits, ConfigError> {
        let mut l = ServerLimits::default();
        let invalid =
            |field: &'static str, message: String| ConfigError::Invalid { field, message };
        let within = |field: &'static str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(invalid(
                    field,
                    format!("`{value}` is outside {min}..={max}"),
                ))
            }
        };
        let d = ManifestCaps::default();
        if let Some(t) = self.timeout {
            let timeout = humantime::parse_duration(&t)
                .map_err(|e| invalid("limits.timeout", format!("`{t}` is not a duration ({e})")))?;
            if timeout < Duration::from_secs(1) || timeout > d.timeout {
                return Err(invalid(
                    "limits.timeout",
                    format!("`{t}` is outside 1s..=24h"),
                ));
            }
            l.caps.timeout = timeout;
        }
        if let Some(v) = self.memory {
            l.caps.memory_bytes = within("limits.memory", v, 1024 * 1024, d.memory_bytes)?;
        }
        if let Some(v) = self.fuel {
            l.caps.fuel = within("limits.fuel", v, 1, u64::MAX)?;
        }
        if let Some(v) = self.max_host_calls {
            l.caps.max_host_calls = within(
                "limits.max_host_calls",
                v.into(),
                1,
                d.max_host_calls.into(),
            )? as u32;
        }
        if let Some(v) = self.max_log_bytes {
            l.caps.max_log_bytes =
                within("limits.max_log_bytes", v.into(), 1, d.max_log_bytes.into())? as u32;
        }
        if let Some(v) = self.max_total_log_bytes {
            l.caps.max_total_log_bytes =
                within("limits.max_total_log_bytes", v, 1, d.max_total_log_bytes)?;
        }
        const GIB: u64 = 1024 * 1024 * 1024;
        if let Some(v) = self.max_result_record_bytes {
            // A recorded result must fit a ledger entry with room for the rest of it.
            l.run.max_result_record_bytes = within(
                "limits.max_result_record_bytes",
                v as u64,
                1024,
                4 * 1024 * 1024,
            )? as usize;
        }
        if let Some(v) = self.max_recorded_bytes {
            l.run.max_recorded_bytes = within("limits.max_recorded_bytes", v, 64 * 1024, 4 * GIB)?;
        }
        if let Some(v) = self.max_timeline_entries {
            l.run.max_timeline_entries =
                within("limits.max_timeline_entries", v as u64, 1, 10_000_000)? as usize;
        }
        if let Some(v) = self.max_response_bytes {
            l.run.max_response_bytes = within("limits.max_response_bytes", v, 1024, GIB)?;
        }
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_out_of_range_are_refused_naming_the_key() {
        let e = LimitsFile {
            max_log_bytes: Some(0),
            ..LimitsFile::default()
        }
        .resolve()
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err("limits.max_log_bytes: `0` is outside 1..=1048576".to_owned())
        );
        let l = LimitsFile {
            timeout: Some("10m".into()),
            max_recorded_bytes: Some(1 << 20),
            ..LimitsFile::default()
        }
        .resolve()
        .map_err(|e| e.to_string());
        assert_eq!(
            l.map(|l| (l.caps.timeout, l.run.max_recorded_bytes)),
            Ok((Duration::from_secs(600), 1 << 20))
        );
    }
}
