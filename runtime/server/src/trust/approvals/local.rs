//! Approval requests in the server's own redb (a single `grace serve`): synchronous, called on a
//! blocking thread by [`super::Approvals`].

use grace_ledger::Database;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Approval, ApprovalState, VoteError, storage};

/// Approvals by id: JSON [`Approval`].
const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("server/approvals");

/// The pending approvals by (expiry ms, id): what the expiry task reads, from its start up to
/// now, instead of decoding every approval ever asked for at each tick. Written in the
/// transaction that writes the approval, by the only two writers ([`store`] and
/// [`transition`]), so the two never disagree.
const PENDING: TableDefinition<(u64, &str), ()> = TableDefinition::new("server/approvals_pending");

/// Under this key of [`INDEX_VERSION`], set once [`PENDING`] covers every approval: a data
/// directory written before the index gets it built once, from a full read, on open.
const INDEX_VERSION_KEY: &str = "pending";

/// Versions of the approvals' indexes.
const INDEX_VERSION: TableDefinition<&str, u64> =
    TableDefinition::new("server/approvals_index_version");

/// Creates the tables if missing, and the pending index of a data directory written before it.
pub(super) fn open(db: &Database) -> Result<(), VoteError> {
    let tx = db.begin_write().map_err(storage)?;
    {
        let approvals = tx.open_table(APPROVALS).map_err(storage)?;
        let mut pending = tx.open_table(PENDING).map_err(storage)?;
        let mut versions = tx.open_table(INDEX_VERSION).map_err(storage)?;
        if versions.get(INDEX_VERSION_KEY).map_err(storage)?.is_none() {
            for row in approvals.iter().map_err(storage)? {
                let (_, v) = row.map_err(storage)?;
                let a: Approval = serde_json::from_slice(v.value()).map_err(storage)?;
                if a.state == ApprovalState::Pending {
                    pending
                        .insert((a.expires_at, a.id.as_str()), ())
                        .map_err(storage)?;
                }
            }
            versions.insert(INDEX_VERSION_KEY, 1).map_err(storage)?;
        }
    }
    tx.commit().map_err(storage)
}

pub(super) fn get(db: &Database, id: &str) -> Result<Option<Approval>, VoteError> {
    let tx = db.begin_read().map_err(storage)?;
    let table = tx.open_table(APPROVALS).map_err(storage)?;
    match table.get(id).map_err(storage)? {
        Some(v) => serde_json::from_slice(v.value()).map(Some).map_err(storage),
        None => Ok(None),
    }
}

/// Every approval in `state` (all with `None`).
pub(super) fn list(
    db: &Database,
    state: Option<ApprovalState>,
) -> Result<Vec<Approval>, VoteError> {
    let tx = db.begin_read().map_err(storage)?;
    let table = tx.open_table(APPROVALS).map_err(storage)?;
    let mut out = Vec::new();
    if state == Some(ApprovalState::Pending) {
        // Through the index: the pending ones cost what they are, not every approval ever
        // asked (the dashboard looks at them every second).
        let pending = tx.open_table(PENDING).map_err(storage)?;
        for row in pending.iter().map_err(storage)? {
            let (k, _) = row.map_err(storage)?;
            let (_, id) = k.value();
            if let Some(v) = table.get(id).map_err(storage)? {
                let a: Approval = serde_json::from_slice(v.value()).map_err(storage)?;
                if a.state == ApprovalState::Pending {
                    out.push(a);
                }
            }
        }
        return Ok(out);
    }
    for row in table.iter().map_err(storage)? {
        let (_, v) = row.map_err(storage)?;
        let a: Approval = serde_json::from_slice(v.value()).map_err(storage)?;
        if state.is_none_or(|s| s == a.state) {
            out.push(a);
        }
    }
    Ok(out)
}

/// The ids of the pending approvals that expire at or before `now`, through the index.
pub(super) fn due(db: &Database, now: u64) -> Result<Vec<String>, VoteError> {
    let tx = db.begin_read().map_err(storage)?;
    let pending = tx.open_table(PENDING).map_err(storage)?;
    let range = match now.checked_add(1) {
        Some(after) => pending.range(..(after, "")),
        None => pending.range::<(u64, &str)>(..),
    }
    .map_err(storage)?;
    range
        .map(|row| row.map(|(k, _)| k.value().1.to_owned()))
        .collect::<Result<_, _>>()
        .map_err(storage)
}

/// Stores `approval` (creates or replaces).
pub(super) fn store(db: &Database, approval: &Approval) -> Result<(), VoteError> {
    let bytes = serde_json::to_vec(approval).map_err(storage)?;
    let tx = db.begin_write().map_err(storage)?;
    {
        let mut table = tx.open_table(APPROVALS).map_err(storage)?;
        let before: Option<Approval> = table
            .insert(approval.id.as_str(), bytes.as_slice())
            .map_err(storage)?
            .map(|v| serde_json::from_slice(v.value()))
            .transpose()
            .map_err(storage)?;
        index_pending(&tx, before.as_ref(), approval)?;
    }
    tx.commit().map_err(storage)
}

/// Applies `change` to approval `id` in one write transaction that reads it first; `change`
/// returns `None` to leave it as it is. Returns the approval when it was changed.
pub(super) fn transition(
    db: &Database,
    id: &str,
    change: impl FnOnce(&mut Approval) -> Option<()>,
) -> Result<Option<Approval>, VoteError> {
    let tx = db.begin_write().map_err(storage)?;
    let changed = {
        let mut table = tx.open_table(APPROVALS).map_err(storage)?;
        let mut approval: Approval = match table.get(id).map_err(storage)? {
            Some(v) => serde_json::from_slice(v.value()).map_err(storage)?,
            None => return Ok(None),
        };
        let before = approval.clone();
        if change(&mut approval).is_none() {
            return Ok(None);
        }
        let bytes = serde_json::to_vec(&approval).map_err(storage)?;
        table.insert(id, bytes.as_slice()).map_err(storage)?;
        index_pending(&tx, Some(&before), &approval)?;
        approval
    };
    tx.commit().map_err(storage)?;
    Ok(Some(changed))
}

/// Moves `after`'s entry in [`PENDING`] from where `before` (the approval as stored until this
/// transaction) had it, in the transaction that stores `after`.
fn index_pending(
    tx: &redb::WriteTransaction,
    before: Option<&Approval>,
    after: &Approval,
) -> Result<(), VoteError> {
    let mut pending = tx.open_table(PENDING).map_err(storage)?;
    if let Some(b) = before.filter(|b| b.state == ApprovalState::Pending) {
        pending
            .remove((b.expires_at, b.id.as_str()))
            .map_err(storage)?;
    }
    if after.state == ApprovalState::Pending {
        pending
            .insert((after.expires_at, after.id.as_str()), ())
            .map_err(storage)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::super::tests::pending;
    use super::super::{Approvals, Store};
    use super::*;

    #[tokio::test]
    async fn approvals_stored_before_the_pending_index_are_indexed_once_on_open() {
        let db = Arc::new(Database::new(
            redb::Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .unwrap(),
            grace_ledger::Recovery::Full,
        ));
        // What a server before the index left: approvals, and no index.
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(APPROVALS).unwrap();
            for a in [pending("old-due", 1, 100), pending("old-later", 1, 10_000)] {
                table
                    .insert(a.id.as_str(), serde_json::to_vec(&a).unwrap().as_slice())
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        let s = Approvals::open(db).unwrap();
        assert!(matches!(s.store, Store::Local(_)));
        let expired = s.expire_due(100).await.unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, "old-due");
    }
}
