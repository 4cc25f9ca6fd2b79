//! The trust core's redb tables, declared together. They live beside other tables (the ledger's,
//! the runs') in whatever database the host hands over, so every name starts with `trust/`.

use redb::TableDefinition;

/// Every version of every policy set, keyed `(name, version)`, valued as the JSON of a
/// [`PolicySetVersion`](crate::PolicySetVersion). Removal writes a version too, so the history
/// of a set is complete.
pub const POLICY_VERSIONS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("trust/policy_versions");

/// The current version of each live policy set, by name; a removed set has no row.
pub const POLICY_HEADS: TableDefinition<&str, u64> = TableDefinition::new("trust/policy_heads");

/// Counters, under the `*_KEY` constants below.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("trust/meta");

/// The key of the store's revision in [`META`]: incremented by every change of any policy set.
pub const REVISION_KEY: &str = "policy_revision";

/// Executed changes, keyed `(resource kind, resource id, at_millis)`, valued by how many
/// changes were recorded at that millisecond. Rows older than an hour before the newest row
/// of their resource are pruned as new changes are recorded.
pub const CHANGES: TableDefinition<(&str, &str, u64), u32> = TableDefinition::new("trust/changes");
