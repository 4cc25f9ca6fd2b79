//! `grace` on a NAB-like corpus: scored with NAB's threshold optimisation, and with thresholds
//! fixed beforehand on one half of the corpus and scored on the other (held-out splits): tuned
//! on the real categories and scored on the artificial ones and back, and within the real
//! categories by the parity of a hash of each file's name (even → odd and back), and from the
//! AWS category to the other real ones (AdExchange, Traffic) and back.
//!
//! ```text
//! cargo run --release -p grace-anomaly --example nab_splits -- [DIR] [--files] [--windows] [--curve]
//! ```
//!
//! `--files` adds each file's standard score; `--windows` each window's best score (and where
//! in it) and each false positive, at the standard profile's threshold; `--curve` the standard
//! score of the whole corpus and of each half at thresholds fixed from 0.60 to 0.85 (how much
//! a threshold a little off the optimum costs, and where each half would rather be). `DIR` is by default
//! `../shared/data/nab` beside the checkout.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use grace_anomaly::DetectorKind;
use grace_anomaly::nab::{Corpus, DetectorRun, probation, score_profile};

/// Which files a half of a split holds, by name.
type Half = fn(&str) -> bool;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.iter().find(|a| !a.starts_with("--")).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nab"),
        PathBuf::from,
    );
    let corpus = Corpus::load(&dir).unwrap();
    let run = DetectorRun::new(&corpus, DetectorKind::Grace);
    let report = run.report(&corpus, &BTreeMap::new());
    for p in &report.profiles {
        print!("{:<20} t={:.4}", p.profile, p.threshold);
        for c in &p.categories {
            match c.normalised {
                Some(n) => print!(" {}={n:.1}", short(&c.category)),
                None => print!(" {}:fp{}", short(&c.category), c.fp),
            }
        }
        println!(" overall={:.2}", p.overall.normalised.unwrap());
    }
    let splits: [(&str, Half, Half); 6] = [
        ("real->art", real, artificial),
        ("art->real", artificial, real),
        ("even->odd", even, odd),
        ("odd->even", odd, even),
        ("aws->other", aws, other_real),
        ("other->aws", other_real, aws),
    ];
    let mut line = String::from("held-out standard/lowFN/lowFP:");
    for (name, tune, test) in splits {
        let t = subset(&corpus, &run.scores, tune);
        let s = subset(&corpus, &run.scores, test);
        line.push_str(&format!(" {name}"));
        for p in &corpus.profiles {
            let tuned = score_profile(&t.0, &t.1, p, None).threshold;
            let held = score_profile(&s.0, &s.1, p, Some(tuned));
            line.push_str(&format!(" {:.1}", held.overall.normalised.unwrap()));
        }
    }
    println!("{line}");
    println!(
        "largest state {} bytes, {} samples",
        run.max_state_bytes, run.samples
    );
    let threshold = report.profiles[0].threshold;
    if args.iter().any(|a| a == "--curve") {
        let halves: [(&str, Half); 7] = [
            ("all", |_| true),
            ("artificial", artificial),
            ("real", real),
            ("aws", aws),
            ("other", other_real),
            ("even", even),
            ("odd", odd),
        ];
        let mut thresholds: Vec<f64> = (0..=25).map(|i| 0.60 + 0.01 * f64::from(i)).collect();
        thresholds.push(threshold);
        thresholds.sort_by(f64::total_cmp);
        for t in thresholds {
            let mut line = format!("standard at {t:.4}:");
            for (name, keep) in halves {
                let s = subset(&corpus, &run.scores, keep);
                let held = score_profile(&s.0, &s.1, &corpus.profiles[0], Some(t));
                line.push_str(&format!(" {name}={:.1}", held.overall.normalised.unwrap()));
            }
            println!("{line}");
        }
    }
    if args.iter().any(|a| a == "--windows") {
        for (file, scores) in corpus.files.iter().zip(&run.scores) {
            let start = probation(file.rows.len());
            println!(
                "{} ({} rows, probation {start})",
                file.name,
                file.rows.len()
            );
            for &(left, right) in &file.windows {
                let (at, best) = (left..=right)
                    .map(|i| (i, scores[i]))
                    .fold((left, -1.0), |a, b| if b.1 > a.1 { b } else { a });
                let first = (left..=right).find(|&i| scores[i] >= threshold);
                println!(
                    "   window [{left}, {right}]: best {best:.3} at +{}, first detection {:?}",
                    at - left,
                    first.map(|f| f - left)
                );
            }
            let fps: Vec<String> = (start..scores.len())
                .filter(|&i| {
                    scores[i] >= threshold && !file.windows.iter().any(|&(l, r)| l <= i && i <= r)
                })
                .map(|i| format!("{i}:{:.2}", scores[i]))
                .collect();
            println!("   false positives: {}", fps.join(" "));
        }
    }
    if args.iter().any(|a| a == "--files") {
        for (f, file) in report.profiles[0].files.iter().zip(&corpus.files) {
            println!(
                "{:<55} raw {:>7.3} (lost {:>6.3}) tp {:>3} fp {:>3} found {}/{}",
                f.file,
                f.raw,
                file.windows.len() as f64 - f.raw,
                f.tp,
                f.fp,
                f.windows_found,
                f.windows_found + f.windows_missed
            );
        }
    }
}

fn real(name: &str) -> bool {
    name.starts_with("real")
}

fn artificial(name: &str) -> bool {
    !real(name)
}

fn aws(name: &str) -> bool {
    name.starts_with("realAWSCloudwatch/")
}

fn other_real(name: &str) -> bool {
    real(name) && !aws(name)
}

fn even(name: &str) -> bool {
    real(name) && fnv(name).is_multiple_of(2)
}

fn odd(name: &str) -> bool {
    real(name) && !fnv(name).is_multiple_of(2)
}

fn short(category: &str) -> String {
    category
        .trim_start_matches("real")
        .trim_start_matches("artificial")
        .chars()
        .take(8)
        .collect()
}

/// FNV-1a: a hash of a file's name that does not depend on the platform or the Rust version.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The files of `corpus` that `keep` names, with their scores.
fn subset(corpus: &Corpus, scores: &[Vec<f64>], keep: Half) -> (Corpus, Vec<Vec<f64>>) {
    let (files, scores) = corpus
        .files
        .iter()
        .zip(scores)
        .filter(|(f, _)| keep(&f.name))
        .map(|(f, s)| (f.clone(), s.clone()))
        .unzip();
    (
        Corpus {
            files,
            profiles: corpus.profiles.clone(),
        },
        scores,
    )
}
