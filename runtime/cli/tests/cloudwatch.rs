//! The CloudWatch source against a CloudWatch-compatible server (moto): a metric an application
//! put is read with `GetMetricData` and published as an event; a metric whose newest datapoint
//! is older than `max_age` is never published, and its source says `stale`.
//!
//! Needs `moto_server` (`just test` installs it): without it the test is skipped, loudly, unless
//! `GRACE_E2E=required`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use grace_testkit::moto::Moto;
use grace_testkit::poll_until;

/// One call to moto's CloudWatch Query API.
fn cloudwatch(endpoint: &str, params: &[(&str, &str)]) {
    moto_query(endpoint, "monitoring", "2010-08-01", params);
}

fn put(endpoint: &str, queue: &str, value: &str, timestamp: &str) {
    cloudwatch(
        endpoint,
        &[
            ("Action", "PutMetricData"),
            ("Namespace", "Shop/Queues"),
            ("MetricData.member.1.MetricName", "Depth"),
            ("MetricData.member.1.Value", value),
            ("MetricData.member.1.Timestamp", timestamp),
            ("MetricData.member.1.Dimensions.member.1.Name", "Queue"),
            ("MetricData.member.1.Dimensions.member.1.Value", queue),
        ],
    );
}

fn source(name: &str, queue: &str) -> String {
    format!(
        "[[sources.cloudwatch]]\nname = \"{name}\"\nevent_type = \"queue.depth\"\n\
         resource = \"{queue}\"\nevery = \"1s\"\nlookback = \"30m\"\nmax_age = \"10m\"\n\
         [sources.cloudwatch.metric]\nid = \"depth\"\nnamespace = \"Shop/Queues\"\n\
         metric_name = \"Depth\"\ndimensions = {{ Queue = \"{queue}\" }}\nstat = \"Maximum\"\n\
         period = \"60s\"\n\n"
    )
}

#[test]
fn a_cloudwatch_metric_becomes_an_event_and_old_data_is_never_published() {
    let Some(moto) = Moto::start("a_cloudwatch_metric_becomes_an_event") else {
        return;
    };
    let endpoint = moto.endpoint();
    let now = std::time::SystemTime::now();
    let rfc3339 = |t: std::time::SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    put(
        &endpoint,
        "orders",
        "42",
        &rfc3339(now - Duration::from_secs(60)),
    );
    put(
        &endpoint,
        "refunds",
        "7",
        &rfc3339(now - Duration::from_secs(20 * 60)),
    );

    let data = data_dir();
    let config = data.path().join("grace.toml");
    std::fs::write(
        &config,
        format!(
            "[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n\n{}{}",
            source("orders-depth", "orders"),
            source("refunds-depth", "refunds")
        ),
    )
    .unwrap();
    let server = Server::start_live_with_env(
        &path_of(&data),
        &["--config", config.to_str().unwrap()],
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );

    let event = poll_until("the queue depth event", Duration::from_secs(60), || {
        server
            .events()
            .into_iter()
            .find(|e| e["event_type"] == "queue.depth")
    });
    assert_eq!(event["source"], "cloudwatch");
    assert_eq!(event["actor"], "orders-depth");
    assert_eq!(event["resource"], "orders");
    assert_eq!(event["payload"]["value"], 42.0);
    assert_eq!(event["payload"]["namespace"], "Shop/Queues");
    assert_eq!(event["payload"]["dimensions"]["Queue"], "orders");

    let refunds = poll_until(
        "the old datapoint to be refused",
        Duration::from_secs(30),
        || {
            let (_, s) = server.get("/v1/sources/refunds-depth");
            (s["status"] == "stale").then_some(s)
        },
    );
    assert!(
        refunds["stale_samples"].as_u64().unwrap() >= 1,
        "{refunds:#}"
    );
    assert_eq!(refunds["events"], 0, "{refunds:#}");

    // Polled every second, the orders datapoint is still published once: it is not news twice.
    let polls = |s: &serde_json::Value| s["successes"].as_u64().unwrap_or(0);
    let (_, before) = server.get("/v1/sources/orders-depth");
    poll_until(
        "three more polls of orders-depth",
        Duration::from_secs(30),
        || {
            let (_, now) = server.get("/v1/sources/orders-depth");
            (polls(&now) >= polls(&before) + 3).then_some(())
        },
    );
    let published: Vec<_> = server
        .events()
        .into_iter()
        .filter(|e| e["event_type"] == "queue.depth")
        .collect();
    assert_eq!(published.len(), 1, "{published:#?}");
    let (_, orders) = server.get("/v1/sources/orders-depth");
    assert!(orders["stale_samples"].as_u64().unwrap() >= 1, "{orders:#}");
}
