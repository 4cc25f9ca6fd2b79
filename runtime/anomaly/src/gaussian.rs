//! NAB's windowed Gaussian, the baseline every score here is reported beside: each value's
//! Gaussian tail score against the mean and standard deviation of the values before it, over a
//! window of 6,400 values that, once full, moves 100 values at a time (NAB's tuned settings).

use serde::{Deserialize, Serialize};

use crate::detector::{Component, Expected, Score};
use crate::stats::{SlidingMoments, tail_score};

/// Values in the window.
pub const WINDOW: usize = 6_400;
/// Once the window is full, it moves this many values at a time.
pub const STEP: usize = 100;

/// The windowed Gaussian's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowedGaussian {
    window: SlidingMoments,
    pending: Vec<f64>,
    mean: f64,
    std: f64,
}

impl Default for WindowedGaussian {
    fn default() -> Self {
        WindowedGaussian {
            window: SlidingMoments::new(WINDOW),
            pending: Vec::new(),
            mean: 0.0,
            std: 1.0,
        }
    }
}

impl WindowedGaussian {
    /// Scores `value` against the window, then adds it. The first value scores 0; a window
    /// without spread counts as a standard deviation of 10⁻⁶, as NAB's does.
    pub fn update(&mut self, value: f64) -> Score {
        let score = if self.window.len() == 0 {
            Score::warming_up()
        } else {
            // Below the mean, NAB reflects the value about it first; so does this, to round
            // the same way.
            let above = if value < self.mean {
                2.0 * self.mean - value
            } else {
                value
            };
            Score {
                value: tail_score((above - self.mean) / self.std),
                component: Component::Gaussian,
                expected: Some(Expected::around(self.mean, 3.0 * self.std)),
            }
        };
        if self.window.len() < WINDOW {
            self.window.push(value);
            self.refresh();
        } else {
            self.pending.push(value);
            if self.pending.len() == STEP {
                for v in self.pending.drain(..) {
                    self.window.push(v);
                }
                self.refresh();
            }
        }
        score
    }

    fn refresh(&mut self) {
        self.mean = self.window.mean();
        let std = self.window.std();
        self.std = if std == 0.0 { 0.000_001 } else { std };
    }

    /// Bytes this state holds, its own and on the heap.
    pub fn state_bytes(&self) -> usize {
        size_of::<Self>() + self.window.heap_bytes() + self.pending.capacity() * size_of::<f64>()
    }
}
