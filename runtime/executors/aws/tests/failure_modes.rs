//! How AWS failures that moto cannot produce reach GRACE: throttling, an endpoint that never
//! answers, an answer that is not AWS's, nothing listening. Each runs against a
//! [`FakeEndpoint`] (a hand-made loopback server) through the real SDK clients.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::fake_endpoint::query_error;
use grace_aws::{AutoScaling, AwsSettings, CloudWatch, MetricQuery, Stat};
use grace_executor::{ExecError, ScalingExecutor};
use grace_testkit::fake_endpoint::{Behaviour, FakeEndpoint};

async fn providers(
    endpoint: &str,
    adjust: impl FnOnce(&mut AwsSettings),
) -> (AutoScaling, CloudWatch) {
    let mut settings = common::settings(endpoint);
    adjust(&mut settings);
    let config = common::sdk_config(&settings).await;
    (
        AutoScaling::new(&config, &settings),
        CloudWatch::new(&config, &settings),
    )
}

fn latency_query() -> MetricQuery {
    MetricQuery {
        id: "latency".to_owned(),
        namespace: "GRACE/Test".to_owned(),
        metric_name: "Latency".to_owned(),
        dimensions: BTreeMap::new(),
        stat: Stat::Average,
        period: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn a_throttled_describe_is_unavailable_and_says_throttled() {
    let aws = FakeEndpoint::start(query_error(
        "400 Bad Request",
        "Throttling",
        "Rate exceeded",
    ));
    let (scaling, _) = providers(&aws.endpoint(), |_| {}).await;
    let e = scaling.describe_group("web").await.unwrap_err();
    let ExecError::Unavailable(message) = &e else {
        panic!("not Unavailable: {e:?}")
    };
    assert!(message.contains("throttled"), "{message}");
    assert!(message.contains("Rate exceeded"), "{message}");
    assert!(message.contains("`web`"), "{message}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn throttled_calls_are_retried_by_the_sdk_up_to_call_max_attempts() {
    let aws = FakeEndpoint::start(query_error(
        "400 Bad Request",
        "Throttling",
        "Rate exceeded",
    ));
    let (scaling, _) = providers(&aws.endpoint(), |s| s.call_max_attempts = 2).await;
    let e = scaling.describe_group("web").await.unwrap_err();
    assert!(matches!(e, ExecError::Unavailable(_)), "{e:?}");
    assert_eq!(aws.requests(), 2);
}

#[tokio::test]
async fn a_throttled_metric_query_is_unavailable() {
    let aws = FakeEndpoint::start(query_error(
        "400 Bad Request",
        "Throttling",
        "Rate exceeded",
    ));
    let (_, cloudwatch) = providers(&aws.endpoint(), |_| {}).await;
    let e = cloudwatch
        .get_metric_data(&[latency_query()], 0, 600_000)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ExecError::Unavailable(m) if m.contains("throttled") && m.contains("`latency`")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_scaling_activity_in_progress_is_a_conflict() {
    let aws = FakeEndpoint::start(query_error(
        "400 Bad Request",
        "ScalingActivityInProgress",
        "Scaling activity is in progress",
    ));
    let (scaling, _) = providers(&aws.endpoint(), |_| {}).await;
    let e = scaling.describe_group("web").await.unwrap_err();
    assert!(matches!(e, ExecError::Conflict(_)), "{e:?}");
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out_within_call_timeout() {
    let aws = FakeEndpoint::start(Behaviour::Silent);
    let call_timeout = Duration::from_millis(500);
    let (scaling, cloudwatch) = providers(&aws.endpoint(), |s| s.call_timeout = call_timeout).await;

    let started = Instant::now();
    let e = scaling.describe_group("web").await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(&e, ExecError::TimedOut(m) if m.contains("500ms") && m.contains("`web`")),
        "{e:?}"
    );
    assert!(
        waited < call_timeout + Duration::from_millis(500),
        "took {waited:?}"
    );

    let e = cloudwatch
        .get_metric_data(&[latency_query()], 0, 600_000)
        .await
        .unwrap_err();
    assert!(matches!(e, ExecError::TimedOut(_)), "{e:?}");
    assert!(aws.requests() >= 2);
}

#[tokio::test]
async fn an_answer_that_is_not_aws_is_reported_naming_the_call() {
    let aws = FakeEndpoint::start(FakeEndpoint::garbage(
        "<html><body>captive portal</body></html>",
    ));
    let (scaling, _) = providers(&aws.endpoint(), |_| {}).await;
    let e = scaling.describe_group("web").await.unwrap_err();
    let ExecError::Other(message) = &e else {
        panic!("not Other: {e:?}")
    };
    assert!(message.contains("not an AWS response"), "{message}");
    assert!(message.contains("DescribeAutoScalingGroups"), "{message}");
    assert!(message.contains("`web`"), "{message}");
    assert!(!e.is_transient());
}

#[tokio::test]
async fn a_server_error_without_aws_body_is_unavailable() {
    let aws = FakeEndpoint::start(Behaviour::Answer {
        status: "503 Service Unavailable",
        content_type: "text/plain",
        body: "upstream connect error".to_owned(),
    });
    let (scaling, _) = providers(&aws.endpoint(), |_| {}).await;
    let e = scaling.describe_group("web").await.unwrap_err();
    assert!(matches!(e, ExecError::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    // Bind then drop: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (scaling, cloudwatch) = providers(&format!("http://127.0.0.1:{port}"), |_| {}).await;
    let e = scaling.describe_group("web").await.unwrap_err();
    assert!(
        matches!(&e, ExecError::Unavailable(m) if m.contains("cannot reach")),
        "{e:?}"
    );
    let e = cloudwatch
        .get_metric_data(&[latency_query()], 0, 600_000)
        .await
        .unwrap_err();
    assert!(matches!(e, ExecError::Unavailable(_)), "{e:?}");
}
