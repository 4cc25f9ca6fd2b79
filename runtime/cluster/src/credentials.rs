//! The cluster's API credentials, so that a token made on any replica works on every replica,
//! and one revoked on any replica stops working on all.
//!
//! Bucket `grace_credentials`: `token.<hash>` (the SHA-256 of the token's secret, as each replica
//! stores it; never the secret) and `principal.<hash>` (the SHA-256 of the principal's id), each
//! the record as the server describes it (opaque here), written by compare-and-set on the
//! revision its writer read. Keys are 64 lowercase hex digits, checked before a key is built.

use crate::error::ClusterError;
use crate::keyed::{Keyed, Kind, Records};
use crate::schema::BucketSpec;
use crate::settings::ClusterSettings;

/// The largest record.
pub const MAX_RECORD_BYTES: i32 = 64 * 1024;

/// The most records of one kind listed.
pub const MAX_LISTED: usize = 100_000;

/// The credentials' bucket: kept until replaced (a revoked token stays, revoked).
pub fn bucket() -> BucketSpec {
    BucketSpec {
        name: "grace_credentials",
        history: 1,
        max_age: std::time::Duration::ZERO,
        max_value_bytes: MAX_RECORD_BYTES,
    }
}

/// Whether `key` is a credential's key: 64 lowercase hex digits (a SHA-256).
pub fn valid_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

const RULE: &str = "a credential's key is 64 lowercase hex digits";

/// The cluster's tokens and principals.
#[derive(Clone)]
pub struct Credentials {
    /// Tokens, by the hash of their secret.
    pub tokens: Records,
    /// Local principals, by the hash of their id.
    pub principals: Records,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

impl Credentials {
    /// Creates the bucket, or checks the one there.
    pub async fn open(
        engine: &crate::Engine,
        settings: &ClusterSettings,
    ) -> Result<Self, ClusterError> {
        let bucket = bucket().ensure(engine, settings.engine_replicas).await?;
        let tokens = Keyed::new(
            bucket,
            settings.request_timeout,
            Kind {
                prefix: "token",
                what: "token",
                valid: valid_key,
                rule: RULE,
            },
        );
        Ok(Credentials {
            principals: Records(Keyed::new(
                tokens.bucket().clone(),
                settings.request_timeout,
                Kind {
                    prefix: "principal",
                    what: "principal",
                    valid: valid_key,
                    rule: RULE,
                },
            )),
            tokens: Records(tokens),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashes() {
        assert!(valid_key(&"0a".repeat(32)));
        for bad in [
            "",
            "0a",
            &"0A".repeat(32),
            &"0a".repeat(33),
            &format!("{}.x", "0".repeat(62)),
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}
