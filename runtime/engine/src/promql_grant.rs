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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use promql_parser::label::{METRIC_NAME, MatchOp, Matcher};
use promql_parser::parser::{self, AtModifier, Expr, Offset, VectorSelector};

use crate::glob::Glob;
use crate::grants::Denial;

/// Most evaluations a subquery with an explicit step may ask for (as `query-range` per series).
const MAX_SUBQUERY_STEPS: u128 = 11_000;
/// Deepest bracket nesting a query may have (and a quarter of the operators it may chain): the
/// parser's tree is dropped recursively, on the fiber stack of the guest's call. Measured: trees
/// 2000 levels deep parse and drop on a 256 KiB stack in a debug build.
const MAX_DEPTH: usize = 128;
/// Longest parse error passed back to the guest.
const MAX_ERROR_CHARS: usize = 300;
/// Functions that read series the query does not name: `info` joins `target_info` (or any
/// selector of its second argument's choosing) into its result.
const IMPLICIT_READERS: &[&str] = &["info"];

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

/// Milliseconds since the epoch, signed and wide: offsets, `@` times and ranges are added to
/// guest-chosen values without overflow.
type Millis = i128;

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

fn offset_millis(offset: Option<&Offset>) -> Millis {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => millis(*d),
        Some(Offset::Neg(d)) => -millis(*d),
    }
}

/// The evaluation times of an expression: from `lo` to `hi`, in epoch milliseconds.
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: Millis,
    hi: Millis,
}

