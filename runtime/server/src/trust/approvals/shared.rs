//! Approval requests in the engine (clustered `grace serve`): every replica reads and writes
//! the same requests, each write a compare-and-set on the revision its writer read (see
//! [`grace_cluster::approvals`]).

use grace_cluster::ClusterError;
use grace_cluster::approvals::{ApprovalBoard, StoredApproval};

use super::{Approval, VoteError, storage};

/// How often a write that lost a race with another replica's is tried again on what the other
/// left: several replicas expiring or withdrawing the same request at once all finish.
const RETRIES: usize = 8;

/// An approval id the engine could not hold is no approval there: answered as missing, never
/// turned into a key.
fn holdable(id: &str) -> bool {
    grace_cluster::approvals::valid_approval_id(id)
}

pub(super) fn decode(stored: &StoredApproval) -> Result<Approval, VoteError> {
    let approval: Approval = serde_json::from_slice(&stored.value).map_err(|e| {
        VoteError::Storage(format!(
            "approval `{}` in the engine cannot be read: {e}",
            stored.id
        ))
    })?;
    if approval.id != stored.id {
        return Err(VoteError::Storage(format!(
            "approval `{}` in the engine names another id",
            stored.id
        )));
    }
    Ok(approval)
}

/// Approval `id` with the revision to write against.
pub(super) async fn get(
    board: &ApprovalBoard,
    id: &str,
) -> Result<Option<(Approval, u64)>, VoteError> {
    if !holdable(id) {
        return Ok(None);
    }
    match board.get(id).await.map_err(storage)? {
        Some(stored) => Ok(Some((decode(&stored)?, stored.revision))),
        None => Ok(None),
    }
}

/// Every approval the engine keeps; one that cannot be read is left out with a warning (it
/// cannot be voted on either: every vote decodes it first).
pub(super) async fn list(board: &ApprovalBoard) -> Result<Vec<Approval>, VoteError> {
    Ok(board
        .list()
        .await
        .map_err(storage)?
        .iter()
        .filter_map(|stored| decode(stored).inspect_err(|e| tracing::warn!("{e}")).ok())
        .collect())
}

/// Stores `approval` unless a request of its id is there; answers the one stored.
pub(super) async fn create(
    board: &ApprovalBoard,
    approval: &Approval,
) -> Result<Approval, VoteError> {
    let bytes = serde_json::to_vec(approval).map_err(storage)?;
    for _ in 0..RETRIES {
        if board
            .create(&approval.id, bytes.clone())
            .await
            .map_err(storage)?
            .is_some()
        {
            return Ok(approval.clone());
        }
        // Asked before, by an earlier attempt of the run here or on another replica: the same
        // change of the same run, or it is not this request.
        if let Some((existing, _)) = get(board, &approval.id).await? {
            if (&existing.run_id, &existing.idempotency_key, &existing.args)
                != (&approval.run_id, &approval.idempotency_key, &approval.args)
            {
                return Err(VoteError::Storage(format!(
                    "approval `{}` in the engine is for another change",
                    approval.id
                )));
            }
            return Ok(existing);
        }
        // Created and then taken off by the engine's age limit between the two requests: ask
        // again.
    }
    Err(VoteError::Storage(format!(
        "approval `{}` could not be created",
        approval.id
    )))
}

/// Writes `approval`, read at `revision`: [`VoteError::Raced`] when another replica wrote it
/// since.
pub(super) async fn put(
    board: &ApprovalBoard,
    approval: &Approval,
    revision: u64,
) -> Result<(), VoteError> {
    let bytes = serde_json::to_vec(approval).map_err(storage)?;
    match board.update(&approval.id, bytes, revision).await {
        Ok(_) => Ok(()),
        Err(ClusterError::Conflict { .. }) => Err(VoteError::Raced(approval.id.clone())),
        Err(e) => Err(storage(e)),
    }
}

/// Applies `change` to approval `id` as the engine has it now, and writes it if it is still at
/// the revision read; read again and applied again when another replica wrote first.
pub(super) async fn transition(
    board: &ApprovalBoard,
    id: &str,
    change: impl Fn(&mut Approval) -> Option<()>,
) -> Result<Option<Approval>, VoteError> {
    for _ in 0..RETRIES {
        let Some((mut approval, revision)) = get(board, id).await? else {
            return Ok(None);
        };
        if change(&mut approval).is_none() {
            return Ok(None);
        }
        match put(board, &approval, revision).await {
            Ok(()) => return Ok(Some(approval)),
            Err(VoteError::Raced(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(VoteError::Raced(id.to_owned()))
}
