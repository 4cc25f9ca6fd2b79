//! Which characters outside text must not be shown as they are: one rule for terminals (the
//! CLI, the server's log, escaped there) and chat messages (Slack, Jira, replaced there).

/// Whether `c` must not be shown as it is: controls (C0, DEL, C1) and the characters that
/// change how text around them is shown without being seen themselves.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'                      // soft hyphen
            | '\u{061c}'                    // Arabic letter mark
            | '\u{180e}'                    // Mongolian vowel separator
            | '\u{200b}'..='\u{200f}'       // zero-width space, joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}'       // line and paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{206f}'       // word joiner, invisible operators, bidi isolates
            | '\u{feff}'                    // byte-order mark, zero-width no-break space
            | '\u{fff9}'..='\u{fffb}'       // interlinear annotations
            | '\u{e0000}'..='\u{e007f}' // tag characters
        )
}
