//! The built-in CloudWatch source: one metric read with `GetMetricData` on a schedule, its
//! newest datapoint published as an event.
//!
//! ```toml
//! [aws]
//! region = "eu-west-1"            # credentials: the standard AWS chain
//!
//! [[sources.cloudwatch]]
//! name = "api-cpu"
//! event_type = "metrics.cpu"
//! resource = "api-asg"             # default: the source's name
//! every = "60s"
//! lookback = "10m"                 # the range asked for; default 5 periods, at least 5m
//! max_age = "15m"                  # default: the lookback
//! [sources.cloudwatch.metric]
//! id = "cpu"
//! namespace = "AWS/EC2"
//! metric_name = "CPUUtilization"
//! dimensions = { AutoScalingGroupName = "api-asg" }
//! stat = "Average"                 # or Sum, Maximum, Minimum, SampleCount, p95, p99.9
//! period = "60s"
//! ```
//!
//! Each event: `source` `cloudwatch`, `actor` the source's name, payload `{value, metric,
//! namespace, dimensions, stat, period_seconds}`, timestamp the datapoint's. CloudWatch
//! datapoints arrive late and are revised while their period is open: only a datapoint newer
//! than the last one published, and younger than `max_age`, is published.

use super::SettingError;
use std::sync::Arc;
use std::time::Duration;

use grace_aws::{CloudWatch, MetricQuery, MetricStatus};
use grace_engine::TriggerEvent;
use grace_engine::event::system_now_millis;
use grace_executor::ExecError;
use serde::Deserialize;
use serde_json::json;

use super::poll::{Freshness, Polled, Poller, Schedule, ScheduleConfig};
use super::promql::check_name;

/// `[[sources.cloudwatch]]` in `grace.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchConfig {
    /// Unique among sources; the events' `actor`.
    pub name: String,
    /// The events' `event_type`.
    pub event_type: String,
    /// The events' `resource` (default: the source's name).
    pub resource: Option<String>,
    /// The metric (checked as CloudWatch would).
    pub metric: MetricQuery,
    /// The range asked for, ending now (default: 5 periods, at least 5 minutes).
    #[serde(default, with = "humantime_serde")]
    pub lookback: Option<Duration>,
    /// Datapoints older than this are not published (default: the lookback).
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

/// A checked CloudWatch source, ready to poll.
pub struct CloudWatchSource {
    config: CloudWatchConfig,
    resource: String,
    lookback: Duration,
    client: CloudWatch,
    freshness: Freshness,
}

impl CloudWatchConfig {
    /// Checks everything but the client: `(lookback, max_age, schedule)`.
    pub fn check(&self, prefix: &str) -> Result<(Duration, Duration, Schedule), SettingError> {
        let field =
            |key: &str, message: &str| SettingError::new(format!("{prefix}.{key}"), message);
        if let Some(problem) = check_name(&self.name) {
            return Err(field("name", problem));
        }
        let probe = TriggerEvent {
            event_type: self.event_type.clone(),
            source: "cloudwatch".into(),
            actor: self.name.clone(),
            resource: self.resource.clone().unwrap_or_else(|| self.name.clone()),
            payload: json!({}),
            timestamp: 0,
        };
        if let Err(e) = probe.validate() {
            let (key, message) = super::event_problem(&e);
            let key = if key == "resource" {
                "resource"
            } else {
                "event_type"
            };
            return Err(field(key, &message));
        }
        let lookback = self
            .lookback
            .unwrap_or((self.metric.period * 5).max(Duration::from_secs(300)));
        if lookback < self.metric.period || lookback > Duration::from_secs(24 * 3600) {
            return Err(field(
                "lookback",
                "must be at least the metric's period and at most 24h",
            ));
        }
        let max_age = self.max_age.unwrap_or(lookback);
        if max_age.is_zero() {
            return Err(field("max_age", "must be more than 0"));
        }
        let schedule = ScheduleConfig {
            every: self.every,
            timeout: self.timeout,
            unhealthy_after: self.unhealthy_after,
        }
        .schedule(prefix)?;
        Ok((lookback, max_age, schedule))
    }
}

