//! Running a detector over a corpus and scoring it per profile, category and file.

use std::collections::BTreeMap;

use serde::Serialize;

use super::corpus::{Corpus, Profile};
use super::sweep::{Point, best_threshold, file_score, sweep};
use crate::detector::{Detector, DetectorKind};

/// How a profile's threshold was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Choice {
    /// Optimised on this corpus, as NAB does.
    Optimised,
    /// Fixed beforehand (tuned elsewhere).
    Fixed,
}

/// One file's score under one profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileScore {
    /// The file, as `windows.json` names it.
    pub file: String,
    /// Its raw score.
    pub raw: f64,
    /// Detections inside windows (rows).
    pub tp: usize,
    /// Detections outside windows (rows).
    pub fp: usize,
    /// Windows detected.
    pub windows_found: usize,
    /// Windows missed.
    pub windows_missed: usize,
}

/// A category's (or the corpus') score under one profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryScore {
    /// The category, or `overall`.
    pub category: String,
    /// Files scored.
    pub files: usize,
    /// Anomaly windows.
    pub windows: usize,
    /// Windows detected.
    pub windows_found: usize,
    /// False positive rows.
    pub fp: usize,
    /// The raw score, summed over files.
    pub raw: f64,
    /// The null detector's raw score (nothing flagged).
    pub null: f64,
    /// The perfect detector's raw score.
    pub perfect: f64,
    /// `100 · (raw - null) / (perfect - null)`; none for a category without windows, where
    /// only false positives can be scored (see `raw`).
    pub normalised: Option<f64>,
}

/// A detector's scores under one profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileReport {
    /// The profile's name.
    pub profile: String,
    /// The threshold: rows scoring at or above it are detections.
    pub threshold: f64,
    /// How it was chosen.
    pub choice: Choice,
    /// The whole corpus.
    pub overall: CategoryScore,
    /// Each category, sorted by name.
    pub categories: Vec<CategoryScore>,
    /// Each file, sorted by name.
    pub files: Vec<FileScore>,
}

/// A detector's report on a corpus.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The detector.
    pub detector: DetectorKind,
    /// Samples scored.
    pub samples: usize,
    /// Samples the detector refused (not finite, out of order, repeated): scored 0.
    pub refused: u64,
    /// The largest state of one series, in bytes.
    pub max_state_bytes: usize,
    /// One per profile, in the corpus' order.
    pub profiles: Vec<ProfileReport>,
}

/// A detector's scores for every row of a corpus, and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorRun {
    /// The detector.
    pub detector: DetectorKind,
    /// Per file (in corpus order), per row: the score; refused samples score 0.
    pub scores: Vec<Vec<f64>>,
    /// Samples scored.
    pub samples: usize,
    /// Samples the detector refused (not finite, out of order, repeated).
    pub refused: u64,
    /// The largest state of one series, in bytes.
    pub max_state_bytes: usize,
}

impl DetectorRun {
    /// Runs a fresh `kind` detector over each file of `corpus`.
    pub fn new(corpus: &Corpus, kind: DetectorKind) -> DetectorRun {
        let mut run = DetectorRun {
            detector: kind,
            scores: Vec::with_capacity(corpus.files.len()),
            samples: 0,
            refused: 0,
            max_state_bytes: 0,
        };
        for file in &corpus.files {
            let mut d = Detector::new(kind);
            run.scores.push(
                file.rows
                    .iter()
                    .map(|r| d.update(r.millis, r.value).map_or(0.0, |s| s.value))
                    .collect(),
            );
            let c = d.counts();
            run.refused += c.not_finite + c.out_of_order + c.repeated;
            run.max_state_bytes = run.max_state_bytes.max(d.state_bytes());
            run.samples += file.rows.len();
        }
        run
    }

    /// Scores the run under each profile of `corpus`, with the profile's threshold from
    /// `fixed` where given (by profile name) and optimised on the corpus otherwise.
    pub fn report(&self, corpus: &Corpus, fixed: &BTreeMap<String, f64>) -> Report {
        Report {
            detector: self.detector,
            samples: self.samples,
            refused: self.refused,
            max_state_bytes: self.max_state_bytes,
            profiles: corpus
                .profiles
                .iter()
                .map(|p| score_profile(corpus, &self.scores, p, fixed.get(&p.name).copied()))
                .collect(),
        }
    }
}

/// Runs a fresh `kind` detector over `corpus` and scores it ([`DetectorRun::report`]).
pub fn run_detector(corpus: &Corpus, kind: DetectorKind, fixed: &BTreeMap<String, f64>) -> Report {
    DetectorRun::new(corpus, kind).report(corpus, fixed)
}

/// Scores per-file `scores` of `corpus` under `profile`.
pub fn score_profile(
    corpus: &Corpus,
    scores: &[Vec<f64>],
    profile: &Profile,
    fixed: Option<f64>,
) -> ProfileReport {
    let mut next_window = 0u32;
    let sweeps: Vec<Vec<Point>> = corpus
        .files
        .iter()
        .zip(scores)
        .map(|(file, s)| {
            let points = sweep(file, s, profile, next_window);
            next_window += file.windows.len() as u32;
            points
        })
        .collect();
    let (threshold, choice) = match fixed {
        Some(t) => (t, Choice::Fixed),
        None => {
            let all: Vec<Point> = sweeps.iter().flatten().copied().collect();
            (best_threshold(&all, profile).0, Choice::Optimised)
        }
    };
    let files: Vec<FileScore> = corpus
        .files
        .iter()
        .zip(&sweeps)
        .map(|(file, points)| {
            let t = file_score(points, threshold, profile);
            FileScore {
                file: file.name.clone(),
                raw: t.score,
                tp: t.tp,
                fp: t.fp,
                windows_found: t.windows_found,
                windows_missed: t.windows_missed,
            }
        })
        .collect();
    let mut by_category: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, file) in corpus.files.iter().enumerate() {
        by_category.entry(&file.category).or_default().push(i);
    }
    let summarise = |name: &str, members: &[usize]| {
        let scored = |i: &usize| &files[*i];
        let windows: usize = members
            .iter()
            .map(|i| scored(i).windows_found + scored(i).windows_missed)
            .sum();
        let all_windows: usize = members.iter().map(|i| corpus.files[*i].windows.len()).sum();
        let raw: f64 = members.iter().map(|i| scored(i).raw).sum();
        // Both over the windows that can be scored (NAB's null detector scores those; a window
        // wholly in probation is neither missed nor found).
        let null = -profile.fn_ * windows as f64;
        let perfect = profile.tp * windows as f64;
        CategoryScore {
            category: name.to_owned(),
            files: members.len(),
            windows: all_windows,
            windows_found: members.iter().map(|i| scored(i).windows_found).sum(),
            fp: members.iter().map(|i| scored(i).fp).sum(),
            raw,
            null,
            perfect,
            normalised: (perfect > null).then(|| 100.0 * (raw - null) / (perfect - null)),
        }
    };
    let categories = by_category
        .iter()
        .map(|(name, members)| summarise(name, members))
        .collect();
    let everything: Vec<usize> = (0..corpus.files.len()).collect();
    ProfileReport {
        profile: profile.name.clone(),
        threshold,
        choice,
        overall: summarise("overall", &everything),
        categories,
        files,
    }
}
