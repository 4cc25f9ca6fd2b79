//! Robust z-scores: each value against the median and spread of the recent values (`level`),
//! and, for series sampled every minute or less often (at most 1,440 samples a day), the change
//! since the same time the day before against the usual day-on-day change (`seasonal`). Medians and quartiles, not means
//! and deviations, so one spike does not hide the next.

use serde::{Deserialize, Serialize};

use crate::detector::{Component, Expected, Score};
use crate::stats::SortedWindow;

/// Recent values the level is judged against.
pub const LEVEL_WINDOW: usize = 256;
/// Day-on-day changes the seasonal component is judged against.
pub const SEASONAL_WINDOW: usize = 256;
/// Values (or changes) a component needs before it scores.
pub const MIN_HISTORY: usize = 32;
/// The seasonal component runs for series sampled at most this many times a day (every
/// minute); finer series would need a longer day to remember than a series' state should hold.
pub const MAX_SAMPLES_PER_DAY: i64 = 1_440;

const DAY_MS: i64 = 86_400_000;

/// A z-score and what it was measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Z {
    pub(crate) z: f64,
    pub(crate) component: Component,
    pub(crate) expected: Expected,
    /// The robust deviation of the values (or changes) the value was judged against: the
    /// inter-quartile range / 1.349, before any floor.
    pub(crate) spread: f64,
}

/// The robust detector's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Robust {
    level: SortedWindow,
    seasonal: Option<Seasonal>,
}

/// Yesterday's values by time of day, and the recent day-on-day changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Seasonal {
    interval: i64,
    /// `(millis, value)` per slot of the day; a slot holds the last value that fell in it.
    day: Vec<Option<(i64, f64)>>,
    changes: SortedWindow,
}

impl Default for Robust {
    fn default() -> Self {
        Robust {
            level: SortedWindow::new(LEVEL_WINDOW),
            seasonal: None,
        }
    }
}

impl Robust {
    /// Scores `value` at `millis`, then learns from it. `interval` is the series' sampling
    /// interval as the guard learnt it.
    pub fn update(
        &mut self,
        millis: i64,
        value: f64,
        interval: Option<i64>,
        _after_gap: bool,
    ) -> Score {
        match self.observe(millis, value, interval) {
            Some(z) => Score {
                value: z_score(z.z),
                component: z.component,
                expected: Some(z.expected),
            },
            None => Score::warming_up(),
        }
    }

    /// The larger of the level and seasonal z-scores of `value` (before learning from it), then
    /// learns from it.
    pub(crate) fn observe(&mut self, millis: i64, value: f64, interval: Option<i64>) -> Option<Z> {
        let level = robust_z(&self.level, value).map(|(z, centre, scale, spread)| Z {
            z,
            component: Component::Level,
            expected: Expected::around(centre, 3.0 * scale),
            spread,
        });
        self.level.push(value);
        if self.seasonal.is_none() {
            self.seasonal = interval.and_then(Seasonal::for_interval);
        }
        let seasonal = self
            .seasonal
            .as_mut()
            .and_then(|s| s.observe(millis, value));
        match (level, seasonal) {
            (Some(l), Some(s)) if s.z.abs() > l.z.abs() => Some(s),
            (Some(l), _) => Some(l),
            (None, s) => s,
        }
    }

    /// Bytes this state holds, its own and on the heap.
    pub fn state_bytes(&self) -> usize {
        size_of::<Self>()
            + self.level.heap_bytes()
            + self.seasonal.as_ref().map_or(0, |s| {
                s.day.capacity() * size_of::<Option<(i64, f64)>>() + s.changes.heap_bytes()
            })
    }
}

impl Seasonal {
    /// A seasonal component for a series sampled every `interval` ms, if a day of it is short
    /// enough to keep.
    fn for_interval(interval: i64) -> Option<Seasonal> {
        if interval <= 0 {
            return None;
        }
        let slots = DAY_MS / interval;
        (DAY_MS / MAX_SAMPLES_PER_DAY <= interval && slots >= 2).then(|| Seasonal {
            interval,
            day: vec![None; usize::try_from(slots).unwrap_or(0)],
            changes: SortedWindow::new(SEASONAL_WINDOW),
        })
    }

