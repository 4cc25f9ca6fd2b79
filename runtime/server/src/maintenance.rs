//! Housekeeping tasks: events pruned past their retention, ledger checkpoints signed.

use std::sync::Arc;
use std::time::Duration;

use grace_engine::event::system_now_millis;
use grace_ledger::{Ledger, SigningKey};

use crate::store::Store;
use crate::supervisor::TaskError;

/// Deletes events past `retention` (once they are matched), hourly, in bounded chunks.
pub async fn retention(store: Store, retention: Duration) -> Result<(), TaskError> {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    every.tick().await; // not at startup: let the backlog be matched first
    loop {
        every.tick().await;
        let cutoff = system_now_millis()
            .saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
        let mut total = 0;
        loop {
            let store = store.clone();
            match tokio::task::spawn_blocking(move || store.prune_events(cutoff, 10_000)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => total += n,
                Ok(Err(e)) => {
                    tracing::error!("cannot prune events: {e}");
                    break;
                }
                Err(e) => {
                    tracing::error!("pruning task failed: {e}");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(events = total, "pruned events past their retention");
        }
    }
}

/// Signs a checkpoint of the ledger every `every`, so that auditors holding an old checkpoint
/// can prove the history was only ever appended to. An idle ledger is signed again too (same
/// size and root, a new time; stored under the same size, so nothing accumulates): a fresh
/// signature is how a client (`grace ledger verify --max-age`) tells a live server from one
/// replaying an old checkpoint to hide what came after it.
pub async fn checkpoints(
    ledger: Arc<Ledger>,
    key: SigningKey,
    every: Duration,
) -> Result<(), TaskError> {
    let mut every = tokio::time::interval(every);
    loop {
        every.tick().await;
        let ledger = ledger.clone();
        let key = key.clone();
        let signed = tokio::task::spawn_blocking(move || {
            if ledger.tree_head()?.size == 0 {
                return Ok(None);
            }
            ledger.sign_checkpoint(&key).map(Some)
        })
        .await;
        match signed {
            Ok(Ok(Some(c))) => {
                tracing::debug!(size = c.unverified().tree_size, "ledger checkpoint signed")
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!("cannot sign a ledger checkpoint: {e}"),
            Err(e) => tracing::error!("checkpoint task failed: {e}"),
        }
    }
}
