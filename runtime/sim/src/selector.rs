//! The metric selectors the simulated metrics provider understands, and its built-in metrics.
//!
//! Accepted forms, whitespace tolerated between tokens:
//!
//! - `name`
//! - `name{}` (same as `name`)
//! - `name{key="value"}`, `name{a="1", b="2"}`, with a trailing comma allowed; values in double or
//!   single quotes, with `\\`, `\"`, `\'`, `\n` and `\t` escapes.
//!
//! Only equality matchers: `!=`, `=~` and `!~` are rejected rather than mis-evaluated. As in
//! Prometheus, a matcher on a label a series does not carry compares against the empty string.
//! Anything else (functions, operators, ranges) is not a selector: the fleet file's `[[series]]`
//! answer such queries verbatim.

use std::fmt;

use grace_executor::Labels;

/// A parsed selector: a metric name and equality matchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selector {
    /// The metric name.
    pub metric: String,
    /// `(label, value)` pairs that must all match, in query order.
    pub matchers: Vec<(String, String)>,
}

/// Why a query is not a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SelectorError {
    /// 1-based column (in characters) where parsing stopped.
    pub column: usize,
    /// What was expected there.
    pub message: String,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at column {}", self.message, self.column)
    }
}

impl Selector {
    /// Parses `name` or `name{key="value", ...}`.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let mut p = Parser {
            chars: text.chars().collect(),
            pos: 0,
        };
        p.skip_whitespace();
        let metric = p
            .identifier(true)
            .ok_or_else(|| p.error("expected a metric name"))?;
        p.skip_whitespace();
        let mut matchers = Vec::new();
        let braced = p.eat('{');
        if braced {
            loop {
                p.skip_whitespace();
                if p.eat('}') {
                    break;
                }
                let label = p
                    .identifier(false)
                    .ok_or_else(|| p.error("expected a label name or `}`"))?;
                p.skip_whitespace();
                match (p.peek(), p.peek_at(1)) {
                    (Some('='), Some('~')) | (Some('!'), Some('=' | '~')) => {
                        return Err(p.error("only `=` matchers are supported"));
                    }
                    (Some('='), _) => p.pos += 1,
                    _ => return Err(p.error("expected `=`")),
                }
                p.skip_whitespace();
                let value = p.string()?;
                matchers.push((label, value));
                p.skip_whitespace();
                if p.eat(',') {
                    continue;
                }
                if p.eat('}') {
                    break;
                }
                return Err(p.error("expected `,` or `}`"));
            }
            p.skip_whitespace();
        }
        if p.peek().is_some() {
            let message = if braced {
                "expected the end of the query"
            } else {
                "expected `{` or the end of the query"
            };
            return Err(p.error(message));
        }
        Ok(Selector { metric, matchers })
    }

    /// Whether a series with these labels matches every matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|(k, v)| labels.get(k).map_or("", String::as_str) == v)
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(&self, message: &str) -> SelectorError {
        SelectorError {
            column: self.pos + 1,
            message: message.to_owned(),
        }
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, plus `:` anywhere for metric names.
    fn identifier(&mut self, metric: bool) -> Option<String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == '_'
                || (metric && c == ':')
                || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| self.chars[start..self.pos].iter().collect())
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        let quote = match self.peek() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(self.error("expected a quoted value")),
        };
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(value);
                }
                Some('\\') => {
                    let escaped = match self.peek_at(1) {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some(c @ ('\\' | '"' | '\'')) => c,
                        _ => return Err(self.error("unknown escape")),
                    };
                    value.push(escaped);
                    self.pos += 2;
                }
                Some(c) => {
                    value.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

/// The metrics the simulation computes from its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum BuiltinMetric {
    /// A service's p95 latency in milliseconds; label `service`.
    ServiceLatencyP95Ms,
    /// A service's offered load in requests per second; label `service`.
    ServiceLoadRps,
    /// A service's load over its in-service capacity (1 = full); label `service`.
    ServiceUtilisation,
    /// A group's instances in service; label `group`.
    GroupInService,
    /// A group's desired capacity; label `group`.
    GroupDesiredCapacity,
}

