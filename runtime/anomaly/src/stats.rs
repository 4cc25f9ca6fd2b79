//! Small streaming statistics the detectors share: moments and order statistics over a sliding
//! window of fixed capacity, and the Gaussian tail.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// How far into a Gaussian's tail `z` standard deviations lie, as NAB's detectors score it:
/// `1 - Q(|z|)`, 0.5 at the mean and 1 far out.
pub(crate) fn tail_score(z: f64) -> f64 {
    1.0 - 0.5 * libm::erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// Mean and population variance of the last `capacity` values, updated in O(1) per value
/// (Welford's update, added and removed; recomputed exactly once per `capacity` removals so
/// rounding cannot drift).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SlidingMoments {
    values: VecDeque<f64>,
    capacity: usize,
    mean: f64,
    m2: f64,
    since_exact: usize,
}

impl SlidingMoments {
    pub(crate) fn new(capacity: usize) -> SlidingMoments {
        SlidingMoments {
            values: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
            mean: 0.0,
            m2: 0.0,
            since_exact: 0,
        }
    }

    pub(crate) fn push(&mut self, x: f64) {
        if self.values.len() == self.capacity
            && let Some(old) = self.values.pop_front()
        {
            let n = self.values.len() as f64;
            if n == 0.0 {
                self.mean = 0.0;
                self.m2 = 0.0;
            } else {
                let d = old - self.mean;
                self.mean -= d / n;
                self.m2 -= d * (old - self.mean);
            }
            self.since_exact += 1;
        }
        self.values.push_back(x);
        let n = self.values.len() as f64;
        let d = x - self.mean;
        self.mean += d / n;
        self.m2 += d * (x - self.mean);
        if self.since_exact >= self.capacity {
            self.recompute();
        }
    }

    fn recompute(&mut self) {
        let n = self.values.len() as f64;
        self.mean = self.values.iter().sum::<f64>() / n;
        self.m2 = self.values.iter().map(|v| (v - self.mean).powi(2)).sum();
        self.since_exact = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    pub(crate) fn mean(&self) -> f64 {
        self.mean
    }

    /// Population standard deviation.
    pub(crate) fn std(&self) -> f64 {
        if self.values.is_empty() {
            return 0.0;
        }
        (self.m2.max(0.0) / self.values.len() as f64).sqrt()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.values.capacity() * size_of::<f64>()
    }
}

/// The last `capacity` values, also kept sorted for quantiles. Each value costs a binary search
/// and a move of at most `capacity` floats (a few hundred bytes: constant per sample).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SortedWindow {
    order: VecDeque<f64>,
    sorted: Vec<f64>,
    capacity: usize,
}

impl SortedWindow {
    pub(crate) fn new(capacity: usize) -> SortedWindow {
        let capacity = capacity.max(1);
        SortedWindow {
            order: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
            capacity,
        }
    }

    pub(crate) fn push(&mut self, x: f64) {
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            let at = self.sorted.partition_point(|v| *v < old);
            if at < self.sorted.len() {
                self.sorted.remove(at);
            }
        }
        self.order.push_back(x);
        let at = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(at, x);
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The `q` quantile (0 to 1), nearest rank; 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let last = self.sorted.len() - 1;
        let at = (q.clamp(0.0, 1.0) * last as f64).round() as usize;
        self.sorted[at.min(last)]
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        (self.order.capacity() + self.sorted.capacity()) * size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_moments_agree_with_a_two_pass_computation() {
        let mut m = SlidingMoments::new(50);
        let xs: Vec<f64> = (0..1_000).map(|i| 1e7 + f64::from(i % 17) * 3.5).collect();
        for x in &xs {
            m.push(*x);
        }
        let tail = &xs[xs.len() - 50..];
        let mean = tail.iter().sum::<f64>() / 50.0;
        let var = tail.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 50.0;
        assert!((m.mean() - mean).abs() < 1e-6);
        assert!((m.std() - var.sqrt()).abs() < 1e-6);
        assert_eq!(m.len(), 50);
    }

    #[test]
    fn sorted_window_keeps_the_last_values_in_order() {
        let mut w = SortedWindow::new(5);
        for x in [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 0.0] {
            w.push(x);
        }
        // The last five: 4, 2, 3, 10, 0.
        assert_eq!(w.quantile(0.0), 0.0);
        assert_eq!(w.quantile(0.5), 3.0);
        assert_eq!(w.quantile(1.0), 10.0);
        assert_eq!(w.len(), 5);
    }

    #[test]
    fn tail_scores_run_from_one_half_at_the_mean_to_one() {
        assert!((tail_score(0.0) - 0.5).abs() < 1e-12);
        assert_eq!(tail_score(40.0), 1.0);
    }
}
