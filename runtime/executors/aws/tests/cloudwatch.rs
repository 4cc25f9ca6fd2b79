//! `CloudWatch::get_metric_data` against a real moto server: what `PutMetricData` stored comes
//! back per period, oldest first, with millisecond timestamps.
//!
//! The tests share one moto server; each writes to its own namespace.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use grace_aws::{CloudWatch, MetricQuery, MetricStatus, Stat};
use grace_executor::ExecError;
use grace_testkit::moto::Moto;

/// The start of the minute ten minutes ago, in milliseconds.
fn ten_minutes_ago() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now - 600) / 60 * 60 * 1000
}

fn datum(group: &str, at_millis: u64, value: f64) -> MetricDatum {
    MetricDatum::builder()
        .metric_name("Latency")
        .dimensions(
            Dimension::builder()
                .name("AutoScalingGroupName")
                .value(group)
                .build(),
        )
        .timestamp(DateTime::from_millis(i64::try_from(at_millis).unwrap()))
        .value(value)
        .build()
}

fn latency(id: &str, namespace: &str, stat: Stat) -> MetricQuery {
    MetricQuery {
        id: id.to_owned(),
        namespace: namespace.to_owned(),
        metric_name: "Latency".to_owned(),
        dimensions: BTreeMap::from([("AutoScalingGroupName".to_owned(), "web".to_owned())]),
        stat,
        period: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn put_metric_data_comes_back_per_period_oldest_first() {
    let Some(moto) = Moto::shared("put_metric_data_comes_back_per_period") else {
        return;
    };
    let settings = common::settings(&moto.endpoint());
    let config = common::sdk_config(&settings).await;
    let namespace = "GRACE/Test/RoundTrip";
    let t0 = ten_minutes_ago();
    aws_sdk_cloudwatch::Client::new(&config)
        .put_metric_data()
        .namespace(namespace)
        .metric_data(datum("web", t0 + 5_000, 1.0))
        .metric_data(datum("web", t0 + 20_000, 3.0))
        .metric_data(datum("web", t0 + 65_000, 5.0))
        .metric_data(datum("web", t0 + 130_000, 7.0))
        // Another group's series: its dimensions differ, so no query below sees it.
        .metric_data(datum("db", t0 + 10_000, 100.0))
        .send()
        .await
        .unwrap();

    let cloudwatch = CloudWatch::new(&config, &settings);
    let results = cloudwatch
        .get_metric_data(
            &[
                latency("avg", namespace, Stat::Average),
                latency("total", namespace, Stat::Sum),
            ],
            t0,
            t0 + 180_000,
        )
        .await
        .unwrap();

    assert_eq!(
        results.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["avg", "total"]
    );
    let points = |i: usize| -> Vec<(u64, f64)> {
        results[i]
            .points
            .iter()
            .map(|p| (p.timestamp, p.value))
            .collect()
    };
    assert_eq!(
        points(0),
        [(t0, 2.0), (t0 + 60_000, 5.0), (t0 + 120_000, 7.0)]
    );
    assert_eq!(
        points(1),
        [(t0, 4.0), (t0 + 60_000, 5.0), (t0 + 120_000, 7.0)]
    );
    assert_eq!(results[0].status_code, MetricStatus::Complete);
    assert_eq!(results[0].label, "Latency Average");
}

#[tokio::test]
async fn a_range_without_data_gives_an_empty_result() {
    let Some(moto) = Moto::shared("a_range_without_data_gives_an_empty_result") else {
        return;
    };
    let settings = common::settings(&moto.endpoint());
    let config = common::sdk_config(&settings).await;
    let t0 = ten_minutes_ago();
    // Its own dimensions too: moto ignores the namespace once a query has dimensions.
    let mut query = latency("avg", "GRACE/Test/Empty", Stat::Average);
    query
        .dimensions
        .insert("AutoScalingGroupName".to_owned(), "idle".to_owned());
    let results = CloudWatch::new(&config, &settings)
        .get_metric_data(&[query], t0, t0 + 120_000)
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].id, "avg");
    assert!(results[0].points.is_empty());
}

#[tokio::test]
async fn bad_query_fields_are_refused_naming_the_field_before_any_call() {
    // An endpoint that records whether anyone connected, and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let settings = common::settings(&endpoint);
    let config = common::sdk_config(&settings).await;
    let cloudwatch = CloudWatch::new(&config, &settings);
    let good = latency("ok", "GRACE/Test/Refused", Stat::Average);
    for (bad, field) in [
        (
            MetricQuery {
                id: "Latency".to_owned(),
                ..good.clone()
            },
            "`id`",
        ),
        (
            MetricQuery {
                namespace: String::new(),
                ..good.clone()
            },
            "`namespace`",
        ),
        (
            MetricQuery {
                metric_name: String::new(),
                ..good.clone()
            },
            "`metric_name`",
        ),
        (
            MetricQuery {
                period: Duration::from_secs(90),
                ..good.clone()
            },
            "`period`",
        ),
        (
            MetricQuery {
                stat: Stat::Percentile(101.0),
                ..good.clone()
            },
            "`stat`",
        ),
    ] {
        let e = cloudwatch
            .get_metric_data(&[good.clone(), bad], 0, 60_000)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ExecError::InvalidArgument(m) if m.contains(field)),
            "{field}: {e:?}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "a refused query reached the endpoint"
    );
}
