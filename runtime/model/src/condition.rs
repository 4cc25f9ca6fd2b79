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

use std::fmt;
use std::fmt::Write as _;

use serde_json::Value;

use crate::event::TriggerEvent;

/// The longest condition or key template, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// The deepest nesting of parentheses and negations in a condition.
pub const MAX_DEPTH: usize = 32;
/// How deep `==` looks into arrays and objects; deeper values are unequal. Payloads parsed by
/// `serde_json` are at most 128 deep anyway; this keeps evaluation's stack bounded for any value.
const MAX_VALUE_DEPTH: usize = 128;

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

    /// Whether the condition holds for `event`. Never panics, never allocates.
    pub fn eval(&self, event: &TriggerEvent) -> bool {
        self.expr.eval(event)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

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
                KeyPart::Value(path) => match path.lookup(event) {
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
// Syntax tree and evaluation

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A value during evaluation, borrowed from the condition or the event.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    /// An array or object (scalars are unpacked into the other variants).
    Json(&'a Value),
}

impl<'a> Val<'a> {
    fn of_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => n.as_f64().map_or(Val::Null, Val::Num),
            Value::String(s) => Val::Str(s),
            Value::Array(_) | Value::Object(_) => Val::Json(v),
        }
    }

    fn truthy(self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => b,
            Val::Num(n) => n != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Json(Value::Array(a)) => !a.is_empty(),
            Val::Json(Value::Object(o)) => !o.is_empty(),
            Val::Json(v) => Val::of_json(v).truthy(),
        }
    }

    fn equals(self, other: Val<'_>) -> bool {
        match (self, other) {
            (Val::Null, Val::Null) => true,
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Num(a), Val::Num(b)) => a == b,
            (Val::Str(a), Val::Str(b)) => a == b,
            (Val::Json(a), Val::Json(b)) => json_equals(a, b, 0),
            _ => false,
        }
    }

    fn order(self, other: Val<'_>) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Val::Num(a), Val::Num(b)) => a.partial_cmp(&b),
            (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// JSON equality with numbers compared numerically, bounded in depth.
fn json_equals(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > MAX_VALUE_DEPTH {
        return false;
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equals(x, y, depth + 1))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, x)| y.get(k).is_some_and(|y| json_equals(x, y, depth + 1)))
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => Val::of_json(a).equals(Val::of_json(b)),
    }
}

impl Expr {
    fn eval(&self, event: &TriggerEvent) -> bool {
        match self {
            Expr::Or(items) => items.iter().any(|e| e.eval(event)),
            Expr::And(items) => items.iter().all(|e| e.eval(event)),
            Expr::Not(e) => !e.eval(event),
            Expr::Truthy(o) => o.value(event).truthy(),
            Expr::In(o, list) => {
                let v = o.value(event);
                list.iter().any(|l| v.equals(l.value()))
            }
            Expr::Compare(a, op, b) => {
                let (a, b) = (a.value(event), b.value(event));
                use std::cmp::Ordering::*;
                match op {
                    CmpOp::Eq => a.equals(b),
                    CmpOp::Ne => !a.equals(b),
                    CmpOp::Gt => a.order(b) == Some(Greater),
                    CmpOp::Ge => matches!(a.order(b), Some(Greater | Equal)),
                    CmpOp::Lt => a.order(b) == Some(Less),
                    CmpOp::Le => matches!(a.order(b), Some(Less | Equal)),
                }
            }
        }
    }
}

impl Operand {
    fn value<'a>(&'a self, event: &'a TriggerEvent) -> Val<'a> {
        match self {
            Operand::Literal(l) => l.value(),
            Operand::Path(p) => p.resolve(event),
            Operand::Group(e) => Val::Bool(e.eval(event)),
        }
    }
}

impl Literal {
    fn value(&self) -> Val<'_> {
        match self {
            Literal::Null => Val::Null,
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Number(n) => Val::Num(*n),
            Literal::String(s) => Val::Str(s),
        }
    }
}

