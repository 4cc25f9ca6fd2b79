//! `anomaly`: the host's anomaly scores and forecasts of metric series, granted like metrics
//! queries: the series must be one `[grants.metrics]` grants.
//!
//! The arguments are checked first, by Prometheus' naming rules (the metric name, the label
//! names and values, at most 64 labels, none twice; the forecast's horizon, 1 to 86,400
//! seconds): a malformed one is an invalid argument, whatever the grants say. The grant is then
//! checked on the parsed series exactly as a query's selector pinning those labels with `=` is
//! ([`MetricsGrant::check_series`]). The trust core decides on the series' selector as a
//! `Grace::Query`. Answers are bounded: one score, or at most [`MAX_FORECAST_STEPS`] steps.

use std::sync::Arc;

use grace_executor::anomaly::{self as exec, MAX_FORECAST_STEPS};
use grace_executor::{AnomalyReader, ExecError};
use grace_model::capability;
use grace_model::grants::{MetricsGrant, QueryError, SeriesName};
use grace_model::resource::Resource;
use serde_json::json;

use super::labels_json;
use crate::bindings::anomaly::{Host, SeriesForecast, SeriesScore, Step};
use crate::bindings::types::{Error, Label};
use crate::grants::not_granted;
use crate::host::HostState;
use crate::pipeline::{Call, Refusal, Scope, check_text, preview};

/// The longest forecast horizon a guest may ask for, in seconds (a day).
pub const MAX_HORIZON_SECONDS: u32 = 86_400;

fn grant(scope: &Scope) -> Result<&MetricsGrant, Refusal> {
    scope
        .grants
        .metrics
        .as_ref()
        .ok_or_else(|| not_granted("metrics", &scope.guest).into())
}

/// The series, parsed from the guest's arguments (invalid ones refused before any grant is
/// consulted), then granted; and the host's reader.
fn checked(
    scope: &Scope,
    metric: &str,
    labels: Vec<Label>,
) -> Result<(Arc<dyn AnomalyReader>, SeriesName), Refusal> {
    check_text("metric", metric)?;
    let series = SeriesName::parse(metric, labels.into_iter().map(|l| (l.key, l.value))).map_err(
        |e| match e {
            QueryError::Invalid(m) => Refusal::Invalid(m),
            QueryError::Denied(d) => d.into(),
        },
    )?;
    grant(scope)?.check_series(&series)?;
    let reader = scope.executors.anomaly.clone().ok_or_else(|| {
        Refusal::Failed(ExecError::Unavailable(
            "this host keeps no anomaly detectors".into(),
        ))
    })?;
    Ok((reader, series))
}

/// The forecast's horizon, in milliseconds; `Invalid` names the argument.
fn horizon_millis(horizon_seconds: u32) -> Result<u64, Refusal> {
    if !(1..=MAX_HORIZON_SECONDS).contains(&horizon_seconds) {
        return Err(Refusal::Invalid(format!(
            "`horizon-seconds` must be within 1..={MAX_HORIZON_SECONDS}, not {horizon_seconds}"
        )));
    }
    Ok(u64::from(horizon_seconds) * 1_000)
}

/// How the call names the series before it is parsed: the metric as written (shortened).
fn asked(metric: &str) -> Resource {
    Resource::query(preview(metric).as_str().unwrap_or_default())
}

fn args(metric: &str, labels: &[Label]) -> serde_json::Value {
    json!({ "metric": preview(metric), "labels": labels_json(labels) })
}

fn score_to_guest(s: exec::SeriesScore) -> SeriesScore {
    SeriesScore {
        value: s.value,
        component: s.component,
        expected_low: s.expected_low,
        expected_high: s.expected_high,
        sample_value: s.sample_value,
        sample_millis: s.sample_millis,
        detector: s.detector,
        alarming: s.alarming,
    }
}

fn forecast_to_guest(f: exec::Forecast) -> SeriesForecast {
    SeriesForecast {
        model: f.model,
        level: f.level,
        steps: f
            .steps
            .into_iter()
            .map(|s| Step {
                millis: s.millis,
                value: s.value,
                low: s.low,
                high: s.high,
            })
            .collect(),
    }
}

impl Host for HostState {
    async fn score(
        &mut self,
        metric: String,
        labels: Vec<Label>,
    ) -> wasmtime::Result<Result<Option<SeriesScore>, Error>> {
        let call =
            Call::read(&capability::anomaly::SCORE, args(&metric, &labels)).on(asked(&metric));
        self.run
            .perform_on(
                call,
                move |scope| async move {
                    let (reader, series) = checked(&scope, &metric, labels)?;
                    let resource = Resource::query(series.selector());
                    Ok(((reader, series), resource))
                },
                |_, (reader, series)| async move {
                    Ok::<_, ExecError>(reader.score(series.metric(), series.labels()))
                },
            )
            .await
            .map(|r| r.map(|s| s.map(score_to_guest)))
    }

    async fn forecast(
        &mut self,
        metric: String,
        labels: Vec<Label>,
        horizon_seconds: u32,
    ) -> wasmtime::Result<Result<Option<SeriesForecast>, Error>> {
        let mut recorded = args(&metric, &labels);
        recorded["horizon_seconds"] = json!(horizon_seconds);
        let call = Call::read(&capability::anomaly::FORECAST, recorded).on(asked(&metric));
        self.run
            .perform_on(
                call,
                move |scope| async move {
                    // Every argument is checked before the grant: a bad horizon is invalid
                    // even for a series the grant does not cover.
                    let horizon_ms = horizon_millis(horizon_seconds)?;
                    let (reader, series) = checked(&scope, &metric, labels)?;
                    let resource = Resource::query(series.selector());
                    Ok(((reader, series, horizon_ms), resource))
                },
                |_, (reader, series, horizon_ms)| async move {
                    // Bounded whatever the reader answers.
                    let forecast = reader
                        .forecast(series.metric(), series.labels(), horizon_ms)
                        .map(|mut f| {
                            f.steps.truncate(MAX_FORECAST_STEPS);
                            f
                        });
                    Ok::<_, ExecError>(forecast)
                },
            )
            .await
            .map(|r| r.map(|f| f.map(forecast_to_guest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_horizon_outside_a_day_is_invalid_and_names_the_argument() {
        for bad in [0, MAX_HORIZON_SECONDS + 1, u32::MAX] {
            match horizon_millis(bad) {
                Err(Refusal::Invalid(m)) => assert!(m.starts_with("`horizon-seconds`"), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(horizon_millis(1).unwrap(), 1_000);
        assert_eq!(horizon_millis(MAX_HORIZON_SECONDS).unwrap(), 86_400_000);
    }
}
