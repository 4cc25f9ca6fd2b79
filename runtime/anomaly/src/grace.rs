//! The default detector: the robust components' surprise, scored as news. Each sample's
//! surprise (the log of its larger robust z-score) is compared with the largest surprise the
//! series showed lately: a peak that fades with a half-life of [`PEAK_MEMORY`] of the samples
//! the series has had (within [`PEAK_HALF_LIFE_MIN`] and [`PEAK_HALF_LIFE_MAX`]), and the largest
//! surprise seen around this time of day (within [`DAY_REACH_MS`]) over the last day. A sample
//! as surprising as that scores 0.5, twice as surprising 0.8, three times 0.9. One incident
//! therefore scores high at its onset and when it worsens, not at every sample; a series that
//! is always noisy does not alarm at its usual noise; and a series with a daily habit (a
//! nightly job's spike, a morning jump) does not alarm at it every day, even when the habit
//! comes a few minutes early or late. Surprises are measured in robust deviations of at least
//! [`RANGE_FLOOR`] of the range the series ever reached, and at least the series' usual
//! deviation (a running median of its robust deviations, moving [`USUAL_SPREAD_STEP`] per
//! sample): after a flat run, a run of zeros or a calm spell the recent deviation is tiny, and
//! an ordinary move for the series is not news. And the largest surprise lately counts as at
//! least [`MIN_USUAL_Z`] robust deviations' worth: once the peak has faded during a calm
//! stretch, a wiggle within one deviation is not news however small the peak has become.
//!
//! Beside that news, a value outside every range the series showed before (the novelty
//! component: values quantised into bins learnt from the first values, as the Contextual
//! Anomaly Detector quantises them) scores [`NOVEL_SCORE`], once per episode (the series
//! rests until it is back in its old range): a level the series never reached is news even
//! when the series creeps to it, or when yesterday was as noisy.
//!
//! The same novelty is watched on the series' settled level, an exponential moving average of
//! its values (weight [`SETTLE_WEIGHT`] on each new value) that starts from the bins and the
//! range the raw values showed: a level shift or a slow drift that stays within the range the
//! raw noise reached, but that the series never settled at before, is novel too. The two
//! views rest together: one episode, one alarm. News that scores as high as a novel value
//! would starts that rest too: an excursion that made news is not novel a sample later.

use serde::{Deserialize, Serialize};

use crate::detector::{Component, Expected, Score};
use crate::novelty::Novelty;
use crate::robust::{Robust, Z};

/// The peak's half-life as a share of the samples the series has had: it remembers about the
/// last twentieth of the series' history, so a long series needs a larger surprise than a young
/// one to make news, and the alarms a series raises at its ordinary noise grow with the log of
/// its length, not in proportion to it.
pub const PEAK_MEMORY: f64 = 0.05;
/// The peak's half-life in samples, at least (as many as the peak's warm-up).
pub const PEAK_HALF_LIFE_MIN: f64 = 32.0;
/// The peak's half-life in samples, at most (a week of five-minute samples): one surprise a
/// year ago does not silence a series for months.
pub const PEAK_HALF_LIFE_MAX: f64 = 2_016.0;
/// Surprises the peak learns from before samples are scored against it.
pub const PEAK_WARMUP: u32 = 32;
/// The day's memory of surprises is kept in bins of this many milliseconds (five minutes).
pub const DAY_BIN_MS: i64 = 300_000;
/// A surprise is compared with yesterday's surprises this close to its time of day (half an
/// hour either way).
pub const DAY_REACH_MS: i64 = 1_800_000;
/// The largest surprise scored: the log of the largest finite z-score; beyond it every sample
/// is equally surprising, and the peak stays finite.
const MAX_SURPRISE: f64 = 710.0;
/// The smallest usual surprise a sample is compared with, as a z-score: a sample is news only
/// when it is surprising beyond one robust deviation, however calm the series was lately.
/// After a calm or flat stretch the recent peak fades towards nothing, and a ratio of two
/// surprises that both lie within the noise (a wiggle of a twentieth of a deviation against a
/// peak of a hundredth) is no evidence of anything.
pub const MIN_USUAL_Z: f64 = 1.0;
/// The score of a value outside every range the series showed before (novelty): above
/// the alarm threshold, below what news far beyond the recent peak scores.
pub const NOVEL_SCORE: f64 = 0.8;

