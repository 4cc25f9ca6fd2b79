//! Approval requests in the engine, so that any replica shows them and takes votes on them, and
//! a run taken over finds the request its first replica made.
//!
//! Bucket `grace_approvals`, key `approval.<id>`: one value per request, the request as the
//! server describes it (opaque here). A request is created once ([`ApprovalBoard::create`]: a
//! second creation of the same id finds the first), and every later write (a vote, an expiry,
//! a withdrawal) is a compare-and-set on the revision its writer read
//! ([`ApprovalBoard::update`]), so two votes given at once on two replicas never overwrite
//! each other: the second learns the request changed and is counted against what the first
//! left, or refused.
//!
//! Ids are `ap-` and 16 lowercase hex digits (the server derives them from the run, the
//! change and its arguments); any other id is refused before a key is built. Requests are kept
//! `event_retention` after their last write, like the runs that wait for them.

use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::{Stream, StreamExt};

use crate::error::ClusterError;
use crate::members::within;
use crate::schema::BucketSpec;
use crate::settings::ClusterSettings;

/// The largest request.
pub const MAX_APPROVAL_BYTES: i32 = 256 * 1024;

/// The most requests listed at once.
pub const MAX_LISTED: usize = 100_000;

/// The approvals' bucket.
pub fn bucket(settings: &ClusterSettings) -> BucketSpec {
    BucketSpec {
        name: "grace_approvals",
        history: 1,
        max_age: settings.event_retention,
        max_value_bytes: MAX_APPROVAL_BYTES,
    }
}

/// Whether `id` is an approval id the engine can hold: `ap-` and 16 lowercase hex digits.
pub fn valid_approval_id(id: &str) -> bool {
    id.strip_prefix("ap-").is_some_and(|hex| {
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn key(id: &str) -> Result<String, ClusterError> {
    if valid_approval_id(id) {
        Ok(format!("approval.{id}"))
    } else {
        Err(ClusterError::Corrupt {
            key: format!("approval {:?}", id.chars().take(80).collect::<String>()),
            message: "an approval id is `ap-` and 16 lowercase hex digits".into(),
        })
    }
}

/// A request as the engine holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApproval {
    /// The request's id.
    pub id: String,
    /// What the server wrote.
    pub value: Vec<u8>,
    /// The revision to compare against in the next write.
    pub revision: u64,
}

/// The approval requests of the cluster.
#[derive(Clone)]
pub struct ApprovalBoard {
    bucket: kv::Store,
    timeout: Duration,
}

impl std::fmt::Debug for ApprovalBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalBoard").finish_non_exhaustive()
    }
}

impl ApprovalBoard {
    /// Creates the bucket, or checks the one there.
    pub async fn open(
        engine: &crate::Engine,
        settings: &ClusterSettings,
    ) -> Result<Self, ClusterError> {
        let bucket = bucket(settings)
            .ensure(engine, settings.engine_replicas)
            .await?;
        Ok(ApprovalBoard {
            bucket,
            timeout: settings.request_timeout,
        })
    }

