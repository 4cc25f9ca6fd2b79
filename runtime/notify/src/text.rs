//! Text cut to a vendor's limit without splitting a character, and marked as cut.

/// `text` cut to at most `max` characters (Unicode scalar values, as Slack and Jira count),
/// ending in `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// `text` cut to at most `max` bytes of UTF-8 (PagerDuty and GitHub count bytes), ending in
/// `…` when cut.
pub fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `text` with hidden characters (controls other than new lines and tabs, bidi overrides,
/// zero-width characters: [`grace_model::text::is_hidden`]) replaced by `�`: what a guest or
/// an event wrote reaches a chat message or an issue without terminal escapes, invisible
/// bytes or text that reads backwards.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if grace_model::text::is_hidden(c) && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_whole_characters_and_marks_the_cut() {
        assert_eq!(cut("héllo", 10), "héllo");
        assert_eq!(cut("héllo wörld", 5), "héll…");
        assert_eq!(cut("héllo wörld", 5).chars().count(), 5);
        assert_eq!(cut_bytes("héllo", 6), "héllo");
        let cut = cut_bytes("ééééé", 6);
        assert!(cut.len() <= 6, "{cut}");
        assert_eq!(cut, "é…");
        assert_eq!(cut_bytes("abc", 0), "…");
    }

    #[test]
    fn control_characters_do_not_pass() {
        assert_eq!(printable("a\u{1b}[31mb\nc\td"), "a\u{fffd}[31mb\nc\td");
    }
}