/// The smallest robust deviation a surprise is measured in, as a fraction of the range the
/// series ever reached (the novelty component's bins seen).
pub const RANGE_FLOOR: f64 = 0.005;

/// The weight of each new value in the settled level (a time constant of about five samples).
pub const SETTLE_WEIGHT: f64 = 0.2;

/// How far the series' usual spread moves towards each sample's robust deviation, as a
/// factor: it rises by 0.1 % when the deviation is wider and falls by as much when it is
/// narrower, so it follows the median deviation the series shows (halving or doubling in about
/// 700 samples) and one odd stretch hardly moves it.
pub const USUAL_SPREAD_STEP: f64 = 0.001;

const DAY_MS: i64 = 86_400_000;
const DAY_BINS: i64 = DAY_MS / DAY_BIN_MS;
const DAY_REACH: i64 = DAY_REACH_MS / DAY_BIN_MS;

/// The default detector's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grace {
    robust: Robust,
    peak: f64,
    learnt: u32,
    /// Per bin of the day: which bin since the epoch last wrote it, and the largest surprise
    /// in that bin. Empty until the first scored sample.
    #[serde(default)]
    day: Vec<(i64, f32)>,
    #[serde(default)]
    novelty: Novelty,
    /// The settled level: the moving average of the values.
    #[serde(default)]
    settled: Option<f64>,
    /// Novelty of the settled level, once the raw values' bins are learnt.
    #[serde(default)]
    settled_novelty: Option<Box<Novelty>>,
    /// The series' usual robust deviation (a running median of it).
    #[serde(default)]
    usual_spread: Option<f64>,
    /// Samples scored or learnt from since the robust parts warmed up (saturating).
    #[serde(default)]
    age: u32,
}