    /// Stores a new request; `None` when one of that id is there already (asked by an earlier
    /// attempt of the same run, on this replica or another).
    pub async fn create(&self, id: &str, value: Vec<u8>) -> Result<Option<u64>, ClusterError> {
        let key = key(id)?;
        within(self.timeout, "create approval", async {
            match self.bucket.create(&key, value.into()).await {
                Ok(revision) => Ok(Some(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(ClusterError::unavailable("create approval", e)),
            }
        })
        .await
    }

    /// Writes request `id` if it is still at `revision`: [`ClusterError::Conflict`] when it was
    /// written since (a vote on another replica). Returns the new revision.
    pub async fn update(
        &self,
        id: &str,
        value: Vec<u8>,
        revision: u64,
    ) -> Result<u64, ClusterError> {
        let key = key(id)?;
        within(self.timeout, "write approval", async {
            match self.bucket.update(&key, value.into(), revision).await {
                Ok(revision) => Ok(revision),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    Err(ClusterError::Conflict { key: key.clone() })
                }
                Err(e) => Err(ClusterError::unavailable("write approval", e)),
            }
        })
        .await
    }

    /// Request `id`, if the engine has it.
    pub async fn get(&self, id: &str) -> Result<Option<StoredApproval>, ClusterError> {
        let key = key(id)?;
        let entry = within(self.timeout, "read approval", async {
            self.bucket
                .entry(&key)
                .await
                .map_err(|e| ClusterError::unavailable("read approval", e))
        })
        .await?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| StoredApproval {
                id: id.to_owned(),
                value: e.value.to_vec(),
                revision: e.revision,
            }))
    }

    /// Every request the engine keeps (at most [`MAX_LISTED`]). The keys come from the
    /// stream's own information, as for runs (see [`crate::runs::RunBoard::list`]).
    pub async fn list(&self) -> Result<Vec<StoredApproval>, ClusterError> {
        let prefix = format!("{}approval.", self.bucket.prefix);
        let ids = within(self.timeout, "list approvals", async {
            let mut subjects = self
                .bucket
                .stream
                .info_with_subjects(format!("{prefix}*"))
                .await
                .map_err(|e| ClusterError::unavailable("list approvals", e))?;
            let mut ids = Vec::new();
            while let Some(subject) = subjects.next().await {
                let (subject, _) =
                    subject.map_err(|e| ClusterError::unavailable("list approvals", e))?;
                if ids.len() >= MAX_LISTED {
                    tracing::warn!("more approval requests in the engine than one listing reads");
                    break;
                }
                if let Some(id) = subject.strip_prefix(prefix.as_str())
                    && valid_approval_id(id)
                {
                    ids.push(id.to_owned());
                }
            }
            Ok(ids)
        })
        .await?;
        // Read a few at once: a listing of many requests is not one round trip per request in
        // a row.
        let reads = futures_util::stream::iter(ids)
            .map(|id| async move { self.get(&id).await })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        let mut out = Vec::with_capacity(reads.len());
        for read in reads {
            out.extend(read?);
        }
        Ok(out)
    }

    /// Every request written from now on, as it was written (votes, expiries, withdrawals),
    /// from whichever replica. The stream ends when the engine connection does.
    pub async fn changes(
        &self,
    ) -> Result<impl Stream<Item = Result<StoredApproval, ClusterError>> + use<>, ClusterError>
    {
        let watch = within(self.timeout, "watch approvals", async {
            self.bucket
                .watch_all()
                .await
                .map_err(|e| ClusterError::unavailable("watch approvals", e))
        })
        .await?;
        Ok(watch.filter_map(|entry| async move {
            match entry {
                Err(e) => Some(Err(ClusterError::unavailable("watch approvals", e))),
                Ok(e) if e.operation != kv::Operation::Put => None,
                Ok(e) => {
                    let id = e.key.strip_prefix("approval.")?;
                    valid_approval_id(id).then(|| {
                        Ok(StoredApproval {
                            id: id.to_owned(),
                            value: e.value.to_vec(),
                            revision: e.revision,
                        })
                    })
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_ids_are_checked_before_a_key_is_built() {
        assert!(valid_approval_id("ap-0123456789abcdef"));
        for bad in [
            "",
            "ap-",
            "ap-0123456789abcde",
            "ap-0123456789abcdef0",
            "ap-0123456789ABCDEF",
            "ap-0123456789abcde>",
            "ap-01234567.9abcdef",
            "ap-0123456789abcd*f",
            "xx-0123456789abcdef",
            "0123456789abcdef",
        ] {
            assert!(!valid_approval_id(bad), "{bad:?}");
            assert!(key(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            key("ap-0123456789abcdef").unwrap(),
            "approval.ap-0123456789abcdef"
        );
    }
}
