//! Forecast accuracy (MASE, sMAPE) and cost on a NAB-like corpus, beside naive baselines
//! computed in the same run.
//!
//! `cargo bench -p grace-anomaly --bench forecast` (in `just bench`). Plain `main`, no harness.
//! The corpus is `$GRACE_NAB_DATA`, by default `../shared/data/nab` beside the checkout.
//!
//! Each series is fed to a [`Forecaster`] sample by sample, as the server does (refitted every
//! 12 samples, corrected per sample in between). Every 48 samples after the first 15 % (NAB's
//! probation), the forecast of the next 12 samples is compared with what came:
//! - **sMAPE**: `100 · mean(2 |F - A| / (|F| + |A|))` (0 when both are 0);
//! - **MASE**: the mean absolute error over the in-sample mean absolute one-step change of the
//!   series up to the origin (below 1: better than the average one-step change).
//!
//! Baselines on the same origins and horizons: **naive** (the last value, repeated) and
//! **seasonal naive** (the value a day before each step; the naive forecast where there is no
//! day yet). The unfavourable case is shown beside the favourable one: per category, and the
//! share of origins where the forecaster beat seasonal naive.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use grace_anomaly::SeriesGuard;
use grace_anomaly::forecast::{ForecastSettings, Forecaster};
use grace_anomaly::nab::Corpus;

const HORIZON: usize = 12;
const EVERY: usize = 48;
const DAY_MS: i64 = 86_400_000;

#[derive(Default)]
struct Errors {
    smape: f64,
    abs: f64,
    n: usize,
}

impl Errors {
    fn add(&mut self, forecast: f64, actual: f64) {
        let denominator = forecast.abs() + actual.abs();
        if denominator > 0.0 {
            self.smape += 2.0 * (forecast - actual).abs() / denominator;
        }
        self.abs += (forecast - actual).abs();
        self.n += 1;
    }
}

#[derive(Default)]
struct Tally {
    smape: [f64; 3],
    mase: [f64; 3],
    origins: usize,
    series: usize,
    wins: usize,
}

impl Tally {
    /// One row: the means over the series of sMAPE and MASE (forecast, naive, seasonal naive)
    /// and the share of origins where the forecast beat seasonal naive.
    fn print(&self, name: &str) {
        let s = self.series as f64;
        println!(
            "{:<24} {:>6} {:>8}  {:>6.1} {:>7.1} {:>7.1}  {:>6.2} {:>7.2} {:>7.2}  {:>9.0}%",
            name,
            self.series,
            self.origins,
            self.smape[0] / s,
            self.smape[1] / s,
            self.smape[2] / s,
            self.mase[0] / s,
            self.mase[1] / s,
            self.mase[2] / s,
            100.0 * self.wins as f64 / self.origins as f64
        );
    }
}

fn main() {
    let dir = std::env::var_os("GRACE_NAB_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nab"),
        PathBuf::from,
    );
    let corpus = Corpus::load(&dir).unwrap_or_else(|e| {
        eprintln!(
            "the NAB corpus is needed at {} (set GRACE_NAB_DATA): {e}",
            dir.display()
        );
        std::process::exit(2);
    });
    let settings = ForecastSettings::default();
    let mut by_category: BTreeMap<String, Tally> = BTreeMap::new();
    let mut fits = 0usize;
    let mut largest_state = 0usize;
    let started = Instant::now();
    let mut samples = 0usize;
    for file in &corpus.files {
        let mut guard = SeriesGuard::default();
        let mut f = Forecaster::new(settings);
        // Accepted (time, value) pairs, for baselines and scoring.
        let mut seen: Vec<(i64, f64)> = Vec::with_capacity(file.rows.len());
        let rows: Vec<_> = file
            .rows
            .iter()
            .filter(|r| guard.check(r.millis, r.value).is_ok())
            .copied()
            .collect();
        let start = (rows.len() as f64 * 0.15) as usize;
        let mut errors = [Errors::default(), Errors::default(), Errors::default()];
        let (mut origins, mut wins) = (0, 0);
        let mut scale_sum = 0.0;
        let mut per_origin_mase = [0.0f64; 3];
        for (i, r) in rows.iter().enumerate() {
            f.update(r.millis, r.value, guard.interval());
            samples += 1;
            if i > 0 {
                scale_sum += (r.value - seen[i - 1].1).abs();
            }
            seen.push((r.millis, r.value));
            if i < start || !(i - start).is_multiple_of(EVERY) || i + HORIZON >= rows.len() {
                continue;
            }
            let Some(forecast) = f.forecast() else {
                continue;
            };
            if forecast.steps.len() < HORIZON {
                continue;
            }
            let scale = scale_sum / i as f64;
            let mut origin = [Errors::default(), Errors::default(), Errors::default()];
            for h in 0..HORIZON {
                let actual = rows[i + 1 + h];
                let day_before = actual.millis - DAY_MS;
                let seasonal = seen
                    .binary_search_by_key(&day_before, |(t, _)| *t)
                    .map_or(r.value, |k| seen[k].1);
                for (k, value) in [forecast.steps[h].value, r.value, seasonal]
                    .into_iter()
                    .enumerate()
                {
                    origin[k].add(value, actual.value);
                    errors[k].add(value, actual.value);
                }
            }
            if scale > 0.0 {
                for k in 0..3 {
                    per_origin_mase[k] += origin[k].abs / origin[k].n as f64 / scale;
                }
            }
            if origin[0].abs <= origin[2].abs {
                wins += 1;
            }
            origins += 1;
        }
        fits += rows.len() / settings.refit_every;
        largest_state = largest_state.max(f.state_bytes());
        if origins == 0 {
            continue;
        }
        let t = by_category.entry(file.category.clone()).or_default();
        for k in 0..3 {
            t.smape[k] += 100.0 * errors[k].smape / errors[k].n as f64;
            t.mase[k] += per_origin_mase[k] / origins as f64;
        }
        t.origins += origins;
        t.wins += wins;
        t.series += 1;
    }
    let elapsed = started.elapsed();
    println!(
        "== forecasts: {HORIZON} steps ahead every {EVERY} samples; mean over series of each category"
    );
    println!(
        "{:<24} {:>6} {:>8}  {:>22}  {:>22}  {:>10}",
        "category",
        "series",
        "origins",
        "sMAPE grace/naive/snaive",
        "MASE grace/naive/snaive",
        "beats snaive"
    );
    let mut overall = Tally::default();
    for (name, t) in &by_category {
        t.print(name);
        for k in 0..3 {
            overall.smape[k] += t.smape[k];
            overall.mase[k] += t.mase[k];
        }
        overall.series += t.series;
        overall.origins += t.origins;
        overall.wins += t.wins;
    }
    overall.print("overall");
    println!(
        "cost: {samples} samples, about {fits} fits in {:.1} s ({:.2} ms per fit, per-sample updates included); largest state {largest_state} bytes",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1_000.0 / fits.max(1) as f64
    );
}
