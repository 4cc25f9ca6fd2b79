//! How often `grace` alarms on long synthetic series without anomalies as they age: ten series
//! of 24,000 five-minute samples (83 days) each of three kinds, a daily cycle with Gaussian
//! noise, with heavy-tailed noise (Student's t, 3 degrees of freedom), and counts with random
//! bursts (1 % of samples, like counts of posts), and the samples at or above the server's
//! default alarm per 3,000 samples of age.
//!
//! ```text
//! cargo run --release -p grace-anomaly --example long_series
//! ```
//!
//! A detector whose alarms at ordinary noise grow in proportion to a series' length pays for
//! more false alarms per anomaly on long series; NAB's long files (each anomaly window sized
//! to a tenth of the file) are scored that way.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::f64::consts::TAU;

use grace_anomaly::{Detector, DetectorKind};

/// The server's default alarm (`grace_server::anomaly::DEFAULT_ALARM`).
const ALARM: f64 = 0.7642;
const SAMPLES: i64 = 24_000;
const BAND: i64 = 3_000;

/// A kind of series: its name, and its next value at a phase of the day (radians).
type Kind = (&'static str, fn(&mut Rng, f64) -> f64);

/// A xorshift generator: the same series on every platform.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn gaussian(&mut self) -> f64 {
        let u = self.uniform().max(1e-12);
        (-2.0 * u.ln()).sqrt() * (TAU * self.uniform()).cos()
    }

    fn student_t3(&mut self) -> f64 {
        let chi2: f64 = (0..3).map(|_| self.gaussian().powi(2)).sum();
        self.gaussian() / (chi2 / 3.0).sqrt()
    }
}

fn main() {
    let kinds: [Kind; 3] = [
        ("daily cycle, Gaussian noise", |r, day| {
            100.0 + 20.0 * day.sin() + 5.0 * r.gaussian()
        }),
        ("daily cycle, t(3) noise", |r, day| {
            100.0 + 20.0 * day.sin() + 5.0 * r.student_t3()
        }),
        ("counts with bursts", |r, day| {
            let base = 20.0 + 15.0 * day.sin();
            let burst = if r.uniform() < 0.01 {
                100.0 * r.uniform()
            } else {
                0.0
            };
            (base + base.sqrt() * r.gaussian() + burst).max(0.0).round()
        }),
    ];
    for (name, value) in kinds {
        let mut alarms = vec![0usize; (SAMPLES / BAND) as usize];
        for seed in 0..10u64 {
            let mut rng =
                Rng(0x9E37_79B9_7F4A_7C15 ^ (seed + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
            let mut d = Detector::new(DetectorKind::Grace);
            for i in 0..SAMPLES {
                let day = (i % 288) as f64 / 288.0 * TAU;
                let s = d
                    .update(i * 300_000, value(&mut rng, day))
                    .unwrap_or_else(|_| grace_anomaly::Score::warming_up());
                if s.value >= ALARM {
                    alarms[(i / BAND) as usize] += 1;
                }
            }
        }
        println!("{name:<30} alarms per {BAND} samples, 10 series: {alarms:?}");
    }
}
