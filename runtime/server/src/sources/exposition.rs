//! The Prometheus text exposition format, version 0.0.4: a parser from bytes to [`Sample`]s.
//!
//! ```text
//! # HELP http_requests_total The total number of HTTP requests.
//! # TYPE http_requests_total counter
//! http_requests_total{method="post",code="200"} 1027 1395066363000
//! queue_depth 3
//! ```
//!
//! Accepted: `\n` or `\r\n` line ends; blank lines; `# HELP name text` and `# TYPE name type`
//! (`counter`, `gauge`, `histogram`, `summary`, `untyped`), at most one of each per name and a
//! `TYPE` before the name's first sample; other `#` lines are comments. A sample is
//! `name{label="value",...} value [timestamp]` with blanks or tabs between tokens, an optional
//! trailing comma inside the braces, the escapes `\\`, `\"` and `\n` in label values, a float
//! value and an optional integer timestamp in milliseconds.
//!
//! Refused, naming the line: invalid UTF-8, names outside `[a-zA-Z_:][a-zA-Z0-9_:]*` (label names
//! without `:`), a label given twice, other escapes, unterminated values or braces, a missing or
//! malformed value, `NaN` and infinities (events carry JSON numbers, which cannot hold them),
//! negative or non-integer timestamps, anything after the timestamp, histogram buckets without
//! an `le` label and summary quantiles without a `quantile` label. Input is never trusted: the
//! parser returns an error, never panics, whatever the bytes.

use std::collections::{HashMap, HashSet};

use super::{Labels, is_label_name, is_metric_name};

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its line, from 1.
    pub line: usize,
    /// The metric name.
    pub name: String,
    /// Its labels, unescaped.
    pub labels: Labels,
    /// Its value: always finite.
    pub value: f64,
    /// Its timestamp, in milliseconds since the epoch, when the line has one.
    pub timestamp: Option<u64>,
}

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A line is malformed.
    #[error("line {line}: {message}")]
    Line {
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// More samples than allowed.
    #[error("the text holds more than {limit} samples")]
    TooManySamples {
        /// The most allowed.
        limit: usize,
    },
}

/// The metric types of `# TYPE` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// Parses `text` into its samples, in order; stops with [`ParseError::TooManySamples`] at the
/// first sample beyond `max_samples`.
pub fn parse(text: &[u8], max_samples: usize) -> Result<Vec<Sample>, ParseError> {
    let mut parser = Parser::default();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let fail = |message: String| ParseError::Line { line, message };
        let content = std::str::from_utf8(raw)
            .map_err(|e| fail(format!("is not UTF-8 (byte {})", e.valid_up_to() + 1)))?;
        if let Some(sample) = parser.line(content, line).map_err(|e| fail(e.0))? {
            if parser.samples.len() == max_samples {
                return Err(ParseError::TooManySamples { limit: max_samples });
            }
            parser.samples.push(sample);
        }
    }
    Ok(parser.samples)
}

/// What is wrong with one line, for people; [`parse`] adds the line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
struct LineError(String);

#[derive(Default)]
struct Parser {
    samples: Vec<Sample>,
    /// Names with a `# TYPE` line, and their types.
    types: HashMap<String, MetricType>,
    /// Names with a `# HELP` line.
    helps: HashSet<String>,
    /// Names that had samples already.
    sampled: HashSet<String>,
}

impl Parser {
    /// One line: a sample, or nothing (blank, comment, `HELP`, `TYPE`).
    fn line(&mut self, text: &str, line: usize) -> Result<Option<Sample>, LineError> {
        let text = text.trim_matches(is_blank);
        if text.is_empty() {
            return Ok(None);
        }
        if let Some(comment) = text.strip_prefix('#') {
            self.comment(comment)?;
            return Ok(None);
        }
        let sample = sample(text, line)?;
        self.check_family(&sample)?;
        self.sampled.insert(sample.name.clone());
        Ok(Some(sample))
    }

