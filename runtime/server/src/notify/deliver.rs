//! Delivering one notification to its vendor, with what the vendor already holds of the run or
//! incident (its "thread"): the Slack message to update rather than post again, whether
//! PagerDuty has an incident open under the `dedup_key`, the Jira issue to comment on.
//!
//! | notice | Slack | PagerDuty | Jira |
//! |---|---|---|---|
//! | started | post, or update the run's message | acknowledge, if open | comment, if an issue exists |
//! | waiting for approval | post / update (with buttons) | trigger | create an issue, or comment |
//! | succeeded | update | resolve, if open | comment, then transition (`resolve_transition`) |
//! | failed, timed out | update | trigger | create an issue, or comment |
//! | cancelled | update | leave open (people stopped it) | comment, if an issue exists |
//!
//! A notice older than what the thread last showed is not delivered ("superseded"): a retried
//! notification must not take a message or an incident back to an earlier state.
//!
//! A playbook's message (`notify.send`) is none of these: it is posted as a message of its own
//! to the Slack channel the playbook named, never superseded, and leaves the run's thread as it
//! is.

use grace_notify::jira::{JiraClient, NewIssue};
use grace_notify::pagerduty::{Action, EventsClient, Severity, Trigger};
use grace_notify::slack::SlackClient;
use grace_notify::{DeliveryError, Notice, NoticeKind};
use serde_json::{Map, Value, json};

use super::config::Channel;

/// What a delivery did.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// For `/v1/notifications` (`posted`, `updated`, `created OPS-12`, `nothing to resolve`).
    pub detail: String,
    /// What the vendor now holds, to keep under the thread's key.
    pub thread: Option<Value>,
}

/// The vendors GRACE sends to, as configured.
pub struct Outlets {
    /// Slack.
    pub slack: Option<SlackClient>,
    /// PagerDuty.
    pub pagerduty: Option<(EventsClient, Severity)>,
    /// Jira, with the project, issue type and resolving transition.
    pub jira: Option<JiraOutlet>,
}

/// Jira as configured.
pub struct JiraOutlet {
    /// The client.
    pub client: JiraClient,
    /// The project key.
    pub project: String,
    /// The issue type's name.
    pub issue_type: String,
    /// The transition (or status) resolving an issue.
    pub resolve: String,
}

/// The key of the thread `notice` belongs to on `channel`: the run for Slack (one message per
/// run), the incident (else the run) for PagerDuty and Jira.
pub fn thread_key(channel: &Channel, notice: &Notice) -> String {
    match channel {
        Channel::Slack(_) => notice.run_id.clone(),
        Channel::PagerDuty | Channel::Jira => match &notice.incident {
            Some(incident) => format!("incident/{incident}"),
            None => format!("run/{}", notice.run_id),
        },
    }
}

/// Whether `thread` has shown a later notice of `notice`'s run: a retried notification must
/// not take a message or an incident back to an earlier state of its run. Each run's own order
/// is what matters; notices of other runs sharing an incident's thread never supersede it.
pub fn superseded(thread: Option<&Value>, notice: &Notice) -> bool {
    notice.kind != NoticeKind::Message
        && thread
            .and_then(|t| t.get("seen"))
            .and_then(|s| s.get(&notice.run_id))
            .and_then(Value::as_u64)
            .is_some_and(|at| at > notice.at)
}

/// The most runs a thread remembers (what each last showed, and which hold it open).
const MAX_RUNS: usize = 100;

