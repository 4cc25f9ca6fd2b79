//! Trigger conditions and dedup-key templates: a small expression language over an event.
//!
//! A trigger's `condition` (`value > 500 && labels.env == "prod"`) is parsed once, when the
//! manifest is loaded, into a [`Condition`]; the trigger mesh evaluates it on every matching event.
//! Evaluation never panics and never allocates: it walks the parsed tree and borrows from the
//! event. A `dedup_key` (`"{resource}:{labels.alertname}"`) is parsed into a [`KeyTemplate`].
//! The user-facing reference is `docs/triggers.md`.
//!
//! Grammar (whitespace between tokens is ignored):
//!
//! ```text
//! expr    := or
//! or      := and (("||" | "or") and)*
//! and     := unary (("&&" | "and") unary)*
//! unary   := ("!" | "not") unary | compare
//! compare := operand (("==" | "!=" | ">" | ">=" | "<" | "<=") operand)?
//!          | operand "in" "[" literal ("," literal)* "]"
//! operand := literal | path | "(" expr ")"
//! literal := number | string | "true" | "false" | "null"
//! number  := "-"? digits ("." digits)? (("e" | "E") ("+" | "-")? digits)?
//! string  := '...' | "..."          escapes: \" \' \\ \n \t
//! path    := root ("." ident | "[" integer "]" | "[" string "]")*
//! root    := "event" "." ("type" | "resource" | "source" | "actor")
//!          | "payload"                        the payload object itself
//!          | ident                            a key of the payload object
//! ident   := [A-Za-z_][A-Za-z0-9_-]*
//! ```
//!
//! `!` binds looser than a comparison (`!a == b` is `!(a == b)`), `&&` tighter than `||`, and
//! comparisons do not chain (`a < b < c` is an error). The words `and`, `or`, `not`, `in`, `true`,
//! `false`, `null`, `event` and `payload` are reserved at the start of a path; a payload key with
//! one of these names is reached through `payload.` (`payload.event.kind`, `payload.in`). After a
//! `.` any identifier is a key, and `["key"]` reaches keys that are not identifiers
//! (`labels["app.kubernetes.io/name"]`).
//!
//! Semantics:
//! - a path that leads nowhere (a missing key, an index past the end, a key of a non-object) is
//!   `null`;
//! - `==` and `!=` compare JSON values; numbers compare numerically (`1 == 1.0`), as 64-bit floats;
//!   values of different types are never equal, so `missing != 5` is true;
//! - `>`, `>=`, `<`, `<=` compare two numbers or two strings (byte-wise); any other pair is false,
//!   so `!(x > 5)` is true when `x` is a string;
//! - `x in [a, b]` is `x == a || x == b`;
//! - a bare operand is true when it is `true`, a non-zero number, or a non-empty string, array or
//!   object.
//!
//! Limits: the text is at most [`MAX_TEXT_BYTES`] bytes and nests at most [`MAX_DEPTH`] levels of
//! parentheses and negations. Errors name the 1-based column (in characters) where the problem
//! is and what was expected there: ``column 9: expected a value after `>` ``.
//!
//! The language is cut in parts, one job each: `lex` splits text into tokens, `parse` builds
//! the syntax tree declared here, `eval` evaluates it against an event, and `template` reads
//! and renders dedup keys with the same paths. This module holds what they share: the public
//! types, the limits, the error and the syntax tree.

use std::fmt;

use crate::event::TriggerEvent;

mod eval;
mod explain;
mod lex;
mod parse;
mod template;

use lex::lex;
use parse::Parser;

pub use template::KeyTemplate;

/// The longest condition or key template, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// The deepest nesting of parentheses and negations in a condition.
pub const MAX_DEPTH: usize = 32;

/// Why a condition or key template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
#[non_exhaustive]
pub struct ConditionError {
    /// Where the problem is: 1-based, in characters.
    pub column: usize,
    /// What was expected there, lowercase.
    pub message: String,
}

/// A parsed trigger condition. Displays as the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    source: String,
    expr: Expr,
}

impl Condition {
    /// Parses a condition (see the module documentation for the grammar).
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        check_length(text)?;
        let tokens = lex(text, 0, text.len())?;
        let mut parser = Parser::new(text, 0, tokens);
        let expr = parser.expr()?;
        parser.expect_end("`&&`, `||` or the end of the condition")?;
        Ok(Condition {
            source: text.to_owned(),
            expr,
        })
    }

    /// The text the condition was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the condition holds for `event`. Never panics, never allocates. `event.graph`
    /// paths lead nowhere (`null`).
    pub fn eval(&self, event: &TriggerEvent) -> bool {
        self.eval_with(event, None)
    }

    /// Whether the condition holds for `event`, whose resource the health graph describes as
    /// `graph` (the facts the host stored with the event): `event.graph.*` paths read it.
    pub fn eval_with(&self, event: &TriggerEvent, graph: Option<&serde_json::Value>) -> bool {
        self.expr.eval(&Subject { event, graph })
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(any(test, feature = "fuzz"))]
/// A fuzz target's body for conditions (`fuzz_target!(|s: &str| fuzz_condition(s))`): parses
/// `text` and, when it parses, evaluates it on a sample event and checks that its display parses
/// back to the same condition.
///
/// # Panics
/// When an invariant is broken: that is the bug a fuzzer is looking for.
pub fn fuzz_condition(text: &str) {
    if let Ok(condition) = Condition::parse(text) {
        let _ = condition.eval(&sample_event());
        let again = Condition::parse(&condition.to_string());
        assert_eq!(
            again.as_ref(),
            Ok(&condition),
            "display does not round-trip"
        );
    }
}