impl CloudWatchSource {
    /// Checks `config` (errors name the key under `prefix`) and binds it to a client.
    pub fn new(
        config: &CloudWatchConfig,
        client: Option<&CloudWatch>,
        prefix: &str,
    ) -> Result<(CloudWatchSource, Schedule), SettingError> {
        let (lookback, max_age, schedule) = config.check(prefix)?;
        let client = client
            .ok_or_else(|| {
                SettingError::new(
                    prefix,
                    "CloudWatch needs [aws] in grace.toml (region, and the endpoint for tests)",
                )
            })?
            .clone();
        Ok((
            CloudWatchSource {
                resource: config
                    .resource
                    .clone()
                    .unwrap_or_else(|| config.name.clone()),
                config: config.clone(),
                lookback,
                client,
                freshness: Freshness::new(max_age),
            },
            schedule,
        ))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// `namespace/metric_name stat`, for `/v1/sources`.
    pub fn target(&self) -> String {
        let m = &self.config.metric;
        format!("{}/{} {:?}", m.namespace, m.metric_name, m.stat)
    }
}

#[async_trait::async_trait]
impl Poller for CloudWatchSource {
    async fn poll(&self) -> Result<Polled, ExecError> {
        // Periods are counted from the start time: aligned to the period, the same datapoint
        // keeps the same timestamp from one poll to the next, so it is not news twice.
        let period = u64::try_from(self.config.metric.period.as_millis())
            .unwrap_or(60_000)
            .max(1);
        let now = system_now_millis();
        let end = (now / period + 1) * period;
        let lookback = u64::try_from(self.lookback.as_millis()).unwrap_or(u64::MAX);
        let start = (now.saturating_sub(lookback) / period) * period;
        let results = self
            .client
            .get_metric_data(std::slice::from_ref(&self.config.metric), start, end)
            .await?;
        let mut polled = Polled::default();
        let Some(result) = results.into_iter().next() else {
            return Ok(polled);
        };
        match &result.status_code {
            MetricStatus::Complete | MetricStatus::PartialData => {}
            other => {
                return Err(ExecError::Unavailable(format!(
                    "CloudWatch answered `{}` for `{}`",
                    other.as_str(),
                    result.id
                )));
            }
        }
        // Only the newest point is news; older ones were published before or are history.
        let Some(point) = result.points.last() else {
            return Ok(polled);
        };
        if !point.value.is_finite() {
            return Ok(polled);
        }
        if !self
            .freshness
            .admit(&result.id, point.timestamp, system_now_millis())
        {
            polled.stale += 1;
            return Ok(polled);
        }
        let m = &self.config.metric;
        polled.events.push(TriggerEvent {
            event_type: self.config.event_type.clone(),
            source: "cloudwatch".into(),
            actor: self.config.name.clone(),
            resource: self.resource.clone(),
            payload: json!({
                "value": point.value,
                "metric": m.metric_name,
                "namespace": m.namespace,
                "dimensions": m.dimensions,
                "stat": m.stat,
                "period_seconds": m.period.as_secs(),
            }),
            timestamp: point.timestamp,
        });
        Ok(polled)
    }
}

/// Binds every `[[sources.cloudwatch]]` to the client.
pub fn build_all(
    configs: &[CloudWatchConfig],
    client: Option<&CloudWatch>,
) -> Result<Vec<(Arc<CloudWatchSource>, Schedule)>, SettingError> {
    configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            CloudWatchSource::new(c, client, &format!("sources.cloudwatch[{i}]"))
                .map(|(s, schedule)| (Arc::new(s), schedule))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const GOOD: &str = r#"
        name = "api-cpu"
        event_type = "metrics.cpu"
        resource = "api-asg"
        [metric]
        id = "cpu"
        namespace = "AWS/EC2"
        metric_name = "CPUUtilization"
        dimensions = { AutoScalingGroupName = "api-asg" }
        stat = "Average"
        period = "60s"
    "#;

    #[test]
    fn a_configuration_is_read_with_defaults() {
        let c: CloudWatchConfig = toml::from_str(GOOD).unwrap();
        let (lookback, max_age, schedule) = c.check("s").unwrap();
        assert_eq!(lookback, Duration::from_secs(300));
        assert_eq!(max_age, lookback);
        assert_eq!(schedule.every, Duration::from_secs(60));
    }

    #[test]
    fn bad_configurations_are_refused_naming_the_key() {
        for (from, to, key) in [
            ("name = \"api-cpu\"", "name = \"API\"", "s.name"),
            (
                "event_type = \"metrics.cpu\"",
                "event_type = \"x y\"",
                "s.event_type",
            ),
            (
                "resource = \"api-asg\"",
                "resource = \"api-asg\"\nlookback = \"10s\"",
                "s.lookback",
            ),
            (
                "resource = \"api-asg\"",
                "resource = \"api-asg\"\nmax_age = \"0s\"",
                "s.max_age",
            ),
        ] {
            let text = GOOD.replace(from, to);
            let c: CloudWatchConfig = toml::from_str(&text).unwrap();
            let e = c.check("s").unwrap_err();
            assert!(e.to_string().starts_with(key), "{text}: {e}");
        }
        // The metric itself is checked as it is read, naming its field.
        let e = toml::from_str::<CloudWatchConfig>(
            &GOOD.replace("period = \"60s\"", "period = \"7s\""),
        )
        .unwrap_err();
        assert!(e.to_string().contains("period"), "{e}");
        let c: CloudWatchConfig = toml::from_str(GOOD).unwrap();
        let e = CloudWatchSource::new(&c, None, "s").err().unwrap();
        assert!(e.to_string().contains("[aws]"), "{e}");
    }
}
