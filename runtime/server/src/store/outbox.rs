//! The notifications' durable outbox.
//!
//! A run's change of state is recorded in [`RUN_TRANSITIONS`] in the very transaction that
//! stores the run (see [`super::run_index::index`]): a run the API has shown as waiting for
//! approval, or finished, cannot miss its notification, even across `kill -9`. The notifier
//! (`crate::notify`) reads the transitions, turns each into the notifications its routes ask
//! for, and stores those while deleting the transitions, in one transaction; then it delivers
//! them, keeping each one's state ([`NotificationRecord`]) for `/v1/notifications`.
//!
//! Everything here is bounded: transitions are consumed as they come (and at most
//! [`MAX_TRANSITIONS`] wait, the oldest dropped beyond, counted); finished notifications beyond
//! [`MAX_NOTIFICATIONS`] are pruned oldest first; a vendor's thread of one run or incident
//! (the Slack message, the Jira issue) beyond [`MAX_THREADS`] is forgotten oldest first.

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tables::META;
use super::{Store, StoreError, db, decode, encode};
use crate::runs::{RunRecord, RunState};

/// Run state changes not yet turned into notifications, by sequence number: JSON
/// [`Transition`].
pub const RUN_TRANSITIONS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("server/run_transitions");
/// Notifications by id: JSON [`NotificationRecord`].
pub const NOTIFICATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("server/notifications");
/// Pending notifications by (vendor, when they are due, id): each vendor's deliveries read
/// their own, so one vendor's backlog never holds up another's.
pub const NOTIFICATIONS_DUE: TableDefinition<(&str, u64, u64), ()> =
    TableDefinition::new("server/notifications_due");
/// What a vendor holds of one run or incident, by (channel, key): the Slack message to
/// update, the Jira issue to comment on, whether PagerDuty has an incident open. JSON
/// [`Thread`].
pub const NOTIFY_THREADS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("server/notify_threads");

/// Playbooks' messages (`notify.send`) by the idempotency key of the change that queued
/// them: the notification's id. A retried run asking again for a message an earlier attempt
/// queued finds it here and queues nothing. At most [`MAX_MESSAGE_KEYS`], the oldest forgotten.
pub const MESSAGE_KEYS: TableDefinition<&str, u64> =
    TableDefinition::new("server/notify_message_keys");
/// The most message keys kept (about 10 MB): far more than are queued while a run waits to be
/// retried (at most 1,000 wait for Slack at once, and each run posts at most 100).
pub const MAX_MESSAGE_KEYS: u64 = 100_000;

/// The webhook deliveries taken, by (source, the key their signed content identifies them
/// by), valued by when (ms): a delivery is taken once, across restarts (see
/// `crate::notify::webhooks`).
pub const WEBHOOK_DELIVERIES: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("server/webhook_deliveries");
/// The most deliveries remembered; beyond, those older than [`DELIVERY_MEMORY_MS`] are
/// forgotten, then the oldest.
pub const MAX_DELIVERIES: u64 = 100_000;
/// How long a delivery is remembered at least: as long as one is taken at all (3 days old by
/// its signed time).
pub const DELIVERY_MEMORY_MS: u64 = 3 * 24 * 3600 * 1000;

/// Under [`META`]: the last transition's sequence number.
const TRANSITIONS_LAST: &str = "outbox.transitions_last";
/// Under [`META`]: the last notification's id.
const NOTIFICATIONS_LAST: &str = "outbox.notifications_last";
/// Under [`META`]: transitions dropped because the notifier was too far behind.
const TRANSITIONS_DROPPED: &str = "outbox.transitions_dropped";

/// The most transitions waiting; beyond, the oldest is dropped (and counted).
pub const MAX_TRANSITIONS: u64 = 100_000;
/// The most notifications kept; beyond, the oldest finished ones are pruned.
pub const MAX_NOTIFICATIONS: u64 = 10_000;
/// The most vendor threads kept.
pub const MAX_THREADS: u64 = 20_000;

/// A run's change of state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The run.
    pub run: String,
    /// Its state before (none for a new run).
    pub from: Option<RunState>,
    /// Its state now.
    pub to: RunState,
    /// When it was stored (wall clock, ms).
    pub at: u64,
}

/// Where a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationState {
    /// Waiting for its (next) attempt.
    Pending,
    /// The vendor took it.
    Delivered,
    /// Given up: the vendor refused it, or it kept failing.
    Failed,
}

