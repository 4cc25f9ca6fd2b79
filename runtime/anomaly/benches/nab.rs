//! NAB scores and speed of every detector, beside NAB's windowed-Gaussian baseline scored by
//! the same harness in the same run.
//!
//! `cargo bench -p grace-anomaly --bench nab` (in `just bench`). Plain `main`, no harness.
//! The corpus is `$GRACE_NAB_DATA`, by default `../shared/data/nab` beside the checkout.
//!
//! - **scores**: per detector and profile, the threshold NAB's optimisation picks and the
//!   normalised score per category and overall.
//! - **speed**: samples per second on one core, each detector fed every series of the corpus
//!   in turn (the median of five rounds), and bytes of state per series.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use grace_anomaly::nab::{Corpus, run_detector};
use grace_anomaly::{Detector, DetectorKind};

fn main() {
    let dir = std::env::var_os("GRACE_NAB_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nab"),
        PathBuf::from,
    );
    let corpus = match Corpus::load(&dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "the NAB corpus is needed at {} (set GRACE_NAB_DATA): {e}",
                dir.display()
            );
            std::process::exit(2);
        }
    };
    let categories = corpus.categories();
    println!(
        "== NAB scores: {} files, {} categories, {} windows",
        corpus.files.len(),
        categories.len(),
        corpus.files.iter().map(|f| f.windows.len()).sum::<usize>()
    );
    print!("{:<18} {:<20} {:>9}", "detector", "profile", "threshold");
    for c in &categories {
        print!(" {:>13}", truncate(c, 13));
    }
    println!(" {:>8}", "overall");
    for kind in DetectorKind::ALL {
        let report = run_detector(&corpus, kind, &BTreeMap::new());
        for p in &report.profiles {
            print!("{:<18} {:<20} {:>9.4}", kind.name(), p.profile, p.threshold);
            for c in &p.categories {
                match c.normalised {
                    Some(n) => print!(" {n:>13.1}"),
                    None => print!(" {:>13}", format!("fp {}", c.fp)),
                }
            }
            println!(" {:>8.1}", p.overall.normalised.unwrap_or(f64::NAN));
        }
    }

    println!("\n== speed and state");
    for kind in DetectorKind::ALL {
        let mut rounds = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let start = Instant::now();
            let mut n = 0usize;
            for file in &corpus.files {
                let mut d = Detector::new(kind);
                for r in &file.rows {
                    black_box(d.update(r.millis, r.value).ok());
                }
                n += file.rows.len();
                bytes = bytes.max(d.state_bytes());
            }
            rounds.push(n as f64 / start.elapsed().as_secs_f64());
        }
        rounds.sort_by(f64::total_cmp);
        println!(
            "{:<18} {:>12.0} samples/s per core   {:>7} bytes of state per series (largest)",
            kind.name(),
            rounds[2],
            bytes
        );
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
