//! Per-series forecasts with prediction intervals.
//!
//! A [`Forecaster`] keeps the last [`ForecastSettings::history`] values of its series. Every
//! [`ForecastSettings::refit_every`] samples it fits a model to them: MSTL (augurs) removes the
//! daily seasonality when the history holds at least two days, and AutoETS picks and fits the
//! exponential-smoothing model of the rest (level, trend, damping) with its prediction
//! intervals. Between fits, each new sample corrects the forecast: the fitted path is followed
//! step by step, shifted by a smoothed average of the errors it made on the samples since.
//!
//! Fitting is batch work (milliseconds for a few hundred values); the per-sample update is
//! O(1). A series too short or too flat to fit has no forecast (`None`), never a made-up one.

use std::collections::VecDeque;

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_ets::trend::AutoETSTrendModel;
use augurs_mstl::MSTLModel;
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// How much of each new error the correction takes in.
const CORRECTION_WEIGHT: f64 = 0.3;

/// A forecaster's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastSettings {
    /// Values kept and fitted on.
    pub history: usize,
    /// Samples between fits.
    pub refit_every: usize,
    /// Steps ahead each fit predicts beyond `refit_every` (the longest horizon asked for).
    pub horizon_steps: usize,
    /// The prediction intervals' coverage, e.g. 0.9.
    pub level: f64,
    /// Values needed before the first fit.
    pub min_history: usize,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        ForecastSettings {
            history: 1_008,
            refit_every: 12,
            horizon_steps: 24,
            level: 0.9,
            min_history: 48,
        }
    }
}

/// One forecast step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// When (milliseconds since the epoch).
    pub millis: i64,
    /// The point forecast.
    pub value: f64,
    /// The prediction interval's low end.
    pub low: f64,
    /// Its high end.
    pub high: f64,
}

/// A forecast from the last sample on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// The steps, one sampling interval apart, the first one interval after the last sample.
    pub steps: Vec<Step>,
    /// The intervals' coverage.
    pub level: f64,
    /// The model fitted (`MSTL(288)+AutoETS`, `AutoETS`).
    pub model: String,
}

impl Forecast {
    /// The steps up to `horizon_ms` after the last sample.
    pub fn within(&self, last_millis: i64, horizon_ms: i64) -> &[Step] {
        let n = self
            .steps
            .partition_point(|s| s.millis <= last_millis.saturating_add(horizon_ms));
        &self.steps[..n]
    }
}

/// A fit's predictions from the sample it was fitted after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Fitted {
    point: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    model: String,
    /// Samples since the fit.
    since: usize,
    /// Smoothed error of the path on those samples.
    correction: f64,
}

/// One series' forecaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecaster {
    settings: ForecastSettings,
    values: VecDeque<f64>,
    last_millis: Option<i64>,
    interval: Option<i64>,
    fitted: Option<Fitted>,
    /// Why the last fit failed, if it did.
    unfit: Option<String>,
    /// Samples since the last failed fit.
    #[serde(default)]
    since_failure: usize,
}

impl Forecaster {
    /// An empty forecaster.
    pub fn new(settings: ForecastSettings) -> Forecaster {
        Forecaster {
            settings,
            values: VecDeque::with_capacity(settings.history),
            last_millis: None,
            interval: None,
            fitted: None,
            unfit: None,
            since_failure: 0,
        }
    }

    /// Learns the sample at `millis`. Samples must come in time order with finite values (the
    /// caller's [`crate::SeriesGuard`] sees to it); `interval` is the series' sampling interval.
    pub fn update(&mut self, millis: i64, value: f64, interval: Option<i64>) {
        self.interval = interval;
        self.last_millis = Some(millis);
        if self.values.len() == self.settings.history {
            self.values.pop_front();
        }
        self.values.push_back(value);
        self.since_failure = self.since_failure.saturating_add(1);
        let refit = match &mut self.fitted {
            // After a failed fit, the next try waits as long as a refit would.
            None if self.unfit.is_some() => self.since_failure >= self.settings.refit_every,
            Some(f) => {
                if let Some(expected) = f.point.get(f.since) {
                    let error = value - (expected + f.correction);
                    f.correction += CORRECTION_WEIGHT * error;
                }
                f.since += 1;
                f.since >= self.settings.refit_every
            }
            None => true,
        };
        if refit && self.values.len() >= self.settings.min_history {
            self.refit();
        }
    }

