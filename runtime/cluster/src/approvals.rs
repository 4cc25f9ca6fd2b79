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

use futures_util::Stream;

use crate::error::ClusterError;
pub use crate::keyed::Stored as StoredApproval;
use crate::keyed::{Keyed, Kind};
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

const KIND: Kind = Kind {
    prefix: "approval",
    what: "approval",
    valid: valid_approval_id,
    rule: "an approval id is `ap-` and 16 lowercase hex digits",
};

/// The approval requests of the cluster.
#[derive(Clone)]
pub struct ApprovalBoard {
    requests: Keyed,
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
        Ok(ApprovalBoard {
            requests: Keyed::open(engine, settings, bucket(settings), KIND).await?,
        })
    }

    /// Stores a new request; `None` when one of that id is there already (asked by an earlier
    /// attempt of the same run, on this replica or another).
    pub async fn create(&self, id: &str, value: Vec<u8>) -> Result<Option<u64>, ClusterError> {
        self.requests.create(id, value).await
    }

    /// Writes request `id` if it is still at `revision`: [`ClusterError::Conflict`] when it was
    /// written since (a vote on another replica). Returns the new revision.
    pub async fn update(
        &self,
        id: &str,
        value: Vec<u8>,
        revision: u64,
    ) -> Result<u64, ClusterError> {
        self.requests.update(id, value, revision).await
    }

    /// Request `id`, if the engine has it.
    pub async fn get(&self, id: &str) -> Result<Option<StoredApproval>, ClusterError> {
        self.requests.get(id).await
    }

    /// Every request the engine keeps (at most [`MAX_LISTED`]).
    pub async fn list(&self) -> Result<Vec<StoredApproval>, ClusterError> {
        self.requests.list(MAX_LISTED).await
    }

    /// Every request written from now on, as it was written (votes, expiries, withdrawals),
    /// from whichever replica. The stream ends when the engine connection does.
    pub async fn changes(
        &self,
    ) -> Result<impl Stream<Item = Result<StoredApproval, ClusterError>> + use<>, ClusterError>
    {
        self.requests.changes().await
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
        }
    }
}
