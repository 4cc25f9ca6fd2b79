//! API tokens and local principals shared by the replicas of a cluster: a token made on any
//! replica (`grace init`'s included) authenticates on every replica, and one revoked on any
//! replica stops authenticating on every replica as soon as the change reaches it.
//!
//! The engine keeps each token's record under the hash of its secret, as each replica stores it
//! (the secret itself never leaves the replica that made it), and each local principal under the
//! hash of its id ([`grace_cluster::credentials`]). A replica writes what its API changed
//! ([`SharedCredentials::publish_token`], [`SharedCredentials::publish_principal`]); every
//! replica follows ([`follow`]) and takes in what it lacks. A revocation is never undone: of two
//! records of one token, the revoked one wins, whichever replica wrote last.

use std::sync::Arc;

use grace_cluster::{Cluster, ClusterError, Records, Stored};
use sha2::{Digest as _, Sha256};

use crate::auth::Authenticator;
use crate::auth::principals::Principal;
use crate::auth::tokens::TokenRecord;
use crate::supervisor::TaskError;
use grace_cluster::credentials::MAX_LISTED;

/// Why a change could not be shared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The engine did not take it.
    #[error("the cluster's engine: {0}")]
    Engine(#[from] ClusterError),
    /// The record is not here, or cannot be read or written.
    #[error("{0}")]
    Record(String),
}

/// How often this replica's tokens are written again where the cluster lacks them: a
/// revocation the engine did not take when it was made reaches the others within this.
const SHARE_AGAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The key of principal `id` in the engine.
fn principal_key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// This replica's side of the cluster's credentials.
pub struct SharedCredentials {
    cluster: Arc<Cluster>,
    auth: Arc<Authenticator>,
}

impl std::fmt::Debug for SharedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCredentials").finish_non_exhaustive()
    }
}

/// Writes `key` of `records` as `merge(what is there)` says (`None`: nothing to add).
async fn write_merged<T: serde::Serialize + serde::de::DeserializeOwned>(
    records: &Records,
    key: &str,
    merge: impl Fn(Option<T>) -> Option<T>,
) -> Result<(), ShareError> {
    records
        .merge(key, |there| {
            let there = there
                .map(serde_json::from_slice::<T>)
                .transpose()
                .map_err(|e| ShareError::Record(format!("the cluster's `{key}`: {e}")))?;
            merge(there)
                .map(|wanted| serde_json::to_vec(&wanted))
                .transpose()
                .map_err(|e| ShareError::Record(e.to_string()))
        })
        .await
}

impl SharedCredentials {
    /// Shares `auth`'s tokens and principals through `cluster`.
    pub fn new(cluster: Arc<Cluster>, auth: Arc<Authenticator>) -> SharedCredentials {
        SharedCredentials { cluster, auth }
    }

    /// Writes token `id` as this replica has it (made or revoked here).
    pub async fn publish_token(&self, id: &str) -> Result<(), ShareError> {
        let (key, here) = self
            .auth
            .tokens
            .keyed_by_id(id)
            .ok_or_else(|| ShareError::Record(format!("no token `{id}` here")))?;
        self.write_token(&key, &here).await
    }

    async fn write_token(&self, key: &str, here: &TokenRecord) -> Result<(), ShareError> {
        write_merged::<TokenRecord>(
            &self.cluster.credentials().tokens,
            key,
            |there| match there {
                // Revoked anywhere: revoked.
                Some(there) if there.revoked || !here.revoked => None,
                _ => Some(here.clone()),
            },
        )
        .await
    }

    /// Writes local principal `id` as this replica has it (made here).
    pub async fn publish_principal(&self, id: &str) -> Result<(), ShareError> {
        let here = self
            .auth
            .tokens
            .principals()
            .get(id)
            .ok_or_else(|| ShareError::Record(format!("no principal `{id}` here")))?;
        self.write_principal(&here).await
    }

