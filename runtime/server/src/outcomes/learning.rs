//! Learning from outcomes: per playbook and resource (the triggering event's), how often its
//! runs' signal cleared, with a 95 % interval (Wilson's score interval, which stays inside
//! [0, 1] and is honest about few runs), and how long recovery took. From the last [`KEPT`]
//! judged runs of each pair, so what is learnt follows a playbook that changed.
//!
//! The trust core reads it ([`Learning::learned`]): the risk score's `recent_failures` factor
//! counts the runs in a row that did not clear their signal, and after
//! `[trust.learning] approval_after` of them a change needs approval until a run clears it.
//! Nothing here changes a manifest or a setting: `grace outcomes` shows it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use grace_trust::Learned;
use serde::{Deserialize, Serialize};

use super::{Recovery, Verdict};
use crate::runs::RunRecord;
use crate::sync::lock;

/// Judged runs kept per playbook and resource.
pub const KEPT: usize = 50;
/// Playbook and resource pairs learnt about, at most; beyond, the one judged least recently is
/// forgotten in memory (its rows stay in the store and come back at the next start).
pub const MAX_PAIRS: usize = 10_000;

/// One judged run, as learning keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// Whether its signal cleared in time.
    pub cleared: bool,
    /// From the triggering event to the clearing one (ms), when it cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_recover_ms: Option<u64>,
    /// The capacity-minutes its changes added.
    pub capacity_minutes: f64,
    /// When the run was created (ms).
    pub at: u64,
}

impl Judged {
    /// What learning keeps of `run`, judged `recovery`; nothing for a run that could not be
    /// judged, or that changed nothing (a run whose change was refused, or never approved, says
    /// nothing of whether the playbook's change helps: counting it as a success would end the
    /// streak that made its change need approval).
    pub fn of(run: &RunRecord, recovery: &Recovery) -> Option<Judged> {
        if !run.timeline.iter().any(|e| e.is_effective_action()) {
            return None;
        }
        let cleared = match recovery.verdict {
            Verdict::Cleared => true,
            Verdict::NotCleared => false,
            Verdict::Unjudged => return None,
        };
        Some(Judged {
            cleared,
            time_to_recover_ms: recovery.time_to_recover_ms,
            capacity_minutes: recovery.cost.capacity_minutes,
            at: run.created_at,
        })
    }
}

/// What was learnt of one playbook on one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairStats {
    /// The playbook.
    pub playbook: String,
    /// The triggering events' resource.
    pub resource: String,
    /// Runs judged (the last [`KEPT`] at most).
    pub judged: u32,
    /// Of those, runs whose signal cleared.
    pub cleared: u32,
    /// `cleared / judged`.
    pub success_rate: f64,
    /// The 95 % Wilson score interval of the success rate.
    pub success_interval: [f64; 2],
    /// The latest runs in a row that did not clear their signal.
    pub not_cleared_streak: u32,
    /// The median time to recover of the runs that cleared (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_time_to_recover_ms: Option<u64>,
    /// The fastest and slowest recoveries (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_recover_range_ms: Option<[u64; 2]>,
    /// Capacity-minutes the runs' changes added, in all.
    pub capacity_minutes: f64,
    /// When the newest judged run was created (ms).
    pub last_run_at: u64,
}

#[derive(Debug, Default)]
struct Pair {
    runs: VecDeque<Judged>,
    touched: u64,
}

/// A playbook's name and a resource.
pub type PairKey = (String, String);

#[derive(Debug, Default)]
struct Pairs {
    by_key: HashMap<PairKey, Pair>,
    /// Counts records, to find the pair touched least recently.
    clock: u64,
}

/// What was learnt of every playbook and resource.
#[derive(Debug, Default)]
pub struct Learning {
    pairs: Mutex<Pairs>,
}

impl Learning {
    /// Learning from `rows` (the store's, oldest first within each pair).
    pub fn from_rows(rows: impl IntoIterator<Item = (PairKey, Judged)>) -> Learning {
        let learning = Learning::default();
        for ((playbook, resource), judged) in rows {
            learning.record(&playbook, &resource, judged);
        }
        learning
    }

    /// Learns that a run of `playbook` on `resource` was judged.
    pub fn record(&self, playbook: &str, resource: &str, judged: Judged) {
        let mut guard = lock(&self.pairs);
        let Pairs {
            by_key: pairs,
            clock,
        } = &mut *guard;
        *clock += 1;
        let key = (playbook.to_owned(), resource.to_owned());
        // A pair whose latest run did not clear is forgotten last: forgetting it would lift the
        // approval its streak may call for.
        if pairs.len() >= MAX_PAIRS
            && !pairs.contains_key(&key)
            && let Some(stale) = pairs
                .iter()
                .min_by_key(|(_, p)| (p.runs.back().is_some_and(|r| !r.cleared), p.touched))
                .map(|(k, _)| k.clone())
        {
            pairs.remove(&stale);
        }
        let pair = pairs.entry(key).or_default();
        pair.touched = *clock;
        // Kept in creation order: a run judged late (it waited for approval) goes in its place.
        let at = pair.runs.partition_point(|r| r.at <= judged.at);
        pair.runs.insert(at, judged);
        while pair.runs.len() > KEPT {
            pair.runs.pop_front();
        }
    }

    /// What the trust core is told of `playbook` on `resource`.
    pub fn learned(&self, playbook: &str, resource: &str) -> Option<Learned> {
        let guard = lock(&self.pairs);
        let pair = guard
            .by_key
            .get(&(playbook.to_owned(), resource.to_owned()))?;
        Some(learned(resource, &pair.runs))
    }

