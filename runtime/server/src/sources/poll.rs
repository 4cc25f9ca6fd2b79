//! Polled sources: a source GRACE asks on a schedule (a PromQL query, a CloudWatch metric, a
//! Wasm collector), each in its own task so that a slow or dead one never delays another.
//!
//! A poll that fails is retried with exponential backoff and jitter (so that sources that failed
//! together do not retry in lockstep), never more often than `retry_initial` and never less
//! often than the schedule; every poll is bounded by `timeout`. Health goes to [`SourceState`].

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use grace_engine::TriggerEvent;
use grace_executor::ExecError;
use serde::Deserialize;

use super::SettingError;
use super::health::SourceState;
use super::supervisor::Batch;

/// What one poll produced.
#[derive(Debug, Default)]
pub struct Polled {
    /// Events to publish.
    pub events: Vec<TriggerEvent>,
    /// Samples dropped because they were too old or already published.
    pub stale: u64,
}

/// A source polled on a schedule.
#[async_trait::async_trait]
pub trait Poller: Send + Sync + 'static {
    /// Asks the source once.
    async fn poll(&self) -> Result<Polled, ExecError>;
}

/// When a source is polled, and how failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Between successful polls.
    pub every: Duration,
    /// Longest a poll may take.
    pub timeout: Duration,
    /// The first retry's delay; it doubles with every failure, up to `every`.
    pub retry_initial: Duration,
    /// Failures in a row before the source is marked down.
    pub unhealthy_after: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            every: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(1),
            unhealthy_after: 2,
        }
    }
}

/// The `every`, `timeout`, `unhealthy_after` keys every polled source's configuration shares.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `every = "60s"`.
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// `timeout = "10s"`.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// `unhealthy_after = 2`.
    pub unhealthy_after: Option<u32>,
}

impl ScheduleConfig {
    /// The schedule, checked; errors name the key under `prefix` (`sources.promql[0]`).
    pub fn schedule(&self, prefix: &str) -> Result<Schedule, SettingError> {
        let d = Schedule::default();
        let every = self.every.unwrap_or(d.every);
        if every < Duration::from_secs(1) || every > Duration::from_secs(24 * 3600) {
            return Err(SettingError::new(
                format!("{prefix}.every"),
                "must be within 1s..=24h",
            ));
        }
        let timeout = self.timeout.unwrap_or(d.timeout.min(every));
        if timeout.is_zero() || timeout > every {
            return Err(SettingError::new(
                format!("{prefix}.timeout"),
                format!(
                    "must be more than 0 and at most `every` ({})",
                    humantime::format_duration(every)
                ),
            ));
        }
        let unhealthy_after = self.unhealthy_after.unwrap_or(d.unhealthy_after);
        if !(1..=100).contains(&unhealthy_after) {
            return Err(SettingError::new(
                format!("{prefix}.unhealthy_after"),
                "must be within 1..=100",
            ));
        }
        Ok(Schedule {
            every,
            timeout,
            retry_initial: d.retry_initial.min(every),
            unhealthy_after,
        })
    }
}

/// The delay before retry number `failures` (1 for the first): `retry_initial · 2^(failures-1)`
/// capped at `every`, then "equal jitter": half of it fixed, the other half random.
pub fn backoff(schedule: &Schedule, failures: u32, random: u64) -> Duration {
    let exp = schedule
        .retry_initial
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let capped = exp.min(schedule.every);
    let half = capped / 2;
    let half_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random % half_nanos.max(1))
}

