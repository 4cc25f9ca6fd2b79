//! Novelty: a value outside every range the series showed before. After its first
//! [`NOVELTY_WARMUP`] values the series' values are quantised into bins (half a robust
//! standard deviation of those first values wide, from their median, fixed from then on, the
//! way the Contextual Anomaly Detector quantises a series before it learns its contexts), and
//! a value in a bin beyond the lowest or highest bin seen so far, by at least
//! [`NOVELTY_MARGIN`] of the range seen, is novel. A value beyond it by less is not novel and
//! does not widen it either: a new record by a hair (the noise of a series reaching a little
//! further now and then) is not news, and a slow creep is novel once it crept that far.
//!
//! Once novel, the series rests until the episode is over: for [`NOVELTY_REST`] samples at
//! most, and only until [`NOVELTY_BACK`] values in a row lie back within the range seen before
//! it. The values of the same episode widen the range seen without alarming again; the next
//! excursion beyond it, once the series went back to its old range, is novel again however
//! soon it comes.
//!
//! Unlike the level's window, the range seen never forgets: a series that creeps to a level
//! it never reached is news even when it creeps slowly enough for the window to follow it.

use serde::{Deserialize, Serialize};

use crate::detector::Expected;

/// Values the bins are learnt from.
pub const NOVELTY_WARMUP: usize = 32;
/// A bin's width in robust standard deviations of the first values.
pub const NOVELTY_BIN: f64 = 0.5;
/// How far beyond the range seen a novel value lies at least, as a fraction of that range's
/// width (and at least one bin).
pub const NOVELTY_MARGIN: f64 = 0.02;
/// Samples after a novel value before the next can be novel, at most.
pub const NOVELTY_REST: u32 = 100;
/// Values in a row back within the range seen before a novel value that end its episode (and
/// the rest) early.
pub const NOVELTY_BACK: u32 = 20;

/// Bins are kept within this many of the origin, so any finite value has one.
const MAX_BIN: f64 = 1e15;

/// The novelty component's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Novelty {
    /// The first values, until the bins are learnt from them (then empty).
    first: Vec<f64>,
    /// The bins, once learnt: `(origin, width)`.
    bins: Option<(f64, f64)>,
    /// The lowest and highest bin seen, the first values' included.
    seen: Option<(i64, i64)>,
    /// Samples left to rest.
    rest: u32,
    /// While resting: the bins seen before the episode, and how many values in a row lay back
    /// within them.
    #[serde(default)]
    before: Option<(i64, i64, u32)>,
}

impl Novelty {
    /// Whether `value` lies outside every range seen before (and the series is not resting),
    /// with the range seen; then learns from it.
    pub(crate) fn observe(&mut self, value: f64) -> Option<Expected> {
        let Some((origin, width)) = self.bins else {
            self.first.push(value);
            if self.first.len() >= NOVELTY_WARMUP {
                let (origin, width) = bins(&mut self.first);
                let bin = |v: f64| bin(v, origin, width);
                self.seen = self
                    .first
                    .first()
                    .zip(self.first.last())
                    .map(|(&low, &high)| (bin(low), bin(high)));
                self.bins = Some((origin, width));
                self.first = Vec::new();
            }
            return None;
        };
        let bin = bin(value, origin, width);
        let (low, high) = self.seen.unwrap_or((bin, bin));
        let margin = ((high - low + 1) as f64 * NOVELTY_MARGIN) as i64;
        let outside = bin < low - margin || bin > high + margin;
        if outside || self.rest > 0 {
            self.seen = Some((low.min(bin), high.max(bin)));
        }
        if self.rest > 0 {
            self.rest -= 1;
            if let Some((low, high, back)) = &mut self.before {
                *back = if (*low..=*high).contains(&bin) {
                    *back + 1
                } else {
                    0
                };
                if *back >= NOVELTY_BACK {
                    self.rest = 0;
                }
            }
            if self.rest == 0 {
                self.before = None;
            }
            return None;
        }
        outside.then(|| {
            self.rest_from(low, high);
            Expected {
                low: origin + low as f64 * width,
                high: origin + (high as f64 + 1.0) * width,
            }
        })
    }

    /// Rests as after a novel value (unless resting already): another view of the same series
    /// (its settled level) saw the episode first.
    pub(crate) fn start_rest(&mut self) {
        if let Some((low, high)) = self.seen
            && self.rest == 0
        {
            self.rest_from(low, high);
        }
    }