/// `thread`'s record of the latest notice shown of each run, with `notice` added (the oldest
/// forgotten beyond [`MAX_RUNS`]).
fn seen_with(thread: Option<&Value>, notice: &Notice) -> Value {
    let mut seen: Vec<(String, u64)> = thread
        .and_then(|t| t.get("seen"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(run, at)| Some((run.clone(), at.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    seen.retain(|(run, _)| *run != notice.run_id);
    seen.push((notice.run_id.clone(), notice.at));
    seen.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
    seen.truncate(MAX_RUNS);
    Value::Object(seen.into_iter().map(|(run, at)| (run, json!(at))).collect())
}

/// A run holding an incident open: which run, and what it was (its playbook on its resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The run.
    pub run: String,
    /// `<playbook> on <resource>`.
    pub of: String,
}

fn of(notice: &Notice) -> String {
    format!("{} on {}", notice.playbook, notice.resource)
}

/// The runs holding an incident open in `thread`.
fn holds(thread: Option<&Value>) -> Vec<Hold> {
    thread
        .and_then(|t| t.get("open"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|h| {
                    Some(Hold {
                        run: h.get("run")?.as_str()?.to_owned(),
                        of: h.get("of")?.as_str()?.to_owned(),
                    })
                })
                .take(MAX_RUNS)
                .collect()
        })
        .unwrap_or_default()
}

fn holds_json(holds: &[Hold]) -> Value {
    Value::Array(
        holds
            .iter()
            .map(|h| json!({ "run": h.run, "of": h.of }))
            .collect(),
    )
}

/// `open` after `notice`: a run that waits for people, fails or times out holds the incident
/// open; a success lets go of its own run's hold and of every hold of the same playbook on the
/// same resource (what failed before works now). A cancelled run keeps its hold: people
/// stopped it, people close the incident or a later success does.
pub fn hold(mut open: Vec<Hold>, notice: &Notice) -> Vec<Hold> {
    match notice.kind {
        NoticeKind::WaitingApproval | NoticeKind::Failed | NoticeKind::TimedOut => {
            if !open.iter().any(|h| h.run == notice.run_id) && open.len() < MAX_RUNS {
                open.push(Hold {
                    run: notice.run_id.clone(),
                    of: of(notice),
                });
            }
        }
        NoticeKind::Succeeded => {
            let what = of(notice);
            open.retain(|h| h.run != notice.run_id && h.of != what);
        }
        NoticeKind::Started | NoticeKind::Cancelled | NoticeKind::Message => {}
    }
    open
}

fn missing(vendor: &'static str) -> DeliveryError {
    DeliveryError::Rejected {
        vendor,
        message: "not configured on this server".to_owned(),
    }
}

impl Outlets {
    /// Delivers `notice` to `channel`, given its `thread`.
    pub async fn deliver(
        &self,
        channel: &Channel,
        notice: &Notice,
        thread: Option<&Value>,
        key: &str,
    ) -> Result<Delivered, DeliveryError> {
        if notice.kind == NoticeKind::Message && !matches!(channel, Channel::Slack(_)) {
            // The grant allows Slack channels only; a record saying otherwise is refused.
            return Err(DeliveryError::Rejected {
                vendor: "grace",
                message: "playbooks' messages go to Slack channels only".to_owned(),
            });
        }
        match channel {
            Channel::Slack(name) => {
                let slack = self.slack.as_ref().ok_or_else(|| missing("slack"))?;
                slack_deliver(slack, name, notice, thread).await
            }
            Channel::PagerDuty => {
                let (client, severity) = self
                    .pagerduty
                    .as_ref()
                    .ok_or_else(|| missing("pagerduty"))?;
                pagerduty_deliver(client, *severity, notice, thread, key).await
            }
            Channel::Jira => {
                let jira = self.jira.as_ref().ok_or_else(|| missing("jira"))?;
                jira_deliver(jira, notice, thread, key).await
            }
        }
    }
}

async fn slack_deliver(
    slack: &SlackClient,
    channel: &str,
    notice: &Notice,
    thread: Option<&Value>,
) -> Result<Delivered, DeliveryError> {
    let rendered = grace_notify::slack::render(notice);
    if notice.kind == NoticeKind::Message {
        let posted = slack.post(channel, &rendered).await?;
        return Ok(Delivered {
            detail: format!("posted (ts {})", posted.ts),
            thread: None,
        });
    }
    let posted_in = thread.and_then(|t| {
        Some((
            t.get("channel")?.as_str()?.to_owned(),
            t.get("ts")?.as_str()?.to_owned(),
        ))
    });
    let (posted, detail) = match posted_in {
        Some((c, ts)) => match slack.update(&c, &ts, &rendered).await {
            Ok(p) => (p, "updated"),
            // Someone deleted the message: post it again.
            Err(DeliveryError::Rejected { message, .. })
                if message.ends_with("message_not_found") =>
            {
                (slack.post(channel, &rendered).await?, "posted again")
            }
            Err(e) => return Err(e),
        },
        None => (slack.post(channel, &rendered).await?, "posted"),
    };
    Ok(Delivered {
        detail: format!("{detail} (ts {})", posted.ts),
        thread: Some(json!({
            "channel": posted.channel, "ts": posted.ts, "seen": seen_with(thread, notice),
        })),
    })
}

async fn pagerduty_deliver(
    client: &EventsClient,
    severity: Severity,
    notice: &Notice,
    thread: Option<&Value>,
    key: &str,
) -> Result<Delivered, DeliveryError> {
    let dedup = format!("grace/{key}");
    let before = holds(thread);
    let after = hold(before.clone(), notice);
    let held_by_this_run =
        before.len() != after.len() || before.iter().any(|h| h.run == notice.run_id);
    let (action, detail) = match notice.kind {
        NoticeKind::WaitingApproval | NoticeKind::Failed | NoticeKind::TimedOut => {
            (Some(Action::Trigger), "triggered".to_owned())
        }
        NoticeKind::Started if held_by_this_run => {
            (Some(Action::Acknowledge), "acknowledged".to_owned())
        }
        NoticeKind::Succeeded if held_by_this_run && after.is_empty() => {
            (Some(Action::Resolve), "resolved".to_owned())
        }
        NoticeKind::Succeeded if held_by_this_run => (
            None,
            format!(
                "left open: {} other run(s) of it waited or failed",
                after.len()
            ),
        ),
        NoticeKind::Succeeded | NoticeKind::Started => {
            (None, "nothing open for this run".to_owned())
        }
        NoticeKind::Cancelled => (None, "left as it is: people stopped the run".to_owned()),
        NoticeKind::Message => (None, "a playbook's message: nothing to page".to_owned()),
    };
    if let Some(action) = action {
        let trigger = (action == Action::Trigger).then(|| trigger(notice, severity));
        client.send(action, &dedup, trigger.as_ref()).await?;
    }
    Ok(Delivered {
        detail: format!("{detail} ({dedup})"),
        thread: Some(json!({
            "open": holds_json(&after), "dedup_key": dedup, "seen": seen_with(thread, notice),
        })),
    })
}

fn trigger(notice: &Notice, severity: Severity) -> Trigger {
    let mut details = Map::new();
    details.insert("run".into(), json!(notice.run_id));
    details.insert("state".into(), json!(notice.kind.name()));
    if let Some(incident) = &notice.incident {
        details.insert("incident".into(), json!(incident));
    }
    if let Some(outcome) = &notice.outcome {
        details.insert("outcome".into(), json!(outcome));
    }
    if let Some(a) = &notice.approval {
        details.insert(
            "approval".into(),
            json!({ "action": a.action, "risk": a.risk, "reason": a.reason,
                    "required": a.required, "approved_by": a.approved_by }),
        );
    }
    Trigger {
        summary: format!("GRACE: {}", notice.headline()),
        source: notice.resource.clone(),
        severity,
        component: Some(notice.playbook.clone()),
        group: None,
        class: Some(notice.event_type.clone()),
        details,
        link: notice.link.clone(),
    }
}

/// The label GRACE finds its issue of `key` by: `grace-` and the key with anything but
/// letters, digits, `-`, `_` and `.` made `-`.
pub fn jira_label(key: &str) -> String {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(200)
        .collect();
    format!("grace-{safe}")
}

fn paragraphs(notice: &Notice) -> Vec<String> {
    let mut p = vec![format!(
        "{} (run {}, event {})",
        notice.headline(),
        notice.run_id,
        notice.event_type
    )];
    if let Some(a) = &notice.approval {
        p.push(format!(
            "Waiting for approval: {} on {}, risk {:.0}: {}",
            a.action, a.resource, a.risk, a.reason
        ));
    }
    if let Some(o) = &notice.outcome {
        p.push(format!("Outcome: {o}"));
    }
    p
}

async fn jira_deliver(
    jira: &JiraOutlet,
    notice: &Notice,
    thread: Option<&Value>,
    key: &str,
) -> Result<Delivered, DeliveryError> {
    let label = jira_label(key);
    let mut issue = thread
        .and_then(|t| t.get("issue"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let creates = matches!(
        notice.kind,
        NoticeKind::WaitingApproval | NoticeKind::Failed | NoticeKind::TimedOut
    );
    if issue.is_none() && creates {
        // Creating is not idempotent: an earlier attempt (before a crash, or whose answer was
        // lost), or another replica, may have made the issue. Look first.
        issue = jira.client.find_by_label(&jira.project, &label).await?;
    }
    let before = holds(thread);
    let after = hold(before.clone(), notice);
    let released = before.len() != after.len();
    let text = paragraphs(notice);
    let link = notice.link.as_deref();
    let detail = match (notice.kind, &issue) {
        (_, None) if creates => {
            let created = jira
                .client
                .create(&NewIssue {
                    project: jira.project.clone(),
                    issue_type: jira.issue_type.clone(),
                    summary: format!("GRACE: {}", notice.headline()),
                    description: text,
                    link: link.map(str::to_owned),
                    labels: vec!["grace".to_owned(), label],
                })
                .await?;
            let detail = format!("created {created}");
            issue = Some(created);
            detail
        }
        (NoticeKind::Succeeded, Some(key)) if released && after.is_empty() => {
            jira.client.comment(key, &text, link).await?;
            let moved = jira.client.transition(key, &jira.resolve).await?;
            if moved {
                format!("commented on {key} and moved it to {}", jira.resolve)
            } else {
                format!("commented on {key}, already {}", jira.resolve)
            }
        }
        (_, Some(key)) => {
            jira.client.comment(key, &text, link).await?;
            format!("commented on {key}")
        }
        (_, None) => "no issue to comment on".to_owned(),
    };
    Ok(Delivered {
        detail,
        thread: Some(json!({
            "issue": issue, "open": holds_json(&after), "seen": seen_with(thread, notice),
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: NoticeKind, run: &str, at: u64) -> Notice {
        Notice {
            kind,
            run_id: run.to_owned(),
            playbook: "p".to_owned(),
            resource: "r".to_owned(),
            event_type: "e".to_owned(),
            incident: Some("inc-1".to_owned()),
            outcome: None,
            approval: None,
            link: None,
            at,
            message: None,
        }
    }

    fn runs(open: &[Hold]) -> Vec<&str> {
        open.iter().map(|h| h.run.as_str()).collect()
    }

    #[test]
    fn an_incident_stays_open_while_any_of_its_runs_waits_or_failed() {
        let open = hold(Vec::new(), &notice(NoticeKind::Failed, "a", 100));
        let mut other = notice(NoticeKind::WaitingApproval, "b", 110);
        other.playbook = "q".to_owned();
        let open = hold(open, &other);
        other.kind = NoticeKind::Succeeded;
        let open = hold(open, &other);
        assert_eq!(
            runs(&open),
            ["a"],
            "b's success does not resolve what a's failure opened"
        );
        let open = hold(open, &notice(NoticeKind::Cancelled, "a", 130));
        assert_eq!(
            runs(&open),
            ["a"],
            "people stopped it: people close the incident"
        );
        // A later run of the same playbook on the same resource succeeding: what failed works.
        let open = hold(open, &notice(NoticeKind::Succeeded, "c", 140));
        assert!(open.is_empty());
    }

    #[test]
    fn a_notice_is_superseded_by_a_later_one_of_its_own_run_only() {
        let mut thread =
            json!({ "seen": seen_with(None, &notice(NoticeKind::Succeeded, "a", 120)) });
        thread["seen"] = seen_with(
            Some(&thread),
            &notice(NoticeKind::WaitingApproval, "b", 130),
        );
        // a's stale retry after a's success and b's notice: still a's older state.
        assert!(superseded(
            Some(&thread),
            &notice(NoticeKind::WaitingApproval, "a", 100)
        ));
        assert!(
            !superseded(Some(&thread), &notice(NoticeKind::Failed, "c", 100)),
            "another run"
        );
        assert!(!superseded(
            Some(&thread),
            &notice(NoticeKind::Succeeded, "b", 130)
        ));
        assert!(!superseded(None, &notice(NoticeKind::Failed, "a", 1)));
    }

    #[test]
    fn jira_labels_hold_no_space_or_quote_whatever_the_key() {
        assert_eq!(jira_label("incident/inc-1"), "grace-incident-inc-1");
        assert_eq!(jira_label("run/a b\"c"), "grace-run-a-b-c");
        assert!(grace_notify::jira::client::validate_label(&jira_label(&"x".repeat(500))).is_ok());
    }
}
