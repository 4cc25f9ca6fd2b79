//! CloudWatch metrics for GRACE's collectors: [`CloudWatch::get_metric_data`] runs
//! [`MetricQuery`]s over a time range with `GetMetricData`, follows its pages, and answers one
//! [`MetricResult`] per query with its points oldest first.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat, ScanBy,
    StatusCode as AwsStatus,
};
use aws_smithy_types::DateTime;
use grace_executor::ExecError;
use grace_executor::metrics::Sample;
use serde::Serialize;

use crate::error::from_sdk_error;
use crate::query::MetricQuery;
use crate::settings::AwsSettings;

/// Most queries of one `GetMetricData` call.
pub const MAX_QUERIES: usize = 500;

/// Most pages followed for one call: a guard against an endpoint that never stops paging.
const MAX_PAGES: usize = 1_000;

/// Whether CloudWatch answered all of a query's points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum MetricStatus {
    /// Every point of the range.
    Complete,
    /// CloudWatch stopped early (too many points); the points are a prefix of the range.
    PartialData,
    /// CloudWatch failed on this query.
    InternalError,
    /// The credentials may not read this metric.
    Forbidden,
    /// A status newer than this code, as CloudWatch spells it.
    Other(String),
}

impl MetricStatus {
    /// CloudWatch's spelling (`Complete`, `PartialData`).
    pub fn as_str(&self) -> &str {
        match self {
            MetricStatus::Complete => "Complete",
            MetricStatus::PartialData => "PartialData",
            MetricStatus::InternalError => "InternalError",
            MetricStatus::Forbidden => "Forbidden",
            MetricStatus::Other(s) => s,
        }
    }

    fn from_aws(status: Option<&AwsStatus>) -> MetricStatus {
        match status {
            None | Some(AwsStatus::Complete) => MetricStatus::Complete,
            Some(AwsStatus::PartialData) => MetricStatus::PartialData,
            Some(AwsStatus::InternalError) => MetricStatus::InternalError,
            Some(AwsStatus::Forbidden) => MetricStatus::Forbidden,
            Some(other) => MetricStatus::Other(other.as_str().to_owned()),
        }
    }
}

impl From<MetricStatus> for String {
    fn from(status: MetricStatus) -> String {
        status.as_str().to_owned()
    }
}

/// The answer to one [`MetricQuery`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricResult {
    /// The query's id.
    pub id: String,
    /// CloudWatch's label for the series (by default `<metric name> <stat>`).
    pub label: String,
    /// Whether every point of the range is there.
    pub status_code: MetricStatus,
    /// One point per period that has data, oldest first, timestamps in milliseconds.
    pub points: Vec<Sample>,
}

/// CloudWatch in one account and region.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    client: aws_sdk_cloudwatch::Client,
    /// The SDK enforces it; kept to say so in errors.
    call_timeout: Duration,
}

impl CloudWatch {
    /// A client calling CloudWatch with `config` (see [`AwsSettings::load_sdk_config`]).
    pub fn new(config: &SdkConfig, settings: &AwsSettings) -> CloudWatch {
        CloudWatch {
            client: aws_sdk_cloudwatch::Client::new(config),
            call_timeout: settings.call_timeout,
        }
    }

    /// The SDK client, for what GRACE does not cover.
    pub fn client(&self) -> &aws_sdk_cloudwatch::Client {
        &self.client
    }

    /// Runs `queries` over `[start, end)` (milliseconds since the epoch): one result per
    /// query, in the queries' order, every page followed.
    ///
    /// Queries are checked first ([`MetricQuery::validate`], unique ids, at most
    /// [`MAX_QUERIES`]); a refused one is [`ExecError::InvalidArgument`] naming the field.
    pub async fn get_metric_data(
        &self,
        queries: &[MetricQuery],
        start: u64,
        end: u64,
    ) -> Result<Vec<MetricResult>, ExecError> {
        check(queries, start, end)?;
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = queries.iter().map(|q| q.id.as_str()).collect();
        let what = format!("GetMetricData of `{}`", ids.join("`, `"));
        let mut pages = self
            .client
            .get_metric_data()
            .set_metric_data_queries(Some(queries.iter().map(to_aws).collect()))
            .start_time(date_time(start)?)
            .end_time(date_time(end)?)
            .scan_by(ScanBy::TimestampAscending)
            .into_paginator()
            .send();
        let mut results = Vec::with_capacity(queries.len());
        let mut count = 0;
        while let Some(page) = pages.next().await {
            count += 1;
            if count > MAX_PAGES {
                return Err(ExecError::Other(format!(
                    "{what}: CloudWatch kept paging past {MAX_PAGES} pages"
                )));
            }
            let page = page.map_err(|e| from_sdk_error(e, &what, self.call_timeout))?;
            merge_page(&mut results, page.metric_data_results())
                .map_err(|m| ExecError::Other(format!("{what}: {m}")))?;
        }
        Ok(finish(results, &ids))
    }
}

