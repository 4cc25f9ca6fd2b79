//! Messages to the team, on Slack.
//!
//! Needs `[grants.notify]` in the manifest: the exact channels a playbook may post to, and how
//! many messages and bytes of text per run (`docs/manifest.md`). The trust core decides each
//! message on its channel (`Grace::Action::"notify::Send"` on `Grace::Channel::"slack:#ops"`).
//!
//! The host queues the message and delivers it after the call returns, retrying as Slack asks:
//! a slow or failing Slack never holds the run up, and [`send`] answers the notification's id
//! (`grace notifications show <id>` tells how delivery went). Text is shown as written: `<`,
//! `>` and `&` are escaped, so a message can neither mention (`<!channel>`) nor link. A retried
//! run (after an approval) does not post again what an earlier attempt posted. Dry runs keep
//! the messages and send nothing.
//!
//! ```no_run
//! use grace_sdk::notify;
//!
//! notify::send("slack:#ops", "Rolling back web: p95 doubled after deploy 4f2c1e")?;
//! # Ok::<(), grace_sdk::Error>(())
//! ```

use crate::bindings::playbook::grace::playbook::notify as wit;
use crate::{Error, Result};

/// Posts `text` (1 to 3,000 bytes) to `channel` (`slack:#ops` or `slack:C0123ABCD`); answers
/// the notification's id.
pub fn send(channel: &str, text: &str) -> Result<u64> {
    wit::send(channel, text).map_err(Error::from_host)
}
