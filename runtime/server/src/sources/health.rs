//! The health of every event source, as `GET /v1/sources` and `/metrics` show it.
//!
//! A polled source (a built-in PromQL or CloudWatch source, a Wasm collector) is `pending` until
//! its first poll, `up` after a poll that answered, `down` after `unhealthy_after` failures in a
//! row, and `stale` when it answered only with data too old to publish. A pushed source
//! (Alertmanager, metrics push) is `receiving` once something arrived and `idle` before.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use grace_engine::event::system_now_millis as now_millis;
use serde::Serialize;

/// How a source is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not polled yet.
    Pending,
    /// Its last poll answered with fresh data (or no data).
    Up,
    /// Its last poll answered, with nothing fresh enough to publish.
    Stale,
    /// Its last polls failed.
    Down,
    /// A pushed source that has received nothing yet.
    Idle,
    /// A pushed source that has received something.
    Receiving,
}

impl Status {
    /// Whether the source counts as healthy (`grace_source_up` is 1).
    pub fn is_up(self) -> bool {
        matches!(self, Status::Up | Status::Receiving | Status::Idle)
    }
}

/// What `GET /v1/sources` shows of one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceHealth {
    /// The source's name, unique among sources.
    pub name: String,
    /// `promql`, `cloudwatch`, `collector`, `alertmanager`, `metrics-push` or `graph-discovery`.
    pub kind: &'static str,
    /// What it reads: a query, a metric, a URL.
    pub target: String,
    /// How it is doing.
    pub status: Status,
    /// Polls (or pushes) that succeeded.
    pub successes: u64,
    /// Polls (or pushes) that failed.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Events published.
    pub events: u64,
    /// Samples dropped as too old or already published.
    pub stale_samples: u64,
    /// When it last succeeded (ms since the epoch, wall clock).
    pub last_success_at: Option<u64>,
    /// When it last failed.
    pub last_failure_at: Option<u64>,
    /// Why it last failed.
    pub last_error: Option<String>,
    /// When it is polled next (polled sources only).
    pub next_poll_at: Option<u64>,
}

/// One source's health, updated by its poller or its API handler.
#[derive(Debug)]
pub struct SourceState {
    health: Mutex<SourceHealth>,
    unhealthy_after: u32,
}

impl SourceState {
    fn new(
        name: &str,
        kind: &'static str,
        target: String,
        polled: bool,
        unhealthy_after: u32,
    ) -> Self {
        SourceState {
            health: Mutex::new(SourceHealth {
                name: name.to_owned(),
                kind,
                target,
                status: if polled {
                    Status::Pending
                } else {
                    Status::Idle
                },
                successes: 0,
                failures: 0,
                consecutive_failures: 0,
                events: 0,
                stale_samples: 0,
                last_success_at: None,
                last_failure_at: None,
                last_error: None,
                next_poll_at: None,
            }),
            unhealthy_after: unhealthy_after.max(1),
        }
    }

    fn update(&self, f: impl FnOnce(&mut SourceHealth)) {
        f(&mut crate::sync::lock(&self.health));
    }

    /// A copy of its health now.
    pub fn snapshot(&self) -> SourceHealth {
        crate::sync::lock(&self.health).clone()
    }

    /// A poll (or push) answered: `events` published, `stale` samples dropped.
    pub fn succeeded(&self, events: u64, stale: u64) {
        self.update(|h| {
            h.successes += 1;
            h.consecutive_failures = 0;
            h.events += events;
            h.stale_samples += stale;
            h.last_success_at = Some(now_millis());
            h.status = match h.status {
                Status::Idle | Status::Receiving => Status::Receiving,
                // Everything it had was too old: it answers, but nothing it says can be acted on.
                _ if events == 0 && stale > 0 => Status::Stale,
                _ => Status::Up,
            };
        });
    }

    /// A poll failed. The source is `down` once `unhealthy_after` polls failed in a row; before
    /// that it keeps its status, so one lost packet does not page anyone.
    pub fn failed(&self, error: &str) {
        let unhealthy_after = self.unhealthy_after;
        self.update(|h| {
            h.failures += 1;
            h.consecutive_failures = h.consecutive_failures.saturating_add(1);
            h.last_failure_at = Some(now_millis());
            h.last_error = Some(error.to_owned());
            if h.consecutive_failures >= unhealthy_after {
                h.status = Status::Down;
            }
        });
    }

