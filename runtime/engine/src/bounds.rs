//! What one run may make the host hold, whatever its manifest asks: the host's totals per run,
//! and how a result too large for one ledger entry is recorded.
//!
//! A manifest bounds each message and each call (`limits.max_log_bytes`,
//! `limits.max_host_calls`); the host also bounds what a run accumulates — the bytes it puts on
//! record, the entries of its timeline, the bytes a provider may read for one call — so that a
//! guest within its manifest's limits cannot grow the host's memory or the ledger without
//! bound. Over a total the guest is stopped, and that is recorded.
//!
//! A result larger than [`RunBounds::max_result_record_bytes`] is recorded as a preview, its
//! full size and the SHA-256 digest of its JSON (as the host serializes it): the guest still
//! receives the whole result, and the record still pins down exactly what it was.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::manifest::{
    Limits, MAX_HOST_CALLS, MAX_LOG_BYTES, MAX_MEMORY_BYTES, MAX_TIMEOUT, MAX_TOTAL_LOG_BYTES,
    ManifestError,
};

/// How much of an oversized result's JSON the record keeps.
pub const RESULT_PREVIEW_BYTES: usize = 1024;

/// The host's bounds on one run, set by the server (`[limits]` in `grace.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunBounds {
    /// Largest result recorded whole in one ledger entry (and the run's timeline); a larger one
    /// is recorded as a preview, its size and its digest.
    pub max_result_record_bytes: usize,
    /// Most bytes of arguments, reasons and results a run may put on record in all.
    pub max_recorded_bytes: u64,
    /// Most timeline entries (recorded host calls) a run may accumulate.
    pub max_timeline_entries: usize,
    /// Largest answer a provider may read for one call (lowered to the guest's memory).
    pub max_response_bytes: u64,
}

