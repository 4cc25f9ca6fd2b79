//! Metric queries in the simulation: the fleet file's fixed `[[series]]`, the built-in metrics
//! computed from the model, and the simulated [`MetricsExecutor`].
//!
//! A query is answered, in this order:
//!
//! 0. at the times an event's value seeds it ([`Seed`]), by that value;
//! 1. by the `[[series]]` whose `query` is the same text (surrounding whitespace aside), so real
//!    PromQL from a playbook's config works in a dry-run;
//! 2. by a built-in metric, if the query is a selector (see [`crate::selector`]).
//!
//! Built-in series carry one label, `service` or `group`, and are sorted by it. They have no
//! `__name__` label. Values are computed from the model at each sample's time, past or future:
//! group history is kept, so a query about the past sees the capacity of that moment.

use std::time::Duration;

use grace_executor::metrics::{Sample, Series};
use grace_executor::{ExecError, Labels, MetricsExecutor};

use crate::fleet::{SeriesSource, SeriesSpec};
use crate::selector::{BuiltinMetric, Selector};
use crate::simulation::{Simulation, World, millis};

/// The most samples `query_range` returns per series, as in Prometheus.
pub(crate) const MAX_POINTS: u64 = 11_000;

/// A `[[series]]` entry, resolved against the fleet's start.
#[derive(Debug, Clone)]
pub(crate) struct FixedSeries {
    query: String,
    source: FixedSource,
}

#[derive(Debug, Clone)]
enum FixedSource {
    /// Labels and `(time in milliseconds since the epoch, value)`, oldest first.
    Points {
        labels: Labels,
        points: Vec<(u64, f64)>,
    },
    SameAs(Selector),
}

impl FixedSeries {
    /// Resolves a validated `[[series]]` entry; `None` if its alias does not parse (validation
    /// has ruled that out).
    pub fn new(spec: &SeriesSpec, start_millis: u64) -> Option<FixedSeries> {
        let source = match &spec.source {
            SeriesSource::Points { labels, points } => FixedSource::Points {
                labels: labels.clone(),
                points: points
                    .iter()
                    .map(|&(secs, value)| (offset(start_millis, secs), value))
                    .collect(),
            },
            SeriesSource::SameAs(text) => FixedSource::SameAs(Selector::parse(text).ok()?),
        };
        Some(FixedSeries {
            query: spec.query.clone(),
            source,
        })
    }
}

/// `start` plus `secs` seconds (which may be negative), clamped to the epoch.
fn offset(start_millis: u64, secs: i64) -> u64 {
    let millis = i128::from(start_millis) + i128::from(secs) * 1_000;
    u64::try_from(millis.max(0)).unwrap_or(u64::MAX)
}

/// A value an event reported for a query, answering it from the event's time until the fleet
/// next changes (see [`Simulation::seed_series`](crate::Simulation::seed_series)).
#[derive(Debug, Clone)]
pub(crate) struct Seed {
    query: String,
    value: f64,
    from: u64,
    until: Option<u64>,
}

impl Seed {
    pub fn new(query: &str, value: f64, from: u64) -> Seed {
        Seed {
            query: query.trim().to_owned(),
            value,
            from,
            until: None,
        }
    }

    /// The fleet changed at `now`: the seed answers no later time.
    pub fn end_at(&mut self, now: u64) {
        if self.until.is_none() {
            self.until = Some(now.max(self.from));
        }
    }

    fn covers(&self, t: u64) -> bool {
        self.from <= t && self.until.is_none_or(|until| t < until)
    }
}

