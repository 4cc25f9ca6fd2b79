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

use crate::config_error::ConfigError;

/// `[limits]` as written: every key optional, its default the host's own bound.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsFile {
    /// Caps `limits.timeout` (a duration, `"10m"`).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Caps `limits.memory`, in bytes.
    pub memory: u64,
    /// Caps `limits.fuel`.
    pub fuel: u64,
    /// Caps `limits.max_host_calls`.
    pub max_host_calls: u32,
    /// Caps `limits.max_log_bytes`.
    pub max_log_bytes: u32,
    /// Caps `limits.max_total_log_bytes`, in bytes.
    pub max_total_log_bytes: u64,
    /// Largest result recorded whole, in bytes.
    pub max_result_record_bytes: usize,
    /// Bytes one run may put on record in all.
    pub max_recorded_bytes: u64,
    /// Recorded host calls one run may make.
    pub max_timeline_entries: usize,
    /// Largest answer a provider reads for one call, in bytes.
    pub max_response_bytes: u64,
}

impl Default for LimitsFile {
    fn default() -> Self {
        let ServerLimits { caps, run } = ServerLimits::default();
        LimitsFile {
            timeout: caps.timeout,
            memory: caps.memory_bytes,
            fuel: caps.fuel,
            max_host_calls: caps.max_host_calls,
            max_log_bytes: caps.max_log_bytes,
            max_total_log_bytes: caps.max_total_log_bytes,
            max_result_record_bytes: run.max_result_record_bytes,
            max_recorded_bytes: run.max_recorded_bytes,
            max_timeline_entries: run.max_timeline_entries,
            max_response_bytes: run.max_response_bytes,
        }
    }
}

/// The server's limits: `[limits]` read into the engine's two types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "LimitsFile")]
pub struct ServerLimits {
    /// What a manifest may ask for.
    pub caps: ManifestCaps,
    /// What the host allows each run.
    pub run: RunBounds,
}

impl From<LimitsFile> for ServerLimits {
    fn from(f: LimitsFile) -> Self {
        ServerLimits {
            caps: ManifestCaps {
                timeout: f.timeout,
                memory_bytes: f.memory,
                fuel: f.fuel,
                max_host_calls: f.max_host_calls,
                max_log_bytes: f.max_log_bytes,
                max_total_log_bytes: f.max_total_log_bytes,
            },
            run: RunBounds {
                max_result_record_bytes: f.max_result_record_bytes,
                max_recorded_bytes: f.max_recorded_bytes,
                max_timeline_entries: f.max_timeline_entries,
                max_response_bytes: f.max_response_bytes,
            },
        }
    }
}

impl ServerLimits {
    /// Checks each value against its range: a cap may lower the host's bound, never raise it.
    /// The error names the key (`limits.max_log_bytes`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let within = |field: &'static str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::invalid(
                    field,
                    format!("`{value}` is outside {min}..={max}"),
                ))
            }
        };
        let d = ManifestCaps::default();
        let (caps, run) = (&self.caps, &self.run);
        if caps.timeout < Duration::from_secs(1) || caps.timeout > d.timeout {
            return Err(ConfigError::invalid(
                "limits.timeout",
                format!(
                    "`{}` is outside 1s..=24h",
                    humantime::format_duration(caps.timeout)
                ),
            ));
        }
        within(
            "limits.memory",
            caps.memory_bytes,
            1024 * 1024,
            d.memory_bytes,
        )?;
        within("limits.fuel", caps.fuel, 1, u64::MAX)?;
        within(
            "limits.max_host_calls",
            caps.max_host_calls.into(),
            1,
            d.max_host_calls.into(),
        )?;
        within(
            "limits.max_log_bytes",
            caps.max_log_bytes.into(),
            1,
            d.max_log_bytes.into(),
        )?;
        within(
            "limits.max_total_log_bytes",
            caps.max_total_log_bytes,
            1,
            d.max_total_log_bytes,
        )?;
        const GIB: u64 = 1024 * 1024 * 1024;
        // A recorded result must fit a ledger entry with room for the rest of it.
        within(
            "limits.max_result_record_bytes",
            run.max_result_record_bytes as u64,
            1024,
            4 * 1024 * 1024,
        )?;
        within(
            "limits.max_recorded_bytes",
            run.max_recorded_bytes,
            64 * 1024,
            4 * GIB,
        )?;
        within(
            "limits.max_timeline_entries",
            run.max_timeline_entries as u64,
            1,
            10_000_000,
        )?;
        within(
            "limits.max_response_bytes",
            run.max_response_bytes,
            1024,
            GIB,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn limits(text: &str) -> ServerLimits {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_defaults_are_the_hosts_own_bounds() {
        assert_eq!(limits(""), ServerLimits::default());
        ServerLimits::default().validate().unwrap();
    }

    #[test]
    fn limits_out_of_range_are_refused_naming_the_key() {
        let e = limits("max_log_bytes = 0")
            .validate()
            .map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err("limits.max_log_bytes: `0` is outside 1..=1048576".to_owned())
        );
        let e = limits("timeout = \"2d\"")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("limits.timeout: `2days` is outside"), "{e}");
        let l = limits("timeout = \"10m\"\nmax_recorded_bytes = 1048576");
        l.validate().unwrap();
        assert_eq!(
            (l.caps.timeout, l.run.max_recorded_bytes),
            (Duration::from_secs(600), 1 << 20)
        );
    }
}
