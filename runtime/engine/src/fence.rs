//! The fence a host may put before every change: immediately before a provider is called to
//! make a change (the intent already durable), the host proves it may still act for the run —
//! in a cluster, that this replica still holds the lease of the run's shard. A refused check
//! stops the run without calling the provider, and the change is recorded as not made.
//!
//! A proof's permit is asked once more right before the call (after any read-back of an earlier
//! attempt): a process paused between the check and the call (a debugger, `SIGSTOP`, a long
//! stall), or one that gave the shard up meanwhile, finds it void and does not act.

use serde_json::Value;

use crate::TriggerEvent;

/// What a passed check gives: what the ledger records with the change's outcome (the fencing
/// token), and a permit the pipeline asks once more right before calling the provider and holds
/// until the call returned (a host giving the shard up waits for calls holding permits).
pub struct FenceProof {
    /// Recorded as `fence` in the change's result.
    pub record: Value,
    /// Whether the proof still holds; dropped once the call returned.
    pub permit: Box<dyn FencePermit>,
}

/// A passed fence check, held while the change is made.
pub trait FencePermit: Send + Sync {
    /// Whether the host may still make the change now (its lease trusted, the same tenure).
    fn holds(&self) -> bool;
}

/// A host's check before each change.
#[async_trait::async_trait]
pub trait Fence: Send + Sync {
    /// Proves the host may make a change for run `run_id` (started by `event`) now; `Err` with
    /// the reason otherwise.
    async fn check(&self, run_id: &str, event: Option<&TriggerEvent>)
    -> Result<FenceProof, String>;
}

/// Test hook, compiled only in debug builds: with `GRACE_TEST_PAUSE_AT=before-change`, the
/// process stops itself (`SIGSTOP`) once, right after the first fence check passed and before
/// the change, so that a test can let another replica take the shard over and then resume it
/// (`SIGCONT`).
pub(crate) fn pause_point(name: &str) {
    #[cfg(debug_assertions)]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static PAUSED: AtomicBool = AtomicBool::new(false);
        if std::env::var("GRACE_TEST_PAUSE_AT").is_ok_and(|at| at == name)
            && !PAUSED.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(point = name, "test hook: stopping this process (SIGSTOP)");
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &std::process::id().to_string()])
                .status();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
