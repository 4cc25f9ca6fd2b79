//! The metrics grant's behaviour, end to end through `check_query` and `check_range`: which
//! queries are granted, how injection attempts are refused, and the bounds on a query's reach and
//! depth. The helpers here (`manifest`, `grant`, `NOW`, `INJECTIONS`) serve the other parts'
//! tests too.

use super::*;
use crate::manifest::{Manifest, ManifestError};

pub(super) const NOW: u64 = 1_767_225_600_000;
pub(super) const MINUTE: u64 = 60_000;

pub(super) fn manifest(version: u32, grants: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(&format!(
        "manifest_version = {version}\nname = \"p\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"p.wasm\"\n{grants}"
    ))
}

/// The grant of the tests: p95 latency of `api-*` services (a list of them with `=~`), any
/// histogram bucket of a named service, and `up` whatever its labels; ten minutes back.
pub(super) fn grant() -> MetricsGrant {
    manifest(
        2,
        r#"
[grants.metrics]
max_range = "10m"

[[grants.metrics.series]]
metric = "service_latency_p95_ms"
labels = { service = "api-*" }
regex = true

[[grants.metrics.series]]
metric = "http_request_duration_seconds_bucket"
labels = { service = "*" }

[[grants.metrics.series]]
metric = "up"
"#,
    )
    .unwrap()
    .grants
    .metrics
    .unwrap()
}

#[test]
fn granted_queries_are_allowed() {
    let g = grant();
    for query in [
        r#"service_latency_p95_ms{service="api-service"}"#,
        r#"service_latency_p95_ms{service="api-service", env!~"prod|staging"}"#,
        r#"{__name__="service_latency_p95_ms", service="api-a"}"#,
        r#"service_latency_p95_ms{service=~"api-a|api-b"}"#,
        r#"service_latency_p95_ms{service=~"api-x\\.y|api-z"}"#,
        r#"histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{service="api-service"}[5s])) by (le)) * 1000"#,
        r#"max_over_time(service_latency_p95_ms{service="api-a"}[5m] offset 2m)"#,
        r#"max_over_time(service_latency_p95_ms{service="api-a"}[5m:30s])"#,
        r#"up"#,
        r#"up{job=~".+"} == 0"#,
        r#"sum by (job) (up) / count by (job) (up)"#,
        r#"up or service_latency_p95_ms{service="api-a"}"#,
        r#"up @ end()"#,
        "up # a comment\n",
        "1 + 2",
    ] {
        assert_eq!(g.check_query(query, NOW), Ok(()), "{query}");
    }
    assert_eq!(
        g.check_range(
            r#"service_latency_p95_ms{service="api-a"}"#,
            NOW - 10 * MINUTE,
            NOW
        ),
        Ok(())
    );
}