impl BuiltinMetric {
    /// Every built-in metric, sorted by name.
    pub const ALL: [BuiltinMetric; 5] = [
        BuiltinMetric::GroupDesiredCapacity,
        BuiltinMetric::GroupInService,
        BuiltinMetric::ServiceLatencyP95Ms,
        BuiltinMetric::ServiceLoadRps,
        BuiltinMetric::ServiceUtilisation,
    ];

    /// The metric's name in queries.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinMetric::ServiceLatencyP95Ms => "service_latency_p95_ms",
            BuiltinMetric::ServiceLoadRps => "service_load_rps",
            BuiltinMetric::ServiceUtilisation => "service_utilisation",
            BuiltinMetric::GroupInService => "group_in_service",
            BuiltinMetric::GroupDesiredCapacity => "group_desired_capacity",
        }
    }

    /// The metric of this name, if it is one.
    pub fn from_name(name: &str) -> Option<BuiltinMetric> {
        BuiltinMetric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the metric is about services (otherwise it is about groups).
    pub fn is_per_service(self) -> bool {
        matches!(
            self,
            BuiltinMetric::ServiceLatencyP95Ms
                | BuiltinMetric::ServiceLoadRps
                | BuiltinMetric::ServiceUtilisation
        )
    }

    /// The known metric names, for error messages: "`a`, `b`, `c`".
    pub fn known_names() -> String {
        BuiltinMetric::ALL
            .iter()
            .map(|m| format!("`{}`", m.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(selector: &Selector) -> Vec<(&str, &str)> {
        selector
            .matchers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn bare_metric_name_parses() {
        let s = Selector::parse("group_in_service").expect("valid");
        assert_eq!(s.metric, "group_in_service");
        assert!(s.matchers.is_empty());
        assert_eq!(Selector::parse("  x{ }  ").expect("valid").metric, "x");
    }

    #[test]
    fn matchers_parse_with_whitespace_and_trailing_comma() {
        let s =
            Selector::parse(r#" service_latency_p95_ms { service = "api-service" , zone='a', } "#)
                .expect("valid");
        assert_eq!(s.metric, "service_latency_p95_ms");
        assert_eq!(pairs(&s), [("service", "api-service"), ("zone", "a")]);
    }

    #[test]
    fn escapes_in_values_are_decoded() {
        let s = Selector::parse(r#"m{a="say \"hi\"\\"}"#).expect("valid");
        assert_eq!(pairs(&s), [("a", r#"say "hi"\"#)]);
    }

    #[test]
    fn non_equality_matchers_are_rejected() {
        for q in [r#"m{a!="x"}"#, r#"m{a=~"x.*"}"#, r#"m{a!~"x"}"#] {
            let e = Selector::parse(q).expect_err(q);
            assert_eq!(e.message, "only `=` matchers are supported", "{q}");
        }
    }

    #[test]
    fn malformed_selectors_are_rejected_with_a_column() {
        let cases = [
            ("", 1, "expected a metric name"),
            ("9lives", 1, "expected a metric name"),
            ("m{", 3, "expected a label name or `}`"),
            ("m{a}", 4, "expected `=`"),
            ("m{a=x}", 5, "expected a quoted value"),
            (r#"m{a="x"#, 7, "unterminated string"),
            (r#"m{a="x" b="y"}"#, 9, "expected `,` or `}`"),
            (r#"m{a="x"} extra"#, 10, "expected the end of the query"),
            ("rate(m[5m])", 5, "expected `{` or the end of the query"),
        ];
        for (q, column, message) in cases {
            let e = Selector::parse(q).expect_err(q);
            assert_eq!((e.column, e.message.as_str()), (column, message), "{q}");
        }
    }

    #[test]
    fn missing_labels_match_the_empty_string() {
        let s = Selector::parse(r#"m{zone=""}"#).expect("valid");
        let labels = Labels::from([("service".to_owned(), "api".to_owned())]);
        assert!(s.matches(&labels));
        let s = Selector::parse(r#"m{zone="a"}"#).expect("valid");
        assert!(!s.matches(&labels));
    }

    #[test]
    fn builtin_metric_names_round_trip_and_are_sorted() {
        for m in BuiltinMetric::ALL {
            assert_eq!(BuiltinMetric::from_name(m.name()), Some(m));
        }
        let names: Vec<_> = BuiltinMetric::ALL.iter().map(|m| m.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