/// What a path leads to.
enum Found<'a> {
    /// One of the event's own fields.
    Str(&'a str),
    /// A value in the payload.
    Json(&'a Value),
    /// Nothing.
    Missing,
}

impl Path {
    fn resolve<'a>(&self, event: &'a TriggerEvent) -> Val<'a> {
        match self.lookup(event) {
            Found::Str(s) => Val::Str(s),
            Found::Json(v) => Val::of_json(v),
            Found::Missing => Val::Null,
        }
    }

    fn lookup<'a>(&self, event: &'a TriggerEvent) -> Found<'a> {
        let mut value = match self.root {
            Root::Payload => &event.payload,
            Root::EventType => return Found::Str(&event.event_type),
            Root::Resource => return Found::Str(&event.resource),
            Root::Source => return Found::Str(&event.source),
            Root::Actor => return Found::Str(&event.actor),
        };
        for step in &self.steps {
            let next = match (step, value) {
                (Step::Key(k), Value::Object(map)) => map.get(k),
                (Step::Index(i), Value::Array(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(v) => value = v,
                None => return Found::Missing,
            }
        }
        Found::Json(value)
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Number(f64),
    Str(String),
    Ident(&'a str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Bang,
    AndAnd,
    OrOr,
    Cmp(CmpOp),
}

#[derive(Debug, Clone)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Byte range in the whole text.
    start: usize,
    end: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Splits `text[start..end]` into tokens; positions stay relative to the whole `text`.
fn lex(text: &str, start: usize, end: usize) -> Result<Vec<Token<'_>>, ConditionError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = start;
    while i < end {
        let c = bytes[i];
        let begin = i;
        let single = |tok| (tok, begin + 1);
        let two = |second: u8, tok: Tok<'static>| {
            (i + 1 < end && bytes[i + 1] == second).then_some((tok, begin + 2))
        };
        let (tok, next) = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => single(Tok::LParen),
            b')' => single(Tok::RParen),
            b'[' => single(Tok::LBracket),
            b']' => single(Tok::RBracket),
            b',' => single(Tok::Comma),
            b'.' => single(Tok::Dot),
            b'&' => two(b'&', Tok::AndAnd)
                .ok_or_else(|| error_at(text, begin, "write `&&` (or `and`), not `&`"))?,
            b'|' => two(b'|', Tok::OrOr)
                .ok_or_else(|| error_at(text, begin, "write `||` (or `or`), not `|`"))?,
            b'=' => two(b'=', Tok::Cmp(CmpOp::Eq))
                .ok_or_else(|| error_at(text, begin, "write `==` to compare, not `=`"))?,
            b'!' => two(b'=', Tok::Cmp(CmpOp::Ne)).unwrap_or(single(Tok::Bang)),
            b'>' => two(b'=', Tok::Cmp(CmpOp::Ge)).unwrap_or(single(Tok::Cmp(CmpOp::Gt))),
            b'<' => two(b'=', Tok::Cmp(CmpOp::Le)).unwrap_or(single(Tok::Cmp(CmpOp::Lt))),
            b'"' | b'\'' => lex_string(text, begin, end)?,
            b'-' | b'0'..=b'9' => lex_number(text, begin, end)?,
            _ => {
                let ch = text[begin..].chars().next().unwrap_or('?');
                if is_ident_start(ch) {
                    let len = text[begin..end]
                        .find(|c: char| !is_ident_char(c))
                        .unwrap_or(end - begin);
                    (Tok::Ident(&text[begin..begin + len]), begin + len)
                } else {
                    return Err(error_at(
                        text,
                        begin,
                        format!("unexpected character `{}`", ch.escape_debug()),
                    ));
                }
            }
        };
        tokens.push(Token {
            tok,
            start: begin,
            end: next,
        });
        i = next;
    }
    Ok(tokens)
}