    /// `# HELP name text`, `# TYPE name type`, or a comment.
    fn comment(&mut self, text: &str) -> Result<(), LineError> {
        let mut tokens = text.split(is_blank).filter(|t| !t.is_empty());
        let keyword = tokens.next();
        if keyword != Some("HELP") && keyword != Some("TYPE") {
            return Ok(());
        }
        let keyword = keyword.unwrap_or_default();
        let Some(name) = tokens.next() else {
            return Err(LineError(format!("`# {keyword}` needs a metric name")));
        };
        if !is_metric_name(name) {
            return Err(LineError(format!(
                "`{}` is not a metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`)",
                shorten(name)
            )));
        }
        if keyword == "HELP" {
            // The docstring may hold anything; only its escapes are checked.
            let rest = text
                .trim_start_matches(is_blank)
                .strip_prefix("HELP")
                .map(|t| t.trim_start_matches(is_blank))
                .and_then(|t| t.strip_prefix(name))
                .unwrap_or_default();
            check_help_escapes(rest)?;
            if !self.helps.insert(name.to_owned()) {
                return Err(LineError(format!("a second `# HELP` line for `{name}`")));
            }
            return Ok(());
        }
        let kind = match tokens.next() {
            Some("counter") => MetricType::Counter,
            Some("gauge") => MetricType::Gauge,
            Some("histogram") => MetricType::Histogram,
            Some("summary") => MetricType::Summary,
            Some("untyped") => MetricType::Untyped,
            Some(other) => {
                return Err(LineError(format!(
                    "`{}` is not a metric type: use `counter`, `gauge`, `histogram`, `summary` or `untyped`",
                    shorten(other)
                )));
            }
            None => return Err(LineError(format!("`# TYPE {name}` needs a metric type"))),
        };
        if let Some(extra) = tokens.next() {
            return Err(LineError(format!(
                "unexpected `{}` after the metric type",
                shorten(extra)
            )));
        }
        if self.types.contains_key(name) {
            return Err(LineError(format!("a second `# TYPE` line for `{name}`")));
        }
        if self.sampled.contains(name) {
            return Err(LineError(format!(
                "the `# TYPE` line for `{name}` comes after its samples"
            )));
        }
        self.types.insert(name.to_owned(), kind);
        Ok(())
    }

    /// Histogram buckets need `le`, summary quantiles need `quantile`.
    fn check_family(&self, sample: &Sample) -> Result<(), LineError> {
        let name = sample.name.as_str();
        if let Some(family) = name.strip_suffix("_bucket")
            && self.types.get(family) == Some(&MetricType::Histogram)
            && !sample.labels.contains_key("le")
        {
            return Err(LineError(format!(
                "`{name}` is a bucket of the histogram `{family}` and needs an `le` label"
            )));
        }
        if self.types.get(name) == Some(&MetricType::Summary)
            && !sample.labels.contains_key("quantile")
        {
            return Err(LineError(format!(
                "`{name}` is a quantile of a summary and needs a `quantile` label"
            )));
        }
        Ok(())
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// At most 64 characters of user input, for messages.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn check_help_escapes(text: &str) -> Result<(), LineError> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\' | 'n') => {}
                Some(other) => {
                    return Err(LineError(format!(
                        "`\\{other}` is not an escape in a HELP text: use `\\\\` or `\\n`"
                    )));
                }
                None => return Err(LineError("the HELP text ends with a lone `\\`".to_owned())),
            }
        }
    }
    Ok(())
}

/// A cursor over one line; every position it stops at is a character boundary.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
    }

    /// The longest run of characters satisfying `ok`.
    fn take_while(&mut self, ok: impl Fn(char) -> bool) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(&ok) {
            self.bump();
        }
        &self.text[start..self.pos]
    }

    fn is_done(&self) -> bool {
        self.pos >= self.text.len()
    }
}

/// Characters of a metric or label name token, before its rules are checked.
fn is_name_char(c: char) -> bool {
    !is_blank(c) && !matches!(c, '{' | '}' | '=' | ',' | '"')
}

/// `name{labels} value [timestamp]`, blanks trimmed.
fn sample(text: &str, line: usize) -> Result<Sample, LineError> {
    let mut cur = Cursor { text, pos: 0 };
    let name = cur.take_while(is_name_char).to_owned();
    if name.is_empty() {
        return Err(LineError(format!(
            "expected a metric name, found `{}`",
            shorten(&text[cur.pos..])
        )));
    }
    if !is_metric_name(&name) {
        return Err(LineError(format!(
            "`{}` is not a metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`)",
            shorten(&name)
        )));
    }
    cur.skip_blanks();
    let labels = if cur.peek() == Some('{') {
        cur.bump();
        labels(&mut cur)?
    } else {
        Labels::new()
    };
    cur.skip_blanks();
    let value = cur.take_while(|c| !is_blank(c));
    if value.is_empty() {
        return Err(LineError(format!("`{}` has no value", shorten(&name))));
    }
    let value = parse_value(value)?;
    cur.skip_blanks();
    let timestamp = if cur.is_done() {
        None
    } else {
        let ts = cur.take_while(|c| !is_blank(c));
        Some(parse_timestamp(ts)?)
    };
    cur.skip_blanks();
    if !cur.is_done() {
        return Err(LineError(format!(
            "unexpected `{}` after the timestamp",
            shorten(&text[cur.pos..])
        )));
    }
    Ok(Sample {
        line,
        name,
        labels,
        value,
        timestamp,
    })
}