/// Every injection attempt, and the start of the refusal it gets.
pub(super) const INJECTIONS: &[(&str, &str)] = &[
    // The issue's own example: a granted selector `or` everything.
    (
        r#"service_latency_p95_ms{service="x"} or {__name__=~".+", service=""}"#,
        "selector `service_latency_p95_ms{service=\"x\"}` is not granted",
    ),
    (
        r#"service_latency_p95_ms{service="api-a"} or {__name__=~".+", service=""}"#,
        "selector `{__name__=~\".+\", service=\"\"}` is not granted: `__name__` may only be matched with `=`",
    ),
    (
        r#"service_latency_p95_ms{service="api-a"} or on() secrets_total"#,
        "selector `secrets_total` is not granted: metric `secrets_total` is not granted",
    ),
    (
        r#"service_latency_p95_ms{service="api-a"} unless secrets_total"#,
        "selector `secrets_total` is not granted",
    ),
    (
        r#"service_latency_p95_ms{service="api-a"} * on() group_left secrets_total"#,
        "selector `secrets_total` is not granted",
    ),
    (
        r#"{__name__=~"service_latency_p95_ms|secrets_total", service="api-a"}"#,
        "selector `{__name__=~",
    ),
    (
        r#"{__name__!="x", service="api-a"}"#,
        "selector `{__name__!=\"x\", service=\"api-a\"}` is not granted",
    ),
    (
        r#"{service="api-a"}"#,
        "selector `{service=\"api-a\"}` is not granted: it names no metric",
    ),
    (
        r#"{__name__="up", __name__="secrets_total"}"#,
        "selector `{__name__=\"up\", __name__=\"secrets_total\"}` is not granted: it names two different metrics",
    ),
    // Prometheus refuses it too: a parse error, not a denial.
    (
        r#"up{__name__="secrets_total"}"#,
        "`query` is not valid PromQL: metric name must not be set twice",
    ),
    // Label constraints.
    (
        r#"service_latency_p95_ms"#,
        "selector `service_latency_p95_ms` is not granted: label `service` must be matched with `=`",
    ),
    (
        r#"service_latency_p95_ms{service="db-main"}"#,
        "selector `service_latency_p95_ms{service=\"db-main\"}` is not granted: label `service` value `db-main` is not granted",
    ),
    (
        r#"service_latency_p95_ms{service=""}"#,
        "selector `service_latency_p95_ms{service=\"\"}` is not granted: label `service` must not be matched to the empty value",
    ),
    (
        r#"service_latency_p95_ms{service=~".*"}"#,
        "selector `service_latency_p95_ms{service=~\".*\"}` is not granted: label `service` may only be matched with `=`, or `=~` with a list of literal values",
    ),
    (
        r#"service_latency_p95_ms{service=~"api-.*"}"#,
        "is not granted: label `service` may only be matched with `=`, or `=~`",
    ),
    (
        r#"service_latency_p95_ms{service=~"api-a|"}"#,
        "label `service` must not be matched to the empty value",
    ),
    (
        r#"service_latency_p95_ms{service=~"api-a|db"}"#,
        "label `service` value `db` is not granted",
    ),
    (
        r#"service_latency_p95_ms{service=~"(?i)API-A"}"#,
        "label `service` may only be matched with `=`, or `=~`",
    ),
    (
        r#"service_latency_p95_ms{service=~"api-a\\d"}"#,
        "label `service` may only be matched with `=`, or `=~`",
    ),
    (
        r#"service_latency_p95_ms{service!="api-a"}"#,
        "label `service` may only be matched with `=` (a regex or negative",
    ),
    (
        r#"service_latency_p95_ms{service!~"api-a"}"#,
        "label `service` may only be matched with `=` (a regex or negative",
    ),
    (
        r#"http_request_duration_seconds_bucket{service=~".+"}"#,
        "label `service` may only be matched with `=` (a regex or negative",
    ),
    // Duplicate matchers: every one on a constrained label is checked.
    (
        r#"service_latency_p95_ms{service="api-a", service=~".*"}"#,
        "label `service` may only be matched with `=`, or `=~`",
    ),
    (
        r#"service_latency_p95_ms{service="api-a", service="db"}"#,
        "label `service` value `db` is not granted",
    ),
    (
        r#"service_latency_p95_ms{service="api-a", service!="x"}"#,
        "label `service` may only be matched with `=` (a regex",
    ),
    // Functions and aggregations hide nothing.
    (
        r#"label_replace(secrets_total, "service", "api-a", "", "")"#,
        "selector `secrets_total` is not granted",
    ),
    (
        r#"absent(secrets_total{service="api-a"})"#,
        "selector `secrets_total{service=\"api-a\"}` is not granted",
    ),
    (
        r#"absent_over_time({__name__=~".+"}[5m])"#,
        "is not granted: `__name__` may only be matched with `=`",
    ),
    (
        r#"topk(scalar(secrets_total), up)"#,
        "selector `secrets_total` is not granted",
    ),
    (
        r#"count_values("value", secrets_total)"#,
        "selector `secrets_total` is not granted",
    ),
    (
        r#"sum(rate(secrets_total[5m])) by (le)"#,
        "selector `secrets_total` is not granted",
    ),
    (
        r#"info(up)"#,
        "function `info` reads series the query does not name",
    ),
    (
        r#"-(-(-(secrets_total)))"#,
        "selector `secrets_total` is not granted",
    ),
    (
        r#"vector(1) + on() group_left(secret) secrets_total"#,
        "selector `secrets_total` is not granted",
    ),
    // Subqueries, offsets and `@` within max_range (10m).
    (
        r#"max_over_time(secrets_total[5m:1m])"#,
        "selector `secrets_total` is not granted",
    ),
    (
        r#"max_over_time(service_latency_p95_ms{service="api-a"}[11m])"#,
        "selector `service_latency_p95_ms{service=\"api-a\"}[11m]` reaches 11m before the query's end, beyond the granted max_range 10m",
    ),
    (
        r#"service_latency_p95_ms{service="api-a"} offset 1h"#,
        "selector `service_latency_p95_ms{service=\"api-a\"}` reaches 1h before the query's end",
    ),
    (
        r#"max_over_time(service_latency_p95_ms{service="api-a"}[5m] offset 6m)"#,
        "reaches 11m before the query's end",
    ),
    (
        r#"max_over_time(service_latency_p95_ms{service="api-a"}[1m:1m] offset 10m)"#,
        "a subquery reaches 11m before the query's end",
    ),
    (
        r#"max_over_time(max_over_time(up[5m])[6m:1m])"#,
        "selector `up[5m]` reaches 11m before the query's end",
    ),
    (r#"up @ 0"#, "selector `up` reaches"),
    (r#"up @ 1767224999"#, "selector `up` reaches 10m 1s before"),
    (
        r#"up offset -1m"#,
        "selector `up` reads after the query's end",
    ),
    (
        r#"up @ 1767225660"#,
        "selector `up` reads after the query's end",
    ),
    (
        r#"max_over_time(up[1m:1ms])"#,
        "a subquery of 1m with a step of 1ms evaluates more than 11000 times",
    ),
    // Comments, whitespace and unicode change nothing.
    (
        "up # or {__name__=~\".+\"}\nor secrets_total",
        "selector `secrets_total` is not granted",
    ),
    (
        "up\n\tor\n\t{__name__=~\".+\"}",
        "`__name__` may only be matched with `=`",
    ),
    (
        r#"service_latency_p95_ms{service="api-a" , service = "dƅ"}"#,
        "label `service` value `dƅ` is not granted",
    ),
    (
        r#"service_latency_p95_ms{service="ａpi-a"}"#,
        "label `service` value `ａpi-a` is not granted",
    ),
    (
        r#"service_latency_p95_ms{service="api-a\u0000"} or secrets_total"#,
        "selector `secrets_total` is not granted",
    ),
    (
        r#"service_latency_p95_ms{service="\u0061pi-a"} or {__name__=~".+"}"#,
        "`__name__` may only be matched with `=`",
    ),
    // Not PromQL at all.
    (
        r#"service_latency_p95_ms{service="api-a"}) or (secrets_total"#,
        "`query` is not valid PromQL",
    ),
    (
        r#"service_latency_p95_ms{service="api-a""#,
        "`query` is not valid PromQL",
    ),
    ("", "`query` is not valid PromQL"),
];

#[test]
fn injection_attempts_are_refused_with_a_reason() {
    let g = grant();
    let mut wrong = Vec::new();
    for (query, expected) in INJECTIONS {
        match g.check_query(query, NOW) {
            Ok(()) => wrong.push(format!("accepted: {query}")),
            Err(e) if !e.to_string().contains(expected) => {
                wrong.push(format!("{query}\n  expected: {expected}\n  got:      {e}"));
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn parse_errors_are_invalid_and_the_rest_denied() {
    let g = grant();
    assert!(matches!(
        g.check_query("up{", NOW),
        Err(QueryError::Invalid(_))
    ));
    assert!(matches!(
        g.check_query("secrets_total", NOW),
        Err(QueryError::Denied(_))
    ));
}

#[test]
fn a_range_query_counts_its_window_in_the_reach() {
    let g = grant();
    let up = "up";
    assert_eq!(g.check_range(up, NOW - 10 * MINUTE, NOW), Ok(()));
    let e = g.check_range(up, NOW - 10 * MINUTE - 1, NOW).unwrap_err();
    assert!(
        e.to_string()
            .contains("longer than the granted max_range 10m"),
        "{e}"
    );
    // Five minutes of window and a six-minute matrix: eleven minutes back.
    let e = g
        .check_range("rate(up[6m])", NOW - 5 * MINUTE, NOW)
        .unwrap_err();
    assert!(e.to_string().contains("reaches 11m before"), "{e}");
    assert_eq!(g.check_range("up @ start()", NOW - 5 * MINUTE, NOW), Ok(()));
}

#[test]
fn deeply_nested_queries_are_refused_before_parsing() {
    let g = grant();
    for query in [
        format!("{}up{}", "(".repeat(2000), ")".repeat(2000)),
        format!("{}up", "-".repeat(4000)),
        vec!["up"; 1000].join(" + "),
        vec!["up"; 800].join(" or "),
    ] {
        assert!(
            matches!(g.check_query(&query, NOW), Err(QueryError::Invalid(_))),
            "{}",
            &query[..40]
        );
    }
    // Within the bound, a long chain is still checked selector by selector.
    let chain = format!("{} or secrets_total", vec!["up"; 100].join(" or "));
    assert!(
        g.check_query(&chain, NOW)
            .unwrap_err()
            .to_string()
            .contains("`secrets_total`")
    );
}

/// The deepest queries the bound lets through are parsed, walked and dropped on a small
/// stack: the guest's call runs on a fiber whose stack it shares with the guest.
#[test]
fn the_deepest_accepted_queries_fit_a_small_stack() {
    let queries = [
        format!("{}up", "-".repeat(511)),
        format!("up{}", " + up".repeat(511)),
        format!("{}up{}", "abs(".repeat(128), ")".repeat(128)),
        format!("{}up{}", "(".repeat(128), ")".repeat(128)),
        format!("{}up{}", "sum(".repeat(64), " or up)".repeat(64)),
    ];
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let g = grant();
            for query in &queries {
                let _ = g.check_query(query, NOW);
                fuzz_query(query);
            }
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
}

/// Found by the `promql_grant` fuzz target: promql-parser 0.11 panics converting a number too
/// large for a duration (here a subquery range), and a guest's query must never panic the host.
#[test]
fn a_query_that_panics_the_promql_parser_is_refused_not_a_panic() {
    let g = grant();
    for query in [
        "max_over_time(service_latency_p95_ms{service=\"api-a\"}[5e333333333:30s])",
        "rate(up[1e400:])",
    ] {
        let e = g.check_query(query, NOW).unwrap_err().to_string();
        assert!(e.contains("not valid PromQL"), "{query}: {e}");
        assert!(g.check_range(query, NOW - 60_000, NOW).is_err(), "{query}");
    }
}