impl Default for Grace {
    fn default() -> Self {
        Grace {
            robust: Robust::default(),
            peak: 0.0,
            learnt: 0,
            day: Vec::new(),
            novelty: Novelty::default(),
            settled: None,
            settled_novelty: None,
            usual_spread: None,
            age: 0,
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
        let Some(mut z) = self.robust.observe(millis, value, interval) else {
            return Score::warming_up();
        };
        self.floor_deviation(&mut z, value);
        let surprise = if z.z.is_nan() {
            0.0
        } else {
            z.z.abs().ln_1p().min(MAX_SURPRISE)
        };
        // Never less than one deviation's surprise: within the noise a ratio means nothing.
        let usual = self.peak.max(self.around_this_time(millis, surprise));
        let ratio = surprise / usual.max(MIN_USUAL_Z.ln_1p());
        self.age = self.age.saturating_add(1);
        self.peak = (self.peak * self.peak_decay()).max(surprise);
        let novel = self.novelty.observe(value);
        let settled = self.settle(value);
        // One episode, one alarm: the raw values and the settled level rest together.
        if novel.is_some()
            && let Some(s) = self.settled_novelty.as_mut()
        {
            s.start_rest();
        }
        if settled.is_some() {
            self.novelty.start_rest();
        }
        let novel = novel.or(settled);
        if self.learnt < PEAK_WARMUP {
            self.learnt += 1;
            return Score::warming_up();
        }
        let value = news(ratio);
        // One episode, one alarm: news that scored as high as a novelty would have starts the
        // novelty's rest, so the record the same excursion sets a sample later is not a second
        // alarm.
        if value >= NOVEL_SCORE {
            self.novelty.start_rest();
            if let Some(s) = self.settled_novelty.as_mut() {
                s.start_rest();
            }
        }
        match novel {
            Some(seen) if value < NOVEL_SCORE => Score {
                value: NOVEL_SCORE,
                component: Component::Novel,
                expected: Some(seen),
            },
            _ => Score {
                value,
                component: z.component,
                expected: Some(z.expected),
            },
        }
    }

    /// How much of the peak is still remembered after this sample: a half-life of
    /// [`PEAK_MEMORY`] of the series' age, within [`PEAK_HALF_LIFE_MIN`] and
    /// [`PEAK_HALF_LIFE_MAX`].
    fn peak_decay(&self) -> f64 {
        let half_life =
            (PEAK_MEMORY * f64::from(self.age)).clamp(PEAK_HALF_LIFE_MIN, PEAK_HALF_LIFE_MAX);
        (-std::f64::consts::LN_2 / half_life).exp()
    }

    /// Measures `z` in deviations of at least [`RANGE_FLOOR`] of the range the series ever
    /// reached, and at least the series' usual deviation: a series that sat still for a while
    /// (a flat run, a run of zeros, a calm spell) does not make news of a move that is ordinary
    /// for it.
    fn floor_deviation(&mut self, z: &mut Z, value: f64) {
        let Some(range) = self.novelty.range() else {
            return;
        };
        let centre = (z.expected.low + z.expected.high) / 2.0;
        let scale = (z.expected.high - z.expected.low) / 6.0;
        let usual = self.follow_spread(z.spread);
        let floor = ((range.high - range.low) * RANGE_FLOOR).max(usual);
        if floor.is_finite() && floor > scale {
            z.z = (value - centre) / floor;
            z.expected = Expected::around(centre, 3.0 * floor);
        }
    }

    /// Moves the usual spread a step towards `spread` (starting from it), and returns it.
    fn follow_spread(&mut self, spread: f64) -> f64 {
        let usual = match self.usual_spread {
            Some(u) if !spread.is_finite() => u,
            Some(u) if u > 0.0 => {
                if spread > u {
                    u * (1.0 + USUAL_SPREAD_STEP)
                } else {
                    u / (1.0 + USUAL_SPREAD_STEP)
                }
            }
            _ => spread,
        };
        let usual = if usual.is_finite() { usual } else { 0.0 };
        self.usual_spread = Some(usual);
        usual
    }

    /// Moves the settled level towards `value`, and whether the settled level lies outside
    /// every range seen before (with that range).
    fn settle(&mut self, value: f64) -> Option<Expected> {
        let level = match self.settled {
            Some(m) => {
                let m = (1.0 - SETTLE_WEIGHT) * m + SETTLE_WEIGHT * value;
                if m.is_finite() { m } else { value }
            }
            None => value,
        };
        self.settled = Some(level);
        if self.settled_novelty.is_none() {
            if !self.novelty.learnt() {
                return None;
            }
            self.settled_novelty = Some(Box::new(self.novelty.clone()));
        }
        self.settled_novelty.as_mut()?.observe(level)
    }

    /// The largest surprise within [`DAY_REACH_MS`] of this time of day yesterday (and earlier
    /// today, where today already overwrote yesterday's bin), then remembers `surprise` in
    /// this time's bin.
    fn around_this_time(&mut self, millis: i64, surprise: f64) -> f64 {
        if self.day.is_empty() {
            self.day = vec![(i64::MIN, 0.0); DAY_BINS as usize];
        }
        let now = millis.div_euclid(DAY_BIN_MS);
        let slot = |bin: i64| bin.rem_euclid(DAY_BINS) as usize;
        let mut usual: f64 = 0.0;
        for d in -DAY_REACH..=DAY_REACH {
            let yesterday = now - DAY_BINS + d;
            let (bin, s) = self.day[slot(yesterday)];
            if bin == yesterday || (d <= 0 && bin == now + d) {
                usual = usual.max(f64::from(s));
            }
        }
        let here = &mut self.day[slot(now)];
        let s = surprise as f32;
        *here = if here.0 == now {
            (now, here.1.max(s))
        } else {
            (now, s)
        };
        usual
    }

    /// Bytes this state holds, its own and on the heap.
    pub fn state_bytes(&self) -> usize {
        size_of::<Self>() + self.robust.state_bytes() - size_of::<Robust>()
            + self.day.capacity() * size_of::<(i64, f32)>()
            + self.novelty.heap_bytes()
            + self
                .settled_novelty
                .as_ref()
                .map_or(0, |n| size_of::<Novelty>() + n.heap_bytes())
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

    /// The threshold NAB's standard profile optimises to for this detector on the NAB
    /// development set (0.76427), rounded down: the server's default alarm.
    const NAB_STANDARD_THRESHOLD: f64 = 0.7642;

    fn ordinary(i: i64) -> f64 {
        200.0 + ((i * 7919) % 23) as f64
    }

    /// Scores of 300 ordinary five-minute samples, then of `after` samples from `then`.
    fn after_ordinary(then: impl Fn(i64) -> f64, after: i64) -> (Vec<Score>, Vec<f64>) {
        let mut g = Grace::default();
        let scores = (0..300)
            .map(|i| g.update(i * 5 * MIN, ordinary(i), Some(5 * MIN), false))
            .collect();
        let later = (300..300 + after)
            .map(|i| g.update(i * 5 * MIN, then(i), Some(5 * MIN), false).value)
            .collect();
        (scores, later)
    }

    #[test]
    fn a_jump_alarms_at_once_and_ordinary_samples_do_not() {
        let (ordinary_scores, jump) = after_ordinary(|i| ordinary(i) + 700.0, 5);
        let worst = ordinary_scores
            .iter()
            .filter(|s| s.component != crate::Component::Warmup)
            .map(|s| s.value)
            .fold(0.0, f64::max);
        assert!(worst < NAB_STANDARD_THRESHOLD, "ordinary: {worst}");
        assert!(jump[0] > NAB_STANDARD_THRESHOLD, "{jump:?}");
    }

    #[test]
    fn a_level_shift_alarms_once_not_again_when_the_settled_level_gets_there() {
        let (_, shifted) = after_ordinary(|i| ordinary(i) + 60.0, 40);
        assert!(shifted[0] >= NAB_STANDARD_THRESHOLD, "{shifted:?}");
        // The values and their settled level are two views of one episode: one alarming
        // sample, not a second one when the settled level crosses the range it knew.
        let alarming = shifted
            .iter()
            .filter(|s| **s >= NAB_STANDARD_THRESHOLD)
            .count();
        assert_eq!(alarming, 1, "{shifted:?}");
    }

    #[test]
    fn a_ramp_alarms_within_three_samples() {
        let (_, ramp) = after_ordinary(|i| ordinary(i) + 30.0 * (i - 299) as f64, 3);
        assert!(
            ramp.iter().any(|s| *s >= NAB_STANDARD_THRESHOLD),
            "{ramp:?}"
        );
    }

    #[test]
    fn after_a_calm_spell_surprises_are_measured_in_the_usual_spread() {
        // A series whose values usually spread over 0..100, calm (within 0..2) for long
        // enough that its recent deviation shrinks to the calm's.
        let wide = |i: i64| ((i * 7919) % 101) as f64;
        let mut g = Grace::default();
        let mut usual = None;
        for i in 0..3_000 {
            let s = g.update(i * 5 * MIN, wide(i), Some(5 * MIN), false);
            usual = s.expected;
        }
        for i in 3_000..3_250 {
            g.update(i * 5 * MIN, 50.0 + (i % 3) as f64, Some(5 * MIN), false);
        }
        let back = g.update(3_250 * 5 * MIN, 70.0, Some(5 * MIN), false);
        let (usual, back) = (usual.unwrap(), back.expected.unwrap());
        let width = |e: Expected| e.high - e.low;
        // The calm spell's deviation alone would expect 50 ± a few, and a move of 20 (ordinary
        // for the series) would be tens of deviations out.
        assert!(
            width(back) > 0.5 * width(usual),
            "expected {back:?} after the calm, {usual:?} before"
        );
    }

    #[test]
    fn after_a_long_flat_run_a_move_within_one_deviation_is_not_news() {
        // A series that once reached 10,000 (so its deviations are at least 50) sits flat for
        // long enough that its recent peak of surprise fades to nothing.
        let mut g = Grace::default();
        let mut at = |i: i64, v: f64| g.update(i * 5 * MIN, v, Some(5 * MIN), false).value;
        for i in 0..300 {
            at(i, ordinary(i) + if i == 100 { 10_000.0 } else { 0.0 });
        }
        for i in 300..2_300 {
            at(i, 200.0);
        }
        // A move of 5, a tenth of a deviation: a ratio of two surprises within the noise.
        let wiggle = at(2_300, 205.0);
        assert!(wiggle < 0.5, "a wiggle within the noise scored {wiggle}");
        // A move of twenty deviations is still news.
        let jump = at(2_301, 1_200.0);
        assert!(jump >= NAB_STANDARD_THRESHOLD, "{jump}");
    }

    #[test]
    fn news_that_alarmed_at_an_excursion_is_not_followed_by_a_novelty_alarm_for_it() {
        let mut g = Grace::default();
        let mut at = |i: i64, v: f64| g.update(i * 5 * MIN, v, Some(5 * MIN), false).value;
        // Ordinary values, one excursion to about 420 long ago, ordinary values again.
        for i in 0..1_300 {
            let excursion = (300..305).contains(&i);
            at(i, ordinary(i) + if excursion { 200.0 } else { 0.0 });
        }
        // The series jumps to where the excursion went (news), then past it (a record).
        let jump = at(1_300, 420.0);
        let record = at(1_301, 480.0);
        assert!(jump >= NAB_STANDARD_THRESHOLD, "{jump}");
        assert!(
            record < NAB_STANDARD_THRESHOLD,
            "one episode, one alarm: {record}"
        );
    }

    #[test]
    fn a_long_series_does_not_alarm_at_every_recurring_spike_as_it_ages() {
        // The same spike every 400 samples (not at the same time of day), for 20,000 samples:
        // early on each spike is news, a long series' memory holds the spikes before it.
        let mut g = Grace::default();
        let spikes: Vec<(i64, f64)> = (0..20_000)
            .filter_map(|i| {
                let spike = i % 400 == 399;
                let v = noisy(i) + if spike { 300.0 } else { 0.0 };
                let s = g.update(i * 5 * MIN, v, Some(5 * MIN), false);
                spike.then_some((i, s.value))
            })
            .collect();
        let alarms = |from: i64, to: i64| {
            spikes
                .iter()
                .filter(|(i, s)| (from..to).contains(i) && *s >= NAB_STANDARD_THRESHOLD)
                .count()
        };
        assert!(alarms(0, 5_000) >= 5, "{spikes:?}");
        assert!(alarms(15_000, 20_000) <= 1, "{spikes:?}");
    }

    #[test]
    fn a_daily_habit_is_not_news_but_the_same_spike_at_another_time_is() {
        // A quiet series with a spike every day at about 03:00, up to 15 minutes late.
        let mut g = Grace::default();
        let per_day = 288;
        let spike_at = |day: i64| day * per_day + 36 + (day * 7) % 4;
        let mut habit: f64 = 0.0;
        for day in 0..6 {
            for j in 0..per_day {
                let i = day * per_day + j;
                let v = noisy(i) + if i == spike_at(day) { 400.0 } else { 0.0 };
                let s = g.update(i * 5 * MIN, v, Some(5 * MIN), false);
                if day >= 2 && i == spike_at(day) {
                    habit = habit.max(s.value);
                }
            }
        }
        // The same spike at noon.
        let i = 6 * per_day + 144;
        for k in 6 * per_day..i {
            g.update(k * 5 * MIN, noisy(k), Some(5 * MIN), false);
        }
        let odd = g.update(i * 5 * MIN, noisy(i) + 400.0, Some(5 * MIN), false);
        assert!(habit < 0.62, "the habit scored {habit}");
        assert!(odd.value > 0.8, "{odd:?}");
    }
}