    fn observe(&mut self, millis: i64, value: f64) -> Option<Z> {
        let slots = self.day.len() as i64;
        let slot = usize::try_from(millis.div_euclid(self.interval).rem_euclid(slots)).ok()?;
        let yesterday = self.day.get(slot).copied().flatten();
        self.day[slot] = Some((millis, value));
        // Only a value from about a day ago (within one interval) is yesterday's.
        let (then, before) = yesterday?;
        if (millis - then - DAY_MS).abs() > self.interval {
            return None;
        }
        let change = value - before;
        let z = robust_z(&self.changes, change).map(|(z, centre, scale, spread)| Z {
            z,
            component: Component::Seasonal,
            expected: Expected::around(before + centre, 3.0 * scale),
            spread,
        });
        self.changes.push(change);
        z
    }
}

/// A z-score as a score: `z² / (z² + 9)`, 0.5 at 3 robust deviations, 0.9 at 9, 0.99 at 30;
/// it never rounds far-out values together at 1 the way a Gaussian tail probability does.
fn z_score(z: f64) -> f64 {
    let z2 = z * z;
    if z2.is_finite() { z2 / (z2 + 9.0) } else { 1.0 }
}

/// `x`'s distance from the window's median in robust standard deviations (the inter-quartile
/// range / 1.349, at least a twentieth of the window's range so a series that is mostly flat
/// does not alarm at every small step), with the median, that scale and the inter-quartile
/// range / 1.349 alone.
pub(crate) fn robust_z(window: &SortedWindow, x: f64) -> Option<(f64, f64, f64, f64)> {
    if window.len() < MIN_HISTORY {
        return None;
    }
    let median = window.quantile(0.5);
    let iqr = window.quantile(0.75) - window.quantile(0.25);
    let range = window.quantile(1.0) - window.quantile(0.0);
    let scale = (iqr / 1.349)
        .max(range / 20.0)
        .max(1e-9 * (1.0 + median.abs()));
    Some(((x - median) / scale, median, scale, iqr / 1.349))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn daily(i: i64) -> f64 {
        let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
        100.0 + 50.0 * phase.sin() + ((i * 7919) % 13) as f64 * 0.5
    }

    #[test]
    fn a_spike_scores_high_and_ordinary_values_low() {
        let mut r = Robust::default();
        let mut worst_ordinary: f64 = 0.0;
        for i in 0..2_000 {
            let s = r.update(i * 5 * MIN, daily(i), Some(5 * MIN), false);
            if i > 600 {
                worst_ordinary = worst_ordinary.max(s.value);
            }
        }
        let spike = r.update(2_000 * 5 * MIN, daily(2_000) + 400.0, Some(5 * MIN), false);
        assert!(spike.value > 0.9, "{spike:?}");
        assert!(worst_ordinary < 0.5, "{worst_ordinary}");
    }

    #[test]
    fn a_value_normal_for_the_level_but_not_for_the_time_of_day_is_seen_by_the_seasonal_part() {
        let mut r = Robust::default();
        for i in 0..2_000 {
            r.update(i * 5 * MIN, daily(i), Some(5 * MIN), false);
        }
        // At the daily peak (sin = 1 at a quarter of the day), report the trough's value.
        let at = 2_016 + 72;
        for i in 2_000..at {
            r.update(i * 5 * MIN, daily(i), Some(5 * MIN), false);
        }
        let s = r.update(at * 5 * MIN, 50.0, Some(5 * MIN), false);
        assert_eq!(s.component, Component::Seasonal, "{s:?}");
        assert!(s.value > 0.5, "{s:?}");
        let e = s.expected.unwrap();
        assert!(e.low < 150.0 && 150.0 < e.high, "{e:?}");
    }

    #[test]
    fn fine_grained_series_keep_no_day() {
        let mut r = Robust::default();
        for i in 0..100 {
            r.update(i * 1_000, 1.0, Some(1_000), false);
        }
        assert!(r.seasonal.is_none());
        assert!(r.state_bytes() < 10_000);
    }
}
