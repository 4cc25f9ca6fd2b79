//! Playbooks' messages (`notify.send`): queued in the notifications' outbox, durably and under
//! the change's idempotency key, then delivered by the Slack delivery loop like every other
//! notification (retries, pacing, `/v1/notifications`). The run does not wait for Slack.

use async_trait::async_trait;
use grace_executor::notify::Message;
use grace_executor::{ExecError, NotifyExecutor};
use grace_notify::{Notice, NoticeKind};

use crate::store::outbox::NewNotification;
use crate::store::{Store, StoreError};

/// What `/v1/notifications` shows as the route of a playbook's message.
pub const ROUTE: &str = crate::store::outbox::MESSAGE_ROUTE;

/// The most playbooks' messages waiting for Slack at once; past it, sending is refused
/// (`unavailable`) until some are delivered, so that runs posting often cannot grow the
/// outbox without bound. They wait in a lane of their own, behind the host's own notices
/// (`store::outbox::lane_of`).
pub const MAX_PENDING_MESSAGES: usize = 1_000;

/// The outbox, as the runs' message queue.
pub struct OutboxMessages {
    store: Store,
    public_url: Option<String>,
    /// `outbox@<replica>`: in a cluster each replica's outbox is its own.
    name: String,
}

impl OutboxMessages {
    /// Queues into `store`; messages link to runs under `public_url`; `replica` names this
    /// host in a cluster.
    pub fn new(store: Store, public_url: Option<String>, replica: Option<String>) -> Self {
        OutboxMessages {
            store,
            public_url,
            name: format!("outbox@{}", replica.as_deref().unwrap_or("local")),
        }
    }

    fn notice(&self, message: &Message, at: u64) -> Notice {
        Notice {
            kind: NoticeKind::Message,
            run_id: message.run_id.clone(),
            playbook: message.playbook.clone(),
            resource: message.resource.clone(),
            event_type: String::new(),
            incident: None,
            outcome: None,
            approval: None,
            link: self
                .public_url
                .as_deref()
                .map(|base| format!("{}/runs/{}", base.trim_end_matches('/'), message.run_id)),
            at,
            message: Some(message.text.clone()),
        }
    }
}

fn unavailable(e: StoreError) -> ExecError {
    ExecError::Unavailable(format!("the message could not be queued: {e}"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ExecError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ExecError::Other(format!("a storage task failed: {e}")))?
        .map_err(unavailable)
}

#[async_trait]
impl NotifyExecutor for OutboxMessages {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn send(&self, message: &Message) -> Result<u64, ExecError> {
        // The engine checked the channel; a record that reaches the outbox parses again when
        // it is delivered, so a bad one here would only fail later. Refuse it now.
        message.channel().map_err(ExecError::InvalidArgument)?;
        let now = grace_engine::event::system_now_millis();
        let made = NewNotification {
            route: ROUTE.to_owned(),
            channel: message.channel.clone(),
            notice: self.notice(message, now),
        };
        let (store, key) = (self.store.clone(), message.key.clone());
        match blocking(move || store.enqueue_message(&key, made, now, MAX_PENDING_MESSAGES)).await?
        {
            Some(id) => Ok(id),
            None => Err(ExecError::Unavailable(format!(
                "{MAX_PENDING_MESSAGES} playbooks' messages are waiting for Slack already: this one is not queued"
            ))),
        }
    }

    async fn sent(&self, key: &str) -> Result<Option<u64>, ExecError> {
        let (store, key) = (self.store.clone(), key.to_owned());
        blocking(move || store.message_id(&key)).await
    }
}
