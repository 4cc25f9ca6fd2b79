//! Notifications: runs, approvals and outcomes told where the team is (Slack, PagerDuty,
//! Jira), and the vendors' requests in (Slack's buttons, PagerDuty's and GitHub's webhooks).
//! The reference is `docs/integrations.md`.
//!
//! Out, in three steps that never touch a run:
//! 1. a run's change of state is recorded with the run itself ([`crate::store::outbox`]);
//! 2. the [`Notifier`]'s task reads those changes, and for each `[[notify]]` route that
//!    matches, stores a notification ([`compose`] writes what it says), in one transaction
//!    with the changes' removal: nothing is told twice or lost across a crash;
//! 3. it delivers the due notifications ([`deliver`]), one vendor request at a time per
//!    vendor, paced to `max_per_minute`, retried with backoff (doubling from 2 s to 10 min)
//!    on a `5xx` or a lost connection and after the vendor's `Retry-After` on a `429`, given
//!    up after [`MAX_ATTEMPTS`] or on a refusal. Each one's state is at `/v1/notifications`,
//!    and attempts are counted in `grace_notifications_total{vendor,result}`.
//!
//! A slow or failing vendor delays only its own notifications: runs never wait for them.
//!
//! In: [`slack_in`] takes the Approve / Deny buttons' presses, [`webhooks`] PagerDuty's and
//! GitHub's deliveries.

pub mod compose;
pub mod config;
pub mod deliver;
pub mod messages;
pub mod slack_in;
pub mod socket;
pub mod webhooks;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use grace_notify::NoticeKind;
use grace_notify::http::Http;
use grace_notify::jira::{JiraAuth, JiraClient};
use grace_notify::pagerduty::EventsClient;
use grace_notify::slack::SlackClient;
use tokio::sync::Mutex;

use crate::config_error::ConfigError;
use crate::metrics::Metrics;
use crate::store::outbox::{NewNotification, NotificationRecord, NotificationState};
use crate::store::{Store, StoreError};
use crate::supervisor::TaskError;
use crate::trust::HostTrust;
use config::{Channel, IntegrationsConfig, NotifyRoute, REQUEST_TIMEOUT};
use deliver::{JiraOutlet, Outlets};

/// Attempts before a notification is given up (not counting those a vendor's rate limit
/// refused, which are tried again for a day).
pub const MAX_ATTEMPTS: u32 = 8;
/// How long a notification is tried at most.
pub const MAX_AGE_MS: u64 = 24 * 3600 * 1000;
/// The first wait after a failed attempt; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// The longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How often the task looks for new changes of state.
const POLL: Duration = Duration::from_millis(250);
/// Changes of state read per pass.
const BATCH: usize = 256;

/// A `[[notify]]` route, checked.
#[derive(Debug, Clone)]
pub struct Route {
    name: String,
    on: Vec<NoticeKind>,
    playbooks: Vec<grace_model::glob::Glob>,
    resources: Vec<grace_model::glob::Glob>,
    to: Vec<Channel>,
}

