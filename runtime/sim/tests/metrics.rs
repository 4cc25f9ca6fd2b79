//! The simulated metrics provider: built-in metrics, selectors, fixed series and range queries.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use grace_executor::metrics::Series;
use grace_executor::{Clock, ExecError, MetricsExecutor, ScalingExecutor};
use grace_sim::{Fleet, Simulation};

const START: u64 = 1_767_225_600_000;

const LATENCY_PROMQL: &str = r#"histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{service="api-service"}[1m])) by (le)) * 1000"#;

struct World {
    sim: Simulation,
    metrics: Arc<dyn MetricsExecutor>,
    scaling: Arc<dyn ScalingExecutor>,
}

fn world(fleet: &Fleet) -> World {
    let sim = Simulation::new(fleet);
    let executors = sim.executors();
    World {
        metrics: executors
            .metrics
            .default_provider()
            .map(|p| p.executor().clone())
            .expect("the simulation has a metrics executor"),
        scaling: executors
            .scaling
            .default_provider()
            .map(|p| p.executor().clone())
            .expect("the simulation has a scaling executor"),
        sim,
    }
}

fn default_world() -> World {
    world(&Fleet::default_fleet())
}

/// `(label values, sample values)` per series.
fn values(series: &[Series]) -> Vec<(Vec<&str>, Vec<f64>)> {
    series
        .iter()
        .map(|s| {
            (
                s.labels.values().map(String::as_str).collect(),
                s.samples.iter().map(|x| x.value).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn selector_with_a_matcher_returns_that_service() {
    let w = default_world();
    let series = w
        .metrics
        .query(r#"service_latency_p95_ms{service="api-service"}"#, START)
        .await
        .expect("valid");
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].labels.get("service").map(String::as_str),
        Some("api-service")
    );
    assert_eq!(series[0].samples.len(), 1);
    assert_eq!(series[0].samples[0].timestamp, START);
    assert!((series[0].samples[0].value - 900.0).abs() < 1e-6);
}

#[tokio::test]
async fn bare_metric_name_returns_one_series_per_group_sorted_by_name() {
    let w = default_world();
    let series = w
        .metrics
        .query("group_desired_capacity", START)
        .await
        .expect("valid");
    assert_eq!(
        values(&series),
        [(vec!["api-asg"], vec![3.0]), (vec!["batch-asg"], vec![1.0])]
    );
    let series = w
        .metrics
        .query(" group_in_service { } ", START)
        .await
        .expect("valid");
    assert_eq!(series.len(), 2);
}

#[tokio::test]
async fn service_metrics_follow_the_model() {
    let w = default_world();
    let load = w
        .metrics
        .query("service_load_rps", START)
        .await
        .expect("valid");
    assert_eq!(values(&load), [(vec!["api-service"], vec![520.0])]);
    let u = w
        .metrics
        .query("service_utilisation", START)
        .await
        .expect("valid");
    assert!((u[0].samples[0].value - 520.0 / 600.0).abs() < 1e-9);
}

#[tokio::test]
async fn well_formed_selector_matching_nothing_is_empty() {
    let w = default_world();
    for q in [
        r#"service_latency_p95_ms{service="nope"}"#,
        r#"group_in_service{service="api-service"}"#,
    ] {
        assert_eq!(w.metrics.query(q, START).await.expect(q), [], "{q}");
    }
}

#[tokio::test]
async fn unknown_metric_is_rejected_listing_the_known_ones() {
    let w = default_world();
    let error = w
        .metrics
        .query("cpu_seconds_total", START)
        .await
        .expect_err("unknown");
    let ExecError::InvalidArgument(message) = &error else {
        panic!("expected an invalid argument, got {error:?}");
    };
    assert!(message.contains("`cpu_seconds_total`"), "{message}");
    for known in [
        "group_desired_capacity",
        "group_in_service",
        "service_latency_p95_ms",
        "service_load_rps",
        "service_utilisation",
    ] {
        assert!(message.contains(known), "{message}");
    }
}

#[tokio::test]
async fn malformed_queries_are_rejected() {
    let w = default_world();
    for q in [
        "",
        r#"service_load_rps{service=api-service}"#,
        r#"service_load_rps{service!="x"}"#,
        "rate(service_load_rps[5m])",
    ] {
        let result = w.metrics.query(q, START).await;
        assert!(
            matches!(result, Err(ExecError::InvalidArgument(_))),
            "{q}: {result:?}"
        );
    }
}

#[tokio::test]
async fn series_alias_answers_real_promql_like_the_builtin() {
    let w = default_world();
    let alias = w
        .metrics
        .query(LATENCY_PROMQL, START)
        .await
        .expect("aliased");
    let builtin = w
        .metrics
        .query(r#"service_latency_p95_ms{service="api-service"}"#, START)
        .await
        .expect("valid");
    assert_eq!(alias, builtin);
}

#[tokio::test]
async fn fixed_series_follow_their_step_function_and_win_over_builtins() {
    let fleet = Fleet::from_toml(
        r#"
[[groups]]
name = "g"
min_size = 1
max_size = 3

[[series]]
query = 'up{job="api"}'
labels = { job = "api" }
points = [[-60, 1.0], [300, 0.0]]

[[series]]
query = "group_in_service"
labels = { group = "overridden" }
points = [[0, 42.0]]
"#,
    )
    .expect("valid");
    let w = world(&fleet);
    let up = r#"up{job="api"}"#;
    let at = |secs: u64| START + secs * 1_000;
    assert_eq!(
        w.metrics.query(up, START - 120_000).await.expect("fixed"),
        [],
        "before the first point"
    );
    assert_eq!(
        values(&w.metrics.query(up, START - 60_000).await.expect("fixed")),
        [(vec!["api"], vec![1.0])]
    );
    assert_eq!(
        values(&w.metrics.query(up, at(299)).await.expect("fixed")),
        [(vec!["api"], vec![1.0])]
    );
    assert_eq!(
        values(&w.metrics.query(up, at(300)).await.expect("fixed")),
        [(vec!["api"], vec![0.0])]
    );
    let overridden = w
        .metrics
        .query("group_in_service", START)
        .await
        .expect("fixed");
    assert_eq!(values(&overridden), [(vec!["overridden"], vec![42.0])]);
}

#[tokio::test]
async fn query_range_returns_one_sample_per_step_from_start_to_end() {
    let w = default_world();
    let series = w
        .metrics
        .query_range(
            "group_in_service",
            START,
            START + 600_000,
            Duration::from_secs(15),
        )
        .await
        .expect("valid");
    assert_eq!(series.len(), 2);
    for s in &series {
        assert_eq!(s.samples.len(), 41);
        assert_eq!(s.samples[0].timestamp, START);
        assert_eq!(s.samples[40].timestamp, START + 600_000);
    }
    let uneven = w
        .metrics
        .query_range(
            "group_in_service",
            START,
            START + 20_000,
            Duration::from_secs(15),
        )
        .await
        .expect("valid");
    assert_eq!(
        uneven[0].samples.len(),
        2,
        "the last step past `end` is left out"
    );
}

#[tokio::test]
async fn query_range_rejects_step_zero_and_too_many_points() {
    let w = default_world();
    let zero = w
        .metrics
        .query_range("group_in_service", START, START + 1_000, Duration::ZERO)
        .await;
    assert!(
        matches!(zero, Err(ExecError::InvalidArgument(_))),
        "{zero:?}"
    );
    let many = w
        .metrics
        .query_range(
            "group_in_service",
            START,
            START + 11_000_000,
            Duration::from_secs(1),
        )
        .await;
    assert!(
        matches!(many, Err(ExecError::InvalidArgument(_))),
        "{many:?}"
    );
    let limit = w
        .metrics
        .query_range(
            "group_in_service",
            START,
            START + 10_999_000,
            Duration::from_secs(1),
        )
        .await
        .expect("exactly 11,000 points");
    assert_eq!(limit[0].samples.len(), 11_000);
}

#[tokio::test]
async fn queries_about_the_past_see_the_capacity_of_that_moment() {
    let w = default_world();
    w.sim.clock().advance(Duration::from_secs(60));
    w.scaling
        .set_desired_capacity("api-asg", 5)
        .await
        .expect("in range");
    w.scaling
        .wait_in_service("api-asg", Duration::from_secs(600))
        .await
        .expect("settles");
    let now = w.sim.clock().now_millis();
    assert_eq!(now, START + 150_000);

    let q = r#"group_in_service{group="api-asg"}"#;
    let range = w
        .metrics
        .query_range(q, START, now, Duration::from_secs(30))
        .await
        .expect("valid");
    assert_eq!(
        values(&range),
        [(vec!["api-asg"], vec![3.0, 3.0, 3.0, 3.0, 3.0, 5.0])]
    );

    let desired = w
        .metrics
        .query(r#"group_desired_capacity{group="api-asg"}"#, START + 30_000)
        .await
        .expect("valid");
    assert_eq!(values(&desired), [(vec!["api-asg"], vec![3.0])]);

    let latency = w
        .metrics
        .query(LATENCY_PROMQL, START + 149_999)
        .await
        .expect("valid");
    assert!((latency[0].samples[0].value - 900.0).abs() < 1e-6);
    let latency = w.metrics.query(LATENCY_PROMQL, now).await.expect("valid");
    assert!((latency[0].samples[0].value - 250.0).abs() < 1e-6);
}
