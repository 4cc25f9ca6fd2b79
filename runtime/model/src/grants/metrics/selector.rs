//! One selector against the granted series: its metric name, the matchers on constrained labels
//! (equality, or `=~` over a list of literal values where the entry allows it), and the text a
//! denial shows for it.

use std::fmt::Write as _;

use promql_parser::label::{METRIC_NAME, MatchOp, Matcher};
use promql_parser::parser::VectorSelector;

use super::{SeriesGrant, shorten};

/// The selector as the guest wrote it, without modifiers: what denials name.
pub(super) fn selector_text(vs: &VectorSelector) -> String {
    let mut text = vs.name.clone().unwrap_or_default();
    let matchers: Vec<String> = vs
        .matchers
        .matchers
        .iter()
        .filter(|m| {
            !(m.name == METRIC_NAME
                && m.op == MatchOp::Equal
                && vs.name.as_deref() == Some(m.value.as_str()))
        })
        .map(|m| m.to_string())
        .collect();
    if !matchers.is_empty() || vs.name.is_none() {
        let _ = write!(text, "{{{}}}", matchers.join(", "));
    }
    shorten(&text, 200)
}

/// The selector's one metric name, from its name or `__name__` equality matchers.
pub(super) fn metric_name(vs: &VectorSelector) -> Result<&str, String> {
    let mut name = vs.name.as_deref();
    for m in vs
        .matchers
        .matchers
        .iter()
        .filter(|m| m.name == METRIC_NAME)
    {
        if m.op != MatchOp::Equal {
            return Err(format!(
                "`{METRIC_NAME}` may only be matched with `=` (a regex or negative matcher could select any metric)"
            ));
        }
        match name {
            Some(n) if n != m.value => {
                return Err("it names two different metrics".into());
            }
            _ => name = Some(&m.value),
        }
    }
    match name {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err("it names no metric".into()),
    }
}

impl SeriesGrant {
    /// Do these matchers keep the selection within this entry's labels?
    pub(super) fn admits(&self, matchers: &[Matcher]) -> Result<(), String> {
        for (label, glob) in &self.labels {
            let mut pinned = false;
            for m in matchers.iter().filter(|m| &m.name == label) {
                let values = match &m.op {
                    MatchOp::Equal => vec![m.value.clone()],
                    MatchOp::Re(_) if self.regex => literal_alternatives(&m.value).ok_or_else(|| {
                        format!(
                            "label `{label}` may only be matched with `=`, or `=~` with a list of literal values like `a|b`"
                        )
                    })?,
                    MatchOp::Re(_) | MatchOp::NotEqual | MatchOp::NotRe(_) => {
                        return Err(format!(
                            "label `{label}` may only be matched with `=` (a regex or negative matcher could select values outside the grant)"
                        ));
                    }
                };
                for value in values {
                    if value.is_empty() {
                        return Err(format!(
                            "label `{label}` must not be matched to the empty value (it selects series without the label)"
                        ));
                    }
                    if !glob.matches(&value) {
                        return Err(format!(
                            "label `{label}` value `{}` is not granted (granted: `{glob}`)",
                            shorten(&value, 100)
                        ));
                    }
                }
                pinned = true;
            }
            if !pinned {
                return Err(format!(
                    "label `{label}` must be matched with `=` to a value matching `{glob}`"
                ));
            }
        }
        Ok(())
    }
}

/// The literal values of a regex that is only a list of them (`a|b|c`, with metacharacters
/// escaped), or `None` for anything richer. Prometheus anchors label regexes, so such a regex
/// matches exactly these values.
pub(super) fn literal_alternatives(pattern: &str) -> Option<Vec<String>> {
    const META: &str = "\\.+*?()|[]{}^$";
    let mut values = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '|' => values.push(String::new()),
            '\\' => {
                let escaped = chars.next()?;
                if !META.contains(escaped) {
                    return None;
                }
                values.last_mut()?.push(escaped);
            }
            c if META.contains(c) => return None,
            c => values.last_mut()?.push(c),
        }
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_alternatives_are_only_lists_of_literals() {
        assert_eq!(
            literal_alternatives(r"a|b\.c|d-e"),
            Some(vec!["a".into(), "b.c".into(), "d-e".into()])
        );
        assert_eq!(
            literal_alternatives("a|"),
            Some(vec!["a".into(), String::new()])
        );
        for rich in [
            ".*", "a.b", "(a)", "a+", "[ab]", r"\d", "^a", "a$", "a{2}", r"\",
        ] {
            assert_eq!(literal_alternatives(rich), None, "{rich}");
        }
    }
}
