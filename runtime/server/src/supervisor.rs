//! The supervisor of the server's background tasks (event writer, matcher, runner, source
//! pollers and collectors, retention, approval expiry, checkpoint signer).
//!
//! A task that dies, by panicking or by returning an error, is logged, marked down and started
//! again after a backoff (doubling from [`INITIAL_BACKOFF`] up to [`MAX_BACKOFF`], reset once a
//! start has lived [`STABLE_AFTER`]); while any task is down `/healthz` answers `503` and names
//! it. No input is meant to kill a task (every boundary validates), so a restart is a host bug
//! made visible, never silent: before the supervisor, a panic in the event writer stopped
//! ingestion for good while `/healthz` said ok.
//!
//! Tokio tasks run each start as a task of their own (a panic ends it, not the supervisor);
//! aborting the supervising task aborts the start it is running. Threads (the event writer) use
//! [`Supervisor::run_thread`], which catches the panic on the thread itself.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// The first delay before a restart.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// The longest delay before a restart.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A start that lived this long resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Why a start of a task ended with an error (it is restarted).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TaskError(Box<dyn std::error::Error + Send + Sync>);

impl TaskError {
    /// A task's error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> TaskError {
        TaskError(Box::new(e))
    }
}

/// A task that is down, as `/healthz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Down {
    /// The task's name, e.g. `matcher` or `source:latency`.
    pub task: String,
    /// Why it died.
    pub reason: String,
    /// When it died (wall clock, milliseconds since the epoch).
    pub since: u64,
    /// How many times it has been restarted since the server started.
    pub restarts: u64,
}

#[derive(Debug, Default)]
struct TaskState {
    down: Option<(String, u64)>,
    restarts: u64,
}

/// The health of every supervised task; cheap to share.
#[derive(Debug, Default)]
pub struct Supervisor {
    tasks: Mutex<BTreeMap<String, TaskState>>,
}

impl Supervisor {
    /// The tasks down now, by name.
    pub fn down(&self) -> Vec<Down> {
        self.lock()
            .iter()
            .filter_map(|(task, s)| {
                s.down.as_ref().map(|(reason, since)| Down {
                    task: task.clone(),
                    reason: reason.clone(),
                    since: *since,
                    restarts: s.restarts,
                })
            })
            .collect()
    }

    /// Stops tracking a task that was stopped on purpose (a collector disabled).
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TaskState>> {
        crate::sync::lock(&self.tasks)
    }

    fn mark_up(&self, name: &str) {
        self.lock().entry(name.to_owned()).or_default().down = None;
    }

    fn mark_down(&self, name: &str, reason: String) {
        let mut tasks = self.lock();
        let state = tasks.entry(name.to_owned()).or_default();
        state.down = Some((reason, grace_engine::event::system_now_millis()));
        state.restarts += 1;
    }

    /// Runs `make()` as a tokio task, again and again: a start that panics or returns an error
    /// is logged and restarted with backoff; one that returns `Ok` ends the supervision (the
    /// server is shutting down). Aborting the returned task aborts the running start.
    pub fn spawn<F, Fut>(self: &Arc<Self>, name: &str, make: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        let supervisor = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let mut backoff = INITIAL_BACKOFF;
            let mut starts = 0u64;
            loop {
                supervisor.mark_up(&name);
                let started = tokio::time::Instant::now();
                let fault = fault::injected(&name, starts);
                starts += 1;
                let mut start = AbortOnDrop(tokio::spawn({
                    let run = make();
                    async move {
                        if let Some(reason) = fault {
                            panic!("{reason}");
                        }
                        run.await
                    }
                }));
                let reason = match (&mut start.0).await {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e.to_string(),
                    Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
                    Err(e) => e.to_string(),
                };
                if started.elapsed() >= STABLE_AFTER {
                    backoff = INITIAL_BACKOFF;
                }
                tracing::error!(task = %name, restart_in = ?backoff, "background task died: {reason}");
                supervisor.mark_down(&name, reason);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    /// Runs `body` on the current thread until it returns, restarting it with backoff each time
    /// it panics. For the event writer, whose state (the channel) outlives a start.
    pub fn run_thread(&self, name: &str, mut body: impl FnMut()) {
        let mut backoff = INITIAL_BACKOFF;
        let mut starts = 0u64;
        loop {
            self.mark_up(name);
            let started = std::time::Instant::now();
            let fault = fault::injected(name, starts);
            starts += 1;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Some(reason) = fault {
                    panic!("{reason}");
                }
                body()
            }));
            let Err(panic) = outcome else { return };
            if started.elapsed() >= STABLE_AFTER {
                backoff = INITIAL_BACKOFF;
            }
            let reason = format!("panicked: {}", panic_text(panic));
            tracing::error!(task = %name, restart_in = ?backoff, "background thread died: {reason}");
            self.mark_down(name, reason);
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Aborts the start when the supervising task is aborted (a poller replaced or removed).
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), TaskError>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    };
    text.chars().take(512).collect()
}

/// Fault injection for tests, in debug builds only: `GRACE_TEST_FAULT=<task>:<n>` makes the
/// first `n` starts of `<task>` panic, so that a test can watch a task die, `/healthz` turn
/// unhealthy and the restart bring it back. Release builds ignore the variable.
mod fault {
    pub(super) fn injected(task: &str, start: u64) -> Option<String> {
        if !cfg!(debug_assertions) {
            return None;
        }
        let spec = std::env::var("GRACE_TEST_FAULT").ok()?;
        let (name, count) = spec.rsplit_once(':')?;
        let count: u64 = count.parse().ok()?;
        (name == task && start < count)
            .then(|| format!("fault injected by GRACE_TEST_FAULT (start {})", start + 1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_task_that_dies_is_down_then_restarted() {
        let supervisor = Arc::new(Supervisor::default());
        let starts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let task = supervisor.spawn("flaky", {
            let starts = starts.clone();
            move || {
                let n = starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut released = released.clone();
                async move {
                    if n == 0 {
                        panic!("bad record");
                    }
                    let _ = released.wait_for(|r| *r).await;
                    Ok(())
                }
            }
        });
        while supervisor.down().is_empty() {
            tokio::task::yield_now().await;
        }
        let down = supervisor.down();
        assert_eq!(down[0].task, "flaky");
        assert!(down[0].reason.contains("bad record"), "{down:?}");
        while starts.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(supervisor.down().is_empty(), "up again after the restart");
        release.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_task_returning_an_error_is_restarted_too() {
        let supervisor = Arc::new(Supervisor::default());
        let starts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let task = supervisor.spawn("erring", {
            let starts = starts.clone();
            move || {
                let n = starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(TaskError::new(std::io::Error::other(format!(
                            "failure {n}"
                        ))))
                    } else {
                        Ok(())
                    }
                }
            }
        });
        task.await.unwrap();
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert!(supervisor.down().is_empty());
    }

    #[test]
    fn a_thread_that_panics_is_restarted_with_its_state_kept() {
        let supervisor = Supervisor::default();
        let mut calls = 0;
        supervisor.run_thread("writer", || {
            calls += 1;
            if calls == 1 {
                panic!("bad record");
            }
        });
        assert_eq!(calls, 2);
        assert!(supervisor.down().is_empty());
        assert_eq!(supervisor.lock()["writer"].restarts, 1);
    }
}
