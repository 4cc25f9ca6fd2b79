//! GRACE's clients (grace-notify) against the vendors' test servers: what the vendor takes,
//! what it refuses, and how each answer is sorted (deliver, wait, retry, give up).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use grace_notify::http::Http;
use grace_notify::jira::{JiraAuth, JiraClient, NewIssue};
use grace_notify::pagerduty::{Action, EventsClient, Severity, Trigger};
use grace_notify::slack::{SlackClient, render};
use grace_notify::{DeliveryError, Notice, NoticeApproval, NoticeKind, Secret};
use grace_vendor_testservers::Fault;
use grace_vendor_testservers::jira::JiraServer;
use grace_vendor_testservers::pagerduty::PagerDutyServer;
use grace_vendor_testservers::slack::SlackServer;

const ROUTING_KEY: &str = "e93facc04764012d7bfb002500d5d1a6";

fn http(vendor: &'static str) -> Http {
    Http::new(vendor, Duration::from_secs(5)).unwrap()
}

fn notice(kind: NoticeKind) -> Notice {
    Notice {
        kind,
        run_id: "run-1".to_owned(),
        playbook: "scale-on-latency".to_owned(),
        resource: "api-asg".to_owned(),
        event_type: "metrics.latency".to_owned(),
        incident: None,
        outcome: None,
        approval: Some(NoticeApproval {
            id: "apr-1".to_owned(),
            action: "scaling::SetDesiredCapacity".to_owned(),
            resource: "api-asg".to_owned(),
            risk: 64.0,
            factors: vec![("environment".to_owned(), 30.0)],
            reason: "capacity changes in production need two people".to_owned(),
            required: 2,
            approved_by: vec![],
        }),
        link: Some("https://grace.example.com/runs/run-1".to_owned()),
        at: 1,
        message: None,
    }
}

#[tokio::test]
async fn slack_takes_the_message_and_its_update_and_refuses_what_it_documents() {
    let slack = SlackServer::start("xoxb-test-token", "signing", &[("C0OPS0001", "ops")]);
    let client = SlackClient::new(
        http("slack"),
        Secret::new("xoxb-test-token"),
        &slack.api_url(),
    );
    let posted = client
        .post("#ops", &render(&notice(NoticeKind::WaitingApproval)))
        .await
        .unwrap();
    assert_eq!(posted.channel, "C0OPS0001");
    client
        .update(
            &posted.channel,
            &posted.ts,
            &render(&notice(NoticeKind::Succeeded)),
        )
        .await
        .unwrap();
    let messages = slack.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].updates, 1);
    assert!(
        slack.faults.violations().is_empty(),
        "{:?}",
        slack.faults.violations()
    );

    let unknown = client
        .post("#nowhere", &render(&notice(NoticeKind::Failed)))
        .await;
    assert!(
        matches!(&unknown, Err(DeliveryError::Rejected { message, .. }) if message.ends_with("channel_not_found")),
        "{unknown:?}"
    );
    let gone = client
        .update("C0OPS0001", "1.2", &render(&notice(NoticeKind::Failed)))
        .await;
    assert!(
        matches!(&gone, Err(DeliveryError::Rejected { message, .. }) if message.ends_with("message_not_found"))
    );
    let stranger = SlackClient::new(http("slack"), Secret::new("xoxb-other"), &slack.api_url());
    let refused = stranger
        .post("#ops", &render(&notice(NoticeKind::Failed)))
        .await;
    assert!(
        matches!(&refused, Err(DeliveryError::Rejected { message, .. }) if message.ends_with("invalid_auth"))
    );

    slack.faults.push(Fault::RateLimited(Some(7)));
    assert_eq!(
        client
            .post("#ops", &render(&notice(NoticeKind::Failed)))
            .await,
        Err(DeliveryError::RateLimited {
            vendor: "slack",
            retry_after: Duration::from_secs(7)
        })
    );
    slack.faults.push(Fault::Status(503));
    let e = client
        .post("#ops", &render(&notice(NoticeKind::Failed)))
        .await
        .unwrap_err();
    assert!(matches!(e, DeliveryError::Transient { .. }), "{e:?}");
}

