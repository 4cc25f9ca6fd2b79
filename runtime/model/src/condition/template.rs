//! Dedup-key templates: literal text with `{path}` placeholders, parsed with the condition's lexer
//! and paths and rendered for an event (`{resource}:{labels.alertname}`).

use std::fmt;
use std::fmt::Write as _;

use serde_json::Value;

use super::eval::Found;
use super::lex::lex;
use super::parse::Parser;
use super::{ConditionError, Path, check_length, error_at};
use crate::event::TriggerEvent;

/// A dedup-key template: literal text with `{path}` placeholders, e.g.
/// `{resource}:{labels.alertname}`. Displays as the text it was parsed from.
///
/// A placeholder is a condition path (`labels.alertname`, `payload.items[0]`, `event.type`) or
/// one of the event's fields by its bare name: `event_type`, `resource`, `source`, `actor` (so
/// `{resource}` is the event's resource; a payload key named `resource` is `{payload.resource}`).
/// `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    parts: Vec<KeyPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPart {
    Text(String),
    Value(Path),
}

impl KeyTemplate {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<KeyTemplate, ConditionError> {
        check_length(text)?;
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(error_at(
                        text,
                        at,
                        "unmatched `}` (write `}}` for a literal brace)",
                    ));
                }
                '{' => {
                    let start = at + 1;
                    let mut quote = None;
                    let end = loop {
                        match (chars.next(), quote) {
                            // Inside a quoted key (`{labels["a}b"]}`), braces are text.
                            (Some((_, '\\')), Some(_)) => {
                                chars.next();
                            }
                            (Some((_, c)), Some(q)) if c == q => quote = None,
                            (Some(_), Some(_)) => {}
                            (Some((_, c @ ('"' | '\''))), None) => quote = Some(c),
                            (Some((close, '}')), None) => break close,
                            (Some(_), None) => {}
                            (None, _) => {
                                return Err(error_at(
                                    text,
                                    at,
                                    "`{` is not closed (write `{{` for a literal brace)",
                                ));
                            }
                        }
                    };
                    let tokens = lex(text, start, end)?;
                    let mut parser = Parser::new(text, start, tokens);
                    if parser.at_end() {
                        return Err(error_at(text, start, "expected a field name inside `{}`"));
                    }
                    let path = parser.key_path()?;
                    parser.expect_end("`}`")?;
                    if !literal.is_empty() {
                        parts.push(KeyPart::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(KeyPart::Value(path));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(KeyPart::Text(literal));
        }
        Ok(KeyTemplate {
            source: text.to_owned(),
            parts,
        })
    }

    /// The text the template was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The key for `event`: strings are inserted as they are, other values as compact JSON, and
    /// missing values as nothing.
    pub fn render(&self, event: &TriggerEvent) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                KeyPart::Text(t) => out.push_str(t),
                KeyPart::Value(path) => match path.lookup(&super::Subject { event, graph: None }) {
                    Found::Missing | Found::Json(Value::Null) => {}
                    Found::Str(s) => out.push_str(s),
                    Found::Json(Value::String(s)) => out.push_str(s),
                    Found::Json(v) => {
                        // Writing to a `String` cannot fail.
                        let _ = write!(out, "{v}");
                    }
                },
            }
        }
        out
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::event;
    use super::*;

    #[test]
    fn key_templates_render_event_fields_and_payload_values() {
        let e = event();
        let cases = [
            ("{resource}:{labels.alertname}", "api-service:HighLatency"),
            (
                "{event_type}|{source}|{actor}",
                "metrics.latency|prometheus|latency-collector",
            ),
            (
                "{event.type}/{event.resource}",
                "metrics.latency/api-service",
            ),
            ("{value}", "912.5"),
            ("{count}", "3"),
            ("{ok}", "true"),
            ("{none}", ""),
            ("{missing}-{labels.nope}", "-"),
            ("{items}", r#"[1,"two",{"three":3}]"#),
            ("{items[1]}", "two"),
            ("{payload.resource}", ""),
            ("{{literal}}-{resource}", "{literal}-api-service"),
            (r#"{labels["app.kubernetes.io/name"]}"#, "web"),
            ("{labels['a}b']}", ""),
            ("{ resource }", "api-service"),
            ("constant", "constant"),
            ("", ""),
        ];
        for (text, expected) in cases {
            let t = KeyTemplate::parse(text).unwrap_or_else(|err| panic!("`{text}`: {err}"));
            assert_eq!(t.render(&e), expected, "`{text}`");
            assert_eq!(t.to_string(), text);
        }
    }

    #[test]
    fn key_template_errors_name_the_column() {
        let cases = [
            (
                "{resource",
                1,
                "`{` is not closed (write `{{` for a literal brace)",
            ),
            ("a}", 2, "unmatched `}` (write `}}` for a literal brace)"),
            ("x{}", 3, "expected a field name inside `{}`"),
            ("{a b}", 4, "expected `}`, found `b`"),
            (
                "{1}",
                2,
                "expected a field name (e.g. `resource` or `labels.alertname`), found `1`",
            ),
            (
                "{resource.name}",
                10,
                "`resource` is the event's field, a string without fields (a payload key named `resource` is `payload.resource`)",
            ),
            ("{labels.}", 9, "expected a name after `.`, found the end"),
            ("é{a@}", 4, "unexpected character `@`"),
        ];
        for (text, column, message) in cases {
            let err = KeyTemplate::parse(text).expect_err(text);
            assert_eq!(
                (err.column, err.message.as_str()),
                (column, message),
                "`{text}`"
            );
        }
    }
}