    /// Every pair's statistics, by playbook then resource.
    pub fn stats(&self) -> Vec<PairStats> {
        let guard = lock(&self.pairs);
        let mut out: Vec<PairStats> = guard
            .by_key
            .iter()
            .map(|((playbook, resource), pair)| stats(playbook, resource, &pair.runs))
            .collect();
        out.sort_by(|a, b| (&a.playbook, &a.resource).cmp(&(&b.playbook, &b.resource)));
        out
    }
}

fn learned(about: &str, runs: &VecDeque<Judged>) -> Learned {
    let judged = u32::try_from(runs.len()).unwrap_or(u32::MAX);
    let cleared = u32::try_from(runs.iter().filter(|r| r.cleared).count()).unwrap_or(u32::MAX);
    let streak = runs.iter().rev().take_while(|r| !r.cleared).count();
    Learned {
        about: about.to_owned(),
        judged,
        cleared,
        not_cleared_streak: u32::try_from(streak).unwrap_or(u32::MAX),
    }
}

fn stats(playbook: &str, resource: &str, runs: &VecDeque<Judged>) -> PairStats {
    let l = learned(resource, runs);
    let mut times: Vec<u64> = runs.iter().filter_map(|r| r.time_to_recover_ms).collect();
    times.sort_unstable();
    let (rate, interval) = wilson(l.cleared, l.judged);
    PairStats {
        playbook: playbook.to_owned(),
        resource: resource.to_owned(),
        judged: l.judged,
        cleared: l.cleared,
        success_rate: rate,
        success_interval: interval,
        not_cleared_streak: l.not_cleared_streak,
        median_time_to_recover_ms: median(&times),
        time_to_recover_range_ms: times.first().zip(times.last()).map(|(a, b)| [*a, *b]),
        capacity_minutes: runs.iter().map(|r| r.capacity_minutes).sum(),
        last_run_at: runs.back().map_or(0, |r| r.at),
    }
}

/// The success rate `k / n` and its 95 % Wilson score interval ([0, 1] for no runs).
pub fn wilson(k: u32, n: u32) -> (f64, [f64; 2]) {
    if n == 0 {
        return (0.0, [0.0, 1.0]);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (f64::from(k.min(n)), f64::from(n));
    let p = k / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    (p, [(centre - half).max(0.0), (centre + half).min(1.0)])
}

fn median(sorted: &[u64]) -> Option<u64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some(sorted[n / 2 - 1] / 2 + sorted[n / 2] / 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(at: u64, cleared: bool) -> Judged {
        Judged {
            cleared,
            time_to_recover_ms: cleared.then_some(at * 1000),
            capacity_minutes: 2.0,
            at,
        }
    }

    #[test]
    fn the_streak_counts_the_latest_runs_that_did_not_clear_and_a_clearing_run_ends_it() {
        let l = Learning::default();
        assert_eq!(l.learned("p", "web"), None, "nothing learnt yet");
        for (at, cleared) in [(1, true), (2, false), (3, false)] {
            l.record("p", "web", run(at, cleared));
        }
        let learned = l.learned("p", "web").unwrap();
        assert_eq!(
            (learned.judged, learned.cleared, learned.not_cleared_streak),
            (3, 1, 2)
        );
        assert_eq!(learned.success_percent(), Some(33));
        l.record("p", "web", run(4, true));
        assert_eq!(l.learned("p", "web").unwrap().not_cleared_streak, 0);
        assert_eq!(l.learned("p", "api"), None, "per resource");
    }

    #[test]
    fn a_run_judged_late_takes_its_place_by_creation_and_only_the_last_runs_are_kept() {
        let l = Learning::default();
        l.record("p", "web", run(2, false));
        // Created before the failing one, judged after it (it waited for approval).
        l.record("p", "web", run(1, true));
        assert_eq!(l.learned("p", "web").unwrap().not_cleared_streak, 1);
        for at in 10..10 + KEPT as u64 {
            l.record("p", "web", run(at, false));
        }
        let learned = l.learned("p", "web").unwrap();
        assert_eq!(learned.judged as usize, KEPT);
        assert_eq!(
            learned.cleared, 0,
            "the clearing run is older than the last {KEPT}"
        );
    }

    #[test]
    fn statistics_carry_their_uncertainty() {
        let l = Learning::default();
        l.record("p", "web", run(1, true));
        let one = &l.stats()[0];
        assert_eq!(one.success_rate, 1.0);
        // One run says little: the interval is wide.
        assert!(one.success_interval[0] < 0.25, "{one:?}");
        for at in 2..=40 {
            l.record("p", "web", run(at, at % 10 != 0));
        }
        let many = &l.stats()[0];
        assert_eq!((many.judged, many.cleared), (40, 36));
        assert!(
            many.success_interval[0] > 0.75 && many.success_interval[1] < 0.98,
            "{many:?}"
        );
        assert_eq!(many.median_time_to_recover_ms, Some(20_000));
        assert_eq!(many.capacity_minutes, 80.0);
    }

    #[test]
    fn wilson_matches_its_textbook_values() {
        // 8 of 10: [0.490, 0.943] (Wilson 1927; Newcombe 1998, table I).
        let (p, [lo, hi]) = wilson(8, 10);
        assert_eq!(p, 0.8);
        assert!(
            (lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0), (0.0, [0.0, 1.0]));
    }
}
