//! Shard leases on key-value revisions, with the bucket's `max_age` as the engine-side expiry.
//!
//! nats-server 2.9 has no per-key TTL (2.11 has), so a lease is the key `shard.<n>` in a
//! bucket whose values live `lease_ttl` after they were written:
//! - **acquire** = `create` (a write expecting the key to have no value): exactly one replica
//!   wins; the revision it gets is the lease's **fencing token**. Revisions are the stream's
//!   sequence numbers, so a later tenure always has a greater token.
//! - **renew** = `update` expecting the revision of the holder's last write (compare-and-set).
//!   A renewal that loses means the lease is gone: it expired on the engine, and someone else
//!   may hold it.
//! - **release** = delete expecting that revision.
//!
//! The holder trusts its lease until `sent + lease_ttl - margin`, where `sent` is the local
//! monotonic time at which its last successful write was *sent*: the engine stamps the value
//! later than that and drops it `lease_ttl` after its stamp, so nobody can acquire the shard
//! before the holder stops trusting it, as long as the two clocks advance at nearly the same
//! rate (no wall-clock comparison is made). The margin covers that rate and the write's time
//! in flight.
//!
//! Reads of the bucket are hints (a direct get may be answered by a replica of the stream that
//! is behind): every decision that matters is a compare-and-set write, which goes through the
//! stream's leader and its quorum.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;

/// A lease this replica holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    shard: u32,
    token: u64,
    revision: u64,
    valid_until: Instant,
}

impl Lease {
    /// The shard.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// The fencing token: the revision at which this tenure began.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The revision of the holder's last write.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Until when the holder may act on the shard (local monotonic time).
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// Whether the holder may still act at `now`.
    pub fn valid_at(&self, now: Instant) -> bool {
        now < self.valid_until
    }
}

/// What a lease key holds: who holds it, and in which incarnation of that replica (a replica
/// restarted under the same name is another holder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseValue {
    /// The replica's name.
    pub replica: String,
    /// The replica process's id, new at every start.
    pub incarnation: String,
    /// The fencing token; absent in the write that acquired the lease (its revision is the
    /// token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    /// Wall-clock time of the write, milliseconds since the epoch (for people, not decisions).
    pub at_millis: u64,
}

/// Who holds a shard, as last read (a hint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// The value.
    #[serde(flatten)]
    pub value: LeaseValue,
    /// The tenure's fencing token.
    pub token: u64,
    /// The revision of the holder's last write.
    pub revision: u64,
}

/// A lease key, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Somebody holds the lease.
    Held(Holder),
    /// Its last holder gave it back.
    Released,
    /// Nobody wrote it within `lease_ttl`: never held, or its holder stopped renewing.
    Free,
}

/// The lease bucket, as used by one replica incarnation.
#[derive(Clone)]
pub struct Leases {
    store: kv::Store,
    replica: String,
    incarnation: String,
    trust_for: Duration,
}

/// The key of shard `n`'s lease.
pub fn lease_key(shard: u32) -> String {
    format!("shard.{shard}")
}

impl Leases {
    /// Writes this replica's probe key in the lease bucket (it lives `lease_ttl`, like a lease):
    /// whether this replica can write leases, which the others need to know to count it when
    /// it holds none.
    pub async fn probe(&self, timeout: Duration) -> Result<(), ClusterError> {
        let key = format!("probe.{}", self.replica);
        crate::members::within(timeout, "probe leases", async {
            self.store
                .put(&key, now_millis().to_string().into())
                .await
                .map(drop)
                .map_err(|e| ClusterError::unavailable("probe leases", e))
        })
        .await
    }

    /// The lease bucket `store`, for `replica` in `incarnation`, trusting a lease `lease_ttl -
    /// margin` after each write was sent.
    pub fn new(
        store: kv::Store,
        replica: String,
        incarnation: String,
        lease_ttl: Duration,
        margin: Duration,
    ) -> Leases {
        Leases {
            store,
            replica,
            incarnation,
            trust_for: lease_ttl.saturating_sub(margin),
        }
    }

    fn value(&self, token: Option<u64>) -> bytes::Bytes {
        let value = LeaseValue {
            replica: self.replica.clone(),
            incarnation: self.incarnation.clone(),
            token,
            at_millis: now_millis(),
        };
        serde_json::to_vec(&value)
            .expect("a lease value serializes")
            .into()
    }