/// Refuses what CloudWatch would refuse, before calling it.
fn check(queries: &[MetricQuery], start: u64, end: u64) -> Result<(), ExecError> {
    if start >= end {
        return Err(ExecError::InvalidArgument(format!(
            "the range of a metric query must end after it starts (start {start} ms, end {end} ms)"
        )));
    }
    if queries.len() > MAX_QUERIES {
        return Err(ExecError::InvalidArgument(format!(
            "{} metric queries in one call; CloudWatch takes at most {MAX_QUERIES}",
            queries.len()
        )));
    }
    for (i, query) in queries.iter().enumerate() {
        query
            .validate()
            .map_err(|e| ExecError::InvalidArgument(e.to_string()))?;
        if queries[..i].iter().any(|q| q.id == query.id) {
            return Err(ExecError::InvalidArgument(format!(
                "metric query id `{}` is used twice",
                query.id
            )));
        }
    }
    Ok(())
}

fn date_time(millis: u64) -> Result<DateTime, ExecError> {
    i64::try_from(millis)
        .map(DateTime::from_millis)
        .map_err(|_| ExecError::InvalidArgument(format!("time {millis} ms is out of range")))
}

fn to_aws(query: &MetricQuery) -> MetricDataQuery {
    let dimensions = query
        .dimensions
        .iter()
        .map(|(name, value)| Dimension::builder().name(name).value(value).build())
        .collect();
    let metric = Metric::builder()
        .namespace(&query.namespace)
        .metric_name(&query.metric_name)
        .set_dimensions(Some(dimensions))
        .build();
    MetricDataQuery::builder()
        .id(&query.id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(query.period_seconds())
                .stat(query.stat.to_string())
                .build(),
        )
        .return_data(true)
        .build()
}

