//! What `grace cluster status` and `GET /v1/cluster` show: this replica, the live replicas, and
//! who holds each shard.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lease::Holder;
use crate::members::Member;
use crate::membership::Counters;
use crate::settings::ClusterSettings;

/// The cluster as one replica sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This replica's name.
    pub replica: String,
    /// This replica's process id in the cluster.
    pub incarnation: String,
    /// Whether this replica takes part now (connected, registered, heartbeat fresh).
    pub ready: bool,
    /// Whether the engine connection is up.
    pub engine_connected: bool,
    /// The number of shards.
    pub shards: u32,
    /// How long a lease lasts without renewal, in milliseconds.
    pub lease_ttl_millis: u64,
    /// The shards this replica holds.
    pub owned: Vec<OwnedShard>,
    /// The live replicas, with how many shards each holds (as last read).
    pub replicas: Vec<ReplicaStatus>,
    /// Every shard and its holder, as last read; `null` for a shard nobody holds.
    pub holders: Vec<Option<ShardHolder>>,
    /// The last error of the ownership loop, if any.
    pub last_error: Option<String>,
    /// Counters since this replica started.
    pub counters: CounterValues,
}

/// A shard this replica holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedShard {
    /// The shard.
    pub shard: u32,
    /// Its fencing token.
    pub token: u64,
    /// How long this replica may still act on it without another renewal, in milliseconds.
    pub trusted_for_millis: u64,
}

/// A live replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Its heartbeat.
    #[serde(flatten)]
    pub member: Member,
    /// How many shards it holds.
    pub shards: usize,
}

/// Who holds a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHolder {
    /// The replica.
    pub replica: String,
    /// The tenure's fencing token.
    pub token: u64,
    /// The lease key's revision (it grows with every renewal).
    pub revision: u64,
}

/// The counters, read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterValues {
    /// Leases renewed.
    pub renewals: u64,
    /// Leases acquired.
    pub acquisitions: u64,
    /// Leases acquired that another replica held before.
    pub takeovers: u64,
    /// Leases lost.
    pub losses: u64,
    /// Leases given back.
    pub releases: u64,
    /// Fence checks refused.
    pub fence_rejections: u64,
    /// Runs taken over off the run board.
    #[serde(default)]
    pub runs_taken_over: u64,
    /// Playbook versions from the cluster's catalogue refused here.
    #[serde(default)]
    pub installs_refused: u64,
}

impl From<&Counters> for CounterValues {
    fn from(c: &Counters) -> Self {
        CounterValues {
            renewals: c.renewals.load(Ordering::Relaxed),
            acquisitions: c.acquisitions.load(Ordering::Relaxed),
            takeovers: c.takeovers.load(Ordering::Relaxed),
            losses: c.losses.load(Ordering::Relaxed),
            releases: c.releases.load(Ordering::Relaxed),
            fence_rejections: c.fence_rejections.load(Ordering::Relaxed),
            runs_taken_over: c.runs_taken_over.load(Ordering::Relaxed),
            installs_refused: c.installs_refused.load(Ordering::Relaxed),
        }
    }
}

impl ClusterStatus {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        settings: &ClusterSettings,
        replica: &str,
        incarnation: &str,
        ready: bool,
        engine_connected: bool,
        owned: Vec<(u32, u64, Duration)>,
        holders: &[Option<Holder>],
        members: &[Member],
        last_error: Option<String>,
        counters: &Counters,
    ) -> ClusterStatus {
        ClusterStatus {
            replica: replica.to_owned(),
            incarnation: incarnation.to_owned(),
            ready,
            engine_connected,
            shards: settings.shards,
            lease_ttl_millis: settings.lease_ttl.as_millis() as u64,
            owned: owned
                .into_iter()
                .map(|(shard, token, left)| OwnedShard {
                    shard,
                    token,
                    trusted_for_millis: left.as_millis() as u64,
                })
                .collect(),
            replicas: members
                .iter()
                .map(|m| ReplicaStatus {
                    member: m.clone(),
                    shards: holders
                        .iter()
                        .flatten()
                        .filter(|h| h.value.replica == m.replica)
                        .count(),
                })
                .collect(),
            holders: holders
                .iter()
                .map(|h| {
                    h.as_ref().map(|h| ShardHolder {
                        replica: h.value.replica.clone(),
                        token: h.token,
                        revision: h.revision,
                    })
                })
                .collect(),
            last_error,
            counters: counters.into(),
        }
    }

    /// The shards nobody holds.
    pub fn unowned(&self) -> Vec<u32> {
        (0..self.shards)
            .filter(|s| self.holders.get(*s as usize).is_none_or(Option::is_none))
            .collect()
    }
}