impl Default for RunBounds {
    fn default() -> Self {
        RunBounds {
            max_result_record_bytes: 64 * 1024,
            max_recorded_bytes: 64 * 1024 * 1024,
            max_timeline_entries: 10_000,
            max_response_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The most any manifest may ask for on this server (`[limits]` in `grace.toml`): a manifest
/// asking more is refused at upload, naming the field and the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestCaps {
    /// Caps `limits.timeout`.
    pub timeout: Duration,
    /// Caps `limits.memory`, in bytes.
    pub memory_bytes: u64,
    /// Caps `limits.fuel`.
    pub fuel: u64,
    /// Caps `limits.max_host_calls`.
    pub max_host_calls: u32,
    /// Caps `limits.max_log_bytes`.
    pub max_log_bytes: u32,
    /// Caps `limits.max_total_log_bytes`.
    pub max_total_log_bytes: u64,
}

impl Default for ManifestCaps {
    /// What the manifest format itself allows: no cap beyond it.
    fn default() -> Self {
        ManifestCaps {
            timeout: MAX_TIMEOUT,
            memory_bytes: MAX_MEMORY_BYTES,
            fuel: u64::MAX,
            max_host_calls: MAX_HOST_CALLS,
            max_log_bytes: MAX_LOG_BYTES,
            max_total_log_bytes: MAX_TOTAL_LOG_BYTES,
        }
    }
}

impl ManifestCaps {
    /// Refuses limits above a cap; the error names the manifest's field and the server's cap.
    pub fn check(&self, limits: &Limits) -> Result<(), ManifestError> {
        let over = |field: &str, asked: String, cap: String| {
            Err(ManifestError::invalid(
                format!("limits.{field}"),
                format!(
                    "`{asked}` is above this server's cap of {cap} (`[limits] {field}` in grace.toml); ask for less"
                ),
            ))
        };
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        if limits.timeout > self.timeout {
            return over("timeout", duration(limits.timeout), duration(self.timeout));
        }
        if limits.memory_bytes > self.memory_bytes {
            return over(
                "memory",
                limits.memory_bytes.to_string(),
                format!("{} bytes", self.memory_bytes),
            );
        }
        if limits.fuel > self.fuel {
            return over("fuel", limits.fuel.to_string(), self.fuel.to_string());
        }
        if limits.max_host_calls > self.max_host_calls {
            return over(
                "max_host_calls",
                limits.max_host_calls.to_string(),
                self.max_host_calls.to_string(),
            );
        }
        if limits.max_log_bytes > self.max_log_bytes {
            return over(
                "max_log_bytes",
                limits.max_log_bytes.to_string(),
                format!("{} bytes", self.max_log_bytes),
            );
        }
        if limits.max_total_log_bytes > self.max_total_log_bytes {
            return over(
                "max_total_log_bytes",
                limits.max_total_log_bytes.to_string(),
                format!("{} bytes", self.max_total_log_bytes),
            );
        }
        Ok(())
    }

    /// The limits lowered to the caps: for manifests stored before a cap was lowered, which keep
    /// running, within the caps.
    pub fn clamp(&self, limits: Limits) -> Limits {
        Limits {
            timeout: limits.timeout.min(self.timeout),
            fuel: limits.fuel.min(self.fuel),
            memory_bytes: limits.memory_bytes.min(self.memory_bytes),
            max_host_calls: limits.max_host_calls.min(self.max_host_calls),
            max_log_bytes: limits.max_log_bytes.min(self.max_log_bytes),
            max_total_log_bytes: limits.max_total_log_bytes.min(self.max_total_log_bytes),
        }
    }
}

/// Counts what is written to it; with a hash, also hashes it and keeps its first `keep` bytes.
struct Measure {
    bytes: u64,
    hash: Option<Sha256>,
    kept: Vec<u8>,
    keep: usize,
}

impl Measure {
    /// Counts only: nothing kept, nothing hashed.
    fn counting() -> Measure {
        Measure {
            bytes: 0,
            hash: None,
            kept: Vec::new(),
            keep: 0,
        }
    }
}

impl Write for Measure {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes = self.bytes.saturating_add(buf.len() as u64);
        if let Some(hash) = &mut self.hash {
            hash.update(buf);
            let room = self.keep.saturating_sub(self.kept.len());
            self.kept.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn other_error(message: &str) -> Value {
    json!({ "error": { "kind": "other", "message": message } })
}

/// What goes on record for a call's successful result: `{"ok": value}` when its JSON fits in
/// `budget` bytes, otherwise `{"ok_truncated": {"preview", "bytes", "sha256"}}`.
///
/// The value's JSON is first only counted (no text built, nothing kept: work bounded by the
/// result's own size, itself bounded by the response cap). Most results fit, and those are
/// turned into a tree directly, without the text; only one that does not fit is written a
/// second time, hashed, keeping the preview's bytes alone. A hot read path calls this for every
/// result, so it allocates nothing beyond the tree it returns.
pub fn record_ok<T: Serialize>(value: &T, budget: usize) -> Value {
    let mut count = Measure::counting();
    if let Err(e) = serde_json::to_writer(&mut count, value) {
        return other_error(&e.to_string());
    }
    if count.bytes <= budget as u64 {
        return match serde_json::to_value(value) {
            Ok(v) => json!({ "ok": v }),
            Err(e) => other_error(&e.to_string()),
        };
    }
    let mut measure = Measure {
        bytes: 0,
        hash: Some(Sha256::new()),
        kept: Vec::with_capacity(RESULT_PREVIEW_BYTES),
        keep: RESULT_PREVIEW_BYTES,
    };
    if let Err(e) = serde_json::to_writer(&mut measure, value) {
        return other_error(&e.to_string());
    }
    let mut end = measure.kept.len();
    let preview = loop {
        match std::str::from_utf8(&measure.kept[..end]) {
            Ok(text) => break text.to_owned(),
            Err(e) => end = e.valid_up_to(),
        }
    };
    json!({
        "ok_truncated": {
            "preview": preview,
            "bytes": measure.bytes,
            "sha256": hex::encode(measure.hash.map(Sha256::finalize).unwrap_or_default()),
        }
    })
}

/// Roughly how many bytes a recorded value takes (its JSON length), without building the text.
pub fn json_len(value: &Value) -> u64 {
    let mut measure = Measure::counting();
    // Writing into `Measure` cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut measure, value);
    measure.bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_over_a_server_cap_is_refused_naming_the_field_and_the_cap() {
        let caps = ManifestCaps {
            max_log_bytes: 1024,
            ..ManifestCaps::default()
        };
        assert!(
            caps.check(&Limits::default()).is_err(),
            "the default 4096 is above 1024"
        );
        let e = caps
            .check(&Limits {
                max_log_bytes: 4096,
                ..Limits::default()
            })
            .map_err(|e| e.to_string());
        let message = e.err().unwrap_or_default();
        assert!(
            message.starts_with("limits.max_log_bytes:") && message.contains("1024 bytes"),
            "{message}"
        );
        assert!(ManifestCaps::default().check(&Limits::default()).is_ok());
        assert_eq!(caps.clamp(Limits::default()).max_log_bytes, 1024);
    }

    #[test]
    fn a_result_within_the_budget_is_recorded_whole() {
        assert_eq!(record_ok(&vec![1, 2, 3], 100), json!({ "ok": [1, 2, 3] }));
    }

    #[test]
    fn a_result_over_the_budget_is_recorded_as_preview_size_and_digest() {
        let big = "é".repeat(10_000);
        let recorded = record_ok(&big, 1000);
        let t = &recorded["ok_truncated"];
        let full = serde_json::to_vec(&big).unwrap_or_default();
        assert_eq!(t["bytes"], json!(full.len()));
        assert_eq!(t["sha256"], json!(hex::encode(Sha256::digest(&full))));
        let preview = t["preview"].as_str().unwrap_or_default();
        assert!(preview.len() <= RESULT_PREVIEW_BYTES && preview.starts_with("\"éé"));
        assert!(recorded.get("ok").is_none());
    }
}
