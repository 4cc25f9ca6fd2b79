//! Replica heartbeats: `replica.<name>` in a bucket whose values live `lease_ttl`, written by
//! each live replica every `renew_every` with a compare-and-set on its own last write. A
//! replica that stops writing disappears from the bucket; two processes started with the same
//! name cannot both write, and the second waits until the first is gone.

use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;
use crate::lease::now_millis;

/// The most replicas a listing reads: far beyond any real cluster, a bound on a bucket anyone
/// with engine access could fill.
pub const MAX_LISTED: usize = 1024;

/// What a heartbeat says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The replica's name.
    pub replica: String,
    /// Its process's id, new at every start.
    pub incarnation: String,
    /// When that process started, milliseconds since the epoch.
    pub started_millis: u64,
    /// When it last wrote its heartbeat.
    pub at_millis: u64,
    /// GRACE's version.
    pub version: String,
    /// When it last wrote to the lease bucket successfully (a renewal, an acquisition or a
    /// probe), by its clock: whether it can take shards (0 from a replica that does not say).
    #[serde(default)]
    pub leases_ok_millis: u64,
}

/// This replica's heartbeat.
pub struct Heartbeat {
    store: kv::Store,
    me: Member,
    revision: Option<u64>,
    timeout: Duration,
}

fn key(replica: &str) -> String {
    format!("replica.{replica}")
}

impl Heartbeat {
    /// The heartbeat of `replica` in `incarnation` in bucket `store`.
    pub fn new(store: kv::Store, replica: String, incarnation: String, timeout: Duration) -> Self {
        Heartbeat {
            store,
            me: Member {
                replica,
                incarnation,
                started_millis: now_millis(),
                at_millis: 0,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                // Counted from its first heartbeat: a new replica is owed its share at once,
                // and its first probe (after its first round) keeps it so.
                leases_ok_millis: now_millis(),
            },
            revision: None,
            timeout,
        }
    }

    /// Writes the heartbeat. [`ClusterError::Conflict`]: another process holds this replica's
    /// name (or did until less than `lease_ttl` ago).
    pub async fn beat(&mut self) -> Result<(), ClusterError> {
        let key = key(&self.me.replica);
        self.me.at_millis = now_millis();
        let value: bytes::Bytes = serde_json::to_vec(&self.me)
            .expect("a heartbeat serializes")
            .into();
        let written = match self.revision {
            None => {
                within(self.timeout, "register replica", async {
                    match self.store.create(&key, value).await {
                        Ok(revision) => Ok(revision),
                        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                            Err(ClusterError::Conflict { key: key.clone() })
                        }
                        Err(e) => Err(ClusterError::unavailable("register replica", e)),
                    }
                })
                .await
            }
            Some(revision) => {
                within(self.timeout, "write heartbeat", async {
                    match self.store.update(&key, value, revision).await {
                        Ok(revision) => Ok(revision),
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                            Err(ClusterError::Conflict { key: key.clone() })
                        }
                        Err(e) => Err(ClusterError::unavailable("write heartbeat", e)),
                    }
                })
                .await
            }
        };
        match written {
            Ok(revision) => {
                self.revision = Some(revision);
                Ok(())
            }
            Err(e @ ClusterError::Conflict { .. }) => {
                self.revision = None;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Says in the next beats that this replica wrote to the lease bucket at `at_millis`.
    pub fn leases_ok(&mut self, at_millis: u64) {
        self.me.leases_ok_millis = at_millis;
    }

    /// Whether the last write succeeded and was not lost since.
    pub fn registered(&self) -> bool {
        self.revision.is_some()
    }

    /// Removes the heartbeat (a replica shutting down).
    pub async fn leave(&mut self) {
        if let Some(revision) = self.revision.take() {
            let _ = self
                .store
                .delete_expect_revision(key(&self.me.replica), Some(revision))
                .await;
        }
    }
}

/// The replicas whose heartbeat is live now, sorted by name (at most [`MAX_LISTED`]).
///
/// The keys come from the stream's own information (its subjects), answered by the stream's
/// leader: no consumer is created, so a listing works as soon as the stream has a leader again
/// after an engine node was lost (an ephemeral consumer on a lost node would not).
pub async fn live(store: &kv::Store, timeout: Duration) -> Result<Vec<Member>, ClusterError> {
    within(timeout, "list replicas", async {
        let mut subjects = store
            .stream
            .info_with_subjects(format!("{}>", store.prefix))
            .await
            .map_err(|e| ClusterError::unavailable("list replicas", e))?;
        let mut keys = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(|e| ClusterError::unavailable("list replicas", e))?;
            if keys.len() >= MAX_LISTED {
                break;
            }
            if let Some(key) = subject.strip_prefix(store.prefix.as_str()) {
                keys.push(key.to_owned());
            }
        }
        let mut members = Vec::new();
        for key in keys {
            let Some(entry) = store
                .entry(&key)
                .await
                .map_err(|e| ClusterError::unavailable("read replica", e))?
                .filter(|e| e.operation == kv::Operation::Put)
            else {
                continue;
            };
            match serde_json::from_slice::<Member>(&entry.value) {
                Ok(member) if key == self::key(&member.replica) => members.push(member),
                _ => tracing::warn!(key = %key.escape_debug(), "ignoring a heartbeat GRACE did not write"),
            }
        }
        members.sort_by(|a, b| a.replica.cmp(&b.replica));
        Ok(members)
    })
    .await
}

/// `work`, or [`ClusterError::Unavailable`] after `timeout`.
pub(crate) async fn within<T>(
    timeout: Duration,
    op: &'static str,
    work: impl Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(ClusterError::unavailable(
                op,
                format!("no answer in {timeout:?}"),
            ))
        })
}