impl NotificationState {
    /// As in the API.
    pub fn name(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Delivered => "delivered",
            NotificationState::Failed => "failed",
        }
    }

    /// Parses [`NotificationState::name`].
    pub fn parse(name: &str) -> Option<NotificationState> {
        [
            NotificationState::Pending,
            NotificationState::Delivered,
            NotificationState::Failed,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// One notification to one channel, and how its delivery went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// Its id, increasing.
    pub id: u64,
    /// The `[[notify]]` route that asked for it.
    pub route: String,
    /// Where it goes: `slack:<channel>`, `pagerduty`, `jira`.
    pub channel: String,
    /// What it says.
    pub notice: grace_notify::Notice,
    /// Where it is.
    pub state: NotificationState,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was made (wall clock, ms).
    pub created_at: u64,
    /// When its next attempt is due (while pending).
    pub next_attempt_at: u64,
    /// When it was delivered or given up.
    #[serde(default)]
    pub finished_at: Option<u64>,
    /// The last failure, bounded.
    #[serde(default)]
    pub last_error: Option<String>,
    /// What the delivery did (`posted`, `updated`, `created OPS-12`, `nothing to resolve`).
    #[serde(default)]
    pub detail: Option<String>,
}

/// A notification to make: everything but its id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// See [`NotificationRecord::route`].
    pub route: String,
    /// See [`NotificationRecord::channel`].
    pub channel: String,
    /// See [`NotificationRecord::notice`].
    pub notice: grace_notify::Notice,
}

/// What a vendor holds of one run or incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// The vendor's own reference: a Slack message (`{"channel","ts"}`), a Jira issue key, a
    /// PagerDuty `dedup_key` with whether it was triggered.
    pub value: Value,
    /// When it was last written (ms).
    pub updated_at: u64,
}

/// The vendor of a channel: `slack` for `slack:#ops`, `pagerduty`, `jira`.
pub fn vendor_of(channel: &str) -> &str {
    channel.split(':').next().unwrap_or(channel)
}

/// The route of playbooks' messages (`notify.send`), as `/v1/notifications` shows it.
pub const MESSAGE_ROUTE: &str = "notify.send";

/// The lane of the due index a notification waits in: its vendor's, or for playbooks' messages
/// the vendor's second lane (`slack.messages`), which its deliveries take only after the
/// first: however many messages playbooks queue, the host's own notices (an approval waiting)
/// go first.
pub fn lane_of(record: &NotificationRecord) -> String {
    lane(vendor_of(&record.channel), &record.route)
}

fn lane(vendor: &str, route: &str) -> String {
    if route == MESSAGE_ROUTE {
        format!("{vendor}.messages")
    } else {
        vendor.to_owned()
    }
}

/// Records `run`'s change from `from`, in the transaction that stores it. Called for every
/// change of state, and for a new run.
pub(super) fn record(
    tx: &WriteTransaction,
    run: &RunRecord,
    from: Option<RunState>,
) -> Result<(), StoreError> {
    let mut meta = tx.open_table(META).map_err(db)?;
    let seq = meta
        .get(TRANSITIONS_LAST)
        .map_err(db)?
        .map_or(0, |v| v.value())
        + 1;
    meta.insert(TRANSITIONS_LAST, seq).map_err(db)?;
    let transition = Transition {
        run: run.id.clone(),
        from,
        to: run.state,
        at: grace_engine::event::system_now_millis(),
    };
    let mut table = tx.open_table(RUN_TRANSITIONS).map_err(db)?;
    table
        .insert(seq, encode(&transition)?.as_slice())
        .map_err(db)?;
    if table.len().map_err(db)? > MAX_TRANSITIONS {
        // The notifier is far behind (or has been failing): the oldest change goes, counted,
        // so that the table cannot grow without bound.
        let oldest = table.first().map_err(db)?.map(|(k, _)| k.value());
        if let Some(oldest) = oldest {
            table.remove(oldest).map_err(db)?;
            let dropped = meta
                .get(TRANSITIONS_DROPPED)
                .map_err(db)?
                .map_or(0, |v| v.value());
            meta.insert(TRANSITIONS_DROPPED, dropped + 1).map_err(db)?;
        }
    }
    Ok(())
}

