//! The detectors behind one name each, and what they answer per sample.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::gaussian::WindowedGaussian;
use crate::grace::Grace;
use crate::robust::Robust;
use crate::series::{Rejected, SampleCounts, SeriesGuard};

/// How unusual one sample is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// From 0 (as expected) to 1 (far outside anything the series did).
    pub value: f64,
    /// What saw it.
    pub component: Component,
    /// The range the component expected the value in, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
}

impl Score {
    /// The score of a sample the detector had too little history to judge.
    pub fn warming_up() -> Score {
        Score {
            value: 0.0,
            component: Component::Warmup,
            expected: None,
        }
    }
}

/// The part of a detector a score comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// Too little history yet.
    Warmup,
    /// The windowed Gaussian's tail.
    Gaussian,
    /// The value against the recent values' median and spread.
    Level,
    /// The change since the same time yesterday against the usual day-on-day change.
    Seasonal,
    /// The value against every range the series showed before.
    Novel,
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Component::Warmup => "warmup",
            Component::Gaussian => "gaussian",
            Component::Level => "level",
            Component::Seasonal => "seasonal",
            Component::Novel => "novel",
        })
    }
}

/// A range of values, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// Lowest expected value.
    pub low: f64,
    /// Highest expected value.
    pub high: f64,
}

impl Expected {
    /// `centre ± half_width`.
    pub fn around(centre: f64, half_width: f64) -> Expected {
        Expected {
            low: centre - half_width,
            high: centre + half_width,
        }
    }
}

/// A detector by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorKind {
    /// NAB's windowed Gaussian baseline.
    WindowedGaussian,
    /// Robust level and day-on-day z-scores, uncalibrated.
    Robust,
    /// The default: robust components calibrated per series.
    Grace,
}

impl DetectorKind {
    /// Every detector, the default first.
    pub const ALL: [DetectorKind; 3] = [
        DetectorKind::Grace,
        DetectorKind::Robust,
        DetectorKind::WindowedGaussian,
    ];

    /// The name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::WindowedGaussian => "windowed-gaussian",
            DetectorKind::Robust => "robust",
            DetectorKind::Grace => "grace",
        }
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no detector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a detector (one of: grace, robust, windowed-gaussian)")]
pub struct UnknownDetector(pub String);

impl FromStr for DetectorKind {
    type Err = UnknownDetector;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DetectorKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownDetector(s.chars().take(64).collect()))
    }
}

/// One series' detector: its guard against bad samples and its model. Serialisable, so the
/// state survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    guard: SeriesGuard,
    model: Model,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Model {
    WindowedGaussian(WindowedGaussian),
    Robust(Robust),
    Grace(Grace),
}

impl Detector {
    /// A fresh detector of `kind`.
    pub fn new(kind: DetectorKind) -> Detector {
        let model = match kind {
            DetectorKind::WindowedGaussian => Model::WindowedGaussian(WindowedGaussian::default()),
            DetectorKind::Robust => Model::Robust(Robust::default()),
            DetectorKind::Grace => Model::Grace(Grace::default()),
        };
        Detector {
            guard: SeriesGuard::default(),
            model,
        }
    }

    /// Which detector this is.
    pub fn kind(&self) -> DetectorKind {
        match self.model {
            Model::WindowedGaussian(_) => DetectorKind::WindowedGaussian,
            Model::Robust(_) => DetectorKind::Robust,
            Model::Grace(_) => DetectorKind::Grace,
        }
    }

    /// Scores the sample at `millis` (since the epoch) with `value`, or refuses it (and counts
    /// why).
    pub fn update(&mut self, millis: i64, value: f64) -> Result<Score, Rejected> {
        let seen = self.guard.check(millis, value)?;
        let interval = self.guard.interval();
        Ok(match &mut self.model {
            Model::WindowedGaussian(m) => m.update(value),
            Model::Robust(m) => m.update(millis, value, interval, seen.after_gap),
            Model::Grace(m) => m.update(millis, value, interval, seen.after_gap),
        })
    }

    /// The series' sampling interval as learnt so far (the smallest gap between samples), in
    /// milliseconds.
    pub fn interval(&self) -> Option<i64> {
        self.guard.interval()
    }

    /// What the series was offered so far.
    pub fn counts(&self) -> SampleCounts {
        self.guard.counts()
    }

    /// Bytes this state holds, its own and on the heap.
    pub fn state_bytes(&self) -> usize {
        size_of::<Self>()
            + match &self.model {
                Model::WindowedGaussian(m) => m.state_bytes(),
                Model::Robust(m) => m.state_bytes(),
                Model::Grace(m) => m.state_bytes(),
            }
            - size_of::<Model>()
    }
}
