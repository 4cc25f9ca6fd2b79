//! The cluster's Cedar policy sets, so that a policy added, replaced or removed through any
//! replica holds on every replica.
//!
//! Bucket `grace_policies`, key `set.<name>`: each set's current text (or that it was
//! removed), who wrote it and when, as the server describes it (opaque here). Written by
//! compare-and-set on the revision its writer read; kept until replaced.
//!
//! Set names are the trust core's (lowercase letters, digits, `-`, `_` and `.`, starting with
//! a letter or digit); anything else is refused before a key is built.

use futures_util::Stream;

use crate::error::ClusterError;
use crate::keyed::Keyed;
pub use crate::keyed::Stored as StoredSet;
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

/// The cluster's policy sets.
#[derive(Clone)]
pub struct PolicySets {
    sets: Keyed,
}

impl std::fmt::Debug for PolicySets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySets").finish_non_exhaustive()
    }
}

impl PolicySets {
    /// Creates the bucket, or checks the one there.
    pub async fn open(
        engine: &crate::Engine,
        settings: &ClusterSettings,
    ) -> Result<Self, ClusterError> {
        let bucket = bucket().ensure(engine, settings.engine_replicas).await?;
        Ok(PolicySets {
            sets: Keyed::new(
                bucket,
                settings.request_timeout,
                "set",
                "policy set",
                valid_name,
                "a policy set name is lowercase letters, digits, `-`, `_` and `.`",
            ),
        })
    }

    /// Set `name`, if the cluster has it.
    pub async fn get(&self, name: &str) -> Result<Option<StoredSet>, ClusterError> {
        self.sets.get(name).await
    }

    /// Writes set `name`: created when `revision` is `None` ([`ClusterError::Conflict`] when
    /// another replica created it first), else if it is still at `revision`.
    pub async fn put(
        &self,
        name: &str,
        value: Vec<u8>,
        revision: Option<u64>,
    ) -> Result<u64, ClusterError> {
        match revision {
            Some(revision) => self.sets.update(name, value, revision).await,
            None => self
                .sets
                .create(name, value)
                .await?
                .ok_or_else(|| ClusterError::Conflict {
                    key: format!("set.{name}"),
                }),
        }
    }

    /// Every set (at most [`MAX_LISTED`]).
    pub async fn list(&self) -> Result<Vec<StoredSet>, ClusterError> {
        self.sets.list(MAX_LISTED).await
    }

    /// Every set written from now on, from whichever replica.
    pub async fn changes(
        &self,
    ) -> Result<impl Stream<Item = Result<StoredSet, ClusterError>> + use<>, ClusterError> {
        self.sets.changes().await
    }
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