/// `label="value",...}`, after the `{`.
fn labels(cur: &mut Cursor<'_>) -> Result<Labels, LineError> {
    let mut labels = Labels::new();
    loop {
        cur.skip_blanks();
        match cur.peek() {
            Some('}') => {
                cur.bump();
                return Ok(labels);
            }
            None => return Err(LineError("the labels are not closed with `}`".to_owned())),
            Some(_) => {}
        }
        let name = cur.take_while(is_name_char).to_owned();
        if name.is_empty() {
            let found = cur.peek().map_or(String::new(), String::from);
            return Err(LineError(format!("expected a label name, found `{found}`")));
        }
        if !is_label_name(&name) {
            return Err(LineError(format!(
                "`{}` is not a label name (`[a-zA-Z_][a-zA-Z0-9_]*`)",
                shorten(&name)
            )));
        }
        cur.skip_blanks();
        if cur.bump() != Some('=') {
            return Err(LineError(format!(
                "expected `=` after the label name `{name}`"
            )));
        }
        cur.skip_blanks();
        if cur.bump() != Some('"') {
            return Err(LineError(format!(
                "the value of the label `{name}` must be in double quotes"
            )));
        }
        let value = label_value(cur, &name)?;
        if labels.insert(name.clone(), value).is_some() {
            return Err(LineError(format!("the label `{name}` is given twice")));
        }
        cur.skip_blanks();
        match cur.bump() {
            Some(',') => {}
            Some('}') => return Ok(labels),
            Some(other) => {
                return Err(LineError(format!(
                    "expected `,` or `}}` after the value of the label `{name}`, found `{other}`"
                )));
            }
            None => return Err(LineError("the labels are not closed with `}`".to_owned())),
        }
    }
}

/// A label value up to its closing quote, unescaped.
fn label_value(cur: &mut Cursor<'_>, name: &str) -> Result<String, LineError> {
    let mut value = String::new();
    loop {
        match cur.bump() {
            Some('"') => return Ok(value),
            Some('\\') => match cur.bump() {
                Some('\\') => value.push('\\'),
                Some('"') => value.push('"'),
                Some('n') => value.push('\n'),
                Some(other) => {
                    return Err(LineError(format!(
                        "`\\{other}` in the value of the label `{name}` is not an escape: use `\\\\`, `\\\"` or `\\n`"
                    )));
                }
                None => {
                    return Err(LineError(format!(
                        "the value of the label `{name}` is not closed with `\"`"
                    )));
                }
            },
            Some(c) => value.push(c),
            None => {
                return Err(LineError(format!(
                    "the value of the label `{name}` is not closed with `\"`"
                )));
            }
        }
    }
}

/// A sample value: a finite float.
fn parse_value(text: &str) -> Result<f64, LineError> {
    let lower = text.to_ascii_lowercase();
    let lower = lower.trim_start_matches(['+', '-']);
    if lower == "nan" || lower == "inf" || lower == "infinity" {
        return Err(LineError(format!(
            "the value `{}` is not a finite number; events carry JSON numbers, which cannot hold NaN or infinities",
            shorten(text)
        )));
    }
    // Rust accepts a few spellings Go does not (`infinity`) and the reverse (hex floats, `_`):
    // only decimal forms are read here, as every Prometheus client writes them.
    let value: f64 = text
        .parse()
        .map_err(|_| LineError(format!("the value `{}` is not a number", shorten(text))))?;
    grace_engine::event::check_number(value).map_err(|_| {
        LineError(format!(
            "the value `{}` is out of range for a 64-bit float",
            shorten(text)
        ))
    })
}