    /// Fits the model to the history now.
    pub fn refit(&mut self) {
        let y: Vec<f64> = self.values.iter().copied().collect();
        let horizon = self.settings.refit_every + self.settings.horizon_steps;
        // augurs has `unimplemented!` and `unwrap` paths; a panic in one fit must fail that fit,
        // not the caller (which holds the server's detectors).
        let (period, level) = (self.period(), self.settings.level);
        let fitted = std::panic::catch_unwind(move || fit(&y, period, horizon, level))
            .unwrap_or_else(|_| Err("the model fit panicked".to_owned()));
        match fitted {
            Ok((model, forecast)) => {
                let (lower, upper) = forecast
                    .intervals
                    .map(|i| (i.lower, i.upper))
                    .unwrap_or_else(|| (forecast.point.clone(), forecast.point.clone()));
                self.fitted = Some(Fitted {
                    point: forecast.point,
                    lower,
                    upper,
                    model,
                    since: 0,
                    correction: 0.0,
                });
                self.unfit = None;
            }
            Err(e) => {
                self.fitted = None;
                self.unfit = Some(e);
                self.since_failure = 0;
            }
        }
    }

    /// The daily period in samples, when the history holds two days of it.
    fn period(&self) -> Option<usize> {
        let interval = self.interval.filter(|i| *i > 0)?;
        let period = usize::try_from(DAY_MS / interval).ok()?;
        (period >= 2 && DAY_MS % interval == 0 && self.values.len() >= 2 * period).then_some(period)
    }

    /// The forecast from the last sample on, if the series could be fitted.
    pub fn forecast(&self) -> Option<Forecast> {
        let f = self.fitted.as_ref()?;
        let (last, interval) = (self.last_millis?, self.interval?);
        let steps = (f.since..f.point.len())
            .enumerate()
            .map(|(k, i)| Step {
                millis: last.saturating_add(interval.saturating_mul(k as i64 + 1)),
                value: f.point[i] + f.correction,
                low: f.lower[i] + f.correction,
                high: f.upper[i] + f.correction,
            })
            .filter(|s| s.value.is_finite() && s.low.is_finite() && s.high.is_finite())
            .collect();
        Some(Forecast {
            steps,
            level: self.settings.level,
            model: f.model.clone(),
        })
    }

    /// Why there is no forecast, when there is none.
    pub fn why_none(&self) -> Option<String> {
        if self.fitted.is_some() {
            return None;
        }
        Some(self.unfit.clone().unwrap_or_else(|| {
            format!(
                "{} of {} values needed before the first fit",
                self.values.len(),
                self.settings.min_history
            )
        }))
    }

    /// The time of the last sample.
    pub fn last_millis(&self) -> Option<i64> {
        self.last_millis
    }

    /// Bytes this state holds, its own and on the heap.
    pub fn state_bytes(&self) -> usize {
        size_of::<Self>()
            + self.values.capacity() * size_of::<f64>()
            + self.fitted.as_ref().map_or(0, |f| {
                (f.point.capacity() + f.lower.capacity() + f.upper.capacity()) * size_of::<f64>()
                    + f.model.capacity()
            })
    }
}

