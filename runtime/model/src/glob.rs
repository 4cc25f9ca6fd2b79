//! The glob patterns GRACE matches names with, in manifests' grants, in guardrails and in
//! provider routes: `*` matches any run of characters (including none), everything else is
//! literal. One implementation, so that a pattern means the same wherever it is written.
//!
//! Deliberately tiny: grants name groups, namespaces and label values (metrics grants match them
//! on parsed PromQL, see [`crate::promql_grant`]), which may hold characters that would be syntax
//! in a richer glob language. A pattern that means something surprising is
//! worse than one that cannot express everything.

use std::fmt;

/// Whether `text` matches the whole of `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    // `split` always yields at least one part.
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: the pattern is a literal.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A parsed glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
}

impl Glob {
    /// Parses a pattern; every string is a valid pattern.
    pub fn new(pattern: impl Into<String>) -> Self {
        Glob {
            pattern: pattern.into(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        matches(&self.pattern, text)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// Renders a list of globs for error messages: `a`, `b*`.
pub(crate) fn list(globs: &[Glob]) -> String {
    globs
        .iter()
        .map(|g| format!("`{g}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(Glob::new("api-asg").matches("api-asg"));
        assert!(!Glob::new("api-asg").matches("api-asg2"));
        assert!(!Glob::new("api-asg").matches("api"));
    }

    #[test]
    fn star_matches_any_run_including_none() {
        let g = Glob::new("api-*");
        assert!(g.matches("api-"));
        assert!(g.matches("api-asg"));
        assert!(!g.matches("batch-asg"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a*b*c").matches("abc"));
        assert!(Glob::new("a*b*c").matches("a-x-b-y-c"));
        assert!(!Glob::new("a*b*c").matches("a-x-c-y-b"));
        assert!(!Glob::new("a*a").matches("a"));
    }

    #[test]
    fn promql_syntax_is_literal() {
        let g = Glob::new(r#"service_latency_p95_ms{service="*"}"#);
        assert!(g.matches(r#"service_latency_p95_ms{service="api-service"}"#));
        assert!(!g.matches(r#"service_load_rps{service="api-service"}"#));
        let exact = Glob::new("rate(x[1m])");
        assert!(exact.matches("rate(x[1m])"));
        assert!(!exact.matches("rate(x[5m])"));
    }
}
