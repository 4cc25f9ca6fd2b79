//! The lexer of conditions and key placeholders: text to tokens, each with its byte range in the
//! whole text so that errors can name a column. Numbers and strings are decoded here, with their
//! errors (`5xx` is not a number, an unknown escape, an unterminated string).

use super::{CmpOp, ConditionError, error_at};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'a> {
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
pub(super) struct Token<'a> {
    pub(super) tok: Tok<'a>,
    /// Byte range in the whole text.
    pub(super) start: usize,
    pub(super) end: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Splits `text[start..end]` into tokens; positions stay relative to the whole `text`.
pub(super) fn lex(text: &str, start: usize, end: usize) -> Result<Vec<Token<'_>>, ConditionError> {
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