/// What a walk over one query needs: the grant, the query's own start and end (for `@ start()`
/// and `@ end()`) and the earliest time a read may reach.
struct Walk<'a> {
    grant: &'a MetricsGrant,
    start: Millis,
    end: Millis,
    earliest: Millis,
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

    fn check(&self, query: &str, start: u64, end: u64) -> Result<(), QueryError> {
        check_depth(query)?;
        let expr = parser::parse(query).map_err(|e| {
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

impl Walk<'_> {
    /// Checks every node of the tree, left to right. A work list rather than recursion: the
    /// call runs on the guest's fiber stack, and a tree may be hundreds of levels deep.
    fn expr(&self, root: &Expr, at: Window) -> Result<(), QueryError> {
        let mut work = vec![(root, at)];
        while let Some((expr, at)) = work.pop() {
            match expr {
                Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
                Expr::Paren(p) => work.push((&p.expr, at)),
                Expr::Unary(u) => work.push((&u.expr, at)),
                Expr::Binary(b) => {
                    work.push((&b.rhs, at));
                    work.push((&b.lhs, at));
                }
                Expr::Aggregate(a) => {
                    work.push((&a.expr, at));
                    if let Some(param) = &a.param {
                        work.push((param, at));
                    }
                }
                Expr::Call(call) => {
                    if IMPLICIT_READERS.contains(&call.func.name) {
                        return denied(format!(
                            "function `{}` reads series the query does not name, so no grant covers it",
                            call.func.name
                        ));
                    }
                    work.extend(call.args.args.iter().rev().map(|arg| (&**arg, at)));
                }
                Expr::VectorSelector(vs) => {
                    self.selector(vs)?;
                    self.reach(&selector_text(vs), vs.at.as_ref(), &vs.offset, 0, at)?;
                }
                Expr::MatrixSelector(ms) => {
                    self.selector(&ms.vs)?;
                    let text = format!(
                        "{}[{}]",
                        selector_text(&ms.vs),
                        humantime::format_duration(ms.range)
                    );
                    self.reach(
                        &text,
                        ms.vs.at.as_ref(),
                        &ms.vs.offset,
                        millis(ms.range),
                        at,
                    )?;
                }
                Expr::Subquery(sq) => {
                    let range = millis(sq.range);
                    if let Some(step) = sq.step {
                        let step = step.as_millis();
                        if step == 0 || sq.range.as_millis() / step > MAX_SUBQUERY_STEPS {
                            return Err(QueryError::Invalid(format!(
                                "a subquery of {} with a step of {} evaluates more than {MAX_SUBQUERY_STEPS} times; raise the step",
                                humantime::format_duration(sq.range),
                                humantime::format_duration(Duration::from_millis(
                                    u64::try_from(step).unwrap_or(u64::MAX)
                                )),
                            )));
                        }
                    }
                    let base = self.pinned(sq.at.as_ref(), at);
                    let off = offset_millis(sq.offset.as_ref());
                    let inner = Window {
                        lo: base.lo - off - range,
                        hi: base.hi - off,
                    };
                    self.within("a subquery", inner)?;
                    work.push((&sq.expr, inner));
                }
                Expr::Extension(_) => {
                    return Err(QueryError::Invalid(
                        "`query` holds an expression that is not PromQL".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The evaluation times after an `@` modifier.
    fn pinned(&self, at_modifier: Option<&AtModifier>, at: Window) -> Window {
        let t = match at_modifier {
            None => return at,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(time)) => match time.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(after) => millis(after),
                Err(before) => -millis(before.duration()),
            },
        };
        Window { lo: t, hi: t }
    }

    /// Checks the samples a selector reads: `range` before each of its evaluation times, after
    /// its `@` and offset.
    fn reach(
        &self,
        text: &str,
        at_modifier: Option<&AtModifier>,
        offset: &Option<Offset>,
        range: Millis,
        at: Window,
    ) -> Result<(), QueryError> {
        let base = self.pinned(at_modifier, at);
        let off = offset_millis(offset.as_ref());
        let read = Window {
            lo: base.lo - off - range,
            hi: base.hi - off,
        };
        self.within(&format!("selector `{text}`"), read)
    }

    fn within(&self, what: &str, read: Window) -> Result<(), QueryError> {
        if read.hi > self.end {
            return denied(format!(
                "{what} reads after the query's end (a negative offset or a later `@`)"
            ));
        }
        if read.lo < self.earliest {
            let back = Duration::from_millis(u64::try_from(self.end - read.lo).unwrap_or(u64::MAX));
            return denied(format!(
                "{what} reaches {} before the query's end, beyond the granted max_range {}",
                humantime::format_duration(back),
                humantime::format_duration(self.grant.max_range)
            ));
        }
        Ok(())
    }

    /// Does some entry grant this selector?
    fn selector(&self, vs: &VectorSelector) -> Result<(), QueryError> {
        let text = selector_text(vs);
        if !vs.matchers.or_matchers.is_empty() {
            return denied(format!(
                "selector `{text}` uses `or` between matchers, which Prometheus does not define"
            ));
        }
        let metric = metric_name(vs).map_err(|why| {
            QueryError::Denied(Denial(format!("selector `{text}` is not granted: {why}")))
        })?;
        let mut why = None;
        for entry in self.grant.series.iter().filter(|e| e.metric == metric) {
            match entry.admits(&vs.matchers.matchers) {
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
}

/// The selector as the guest wrote it, without modifiers: what denials name.
fn selector_text(vs: &VectorSelector) -> String {
    let mut text = vs.name.clone().unwrap_or_default();
    let matchers: Vec<String> = vs
        .matchers
        .matchers
        .iter()
        .filter(|m| {
            !(m.name == METRIC_NAME
                && m.op == MatchOp::Equal
                && vs.name.as_deref() == Some(m.value.as_str()))
        })
        .map(|m| m.to_string())
        .collect();
    if !matchers.is_empty() || vs.name.is_none() {
        let _ = write!(text, "{{{}}}", matchers.join(", "));
    }
    shorten(&text, 200)
}

/// The selector's one metric name, from its name or `__name__` equality matchers.
fn metric_name(vs: &VectorSelector) -> Result<&str, String> {
    let mut name = vs.name.as_deref();
    for m in vs
        .matchers
        .matchers
        .iter()
        .filter(|m| m.name == METRIC_NAME)
    {
        if m.op != MatchOp::Equal {
            return Err(format!(
                "`{METRIC_NAME}` may only be matched with `=` (a regex or negative matcher could select any metric)"
            ));
        }
        match name {
            Some(n) if n != m.value => {
                return Err("it names two different metrics".into());
            }
            _ => name = Some(&m.value),
        }
    }
    match name {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err("it names no metric".into()),
    }
}

impl SeriesGrant {
    /// Do these matchers keep the selection within this entry's labels?
    fn admits(&self, matchers: &[Matcher]) -> Result<(), String> {
        for (label, glob) in &self.labels {
            let mut pinned = false;
            for m in matchers.iter().filter(|m| &m.name == label) {
                let values = match &m.op {
                    MatchOp::Equal => vec![m.value.clone()],
                    MatchOp::Re(_) if self.regex => literal_alternatives(&m.value).ok_or_else(|| {
                        format!(
                            "label `{label}` may only be matched with `=`, or `=~` with a list of literal values like `a|b`"
                        )
                    })?,
                    MatchOp::Re(_) | MatchOp::NotEqual | MatchOp::NotRe(_) => {
                        return Err(format!(
                            "label `{label}` may only be matched with `=` (a regex or negative matcher could select values outside the grant)"
                        ));
                    }
                };
                for value in values {
                    if value.is_empty() {
                        return Err(format!(
                            "label `{label}` must not be matched to the empty value (it selects series without the label)"
                        ));
                    }
                    if !glob.matches(&value) {
                        return Err(format!(
                            "label `{label}` value `{}` is not granted (granted: `{glob}`)",
                            shorten(&value, 100)
                        ));
                    }
                }
                pinned = true;
            }
            if !pinned {
                return Err(format!(
                    "label `{label}` must be matched with `=` to a value matching `{glob}`"
                ));
            }
        }
        Ok(())
    }
}

/// The literal values of a regex that is only a list of them (`a|b|c`, with metacharacters
/// escaped), or `None` for anything richer. Prometheus anchors label regexes, so such a regex
/// matches exactly these values.
fn literal_alternatives(pattern: &str) -> Option<Vec<String>> {
    const META: &str = "\\.+*?()|[]{}^$";
    let mut values = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '|' => values.push(String::new()),
            '\\' => {
                let escaped = chars.next()?;
                if !META.contains(escaped) {
                    return None;
                }
                values.last_mut()?.push(escaped);
            }
            c if META.contains(c) => return None,
            c => values.last_mut()?.push(c),
        }
    }
    Some(values)
}

/// Grants as written in the manifest.
pub(crate) mod raw {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::manifest::{ManifestError, parse_duration};

    /// `[grants.metrics]` as written.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Metrics {
        /// `provider`: read by [`crate::grants`].
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

    fn is_metric_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn is_label_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    impl Series {
        fn validate(self, i: usize) -> Result<SeriesGrant, ManifestError> {
            let field = |name: &str| format!("grants.metrics.series[{i}].{name}");
            if !is_metric_name(&self.metric) || self.metric.len() > 256 {
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
                if !is_label_name(&label) || label == METRIC_NAME || label.len() > 256 {
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
        if let Ok(Expr::VectorSelector(vs)) = parser::parse(glob)
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
}

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
    let expr = parser::parse(text).expect("an accepted query parses");
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
    use super::*;
    use crate::manifest::{Manifest, ManifestError};

    const NOW: u64 = 1_767_225_600_000;
    const MINUTE: u64 = 60_000;

    fn manifest(version: u32, grants: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(&format!(
            "manifest_version = {version}\nname = \"p\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"p.wasm\"\n{grants}"
        ))
    }

    /// The grant of the tests: p95 latency of `api-*` services (a list of them with `=~`), any
    /// histogram bucket of a named service, and `up` whatever its labels; ten minutes back.
    fn grant() -> MetricsGrant {
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
    const INJECTIONS: &[(&str, &str)] = &[
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

    #[test]
    fn literal_alternatives_are_only_lists_of_literals() {
        assert_eq!(
            literal_alternatives(r"a|b\.c|d-e"),
            Some(vec!["a".into(), "b.c".into(), "d-e".into()])
        );
        assert_eq!(
            literal_alternatives("a|"),
            Some(vec!["a".into(), String::new()])
        );
        for rich in [
            ".*", "a.b", "(a)", "a+", "[ab]", r"\d", "^a", "a$", "a{2}", r"\",
        ] {
            assert_eq!(literal_alternatives(rich), None, "{rich}");
        }
    }

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
