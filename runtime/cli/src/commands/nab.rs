//! `grace nab score`: anomaly detectors scored on a NAB-like corpus (docs/anomaly.md).
//!
//! Category and file names come from the corpus folder: printed escaped.

use std::collections::BTreeMap;

use anyhow::{Context, anyhow};
use grace_anomaly::DetectorKind;
use grace_anomaly::nab::{Corpus, ProfileReport, Report, run_detector};
use grace_engine::text::escape;

use super::Exit;
use crate::cli::NabCommand;

pub fn run(command: NabCommand) -> Exit {
    match command {
        NabCommand::Score {
            data,
            detectors,
            thresholds,
            files,
            json,
        } => score(&data, detectors, &thresholds, files, json),
    }
}

fn score(
    data: &std::path::Path,
    detectors: Vec<DetectorKind>,
    thresholds: &[String],
    files: bool,
    json: bool,
) -> Exit {
    let corpus = match Corpus::load(data)
        .with_context(|| format!("reading the corpus in {}", data.display()))
    {
        Ok(c) => c,
        Err(e) => return Exit::Invalid(e),
    };
    let fixed = match fixed_thresholds(thresholds, &corpus) {
        Ok(f) => f,
        Err(e) => return Exit::Invalid(e),
    };
    let detectors = if detectors.is_empty() {
        DetectorKind::ALL.to_vec()
    } else {
        detectors
    };
    let reports: Vec<Report> = detectors
        .into_iter()
        .map(|kind| run_detector(&corpus, kind, &fixed))
        .collect();
    if json {
        match serde_json::to_string_pretty(&reports) {
            Ok(text) => println!("{text}"),
            Err(e) => return Exit::Internal(e.into()),
        }
        return Exit::Ok;
    }
    println!(
        "{} files in {} categories, {} anomaly windows",
        corpus.files.len(),
        corpus.categories().len(),
        corpus.files.iter().map(|f| f.windows.len()).sum::<usize>()
    );
    for report in &reports {
        println!(
            "\n{}: {} samples, {} refused, at most {} bytes of state per series",
            report.detector, report.samples, report.refused, report.max_state_bytes
        );
        for p in &report.profiles {
            print_profile(p, files);
        }
    }
    Exit::Ok
}

/// `T` (every profile) or `PROFILE=T`, each profile once, thresholds finite.
fn fixed_thresholds(args: &[String], corpus: &Corpus) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut fixed = BTreeMap::new();
    for arg in args {
        let (profiles, value): (Vec<String>, &str) = match arg.split_once('=') {
            Some((name, value)) => {
                if !corpus.profiles.iter().any(|p| p.name == name) {
                    return Err(anyhow!(
                        "--threshold: `{}` is not a profile of this corpus (one of: {})",
                        escape(name),
                        corpus
                            .profiles
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                (vec![name.to_owned()], value)
            }
            None => (
                corpus.profiles.iter().map(|p| p.name.clone()).collect(),
                arg,
            ),
        };
        let t: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite())
            .ok_or_else(|| anyhow!("--threshold: `{}` is not a number", escape(value)))?;
        for p in profiles {
            if fixed.insert(p.clone(), t).is_some() {
                return Err(anyhow!("--threshold: the profile `{p}` is given twice"));
            }
        }
    }
    Ok(fixed)
}

fn print_profile(p: &ProfileReport, files: bool) {
    let how = match p.choice {
        grace_anomaly::nab::Choice::Optimised => "optimised",
        grace_anomaly::nab::Choice::Fixed => "fixed",
    };
    println!(
        "  {:<20} threshold {:.6} ({how})",
        escape(&p.profile),
        p.threshold
    );
    println!(
        "    {:<28} {:>6} {:>8} {:>6} {:>10} {:>10}",
        "category", "files", "windows", "found", "fp rows", "score"
    );
    for c in p.categories.iter().chain(std::iter::once(&p.overall)) {
        let score = match c.normalised {
            Some(n) => format!("{n:.1}"),
            None => format!("raw {:.2}", c.raw),
        };
        println!(
            "    {:<28} {:>6} {:>8} {:>6} {:>10} {:>10}",
            escape(&c.category),
            c.files,
            c.windows,
            c.windows_found,
            c.fp,
            score
        );
    }
    if files {
        for f in &p.files {
            println!(
                "      {:<60} raw {:>8.3}  windows {}/{}  fp rows {}",
                escape(&f.file),
                f.raw,
                f.windows_found,
                f.windows_found + f.windows_missed,
                f.fp
            );
        }
    }
}
