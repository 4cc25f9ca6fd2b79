//! Streaming anomaly detection for metric series.
//!
//! One [`Detector`] per series, updated per sample in constant time and bounded memory,
//! answers a [`Score`] in `[0, 1]` with the component that saw it and the range it expected.
//! Bad samples (not finite, out of order, repeated) are refused and counted by the
//! [`SeriesGuard`] in front of every detector; gaps are counted and bridged.
//!
//! Detectors ([`DetectorKind`]):
//! - `windowed-gaussian`: NAB's baseline, the Gaussian tail probability of each value over the
//!   last 1,000 values. Kept to check the scoring harness against NAB's published results.
//! - `robust`: median and inter-quartile spread of the recent values and of the day-on-day
//!   differences (seasonality-aware), as a robust z-score.
//! - `grace` (the default): `robust`'s components calibrated per series into how unusual the
//!   recent surprise is for this series, with an alarm that does not repeat for the same
//!   episode; and a value outside every range the series showed before alarms once.
//!
//! [`nab`] scores any detector on a folder laid out like the Numenta Anomaly Benchmark, with
//! NAB's own rules (anomaly windows, the scaled sigmoid, the three profiles, normalisation
//! between the null and the perfect detector, thresholds optimised per profile).

pub mod detector;
pub mod forecast;
pub mod gaussian;
pub mod grace;
pub mod nab;
mod novelty;
pub mod robust;
pub mod series;
mod stats;

pub use detector::{Component, Detector, DetectorKind, Expected, Score, UnknownDetector};
pub use series::{Rejected, SampleCounts, SeriesGuard};
