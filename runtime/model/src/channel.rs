//! Where a notification goes: `slack:<channel>`, `pagerduty` or `jira`.
//!
//! One parser for every place a channel is written: the server's `[[notify]]` routes, a
//! playbook's `[grants.notify]` allow-list and the channel a playbook names in `notify.send`.
//! What the grant check compares is the channel as parsed here, and that is exactly what the
//! host delivers to.

use std::fmt;

/// Longest Slack channel name (Slack's own limit is 80 characters).
const MAX_SLACK_NAME: usize = 80;
/// Longest Slack channel id.
const MAX_SLACK_ID: usize = 32;

/// A notification channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// A Slack channel: its id (`C0123ABCD`) or its name (`#ops`).
    Slack(String),
    /// The PagerDuty service of the configured routing key.
    PagerDuty,
    /// The configured Jira project.
    Jira,
}

impl Channel {
    /// Parses `slack:<channel>`, `pagerduty` or `jira`; the error says which forms exist.
    pub fn parse(text: &str) -> Result<Channel, String> {
        match text {
            "pagerduty" => Ok(Channel::PagerDuty),
            "jira" => Ok(Channel::Jira),
            other => match other.strip_prefix("slack:") {
                Some(channel) => {
                    validate_slack_channel(channel)?;
                    Ok(Channel::Slack(channel.to_owned()))
                }
                None => Err(format!(
                    "`{}` is not a channel: `slack:<channel>`, `pagerduty` or `jira`",
                    shown(other)
                )),
            },
        }
    }

    /// As written: `slack:#ops`, `pagerduty`, `jira`.
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// The vendor: `slack`, `pagerduty`, `jira`.
    pub fn vendor(&self) -> &'static str {
        match self {
            Channel::Slack(_) => "slack",
            Channel::PagerDuty => "pagerduty",
            Channel::Jira => "jira",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Slack(c) => write!(f, "slack:{c}"),
            Channel::PagerDuty => f.write_str("pagerduty"),
            Channel::Jira => f.write_str("jira"),
        }
    }
}

/// A Slack channel id (`C0123ABCD`: `C`, `G` or `D` then capitals and digits) or name (`#ops`:
/// lowercase letters, digits, `-`, `_`, `.`, as Slack allows, with or without the `#`).
/// Nothing else reaches Slack: no spaces, no `<!channel>`, no path.
pub fn validate_slack_channel(channel: &str) -> Result<(), String> {
    let name = channel.strip_prefix('#').unwrap_or(channel);
    let is_id = (3..=MAX_SLACK_ID).contains(&channel.len())
        && channel.starts_with(['C', 'G', 'D'])
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let is_name = !name.is_empty()
        && name.len() <= MAX_SLACK_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if is_id || is_name {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a Slack channel id (C0123ABCD) or name (#ops)",
            shown(channel)
        ))
    }
}

/// Outside text in an error: escaped, and at most 100 characters of it.
fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(100).collect::<String>();
    if out.len() < text.len() {
        out.push('…');
    }
    out.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_parse_and_print_as_written() {
        for text in [
            "slack:#ops",
            "slack:C0123ABCD",
            "slack:ops-alerts",
            "pagerduty",
            "jira",
        ] {
            assert_eq!(Channel::parse(text).unwrap().name(), text);
        }
        assert_eq!(Channel::parse("slack:#ops").unwrap().vendor(), "slack");
    }

    #[test]
    fn anything_else_is_refused_saying_what_a_channel_is() {
        for bad in [
            "",
            "slack:",
            "slack:#",
            "slack:Ops",
            "slack:ops alerts",
            "slack:#ops\n",
            "slack:<!channel>",
            "slack:C",
            "slack:x/../y",
            "email:ops@example.com",
            "Slack:#ops",
            "pagerduty ",
        ] {
            let e = Channel::parse(bad).unwrap_err();
            assert!(e.contains("channel"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn refused_text_is_escaped_and_shortened() {
        let e = Channel::parse(&format!("x\u{1b}[31m{}", "y".repeat(500))).unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e}");
        assert!(e.len() < 250, "{e}");
    }
}
