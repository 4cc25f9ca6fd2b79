//! `[grants.notify]`: messages from the playbook to the team, on the channels listed, within a
//! budget per run.
//!
//! ```toml
//! [grants.notify]
//! channels = ["slack:#ops", "slack:C0123ABCD"]   # exactly these channels
//! max_messages = 5                              # per run; default 5, at most 100
//! max_bytes = 4000                              # of text per run; default 4000, at most 65536
//! ```
//!
//! Channels are an allow-list of exact names (no globs: a message reaches people, and a glob
//! over channel names would reach channels created after the grant was reviewed). Playbooks
//! post to Slack; PagerDuty and Jira are told of runs by the host's own `[[notify]]` routes.

use serde::Deserialize;

use super::{Denial, deny};
use crate::channel::Channel;
use crate::manifest::ManifestError;

/// Most messages per run any grant allows.
pub const MAX_MESSAGES: u32 = 100;
/// Most bytes of text per run any grant allows.
pub const MAX_BYTES: u32 = 65_536;
/// Messages per run when the grant does not say.
pub const DEFAULT_MESSAGES: u32 = 5;
/// Bytes per run when the grant does not say.
pub const DEFAULT_BYTES: u32 = 4_000;
/// Longest message: what one Slack section block holds (3,000 characters).
pub const MAX_MESSAGE_BYTES: usize = 3_000;

/// Which channels a guest may post to, and how much per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyGrant {
    /// The channels, parsed, sorted and without repeats.
    pub channels: Vec<Channel>,
    /// Messages per run.
    pub max_messages: u32,
    /// Bytes of text per run, over all messages.
    pub max_bytes: u32,
}

