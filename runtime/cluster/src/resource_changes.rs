//! When each resource was last changed, by any replica, for the trust core's
//! `max_changes_per_hour`: a shard that moves takes its resources' recent changes with it.
//!
//! Bucket `grace_resource_changes`, key `resource.<sha256 of the resource's key>`: the times of
//! the resource's changes in the last hour, as the server describes them (opaque here), written
//! by compare-and-set on the revision the writer read. A value lives two hours after its last
//! write: the longest window a guardrail counts over, and margin.

use std::time::Duration;

use crate::error::ClusterError;
use crate::keyed::{Keyed, Kind, Records};
use crate::schema::BucketSpec;
use crate::settings::ClusterSettings;

/// The largest value.
pub const MAX_VALUE_BYTES: i32 = 256 * 1024;

/// The bucket.
pub fn bucket() -> BucketSpec {
    BucketSpec {
        name: "grace_resource_changes",
        history: 1,
        max_age: Duration::from_secs(2 * 3600),
        max_value_bytes: MAX_VALUE_BYTES,
    }
}

/// The recent changes of every resource, by the SHA-256 of the resource's key.
pub async fn open(
    engine: &crate::Engine,
    settings: &ClusterSettings,
) -> Result<Records, ClusterError> {
    let kind = Kind {
        prefix: "resource",
        what: "resource's changes",
        valid: crate::credentials::valid_key,
        rule: "a resource's key in the engine is 64 lowercase hex digits",
    };
    Ok(Records(
        Keyed::open(engine, settings, bucket(), kind).await?,
    ))
}
