//! The trust core's change history shared by the replicas of a cluster
//! ([`grace_cluster::resource_changes`]): the times of each resource's changes in the last hour,
//! whichever replica made them, so that `max_changes_per_hour` counts a shard's changes across
//! a move. Before deciding a change, a replica adds the resource's times from the engine to its
//! own history; after executing one, it adds the time to the engine's.

use grace_cluster::{ClusterError, Records};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// How far back the engine keeps a resource's changes: the longest window a guardrail counts.
const KEPT_MS: u64 = 3_600_000;

/// The most times kept per resource: far above any `max_changes_per_hour` worth setting.
const MAX_TIMES: usize = 10_000;

/// A resource's recent changes, as the engine keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    /// The resource's key (`group/web`).
    resource: String,
    /// When it was changed (run clock, ms), oldest first.
    times: Vec<u64>,
}

/// Why the engine's history could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The engine did not answer.
    #[error(transparent)]
    Engine(#[from] ClusterError),
    /// What the engine holds is not what a replica writes.
    #[error("the cluster's change history of `{0}` cannot be read: {1}")]
    Corrupt(String, String),
}

/// The cluster's change history of every resource.
#[derive(Debug, Clone)]
pub struct ClusterHistory {
    records: Records,
}

fn key(resource: &str) -> String {
    hex::encode(Sha256::digest(resource.as_bytes()))
}

fn decode(resource: &str, bytes: &[u8]) -> Result<Changes, HistoryError> {
    let changes: Changes = serde_json::from_slice(bytes)
        .map_err(|e| HistoryError::Corrupt(resource.to_owned(), e.to_string()))?;
    if changes.resource != resource {
        return Err(HistoryError::Corrupt(
            resource.to_owned(),
            "it is another resource's".into(),
        ));
    }
    Ok(changes)
}

impl ClusterHistory {
    /// The history in `records` (the cluster's `resource_changes`).
    pub fn new(records: Records) -> ClusterHistory {
        ClusterHistory { records }
    }

    /// When `resource` (its key, `group/web`) was changed lately, by any replica.
    pub async fn of(&self, resource: &str) -> Result<Vec<u64>, HistoryError> {
        match self.records.get(&key(resource)).await? {
            Some(stored) => Ok(decode(resource, &stored.value)?.times),
            None => Ok(Vec::new()),
        }
    }

    /// Adds a change of `resource` at `at` (run clock, ms); times older than an hour before the
    /// newest are dropped.
    pub async fn add(&self, resource: &str, at: u64) -> Result<(), HistoryError> {
        self.records
            .merge(&key(resource), |there| {
                let mut changes = match there {
                    Some(bytes) => decode(resource, bytes)?,
                    None => Changes {
                        resource: resource.to_owned(),
                        times: Vec::new(),
                    },
                };
                // Two changes in one millisecond are two changes: times are counted, not
                // deduplicated. Each executed change is added once, by the replica that made it.
                let place = changes.times.partition_point(|&t| t <= at);
                changes.times.insert(place, at);
                let newest = changes.times.last().copied().unwrap_or(at);
                changes
                    .times
                    .retain(|&t| t.saturating_add(KEPT_MS) > newest);
                let excess = changes.times.len().saturating_sub(MAX_TIMES);
                changes.times.drain(..excess);
                serde_json::to_vec(&changes)
                    .map(Some)
                    .map_err(|e| HistoryError::Corrupt(resource.to_owned(), e.to_string()))
            })
            .await
    }
}
