//! The parsers of a manifest's field values: durations (humantime), sizes (bytes or `64MiB`),
//! playbook names and semantic versions. Each error names the field.

use std::time::Duration;

use serde::Deserialize;

use super::ManifestError;

/// A size as written: a number of bytes, or text with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Size {
    Bytes(u64),
    Text(String),
}

/// Parses a humantime duration (`90s`, `5m`, `1h 30m`) for the named field.
pub(crate) fn parse_duration(field: &str, text: &str) -> Result<Duration, ManifestError> {
    humantime::parse_duration(text)
        .map_err(|e| ManifestError::invalid(field, format!("`{text}` is not a duration ({e})")))
}

/// Parses a size: an integer number of bytes, or a number with `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`.
pub(crate) fn parse_size(field: &str, value: &Size) -> Result<u64, ManifestError> {
    let text = match value {
        Size::Bytes(n) => return Ok(*n),
        Size::Text(t) => t.trim(),
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

/// Refuses a name that is not 1-64 lowercase letters, digits and `-`.
pub(super) fn validate_name(name: &str) -> Result<(), ManifestError> {
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

/// Refuses a version that is not semantic (`1.2.3`, with an optional pre-release or build).
pub(super) fn validate_version(version: &str) -> Result<(), ManifestError> {
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