impl Store {
    /// The oldest `limit` transitions not yet turned into notifications.
    pub fn transitions(&self, limit: usize) -> Result<Vec<(u64, Transition)>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = match tx.open_table(RUN_TRANSITIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(db)?.take(limit) {
            let (k, v) = row.map_err(db)?;
            let seq = k.value();
            out.push((seq, decode("run transition", &seq.to_string(), v.value())?));
        }
        Ok(out)
    }

    /// Transitions dropped because too many waited.
    pub fn transitions_dropped(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        match tx.open_table(META) {
            Ok(meta) => Ok(meta
                .get(TRANSITIONS_DROPPED)
                .map_err(db)?
                .map_or(0, |v| v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(db(e)),
        }
    }

    /// Stores `made` as pending notifications, due `now`, and deletes the transitions through
    /// `through` they were made from, in one transaction. Prunes the oldest finished
    /// notifications beyond [`MAX_NOTIFICATIONS`].
    pub fn enqueue_notifications(
        &self,
        through: u64,
        made: Vec<NewNotification>,
        now: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let mut ids = Vec::with_capacity(made.len());
        {
            let mut transitions = tx.open_table(RUN_TRANSITIONS).map_err(db)?;
            let done: Vec<u64> = transitions
                .range(..=through)
                .map_err(db)?
                .map(|row| row.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(db)?;
            for seq in done {
                transitions.remove(seq).map_err(db)?;
            }
            let mut meta = tx.open_table(META).map_err(db)?;
            let mut last = meta
                .get(NOTIFICATIONS_LAST)
                .map_err(db)?
                .map_or(0, |v| v.value());
            let mut table = tx.open_table(NOTIFICATIONS).map_err(db)?;
            let mut due = tx.open_table(NOTIFICATIONS_DUE).map_err(db)?;
            for n in made {
                last += 1;
                insert_pending(&mut table, &mut due, last, n, now)?;
                ids.push(last);
            }
            meta.insert(NOTIFICATIONS_LAST, last).map_err(db)?;
            prune(&mut table)?;
        }
        tx.commit().map_err(db)?;
        Ok(ids)
    }

    /// Queues a playbook's message, due `now`, under its change's idempotency `key`: the id of
    /// the notification queued under `key`, made now unless one already was; `None` (nothing
    /// queued) when `max_pending` playbooks' messages already wait for their vendor.
    pub fn enqueue_message(
        &self,
        key: &str,
        made: NewNotification,
        now: u64,
        max_pending: usize,
    ) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let id = {
            let mut keys = tx.open_table(MESSAGE_KEYS).map_err(db)?;
            if let Some(id) = keys.get(key).map_err(db)?.map(|v| v.value()) {
                return Ok(Some(id));
            }
            let pending = pending_in(
                &tx,
                &lane(vendor_of(&made.channel), &made.route),
                max_pending,
            )?;
            if pending >= max_pending {
                return Ok(None);
            }
            let mut meta = tx.open_table(META).map_err(db)?;
            let id = meta
                .get(NOTIFICATIONS_LAST)
                .map_err(db)?
                .map_or(0, |v| v.value())
                + 1;
            meta.insert(NOTIFICATIONS_LAST, id).map_err(db)?;
            let mut table = tx.open_table(NOTIFICATIONS).map_err(db)?;
            let mut due = tx.open_table(NOTIFICATIONS_DUE).map_err(db)?;
            insert_pending(&mut table, &mut due, id, made, now)?;
            prune(&mut table)?;
            keys.insert(key, id).map_err(db)?;
            forget_oldest_keys(&mut keys)?;
            id
        };
        tx.commit().map_err(db)?;
        Ok(Some(id))
    }

    /// The notification queued for a playbook's message under `key`, if one was.
    pub fn message_id(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        match tx.open_table(MESSAGE_KEYS) {
            Ok(keys) => Ok(keys.get(key).map_err(db)?.map(|v| v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(db(e)),
        }
    }

    /// `vendor`'s pending notifications due at `now`, oldest due first, at most `limit`. A
    /// record that cannot be read is taken out of the due ones (and logged), so that it cannot
    /// stop every later notification.
    pub fn due_notifications(
        &self,
        vendor: &str,
        now: u64,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let mut out = Vec::new();
        let mut broken = Vec::new();
        let lanes = [lane(vendor, ""), lane(vendor, MESSAGE_ROUTE)];
        {
            let tx = self.db.begin_read().map_err(db)?;
            let (due, table) = match (
                tx.open_table(NOTIFICATIONS_DUE),
                tx.open_table(NOTIFICATIONS),
            ) {
                (Ok(d), Ok(t)) => (d, t),
                (Err(redb::TableError::TableDoesNotExist(_)), _)
                | (_, Err(redb::TableError::TableDoesNotExist(_))) => return Ok(Vec::new()),
                (Err(e), _) | (_, Err(e)) => return Err(db(e)),
            };
            // The vendor's own lane first, then its messages' with what room is left.
            let mut rows = Vec::new();
            for lane in &lanes {
                let room = limit.saturating_sub(rows.len());
                for row in due
                    .range((lane.as_str(), 0, 0)..=(lane.as_str(), now, u64::MAX))
                    .map_err(db)?
                    .take(room)
                {
                    let (k, _) = row.map_err(db)?;
                    let (_, at, id) = k.value();
                    rows.push((lane.as_str(), at, id));
                }
            }
            for (lane, at, id) in rows {
                match table.get(id).map_err(db)? {
                    Some(v) => match decode::<NotificationRecord>(
                        "notification",
                        &id.to_string(),
                        v.value(),
                    ) {
                        Ok(record) => out.push(record),
                        Err(e) => {
                            tracing::error!(
                                "notification {id} is unreadable and will not be delivered: {e}"
                            );
                            broken.push((lane.to_owned(), at, id));
                        }
                    },
                    None => broken.push((lane.to_owned(), at, id)),
                }
            }
        }
        if !broken.is_empty() {
            let tx = self.db.begin_write().map_err(db)?;
            {
                let mut due = tx.open_table(NOTIFICATIONS_DUE).map_err(db)?;
                for (lane, at, id) in broken {
                    due.remove((lane.as_str(), at, id)).map_err(db)?;
                }
            }
            tx.commit().map_err(db)?;
        }
        Ok(out)
    }

    /// Stores `record`'s new state (and its place among the due ones), with `thread` (the
    /// vendor reference its delivery made or changed) in the same transaction.
    pub fn update_notification(
        &self,
        previous_due: u64,
        record: &NotificationRecord,
        thread: Option<(&str, &str, &Value)>,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut table = tx.open_table(NOTIFICATIONS).map_err(db)?;
            table
                .insert(record.id, encode(record)?.as_slice())
                .map_err(db)?;
            let mut due = tx.open_table(NOTIFICATIONS_DUE).map_err(db)?;
            let lane = lane_of(record);
            due.remove((lane.as_str(), previous_due, record.id))
                .map_err(db)?;
            if record.state == NotificationState::Pending {
                due.insert((lane.as_str(), record.next_attempt_at, record.id), ())
                    .map_err(db)?;
            }
            if let Some((channel, key, value)) = thread {
                let mut threads = tx.open_table(NOTIFY_THREADS).map_err(db)?;
                let t = Thread {
                    value: value.clone(),
                    updated_at: record.finished_at.unwrap_or(record.next_attempt_at),
                };
                threads
                    .insert((channel, key), encode(&t)?.as_slice())
                    .map_err(db)?;
                if threads.len().map_err(db)? > MAX_THREADS {
                    forget_oldest_threads(&mut threads)?;
                }
            }
        }
        tx.commit().map_err(db)
    }

    /// What `channel` holds for `key`, if anything.
    pub fn thread(&self, channel: &str, key: &str) -> Result<Option<Thread>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = match tx.open_table(NOTIFY_THREADS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db(e)),
        };
        table
            .get((channel, key))
            .map_err(db)?
            .map(|v| decode("notification thread", key, v.value()))
            .transpose()
    }

    /// One notification.
    pub fn notification(&self, id: u64) -> Result<Option<NotificationRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = match tx.open_table(NOTIFICATIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db(e)),
        };
        table
            .get(id)
            .map_err(db)?
            .map(|v| decode("notification", &id.to_string(), v.value()))
            .transpose()
    }

    /// The newest notifications (before id `before`, when given), in `state` if given, at most
    /// `limit`; reads at most `limit` × 20 records to find them.
    pub fn notifications(
        &self,
        state: Option<NotificationState>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = match tx.open_table(NOTIFICATIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db(e)),
        };
        let mut out = Vec::new();
        let upper = before.unwrap_or(u64::MAX);
        for row in table
            .range(..upper)
            .map_err(db)?
            .rev()
            .take(limit.saturating_mul(20))
        {
            let (k, v) = row.map_err(db)?;
            let record: NotificationRecord =
                match decode("notification", &k.value().to_string(), v.value()) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("a stored notification is unreadable and left out: {e}");
                        continue;
                    }
                };
            if state.is_none_or(|s| s == record.state) {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

impl Store {
    /// Whether `source`'s delivery `key` was taken before.
    pub fn delivery_taken(&self, source: &str, key: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        match tx.open_table(WEBHOOK_DELIVERIES) {
            Ok(t) => Ok(t.get((source, key)).map_err(db)?.is_some()),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(e) => Err(db(e)),
        }
    }

    /// Remembers that `source`'s delivery `key` was taken at `now`; beyond
    /// [`MAX_DELIVERIES`], forgets those older than [`DELIVERY_MEMORY_MS`], else the oldest
    /// tenth.
    pub fn take_delivery(&self, source: &str, key: &str, now: u64) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(WEBHOOK_DELIVERIES).map_err(db)?;
            t.insert((source, key), now).map_err(db)?;
            if t.len().map_err(db)? > MAX_DELIVERIES {
                let mut all: Vec<(u64, String, String)> = Vec::new();
                for row in t.iter().map_err(db)? {
                    let (k, v) = row.map_err(db)?;
                    let (s, k) = k.value();
                    all.push((v.value(), s.to_owned(), k.to_owned()));
                }
                all.sort_unstable();
                let cutoff = now.saturating_sub(DELIVERY_MEMORY_MS);
                let stale = all.iter().take_while(|(at, _, _)| *at < cutoff).count();
                let n = stale.max(usize::try_from(MAX_DELIVERIES / 10).unwrap_or(1));
                for (_, s, k) in all.into_iter().take(n) {
                    t.remove((s.as_str(), k.as_str())).map_err(db)?;
                }
            }
        }
        tx.commit().map_err(db)
    }
}

