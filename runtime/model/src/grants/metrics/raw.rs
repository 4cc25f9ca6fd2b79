//! `[grants.metrics]` as written in the manifest, validated into a [`MetricsGrant`]; the first
//! version's globs over the query text are refused with the series entries that replace them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use promql_parser::label::{METRIC_NAME, MatchOp};
use promql_parser::parser::Expr;
use serde::Deserialize;

use super::selector::metric_name;
use super::series::{MAX_NAME_BYTES, is_label_name, is_metric_name};
use super::{MetricsGrant, SeriesGrant, shorten};
use crate::glob::Glob;
use crate::manifest::{ManifestError, parse_duration};

/// `[grants.metrics]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Metrics {
    /// `provider`: read by `grants::raw`.
    pub(crate) provider: Option<String>,
    series: Option<Vec<Series>>,
    /// The first version's globs over the query text: refused, with the series that replace
    /// them.
    queries: Option<Vec<String>>,
    max_range: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Series {
    metric: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    regex: bool,
}

/// The first manifest version whose metrics grants are series entries.
pub(crate) const SERIES_VERSION: u32 = 2;

impl Metrics {
    /// Validates the table of a manifest of version `manifest_version`.
    pub(crate) fn validate(self, manifest_version: u32) -> Result<MetricsGrant, ManifestError> {
        if let Some(queries) = self.queries {
            return Err(ManifestError::invalid(
                "grants.metrics.queries",
                migration(&queries),
            ));
        }
        if manifest_version < SERIES_VERSION {
            return Err(ManifestError::invalid(
                "grants.metrics",
                format!(
                    "metrics grants need `manifest_version = {SERIES_VERSION}` (series entries, see docs/manifest.md)"
                ),
            ));
        }
        let series = self.series.unwrap_or_default();
        if series.is_empty() {
            return Err(ManifestError::invalid(
                "grants.metrics.series",
                "must not be empty (an empty list grants nothing; remove the table to deny the capability)",
            ));
        }
        let series = series
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.validate(i))
            .collect::<Result<Vec<_>, _>>()?;
        let max_range = match self.max_range {
            Some(t) => parse_duration("grants.metrics.max_range", &t)?,
            None => Duration::from_secs(3600),
        };
        if max_range.is_zero() {
            return Err(ManifestError::invalid(
                "grants.metrics.max_range",
                "must be more than 0s",
            ));
        }
        Ok(MetricsGrant { series, max_range })
    }
}

impl Series {
    fn validate(self, i: usize) -> Result<SeriesGrant, ManifestError> {
        let field = |name: &str| format!("grants.metrics.series[{i}].{name}");
        if !is_metric_name(&self.metric) || self.metric.len() > MAX_NAME_BYTES {
            return Err(ManifestError::invalid(
                field("metric"),
                format!(
                    "`{}` is not a metric name (an exact name of letters, digits, `_` and `:`, not a glob)",
                    self.metric
                ),
            ));
        }
        let mut labels = BTreeMap::new();
        for (label, glob) in self.labels {
            if !is_label_name(&label) || label == METRIC_NAME || label.len() > MAX_NAME_BYTES {
                return Err(ManifestError::invalid(
                    field("labels"),
                    format!(
                        "`{label}` is not a label name a grant can constrain (letters, digits and `_`; the metric is `metric`)"
                    ),
                ));
            }
            if glob.is_empty() {
                return Err(ManifestError::invalid(
                    format!("{}.{label}", field("labels")),
                    "must not be empty (`label=\"\"` selects series without the label; leave the label out to allow any value)",
                ));
            }
            labels.insert(label, Glob::new(glob));
        }
        if self.regex && labels.is_empty() {
            return Err(ManifestError::invalid(
                field("regex"),
                "has no effect without `labels`",
            ));
        }
        Ok(SeriesGrant {
            metric: self.metric,
            labels,
            regex: self.regex,
        })
    }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The entry a first-version glob stood for, where it can be derived: a plain selector with
/// equality matchers (`name{label="glob"}`), or a metric name with any labels (`name{*}`).
fn derive(glob: &str) -> Option<String> {
    let glob = glob.trim();
    if let Ok(Expr::VectorSelector(vs)) = super::parse(glob)
        && vs.offset.is_none()
        && vs.at.is_none()
        && vs.matchers.or_matchers.is_empty()
        && let Ok(metric) = metric_name(&vs)
        && is_metric_name(metric)
        && vs
            .matchers
            .matchers
            .iter()
            .all(|m| m.op == MatchOp::Equal && !m.value.is_empty())
    {
        let labels: Vec<String> = vs
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name != METRIC_NAME)
            .map(|m| format!("{} = {}", m.name, toml_string(&m.value)))
            .collect();
        let mut entry = format!(
            "[[grants.metrics.series]]\nmetric = {}\n",
            toml_string(metric)
        );
        if !labels.is_empty() {
            let _ = writeln!(entry, "labels = {{ {} }}", labels.join(", "));
        }
        return Some(entry);
    }
    let end = glob
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(glob.len());
    let (name, rest) = glob.split_at(end);
    if is_metric_name(name) && ["", "{*}", "{*", "{}"].contains(&rest) {
        return Some(format!(
            "[[grants.metrics.series]]\nmetric = {}\n",
            toml_string(name)
        ));
    }
    None
}

