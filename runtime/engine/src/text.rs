//! Text from guests (and from anyone else outside) shown to people: every control character and
//! every invisible formatting character as a visible escape.
//!
//! Guests write log lines, outcomes, error and panic messages, call arguments and manifest
//! descriptions, and all of them end up on terminals (`grace run`, `grace runs show`, `grace
//! ledger show`) and in the server's log. Printed raw, `ESC [ 2 J` clears the operator's screen,
//! an OSC sequence retitles the terminal or writes the clipboard, `CR LF` forges a log line, and
//! `U+202E` makes `exe.txt` read `txt.exe`. So text from outside goes through [`escape`] (one
//! line: `\n` shown as `\n`) or [`escape_lines`] (a block whose line breaks are kept) before it
//! reaches a terminal, and the server's log lines go through [`EscapedLines`], which keeps one
//! event on one line whatever its fields hold.
//!
//! Escapes: `\n`, `\r`, `\t`; `\x1b` for the other ASCII controls and DEL; `\u{9b}` for C1
//! controls and formatting characters (bidi overrides and isolates, zero-width characters, line
//! and paragraph separators, the byte-order mark, tag characters). Backslashes are left as they
//! are: the escapes are for reading, not for parsing back (`--json` is exact).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io;

pub use grace_model::text::is_hidden;

fn push_escape(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if c.is_ascii() => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

fn escape_where(text: &str, hide: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&hide) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hide(c) {
            let _ = push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` on one line, every hidden character (see [`is_hidden`]) escaped, line breaks included.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_where(text, is_hidden)
}

/// `text` as a block of lines: every hidden character escaped except `\n`, which stays a line
/// break (a lone `\r` does not: it would let a line overwrite the one before).
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_where(text, |c| c != '\n' && is_hidden(c))
}

/// Shows a text with [`escape`] in `format!` and tracing fields, without an allocation when the
/// text is clean.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if is_hidden(c) {
                push_escape(f, c)?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// A log writer that keeps each write on one line: everything hidden in it is escaped except a
/// final `\n`. tracing-subscriber's formatter writes each event with one write, so whatever a
/// field holds (a guest's log line, an error quoting input), one event is one line.
#[derive(Debug)]
pub struct EscapedLines<W>(pub W);

impl<W: io::Write> io::Write for EscapedLines<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.split_last() {
            Some((b'\n', body)) => (body, "\n"),
            _ => (buf, ""),
        };
        let text = String::from_utf8_lossy(body);
        let mut line = escape(&text).into_owned();
        line.push_str(end);
        self.0.write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn terminal_sequences_are_shown_as_escapes() {
        let hostile = "a\x1b[2J\x1b]0;t\x07b\r\nc\u{202e}d\u{2066}\u{200b}\u{9b}\x7f\t";
        assert_eq!(
            escape(hostile),
            "a\\x1b[2J\\x1b]0;t\\x07b\\r\\nc\\u{202e}d\\u{2066}\\u{200b}\\u{9b}\\x7f\\t"
        );
        assert_eq!(Escaped(hostile).to_string(), escape(hostile));
    }

    #[test]
    fn clean_text_is_left_alone_and_not_copied() {
        assert!(matches!(
            escape("deployment shop/cart: 3 → 5, ok\\n"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_block_keeps_its_line_breaks_but_not_carriage_returns() {
        assert_eq!(escape_lines("one\ntwo\rthree\x1b"), "one\ntwo\\rthree\\x1b");
    }

    #[test]
    fn a_log_event_with_a_forged_line_stays_one_line() {
        let mut out = EscapedLines(Vec::new());
        out.write_all(b"INFO grace::guest: hello\nFAKE INFO line\r\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            "INFO grace::guest: hello\\nFAKE INFO line\\r\n"
        );
    }
}