impl Route {
    fn new(route: &NotifyRoute) -> Result<Route, ConfigError> {
        Ok(Route {
            name: route.name.clone(),
            on: route
                .on
                .iter()
                .filter_map(|k| NoticeKind::parse(k))
                .collect(),
            playbooks: route
                .playbooks
                .iter()
                .map(grace_model::glob::Glob::new)
                .collect(),
            resources: route
                .resources
                .iter()
                .map(grace_model::glob::Glob::new)
                .collect(),
            to: route
                .to
                .iter()
                .map(|t| Channel::parse(t).map_err(|m| ConfigError::invalid("notify.to", m)))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether it tells `kind` of a run of `playbook` on `resource`.
    pub fn matches(&self, kind: NoticeKind, playbook: &str, resource: &str) -> bool {
        self.on.contains(&kind)
            && (self.playbooks.is_empty() || self.playbooks.iter().any(|g| g.matches(playbook)))
            && (self.resources.is_empty() || self.resources.iter().any(|g| g.matches(resource)))
    }
}

/// Spacing between two requests to one vendor.
struct Pace {
    interval: Duration,
    next: tokio::time::Instant,
}

impl Pace {
    fn per_minute(n: u32) -> Pace {
        Pace {
            interval: Duration::from_secs(60) / n.max(1),
            next: tokio::time::Instant::now(),
        }
    }
}

/// The notifications' task and the state the integrations' handlers share.
pub struct Notifier {
    store: Store,
    trust: Arc<HostTrust>,
    anomalies: Arc<crate::anomaly::Anomalies>,
    metrics: Arc<Metrics>,
    routes: Vec<Route>,
    public_url: Option<String>,
    outlets: Outlets,
    paces: Mutex<BTreeMap<&'static str, Pace>>,
    /// Slack's buttons, with a signing secret.
    pub slack_in: Option<slack_in::SlackIn>,
    /// PagerDuty's and GitHub's webhooks.
    pub webhooks: webhooks::Webhooks,
    /// Slack's Socket Mode, with an app-level token.
    pub socket: Option<socket::SocketMode>,
}

fn secret_error(field: &'static str) -> impl FnOnce(grace_notify::SecretError) -> ConfigError {
    move |e| ConfigError::invalid(field, e.to_string())
}

fn http(vendor: &'static str) -> Result<Http, ConfigError> {
    Http::new(vendor, REQUEST_TIMEOUT)
        .map_err(|e| ConfigError::invalid("integrations", e.to_string()))
}

impl Notifier {
    /// Reads the secrets and builds the clients the settings name.
    pub fn new(
        integrations: &IntegrationsConfig,
        routes: &[NotifyRoute],
        store: Store,
        trust: Arc<HostTrust>,
        anomalies: Arc<crate::anomaly::Anomalies>,
        metrics: Arc<Metrics>,
    ) -> Result<Notifier, ConfigError> {
        integrations.validate()?;
        config::validate_routes(routes, integrations)?;
        let mut paces = BTreeMap::new();
        let mut slack_in = None;
        let mut socket = None;
        let slack = match &integrations.slack {
            Some(s) => {
                let token = s
                    .token
                    .load()
                    .map_err(secret_error("integrations.slack.token"))?;
                // Presses are taken over HTTP (signed) or Socket Mode, or both.
                let signing = match &s.signing_secret {
                    Some(secret) => Some(
                        secret
                            .load()
                            .map_err(secret_error("integrations.slack.signing_secret"))?,
                    ),
                    None => None,
                };
                if let Some(app_token) = &s.app_token {
                    let app_token = app_token
                        .load()
                        .map_err(secret_error("integrations.slack.app_token"))?;
                    socket = Some(socket::SocketMode {
                        app_token,
                        api_url: s.api_url.clone(),
                    });
                }
                if signing.is_some() || socket.is_some() {
                    slack_in = Some(
                        slack_in::SlackIn::new(signing, s.approvers.clone())
                            .in_team(s.team.clone()),
                    );
                }
                paces.insert("slack", Pace::per_minute(s.max_per_minute));
                Some(SlackClient::new(http("slack")?, token, &s.api_url))
            }
            None => None,
        };
        let pagerduty = match &integrations.pagerduty {
            Some(p) => match &p.routing_key {
                Some(key) => {
                    let key = key
                        .load()
                        .map_err(secret_error("integrations.pagerduty.routing_key"))?;
                    paces.insert("pagerduty", Pace::per_minute(p.max_per_minute));
                    Some((
                        EventsClient::new(http("pagerduty")?, key, &p.events_url).map_err(|m| {
                            ConfigError::invalid("integrations.pagerduty.routing_key", m)
                        })?,
                        p.severity,
                    ))
                }
                None => None,
            },
            None => None,
        };
        let jira = match &integrations.jira {
            Some(j) => {
                let token = j
                    .token
                    .load()
                    .map_err(secret_error("integrations.jira.token"))?;
                let auth = match &j.email {
                    Some(email) => JiraAuth::Basic {
                        email: email.clone(),
                        token,
                    },
                    None => JiraAuth::Bearer(token),
                };
                paces.insert("jira", Pace::per_minute(j.max_per_minute));
                Some(JiraOutlet {
                    client: JiraClient::new(http("jira")?, &j.url, auth),
                    project: j.project.clone(),
                    issue_type: j.issue_type.clone(),
                    resolve: j.resolve_transition.clone(),
                })
            }
            None => None,
        };
        let webhooks = webhooks::Webhooks::new(integrations)?;
        Ok(Notifier {
            store,
            trust,
            anomalies,
            metrics,
            routes: routes.iter().map(Route::new).collect::<Result<_, _>>()?,
            public_url: integrations.public_url.clone(),
            outlets: Outlets {
                slack,
                pagerduty,
                jira,
            },
            paces: Mutex::new(paces),
            slack_in,
            webhooks,
            socket,
        })
    }

    /// The Slack client, when Slack is configured.
    pub fn slack(&self) -> Option<&SlackClient> {
        self.outlets.slack.as_ref()
    }

    /// The task: changes of state into notifications, and each vendor's due notifications to
    /// it, side by side, until the server stops. A storage error ends it, for the supervisor to
    /// restart it (and `/healthz` to show it down meanwhile).
    pub async fn run(self: Arc<Self>) -> Result<(), TaskError> {
        let mut parts: tokio::task::JoinSet<Result<(), StoreError>> = tokio::task::JoinSet::new();
        let taking = self.clone();
        parts.spawn(async move {
            loop {
                if taking.take_transitions().await? == 0 {
                    tokio::time::sleep(POLL).await;
                }
            }
        });
        // Every vendor, configured or not: notifications made for one no longer configured are
        // given up (as `not configured on this server`) rather than left pending.
        for vendor in ["slack", "pagerduty", "jira"] {
            let delivering = self.clone();
            parts.spawn(async move {
                loop {
                    if delivering.deliver_due(vendor).await? == 0 {
                        tokio::time::sleep(POLL).await;
                    }
                }
            });
        }
        match parts.join_next().await {
            Some(Ok(Err(e))) => Err(TaskError::new(e)),
            Some(Err(e)) => Err(TaskError::new(std::io::Error::other(format!(
                "a part of the notifier stopped: {e}"
            )))),
            Some(Ok(Ok(()))) | None => Ok(()),
        }
    }

    /// Turns the waiting changes of state into notifications; how many changes were read.
    pub async fn take_transitions(&self) -> Result<usize, StoreError> {
        let store = self.store.clone();
        let transitions = blocking(move || store.transitions(BATCH)).await?;
        let Some((through, _)) = transitions.last() else {
            return Ok(0);
        };
        let through = *through;
        let now = grace_engine::event::system_now_millis();
        let mut made = Vec::new();
        for (_, t) in &transitions {
            let Some(kind) = compose::kind(t) else {
                continue;
            };
            if self.routes.is_empty() {
                continue;
            }
            let store = self.store.clone();
            let id = t.run.clone();
            let Some(run) = blocking(move || store.run(&id)).await? else {
                continue;
            };
            let routes: Vec<&Route> = self
                .routes
                .iter()
                .filter(|r| r.matches(kind, &run.playbook, &run.resource))
                .collect();
            if routes.is_empty() {
                continue;
            }
            let approval = match &run.approval {
                Some(id) => self.trust.approvals().get(id).await.ok().flatten(),
                None => None,
            };
            let incident = compose::incident(&run, |id| self.anomalies.incident(id));
            let notice = compose::notice(
                kind,
                &run,
                approval.as_ref(),
                incident,
                self.public_url.as_deref(),
                t.at,
            );
            for route in routes {
                for channel in &route.to {
                    made.push(NewNotification {
                        route: route.name.clone(),
                        channel: channel.name(),
                        notice: notice.clone(),
                    });
                }
            }
        }
        let n = transitions.len();
        let store = self.store.clone();
        blocking(move || store.enqueue_notifications(through, made, now)).await?;
        Ok(n)
    }

    /// Tells again what a run waiting for approval waits for, after a vote that did not
    /// decide it (one approval of two): its Slack message shows who approved. Nothing is told
    /// if the run no longer waits, or its approval was decided meanwhile; the notice is dated
    /// before those checks, so a change of state after them is dated later and wins.
    pub async fn approval_changed(&self, run_id: &str) -> Result<(), StoreError> {
        let now = grace_engine::event::system_now_millis();
        let store = self.store.clone();
        let id = run_id.to_owned();
        let Some(run) = blocking(move || store.run(&id)).await? else {
            return Ok(());
        };
        if run.state != crate::runs::RunState::WaitingApproval {
            return Ok(());
        }
        let approval = match &run.approval {
            Some(id) => self.trust.approvals().get(id).await.ok().flatten(),
            None => None,
        };
        if approval
            .as_ref()
            .is_none_or(|a| a.state != crate::trust::approvals::ApprovalState::Pending)
        {
            return Ok(());
        }
        let kind = NoticeKind::WaitingApproval;
        let incident = compose::incident(&run, |id| self.anomalies.incident(id));
        let notice = compose::notice(
            kind,
            &run,
            approval.as_ref(),
            incident,
            self.public_url.as_deref(),
            now,
        );
        let made: Vec<NewNotification> = self
            .routes
            .iter()
            .filter(|r| r.matches(kind, &run.playbook, &run.resource))
            .flat_map(|r| {
                r.to.iter()
                    .filter(|c| matches!(c, Channel::Slack(_)))
                    .map(|c| NewNotification {
                        route: r.name.clone(),
                        channel: c.name(),
                        notice: notice.clone(),
                    })
            })
            .collect();
        if made.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        // No change of state is consumed: `through` 0 removes nothing.
        blocking(move || store.enqueue_notifications(0, made, now))
            .await
            .map(|_| ())
    }

    /// Delivers what is due to `vendor`, one request at a time, paced to its
    /// `max_per_minute`; how many were tried.
    pub async fn deliver_due(&self, vendor: &'static str) -> Result<usize, StoreError> {
        let now = grace_engine::event::system_now_millis();
        let store = self.store.clone();
        let due = blocking(move || store.due_notifications(vendor, now, 32)).await?;
        let n = due.len();
        for record in due {
            let wait = {
                let mut paces = self.paces.lock().await;
                match paces.get_mut(vendor) {
                    Some(pace) => {
                        let now = tokio::time::Instant::now();
                        let at = pace.next.max(now);
                        pace.next = at + pace.interval;
                        at - now
                    }
                    None => Duration::ZERO,
                }
            };
            // Only this vendor's deliveries wait for its pace.
            tokio::time::sleep(wait).await;
            self.deliver_one(vendor, record).await?;
        }
        Ok(n)
    }

    async fn deliver_one(
        &self,
        vendor: &'static str,
        mut record: NotificationRecord,
    ) -> Result<(), StoreError> {
        let previous_due = record.next_attempt_at;
        let now = grace_engine::event::system_now_millis();
        let channel = match Channel::parse(&record.channel) {
            Ok(c) => c,
            Err(e) => {
                record.state = NotificationState::Failed;
                record.finished_at = Some(now);
                record.last_error = Some(e);
                let store = self.store.clone();
                return blocking(move || store.update_notification(previous_due, &record, None))
                    .await;
            }
        };
        let key = deliver::thread_key(&channel, &record.notice);
        let channel_name = record.channel.clone();
        let store = self.store.clone();
        let (c, k) = (channel_name.clone(), key.clone());
        let thread = blocking(move || store.thread(&c, &k)).await?;
        let thread_value = thread.as_ref().map(|t| &t.value);
        record.attempts += 1;
        let mut new_thread = None;
        if deliver::superseded(thread_value, &record.notice) {
            record.state = NotificationState::Delivered;
            record.finished_at = Some(now);
            record.detail = Some("superseded by a newer notice".to_owned());
            self.metrics.notification(vendor, "superseded");
        } else {
            let result = self
                .outlets
                .deliver(&channel, &record.notice, thread_value, &key)
                .await;
            let now = grace_engine::event::system_now_millis();
            match result {
                Ok(delivered) => {
                    record.state = NotificationState::Delivered;
                    record.finished_at = Some(now);
                    record.detail = Some(delivered.detail);
                    record.last_error = None;
                    new_thread = delivered.thread;
                    self.metrics.notification(vendor, "delivered");
                }
                Err(e) => {
                    record.last_error = Some(grace_notify::text::cut(&e.to_string(), 500));
                    // A vendor that asks to wait is waited for, however often, for a day; other
                    // failures are tried [`MAX_ATTEMPTS`] times.
                    let rate_limited = e.retry_after().is_some();
                    if rate_limited {
                        // Not an attempt the vendor judged: it asked to be asked later.
                        record.attempts = record.attempts.saturating_sub(1);
                    }
                    let young = now.saturating_sub(record.created_at) < MAX_AGE_MS;
                    if e.is_retryable() && young && (rate_limited || record.attempts < MAX_ATTEMPTS)
                    {
                        let wait = e.retry_after().unwrap_or_else(|| backoff(record.attempts));
                        record.next_attempt_at =
                            now.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                        self.metrics.notification(vendor, "retried");
                        tracing::warn!(notification = record.id, channel = %record.channel, attempts = record.attempts, error = %e, "a notification will be tried again");
                    } else {
                        record.state = NotificationState::Failed;
                        record.finished_at = Some(now);
                        self.metrics.notification(vendor, "failed");
                        tracing::error!(notification = record.id, channel = %record.channel, attempts = record.attempts, error = %e, "a notification was given up");
                    }
                }
            }
        }
        let store = self.store.clone();
        blocking(move || {
            store.update_notification(
                previous_due,
                &record,
                new_thread
                    .as_ref()
                    .map(|v| (channel_name.as_str(), key.as_str(), v)),
            )
        })
        .await
    }
}

/// The wait after attempt `attempts` failed: 2 s, doubling, at most [`MAX_BACKOFF`].
pub fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// Runs a store call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Db(format!("a storage task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_two_seconds_to_ten_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn a_route_matches_its_kinds_playbooks_and_resources() {
        let route = Route::new(&NotifyRoute {
            name: "oncall".to_owned(),
            on: vec!["run.failed".to_owned()],
            playbooks: vec!["restart-*".to_owned()],
            resources: vec![],
            to: vec!["pagerduty".to_owned()],
        });
        let Ok(route) = route else { panic!("route") };
        assert!(route.matches(NoticeKind::Failed, "restart-web", "web-1"));
        assert!(!route.matches(NoticeKind::Succeeded, "restart-web", "web-1"));
        assert!(!route.matches(NoticeKind::Failed, "scale-db", "web-1"));
    }
}