#[cfg(any(test, feature = "fuzz"))]
/// A fuzz target's body for key templates: parses `text` and, when it parses, renders it for a
/// sample event and checks that its display parses back to the same template.
///
/// # Panics
/// When an invariant is broken.
pub fn fuzz_key_template(text: &str) {
    if let Ok(template) = KeyTemplate::parse(text) {
        let _ = template.render(&sample_event());
        let again = KeyTemplate::parse(&template.to_string());
        assert_eq!(again.as_ref(), Ok(&template), "display does not round-trip");
    }
}

#[cfg(any(test, feature = "fuzz"))]
fn sample_event() -> TriggerEvent {
    TriggerEvent {
        event_type: "metrics.latency".into(),
        source: "prometheus".into(),
        actor: "latency-collector".into(),
        resource: "api-service".into(),
        payload: serde_json::json!({
            "value": 912.5, "count": 3, "ok": false, "name": "api", "none": null,
            "labels": { "env": "prod", "alertname": "HighLatency" },
            "items": [1, "two", { "three": 3 }], "event": { "kind": "x" },
        }),
        timestamp: 1_767_225_900_000,
    }
}

fn check_length(text: &str) -> Result<(), ConditionError> {
    if text.len() > MAX_TEXT_BYTES {
        // The column of the first character past the limit.
        let mut at = MAX_TEXT_BYTES;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        return Err(error_at(
            text,
            at,
            format!(
                "the text is {} bytes, above the limit of {MAX_TEXT_BYTES}",
                text.len()
            ),
        ));
    }
    Ok(())
}

fn error_at(text: &str, byte: usize, message: impl Into<String>) -> ConditionError {
    let byte = byte.min(text.len());
    ConditionError {
        column: text.get(..byte).map_or(byte, |s| s.chars().count()) + 1,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The syntax tree: built by `parse`, walked by `eval`, its paths shared with `template`.

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare(Operand, CmpOp, Operand),
    In(Operand, Vec<Literal>),
    Truthy(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Literal(Literal),
    Path(Path),
    Group(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Path {
    root: Root,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Payload,
    EventType,
    Resource,
    Source,
    Actor,
    /// `event.graph`: what the host's health graph says of the event's resource.
    Graph,
}

/// What a condition reads: the event, and the health graph's facts about its resource when the
/// host keeps a graph (`event.graph`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) event: &'a TriggerEvent,
    pub(crate) graph: Option<&'a serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event with a value of every JSON type, shared by the tests of every part.
    pub(super) fn event() -> TriggerEvent {
        TriggerEvent {
            event_type: "metrics.latency".into(),
            source: "prometheus".into(),
            actor: "latency-collector".into(),
            resource: "api-service".into(),
            payload: serde_json::json!({
                "value": 912.5, "count": 3, "int": 1, "zero": 0, "big": 1e300,
                "ok": true, "off": false, "none": null,
                "name": "api", "empty": "", "quote": "say \"hi\"\n", "bs": "back\\slash",
                "labels": { "env": "prod", "alertname": "HighLatency", "app.kubernetes.io/name": "web" },
                "items": [1, "two", { "three": 3 }], "list_empty": [], "obj_empty": {},
                "event": { "kind": "deploy" }, "in": 1,
            }),
            timestamp: 1_767_225_900_000,
        }
    }

    #[test]
    fn text_is_limited_to_1024_bytes() {
        let fits = format!("x == '{}'", "a".repeat(MAX_TEXT_BYTES - 7));
        assert_eq!(fits.len(), MAX_TEXT_BYTES);
        assert!(Condition::parse(&fits).is_ok());
        let long = format!("x == '{}'", "a".repeat(MAX_TEXT_BYTES - 6));
        let err = Condition::parse(&long).unwrap_err();
        assert_eq!(err.column, MAX_TEXT_BYTES + 1);
        assert_eq!(
            err.message,
            "the text is 1025 bytes, above the limit of 1024"
        );
        assert!(KeyTemplate::parse(&long).is_err());
    }

    /// A deterministic xorshift64* generator: the same strings on every run, no dependencies.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }

    #[test]
    fn no_input_makes_parsing_or_evaluation_panic() {
        let mut texts: Vec<String> = eval::tests::CASES
            .iter()
            .map(|(t, _)| (*t).to_owned())
            .collect();
        texts.extend(parse::tests::ERRORS.iter().map(|(t, _, _)| (*t).to_owned()));
        texts.push("{resource}:{labels['a}b']}-{{x}}-{items[2].three}".to_owned());
        texts.push(format!("{}x{}", "(".repeat(40), ")".repeat(40)));
        // Every prefix of every expression: the truncated input a parser meets most.
        for text in &texts {
            for (at, _) in text.char_indices().chain([(text.len(), ' ')]) {
                fuzz_condition(&text[..at]);
                fuzz_key_template(&text[..at]);
            }
        }
        // Random strings over the language's alphabet, and random bytes.
        const PIECES: &[&str] = &[
            "value", "labels", ".", "env", "[", "]", "0", "1.5", "-", "e9", "(", ")", "!", "not",
            "&&", "||", "and", "or", "==", "!=", ">", ">=", "<", "<=", "in", ",", "'", "\"", "\\",
            "prod", "true", "false", "null", "event", "type", "payload", "{", "}", " ", "é", "\n",
            "resource", "items", "=", "&", "|", "@", "1e999",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..20_000 {
            let len = rng.below(24);
            let text = if round % 4 == 0 {
                let bytes: Vec<u8> = (0..len * 2).map(|_| (rng.next() >> 24) as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect()
            };
            fuzz_condition(&text);
            fuzz_key_template(&text);
        }
    }
}
