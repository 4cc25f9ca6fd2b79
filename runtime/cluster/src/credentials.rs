//! The cluster's API credentials, so that a token made on any replica works on every replica,
//! and one revoked on any replica stops working on all.
//!
//! Bucket `grace_credentials`: `token.<hash>` (the SHA-256 of the token's secret, as each replica
//! stores it; never the secret) and `principal.<hash>` (the SHA-256 of the principal's id), each
//! the record as the server describes it (opaque here), written by compare-and-set on the
//! revision its writer read. Keys are 64 lowercase hex digits, checked before a key is built.

use futures_util::Stream;

use crate::error::ClusterError;
use crate::keyed::Keyed;
pub use crate::keyed::Stored as StoredCredential;
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

/// One kind of credential.
#[derive(Clone)]
pub struct CredentialKind(Keyed);

impl CredentialKind {
    /// Record `key`, if the cluster has it.
    pub async fn get(&self, key: &str) -> Result<Option<StoredCredential>, ClusterError> {
        self.0.get(key).await
    }

    /// Writes record `key`: created when `revision` is `None` ([`ClusterError::Conflict`] when
    /// another replica created it first), else if it is still at `revision`.
    pub async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        revision: Option<u64>,
    ) -> Result<u64, ClusterError> {
        match revision {
            Some(revision) => self.0.update(key, value, revision).await,
            None => self
                .0
                .create(key, value)
                .await?
                .ok_or_else(|| ClusterError::Conflict {
                    key: key.to_owned(),
                }),
        }
    }

    /// Every record (at most [`MAX_LISTED`]).
    pub async fn list(&self) -> Result<Vec<StoredCredential>, ClusterError> {
        self.0.list(MAX_LISTED).await
    }

    /// Every record written from now on, from whichever replica.
    pub async fn changes(
        &self,
    ) -> Result<impl Stream<Item = Result<StoredCredential, ClusterError>> + use<>, ClusterError>
    {
        self.0.changes().await
    }
}

/// The cluster's tokens and principals.
#[derive(Clone)]
pub struct Credentials {
    /// Tokens, by the hash of their secret.
    pub tokens: CredentialKind,
    /// Local principals, by the hash of their id.
    pub principals: CredentialKind,
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
            "token",
            "token",
            valid_key,
            RULE,
        );
        Ok(Credentials {
            principals: CredentialKind(Keyed::new(
                tokens.bucket().clone(),
                settings.request_timeout,
                "principal",
                "principal",
                valid_key,
                RULE,
            )),
            tokens: CredentialKind(tokens),
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