/// Evaluates `query` at each of `times`: the usual answer, with the samples of times a seed
/// covers replaced by its value (a query with no usual answer gets one series, unlabelled).
pub(crate) fn evaluate(
    world: &World,
    query: &str,
    times: &[u64],
) -> Result<Vec<Series>, ExecError> {
    let text = query.trim();
    let seeded = |t: u64| {
        world
            .seeds
            .iter()
            .rev()
            .find(|s| s.query == text && s.covers(t))
            .map(|s| s.value)
    };
    if !times.iter().any(|&t| seeded(t).is_some()) {
        return evaluate_unseeded(world, text, times);
    }
    let mut result = match evaluate_unseeded(world, text, times) {
        Ok(series) if series.len() == 1 => series,
        // Several series, or none, or no usual answer at all: the seed is the one series.
        _ => vec![Series {
            labels: Labels::new(),
            samples: Vec::new(),
        }],
    };
    let series = &mut result[0];
    let usual: Vec<Sample> = std::mem::take(&mut series.samples);
    series.samples = times
        .iter()
        .filter_map(|&t| match seeded(t) {
            Some(value) => Some(Sample {
                timestamp: t,
                value,
            }),
            None => usual.iter().find(|s| s.timestamp == t).cloned(),
        })
        .collect();
    Ok(result)
}

fn evaluate_unseeded(world: &World, text: &str, times: &[u64]) -> Result<Vec<Series>, ExecError> {
    if let Some(fixed) = world.series.iter().find(|s| s.query == text) {
        return match &fixed.source {
            FixedSource::Points { labels, points } => {
                let samples: Vec<Sample> = times
                    .iter()
                    .filter_map(|&t| {
                        let (_, value) = points.iter().rev().find(|(at, _)| *at <= t)?;
                        Some(Sample {
                            timestamp: t,
                            value: *value,
                        })
                    })
                    .collect();
                Ok(if samples.is_empty() {
                    Vec::new()
                } else {
                    vec![Series {
                        labels: labels.clone(),
                        samples,
                    }]
                })
            }
            FixedSource::SameAs(selector) => evaluate_builtin(world, selector, times),
        };
    }
    let selector = Selector::parse(text).map_err(|e| {
        ExecError::InvalidArgument(format!(
            "cannot evaluate `{text}`: {e}; the simulated fleet answers selectors of its built-in \
             metrics, like `name{{label=\"value\"}}`, and the exact queries of its [[series]]"
        ))
    })?;
    evaluate_builtin(world, &selector, times)
}

fn evaluate_builtin(
    world: &World,
    selector: &Selector,
    times: &[u64],
) -> Result<Vec<Series>, ExecError> {
    let metric = BuiltinMetric::from_name(&selector.metric).ok_or_else(|| {
        ExecError::InvalidArgument(format!(
            "unknown metric `{}`; known metrics: {}",
            selector.metric,
            BuiltinMetric::known_names()
        ))
    })?;
    let mut result = Vec::new();
    if metric.is_per_service() {
        for service in &world.services {
            let labels = Labels::from([("service".to_owned(), service.name.clone())]);
            if !selector.matches(&labels) {
                continue;
            }
            let group = world.group(&service.group)?;
            let samples = times
                .iter()
                .map(|&t| {
                    let in_service = group.in_service_at(t);
                    let value = match metric {
                        BuiltinMetric::ServiceLatencyP95Ms => service.p95_latency_ms(in_service),
                        BuiltinMetric::ServiceLoadRps => service.load_rps,
                        // No capacity: +Inf, as Prometheus divides by zero.
                        _ => service.utilisation(in_service).unwrap_or(f64::INFINITY),
                    };
                    Sample {
                        timestamp: t,
                        value,
                    }
                })
                .collect();
            result.push(Series { labels, samples });
        }
    } else {
        for group in &world.groups {
            let labels = Labels::from([("group".to_owned(), group.name.clone())]);
            if !selector.matches(&labels) {
                continue;
            }
            let samples = times
                .iter()
                .map(|&t| {
                    let value = match metric {
                        BuiltinMetric::GroupInService => group.in_service_at(t),
                        _ => group.desired_at(t),
                    };
                    Sample {
                        timestamp: t,
                        value: f64::from(value),
                    }
                })
                .collect();
            result.push(Series { labels, samples });
        }
    }
    Ok(result)
}

/// The sample times of a range query: `start`, `start + step`, ... up to `end`.
pub(crate) fn range_times(start: u64, end: u64, step: Duration) -> Result<Vec<u64>, ExecError> {
    let step_millis = millis(step);
    if step_millis == 0 {
        return Err(ExecError::InvalidArgument(
            "step must be at least 1 ms".to_owned(),
        ));
    }
    if end < start {
        return Err(ExecError::InvalidArgument(format!(
            "end `{end}` is before start `{start}`"
        )));
    }
    let points = (end - start) / step_millis + 1;
    if points > MAX_POINTS {
        return Err(ExecError::InvalidArgument(format!(
            "{points} points per series is more than the limit of {MAX_POINTS}: use a larger step"
        )));
    }
    Ok((0..points).map(|i| start + i * step_millis).collect())
}