impl NotifyGrant {
    /// May the guest post to `channel`?
    pub fn check_channel(&self, channel: &Channel) -> Result<(), Denial> {
        if self.channels.contains(channel) {
            return Ok(());
        }
        deny(format!(
            "channel `{channel}` is not granted (granted: {})",
            self.channels
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// May the guest post one more message of `bytes`, having posted `sent` messages of
    /// `sent_bytes` in this run?
    pub fn check_budget(&self, sent: u32, sent_bytes: u64, bytes: usize) -> Result<(), Denial> {
        if sent >= self.max_messages {
            return deny(format!(
                "notify.send was already called {sent} time(s) in this run; the grant allows {} (max_messages)",
                self.max_messages
            ));
        }
        let total = sent_bytes.saturating_add(bytes as u64);
        if total > u64::from(self.max_bytes) {
            return deny(format!(
                "this message of {bytes} bytes would bring the run's messages to {total} bytes; the grant allows {} (max_bytes)",
                self.max_bytes
            ));
        }
        Ok(())
    }
}

/// `[grants.notify]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    channels: Vec<String>,
    max_messages: Option<u32>,
    max_bytes: Option<u32>,
}

impl RawNotify {
    /// The typed grant, or the first field that is out of range.
    pub(super) fn validate(self) -> Result<NotifyGrant, ManifestError> {
        if self.channels.is_empty() {
            return Err(ManifestError::invalid(
                "grants.notify.channels",
                "must not be empty (an empty list grants nothing; remove the table to deny the capability)",
            ));
        }
        let mut channels = Vec::with_capacity(self.channels.len());
        for (i, text) in self.channels.iter().enumerate() {
            let field = || format!("grants.notify.channels[{i}]");
            let channel = Channel::parse(text).map_err(|m| ManifestError::invalid(field(), m))?;
            if !matches!(channel, Channel::Slack(_)) {
                return Err(ManifestError::invalid(
                    field(),
                    format!(
                        "playbooks post to Slack channels (`slack:<channel>`); `{channel}` is told of runs by the host's [[notify]] routes"
                    ),
                ));
            }
            channels.push(channel);
        }
        channels.sort();
        channels.dedup();
        let max_messages = self.max_messages.unwrap_or(DEFAULT_MESSAGES);
        if !(1..=MAX_MESSAGES).contains(&max_messages) {
            return Err(ManifestError::invalid(
                "grants.notify.max_messages",
                format!("must be within 1..={MAX_MESSAGES}"),
            ));
        }
        let max_bytes = self.max_bytes.unwrap_or(DEFAULT_BYTES);
        if !(1..=MAX_BYTES).contains(&max_bytes) {
            return Err(ManifestError::invalid(
                "grants.notify.max_bytes",
                format!("must be within 1..={MAX_BYTES}"),
            ));
        }
        Ok(NotifyGrant {
            channels,
            max_messages,
            max_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::manifest;
    use super::*;

    fn grant(table: &str) -> NotifyGrant {
        manifest(&format!("[grants.notify]\n{table}"))
            .unwrap()
            .grants
            .notify
            .unwrap()
    }

    #[test]
    fn only_the_listed_channels_are_granted() {
        let g = grant("channels = [\"slack:#ops\", \"slack:C0123ABCD\", \"slack:#ops\"]\n");
        assert_eq!(g.channels.len(), 2);
        assert!(
            g.check_channel(&Channel::parse("slack:#ops").unwrap())
                .is_ok()
        );
        assert!(
            g.check_channel(&Channel::parse("slack:C0123ABCD").unwrap())
                .is_ok()
        );
        let e = g
            .check_channel(&Channel::parse("slack:#ops-private").unwrap())
            .unwrap_err();
        assert!(e.0.contains("`slack:#ops-private` is not granted"), "{e}");
        // The name without `#` is another channel as far as the grant is concerned.
        assert!(
            g.check_channel(&Channel::parse("slack:ops").unwrap())
                .is_err()
        );
    }

    #[test]
    fn the_budget_counts_messages_and_bytes_per_run() {
        let g = grant("channels = [\"slack:#ops\"]\nmax_messages = 2\nmax_bytes = 10\n");
        assert!(g.check_budget(0, 0, 10).is_ok());
        assert!(g.check_budget(1, 4, 6).is_ok());
        let e = g.check_budget(1, 4, 7).unwrap_err();
        assert!(e.0.contains("max_bytes"), "{e}");
        let e = g.check_budget(2, 0, 1).unwrap_err();
        assert!(e.0.contains("max_messages"), "{e}");
        let d = grant("channels = [\"slack:#ops\"]\n");
        assert_eq!(
            (d.max_messages, d.max_bytes),
            (DEFAULT_MESSAGES, DEFAULT_BYTES)
        );
    }

    #[test]
    fn bad_notify_grants_name_their_field() {
        for (table, field) in [
            ("channels = []\n", "grants.notify.channels"),
            ("channels = [\"#ops\"]\n", "grants.notify.channels[0]"),
            (
                "channels = [\"slack:#ops\", \"slack:<!here>\"]\n",
                "grants.notify.channels[1]",
            ),
            ("channels = [\"slack:#*\"]\n", "grants.notify.channels[0]"),
            ("channels = [\"pagerduty\"]\n", "grants.notify.channels[0]"),
            (
                "channels = [\"slack:#ops\"]\nmax_messages = 0\n",
                "grants.notify.max_messages",
            ),
            (
                "channels = [\"slack:#ops\"]\nmax_messages = 101\n",
                "grants.notify.max_messages",
            ),
            (
                "channels = [\"slack:#ops\"]\nmax_bytes = 0\n",
                "grants.notify.max_bytes",
            ),
            (
                "channels = [\"slack:#ops\"]\nmax_bytes = 65537\n",
                "grants.notify.max_bytes",
            ),
            (
                "channels = [\"slack:#ops\"]\nbytes = 1\n",
                "unknown field `bytes`",
            ),
        ] {
            let e = manifest(&format!("[grants.notify]\n{table}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{table}: {e}");
        }
    }
}
