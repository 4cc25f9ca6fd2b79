//! Outcomes: whether each run's signal cleared, how long recovery took, and what the run cost
//! (`docs/outcomes.md`).
//!
//! When a trigger fires, its run is given a [`Watch`] (kept with the run): what later event
//! says the signal is over (`watch`). From then on every event the matcher takes is offered to
//! the [`Outcomes`] tracker, which notes the first that clears each run's signal. Once a run is
//! over and its signal cleared, or its window (`[outcomes] window`, from the triggering event,
//! or from the run's last change when that came later) ran out, the run is judged: its [`Recovery`] (cleared or not, the time to recover, its
//! [`cost::Cost`]) is written into the stored run, read back by the API, `grace runs show` and
//! the dashboard. Judgements are on event time, as the triggers' windows are, so a simulation
//! judges in virtual time.
//!
//! Runs not yet judged are indexed in the store (`server/runs_unjudged`); at start the tracker
//! takes them back and offers them the events stored since their triggering event, so a
//! `kill -9` loses no clearing event the event log kept.

pub mod cost;
pub mod learning;
pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grace_model::TriggerEvent;
use grace_model::condition::Condition;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::runs::RunRecord;
use crate::store::{Store, StoreError};
use crate::sync::lock;
pub use cost::Cost;
pub use watch::{Unwatchable, Watch};

/// Runs watched at once, at most; beyond, the oldest is judged at once as not judged.
pub const MAX_WATCHED: usize = 10_000;
/// Events replayed from the log at start, at most (the oldest unjudged run's window at most).
const MAX_REPLAYED: usize = 200_000;

/// `[outcomes]` in `grace.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutcomesConfig {
    /// How long after its triggering event a run's signal may take to clear for the run to
    /// count as having cleared it (default 15m).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for OutcomesConfig {
    fn default() -> Self {
        OutcomesConfig {
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl OutcomesConfig {
    /// Checks the range; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.window < Duration::from_secs(1) || self.window > Duration::from_secs(86_400) {
            return Err(("outcomes.window", "must be between 1s and 1 day".to_owned()));
        }
        Ok(())
    }

    /// The window in milliseconds.
    pub fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Whether a run's signal cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Back within its bound (or its clearing event came) within the window.
    Cleared,
    /// Still out of bounds, or silent, when the window ran out.
    NotCleared,
    /// Nothing says when the signal is over (see [`Unwatchable`]), or the run was not watched.
    Unjudged,
}

impl Verdict {
    /// As in the API.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Cleared => "cleared",
            Verdict::NotCleared => "not-cleared",
            Verdict::Unjudged => "unjudged",
        }
    }
}

/// A run's outcome, as judged once the run was over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// Cleared or not.
    pub verdict: Verdict,
    /// Why, in words.
    pub reason: String,
    /// When the signal cleared (event time, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<u64>,
    /// From the triggering event to the clearing one (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_recover_ms: Option<u64>,
    /// What the run's changes added.
    pub cost: Cost,
}

/// When a run's signal cleared (event time, ms), and the type of the event that said so.
pub type Cleared = (u64, String);

/// One run waiting to be judged.
#[derive(Debug)]
struct Watched {
    /// What says its signal cleared, and the condition parsed; absent when nothing can (the
    /// run is judged `unjudged` as soon as it is over).
    watch: Option<(Watch, Option<Condition>)>,
    /// Why there is no watch.
    unwatchable: Option<String>,
    /// Since when its signal is cleared (the first clearing event since the signal was last
    /// back), and the type of that event.
    cleared: Option<Cleared>,
    /// The latest event (its time) that said the signal is back: a clearing stamped before it,
    /// arriving late, did not last.
    last_breach: u64,
    /// Order of arrival, to evict the oldest.
    order: u64,
    /// Ticks of [`Outcomes::judge_due`] to skip before looking at the run again: a run not over
    /// yet is not read from the store at every tick.
    skip: u32,
    /// Looks that did not find the run stored (it is stored just after it is tracked).
    missing: u32,
}

/// Ticks a run not over yet is left before it is read again.
const RECHECK_TICKS: u32 = 10;
/// Looks that may miss a run before it is no longer watched (it was never stored: its event's
/// runs were left to another replica).
const MAX_MISSES: u32 = 60;

