//! The built-in PromQL source: a query evaluated by Prometheus on a schedule, one event per
//! series of the answer, configured in `grace.toml` rather than written as a Wasm collector.
//!
//! ```toml
//! prometheus = "http://127.0.0.1:9090"
//!
//! [[sources.promql]]
//! name = "api-latency"
//! query = 'histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{service="api"}[1m])) by (le)) * 1000'
//! event_type = "metrics.latency"
//! every = "60s"              # default 60s
//! resource = "api-service"    # when the series has no `resource_label`
//! ```
//!
//! Each event: `source` `prometheus`, `actor` the source's name, `resource` the series'
//! `resource_label` (default: the first of `service`, `job`, `instance`) or `resource`, and the
//! payload `{value, metric, labels, query}`; its timestamp is the sample's. Non-finite values
//! (a quantile of no requests is NaN) are not published; neither is a sample older than
//! `max_age` or one already published.

use super::SettingError;
use std::sync::Arc;
use std::time::Duration;

use grace_engine::TriggerEvent;
use grace_engine::event::system_now_millis;
use grace_executor::metrics::Series;
use grace_executor::{ExecError, MetricsExecutor};
use grace_prometheus::PrometheusMetrics;
use serde::Deserialize;
use serde_json::json;

use super::poll::{Freshness, MAX_SERIES, Polled, Poller, Schedule, ScheduleConfig};
use super::{Labels, is_label_name, resource_of};

/// `[[sources.promql]]` in `grace.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PromqlConfig {
    /// Unique among sources; the events' `actor`.
    pub name: String,
    /// The PromQL expression, evaluated as an instant query.
    pub query: String,
    /// The events' `event_type`, e.g. `metrics.latency`.
    pub event_type: String,
    /// Prometheus' base URL; defaults to the top-level `prometheus`.
    pub url: Option<String>,
    /// The label naming each series' resource (default: `service`, `job`, `instance`).
    pub resource_label: Option<String>,
    /// The resource of series without that label (default: the source's name).
    pub resource: Option<String>,
    /// Samples older than this are not published (default: twice `every`, at least 1m).
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// `every = "60s"`.
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// `timeout = "10s"`.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// `unhealthy_after = 2`.
    pub unhealthy_after: Option<u32>,
}

impl PromqlConfig {
    /// The schedule part.
    pub fn schedule(&self, prefix: &str) -> Result<Schedule, SettingError> {
        ScheduleConfig {
            every: self.every,
            timeout: self.timeout,
            unhealthy_after: self.unhealthy_after,
        }
        .schedule(prefix)
    }
}

/// The first problem with a source's name, if any: names are what `/v1/sources` lists.
pub fn check_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 64 {
        Some("must be 1 to 64 characters")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        Some("may hold only lowercase letters, digits, `-` and `_`")
    } else {
        None
    }
}

/// A checked PromQL source.
pub struct PromqlSource {
    name: String,
    query: String,
    event_type: String,
    resource_label: Option<String>,
    resource: String,
    client: PrometheusMetrics,
    freshness: Freshness,
}

