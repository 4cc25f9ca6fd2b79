//! The `notify` capability's executor: queues a playbook's message for delivery.
//!
//! Like the graph and the anomaly reader there is one per host, not a provider per resource:
//! the host's `[integrations]` say where Slack is. Sending queues the message durably and
//! returns; the host delivers it afterwards, with its retries and pacing, so a slow or failing
//! vendor never holds a run up. Queuing is idempotent by the change's key: a retried run that
//! asks again for a message an earlier attempt queued gets that message's id, and nothing is
//! posted twice.
//!
//! Simulated fleets (dry runs, replays, and `grace serve --simulate` without Slack) keep their
//! messages in a [`DryRunMessages`] instead: nothing leaves the host.

use std::sync::Mutex;

use grace_model::channel::Channel;
use serde::{Deserialize, Serialize};

use crate::ExecError;

/// A message a playbook asked to post, as checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The run.
    pub run_id: String,
    /// The playbook.
    pub playbook: String,
    /// The resource of the event the run responds to.
    pub resource: String,
    /// The channel, as granted.
    pub channel: String,
    /// The text, as the guest wrote it (escaped when rendered).
    pub text: String,
    /// The change's idempotency key.
    pub key: String,
}

impl Message {
    /// The channel, parsed.
    pub fn channel(&self) -> Result<Channel, String> {
        Channel::parse(&self.channel)
    }
}

/// Queues messages for delivery.
#[async_trait::async_trait]
pub trait NotifyExecutor: Send + Sync {
    /// The queue's name, recorded as the provider of every message queued into it: only this
    /// queue can say whether a message whose outcome is unknown went in (`outbox@<host>`).
    fn name(&self) -> String;

    /// Queues `message` and answers its notification's id. A message with a key already queued
    /// is not queued again: the answer is the first one's id.
    async fn send(&self, message: &Message) -> Result<u64, ExecError>;

    /// The id of the message queued under `key`, if one was: what an earlier attempt whose
    /// outcome is unknown did.
    async fn sent(&self, key: &str) -> Result<Option<u64>, ExecError>;
}

/// The most messages a [`DryRunMessages`] keeps; beyond, sending is refused as a real queue
/// that is full would be.
pub const MAX_DRY_RUN_MESSAGES: usize = 1_000;

/// Where dry runs' messages go: kept in memory, in order, never sent.
#[derive(Debug, Default)]
pub struct DryRunMessages {
    kept: Mutex<Vec<Message>>,
}

impl DryRunMessages {
    /// The messages kept so far, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.kept.lock().map(|k| k.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl NotifyExecutor for DryRunMessages {
    fn name(&self) -> String {
        "dry-run".to_owned()
    }

    async fn send(&self, message: &Message) -> Result<u64, ExecError> {
        let mut kept = self
            .kept
            .lock()
            .map_err(|_| ExecError::Other("the dry run's messages are unreadable".into()))?;
        if let Some(i) = kept.iter().position(|m| m.key == message.key) {
            return Ok(i as u64 + 1);
        }
        if kept.len() >= MAX_DRY_RUN_MESSAGES {
            return Err(ExecError::Unavailable(format!(
                "the dry run keeps at most {MAX_DRY_RUN_MESSAGES} messages"
            )));
        }
        kept.push(message.clone());
        Ok(kept.len() as u64)
    }

    async fn sent(&self, key: &str) -> Result<Option<u64>, ExecError> {
        let kept = self
            .kept
            .lock()
            .map_err(|_| ExecError::Other("the dry run's messages are unreadable".into()))?;
        Ok(kept.iter().position(|m| m.key == key).map(|i| i as u64 + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(key: &str) -> Message {
        Message {
            run_id: "r1".into(),
            playbook: "p".into(),
            resource: "web".into(),
            channel: "slack:#ops".into(),
            text: "hello".into(),
            key: key.into(),
        }
    }

    #[tokio::test]
    async fn a_dry_run_keeps_each_message_once_by_its_key() {
        let kept = DryRunMessages::default();
        assert_eq!(kept.send(&message("a")).await.unwrap(), 1);
        assert_eq!(kept.send(&message("b")).await.unwrap(), 2);
        assert_eq!(kept.send(&message("a")).await.unwrap(), 1);
        assert_eq!(kept.sent("b").await.unwrap(), Some(2));
        assert_eq!(kept.sent("c").await.unwrap(), None);
        assert_eq!(kept.messages().len(), 2);
    }
}