    /// Rests until the values are back within the bins `low..=high` (or for [`NOVELTY_REST`]
    /// samples).
    fn rest_from(&mut self, low: i64, high: i64) {
        self.rest = NOVELTY_REST;
        self.before = Some((low, high, 0));
    }

    /// The range of the bins seen so far, once learnt.
    pub(crate) fn range(&self) -> Option<Expected> {
        let (origin, width) = self.bins?;
        let (low, high) = self.seen?;
        Some(Expected {
            low: origin + low as f64 * width,
            high: origin + (high as f64 + 1.0) * width,
        })
    }

    /// Whether the bins are learnt.
    pub(crate) fn learnt(&self) -> bool {
        self.bins.is_some()
    }

    /// Bytes this state holds on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.first.capacity() * size_of::<f64>()
    }
}

/// The bin of `value`.
fn bin(value: f64, origin: f64, width: f64) -> i64 {
    ((value - origin) / width).floor().clamp(-MAX_BIN, MAX_BIN) as i64
}

/// The bins' origin (the median of `values`) and width ([`NOVELTY_BIN`] robust standard
/// deviations, as [`crate::robust::robust_z`] measures them).
fn bins(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let q = |p: f64| values[((values.len() - 1) as f64 * p) as usize];
    let median = q(0.5);
    let iqr = q(0.75) - q(0.25);
    let range = q(1.0) - q(0.0);
    let scale = (iqr / 1.349)
        .max(range / 20.0)
        .max(1e-9 * (1.0 + median.abs()));
    let width = NOVELTY_BIN * scale;
    if width.is_finite() && width > 0.0 {
        (median, width)
    } else {
        (median, f64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_beyond_the_range_seen_is_novel_once_per_episode() {
        let mut n = Novelty::default();
        for i in 0..500 {
            assert!(n.observe(f64::from(i % 10)).is_none() || i < NOVELTY_WARMUP as i32);
        }
        let e = n.observe(30.0).unwrap();
        assert!(e.low <= 0.0 && 9.0 <= e.high && e.high < 30.0, "{e:?}");
        for _ in 0..NOVELTY_REST {
            assert!(n.observe(40.0).is_none());
        }
        assert!(n.observe(35.0).is_none(), "seen while resting");
        assert!(n.observe(-30.0).is_some());
    }

    #[test]
    fn a_record_by_a_hair_is_not_novel_and_a_creep_is_once_it_crept_far_enough() {
        let mut n = Novelty::default();
        // Bins of about 1.7 (half a robust deviation of 0..9), then a range seen of 0 to 305:
        // about 180 bins, a margin of 3 (about 5, or 2 % of the range).
        for i in 0..500 {
            let spike = i > 100 && i % 50 == 25;
            n.observe(f64::from(i % 10) + if spike { 300.0 } else { 0.0 });
        }
        assert!(n.observe(308.0).is_none(), "a hair beyond the range seen");
        assert!(n.observe(308.0).is_none(), "and it did not widen it");
        // Creeping by 0.5 from 305: novel at about 311, not at the first step beyond 305.
        let crept = (1..=40)
            .map(|i| n.observe(305.0 + 0.5 * f64::from(i)))
            .position(|e| e.is_some());
        assert!(
            matches!(crept, Some(8..=16)),
            "a creep is novel once it is 2 % of the range beyond it: {crept:?}"
        );
    }

    #[test]
    fn an_episode_ends_when_the_values_are_back_in_the_range_seen_before_it() {
        let mut n = Novelty::default();
        for i in 0..500 {
            n.observe(f64::from(i % 10));
        }
        assert!(n.observe(30.0).is_some());
        for i in 0..5 {
            assert!(n.observe(f64::from(25 + i)).is_none(), "the same episode");
        }
        for i in 0..NOVELTY_BACK - 1 {
            assert!(n.observe(f64::from(i % 10)).is_none());
        }
        assert!(n.observe(40.0).is_none(), "not back for long enough yet");
        for i in 0..NOVELTY_BACK {
            assert!(n.observe(f64::from(i % 10)).is_none());
        }
        assert!(
            n.observe(50.0).is_some(),
            "a new episode, well within the rest"
        );
    }

    #[test]
    fn hostile_values_do_not_panic() {
        let mut n = Novelty::default();
        for (i, v) in [0.0, f64::MAX, -f64::MAX, 1e-300, f64::MIN_POSITIVE]
            .into_iter()
            .cycle()
            .take(300)
            .enumerate()
        {
            let _ = n.observe(v * if i % 7 == 0 { -1.0 } else { 1.0 });
        }
    }
}