/// Adds one page's results to those of earlier pages: a query's points may continue over
/// several pages, and its status is the one of its last page.
fn merge_page(results: &mut Vec<MetricResult>, page: &[MetricDataResult]) -> Result<(), String> {
    for result in page {
        let id = result
            .id()
            .ok_or("CloudWatch answered a result without an id")?;
        let (timestamps, values) = (result.timestamps(), result.values());
        if timestamps.len() != values.len() {
            return Err(format!(
                "CloudWatch answered `{id}` with {} timestamps for {} values",
                timestamps.len(),
                values.len()
            ));
        }
        let points = timestamps
            .iter()
            .zip(values)
            .map(|(t, value)| {
                let timestamp = t
                    .to_millis()
                    .ok()
                    .and_then(|ms| u64::try_from(ms).ok())
                    .ok_or_else(|| format!("CloudWatch answered `{id}` with the time `{t}`"))?;
                Ok(Sample {
                    timestamp,
                    value: *value,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        for message in result.messages() {
            tracing::warn!(
                query = id,
                code = message.code().unwrap_or_default(),
                message = message.value().unwrap_or_default(),
                "CloudWatch message about a metric query"
            );
        }
        let status_code = MetricStatus::from_aws(result.status_code());
        match results.iter_mut().find(|r| r.id == id) {
            Some(earlier) => {
                earlier.points.extend(points);
                earlier.status_code = status_code;
            }
            None => results.push(MetricResult {
                id: id.to_owned(),
                label: result.label().unwrap_or_default().to_owned(),
                status_code,
                points,
            }),
        }
    }
    Ok(())
}

/// Orders results as the queries were, and each result's points oldest first.
fn finish(mut results: Vec<MetricResult>, ids: &[&str]) -> Vec<MetricResult> {
    for result in &mut results {
        result.points.sort_by_key(|p| p.timestamp);
    }
    results.sort_by_key(|r| ids.iter().position(|id| *id == r.id).unwrap_or(usize::MAX));
    results
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::query::Stat;

    fn aws_result(id: &str, points: &[(i64, f64)], status: &str) -> MetricDataResult {
        let mut b = MetricDataResult::builder()
            .id(id)
            .label(format!("{id} label"))
            .status_code(AwsStatus::from(status));
        for (secs, value) in points {
            b = b.timestamps(DateTime::from_secs(*secs)).values(*value);
        }
        b.build()
    }

    fn samples(r: &MetricResult) -> Vec<(u64, f64)> {
        r.points.iter().map(|p| (p.timestamp, p.value)).collect()
    }

    #[test]
    fn pages_continue_a_query_and_the_last_status_wins() {
        let mut results = Vec::new();
        merge_page(
            &mut results,
            &[
                aws_result("b", &[(120, 2.0), (60, 1.0)], "PartialData"),
                aws_result("a", &[(60, 10.0)], "PartialData"),
            ],
        )
        .unwrap();
        merge_page(&mut results, &[aws_result("b", &[(180, 3.0)], "Complete")]).unwrap();
        let results = finish(results, &["a", "b"]);
        assert_eq!(
            results.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(samples(&results[0]), [(60_000, 10.0)]);
        assert_eq!(results[0].status_code, MetricStatus::PartialData);
        assert_eq!(
            samples(&results[1]),
            [(60_000, 1.0), (120_000, 2.0), (180_000, 3.0)]
        );
        assert_eq!(results[1].status_code, MetricStatus::Complete);
        assert_eq!(results[1].label, "b label");
    }

    #[test]
    fn mismatched_timestamps_and_values_are_reported() {
        let broken = MetricDataResult::builder()
            .id("a")
            .timestamps(DateTime::from_secs(60))
            .build();
        let e = merge_page(&mut Vec::new(), &[broken]).unwrap_err();
        assert!(e.contains("1 timestamps for 0 values"), "{e}");
    }

    #[test]
    fn unknown_statuses_keep_cloudwatch_spelling() {
        let status = MetricStatus::from_aws(Some(&AwsStatus::from("Throttled")));
        assert_eq!(status.as_str(), "Throttled");
        assert_eq!(
            serde_json::to_string(&MetricStatus::PartialData).unwrap(),
            "\"PartialData\""
        );
    }

    fn query(id: &str) -> MetricQuery {
        MetricQuery {
            id: id.to_owned(),
            namespace: "GRACE/Test".to_owned(),
            metric_name: "Latency".to_owned(),
            dimensions: BTreeMap::new(),
            stat: Stat::Average,
            period: Duration::from_secs(60),
        }
    }

    #[test]
    fn duplicate_ids_and_empty_ranges_are_refused_before_calling() {
        let e = check(&[query("a"), query("b"), query("a")], 0, 60_000).unwrap_err();
        assert!(
            matches!(&e, ExecError::InvalidArgument(m) if m.contains("`a` is used twice")),
            "{e:?}"
        );
        let e = check(&[query("a")], 60_000, 60_000).unwrap_err();
        assert!(matches!(e, ExecError::InvalidArgument(_)), "{e:?}");
        let e = check(&[query("Bad")], 0, 60_000).unwrap_err();
        assert!(
            matches!(&e, ExecError::InvalidArgument(m) if m.contains("`id`")),
            "{e:?}"
        );
    }

    #[test]
    fn queries_reach_cloudwatch_in_its_terms() {
        let q = MetricQuery {
            dimensions: BTreeMap::from([("AutoScalingGroupName".to_owned(), "web".to_owned())]),
            stat: Stat::Percentile(95.0),
            period: Duration::from_secs(300),
            ..query("lat")
        };
        let aws = to_aws(&q);
        let stat = aws.metric_stat().unwrap();
        assert_eq!(aws.id(), Some("lat"));
        assert_eq!(stat.stat(), Some("p95"));
        assert_eq!(stat.period(), Some(300));
        let metric = stat.metric().unwrap();
        assert_eq!(metric.namespace(), Some("GRACE/Test"));
        assert_eq!(metric.dimensions()[0].name(), Some("AutoScalingGroupName"));
        assert_eq!(metric.dimensions()[0].value(), Some("web"));
    }
}
