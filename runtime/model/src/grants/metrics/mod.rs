//! `[grants.metrics]`: which series a guest may read, checked on the parsed PromQL of each query.
//!
//! A grant lists series entries, each an exact metric name and label constraints (label → glob
//! over the value), plus a `max_range`:
//!
//! ```toml
//! [grants.metrics]
//! max_range = "1h"
//!
//! [[grants.metrics.series]]
//! metric = "service_latency_p95_ms"
//! labels = { service = "*" }
//! ```
//!
//! A query is parsed with `promql-parser` and every vector and matrix selector in it, wherever it
//! stands (function arguments, aggregations and their parameters, both sides of every binary and
//! set operator, subqueries), must match one entry on its own:
//! - its metric name is the entry's `metric`, written as the name or as `__name__="…"`; a regex
//!   or negative matcher on `__name__`, or a selector with no metric name, never matches;
//! - every constrained label has an equality matcher whose value matches the glob; the empty
//!   value never does (in PromQL `label=""` selects the series *without* the label); `!=` and
//!   `!~` on a constrained label are refused, and so is `=~` unless the entry says `regex = true`,
//!   and then only for a list of literal values (`a|b`), each matching the glob;
//! - matchers on other labels only narrow the selection, so they are allowed.
//!
//! Time is bounded too: every sample a selector reads, after its offsets, `@` modifiers, matrix
//! range and enclosing subqueries, lies within `max_range` before the query's end (the evaluation
//! time of an instant query), and a range query's window is part of that reach.
//!
//! Manifests of the first version granted globs over the query text (`queries = [...]`), which a
//! query could satisfy while adding selectors of its own (`granted or {__name__=~".+"}`). They are
//! refused, with the series entries that replace them where those can be derived
//! (`raw::Metrics::validate`); nothing is reinterpreted silently.
//!
//! The `anomaly` capability names a series by its metric and exact labels instead of a query:
//! [`MetricsGrant::check_series`] grants it exactly as the selector pinning those labels with
//! `=` would be, after [`SeriesName::parse`] checked the names by Prometheus' rules.
//!
//! In parts: this module holds the grant and its entry points; `walk` visits every node of a
//! parsed query and bounds the time it reads, `selector` matches one selector against the
//! entries, `series` names one series by its metric and labels, `raw` reads the table from the manifest (and refuses the first version's globs with
//! the entries that replace them), and `fuzz` is the fuzz target's body.
//!
//! This is `grace_model::grants::metrics`, also reachable as `grace_model::promql_grant`.

use std::collections::BTreeMap;
use std::time::Duration;

use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr};

use super::Denial;
use crate::glob::Glob;

#[cfg(any(test, feature = "fuzz"))]
mod fuzz;
pub(crate) mod raw;
mod selector;
mod series;
#[cfg(test)]
mod tests;
mod walk;

#[cfg(any(test, feature = "fuzz"))]
pub use fuzz::fuzz_query;
pub use series::{
    MAX_LABEL_VALUE_BYTES, MAX_NAME_BYTES, MAX_SERIES_LABELS, SeriesName, is_label_name,
    is_metric_name,
};

use walk::{Millis, Walk, Window, millis};

/// Deepest bracket nesting a query may have (and a quarter of the operators it may chain): the
/// parser's tree is dropped recursively, on the fiber stack of the guest's call. Measured: trees
/// 2000 levels deep parse and drop on a 256 KiB stack in a debug build.
const MAX_DEPTH: usize = 128;
/// Longest parse error passed back to the guest.
const MAX_ERROR_CHARS: usize = 300;

/// Which series a guest may read, and how far back.
#[derive(Debug, Clone)]
pub struct MetricsGrant {
    /// The granted series; a selector must match one of them.
    pub series: Vec<SeriesGrant>,
    /// How far before the query's end any sample read may lie.
    pub max_range: Duration,
}

/// One `[[grants.metrics.series]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesGrant {
    /// The exact metric name.
    pub metric: String,
    /// Labels a selector must pin with `=`, each to a value matching the glob.
    pub labels: BTreeMap<String, Glob>,
    /// Whether `=~` with a list of literal values (`a|b`) may pin a constrained label.
    pub regex: bool,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The query is not PromQL, or uses a form the host never forwards.
    Invalid(String),
    /// The query reads something outside the grant.
    Denied(Denial),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Invalid(m) => f.write_str(m),
            QueryError::Denied(d) => d.fmt(f),
        }
    }
}

