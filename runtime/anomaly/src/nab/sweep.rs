//! NAB's sweep: what each row would earn or cost as a detection, and the threshold that earns
//! most.

use super::corpus::{DataFile, Profile};

/// Where a row lies for scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// In the probationary period: never scored.
    Probation,
    /// Outside every window: a detection is a false positive.
    Outside,
    /// In the window with this id (unique across the corpus).
    Window(u32),
}

/// One row as NAB's sweep sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The detector's score for the row.
    pub score: f64,
    /// What a detection here earns (positive) or costs (negative).
    pub sweep: f64,
    /// Where the row lies.
    pub slot: Slot,
}

/// `2 / (1 + e^{5x}) - 1`: 0.987 at a window's left edge (`x = -1`), 0 at its right edge, -1
/// three widths past it.
pub(crate) fn scaled_sigmoid(x: f64) -> f64 {
    if x >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// Rows of a file of `rows` rows that are probation: 15 %, at most 750.
pub fn probation(rows: usize) -> usize {
    ((rows as f64 * 0.15).floor()).min(750.0) as usize
}

/// The sweep of one file: every row's [`Point`]. Window ids are `first_window` onwards, one per
/// window of the file.
pub fn sweep(file: &DataFile, scores: &[f64], profile: &Profile, first_window: u32) -> Vec<Point> {
    let probation = probation(file.rows.len());
    let max_tp = scaled_sigmoid(-1.0);
    let mut points = Vec::with_capacity(scores.len());
    let mut windows = file.windows.iter().enumerate().peekable();
    let mut current: Option<(u32, usize, usize)> = None; // id, right edge, width
    let mut previous: Option<(usize, usize)> = None; // right edge, width
    for (i, &score) in scores.iter().enumerate() {
        if let Some(&(k, &(left, right))) = windows.peek()
            && left == i
        {
            windows.next();
            current = Some((first_window + k as u32, right, right - left + 1));
        }
        let (sweep, slot) = match current {
            Some((id, right, width)) => {
                let position = -((right as f64) - (i as f64) + 1.0) / width as f64;
                (
                    scaled_sigmoid(position) * profile.tp / max_tp,
                    Slot::Window(id),
                )
            }
            None => {
                let past = match previous {
                    None => 3.0,
                    // A one-row window has no width to measure by: anything past it is far.
                    Some((_, 1)) => 3.0,
                    Some((right, width)) => (i.abs_diff(right) as f64) / (width - 1) as f64,
                };
                (scaled_sigmoid(past) * profile.fp, Slot::Outside)
            }
        };
        let slot = if i < probation { Slot::Probation } else { slot };
        points.push(Point { score, sweep, slot });
        if let Some((_, right, width)) = current
            && right == i
        {
            previous = Some((right, width));
            current = None;
        }
    }
    points
}

/// The threshold maximising the summed score of `points` (a whole corpus' sweep), and that
/// score. Every distinct score is tried, highest first; `1.1` (nothing detected) is the first
/// candidate, and of equal scores the higher threshold wins, as in NAB.
pub fn best_threshold(points: &[Point], profile: &Profile) -> (f64, f64) {
    let mut scorable: Vec<&Point> = points
        .iter()
        .filter(|p| p.slot != Slot::Probation)
        .collect();
    scorable.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut window_best: std::collections::HashMap<u32, f64> = std::collections::HashMap::new();
    for p in &scorable {
        if let Slot::Window(id) = p.slot {
            window_best.insert(id, -profile.fn_);
        }
    }
    let mut windows_total: f64 = window_best.values().sum();
    let mut fp_total = 0.0;
    let mut threshold = 1.1;
    let mut best = (threshold, windows_total);
    for p in scorable {
        if p.score != threshold {
            let now = windows_total + fp_total;
            if now > best.1 {
                best = (threshold, now);
            }
            threshold = p.score;
        }
        match p.slot {
            Slot::Window(id) => {
                if let Some(b) = window_best.get_mut(&id)
                    && p.sweep > *b
                {
                    windows_total += p.sweep - *b;
                    *b = p.sweep;
                }
            }
            _ => fp_total += p.sweep,
        }
    }
    let now = windows_total + fp_total;
    if now > best.1 {
        best = (threshold, now);
    }
    best
}

/// One file's score and counts at `threshold`: rows scoring at or above it are detections.
pub fn file_score(points: &[Point], threshold: f64, profile: &Profile) -> FileTally {
    let mut tally = FileTally::default();
    let mut best: std::collections::BTreeMap<u32, Option<f64>> = Default::default();
    for p in points {
        let detected = p.score >= threshold;
        match p.slot {
            Slot::Probation => {}
            Slot::Outside => {
                if detected {
                    tally.fp += 1;
                    tally.score += p.sweep;
                }
            }
            Slot::Window(id) => {
                let b = best.entry(id).or_insert(None);
                if detected {
                    tally.tp += 1;
                    *b = Some(b.map_or(p.sweep, |v: f64| v.max(p.sweep)));
                }
            }
        }
    }
    for b in best.values() {
        match b {
            Some(v) => {
                tally.score += v;
                tally.windows_found += 1;
            }
            None => {
                tally.score -= profile.fn_;
                tally.windows_missed += 1;
            }
        }
    }
    tally
}

/// A file's score at one threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FileTally {
    /// The summed score.
    pub score: f64,
    /// Detections inside windows (rows).
    pub tp: usize,
    /// Detections outside windows (rows).
    pub fp: usize,
    /// Windows with at least one detection.
    pub windows_found: usize,
    /// Windows without.
    pub windows_missed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nab::Row;

    fn file(rows: usize, windows: Vec<(usize, usize)>) -> DataFile {
        DataFile {
            name: "c/f.csv".into(),
            category: "c".into(),
            rows: (0..rows)
                .map(|i| Row {
                    millis: i as i64,
                    value: 0.0,
                })
                .collect(),
            windows,
        }
    }

    fn standard() -> Profile {
        Profile::nab().remove(0)
    }

    #[test]
    fn the_sigmoid_is_nabs() {
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert_eq!(scaled_sigmoid(3.0), -1.0);
    }

    #[test]
    fn an_early_detection_earns_more_than_a_late_one_and_a_miss_costs_fn() {
        let f = file(1_000, vec![(500, 599)]);
        let p = standard();
        let mut scores = vec![0.0; 1_000];
        scores[500] = 1.0;
        let early = file_score(&sweep(&f, &scores, &p, 0), 1.0, &p);
        scores[500] = 0.0;
        scores[590] = 1.0;
        let late = file_score(&sweep(&f, &scores, &p, 0), 1.0, &p);
        assert!((early.score - p.tp).abs() < 0.02, "{early:?}");
        assert!(late.score < early.score && late.score > 0.0);
        let miss = file_score(&sweep(&f, &[0.0; 1_000], &p, 0), 1.0, &p);
        assert_eq!(miss.score, -1.0);
        assert_eq!(miss.windows_missed, 1);
    }

    #[test]
    fn a_false_positive_costs_less_right_after_a_window_and_probation_is_free() {
        let f = file(1_000, vec![(500, 599)]);
        let p = standard();
        let cost_at = |i: usize| {
            let mut scores = vec![0.0; 1_000];
            scores[i] = 1.0;
            scores[550] = 1.0;
            file_score(&sweep(&f, &scores, &p, 0), 1.0, &p).score
                - file_score(
                    &sweep(
                        &f,
                        &{
                            let mut s = vec![0.0; 1_000];
                            s[550] = 1.0;
                            s
                        },
                        &p,
                        0,
                    ),
                    1.0,
                    &p,
                )
                .score
        };
        assert!(
            (cost_at(300) + p.fp).abs() < 1e-9,
            "before any window: full cost"
        );
        assert!(
            cost_at(601) > cost_at(700),
            "just past the window costs less"
        );
        assert_eq!(cost_at(10), 0.0, "probation is not scored");
    }

    #[test]
    fn the_best_threshold_is_the_one_scoring_most() {
        let f = file(1_000, vec![(500, 599)]);
        let p = standard();
        let mut scores = vec![0.1; 1_000];
        scores[300] = 0.8; // a false positive
        scores[520] = 0.7; // the detection
        let points = sweep(&f, &scores, &p, 0);
        let (threshold, best) = best_threshold(&points, &p);
        assert_eq!(threshold, 0.7);
        let direct = file_score(&points, 0.7, &p).score;
        assert!((best - direct).abs() < 1e-12);
        assert!((file_score(&points, 0.75, &p).score - (-p.fn_ - p.fp)).abs() < 1e-12);
        assert!(direct > 0.7);
    }
}