    /// A pushed body was refused (malformed): counted, but the source stays `receiving`, since
    /// the sender, not GRACE's view of it, is at fault.
    pub fn refused(&self, error: &str) {
        self.update(|h| {
            h.failures += 1;
            h.last_failure_at = Some(now_millis());
            h.last_error = Some(error.to_owned());
        });
    }

    /// When the next poll happens.
    pub fn next_poll(&self, at: u64) {
        self.update(|h| h.next_poll_at = Some(at));
    }
}

/// Every source the server knows, by name.
#[derive(Debug, Default)]
pub struct Sources {
    by_name: RwLock<BTreeMap<String, Arc<SourceState>>>,
}

impl Sources {
    /// Registers a polled source (replacing one of the same name) and returns its state.
    pub fn polled(
        &self,
        name: &str,
        kind: &'static str,
        target: String,
        unhealthy_after: u32,
    ) -> Arc<SourceState> {
        self.insert(
            name,
            SourceState::new(name, kind, target, true, unhealthy_after),
        )
    }

    /// Registers a pushed source.
    pub fn pushed(&self, name: &str, kind: &'static str, target: String) -> Arc<SourceState> {
        self.insert(name, SourceState::new(name, kind, target, false, 1))
    }

    fn insert(&self, name: &str, state: SourceState) -> Arc<SourceState> {
        let state = Arc::new(state);
        crate::sync::write(&self.by_name).insert(name.to_owned(), state.clone());
        state
    }

    /// Forgets a source (a collector that was disabled or deleted).
    pub fn remove(&self, name: &str) {
        crate::sync::write(&self.by_name).remove(name);
    }

    /// One source's state.
    pub fn get(&self, name: &str) -> Option<Arc<SourceState>> {
        crate::sync::read(&self.by_name).get(name).cloned()
    }

    /// Every source's health, by name.
    pub fn snapshot(&self) -> Vec<SourceHealth> {
        crate::sync::read(&self.by_name)
            .values()
            .map(|s| s.snapshot())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polled_source_goes_down_only_after_enough_failures_in_a_row() {
        let sources = Sources::default();
        let s = sources.polled("p", "promql", "up".into(), 2);
        assert_eq!(s.snapshot().status, Status::Pending);
        s.succeeded(3, 0);
        assert_eq!(s.snapshot().status, Status::Up);
        s.failed("connection refused");
        assert_eq!(
            s.snapshot().status,
            Status::Up,
            "one failure is not an outage"
        );
        s.failed("connection refused");
        let h = s.snapshot();
        assert_eq!(h.status, Status::Down);
        assert_eq!(h.consecutive_failures, 2);
        assert_eq!(h.last_error.as_deref(), Some("connection refused"));
        s.succeeded(1, 0);
        let h = s.snapshot();
        assert_eq!(
            (h.status, h.consecutive_failures, h.events),
            (Status::Up, 0, 4)
        );
    }

    #[test]
    fn a_source_answering_only_old_data_is_stale_not_up() {
        let s = Sources::default().polled("p", "promql", "up".into(), 1);
        s.succeeded(0, 2);
        assert_eq!(s.snapshot().status, Status::Stale);
        assert!(!Status::Stale.is_up());
        s.succeeded(0, 0);
        assert_eq!(
            s.snapshot().status,
            Status::Up,
            "no data at all is not stale data"
        );
    }

    #[test]
    fn a_pushed_source_is_idle_then_receiving_and_refusals_do_not_take_it_down() {
        let s = Sources::default().pushed(
            "alertmanager",
            "alertmanager",
            "/v1/sources/alertmanager".into(),
        );
        assert_eq!(s.snapshot().status, Status::Idle);
        s.refused("`alerts`: is required but missing");
        assert_eq!(s.snapshot().status, Status::Idle);
        s.succeeded(2, 0);
        assert_eq!(s.snapshot().status, Status::Receiving);
        s.refused("bad");
        assert_eq!(s.snapshot().failures, 2);
        assert_eq!(s.snapshot().status, Status::Receiving);
    }
}
