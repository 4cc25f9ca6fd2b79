//! Globs compiled for matching: the semantics of [`grace_model::glob::Glob`] (`*` matches any
//! run of characters, everything else is literal), split into parts once, so that matching an
//! event allocates nothing. The mesh matches every event against many globs; `Glob::matches`
//! splits its pattern on each call.

use grace_model::glob::Glob;

/// A glob split at its `*`s, with the common shapes recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// `*`.
    Any,
    /// No `*`.
    Literal(String),
    /// `text*`.
    Prefix(String),
    /// `*text`.
    Suffix(String),
    /// Anything else: the text before the first `*`, the parts between, the text after the last.
    General {
        first: String,
        middle: Vec<String>,
        last: String,
    },
}

impl Pattern {
    pub(crate) fn new(glob: &Glob) -> Pattern {
        let mut parts = glob.as_str().split('*');
        let first = parts.next().unwrap_or("").to_owned();
        let rest: Vec<&str> = parts.collect();
        match rest.as_slice() {
            [] => Pattern::Literal(first),
            [""] if first.is_empty() => Pattern::Any,
            [""] => Pattern::Prefix(first),
            [last] if first.is_empty() => Pattern::Suffix((*last).to_owned()),
            [middle @ .., last] => Pattern::General {
                first,
                middle: middle.iter().map(|p| (*p).to_owned()).collect(),
                last: (*last).to_owned(),
            },
        }
    }

    /// The text the pattern matches, when it has no `*`.
    pub(crate) fn literal(&self) -> Option<&str> {
        match self {
            Pattern::Literal(text) => Some(text),
            _ => None,
        }
    }

    /// Whether `text` matches the whole pattern (exactly as `Glob::matches`).
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Literal(literal) => text == literal,
            Pattern::Prefix(prefix) => text.starts_with(prefix.as_str()),
            Pattern::Suffix(suffix) => text.ends_with(suffix.as_str()),
            Pattern::General {
                first,
                middle,
                last,
            } => {
                let Some(mut rest) = text.strip_prefix(first.as_str()) else {
                    return false;
                };
                for part in middle {
                    match rest.find(part.as_str()) {
                        Some(at) => rest = &rest[at + part.len()..],
                        None => return false,
                    }
                }
                rest.len() >= last.len() && rest.ends_with(last.as_str())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_patterns_match_exactly_like_globs() {
        let patterns = [
            "",
            "*",
            "**",
            "a",
            "a*",
            "*a",
            "*a*",
            "a*b",
            "a*b*c",
            "a*a",
            "metrics.*",
            "*.latency",
            "api-*-prod",
            "x**y",
            "*-*",
        ];
        let texts = [
            "",
            "a",
            "aa",
            "ab",
            "abc",
            "a-x-b-y-c",
            "a-x-c-y-b",
            "metrics.latency",
            "metrics.",
            "metrics",
            "db.latency",
            ".latency",
            "api-1-prod",
            "api--prod",
            "api-prod",
            "xy",
            "x-y",
            "-",
            "é*",
        ];
        for p in patterns {
            let glob = Glob::new(p);
            let compiled = Pattern::new(&glob);
            assert_eq!(compiled.literal().is_some(), !p.contains('*'), "{p}");
            for t in texts {
                assert_eq!(compiled.matches(t), glob.matches(t), "`{p}` on `{t}`");
            }
        }
    }
}