/// The error for a first-version `queries` list: what replaces each glob.
fn migration(queries: &[String]) -> String {
    let mut text = format!(
        "globs over the query text are no longer accepted (a query could match them and add \
         selectors of its own); grant the series the queries read instead, with \
         `manifest_version = {SERIES_VERSION}` (see docs/manifest.md):\n"
    );
    for glob in queries.iter().take(20) {
        let shown = shorten(glob, 120);
        match derive(glob) {
            Some(entry) => {
                let _ = write!(text, "\n# for `{shown}`\n{entry}");
            }
            None => {
                let _ = write!(
                    text,
                    "\n# for `{shown}`: no entry can be derived; add one [[grants.metrics.series]] per metric the query reads\n"
                );
            }
        }
    }
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::super::tests::manifest;
    use crate::manifest::ManifestError;

    #[test]
    fn series_grants_are_validated_at_load() {
        for (grants, field) in [
            ("[grants.metrics]\n", "grants.metrics.series"),
            ("[grants.metrics]\nseries = []\n", "grants.metrics.series"),
            (
                "[[grants.metrics.series]]\nmetric = \"service_*\"\n",
                "grants.metrics.series[0].metric",
            ),
            (
                "[[grants.metrics.series]]\nmetric = \"up\"\nlabels = { __name__ = \"x\" }\n",
                "grants.metrics.series[0].labels",
            ),
            (
                "[[grants.metrics.series]]\nmetric = \"up\"\nlabels = { job = \"\" }\n",
                "grants.metrics.series[0].labels.job",
            ),
            (
                "[[grants.metrics.series]]\nmetric = \"up\"\nregex = true\n",
                "grants.metrics.series[0].regex",
            ),
            (
                "[grants.metrics]\nmax_range = \"0s\"\n[[grants.metrics.series]]\nmetric = \"up\"\n",
                "grants.metrics.max_range",
            ),
        ] {
            let e = manifest(2, grants).unwrap_err().to_string();
            assert!(e.starts_with(field), "expected `{field}`: {e}");
        }
        let e = manifest(
            2,
            "[[grants.metrics.series]]\nmetric = \"up\"\nlabel = {}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("label"), "{e}");
    }

    #[test]
    fn first_version_query_globs_are_refused_with_the_series_that_replace_them() {
        let old = "[grants.metrics]\nqueries = ['service_latency_p95_ms{service=\"*\"}', 'service_load_rps{*}', 'histogram_quantile(0.95, *']\n";
        for version in [1, 2] {
            let e = manifest(version, old).unwrap_err();
            let ManifestError::Invalid { field, message } = e else {
                panic!("expected an invalid field, got {e}");
            };
            assert_eq!(field, "grants.metrics.queries");
            assert!(message.starts_with("globs over the query text are no longer accepted"));
            assert!(message.contains("`manifest_version = 2`"), "{message}");
            assert!(
                message.contains(
                    "[[grants.metrics.series]]\nmetric = \"service_latency_p95_ms\"\nlabels = { service = \"*\" }\n"
                ),
                "{message}"
            );
            assert!(
                message.contains("[[grants.metrics.series]]\nmetric = \"service_load_rps\"\n"),
                "{message}"
            );
            assert!(
                message.contains("# for `histogram_quantile(0.95, *`: no entry can be derived"),
                "{message}"
            );
        }
    }

    #[test]
    fn the_derived_entries_are_a_manifest_that_loads() {
        let old = "[grants.metrics]\nqueries = ['service_latency_p95_ms{service=\"api-*\", env=\"prod\"}']\n";
        let ManifestError::Invalid { message, .. } = manifest(1, old).unwrap_err() else {
            panic!("expected an invalid field");
        };
        let entries = &message[message.find("[[grants").unwrap()..];
        let g = manifest(2, entries).unwrap().grants.metrics.unwrap();
        assert_eq!(g.series.len(), 1);
        assert_eq!(g.series[0].labels["env"].as_str(), "prod");
        assert_eq!(g.series[0].labels["service"].as_str(), "api-*");
    }

    #[test]
    fn version_one_manifests_load_without_metrics_grants_and_are_refused_with_them() {
        assert!(manifest(1, "").is_ok());
        assert!(manifest(1, "[grants.scaling]\ngroups = [\"api-*\"]\n").is_ok());
        let e = manifest(1, "[[grants.metrics.series]]\nmetric = \"up\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("grants.metrics: metrics grants need `manifest_version = 2`"),
            "{e}"
        );
        let e = manifest(3, "").unwrap_err().to_string();
        assert!(e.starts_with("manifest_version"), "{e}");
    }
}
