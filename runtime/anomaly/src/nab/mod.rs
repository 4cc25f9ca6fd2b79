//! Scoring detectors the way the Numenta Anomaly Benchmark does, on any folder laid out like
//! NAB's data: category sub-folders of `timestamp,value` CSV files, a `windows.json` naming each
//! file's anomaly windows, and optionally NAB's `profiles.json`.
//!
//! The rules, as NAB publishes them (`nab/sweeper.py`), reimplemented:
//! - The first 15 % of each file (at most 750 rows) is probation: not scored.
//! - A detection is a row whose score is at or above the threshold.
//! - Inside a window, a detection earns `tp · S(-(right - i + 1) / width) / S(-1)`, where
//!   `S(x) = 2 / (1 + e^{5x}) - 1` is the scaled sigmoid: early detections earn more. A window
//!   counts its best detection once; a window without one costs `fn`.
//! - Outside, a detection costs `fp · S(d)` (negative), with `d` its distance past the previous
//!   window's right edge in that window's widths (`S = -1` before any window, or 3+ widths
//!   past).
//! - A profile's threshold is the one maximising the summed score over the whole corpus
//!   (every distinct score tried), unless one is fixed beforehand.
//! - Scores are normalised to `100 · (raw - null) / (perfect - null)`: the null detector flags
//!   nothing (`-fn` per window), the perfect one flags each window's first row (`tp` per
//!   window).

mod corpus;
mod report;
mod sweep;

pub use corpus::{Corpus, DataFile, NabError, Profile, Row};
pub use report::{
    CategoryScore, Choice, DetectorRun, FileScore, ProfileReport, Report, run_detector,
    score_profile,
};
pub use sweep::{Point, Slot, best_threshold, file_score, probation, sweep};