/// How many notifications wait in `lane` (at any due time), counting up to `at_most`.
fn pending_in(tx: &WriteTransaction, lane: &str, at_most: usize) -> Result<usize, StoreError> {
    let due = tx.open_table(NOTIFICATIONS_DUE).map_err(db)?;
    let n = due
        .range((lane, 0, 0)..=(lane, u64::MAX, u64::MAX))
        .map_err(db)?
        .take(at_most)
        .count();
    Ok(n)
}

/// Stores `n` as notification `id`, pending and due `now`.
fn insert_pending(
    table: &mut redb::Table<'_, u64, &[u8]>,
    due: &mut redb::Table<'_, (&str, u64, u64), ()>,
    id: u64,
    n: NewNotification,
    now: u64,
) -> Result<(), StoreError> {
    let record = NotificationRecord {
        id,
        route: n.route,
        channel: n.channel,
        notice: n.notice,
        state: NotificationState::Pending,
        attempts: 0,
        created_at: now,
        next_attempt_at: now,
        finished_at: None,
        last_error: None,
        detail: None,
    };
    table.insert(id, encode(&record)?.as_slice()).map_err(db)?;
    due.insert((lane_of(&record).as_str(), now, id), ())
        .map_err(db)?;
    Ok(())
}

/// Forgets the tenth of the message keys with the oldest notifications once the table goes
/// over [`MAX_MESSAGE_KEYS`]: one scan, then room for a tenth more before the next.
fn forget_oldest_keys(keys: &mut redb::Table<'_, &str, u64>) -> Result<(), StoreError> {
    if keys.len().map_err(db)? <= MAX_MESSAGE_KEYS {
        return Ok(());
    }
    let mut all: Vec<(u64, String)> = keys
        .iter()
        .map_err(db)?
        .map(|row| row.map(|(k, v)| (v.value(), k.value().to_owned())))
        .collect::<Result<_, _>>()
        .map_err(db)?;
    all.sort_unstable();
    for (_, key) in all.iter().take((MAX_MESSAGE_KEYS / 10) as usize) {
        keys.remove(key.as_str()).map_err(db)?;
    }
    Ok(())
}

