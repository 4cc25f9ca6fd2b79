//! The fuzz target's body for metrics grants (`fuzz_query`): every query the grant accepts is
//! checked again, selector by selector, by the plain definition of the grant, independently of
//! the walk. Built for tests and under the `fuzz` feature only: not part of the API.

use std::collections::BTreeMap;
use std::time::Duration;

use promql_parser::label::{METRIC_NAME, MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};

use super::selector::{literal_alternatives, selector_text};
use super::{MetricsGrant, SeriesGrant};
use crate::glob::Glob;

/// A fuzz target's body for metrics grants: checks `text` as an instant and as a range query
/// against a fixed grant, and, when it is accepted, that every selector in its parse matches the
/// grant by the plain definition (metric name and pinned labels), independently of the walk.
///
/// # Panics
/// When an accepted query holds a selector outside the grant: that is the bug a fuzzer looks for.
pub fn fuzz_query(text: &str) {
    let grant = MetricsGrant {
        series: vec![
            SeriesGrant {
                metric: "service_latency_p95_ms".into(),
                labels: BTreeMap::from([("service".into(), Glob::new("api-*"))]),
                regex: true,
            },
            SeriesGrant {
                metric: "http_request_duration_seconds_bucket".into(),
                labels: BTreeMap::from([("service".into(), Glob::new("*"))]),
                regex: false,
            },
            SeriesGrant {
                metric: "up".into(),
                labels: BTreeMap::new(),
                regex: false,
            },
        ],
        max_range: Duration::from_secs(3600),
    };
    let now = 1_767_225_600_000u64;
    let accepted = [
        grant.check_query(text, now).is_ok(),
        grant.check_range(text, now - 600_000, now).is_ok(),
    ];
    if !accepted.contains(&true) {
        return;
    }
    let expr = super::parse(text).expect("an accepted query parses");
    let mut selectors = Vec::new();
    collect_selectors(&expr, &mut selectors);
    for vs in selectors {
        let names: Vec<&Matcher> = vs
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name == METRIC_NAME)
            .collect();
        assert!(
            names.iter().all(|m| m.op == MatchOp::Equal),
            "accepted a non-equality `__name__` matcher in `{text}`"
        );
        let metric = vs
            .name
            .clone()
            .or_else(|| names.first().map(|m| m.value.clone()))
            .expect("an accepted selector names its metric");
        assert!(vs.matchers.or_matchers.is_empty());
        let entry_ok = |e: &SeriesGrant| {
            e.metric == metric
                && names.iter().all(|m| m.value == metric)
                && e.labels.iter().all(|(label, glob)| {
                    let on_label: Vec<&Matcher> = vs
                        .matchers
                        .matchers
                        .iter()
                        .filter(|m| &m.name == label)
                        .collect();
                    !on_label.is_empty()
                        && on_label.iter().all(|m| match &m.op {
                            MatchOp::Equal => !m.value.is_empty() && glob.matches(&m.value),
                            MatchOp::Re(re) => {
                                e.regex
                                    && !re.is_match("")
                                    && literal_alternatives(&m.value).is_some_and(|values| {
                                        values.iter().all(|v| {
                                            !v.is_empty() && glob.matches(v) && re.is_match(v)
                                        })
                                    })
                            }
                            _ => false,
                        })
                })
        };
        assert!(
            grant.series.iter().any(entry_ok),
            "accepted `{text}` with an ungranted selector `{}`",
            selector_text(vs)
        );
    }
}

fn collect_selectors<'e>(root: &'e Expr, out: &mut Vec<&'e VectorSelector>) {
    let mut work = vec![root];
    while let Some(expr) = work.pop() {
        match expr {
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
            Expr::Paren(p) => work.push(&p.expr),
            Expr::Unary(u) => work.push(&u.expr),
            Expr::Binary(b) => work.extend([&*b.lhs, &*b.rhs]),
            Expr::Aggregate(a) => {
                work.push(&a.expr);
                work.extend(a.param.as_deref());
            }
            Expr::Call(c) => work.extend(c.args.args.iter().map(|a| &**a)),
            Expr::VectorSelector(vs) => out.push(vs),
            Expr::MatrixSelector(ms) => out.push(&ms.vs),
            Expr::Subquery(sq) => work.push(&sq.expr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{INJECTIONS, NOW, grant};
    use super::*;

    /// Random queries over PromQL's alphabet through the fuzz body: no panic, and no accepted
    /// query with an ungranted selector (the fuzz target explores further).
    #[test]
    fn random_queries_never_get_an_ungranted_selector_through() {
        const PIECES: &[&str] = &[
            "up",
            "secrets_total",
            "service_latency_p95_ms",
            "http_request_duration_seconds_bucket",
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            "5m",
            "1m",
            ":",
            "30s",
            ",",
            "service",
            "__name__",
            "job",
            "=",
            "!=",
            "=~",
            "!~",
            "\"api-a\"",
            "\"\"",
            "\".+\"",
            "\"api-a|api-b\"",
            "\"x\"",
            " or ",
            " and ",
            " unless ",
            " on() ",
            " group_left ",
            " + ",
            " / ",
            "-",
            " offset ",
            " @ ",
            "start()",
            "end()",
            "0",
            "1767225600",
            "sum",
            "rate",
            "by (le)",
            "absent",
            "label_replace",
            "topk",
            "info",
            "# c\n",
            " ",
            "\n",
            "ａ",
            "\\",
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % below as u64).unwrap()
        };
        let g = grant();
        let mut accepted = 0;
        for _ in 0..20_000 {
            let len = 1 + next(16);
            let text: String = (0..len).map(|_| PIECES[next(PIECES.len())]).collect();
            fuzz_query(&text);
            if g.check_query(&text, NOW).is_ok() {
                accepted += 1;
            }
        }
        assert!(accepted > 0, "the alphabet never made a granted query");
    }

    #[test]
    fn the_fuzz_body_accepts_and_refuses_without_panicking() {
        for (query, _) in INJECTIONS {
            fuzz_query(query);
        }
        for query in [
            r#"service_latency_p95_ms{service=~"api-a|api-b"}"#,
            r#"histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{service="x"}[1m])) by (le))"#,
            "up",
        ] {
            fuzz_query(query);
        }
    }
}