#[tokio::test]
async fn pagerduty_opens_acknowledges_and_resolves_one_incident_per_dedup_key() {
    let pd = PagerDutyServer::start(ROUTING_KEY);
    let client = EventsClient::new(
        http("pagerduty"),
        Secret::new(ROUTING_KEY),
        &pd.events_url(),
    )
    .unwrap();
    let trigger = Trigger {
        summary: "GRACE: scale-on-latency on api-asg: waiting for approval".to_owned(),
        source: "api-asg".to_owned(),
        severity: Severity::Error,
        component: Some("scale-on-latency".to_owned()),
        group: None,
        class: Some("metrics.latency".to_owned()),
        details: serde_json::Map::new(),
        link: Some("https://grace.example.com/runs/run-1".to_owned()),
    };
    client
        .send(Action::Trigger, "grace/run/run-1", Some(&trigger))
        .await
        .unwrap();
    client
        .send(Action::Acknowledge, "grace/run/run-1", None)
        .await
        .unwrap();
    assert_eq!(pd.incidents()["grace/run/run-1"].status, "acknowledged");
    client
        .send(Action::Resolve, "grace/run/run-1", None)
        .await
        .unwrap();
    assert_eq!(pd.incidents()["grace/run/run-1"].status, "resolved");
    assert_eq!(pd.incidents()["grace/run/run-1"].opened, 1);
    assert!(
        pd.faults.violations().is_empty(),
        "{:?}",
        pd.faults.violations()
    );

    // PagerDuty's 429 has no Retry-After: the default wait.
    pd.faults.push(Fault::RateLimited(None));
    let e = client
        .send(Action::Resolve, "grace/run/run-1", None)
        .await
        .unwrap_err();
    assert_eq!(
        e.retry_after(),
        Some(grace_notify::http::DEFAULT_RETRY_AFTER)
    );
    // A key PagerDuty does not know is an invalid event, final.
    let other = EventsClient::new(
        http("pagerduty"),
        Secret::new("0123456789abcdef0123456789abcdef"),
        &pd.events_url(),
    )
    .unwrap();
    let e = other
        .send(Action::Resolve, "grace/run/run-1", None)
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
}

#[tokio::test]
async fn jira_creates_finds_comments_on_and_resolves_an_issue() {
    let jira = JiraServer::start("grace@example.com", "jira-token", "OPS");
    let client = JiraClient::new(
        http("jira"),
        &jira.url(),
        JiraAuth::Basic {
            email: "grace@example.com".to_owned(),
            token: Secret::new("jira-token"),
        },
    );
    let issue = NewIssue {
        project: "OPS".to_owned(),
        issue_type: "Task".to_owned(),
        summary: "GRACE: scale-on-latency on api-asg: failed\nsecond line".to_owned(),
        description: vec!["The run failed.".to_owned(), String::new()],
        link: Some("https://grace.example.com/runs/run-1".to_owned()),
        labels: vec!["grace".to_owned(), "grace-run-run-1".to_owned()],
    };
    let key = client.create(&issue).await.unwrap();
    assert_eq!(key, "OPS-1");
    assert_eq!(
        client
            .find_by_label("OPS", "grace-run-run-1")
            .await
            .unwrap(),
        Some(key.clone())
    );
    assert_eq!(
        client
            .find_by_label("OPS", "grace-run-other")
            .await
            .unwrap(),
        None
    );
    client
        .comment(&key, &["Retried and succeeded.".to_owned()], None)
        .await
        .unwrap();
    assert!(client.transition(&key, "Done").await.unwrap());
    // Already there: not an error, and nothing moved.
    assert!(!client.transition(&key, "Done").await.unwrap());
    let issues = jira.issues();
    assert_eq!(issues[0].status, "Done");
    assert_eq!(issues[0].comments.len(), 1);
    assert!(
        jira.faults.violations().is_empty(),
        "{:?}",
        jira.faults.violations()
    );

    let e = client.transition(&key, "Teleported").await.unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Rejected { message, .. } if message.contains("Reopen")),
        "{e:?}"
    );
    jira.faults.push(Fault::RateLimited(Some(3)));
    assert_eq!(
        client
            .comment(&key, &["x".to_owned()], None)
            .await
            .unwrap_err()
            .retry_after(),
        Some(Duration::from_secs(3))
    );
    let wrong = JiraClient::new(
        http("jira"),
        &jira.url(),
        JiraAuth::Basic {
            email: "grace@example.com".to_owned(),
            token: Secret::new("stale"),
        },
    );
    let e = wrong
        .comment(&key, &["x".to_owned()], None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Rejected { message, .. } if message.contains("401")),
        "{e:?}"
    );
    let mut bad = issue.clone();
    bad.project = "NOPE".to_owned();
    let e = client.create(&bad).await.unwrap_err();
    assert!(
        matches!(&e, DeliveryError::Rejected { message, .. } if message.contains("valid project is required")),
        "{e:?}"
    );
}