/// A timestamp: integer milliseconds since the epoch, not before it.
fn parse_timestamp(text: &str) -> Result<u64, LineError> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if text.starts_with('-') && text[1..].bytes().all(|b| b.is_ascii_digit()) && text.len() > 1 {
        return Err(LineError(format!(
            "the timestamp `{}` is before 1970",
            shorten(text)
        )));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LineError(format!(
            "the timestamp `{}` is not an integer number of milliseconds",
            shorten(text)
        )));
    }
    let millis: u64 = digits
        .parse()
        .map_err(|_| LineError(format!("the timestamp `{}` is out of range", shorten(text))))?;
    grace_engine::event::check_timestamp(millis)
        .map_err(|m| LineError(format!("the timestamp {m}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Sample {
        let mut samples = parse(text.as_bytes(), 10).unwrap();
        assert_eq!(samples.len(), 1, "{text}");
        samples.remove(0)
    }

    /// The line and message of a refused text.
    fn refused(text: &str) -> (usize, String) {
        match parse(text.as_bytes(), 10) {
            Err(ParseError::Line { line, message }) => (line, message),
            other => panic!("expected a line error for {text:?}, got {other:?}"),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const EXPOSITION: &str = r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
"#;

    #[test]
    fn the_documented_example_parses() {
        let samples = parse(EXPOSITION.as_bytes(), 100).unwrap();
        assert_eq!(samples.len(), 11);
        let first = &samples[0];
        assert_eq!(first.line, 3);
        assert_eq!(first.name, "http_requests_total");
        assert_eq!(first.labels, labels(&[("method", "post"), ("code", "200")]));
        assert_eq!(first.value, 1027.0);
        assert_eq!(first.timestamp, Some(1_395_066_363_000));
        assert_eq!(samples[1].value, 3.0);
        assert_eq!(
            samples[2].labels,
            labels(&[
                ("path", r"C:\DIR\FILE.TXT"),
                ("error", "Cannot find file:\n\"FILE.TXT\"")
            ])
        );
        assert_eq!(samples[2].value, 1.458_255_915e9);
        assert_eq!(samples[3].labels, Labels::new());
        assert_eq!(samples[3].timestamp, None);
        assert_eq!(samples[5].labels, labels(&[("le", "+Inf")]));
        assert_eq!(samples[9].value, 1.756_047_3e7);
    }

    #[test]
    fn blanks_tabs_crlf_trailing_commas_and_unicode_are_accepted() {
        let s = one("\t up { job = \"node\" , zone=\"é😀\", }\t-1.5e-3  42 \r\n");
        assert_eq!(s.name, "up");
        assert_eq!(s.labels, labels(&[("job", "node"), ("zone", "é😀")]));
        assert_eq!(s.value, -0.0015);
        assert_eq!(s.timestamp, Some(42));
        assert_eq!(one("a:b_c{} +7").value, 7.0);
        assert_eq!(one("x{}1").value, 1.0);
        assert_eq!(one("x .5").value, 0.5);
        assert_eq!(one("x 0 +5").timestamp, Some(5));
        assert!(parse(b"", 10).unwrap().is_empty());
        assert!(
            parse(b"\n\n# just a comment\n#\n# HELP\x20x\n", 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn comments_other_than_help_and_type_are_ignored() {
        let samples = parse(b"# hello { \" world\n#TYPEx\nx 1\n", 10).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].line, 3);
    }

    #[test]
    fn non_finite_values_are_refused_naming_the_line() {
        for value in [
            "NaN", "nan", "+Inf", "-Inf", "Inf", "infinity", "1e400", "-1e999",
        ] {
            let (line, message) = refused(&format!("ok 1\nbad {value}\n"));
            assert_eq!(line, 2, "{value}");
            assert!(
                message.contains("finite") || message.contains("out of range"),
                "{value}: {message}"
            );
        }
    }

    #[test]
    fn malformed_lines_are_refused_naming_the_line_and_the_problem() {
        let cases: &[(&str, &str)] = &[
            ("9metric 1", "not a metric name"),
            ("me-tric 1", "not a metric name"),
            ("métric 1", "not a metric name"),
            ("{a=\"b\"} 1", "expected a metric name"),
            ("metric", "has no value"),
            ("metric{a=\"b\"}", "has no value"),
            ("metric one", "not a number"),
            ("metric 0x10", "not a number"),
            ("metric 1_000", "not a number"),
            ("metric 1 2 3", "after the timestamp"),
            ("metric 1 1.5", "not an integer"),
            ("metric 1 -5", "before 1970"),
            ("metric 1 -", "not an integer"),
            ("metric 1 99999999999999999999", "out of range"),
            ("metric 1 9223372036854775808", "after 9999-12-31"),
            ("metric 1 253402300800000", "after 9999-12-31"),
            ("metric{", "not closed"),
            ("metric{a=\"b\"", "not closed"),
            ("metric{a=\"b\" 1", "expected `,` or `}`"),
            ("metric{a=\"b} 1", "not closed with `\"`"),
            ("metric{a=\"b\\", "not closed with `\"`"),
            ("metric{a=b} 1", "double quotes"),
            ("metric{a} 1", "expected `=`"),
            ("metric{a:b=\"c\"} 1", "not a label name"),
            ("metric{9a=\"c\"} 1", "not a label name"),
            ("metric{,} 1", "expected a label name"),
            ("metric{a=\"1\",,} 1", "expected a label name"),
            ("metric{=\"1\"} 1", "expected a label name"),
            ("metric{a=\"1\",a=\"2\"} 1", "given twice"),
            ("metric{a=\"\\t\"} 1", "not an escape"),
            ("metric{a=\"x\"}} 1", "not a number"),
            ("# TYPE", "needs a metric name"),
            ("# HELP", "needs a metric name"),
            ("# TYPE 9x counter", "not a metric name"),
            ("# TYPE x", "needs a metric type"),
            ("# TYPE x counters", "not a metric type"),
            ("# TYPE x counter extra", "after the metric type"),
            ("# HELP x bad \\t escape", "not an escape"),
            ("# HELP x ends with \\", "lone"),
        ];
        for (text, expected) in cases {
            let (line, message) = refused(&format!("# first line\n{text}\n"));
            assert_eq!(line, 2, "{text}: {message}");
            assert!(
                message.contains(expected),
                "{text}: `{message}` should mention `{expected}`"
            );
        }
    }

    #[test]
    fn help_and_type_rules_are_enforced_per_metric() {
        let (line, m) = refused("# TYPE x gauge\n# TYPE x gauge\n");
        assert_eq!((line, m.contains("second `# TYPE`")), (2, true), "{m}");
        let (line, m) = refused("# HELP x a\n# HELP x b\n");
        assert_eq!((line, m.contains("second `# HELP`")), (2, true), "{m}");
        let (line, m) = refused("x 1\n# TYPE x gauge\n");
        assert_eq!((line, m.contains("after its samples")), (2, true), "{m}");
        let (line, m) = refused("# TYPE h histogram\nh_bucket 1\n");
        assert_eq!((line, m.contains("`le`")), (2, true), "{m}");
        let (line, m) = refused("# TYPE s summary\ns 1\n");
        assert_eq!((line, m.contains("`quantile`")), (2, true), "{m}");
        // Without a TYPE line, names ending in `_bucket` are ordinary metrics.
        assert_eq!(one("h_bucket 1").name, "h_bucket");
    }

    #[test]
    fn invalid_utf8_is_refused_naming_the_line() {
        let mut text = b"ok 1\nbad{a=\"".to_vec();
        text.extend_from_slice(&[0xff, 0xfe]);
        text.extend_from_slice(b"\"} 1\n");
        let err = parse(&text, 10).unwrap_err();
        assert_eq!(
            err,
            ParseError::Line {
                line: 2,
                message: "is not UTF-8 (byte 8)".to_owned()
            }
        );
        assert_eq!(err.to_string(), "line 2: is not UTF-8 (byte 8)");
    }

    #[test]
    fn the_sample_limit_stops_parsing() {
        let text = "x 1\n".repeat(4);
        assert_eq!(parse(text.as_bytes(), 4).unwrap().len(), 4);
        assert_eq!(
            parse(text.as_bytes(), 3),
            Err(ParseError::TooManySamples { limit: 3 })
        );
    }

    #[test]
    fn long_input_is_shortened_in_messages() {
        let name = format!("9{}", "a".repeat(10_000));
        let (_, message) = refused(&format!("x 1\n{name} 1"));
        assert!(message.len() < 200, "{message}");
    }

    /// A deterministic pseudo-random generator (xorshift64*): no dependency, same bytes each run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Bytes drawn mostly from the format's own alphabet, so that the generator reaches deep
        // into the grammar, with some arbitrary (often invalid UTF-8) bytes mixed in.
        const ALPHABET: &[u8] =
            b"ab_:9.e+-{}=\",\\ \t\n\r#HELPTYPEcounterhistogramsummaryle\"quantileNaInf0123";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = rng.below(64);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(8) == 0 {
                        (rng.next() & 0xff) as u8
                    } else {
                        ALPHABET[rng.below(ALPHABET.len())]
                    }
                })
                .collect();
            let _ = parse(&bytes, 1000);
        }
    }

    #[test]
    fn every_prefix_and_every_single_byte_mutation_of_a_good_text_never_panics() {
        let good = format!("{EXPOSITION}zone{{city=\"Zürich 😀\"}} 1 2\n");
        let bytes = good.as_bytes();
        for end in 0..=bytes.len() {
            let _ = parse(&bytes[..end], 1000);
        }
        let mut rng = Rng(42);
        for _ in 0..5_000 {
            let mut mutated = bytes.to_vec();
            let at = rng.below(mutated.len());
            mutated[at] = (rng.next() & 0xff) as u8;
            let _ = parse(&mutated, 1000);
        }
    }
}