/// A random number, good enough for jitter: std's hasher keys are random per `RandomState`.
fn random() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Keeps stale data from being published as fresh: a sample is published only if it is at most
/// `max_age` old (wall clock) and newer than the last one published for its series.
#[derive(Debug)]
pub struct Freshness {
    max_age: Duration,
    last: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// The most series one source tracks; a query answering more is misconfigured.
pub const MAX_SERIES: usize = 1000;

impl Freshness {
    /// Samples older than `max_age` are stale.
    pub fn new(max_age: Duration) -> Self {
        Freshness {
            max_age,
            last: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Whether the sample of `series` taken at `timestamp` (ms) may be published at `now`; if so
    /// it is remembered as the series' latest.
    pub fn admit(&self, series: &str, timestamp: u64, now: u64) -> bool {
        let max_age = u64::try_from(self.max_age.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(timestamp) > max_age {
            return false;
        }
        let mut last = crate::sync::lock(&self.last);
        if last.get(series).is_some_and(|&t| t >= timestamp) {
            return false;
        }
        if last.len() >= MAX_SERIES && !last.contains_key(series) {
            // Forget series that went quiet rather than grow without bound.
            let cutoff = now.saturating_sub(max_age);
            last.retain(|_, t| *t >= cutoff);
        }
        last.insert(series.to_owned(), timestamp);
        true
    }
}

/// Checks every polled event by the rules every boundary applies ([`TriggerEvent::validate`]:
/// timestamps in range, names, payload), whatever source built it: a poll with an invalid event
/// fails as a whole, naming the event and the field, rather than reach the event log.
fn checked(polled: Polled) -> Result<Polled, ExecError> {
    for (i, event) in polled.events.iter().enumerate() {
        event
            .validate()
            .map_err(|e| ExecError::InvalidArgument(format!("events[{i}]: {e}")))?;
    }
    Ok(polled)
}

/// Whether this server polls the source of this name now (see
/// [`super::supervisor::SourceSupervisor::gated`]).
pub type Gate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What besides its schedule decides when a source is polled.
#[derive(Clone, Default)]
pub struct Pace {
    /// Polls only while it allows (see [`Gate`]).
    pub gate: Option<Gate>,
    /// Polls at once when notified, between scheduled polls.
    pub wake: Option<Arc<tokio::sync::Notify>>,
}

/// How often a source another replica polls is looked at again.
const GATE_RECHECK: Duration = Duration::from_secs(1);

/// Polls `poller` forever on `schedule` (first poll at once), sending its events to `batches`
/// (bounded: a poll waits while the intake is behind) and its health to `state`; with a
/// gate (`pace`), only while it allows; with a wake, also as soon as it is notified. Abort the
/// task to stop it; it also ends when the intake is gone (the server is shutting down).
pub async fn run(
    batches: tokio::sync::mpsc::Sender<Batch>,
    name: String,
    poller: Arc<dyn Poller>,
    schedule: Schedule,
    state: Arc<SourceState>,
    pace: Pace,
) {
    let Pace { gate, wake } = pace;
    let mut failures = 0u32;
    loop {
        if let Some(gate) = &gate
            && !gate(&name)
        {
            tokio::time::sleep(GATE_RECHECK.min(schedule.every)).await;
            continue;
        }
        let started = tokio::time::Instant::now();
        let result = match tokio::time::timeout(schedule.timeout, poller.poll()).await {
            Ok(r) => r.and_then(checked),
            Err(_) => Err(ExecError::TimedOut(format!(
                "no answer within {}",
                humantime::format_duration(schedule.timeout)
            ))),
        };
        let delay = match result {
            Ok(polled) => {
                failures = 0;
                let n = polled.events.len() as u64;
                state.succeeded(n, polled.stale);
                if !polled.events.is_empty() {
                    let batch = Batch {
                        source: name.clone(),
                        events: polled.events,
                    };
                    if batches.send(batch).await.is_err() {
                        return;
                    }
                }
                schedule.every.saturating_sub(started.elapsed())
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let message = e.to_string();
                state.failed(&message);
                let delay = backoff(&schedule, failures, random());
                tracing::warn!(source = %name, failures, retry_in = ?delay, "poll failed: {message}");
                delay
            }
        };
        state.next_poll(
            grace_engine::event::system_now_millis()
                + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        );
        match wake.as_ref().filter(|_| failures == 0) {
            // A failing source keeps its backoff: a wake-up is for news, not for retries.
            Some(wake) => {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = wake.notified() => {}
                }
            }
            None => tokio::time::sleep(delay).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_schedule() {
        let s = Schedule {
            every: Duration::from_secs(30),
            retry_initial: Duration::from_secs(1),
            ..Schedule::default()
        };
        // Without randomness, half of the exponential delay; with the most, just under all of it.
        let bounds = |failures| (backoff(&s, failures, 0), backoff(&s, failures, u64::MAX));
        assert_eq!(bounds(1).0, Duration::from_millis(500));
        assert!(bounds(1).1 < Duration::from_secs(1));
        assert_eq!(bounds(3).0, Duration::from_secs(2));
        assert!(bounds(3).1 < Duration::from_secs(4));
        assert_eq!(bounds(10).0, Duration::from_secs(15), "capped at `every`");
        assert!(bounds(u32::MAX).1 < Duration::from_secs(30));
        let spread: std::collections::BTreeSet<_> =
            (0..20).map(|_| backoff(&s, 4, random())).collect();
        assert!(spread.len() > 10, "jittered: {spread:?}");
    }

    #[test]
    fn only_fresh_samples_newer_than_the_last_published_are_admitted() {
        let f = Freshness::new(Duration::from_secs(60));
        let now = 1_000_000;
        assert!(f.admit("a", now - 1_000, now));
        assert!(!f.admit("a", now - 1_000, now), "the same sample twice");
        assert!(
            !f.admit("a", now - 2_000, now),
            "older than the last published"
        );
        assert!(f.admit("b", now - 1_000, now), "series are tracked apart");
        assert!(!f.admit("c", now - 61_000, now), "older than max_age");
        assert!(f.admit("a", now, now));
    }

    #[test]
    fn schedules_are_checked_naming_the_key() {
        let c = |every: &str, timeout: Option<&str>| ScheduleConfig {
            every: Some(humantime::parse_duration(every).unwrap()),
            timeout: timeout.map(|t| humantime::parse_duration(t).unwrap()),
            unhealthy_after: None,
        };
        let s = c("15s", None).schedule("sources.promql[0]").unwrap();
        assert_eq!(
            (s.every, s.timeout),
            (Duration::from_secs(15), Duration::from_secs(10))
        );
        let s = c("2s", None).schedule("x").unwrap();
        assert_eq!(
            s.timeout,
            Duration::from_secs(2),
            "never longer than the schedule"
        );
        for (config, key) in [
            (c("0s", None), "sources.promql[0].every"),
            (c("10s", Some("20s")), "sources.promql[0].timeout"),
            (c("10s", Some("0s")), "sources.promql[0].timeout"),
        ] {
            let e = config.schedule("sources.promql[0]").unwrap_err();
            assert!(e.to_string().starts_with(key), "{e}");
        }
        let e = ScheduleConfig {
            unhealthy_after: Some(0),
            ..ScheduleConfig::default()
        }
        .schedule("s")
        .unwrap_err();
        assert!(e.to_string().starts_with("s.unhealthy_after"), "{e}");
    }
}
