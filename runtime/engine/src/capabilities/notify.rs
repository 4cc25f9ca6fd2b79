//! `notify`: a playbook's messages to the team, on the channels `[grants.notify]` lists, within
//! its messages and bytes per run.
//!
//! The arguments are checked first: the channel by [`Channel::parse`] (the one parser of
//! channels, the grant's and the host's), the text for length (1 to
//! [`MAX_MESSAGE_BYTES`]). Then the grant: the exact channel, and the run's budget. The trust
//! core decides on the channel as a `Grace::Channel`. Sending is a change: the host queues the
//! message under the change's idempotency key, so a retried run does not post it twice, and a
//! send whose outcome is unknown is read back from the queue by that key.

use grace_executor::notify::Message;
use grace_executor::{ExecError, NotifyExecutor, Reconciled};
use grace_model::capability;
use grace_model::channel::Channel;
use grace_model::grants::{MAX_MESSAGE_BYTES, NotifyGrant};
use grace_model::resource::{Change, Resource, State};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::bindings::notify::Host;
use crate::bindings::types::Error;
use crate::grants::not_granted;
use crate::host::HostState;
use crate::pipeline::{Call, Planned, Refusal, Scope, check_text, preview};
use crate::trust::Proposal;

fn grant(scope: &Scope) -> Result<&NotifyGrant, Refusal> {
    scope
        .grants
        .notify
        .as_ref()
        .ok_or_else(|| not_granted("notify", &scope.guest).into())
}

/// The text, by length; `Invalid` names the argument.
fn check_message(text: &str) -> Result<(), Refusal> {
    if text.is_empty() {
        return Err(Refusal::Invalid("`text` is empty".into()));
    }
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(Refusal::Invalid(format!(
            "`text` is {} bytes, above the limit of {MAX_MESSAGE_BYTES} for one message",
            text.len()
        )));
    }
    Ok(())
}

/// The arguments as recorded: the whole text when it is within one message's limit (it is what
/// the team was told), else a preview.
fn args(channel: &str, text: &str) -> Value {
    let recorded = if text.len() <= MAX_MESSAGE_BYTES {
        Value::String(text.to_owned())
    } else {
        preview(text)
    };
    json!({ "channel": preview(channel), "text": recorded, "bytes": text.len() })
}

impl Host for HostState {
    async fn send(
        &mut self,
        channel: String,
        text: String,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let queue = self.run.executors.notify.clone();
        let mut call = Call::change(
            &capability::notify::SEND,
            preview(&channel).as_str().unwrap_or_default(),
            args(&channel, &text),
        );
        // The queue is the call's provider: only the queue a message may have gone into can
        // say whether it did (in a cluster, each replica's outbox is its own).
        if let Some(queue) = &queue {
            call = call.provided_by(queue.name());
        }
        let sent_bytes = self.run.notify_bytes.clone();
        let bytes = text.len();
        let message = Message {
            run_id: self.run.run_id.clone(),
            playbook: self.run.guest.name.clone(),
            resource: self
                .run
                .event
                .as_ref()
                .map(|e| e.resource.clone())
                .unwrap_or_default(),
            channel: String::new(),
            text,
            key: String::new(),
        };
        self.run
            .perform_change(
                call,
                move |scope| async move {
                    // Every argument is checked before the grant: a malformed channel or text
                    // is invalid even where nothing is granted.
                    check_text("channel", &channel)?;
                    let parsed = Channel::parse(&channel).map_err(Refusal::Invalid)?;
                    check_message(&message.text)?;
                    let grant = grant(&scope)?;
                    grant.check_channel(&parsed)?;
                    // A message an earlier attempt of the run queued (or may have) was within
                    // the budget then, and is counted in it already.
                    if !scope.replaying {
                        grant.check_budget(
                            scope.changes,
                            sent_bytes.load(Ordering::SeqCst),
                            bytes,
                        )?;
                    }
                    let queue: Arc<dyn NotifyExecutor> = queue.ok_or_else(|| {
                        Refusal::Failed(ExecError::Unavailable(
                            "this host sends no messages (no [integrations.slack])".into(),
                        ))
                    })?;
                    let key = scope.key.clone().ok_or_else(|| {
                        Refusal::Failed(ExecError::Other("a change without a key".into()))
                    })?;
                    let proposal = Proposal {
                        resource: Resource::channel(&parsed),
                        state: State::default(),
                        change: Change::None,
                    };
                    let message = Message {
                        channel: parsed.name(),
                        key,
                        ..message
                    };
                    Ok(Planned::new((queue, message, sent_bytes), proposal))
                },
                |(queue, message, _), _| {
                    let (queue, key) = (queue.clone(), message.key.clone());
                    async move {
                        Ok(match queue.sent(&key).await? {
                            Some(id) => Reconciled::Done(id),
                            None => Reconciled::NotApplied,
                        })
                    }
                },
                |scope, (queue, message, sent_bytes)| async move {
                    // Counted before it is queued: a message whose queuing times out may be
                    // queued all the same. One an earlier attempt began is counted already.
                    if scope.earlier.is_none() {
                        sent_bytes.fetch_add(bytes as u64, Ordering::SeqCst);
                    }
                    queue.send(&message).await
                },
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_one_to_three_thousand_bytes() {
        assert!(matches!(check_message(""), Err(Refusal::Invalid(m)) if m.contains("`text`")));
        assert!(check_message("x").is_ok());
        assert!(check_message(&"é".repeat(MAX_MESSAGE_BYTES / 2)).is_ok());
        assert!(
            matches!(check_message(&"x".repeat(MAX_MESSAGE_BYTES + 1)), Err(Refusal::Invalid(m)) if m.contains("3000"))
        );
    }

    #[test]
    fn the_ledger_keeps_the_whole_message_and_only_a_preview_of_a_refused_one() {
        assert_eq!(args("slack:#ops", "hi")["text"], "hi");
        let long = "x".repeat(MAX_MESSAGE_BYTES + 1);
        let recorded = args("slack:#ops", &long);
        assert!(recorded["text"].as_str().unwrap().len() < 400);
        assert_eq!(recorded["bytes"], MAX_MESSAGE_BYTES + 1);
    }
}