fn lex_string(
    text: &str,
    begin: usize,
    end: usize,
) -> Result<(Tok<'static>, usize), ConditionError> {
    let quote = text.as_bytes()[begin] as char;
    let mut value = String::new();
    let mut chars = text[begin + 1..end].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((Tok::Str(value), begin + 1 + offset + 1)),
            '\\' => match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\'')) => value.push('\''),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, other)) => {
                    return Err(error_at(
                        text,
                        begin + 1 + offset,
                        format!(
                            "unknown escape `\\{}` (use `\\\"`, `\\'`, `\\\\`, `\\n` or `\\t`)",
                            other.escape_default()
                        ),
                    ));
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(error_at(
        text,
        begin,
        format!("unterminated string: expected a closing {quote}"),
    ))
}

fn lex_number(
    text: &str,
    begin: usize,
    end: usize,
) -> Result<(Tok<'static>, usize), ConditionError> {
    let bytes = &text.as_bytes()[..end];
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = begin;
    if bytes[i] == b'-' {
        i += 1;
    }
    let int_end = digits(i);
    if int_end == i {
        return Err(error_at(text, begin, "expected a number after `-`"));
    }
    i = int_end;
    if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
        i = digits(i + 1);
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end > j {
            i = exp_end;
        }
    }
    // `5xx` or `1.2.3` are not numbers followed by something else: say so.
    let rest = text[i..end].chars().next();
    if rest.is_some_and(|c| is_ident_char(c) || c == '.') {
        let len = text[begin..end]
            .find(|c: char| !(is_ident_char(c) || c == '.'))
            .unwrap_or(end - begin);
        return Err(error_at(
            text,
            begin,
            format!("`{}` is not a number", &text[begin..begin + len]),
        ));
    }
    let literal = &text[begin..i];
    match literal.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok((Tok::Number(n), i)),
        _ => Err(error_at(
            text,
            begin,
            format!("`{literal}` is out of range for a number"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'a> {
    text: &'a str,
    /// Where the parsed range starts in `text`.
    base: usize,
    tokens: Vec<Token<'a>>,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, base: usize, tokens: Vec<Token<'a>>) -> Self {
        Parser {
            text,
            base,
            tokens,
            pos: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<&Tok<'a>> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn next_tok(&mut self) -> Option<Tok<'a>> {
        let t = self.tokens.get(self.pos).map(|t| t.tok.clone());
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    /// Byte offset of the current token (or the end of the last one).
    fn here(&self) -> usize {
        match self.tokens.get(self.pos) {
            Some(t) => t.start,
            None => self.tokens.last().map_or(self.base, |t| t.end),
        }
    }

    fn error(&self, message: impl Into<String>) -> ConditionError {
        error_at(self.text, self.here(), message)
    }

    /// The source text of the previous token, for "after `x`" messages.
    fn previous(&self) -> Option<&'a str> {
        let t = self.tokens.get(self.pos.checked_sub(1)?)?;
        Some(&self.text[t.start..t.end])
    }

    /// The current token for "found `x`" messages.
    fn found(&self) -> String {
        match self.tokens.get(self.pos) {
            Some(t) => format!("`{}`", &self.text[t.start..t.end]),
            None => "the end".to_owned(),
        }
    }

    fn expect_end(&self, expected: &str) -> Result<(), ConditionError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.error(format!("expected {expected}, found {}", self.found())))
        }
    }

    fn nest(&mut self) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nesting is deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.and()?];
        while matches!(self.peek(), Some(Tok::OrOr | Tok::Ident("or"))) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.unary()?];
        while matches!(self.peek(), Some(Tok::AndAnd | Tok::Ident("and"))) {
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, ConditionError> {
        if matches!(self.peek(), Some(Tok::Bang | Tok::Ident("not"))) {
            self.nest()?;
            self.pos += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ConditionError> {
        let left = self.operand()?;
        match self.peek() {
            Some(Tok::Cmp(op)) => {
                let op = *op;
                self.pos += 1;
                let right = self.operand()?;
                Ok(Expr::Compare(left, op, right))
            }
            Some(Tok::Ident("in")) => {
                self.pos += 1;
                if self.peek() != Some(&Tok::LBracket) {
                    return Err(
                        self.error(format!("expected `[` after `in`, found {}", self.found()))
                    );
                }
                self.pos += 1;
                let mut list = vec![self.list_literal()?];
                loop {
                    match self.peek() {
                        Some(Tok::Comma) => {
                            self.pos += 1;
                            list.push(self.list_literal()?);
                        }
                        Some(Tok::RBracket) => {
                            self.pos += 1;
                            break;
                        }
                        _ => {
                            return Err(self.error(format!(
                                "expected `,` or `]` in the `in` list, found {}",
                                self.found()
                            )));
                        }
                    }
                }
                Ok(Expr::In(left, list))
            }
            _ => Ok(Expr::Truthy(left)),
        }
    }

    fn list_literal(&mut self) -> Result<Literal, ConditionError> {
        match self.literal() {
            Some(l) => {
                self.pos += 1;
                Ok(l)
            }
            None => Err(self.error(format!(
                "expected a literal (a number, a string, `true`, `false` or `null`) in the `in` list, found {}",
                self.found()
            ))),
        }
    }

    /// The literal at the current token, without consuming it.
    fn literal(&self) -> Option<Literal> {
        Some(match self.peek()? {
            Tok::Number(n) => Literal::Number(*n),
            Tok::Str(s) => Literal::String(s.clone()),
            Tok::Ident("true") => Literal::Bool(true),
            Tok::Ident("false") => Literal::Bool(false),
            Tok::Ident("null") => Literal::Null,
            _ => return None,
        })
    }

    fn operand(&mut self) -> Result<Operand, ConditionError> {
        if let Some(l) = self.literal() {
            self.pos += 1;
            return Ok(Operand::Literal(l));
        }
        match self.peek() {
            Some(Tok::LParen) => {
                let open = self.here();
                self.nest()?;
                self.pos += 1;
                let inner = self.expr()?;
                if self.peek() != Some(&Tok::RParen) {
                    let open_column = error_at(self.text, open, "").column;
                    return Err(self.error(format!(
                        "expected `)` to close the `(` at column {open_column}, found {}",
                        self.found()
                    )));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(Operand::Group(Box::new(inner)))
            }
            Some(Tok::Ident(word)) if !matches!(*word, "and" | "or" | "not" | "in") => {
                Ok(Operand::Path(self.path(false)?))
            }
            _ => Err(self.error(match self.previous() {
                Some(prev) => format!("expected a value after `{prev}`"),
                None => format!("expected a value, found {}", self.found()),
            })),
        }
    }

    /// A placeholder of a key template: a path, or an event field by its bare name.
    fn key_path(&mut self) -> Result<Path, ConditionError> {
        match self.peek() {
            Some(Tok::Ident(_)) => self.path(true),
            _ => Err(self.error(format!(
                "expected a field name (e.g. `resource` or `labels.alertname`), found {}",
                self.found()
            ))),
        }
    }

    fn path(&mut self, template: bool) -> Result<Path, ConditionError> {
        let start = self.here();
        let Some(Tok::Ident(first)) = self.next_tok() else {
            return Err(self.error("expected a name"));
        };
        let event_field = |name: &str| match name {
            "type" => Some(Root::EventType),
            "resource" => Some(Root::Resource),
            "source" => Some(Root::Source),
            "actor" => Some(Root::Actor),
            _ => None,
        };
        let template_field = match first {
            "event_type" => Some(Root::EventType),
            "resource" => Some(Root::Resource),
            "source" => Some(Root::Source),
            "actor" => Some(Root::Actor),
            _ => None,
        };
        let mut steps = Vec::new();
        let root = match first {
            "event" => {
                let field = match (self.peek(), self.tokens.get(self.pos + 1).map(|t| &t.tok)) {
                    (Some(Tok::Dot), Some(Tok::Ident(name))) => event_field(name),
                    _ => None,
                };
                let Some(root) = field else {
                    return Err(error_at(
                        self.text,
                        start,
                        "`event` must be followed by `.type`, `.resource`, `.source` or `.actor` \
                         (a payload key named `event` is `payload.event`)",
                    ));
                };
                self.pos += 2;
                if matches!(self.peek(), Some(Tok::Dot | Tok::LBracket)) {
                    return Err(self.error("event fields are strings and have no fields"));
                }
                return Ok(Path { root, steps });
            }
            "payload" => Root::Payload,
            key => match template_field.filter(|_| template) {
                Some(root) => {
                    if matches!(self.peek(), Some(Tok::Dot | Tok::LBracket)) {
                        return Err(self.error(format!(
                            "`{key}` is the event's field, a string without fields \
                             (a payload key named `{key}` is `payload.{key}`)"
                        )));
                    }
                    return Ok(Path { root, steps });
                }
                None => {
                    steps.push(Step::Key(key.to_owned()));
                    Root::Payload
                }
            },
        };
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    match self.peek() {
                        Some(Tok::Ident(name)) => {
                            steps.push(Step::Key((*name).to_owned()));
                            self.pos += 1;
                        }
                        _ => {
                            return Err(self.error(format!(
                                "expected a name after `.`, found {}",
                                self.found()
                            )));
                        }
                    }
                }
                Some(Tok::LBracket) => {
                    self.pos += 1;
                    let step = match self.peek() {
                        Some(Tok::Str(key)) => Some(Step::Key(key.clone())),
                        Some(Tok::Number(_)) => {
                            let t = &self.tokens[self.pos];
                            self.text[t.start..t.end]
                                .parse::<usize>()
                                .ok()
                                .map(Step::Index)
                        }
                        _ => None,
                    };
                    let Some(step) = step else {
                        return Err(self.error(format!(
                            "expected an index (e.g. `[0]`) or a quoted key (e.g. `[\"app.name\"]`) after `[`, found {}",
                            self.found()
                        )));
                    };
                    self.pos += 1;
                    if self.peek() != Some(&Tok::RBracket) {
                        return Err(self.error(format!("expected `]`, found {}", self.found())));
                    }
                    self.pos += 1;
                    steps.push(step);
                }
                _ => return Ok(Path { root, steps }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> TriggerEvent {
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

    /// (condition, expected result on `event()`).
    const CASES: &[(&str, bool)] = &[
        // numbers
        ("value > 500", true),
        ("value > 1000", false),
        ("value >= 912.5", true),
        ("value < 912.5", false),
        ("value <= 912.5", true),
        ("count == 3", true),
        ("count == 3.0", true),
        ("int == 1.0", true),
        ("1 == 1.0", true),
        ("count != 3", false),
        ("-1 < zero", true),
        ("value > -1e3", true),
        ("big > 1e299", true),
        // strings
        ("name == 'api'", true),
        (r#"name == "api""#, true),
        ("name > 'abc'", true),
        ("name < 'b'", true),
        ("name != 'web'", true),
        // type mismatches: ordering is false, equality is false
        ("name > 5", false),
        ("value > '5'", false),
        ("!(value > '5')", true),
        ("'1' == 1", false),
        ("null == false", false),
        ("0 == false", false),
        ("ok == 1", false),
        // missing paths are null
        ("missing == null", true),
        ("missing != 5", true),
        ("missing > 0", false),
        ("missing < 0", false),
        ("missing", false),
        ("!missing", true),
        ("none == null", true),
        ("labels.missing.deeper == null", true),
        ("items[9] == null", true),
        ("name[0] == null", true),
        ("name.first == null", true),
        // nested paths
        ("labels.env == 'prod'", true),
        ("labels['app.kubernetes.io/name'] == 'web'", true),
        ("items[0] == 1", true),
        ("items[1] == 'two'", true),
        ("items[2].three == 3", true),
        ("payload.value == value", true),
        ("labels == labels && items == items", true),
        ("labels == items", false),
        // truthiness
        ("payload", true),
        ("items", true),
        ("list_empty", false),
        ("labels", true),
        ("obj_empty", false),
        ("name", true),
        ("empty", false),
        ("count", true),
        ("zero", false),
        ("ok", true),
        ("off", false),
        ("!!ok", true),
        // precedence and keywords
        ("value > 500 && labels.env == 'prod'", true),
        ("value > 500 and labels.env == 'dev'", false),
        ("value < 500 || labels.env == 'prod'", true),
        ("value < 500 or labels.env == 'dev'", false),
        ("false || true && false", false),
        ("true || true && false", true),
        ("(true || true) && false", false),
        ("!true || true", true),
        ("!false && false", false),
        ("not value > 1000", true),
        ("not (value > 500 and ok)", false),
        ("(value > 500) == true", true),
        ("((((value))))", true),
        // in
        ("name in ['web', 'api']", true),
        ("name in ['web']", false),
        ("count in [1, 2, 3.0]", true),
        ("missing in [null]", true),
        ("ok in [true]", true),
        ("not name in ['api']", false),
        // escapes
        (r#"quote == 'say "hi"\n'"#, true),
        (r#"quote == "say \"hi\"\n""#, true),
        (r#"'it\'s' == "it's""#, true),
        (r#"bs == 'back\\slash'"#, true),
        ("'tab\\there' == 'tab\there'", true),
        // event fields, and payload keys with reserved names
        ("event.type == 'metrics.latency'", true),
        ("event.resource == 'api-service'", true),
        (
            "event.source == 'prometheus' && event.actor == 'latency-collector'",
            true,
        ),
        ("event.type == type", false),
        ("payload.event.kind == 'deploy'", true),
        ("payload.in == 1", true),
        ("payload.resource == null", true),
        // whitespace is free
        ("  value>500&&labels.env=='prod'  ", true),
    ];

    #[test]
    fn conditions_evaluate_as_documented() {
        assert!(CASES.len() >= 40);
        let e = event();
        for (text, expected) in CASES {
            let c = Condition::parse(text).unwrap_or_else(|err| panic!("`{text}`: {err}"));
            assert_eq!(c.eval(&e), *expected, "`{text}`");
            assert_eq!(c.to_string(), *text);
        }
    }

    /// (condition, column, message).
    const ERRORS: &[(&str, usize, &str)] = &[
        ("value > && x", 9, "expected a value after `>`"),
        ("value > ", 8, "expected a value after `>`"),
        ("value >> 5", 8, "expected a value after `>`"),
        ("", 1, "expected a value, found the end"),
        ("   ", 1, "expected a value, found the end"),
        ("and", 1, "expected a value, found `and`"),
        ("x and", 6, "expected a value after `and`"),
        ("x || ", 5, "expected a value after `||`"),
        ("!", 2, "expected a value after `!`"),
        ("value = 5", 7, "write `==` to compare, not `=`"),
        ("a & b", 3, "write `&&` (or `and`), not `&`"),
        ("a | b", 3, "write `||` (or `or`), not `|`"),
        (
            "(value > 5",
            11,
            "expected `)` to close the `(` at column 1, found the end",
        ),
        (
            "value > 5)",
            10,
            "expected `&&`, `||` or the end of the condition, found `)`",
        ),
        (
            "a < b < c",
            7,
            "expected `&&`, `||` or the end of the condition, found `<`",
        ),
        (
            "name == 'api",
            9,
            "unterminated string: expected a closing '",
        ),
        (
            r"name == 'a\qb'",
            11,
            r"unknown escape `\q` (use `\Xq`, `\'`, `\\`, `\n` or `\t`)",
        ),
        ("5xx > 1", 1, "`5xx` is not a number"),
        ("x > 1.2.3", 5, "`1.2.3` is not a number"),
        ("x > 1e999", 5, "`1e999` is out of range for a number"),
        ("- 1 < x", 1, "expected a number after `-`"),
        ("name in 'api'", 9, "expected `[` after `in`, found `'api'`"),
        (
            "name in []",
            10,
            "expected a literal (a number, a string, `true`, `false` or `null`) in the `in` list, found `]`",
        ),
        (
            "name in [a]",
            10,
            "expected a literal (a number, a string, `true`, `false` or `null`) in the `in` list, found `a`",
        ),
        (
            "name in ['a' 'b']",
            14,
            "expected `,` or `]` in the `in` list, found `'b'`",
        ),
        (
            "event.kind == 'x'",
            1,
            "`event` must be followed by `.type`, `.resource`, `.source` or `.actor` (a payload key named `event` is `payload.event`)",
        ),
        (
            "event == 1",
            1,
            "`event` must be followed by `.type`, `.resource`, `.source` or `.actor` (a payload key named `event` is `payload.event`)",
        ),
        (
            "event.type.x",
            11,
            "event fields are strings and have no fields",
        ),
        ("labels. == 1", 9, "expected a name after `.`, found `==`"),
        (
            "items[x]",
            7,
            "expected an index (e.g. `[0]`) or a quoted key (e.g. `[\"app.name\"]`) after `[`, found `x`",
        ),
        (
            "items[1.5]",
            7,
            "expected an index (e.g. `[0]`) or a quoted key (e.g. `[\"app.name\"]`) after `[`, found `1.5`",
        ),
        (
            "items[-1]",
            7,
            "expected an index (e.g. `[0]`) or a quoted key (e.g. `[\"app.name\"]`) after `[`, found `-1`",
        ),
        ("items[0", 8, "expected `]`, found the end"),
        ("value > 5 @", 11, "unexpected character `@`"),
        // Columns count characters, not bytes.
        ("'é' == x && @", 13, "unexpected character `@`"),
        ("x == 'ü' ∧ y", 10, "unexpected character `∧`"),
    ];

    #[test]
    fn parse_errors_name_the_column_and_what_was_expected() {
        for (text, column, message) in ERRORS {
            let message = message.replace("\\Xq", "\\\"");
            let err = Condition::parse(text).expect_err(text);
            assert_eq!(
                (err.column, err.message.as_str()),
                (*column, message.as_str()),
                "`{text}`"
            );
            assert_eq!(err.to_string(), format!("column {column}: {message}"));
        }
    }

    #[test]
    fn nesting_is_limited_to_32_levels() {
        let nested = |n: usize| format!("{}x{}", "(".repeat(n), ")".repeat(n));
        assert!(Condition::parse(&nested(MAX_DEPTH)).is_ok());
        let err = Condition::parse(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(err.column, MAX_DEPTH + 1);
        assert_eq!(err.message, "nesting is deeper than 32 levels");

        let negated = |n: usize| format!("{}x", "!".repeat(n));
        assert!(Condition::parse(&negated(MAX_DEPTH)).is_ok());
        let err = Condition::parse(&negated(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(err.column, MAX_DEPTH + 1);

        // Parentheses and negations count together; siblings do not.
        let mixed = format!("{}x{}", "!(".repeat(16), ")".repeat(16));
        assert!(Condition::parse(&mixed).is_ok());
        assert!(Condition::parse(&format!("!{mixed}")).is_err());
        let wide = vec!["(x)"; 100].join(" && ");
        assert!(Condition::parse(&wide).is_ok());
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

    #[test]
    fn equality_of_very_deep_values_is_bounded() {
        let mut deep = serde_json::json!(1);
        for _ in 0..(MAX_VALUE_DEPTH + 10) {
            deep = serde_json::json!([deep]);
        }
        let mut e = event();
        e.payload = serde_json::json!({ "a": deep.clone(), "b": deep, "c": [[1]], "d": [[1.0]] });
        // Beyond the depth bound values are unequal rather than overflowing the stack.
        assert!(!Condition::parse("a == b").unwrap().eval(&e));
        assert!(Condition::parse("c == d").unwrap().eval(&e));
    }

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
        let mut texts: Vec<String> = CASES.iter().map(|(t, _)| (*t).to_owned()).collect();
        texts.extend(ERRORS.iter().map(|(t, _, _)| (*t).to_owned()));
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