    async fn write_principal(&self, here: &Principal) -> Result<(), ShareError> {
        write_merged::<Principal>(
            &self.cluster.credentials().principals,
            &principal_key(&here.id),
            |there| there.is_none().then(|| here.clone()),
        )
        .await
    }

    /// Takes in every principal and token the cluster has, once. Called at start, before the
    /// replica takes part, so that it never accepts a token revoked elsewhere.
    pub async fn catch_up(&self) -> Result<(), ClusterError> {
        let credentials = self.cluster.credentials();
        // Principals first: a token names one.
        for stored in credentials.principals.list(MAX_LISTED).await? {
            self.take_principal(&stored);
        }
        for stored in credentials.tokens.list(MAX_LISTED).await? {
            self.take_token(&stored);
        }
        Ok(())
    }

    /// Writes every principal and token of this replica the cluster lacks, and every
    /// revocation made here that it does not show (one the engine did not take when it was
    /// made): a revocation is never left here alone.
    async fn share_all(&self) {
        for p in self.auth.tokens.principals().list() {
            if let Err(e) = self.write_principal(&p).await {
                tracing::warn!(principal = %p.id, "cannot share the principal with the cluster: {e}");
            }
        }
        for (key, record) in self.auth.tokens.keyed() {
            if let Err(e) = self.write_token(&key, &record).await {
                tracing::warn!(token = %record.id, "cannot share the token with the cluster: {e}");
            }
        }
    }

    fn take_token(&self, stored: &Stored) {
        let taken = serde_json::from_slice::<TokenRecord>(&stored.value)
            .map_err(|e| e.to_string())
            .and_then(|record| {
                self.auth
                    .tokens
                    .adopt(&stored.id, &record)
                    .map(|changed| (changed, record))
                    .map_err(|e| e.to_string())
            });
        match taken {
            Ok((true, record)) => {
                tracing::info!(token = %record.id, revoked = record.revoked, "took in a token changed on another replica")
            }
            Ok((false, _)) => {}
            Err(e) => tracing::warn!("a token from the cluster is not taken in: {e}"),
        }
    }

    fn take_principal(&self, stored: &Stored) {
        let taken = serde_json::from_slice::<Principal>(&stored.value)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                if principal_key(&p.id) != stored.id {
                    return Err(format!("`{}` is stored under another key", p.id));
                }
                self.auth
                    .tokens
                    .principals()
                    .adopt(&p)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = taken {
            tracing::warn!("a principal from the cluster is not taken in: {e}");
        }
    }
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error("cannot follow the cluster's tokens and principals: {0}")]
    Engine(#[from] ClusterError),
    #[error("the engine stopped sending the cluster's token and principal changes")]
    Ended,
}

/// Follows the cluster's credentials: at start (and at each restart of this task) every
/// principal and token is taken in and this replica's that the cluster lacks are written; then
/// each change as it is written, by any replica.
pub async fn follow(shared: Arc<SharedCredentials>) -> Result<(), TaskError> {
    use futures_util::StreamExt as _;
    let fail = |e: ClusterError| TaskError::new(FollowError::Engine(e));
    let credentials = shared.cluster.credentials().clone();
    let principals = credentials.principals.changes().await.map_err(fail)?;
    let tokens = credentials.tokens.changes().await.map_err(fail)?;
    shared.catch_up().await.map_err(fail)?;
    shared.share_all().await;
    let mut principals = std::pin::pin!(principals);
    let mut tokens = std::pin::pin!(tokens);
    let mut again = tokio::time::interval(SHARE_AGAIN);
    again.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    again.tick().await;
    loop {
        tokio::select! {
            _ = again.tick() => shared.share_all().await,
            change = principals.next() => match change {
                Some(Ok(stored)) => shared.take_principal(&stored),
                Some(Err(e)) => return Err(fail(e)),
                None => break,
            },
            change = tokens.next() => match change {
                Some(Ok(stored)) => shared.take_token(&stored),
                Some(Err(e)) => return Err(fail(e)),
                None => break,
            },
        }
    }
    Err(TaskError::new(FollowError::Ended))
}
