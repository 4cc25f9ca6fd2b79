//! One series named by its metric and exact label set (what the `anomaly` capability reads),
//! checked by Prometheus' naming rules, and granted exactly as a selector pinning each of those
//! labels with `=` would be.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use promql_parser::label::{METRIC_NAME, MatchOp, Matcher};

use super::{MetricsGrant, QueryError, shorten};
use crate::grants::Denial;

/// Longest metric name or label name (the bound grants have).
pub const MAX_NAME_BYTES: usize = 256;
/// Longest label value.
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;
/// Most labels a series may be named with.
pub const MAX_SERIES_LABELS: usize = 64;

/// Whether `name` is a Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*` (length unchecked).
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*` (length unchecked).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A series' name: its metric and its exact label set, valid by Prometheus' rules and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesName {
    metric: String,
    labels: BTreeMap<String, String>,
}

fn invalid<T>(message: String) -> Result<T, QueryError> {
    Err(QueryError::Invalid(message))
}

impl SeriesName {
    /// Checks the arguments `metric` and `labels` (named so in errors): a metric name, at most
    /// [`MAX_SERIES_LABELS`] labels with label names, values of at most
    /// [`MAX_LABEL_VALUE_BYTES`] without control characters, no name twice.
    pub fn parse(
        metric: &str,
        labels: impl IntoIterator<Item = (String, String)>,
    ) -> Result<SeriesName, QueryError> {
        if !is_metric_name(metric) || metric.len() > MAX_NAME_BYTES {
            return invalid(format!(
                "`metric` is not a metric name: `{}` (letters, digits, `_` and `:`, not starting with a digit, at most {MAX_NAME_BYTES} bytes)",
                shorten(&metric.escape_debug().to_string(), 100)
            ));
        }
        let mut out = BTreeMap::new();
        for (i, (name, value)) in labels.into_iter().enumerate() {
            if i >= MAX_SERIES_LABELS {
                return invalid(format!("`labels` has more than {MAX_SERIES_LABELS} labels"));
            }
            if !is_label_name(&name) || name == METRIC_NAME || name.len() > MAX_NAME_BYTES {
                return invalid(format!(
                    "`labels`: `{}` is not a label name (letters, digits and `_`, not starting with a digit, at most {MAX_NAME_BYTES} bytes; the metric is `metric`)",
                    shorten(&name.escape_debug().to_string(), 100)
                ));
            }
            if value.len() > MAX_LABEL_VALUE_BYTES {
                return invalid(format!(
                    "`labels`: the value of `{name}` is {} bytes, above the limit of {MAX_LABEL_VALUE_BYTES}",
                    value.len()
                ));
            }
            if value.chars().any(char::is_control) {
                return invalid(format!(
                    "`labels`: the value of `{name}` holds a control character"
                ));
            }
            if out.contains_key(&name) {
                return invalid(format!("`labels` repeats the label `{name}`"));
            }
            out.insert(name, value);
        }
        Ok(SeriesName {
            metric: metric.to_owned(),
            labels: out,
        })
    }

    /// The metric name.
    pub fn metric(&self) -> &str {
        &self.metric
    }

    /// The labels, sorted by name.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The PromQL selector of exactly these labels, e.g. `latency{service="api"}`: how
    /// policies (`Grace::Query`'s `expr`), denials and the ledger name the series.
    pub fn selector(&self) -> String {
        let mut text = self.metric.clone();
        if !self.labels.is_empty() {
            text.push('{');
            for (i, (name, value)) in self.labels.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = write!(text, "{name}=\"{escaped}\"");
            }
            text.push('}');
        }
        text
    }
}

impl MetricsGrant {
    /// May the guest read the series `series`? Checked as the selector pinning each of its
    /// labels with `=` (see [`SeriesName::selector`]) is by [`MetricsGrant::check_query`]:
    /// its metric is an entry's, and every label that entry constrains is pinned to a value
    /// matching its glob.
    pub fn check_series(&self, series: &SeriesName) -> Result<(), Denial> {
        let matchers: Vec<Matcher> = series
            .labels
            .iter()
            .map(|(name, value)| Matcher::new(MatchOp::Equal, name, value))
            .collect();
        let text = shorten(&series.selector(), 200);
        match self.admit(&text, &series.metric, &matchers) {
            Ok(()) => Ok(()),
            Err(QueryError::Denied(d)) => Err(d),
            Err(QueryError::Invalid(m)) => Err(Denial(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn invalid_message(metric: &str, pairs: &[(&str, &str)]) -> String {
        match SeriesName::parse(metric, labels(pairs)) {
            Err(QueryError::Invalid(m)) => m,
            other => panic!("{metric} {pairs:?}: {other:?}"),
        }
    }

    #[test]
    fn a_series_name_is_checked_by_prometheus_rules_and_names_the_argument() {
        for bad in ["", "9lives", "latency-ms", "a b", "é"] {
            assert!(invalid_message(bad, &[]).starts_with("`metric`"), "{bad}");
        }
        assert!(invalid_message(&"a".repeat(257), &[]).starts_with("`metric`"));
        for bad in ["", "9x", "a-b", "__name__"] {
            let m = invalid_message("up", &[(bad, "v")]);
            assert!(m.starts_with("`labels`"), "{bad}: {m}");
        }
        let m = invalid_message("up", &[("a", "x\ny")]);
        assert!(m.contains("control character"), "{m}");
        let long = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        assert!(invalid_message("up", &[("a", &long)]).contains("above the limit"));
        let m = invalid_message("up", &[("a", "1"), ("a", "2")]);
        assert!(m.contains("repeats the label `a`"), "{m}");
        let many: Vec<(String, String)> = (0..=MAX_SERIES_LABELS)
            .map(|i| (format!("l{i}"), "v".to_owned()))
            .collect();
        assert!(matches!(
            SeriesName::parse("up", many),
            Err(QueryError::Invalid(m)) if m.contains("more than 64 labels")
        ));
        let ok = SeriesName::parse("ns:up_total", labels(&[("b", "x\"y"), ("a", "")])).unwrap();
        assert_eq!(ok.selector(), r#"ns:up_total{a="", b="x\"y"}"#);
    }

    #[test]
    fn a_series_is_granted_exactly_as_its_selector_would_be() {
        let grant = super::super::tests::grant();
        let series = |metric: &str, pairs: &[(&str, &str)]| {
            let s = SeriesName::parse(metric, labels(pairs)).unwrap();
            let by_series = grant.check_series(&s).map_err(|d| d.0);
            let by_query = grant
                .check_query(&s.selector(), super::super::tests::NOW)
                .map_err(|e| e.to_string());
            assert_eq!(by_series.is_ok(), by_query.is_ok(), "{}", s.selector());
            by_series
        };
        assert!(
            series(
                "service_latency_p95_ms",
                &[("service", "api-eu"), ("pod", "x")]
            )
            .is_ok()
        );
        let e = series("service_latency_p95_ms", &[("service", "db")]).unwrap_err();
        assert!(e.contains("value `db` is not granted"), "{e}");
        let e = series("service_latency_p95_ms", &[]).unwrap_err();
        assert!(e.contains("label `service` must be matched"), "{e}");
        let e = series("node_cpu_seconds_total", &[]).unwrap_err();
        assert!(
            e.contains("metric `node_cpu_seconds_total` is not granted"),
            "{e}"
        );
        // The empty value selects series without the label in PromQL: never granted.
        assert!(series("service_latency_p95_ms", &[("service", "")]).is_err());
    }
}