impl std::fmt::Debug for PromqlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromqlSource")
            .field("name", &self.name)
            .field("query", &self.query)
            .field("url", &self.client.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl PromqlSource {
    /// Checks `config` (errors name the key under `prefix`, e.g. `sources.promql[0]`) against
    /// the default Prometheus URL.
    pub fn new(
        config: &PromqlConfig,
        default_url: Option<&str>,
        prefix: &str,
    ) -> Result<(PromqlSource, Schedule), SettingError> {
        let field =
            |key: &str, message: &str| SettingError::new(format!("{prefix}.{key}"), message);
        if let Some(problem) = check_name(&config.name) {
            return Err(field("name", problem));
        }
        if config.query.trim().is_empty() {
            return Err(field("query", "must not be empty"));
        }
        let probe = TriggerEvent {
            event_type: config.event_type.clone(),
            source: "prometheus".into(),
            actor: config.name.clone(),
            resource: config
                .resource
                .clone()
                .unwrap_or_else(|| config.name.clone()),
            payload: json!({}),
            timestamp: 0,
        };
        if let Err(e) = probe.validate() {
            let (key, message) = super::event_problem(&e);
            let key = match key {
                "resource" => "resource",
                _ => "event_type",
            };
            return Err(field(key, &message));
        }
        if let Some(label) = &config.resource_label
            && !is_label_name(label)
        {
            return Err(field(
                "resource_label",
                "is not a label name (`[a-zA-Z_][a-zA-Z0-9_]*`)",
            ));
        }
        let url = config.url.as_deref().or(default_url).ok_or_else(|| {
            field(
                "url",
                "no Prometheus to ask: set `url` here or the top-level `prometheus`",
            )
        })?;
        let schedule = config.schedule(prefix)?;
        let max_age = config
            .max_age
            .unwrap_or((schedule.every * 2).max(Duration::from_secs(60)));
        if max_age.is_zero() {
            return Err(field("max_age", "must be more than 0"));
        }
        let client = PrometheusMetrics::new(url)
            .map_err(|e| {
                field(
                    if config.url.is_some() {
                        "url"
                    } else {
                        "prometheus"
                    },
                    &e,
                )
            })?
            .with_timeout(schedule.timeout)
            // Asked at our wall-clock time, so a Prometheus whose clock lags answers with old
            // timestamps, which the freshness check then refuses.
            .evaluate_at_server_time(false);
        Ok((
            PromqlSource {
                name: config.name.clone(),
                query: config.query.clone(),
                event_type: config.event_type.clone(),
                resource_label: config.resource_label.clone(),
                resource: config
                    .resource
                    .clone()
                    .unwrap_or_else(|| config.name.clone()),
                client,
                freshness: Freshness::new(max_age),
            },
            schedule,
        ))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The query, for `/v1/sources`.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The events of one answer, given the wall-clock time it arrived.
    fn events(&self, series: Vec<Series>, now: u64) -> Result<Polled, ExecError> {
        if series.len() > MAX_SERIES {
            return Err(ExecError::InvalidArgument(format!(
                "the query answered {} series, more than {MAX_SERIES}: aggregate it",
                series.len()
            )));
        }
        let mut polled = Polled::default();
        for s in series {
            let Some(sample) = s.samples.last() else {
                continue;
            };
            if !sample.value.is_finite() {
                continue;
            }
            let key = series_key(&s.labels);
            if !self.freshness.admit(&key, sample.timestamp, now) {
                polled.stale += 1;
                continue;
            }
            let resource = match &self.resource_label {
                Some(label) => s
                    .labels
                    .get(label)
                    .filter(|v| !v.is_empty())
                    .map_or(self.resource.as_str(), String::as_str),
                None => resource_of(&s.labels, &self.resource).0,
            };
            let event = TriggerEvent {
                event_type: self.event_type.clone(),
                source: "prometheus".into(),
                actor: self.name.clone(),
                resource: resource.to_owned(),
                payload: json!({
                    "value": sample.value,
                    "metric": s.labels.get("__name__").map_or(self.name.as_str(), String::as_str),
                    "labels": s.labels,
                    "query": self.query,
                }),
                timestamp: sample.timestamp,
            };
            match event.validate() {
                Ok(()) => polled.events.push(event),
                // A label value unfit as a resource: the series is skipped, the rest published.
                Err(e) => tracing::warn!(source = %self.name, series = %key, "series skipped: {e}"),
            }
        }
        Ok(polled)
    }
}

fn series_key(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

#[async_trait::async_trait]
impl Poller for PromqlSource {
    async fn poll(&self) -> Result<Polled, ExecError> {
        let series = self.client.query(&self.query, system_now_millis()).await?;
        self.events(series, system_now_millis())
    }
}

/// Checks every `[[sources.promql]]`.
pub fn build_all(
    configs: &[PromqlConfig],
    default_url: Option<&str>,
) -> Result<Vec<(Arc<PromqlSource>, Schedule)>, SettingError> {
    configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            PromqlSource::new(c, default_url, &format!("sources.promql[{i}]"))
                .map(|(s, schedule)| (Arc::new(s), schedule))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use grace_executor::metrics::Sample;

    use super::*;

    fn config(extra: &str) -> PromqlConfig {
        toml::from_str(&format!(
            "name = \"api-latency\"\nquery = 'p95'\nevent_type = \"metrics.latency\"\n{extra}"
        ))
        .unwrap()
    }

    fn series(labels: &[(&str, &str)], timestamp: u64, value: f64) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            samples: vec![Sample { timestamp, value }],
        }
    }

    #[test]
    fn each_series_becomes_an_event_named_by_its_resource_label() {
        let (source, schedule) =
            PromqlSource::new(&config(""), Some("http://127.0.0.1:9090"), "s").unwrap();
        assert_eq!(schedule.every, Duration::from_secs(60));
        let now = 1_767_225_900_000;
        let polled = source
            .events(
                vec![
                    series(&[("service", "api")], now - 500, 812.5),
                    series(&[("le", "x")], now - 500, 1.0),
                    series(&[("service", "idle")], now - 500, f64::NAN),
                ],
                now,
            )
            .unwrap();
        assert_eq!(polled.events.len(), 2, "NaN is not a measurement");
        let e = &polled.events[0];
        assert_eq!(
            (
                e.event_type.as_str(),
                e.source.as_str(),
                e.actor.as_str(),
                e.resource.as_str()
            ),
            ("metrics.latency", "prometheus", "api-latency", "api")
        );
        assert_eq!(e.timestamp, now - 500);
        assert_eq!(e.payload["value"], 812.5);
        assert_eq!(e.payload["query"], "p95");
        assert_eq!(e.payload["labels"]["service"], "api");
        assert_eq!(
            polled.events[1].resource, "api-latency",
            "no label: the fallback"
        );
    }

    #[test]
    fn old_or_repeated_samples_are_never_published_as_fresh() {
        let (source, _) = PromqlSource::new(
            &config("every = \"10s\"\nmax_age = \"30s\""),
            Some("http://127.0.0.1:9090"),
            "s",
        )
        .unwrap();
        let now = 1_767_225_900_000;
        let first = source
            .events(vec![series(&[], now - 1_000, 1.0)], now)
            .unwrap();
        assert_eq!((first.events.len(), first.stale), (1, 0));
        let again = source
            .events(vec![series(&[], now - 1_000, 1.0)], now + 10_000)
            .unwrap();
        assert_eq!((again.events.len(), again.stale), (0, 1), "the same sample");
        let old = source
            .events(vec![series(&[("service", "b")], now - 31_000, 1.0)], now)
            .unwrap();
        assert_eq!((old.events.len(), old.stale), (0, 1), "older than max_age");
    }

    #[test]
    fn a_chosen_resource_label_and_fallback_resource_apply() {
        let (source, _) = PromqlSource::new(
            &config("resource_label = \"pod\"\nresource = \"checkout\""),
            Some("http://127.0.0.1:9090"),
            "s",
        )
        .unwrap();
        let now = 1_767_225_900_000;
        let polled = source
            .events(
                vec![
                    series(&[("pod", "web-1"), ("service", "api")], now, 1.0),
                    series(&[("service", "api")], now, 2.0),
                ],
                now,
            )
            .unwrap();
        let resources: Vec<_> = polled.events.iter().map(|e| e.resource.as_str()).collect();
        assert_eq!(resources, ["web-1", "checkout"]);
    }

    #[test]
    fn bad_configurations_are_refused_naming_the_key() {
        let url = Some("http://127.0.0.1:9090");
        for (extra_or_name, key) in [
            ("name = \"Bad Name\"", "s.name"),
            ("event_type = \"Latency!\"", "s.event_type"),
            ("resource_label = \"a-b\"", "s.resource_label"),
            ("every = \"0s\"", "s.every"),
            ("max_age = \"0s\"", "s.max_age"),
            ("url = \"ftp://x\"", "s.url"),
        ] {
            let text = format!(
                "name = \"api-latency\"\nquery = 'p95'\nevent_type = \"metrics.latency\"\n{extra_or_name}"
            );
            // Later keys in TOML may not repeat earlier ones: rebuild with the override.
            let mut table: toml::Table = toml::from_str(
                "name = \"api-latency\"\nquery = 'p95'\nevent_type = \"metrics.latency\"",
            )
            .unwrap();
            let over: toml::Table = toml::from_str(extra_or_name).unwrap();
            table.extend(over);
            let config: PromqlConfig = table.try_into().unwrap();
            let e = PromqlSource::new(&config, url, "s").unwrap_err();
            assert!(e.to_string().starts_with(key), "{text}: {e}");
        }
        let e = PromqlSource::new(&config(""), None, "s").unwrap_err();
        assert!(e.to_string().starts_with("s.url"), "{e}");
        let unknown = toml::from_str::<PromqlConfig>(
            "name = \"a\"\nquery = 'p95'\nevent_type = \"metrics.x\"\nqeury = 'typo'",
        )
        .unwrap_err();
        assert!(unknown.to_string().contains("qeury"), "{unknown}");
    }
}