/// Deletes the oldest finished notifications beyond [`MAX_NOTIFICATIONS`] (pending ones stay:
/// they are bounded by what the routes make and by
/// `notify::messages::MAX_PENDING_MESSAGES`, and delivered or given up in time).
fn prune(table: &mut redb::Table<'_, u64, &[u8]>) -> Result<(), StoreError> {
    let over = table.len().map_err(db)?.saturating_sub(MAX_NOTIFICATIONS);
    if over == 0 {
        return Ok(());
    }
    let mut doomed = Vec::new();
    for row in table
        .iter()
        .map_err(db)?
        .take(usize::try_from(over * 4).unwrap_or(usize::MAX))
    {
        let (k, v) = row.map_err(db)?;
        // One that cannot be read cannot be delivered either: it goes first.
        let finished =
            decode::<NotificationRecord>("notification", &k.value().to_string(), v.value())
                .map_or(true, |r| r.state != NotificationState::Pending);
        if finished {
            doomed.push(k.value());
            if doomed.len() as u64 >= over {
                break;
            }
        }
    }
    for id in doomed {
        table.remove(id).map_err(db)?;
    }
    Ok(())
}

/// Forgets the tenth of the threads written longest ago: one scan when the table goes over
/// its bound, then room for [`MAX_THREADS`] / 10 more before the next.
fn forget_oldest_threads(
    threads: &mut redb::Table<'_, (&'static str, &'static str), &[u8]>,
) -> Result<(), StoreError> {
    let mut all: Vec<(u64, String, String)> = Vec::new();
    for row in threads.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        let (channel, key) = k.value();
        let at =
            decode::<Thread>("notification thread", key, v.value()).map_or(0, |t| t.updated_at);
        all.push((at, channel.to_owned(), key.to_owned()));
    }
    all.sort_unstable();
    let n = usize::try_from(MAX_THREADS / 10).unwrap_or(1).max(1);
    for (_, channel, key) in all.into_iter().take(n) {
        threads
            .remove((channel.as_str(), key.as_str()))
            .map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use grace_notify::{Notice, NoticeKind};

    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        Store::temporary()
    }

    fn made(route: &str, run: &str) -> NewNotification {
        NewNotification {
            route: route.to_owned(),
            channel: "slack:#ops".to_owned(),
            notice: Notice {
                kind: if route == MESSAGE_ROUTE {
                    NoticeKind::Message
                } else {
                    NoticeKind::WaitingApproval
                },
                run_id: run.to_owned(),
                playbook: "p".to_owned(),
                resource: "r".to_owned(),
                event_type: String::new(),
                incident: None,
                outcome: None,
                approval: None,
                link: None,
                at: 1,
                message: None,
            },
        }
    }

    #[test]
    fn the_hosts_notices_go_before_any_number_of_playbooks_messages() {
        let (_dir, store) = store();
        for i in 0..5 {
            let key = format!("k{i}");
            let id = store
                .enqueue_message(&key, made(MESSAGE_ROUTE, "a"), 10, 100)
                .unwrap();
            assert_eq!(id, Some(i + 1));
        }
        // The same key again: the message queued first, nothing new.
        assert_eq!(
            store
                .enqueue_message("k0", made(MESSAGE_ROUTE, "a"), 10, 100)
                .unwrap(),
            Some(1)
        );
        assert_eq!(store.message_id("k3").unwrap(), Some(4));
        // Queued later, due later: an approval waiting still goes first.
        store
            .enqueue_notifications(0, vec![made("oncall", "b")], 20)
            .unwrap();
        let due = store.due_notifications("slack", 30, 3).unwrap();
        let routes: Vec<(&str, u64)> = due.iter().map(|n| (n.route.as_str(), n.id)).collect();
        assert_eq!(
            routes,
            [("oncall", 6), (MESSAGE_ROUTE, 1), (MESSAGE_ROUTE, 2)]
        );
        // At most `max_pending` messages wait: the next is not queued.
        assert_eq!(
            store
                .enqueue_message("k9", made(MESSAGE_ROUTE, "a"), 10, 5)
                .unwrap(),
            None
        );
        // Delivered, one leaves its lane and makes room.
        let mut first = due[1].clone();
        first.state = NotificationState::Delivered;
        store.update_notification(10, &first, None).unwrap();
        assert_eq!(
            store
                .enqueue_message("k9", made(MESSAGE_ROUTE, "a"), 10, 5)
                .unwrap(),
            Some(7)
        );
    }
}