impl Watched {
    fn due(&self, now: u64) -> bool {
        match &self.watch {
            None => true,
            Some((w, _)) => self.cleared.is_some() || now >= w.until,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    runs: HashMap<String, Watched>,
    /// Run ids by the (event type, resource) that can clear them or say their signal is back.
    by_signal: HashMap<(String, String), Vec<String>>,
    next: u64,
}

/// The runs waiting for their outcome.
pub struct Outcomes {
    store: Store,
    config: OutcomesConfig,
    inner: Mutex<Inner>,
    learning: Arc<learning::Learning>,
}

impl Outcomes {
    /// A tracker judging runs stored in `store`, and what was learnt from those judged before.
    pub fn open(store: Store, config: OutcomesConfig) -> Result<Outcomes, StoreError> {
        let learning = Arc::new(learning::Learning::from_rows(store.run_outcomes()?));
        Ok(Outcomes {
            store,
            config,
            inner: Mutex::new(Inner::default()),
            learning,
        })
    }

    /// How long a signal may take to clear (ms).
    pub fn window_ms(&self) -> u64 {
        self.config.window_ms()
    }

    /// What was learnt from the runs judged.
    pub fn learning(&self) -> &Arc<learning::Learning> {
        &self.learning
    }

    /// The watch of a run `event` fired through a trigger with `condition`.
    pub fn watch_for(
        &self,
        event: &TriggerEvent,
        condition: Option<&Condition>,
    ) -> Result<Watch, Unwatchable> {
        Watch::new(event, condition, self.config.window_ms())
    }

    /// Watches `run` (just made, or not yet judged at start).
    pub fn track(&self, run: &RunRecord) {
        let mut inner = lock(&self.inner);
        if inner.runs.contains_key(&run.id) {
            return;
        }
        if inner.runs.len() >= MAX_WATCHED
            && let Some(oldest) = inner
                .runs
                .iter()
                .min_by_key(|(_, w)| w.order)
                .map(|(id, _)| id.clone())
        {
            // Forgotten, not judged: it stays in the store's unjudged index and is taken back
            // at the next start.
            tracing::warn!(run = %oldest, "too many runs waiting for their outcome: the oldest is no longer watched");
            remove(&mut inner, &oldest);
        }
        let (watch, unwatchable) = match &run.watch {
            None => (
                None,
                Some(
                    Unwatchable {
                        event_type: run.event.event_type.clone(),
                    }
                    .to_string(),
                ),
            ),
            Some(w) => match w.condition() {
                Ok(c) => (Some((w.clone(), c)), None),
                Err(e) => (
                    None,
                    Some(format!("the trigger's condition no longer parses: {e}")),
                ),
            },
        };
        if let Some((w, _)) = &watch {
            for kind in [&w.event_type, &w.fires_on] {
                let ids = inner
                    .by_signal
                    .entry((kind.clone(), w.resource.clone()))
                    .or_default();
                if !ids.contains(&run.id) {
                    ids.push(run.id.clone());
                }
            }
        }
        let order = inner.next;
        inner.next += 1;
        inner.runs.insert(
            run.id.clone(),
            Watched {
                watch,
                unwatchable,
                cleared: None,
                last_breach: 0,
                order,
                skip: 0,
                missing: 0,
            },
        );
    }

    /// Offers `event` (with the health graph's facts of its resource) to the runs watching its
    /// signal: the first event that clears it starts a clearing, a triggering event of the
    /// series after that ends it (the signal is back).
    pub fn observe(&self, event: &TriggerEvent, graph: Option<&Value>) {
        let mut inner = lock(&self.inner);
        let key = (event.event_type.clone(), event.resource.clone());
        let Some(ids) = inner.by_signal.get(&key).cloned() else {
            return;
        };
        for id in ids {
            let Some(w) = inner.runs.get_mut(&id) else {
                continue;
            };
            let Some((watch, condition)) = &w.watch else {
                continue;
            };
            let at = event.timestamp;
            if watch.breaches(event, graph, condition.as_ref()) {
                w.last_breach = w.last_breach.max(at);
                if w.cleared.as_ref().is_some_and(|(since, _)| *since <= at) {
                    w.cleared = None;
                }
            } else if at > w.last_breach
                && w.cleared.as_ref().is_none_or(|(since, _)| at < *since)
                && watch.clears(event, graph, condition.as_ref())
            {
                w.cleared = Some((at, event.event_type.clone()));
            }
        }
    }

    /// Judges the runs that are over and whose signal cleared or whose window ran out by `now`
    /// (event time, ms); returns their verdicts. A run that cannot be read is logged and
    /// looked at again later; it never holds up the others.
    pub fn judge_due(&self, now: u64) -> Vec<Verdict> {
        let due: Vec<String> = {
            let mut inner = lock(&self.inner);
            inner
                .runs
                .iter_mut()
                .filter_map(|(id, w)| {
                    if w.skip > 0 {
                        w.skip -= 1;
                        return None;
                    }
                    w.due(now).then(|| id.clone())
                })
                .collect()
        };
        let mut judged = Vec::new();
        for id in due {
            match self.judge_one(&id, now) {
                Ok(Some(verdict)) => judged.push(verdict),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(run = %id, "cannot judge the run's outcome: {e}");
                    self.later(&id, RECHECK_TICKS);
                }
            }
        }
        judged
    }

    /// Judges run `id` if it is time: read first, written (in one transaction with its indexes)
    /// only when there is a judgement to write.
    fn judge_one(&self, id: &str, now: u64) -> Result<Option<Verdict>, StoreError> {
        let Some(run) = self.store.run(id)? else {
            let mut inner = lock(&self.inner);
            if let Some(w) = inner.runs.get_mut(id) {
                w.missing += 1;
                w.skip = 1;
                if w.missing > MAX_MISSES {
                    remove(&mut inner, id);
                }
            }
            return Ok(None);
        };
        if run.recovery.is_some() {
            remove(&mut lock(&self.inner), id);
            return Ok(None);
        }
        let (watch, unwatchable, cleared) = {
            let inner = lock(&self.inner);
            let Some(w) = inner.runs.get(id) else {
                return Ok(None);
            };
            (
                w.watch.as_ref().map(|(w, _)| w.clone()),
                w.unwatchable.clone(),
                w.cleared.clone(),
            )
        };
        let judged = |run: &RunRecord| {
            judge(
                run,
                watch.as_ref(),
                unwatchable.as_deref(),
                cleared.as_ref(),
                now,
            )
        };
        if judged(&run).is_none() {
            self.later(id, RECHECK_TICKS);
            return Ok(None);
        }
        let mut learnt = None;
        let done = self.store.judge_run(id, |run| {
            let recovery = judged(run)?;
            learnt = Some((
                recovery.verdict,
                run.playbook.clone(),
                run.resource.clone(),
                learning::Judged::of(run, &recovery),
            ));
            Some(recovery)
        })?;
        if done == Some(false) {
            self.later(id, RECHECK_TICKS);
            return Ok(None);
        }
        remove(&mut lock(&self.inner), id);
        let Some((verdict, playbook, resource, kept)) = learnt.filter(|_| done == Some(true))
        else {
            return Ok(None);
        };
        if let Some(kept) = kept {
            self.learning.record(&playbook, &resource, kept);
        }
        Ok(Some(verdict))
    }

    fn later(&self, id: &str, ticks: u32) {
        if let Some(w) = lock(&self.inner).runs.get_mut(id) {
            w.skip = ticks;
        }
    }

    /// Takes back the runs stored unjudged, and offers those with a watch the events stored
    /// since the earliest of their triggering events (read a page at a time, at most
    /// [`MAX_REPLAYED`]).
    pub fn rebuild(&self) -> Result<usize, StoreError> {
        let runs = self.store.unjudged_runs()?;
        for run in &runs {
            self.track(run);
        }
        let Some(from) = runs
            .iter()
            .filter(|r| r.watch.is_some())
            .map(|r| r.event_seq)
            .min()
        else {
            return Ok(runs.len());
        };
        let mut next = from.saturating_add(1);
        let mut replayed = 0;
        while replayed < MAX_REPLAYED {
            let page = self.store.events(next, REPLAY_PAGE)?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            replayed += page.len();
            for stored in &page {
                self.observe(&stored.event, stored.graph.as_ref());
            }
            next = last.saturating_add(1);
        }
        Ok(runs.len())
    }

    /// Runs watched now.
    pub fn watched(&self) -> usize {
        lock(&self.inner).runs.len()
    }
}

/// Events read from the log at a time when watching again at start.
const REPLAY_PAGE: usize = 1_000;

fn remove(inner: &mut Inner, id: &str) {
    let Some(w) = inner.runs.remove(id) else {
        return;
    };
    if let Some((watch, _)) = w.watch {
        for kind in [watch.event_type, watch.fires_on] {
            let key = (kind, watch.resource.clone());
            if let Some(ids) = inner.by_signal.get_mut(&key) {
                ids.retain(|i| i != id);
                if ids.is_empty() {
                    inner.by_signal.remove(&key);
                }
            }
        }
    }
}

/// The recovery of `run`, watched with `watch` (or not, because `unwatchable`) and cleared
/// since `cleared`, judged at `now` (event time); `None` while it is too early to say: the run
/// is not over, or its signal has not cleared and its window is still open.
///
/// The window runs from the triggering event, or from the run's last change when that came
/// later (a run that waited an hour for approval is judged on what followed its change, not
/// on the hour it waited). A run interrupted by a stop of the server and not resumed within
/// its window is judged `unjudged`.
pub fn judge(
    run: &RunRecord,
    watch: Option<&Watch>,
    unwatchable: Option<&str>,
    cleared: Option<&Cleared>,
    now: u64,
) -> Option<Recovery> {
    let interrupted = run.state == crate::runs::RunState::Interrupted;
    if !run.state.is_final() && !interrupted {
        return None;
    }
    let unjudged = |reason: String, until: u64| {
        Some(Recovery {
            verdict: Verdict::Unjudged,
            reason,
            cleared_at: None,
            time_to_recover_ms: None,
            cost: cost::of(&run.timeline, until),
        })
    };
    let Some(watch) = watch else {
        let why = unwatchable.unwrap_or("the run was not watched");
        return unjudged(why.to_owned(), run.event.timestamp);
    };
    let window = watch.until.saturating_sub(watch.since);
    let last_change = run
        .timeline
        .iter()
        .filter(|e| e.is_effective_action())
        .map(|e| e.at)
        .max();
    let until = last_change.map_or(watch.until, |at| watch.until.max(at.saturating_add(window)));
    if interrupted {
        if now < until {
            return None;
        }
        return unjudged(
            "the run was interrupted (the server stopped while it ran) and not resumed within its window".to_owned(),
            until,
        );
    }
    match cleared {
        Some((at, by)) if *at <= until => {
            let took = at.saturating_sub(watch.since);
            Some(Recovery {
                verdict: Verdict::Cleared,
                reason: format!(
                    "the signal cleared {} after the triggering event ({})",
                    words(took),
                    if watch.unless.is_some() {
                        format!(
                            "`{by}` back within `{}`",
                            watch.unless.as_deref().unwrap_or("")
                        )
                    } else {
                        format!("`{by}`")
                    }
                ),
                cleared_at: Some(*at),
                time_to_recover_ms: Some(took),
                cost: cost::of(&run.timeline, *at),
            })
        }
        _ if now < until => None,
        _ => Some(Recovery {
            verdict: Verdict::NotCleared,
            reason: format!(
                "the signal did not clear within {} of the {}",
                words(window),
                if until > watch.until {
                    "run's last change"
                } else {
                    "triggering event"
                }
            ),
            cleared_at: None,
            time_to_recover_ms: None,
            cost: cost::of(&run.timeline, until),
        }),
    }
}

/// A duration for people, to the second (`4m 10s`).
pub(crate) fn words(millis: u64) -> String {
    humantime::format_duration(Duration::from_secs(millis / 1000)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::RunState;
    use serde_json::json;

    const T0: u64 = 1_700_000_000_000;
    const MIN: u64 = 60_000;

    fn latency(at: u64, value: u64) -> TriggerEvent {
        TriggerEvent {
            event_type: "metrics.latency".into(),
            source: "prometheus".into(),
            actor: "test".into(),
            resource: "web".into(),
            payload: json!({"value": value}),
            timestamp: at,
        }
    }

    fn run(id: &str, outcomes: &Outcomes, condition: Option<&str>) -> RunRecord {
        let event = latency(T0, 700);
        let condition = condition.map(|c| Condition::parse(c).unwrap());
        RunRecord {
            id: id.into(),
            playbook: "scale-on-latency".into(),
            version: "1.0.0".into(),
            digest: "sha256:00".into(),
            trigger: 0,
            event_seq: 1,
            watch: outcomes.watch_for(&event, condition.as_ref()).ok(),
            event,
            resource: "web".into(),
            dedup_key: None,
            locks: Vec::new(),
            key: None,
            state: RunState::Running,
            attempts: 1,
            created_at: T0,
            ingested_at: T0,
            started_at: Some(T0),
            finished_at: None,
            outcome: None,
            failure: None,
            approval: None,
            timeline: Vec::new(),
            attempts_log: Vec::new(),
            recovery: None,
        }
    }

    fn tracker() -> (tempfile::TempDir, Store, Outcomes) {
        let (dir, store) = Store::temporary();
        let outcomes = Outcomes::open(store.clone(), OutcomesConfig::default()).unwrap();
        (dir, store, outcomes)
    }

    /// Judges at `now` for as many ticks as a run not over yet may be left: what the judge
    /// task would have judged by then.
    fn judged_by(outcomes: &Outcomes, now: u64) -> Vec<Verdict> {
        (0..=RECHECK_TICKS)
            .flat_map(|_| outcomes.judge_due(now))
            .collect()
    }

    fn finish(store: &Store, id: &str) {
        let mut r = store.run(id).unwrap().unwrap();
        r.state = RunState::Succeeded;
        store.put_run(&r).unwrap();
    }

    #[test]
    fn a_run_is_judged_cleared_once_it_is_over_and_its_signal_came_back_within_its_bound() {
        let (_dir, store, outcomes) = tracker();
        let r = run("r1", &outcomes, Some("value > 500"));
        store.put_run(&r).unwrap();
        outcomes.track(&r);
        outcomes.observe(&latency(T0 + MIN, 650), None);
        outcomes.observe(&latency(T0 + 4 * MIN, 300), None);
        outcomes.observe(&latency(T0 + 5 * MIN, 250), None);
        assert!(
            judged_by(&outcomes, T0 + 5 * MIN).is_empty(),
            "still running"
        );
        assert_eq!(store.unjudged_runs().unwrap().len(), 1);
        finish(&store, "r1");
        assert_eq!(judged_by(&outcomes, T0 + 5 * MIN), vec![Verdict::Cleared]);
        let recovery = store.run("r1").unwrap().unwrap().recovery.unwrap();
        assert_eq!(recovery.time_to_recover_ms, Some(4 * MIN));
        assert_eq!(recovery.cleared_at, Some(T0 + 4 * MIN));
        assert!(
            recovery.reason.contains("4m") && recovery.reason.contains("value > 500"),
            "{}",
            recovery.reason
        );
        assert!(store.unjudged_runs().unwrap().is_empty());
        assert_eq!(outcomes.watched(), 0);
        // Judged: the run's record and the store's indexes are final.
        assert!(judged_by(&outcomes, T0 + 60 * MIN).is_empty());
        let again = store.judge_run("r1", |_| panic!("judged twice")).unwrap();
        assert_eq!(again, None, "once");
    }

    #[test]
    fn a_clearing_that_did_not_last_is_not_a_recovery() {
        let (_dir, store, outcomes) = tracker();
        let r = run("r1", &outcomes, Some("value > 500"));
        store.put_run(&r).unwrap();
        outcomes.track(&r);
        outcomes.observe(&latency(T0 + 4 * MIN, 300), None);
        // Back over the bound before the run is over (it waited for approval, say).
        outcomes.observe(&latency(T0 + 5 * MIN, 900), None);
        finish(&store, "r1");
        assert!(
            judged_by(&outcomes, T0 + 10 * MIN).is_empty(),
            "not cleared now"
        );
        assert_eq!(
            judged_by(&outcomes, T0 + 15 * MIN),
            vec![Verdict::NotCleared]
        );
    }

    #[test]
    fn a_clearing_stamped_before_a_breach_that_arrived_first_did_not_last() {
        let (_dir, store, outcomes) = tracker();
        let r = run("r1", &outcomes, Some("value > 500"));
        store.put_run(&r).unwrap();
        outcomes.track(&r);
        finish(&store, "r1");
        outcomes.observe(&latency(T0 + 5 * MIN, 900), None);
        outcomes.observe(&latency(T0 + 3 * MIN, 100), None);
        assert!(judged_by(&outcomes, T0 + 10 * MIN).is_empty());
        outcomes.observe(&latency(T0 + 6 * MIN, 100), None);
        assert_eq!(judged_by(&outcomes, T0 + 10 * MIN), vec![Verdict::Cleared]);
        let recovery = store.run("r1").unwrap().unwrap().recovery.unwrap();
        assert_eq!(recovery.cleared_at, Some(T0 + 6 * MIN));
    }

    #[test]
    fn events_of_another_sender_neither_clear_nor_breach() {
        let (_dir, store, outcomes) = tracker();
        let r = run("r1", &outcomes, Some("value > 500"));
        store.put_run(&r).unwrap();
        outcomes.track(&r);
        finish(&store, "r1");
        let mut other = latency(T0 + MIN, 100);
        other.actor = "somebody-else".into();
        outcomes.observe(&other, None);
        assert!(judged_by(&outcomes, T0 + 2 * MIN).is_empty());
    }

    #[test]
    fn a_run_whose_signal_stays_out_is_judged_not_cleared_when_its_window_ends() {
        let (_dir, store, outcomes) = tracker();
        let r = run("r1", &outcomes, Some("value > 500"));
        store.put_run(&r).unwrap();
        outcomes.track(&r);
        finish(&store, "r1");
        outcomes.observe(&latency(T0 + MIN, 800), None);
        assert!(judged_by(&outcomes, T0 + 14 * MIN).is_empty());
        // Back within bound, but after the window: too late to count.
        outcomes.observe(&latency(T0 + 16 * MIN, 100), None);
        assert_eq!(
            judged_by(&outcomes, T0 + 16 * MIN),
            vec![Verdict::NotCleared]
        );
        let recovery = store.run("r1").unwrap().unwrap().recovery.unwrap();
        assert_eq!(recovery.time_to_recover_ms, None);
        assert!(recovery.reason.contains("15m"), "{}", recovery.reason);
    }

    #[test]
    fn a_run_that_acted_late_is_judged_on_the_window_after_its_change() {
        let (_dir, store, outcomes) = tracker();
        let mut r = run("r1", &outcomes, Some("value > 500"));
        // It waited 40 minutes for approval, then scaled.
        r.timeline.push(grace_engine::TimelineEntry {
            seq: 1,
            at: T0 + 40 * MIN,
            offset_ms: 0,
            interface: "scaling".into(),
            function: "set-desired-capacity".into(),
            args: json!({}),
            verdict: grace_ledger::Verdict::Allowed,
            reason: "approved".into(),
            trust: None,
            result: json!({"ok": {}}),
            change: true,
        });
        r.state = RunState::Succeeded;
        store.put_run(&r).unwrap();
        outcomes.track(&r);
        assert!(
            judged_by(&outcomes, T0 + 30 * MIN).is_empty(),
            "its window runs from its change"
        );
        outcomes.observe(&latency(T0 + 50 * MIN, 200), None);
        assert_eq!(judged_by(&outcomes, T0 + 50 * MIN), vec![Verdict::Cleared]);
    }

    #[test]
    fn a_run_nothing_can_judge_says_why_as_soon_as_it_is_over() {
        let (_dir, store, outcomes) = tracker();
        let r = run("r1", &outcomes, None);
        assert!(r.watch.is_none());
        store.put_run(&r).unwrap();
        outcomes.track(&r);
        finish(&store, "r1");
        assert_eq!(judged_by(&outcomes, T0), vec![Verdict::Unjudged]);
        let recovery = store.run("r1").unwrap().unwrap().recovery.unwrap();
        assert!(
            recovery.reason.contains("no condition"),
            "{}",
            recovery.reason
        );
    }

    #[test]
    fn the_window_is_between_a_second_and_a_day() {
        for (window, ok) in [(0, false), (1, true), (86_400, true), (86_401, false)] {
            let c = OutcomesConfig {
                window: Duration::from_secs(window),
            };
            assert_eq!(c.validate().is_ok(), ok, "{window}");
        }
    }
}