/// Fits `y` (MSTL with `period` when given, else AutoETS alone) and predicts `horizon` steps.
fn fit(
    y: &[f64],
    period: Option<usize>,
    horizon: usize,
    level: f64,
) -> Result<(String, augurs_core::Forecast), String> {
    // A flat series has nothing to fit (ETS's likelihood is undefined): it stays where it is.
    let (lo, hi) = y
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    if lo == hi {
        let point = vec![lo; horizon];
        return Ok((
            "flat".to_owned(),
            augurs_core::Forecast {
                point: point.clone(),
                intervals: Some(augurs_core::ForecastIntervals {
                    level,
                    lower: point.clone(),
                    upper: point,
                }),
            },
        ));
    }
    let ets = AutoETS::non_seasonal();
    match period {
        Some(p) => {
            let model = MSTLModel::new(vec![p], AutoETSTrendModel::from(ets));
            let fitted = model.fit(y).map_err(|e| format!("MSTL fit failed: {e}"))?;
            let forecast = fitted
                .predict(horizon, level)
                .map_err(|e| format!("MSTL forecast failed: {e}"))?;
            Ok((format!("MSTL({p})+AutoETS"), forecast))
        }
        None => {
            let fitted = ets.fit(y).map_err(|e| format!("AutoETS fit failed: {e}"))?;
            let forecast = fitted
                .predict(horizon, level)
                .map_err(|e| format!("AutoETS forecast failed: {e}"))?;
            Ok(("AutoETS".to_owned(), forecast))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: i64 = 300_000;

    fn daily(i: usize) -> f64 {
        let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
        100.0 + 40.0 * phase.sin() + ((i * 7919) % 11) as f64 * 0.3
    }

    fn fed(n: usize, value: impl Fn(usize) -> f64) -> Forecaster {
        let mut f = Forecaster::new(ForecastSettings::default());
        for i in 0..n {
            f.update(i as i64 * FIVE_MIN, value(i), Some(FIVE_MIN));
        }
        f
    }

    #[test]
    fn a_daily_series_is_forecast_with_its_seasonality_inside_the_intervals() {
        let f = fed(1_000, daily);
        let forecast = f.forecast().unwrap();
        assert!(
            forecast.model.starts_with("MSTL(288)"),
            "{}",
            forecast.model
        );
        assert!(forecast.steps.len() >= 24);
        for (k, step) in forecast.steps.iter().take(24).enumerate() {
            let actual = daily(1_000 + k);
            assert!(
                (step.value - actual).abs() < 6.0,
                "step {k}: forecast {} actual {actual}",
                step.value
            );
            assert!(step.low <= step.value && step.value <= step.high);
            assert_eq!(step.millis, (1_000 + k as i64) * FIVE_MIN);
        }
    }

    #[test]
    fn a_trend_is_carried_forward() {
        let f = fed(200, |i| 10.0 + 2.0 * i as f64 + ((i * 31) % 5) as f64 * 0.1);
        let forecast = f.forecast().unwrap();
        let last = 10.0 + 2.0 * 199.0;
        let twelve = forecast.steps[11].value;
        assert!((twelve - (last + 24.0)).abs() < 4.0, "{twelve}");
    }

    #[test]
    fn between_fits_each_sample_corrects_the_path() {
        let mut f = fed(300, |i| 50.0 + ((i * 7919) % 7) as f64);
        let before = f.forecast().unwrap().steps[0].value;
        // The level jumps by 100 right after a fit; the forecast follows before the next fit.
        f.refit();
        for i in 300..305 {
            f.update(i * FIVE_MIN, 150.0, Some(FIVE_MIN));
        }
        let after = f.forecast().unwrap().steps[0].value;
        assert!(after > before + 50.0, "before {before}, after {after}");
    }

    #[test]
    fn too_little_history_or_a_flat_series_never_makes_up_a_forecast() {
        let short = fed(10, daily);
        assert!(short.forecast().is_none());
        assert!(short.why_none().unwrap().contains("needed"));
        let flat = fed(100, |_| 7.0);
        let forecast = flat.forecast().unwrap();
        assert!(
            forecast
                .steps
                .iter()
                .all(|s| s.value == 7.0 && s.low == 7.0)
        );
    }
}
