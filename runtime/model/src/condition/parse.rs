//! The parser of conditions and key placeholders: tokens to the syntax tree of the parent module,
//! by recursive descent over the grammar in its documentation, with the nesting bounded by
//! [`MAX_DEPTH`] and every error naming a column and what was expected there.

use super::lex::{Tok, Token};
use super::{ConditionError, Expr, Literal, MAX_DEPTH, Operand, Path, Root, Step, error_at};

pub(super) struct Parser<'a> {
    text: &'a str,
    /// Where the parsed range starts in `text`.
    base: usize,
    tokens: Vec<Token<'a>>,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str, base: usize, tokens: Vec<Token<'a>>) -> Self {
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

    pub(super) fn at_end(&self) -> bool {
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

    pub(super) fn expect_end(&self, expected: &str) -> Result<(), ConditionError> {
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

    pub(super) fn expr(&mut self) -> Result<Expr, ConditionError> {
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
    pub(super) fn key_path(&mut self) -> Result<Path, ConditionError> {
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
            "event"
                if !template
                    && matches!(
                        (self.peek(), self.tokens.get(self.pos + 1).map(|t| &t.tok)),
                        (Some(Tok::Dot), Some(Tok::Ident("graph")))
                    ) =>
            {
                self.pos += 2;
                Root::Graph
            }
            "event" => {
                let field = match (self.peek(), self.tokens.get(self.pos + 1).map(|t| &t.tok)) {
                    (Some(Tok::Dot), Some(Tok::Ident(name))) => event_field(name),
                    _ => None,
                };
                let Some(root) = field else {
                    return Err(error_at(
                        self.text,
                        start,
                        "`event` must be followed by `.type`, `.resource`, `.source`, `.actor` \
                         or `.graph` (a payload key named `event` is `payload.event`)",
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
pub(super) mod tests {
    use super::super::Condition;
    use super::*;

    /// (condition, column, message).
    pub(crate) const ERRORS: &[(&str, usize, &str)] = &[
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
            "`event` must be followed by `.type`, `.resource`, `.source`, `.actor` or `.graph` (a payload key named `event` is `payload.event`)",
        ),
        (
            "event == 1",
            1,
            "`event` must be followed by `.type`, `.resource`, `.source`, `.actor` or `.graph` (a payload key named `event` is `payload.event`)",
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
}
