//! The default detector: the robust components' surprise, scored as news. A sample scores its
//! full surprise when it is more surprising than anything the series did lately; within an
//! episode already scored, samples no more surprising than its peak score half, so one
//! incident raises one alarm rather than one per sample.

use serde::{Deserialize, Serialize};

use crate::detector::Score;
use crate::robust::Robust;
use crate::stats::surprise;

/// How much of the last peak is still remembered after each sample (a half-life of about 70
/// samples: six hours at five-minute samples).
pub const PEAK_DECAY: f64 = 0.99;

/// The default detector's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grace {
    robust: Robust,
    peak: f64,
}

impl Default for Grace {
    fn default() -> Self {
        Grace {
            robust: Robust::default(),
            peak: 0.0,
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
        let raw = surprise(z.z);
        let news = if raw > self.peak { raw } else { raw / 2.0 };
        self.peak = (self.peak * PEAK_DECAY).max(raw);
        Score {
            value: news,
            component: z.component,
            expected: Some(z.expected),
        }
    }

    /// Bytes this state holds, its own and on the heap.
    pub fn state_bytes(&self) -> usize {
        size_of::<Self>() + self.robust.state_bytes() - size_of::<Robust>()
    }
}