/// The simulated Prometheus.
#[derive(Debug, Clone)]
pub(crate) struct SimMetrics {
    pub sim: Simulation,
}

#[async_trait::async_trait]
impl MetricsExecutor for SimMetrics {
    async fn query(&self, query: &str, at: u64) -> Result<Vec<Series>, ExecError> {
        self.sim
            .with_world(|world, _| evaluate(world, query, &[at]))
    }

    async fn query_range(
        &self,
        query: &str,
        start: u64,
        end: u64,
        step: Duration,
    ) -> Result<Vec<Series>, ExecError> {
        let times = range_times(start, end, step)?;
        self.sim
            .with_world(|world, _| evaluate(world, query, &times))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_times_include_both_ends_when_aligned() {
        let times = range_times(1_000, 61_000, Duration::from_secs(15)).expect("valid");
        assert_eq!(times, [1_000, 16_000, 31_000, 46_000, 61_000]);
        assert_eq!(
            range_times(5, 5, Duration::from_millis(1)).expect("valid"),
            [5]
        );
    }

    #[test]
    fn range_limits_are_enforced() {
        assert!(range_times(0, 10, Duration::ZERO).is_err());
        assert!(range_times(0, 10, Duration::from_micros(999)).is_err());
        assert!(range_times(10, 0, Duration::from_millis(1)).is_err());
        assert_eq!(
            range_times(0, 10_999, Duration::from_millis(1))
                .expect("valid")
                .len(),
            11_000
        );
        assert!(matches!(
            range_times(0, 11_000, Duration::from_millis(1)),
            Err(ExecError::InvalidArgument(_))
        ));
    }

    #[test]
    fn only_the_newest_seeded_values_are_kept() {
        use crate::{Fleet, MAX_SEEDS, Simulation};
        use grace_executor::Clock;
        let sim = Simulation::new(&Fleet::default_fleet());
        let start = sim.clock().now_millis();
        for i in 0..(MAX_SEEDS as u64 + 10) {
            sim.seed_series("q", 1.0, start + i);
        }
        let (kept, oldest) = sim.with_world(|w, _| (w.seeds.len(), w.seeds[0].clone()));
        assert_eq!(kept, MAX_SEEDS);
        assert_eq!(oldest.from, start + 10, "the oldest are dropped first");
    }

    #[tokio::test]
    async fn a_seeded_query_answers_the_events_value_until_the_fleet_changes() {
        use crate::{Fleet, Simulation};
        use grace_executor::Clock;
        let sim = Simulation::new(&Fleet::default_fleet());
        let q = r#"service_latency_p95_ms{service="api-service"}"#;
        let start = sim.clock().now_millis();
        sim.seed_series(q, 40.0, start + 1_000);
        let metrics = sim.executors().metrics.default_provider().expect("sim");
        let read = |at| {
            let metrics = metrics.executor().clone();
            async move { metrics.query(q, at).await.expect("answers")[0].samples[0].value }
        };
        assert!(
            read(start).await > 800.0,
            "before the event, the model answers"
        );
        assert_eq!(read(start + 1_000).await, 40.0);
        sim.clock().advance(Duration::from_secs(10));
        let scaling = sim.executors().scaling.default_provider().expect("sim");
        scaling
            .executor()
            .set_desired_capacity("api-asg", 3)
            .await
            .expect("within limits");
        let changed = sim.clock().now_millis();
        assert_eq!(
            read(changed - 1).await,
            40.0,
            "the seed held until the change"
        );
        assert!(
            read(changed).await > 800.0,
            "after the change, the model answers"
        );
    }

    #[test]
    fn negative_offsets_reach_before_the_start() {
        assert_eq!(offset(10_000, -5), 5_000);
        assert_eq!(offset(1_000, -5), 0);
    }
}
