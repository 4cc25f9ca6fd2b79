//! What a detector is fed: samples in time order with finite values. Everything else is refused
//! here and counted, so a detector never sees a NaN or a step back in time.

use serde::{Deserialize, Serialize};

/// Why a sample was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The value is NaN or infinite.
    #[error("the value is not a finite number")]
    NotFinite,
    /// The sample is older than one already seen for the series.
    #[error("the sample is older than the series' last one")]
    OutOfOrder,
    /// The series already has a sample at this time.
    #[error("the series already has a sample at this time")]
    Repeated,
}

/// Counts of the samples a series was offered, by fate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleCounts {
    /// Samples scored.
    pub accepted: u64,
    /// Refused: NaN or infinite.
    pub not_finite: u64,
    /// Refused: older than the last sample.
    pub out_of_order: u64,
    /// Refused: at the time of the last sample.
    pub repeated: u64,
    /// Accepted samples that came after a gap (more than [`GAP_FACTOR`] usual intervals).
    pub after_gap: u64,
}

/// A gap is a silence longer than this many usual sampling intervals.
pub const GAP_FACTOR: i64 = 3;

/// Gaps the usual interval is the median of.
const GAPS: usize = 9;

/// Checks each sample of one series before its detector sees it, and learns the series' usual
/// sampling interval: the median of the last [`GAPS`] gaps, so one pair of samples a millisecond
/// apart (or one long silence) does not redefine it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesGuard {
    last: Option<i64>,
    interval: Option<i64>,
    counts: SampleCounts,
    #[serde(default)]
    gaps: std::collections::VecDeque<i64>,
}

/// An accepted sample, as the guard saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accepted {
    /// Milliseconds since the previous accepted sample (`None` for the first).
    pub since_last: Option<i64>,
    /// Whether a gap preceded the sample.
    pub after_gap: bool,
}

impl SeriesGuard {
    /// Checks a sample at `millis` with `value`; counts it either way.
    pub fn check(&mut self, millis: i64, value: f64) -> Result<Accepted, Rejected> {
        if !value.is_finite() {
            self.counts.not_finite += 1;
            return Err(Rejected::NotFinite);
        }
        let since_last = match self.last {
            Some(last) if millis < last => {
                self.counts.out_of_order += 1;
                return Err(Rejected::OutOfOrder);
            }
            Some(last) if millis == last => {
                self.counts.repeated += 1;
                return Err(Rejected::Repeated);
            }
            Some(last) => Some(millis - last),
            None => None,
        };
        let after_gap = match (since_last, self.interval) {
            (Some(d), Some(i)) => d > i.saturating_mul(GAP_FACTOR),
            _ => false,
        };
        if let Some(d) = since_last {
            if self.gaps.len() == GAPS {
                self.gaps.pop_front();
            }
            self.gaps.push_back(d);
            let mut sorted = [0i64; GAPS];
            let n = self.gaps.len();
            for (slot, gap) in sorted.iter_mut().zip(&self.gaps) {
                *slot = *gap;
            }
            sorted[..n].sort_unstable();
            self.interval = Some(sorted[n / 2]);
        }
        self.last = Some(millis);
        self.counts.accepted += 1;
        if after_gap {
            self.counts.after_gap += 1;
        }
        Ok(Accepted {
            since_last,
            after_gap,
        })
    }

    /// The usual interval between accepted samples (the median of the last few), in
    /// milliseconds.
    pub fn interval(&self) -> Option<i64> {
        self.interval
    }

    /// What the series was offered so far.
    pub fn counts(&self) -> SampleCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_samples_are_refused_and_counted_and_gaps_noticed() {
        let mut g = SeriesGuard::default();
        assert!(g.check(0, 1.0).is_ok());
        assert!(g.check(60_000, 1.0).is_ok());
        assert_eq!(g.check(90_000, f64::NAN), Err(Rejected::NotFinite));
        assert_eq!(g.check(90_000, f64::INFINITY), Err(Rejected::NotFinite));
        assert_eq!(g.check(30_000, 1.0), Err(Rejected::OutOfOrder));
        assert_eq!(g.check(60_000, 2.0), Err(Rejected::Repeated));
        let after = g.check(600_000, 1.0).unwrap();
        assert!(after.after_gap);
        assert_eq!(after.since_last, Some(540_000));
        assert!(!g.check(660_000, 1.0).unwrap().after_gap);
        let c = g.counts();
        assert_eq!(
            (
                c.accepted,
                c.not_finite,
                c.out_of_order,
                c.repeated,
                c.after_gap
            ),
            (4, 2, 1, 1, 1)
        );
        assert_eq!(g.interval(), Some(60_000));
    }

    #[test]
    fn one_odd_gap_does_not_redefine_the_interval() {
        let mut g = SeriesGuard::default();
        for i in 0..20 {
            g.check(i * 300_000, 1.0).unwrap();
        }
        g.check(19 * 300_000 + 1, 1.0).unwrap();
        assert_eq!(g.interval(), Some(300_000));
    }
}
