//! Policy sets shared by the replicas of a cluster: a set added, replaced or removed through any
//! replica's API holds on every replica.
//!
//! The engine keeps each set's current text ([`grace_cluster::policies`]); a replica that
//! changes a set through its API writes it there ([`SharedPolicies::publish`], compare-and-set,
//! the last change winning as on one server), and every replica follows ([`follow`]): a set it
//! lacks is added, one whose text differs is replaced, one removed is removed, each through its
//! own policy store, so the text is validated against the schema there and every version is
//! kept in its history, written by the principal who made the change. What a replica applies
//! this way is not written back.

use std::sync::Arc;

use grace_cluster::{Cluster, ClusterError};
use grace_trust::{PolicySetVersion, TrustError};
use serde::{Deserialize, Serialize};

use crate::supervisor::TaskError;
use crate::trust::HostTrust;

/// A policy set as the cluster holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedSet {
    /// The set's name.
    pub name: String,
    /// Its Cedar text; empty once removed.
    pub text: String,
    /// Removed: every replica removes it.
    pub removed: bool,
    /// Who made the change (the principal's name).
    pub by: String,
}

impl SharedSet {
    fn of(version: &PolicySetVersion) -> SharedSet {
        SharedSet {
            name: version.name.clone(),
            text: version.text.clone(),
            removed: version.removed,
            by: version.by.clone(),
        }
    }
}

/// Why a change could not be shared with the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The engine did not take it.
    #[error("the cluster's engine: {0}")]
    Engine(#[from] ClusterError),
    /// The set's record cannot be read or written.
    #[error("the cluster's record of policy set `{0}` cannot be read or written: {1}")]
    Record(String, String),
}

fn decode(name: &str, bytes: &[u8]) -> Result<SharedSet, ShareError> {
    let set: SharedSet = serde_json::from_slice(bytes)
        .map_err(|e| ShareError::Record(name.to_owned(), e.to_string()))?;
    if set.name != name {
        return Err(ShareError::Record(
            name.to_owned(),
            "it names another set".into(),
        ));
    }
    Ok(set)
}

/// This replica's side of the cluster's policy sets.
pub struct SharedPolicies {
    cluster: Arc<Cluster>,
    trust: Arc<HostTrust>,
    /// One change applied here at a time.
    applying: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SharedPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPolicies").finish_non_exhaustive()
    }
}

impl SharedPolicies {
    /// Shares `trust`'s policy sets through `cluster`.
    pub fn new(cluster: Arc<Cluster>, trust: Arc<HostTrust>) -> SharedPolicies {
        SharedPolicies {
            cluster,
            trust,
            applying: tokio::sync::Mutex::new(()),
        }
    }

    /// Makes a change through this replica's API (`change` on its policy store) and writes
    /// exactly the version it made to the engine, with no change from another replica applied
    /// in between. The change stands here even when the engine does not take it (the error
    /// says so).
    pub async fn change(
        &self,
        name: &str,
        change: impl FnOnce(&grace_trust::PolicyStore) -> Result<PolicySetVersion, TrustError>,
    ) -> Result<Result<PolicySetVersion, ShareError>, TrustError> {
        let _applying = self.applying.lock().await;
        let made = change(self.trust.core().policies())?;
        Ok(self.write(name, &SharedSet::of(&made)).await.map(|()| made))
    }

    /// Writes set `name` as this replica's store has it now (its newest version, a removal
    /// included): what a replica that had sets before it joined shares.
    async fn publish(&self, name: &str) -> Result<(), ShareError> {
        let wanted = self
            .trust
            .core()
            .policies()
            .history(name)
            .map_err(|e| ShareError::Record(name.to_owned(), e.to_string()))?
            .last()
            .map(SharedSet::of)
            .ok_or_else(|| ShareError::Record(name.to_owned(), "no such set here".into()))?;
        self.write(name, &wanted).await
    }

    async fn write(&self, name: &str, wanted: &SharedSet) -> Result<(), ShareError> {
        self.cluster
            .policies()
            .merge(name, |there| {
                if let Some(bytes) = there
                    && decode(name, bytes).is_ok_and(|s| &s == wanted)
                {
                    return Ok(None);
                }
                serde_json::to_vec(wanted)
                    .map(Some)
                    .map_err(|e| ShareError::Record(name.to_owned(), e.to_string()))
            })
            .await
    }

    /// Applies every set the cluster has, once; answers what it listed. Called at start, before
    /// the replica takes part, so that it never decides with sets older than the cluster's.
    pub async fn catch_up(&self) -> Result<Vec<grace_cluster::Stored>, ClusterError> {
        let listed = self
            .cluster
            .policies()
            .list(grace_cluster::policies::MAX_LISTED)
            .await?;
        for stored in &listed {
            match decode(&stored.id, &stored.value) {
                Ok(set) => self.apply(&set).await,
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(listed)
    }

    /// Makes this replica's store hold `set` as the cluster does.
    async fn apply(&self, set: &SharedSet) {
        let _applying = self.applying.lock().await;
        let store = self.trust.core().policies();
        let here = store.get(&set.name).ok().filter(|v| !v.removed);
        let done = match (here, set.removed) {
            (None, true) => return,
            (Some(_), true) => store.remove(&set.name, &set.by),
            (None, false) => store.add(&set.name, &set.text, &set.by),
            (Some(v), false) if v.text == set.text => return,
            (Some(_), false) => store.replace(&set.name, &set.text, &set.by),
        };
        match done {
            Ok(v) => {
                tracing::info!(set = %set.name, version = v.version, by = %set.by, removed = set.removed, "applied the policy change made on another replica")
            }
            Err(e @ TrustError::Policy(_)) => {
                tracing::error!(set = %set.name, "the policy set changed on another replica does not validate here, so this replica keeps its own: {e}")
            }
            Err(e) => {
                tracing::error!(set = %set.name, "cannot apply the policy change made on another replica: {e}")
            }
        }
    }
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error("cannot follow the cluster's policy sets: {0}")]
    Engine(#[from] ClusterError),
    #[error("the engine stopped sending the cluster's policy changes")]
    Ended,
}

/// Follows the cluster's sets: at start (and at each restart of this task) every set is applied
/// here and this replica's sets the cluster lacks are published; then each change as it is
/// written, by any replica.
pub async fn follow(shared: Arc<SharedPolicies>) -> Result<(), TaskError> {
    use futures_util::StreamExt as _;
    let changes = shared
        .cluster
        .policies()
        .changes()
        .await
        .map_err(|e| TaskError::new(FollowError::Engine(e)))?;
    let listed = shared
        .catch_up()
        .await
        .map_err(|e| TaskError::new(FollowError::Engine(e)))?;
    for version in shared.trust.core().policies().list() {
        if !listed.iter().any(|s| s.id == version.name)
            && let Err(e) = shared.publish(&version.name).await
        {
            tracing::warn!(set = %version.name, "cannot share the policy set with the cluster: {e}");
        }
    }
    let mut changes = std::pin::pin!(changes);
    while let Some(change) = changes.next().await {
        match change
            .map_err(ShareError::from)
            .and_then(|s| decode(&s.id, &s.value))
        {
            Ok(set) => shared.apply(&set).await,
            Err(ShareError::Engine(e)) => return Err(TaskError::new(FollowError::Engine(e))),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    Err(TaskError::new(FollowError::Ended))
}
