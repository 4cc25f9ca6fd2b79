//! The cluster's Cedar policy sets, so that a policy added, replaced or removed through any
//! replica holds on every replica.
//!
//! Bucket `grace_policies`, key `set.<name>`: each set's current text (or that it was
//! removed), who wrote it and when, as the server describes it (opaque here). Written by
//! compare-and-set on the revision its writer read; kept until replaced.
//!
//! Set names are the trust core's (lowercase letters, digits, `-`, `_` and `.`, starting with
//! a letter or digit); anything else is refused before a key is built.

use crate::error::ClusterError;
use crate::keyed::{Keyed, Kind, Records};
use crate::schema::BucketSpec;
use crate::settings::ClusterSettings;

/// The largest set: one engine message.
pub const MAX_SET_BYTES: i32 = 1000 * 1024;

/// The most sets listed.
pub const MAX_LISTED: usize = 10_000;

/// The policies' bucket: kept until replaced.
pub fn bucket() -> BucketSpec {
    BucketSpec {
        name: "grace_policies",
        history: 1,
        max_age: std::time::Duration::ZERO,
        max_value_bytes: MAX_SET_BYTES,
    }
}

/// Whether `name` is a policy set name.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        // A key's tokens are never empty.
        && !name.contains("..")
        && !name.ends_with('.')
}

/// The cluster's policy sets, by name.
pub async fn open(
    engine: &crate::Engine,
    settings: &ClusterSettings,
) -> Result<Records, ClusterError> {
    let kind = Kind {
        prefix: "set",
        what: "policy set",
        valid: valid_name,
        rule: "a policy set name is lowercase letters, digits, `-`, `_` and `.`",
    };
    Ok(Records(
        Keyed::open(engine, settings, bucket(), kind).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_are_checked_before_a_key_is_built() {
        for good in ["base", "prod.capacity", "a_b-c.9"] {
            assert!(valid_name(good), "{good:?}");
        }
        for bad in [
            "",
            ".a",
            "a..b",
            "a.",
            "A",
            "a*",
            "a>",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