    /// Takes shard `shard` if nobody holds it: [`ClusterError::Conflict`] if somebody does,
    /// [`ClusterError::Unavailable`] if the engine could not say.
    pub async fn acquire(&self, shard: u32) -> Result<Lease, ClusterError> {
        let key = lease_key(shard);
        let sent = Instant::now();
        match self.store.create(&key, self.value(None)).await {
            Ok(revision) => Ok(Lease {
                shard,
                token: revision,
                revision,
                valid_until: sent + self.trust_for,
            }),
            // async-nats answers AlreadyExists also when the create's answer was lost and it read
            // our own value back; another failure may hide a write that happened too.
            Err(e) => {
                let refused = if e.kind() == kv::CreateErrorKind::AlreadyExists {
                    ClusterError::Conflict { key }
                } else {
                    ClusterError::unavailable("acquire lease", &e)
                };
                self.adopt(shard, sent).await?.ok_or(refused)
            }
        }
    }

    /// The lease of `shard` if its key names this incarnation (a create whose answer was lost),
    /// proven by a renewal: a read alone proves nothing.
    async fn adopt(&self, shard: u32, sent: Instant) -> Result<Option<Lease>, ClusterError> {
        match self.holder(shard).await {
            Ok(Some(h)) if h.value.incarnation == self.incarnation => {
                let mut lease = Lease {
                    shard,
                    token: h.token,
                    revision: h.revision,
                    valid_until: sent,
                };
                self.renew(&mut lease).await?;
                Ok(Some(lease))
            }
            _ => Ok(None),
        }
    }

    /// Renews `lease` (a compare-and-set on its last revision). On success the lease is trusted
    /// for another `lease_ttl - margin` from now. [`ClusterError::Conflict`]: the lease is lost
    /// (it expired on the engine, or another replica took it); [`ClusterError::Unavailable`]:
    /// unknown, and the lease stays trusted only until its current end.
    pub async fn renew(&self, lease: &mut Lease) -> Result<(), ClusterError> {
        let key = lease_key(lease.shard);
        let sent = Instant::now();
        match self
            .store
            .update(&key, self.value(Some(lease.token)), lease.revision)
            .await
        {
            Ok(revision) => {
                lease.revision = revision;
                lease.valid_until = sent + self.trust_for;
                Ok(())
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                // A renewal whose answer was lost moved the revision: if the key still names
                // this incarnation's tenure, renew from its revision (the write decides).
                match self.holder(lease.shard).await {
                    Ok(Some(h))
                        if h.value.incarnation == self.incarnation
                            && h.token == lease.token
                            && h.revision != lease.revision =>
                    {
                        lease.revision = h.revision;
                        Box::pin(self.renew(lease)).await
                    }
                    _ => Err(ClusterError::Conflict { key }),
                }
            }
            Err(e) => Err(ClusterError::unavailable("renew lease", e)),
        }
    }

    /// Gives `lease` up at once, so another replica need not wait for it to expire. A lease
    /// already lost is not an error.
    pub async fn release(&self, lease: Lease) -> Result<(), ClusterError> {
        let key = lease_key(lease.shard);
        match self
            .store
            .delete_expect_revision(&key, Some(lease.revision))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(ClusterError::unavailable("release lease", e)),
        }
    }

    /// Who holds shard `shard`, as read now (a hint: a decision needs a write).
    pub async fn holder(&self, shard: u32) -> Result<Option<Holder>, ClusterError> {
        Ok(match self.slot(shard).await? {
            Slot::Held(holder) => Some(holder),
            Slot::Released | Slot::Free => None,
        })
    }

    /// The state of shard `shard`'s lease key, as read now (a hint).
    pub async fn slot(&self, shard: u32) -> Result<Slot, ClusterError> {
        let key = lease_key(shard);
        let entry = self
            .store
            .entry(&key)
            .await
            .map_err(|e| ClusterError::unavailable("read lease", e))?;
        let Some(entry) = entry else {
            return Ok(Slot::Free);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(Slot::Released);
        }
        let value: LeaseValue =
            serde_json::from_slice(&entry.value).map_err(|e| ClusterError::Corrupt {
                key: key.clone(),
                message: e.to_string(),
            })?;
        Ok(Slot::Held(Holder {
            token: value.token.unwrap_or(entry.revision),
            revision: entry.revision,
            value,
        }))
    }

    /// How this replica's `lease` reads to others.
    pub fn holder_of(&self, lease: &Lease) -> Holder {
        Holder {
            value: LeaseValue {
                replica: self.replica.clone(),
                incarnation: self.incarnation.clone(),
                token: Some(lease.token),
                at_millis: now_millis(),
            },
            token: lease.token,
            revision: lease.revision,
        }
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// This process's incarnation.
    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
