//! The default detector: the robust components' surprise, scored as news. Each sample's
//! surprise (the log of its larger robust z-score) is compared with the largest surprise the
//! series showed lately (a peak that fades by [`PEAK_DECAY`] per sample): a sample as
//! surprising as the recent peak scores 0.5, twice as surprising 0.8, three times 0.9. One
//! incident therefore scores high at its onset and when it worsens, not at every sample, and
//! a series that is always noisy does not alarm at its usual noise.

use serde::{Deserialize, Serialize};

use crate::detector::Score;
use crate::robust::Robust;

/// How much of the last peak is still remembered after each sample (a half-life of about 140
/// samples: half a day at five-minute samples).
pub const PEAK_DECAY: f64 = 0.995;
/// Surprises the peak learns from before samples are scored against it.
pub const PEAK_WARMUP: u32 = 32;

/// The default detector's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grace {
    robust: Robust,
    peak: f64,
    learnt: u32,
}

impl Default for Grace {
    fn default() -> Self {
        Grace {
            robust: Robust::default(),
            peak: 0.0,
            learnt: 0,
        }
    }
}

impl Grace {
    /// Scores `value` at `millis`, then learns from it.
    pub fn update(
        &mut self,
        millis: i64,
        value: f64,
        interval: Option<i64>,
        _after_gap: bool,
    ) -> Score {
        let Some(z) = self.robust.observe(millis, value, interval) else {
            return Score::warming_up();
        };
        let surprise = z.z.abs().ln_1p();
        let ratio = surprise / self.peak.max(f64::MIN_POSITIVE);
        self.peak = (self.peak * PEAK_DECAY).max(surprise);
        if self.learnt < PEAK_WARMUP {
            self.learnt += 1;
            return Score::warming_up();
        }
        Score {
            value: news(ratio),
            component: z.component,
            expected: Some(z.expected),
        }
    }

    /// Bytes this state holds, its own and on the heap.
    pub fn state_bytes(&self) -> usize {
        size_of::<Self>() + self.robust.state_bytes() - size_of::<Robust>()
    }
}

/// `r² / (1 + r²)`: 0 for nothing new, 0.5 as surprising as the recent peak, towards 1 beyond.
fn news(ratio: f64) -> f64 {
    let r2 = ratio * ratio;
    if r2.is_finite() { r2 / (1.0 + r2) } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn noisy(i: i64) -> f64 {
        100.0 + ((i * 7919) % 23) as f64
    }

    #[test]
    fn an_incident_scores_high_at_its_onset_and_not_at_every_later_sample() {
        let mut g = Grace::default();
        let mut worst_ordinary: f64 = 0.0;
        for i in 0..3_000 {
            let s = g.update(i * 5 * MIN, noisy(i), Some(5 * MIN), false);
            if i > 1_000 {
                worst_ordinary = worst_ordinary.max(s.value);
            }
        }
        assert!(
            worst_ordinary < 0.8,
            "ordinary noise scored {worst_ordinary}"
        );
        let scores: Vec<f64> = (3_000..3_020)
            .map(|i| {
                g.update(i * 5 * MIN, noisy(i) + 500.0, Some(5 * MIN), false)
                    .value
            })
            .collect();
        assert!(scores[0] > 0.9, "onset: {scores:?}");
        assert!(scores[5..].iter().all(|s| *s < scores[0]), "{scores:?}");
    }

    #[test]
    fn the_first_scored_samples_are_not_alarms() {
        let mut g = Grace::default();
        let first = (0..200)
            .map(|i| g.update(i * 5 * MIN, noisy(i), Some(5 * MIN), false))
            .find(|s| s.component != crate::Component::Warmup)
            .unwrap();
        assert!(first.value < 0.9, "{first:?}");
    }

    #[test]
    fn scores_stay_in_the_unit_interval_on_hostile_values() {
        let mut g = Grace::default();
        for (i, v) in [0.0, f64::MAX, -f64::MAX, 1e-300, 0.0, f64::MAX]
            .into_iter()
            .cycle()
            .take(500)
            .enumerate()
        {
            let s = g.update(i as i64 * MIN, v, Some(MIN), false);
            assert!((0.0..=1.0).contains(&s.value), "{s:?}");
        }
    }
}