fn denied<T>(message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError::Denied(Denial(message.into())))
}

/// Parses PromQL without letting the parser panic the host. promql-parser 0.11 panics on some
/// texts (a number too large for a duration, as in the subquery range `[5e333333333:30s]`,
/// reaches `Duration::from_secs_f64`); found by the `promql_grant` fuzz target. A guest's query
/// must never panic a task, so a panic while parsing is refused like any other parse error.
pub(crate) fn parse(text: &str) -> Result<Expr, String> {
    std::panic::catch_unwind(|| parser::parse(text))
        .unwrap_or_else(|_| Err("the PromQL parser cannot read it".to_owned()))
}

impl MetricsGrant {
    /// May this instant query, evaluated at `at` (epoch ms), run?
    pub fn check_query(&self, query: &str, at: u64) -> Result<(), QueryError> {
        self.check(query, at, at)
    }

    /// May this range query, evaluated from `start` to `end` (epoch ms), run?
    pub fn check_range(&self, query: &str, start: u64, end: u64) -> Result<(), QueryError> {
        let window = Duration::from_millis(end.saturating_sub(start));
        if window > self.max_range {
            return denied(format!(
                "a range of {} is longer than the granted max_range {}",
                humantime::format_duration(window),
                humantime::format_duration(self.max_range)
            ));
        }
        self.check(query, start, end)
    }

    /// Does some entry grant the selection of `metric` by `matchers`? `text` is how a denial
    /// names the selector. What every selector of a query, and every series the `anomaly`
    /// capability reads, is checked by.
    fn admit(&self, text: &str, metric: &str, matchers: &[Matcher]) -> Result<(), QueryError> {
        let mut why = None;
        for entry in self.series.iter().filter(|e| e.metric == metric) {
            match entry.admits(matchers) {
                Ok(()) => return Ok(()),
                Err(reason) => why = why.or(Some(reason)),
            }
        }
        match why {
            Some(reason) => denied(format!("selector `{text}` is not granted: {reason}")),
            None => denied(format!(
                "selector `{text}` is not granted: metric `{metric}` is not granted"
            )),
        }
    }

    fn check(&self, query: &str, start: u64, end: u64) -> Result<(), QueryError> {
        check_depth(query)?;
        let expr = parse(query).map_err(|e| {
            QueryError::Invalid(format!(
                "`query` is not valid PromQL: {}",
                shorten(&e, MAX_ERROR_CHARS)
            ))
        })?;
        let (start, end) = (Millis::from(start), Millis::from(end));
        let walk = Walk {
            grant: self,
            start,
            end,
            earliest: end - millis(self.max_range),
        };
        walk.expr(&expr, Window { lo: start, hi: end })
    }
}

/// Refuses queries nested deeper than [`MAX_DEPTH`] before they are parsed. Counts brackets,
/// and unary and binary operators, outside string literals and comments: an upper bound of the
/// tree's depth whatever the precedence.
fn check_depth(query: &str) -> Result<(), QueryError> {
    let mut depth = 0usize;
    let mut operators = 0usize;
    let mut chars = query.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                // A string: skip to its closing quote (backslash escapes, except in raw strings).
                while let Some(s) = chars.next() {
                    if s == '\\' && c != '`' {
                        chars.next();
                    } else if s == c {
                        break;
                    }
                }
            }
            '#' => {
                for s in chars.by_ref() {
                    if s == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>' => operators += 1,
            _ => {}
        }
        if depth > MAX_DEPTH || operators > 4 * MAX_DEPTH {
            return Err(QueryError::Invalid(format!(
                "`query` is nested too deeply or has too many operators (at most {MAX_DEPTH} levels)"
            )));
        }
    }
    // Word operators (`and`, `or`, `unless`) chain too: count them roughly, by word.
    let words = query
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| {
            w.eq_ignore_ascii_case("and")
                || w.eq_ignore_ascii_case("or")
                || w.eq_ignore_ascii_case("unless")
        })
        .count();
    if words + operators > 4 * MAX_DEPTH {
        return Err(QueryError::Invalid(format!(
            "`query` has too many operators (at most {})",
            4 * MAX_DEPTH
        )));
    }
    Ok(())
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
