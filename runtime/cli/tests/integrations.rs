//! Slack, PagerDuty, Jira and GitHub around a real incident, against the vendors' test servers
//! (`tests/vendors`: each checks every request as the vendor documents it).
//!
//! The recorded latency incident makes `scale-on-latency` scale a production group, which two
//! people must approve: the run is posted to Slack with Approve / Deny buttons, opened in
//! PagerDuty and in Jira; two Slack users press Approve; the run goes on, and the message, the
//! PagerDuty incident and the Jira issue follow it to the end.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::approvals::{add_policies, start_incident, trust_section};
use common::{Server, rt};
use grace_testkit::poll_until;
use grace_vendor_testservers::jira::JiraServer;
use grace_vendor_testservers::pagerduty::PagerDutyServer;
use grace_vendor_testservers::slack::{Message, SlackServer};
use grace_vendor_testservers::{Fault, github, pagerduty};
use serde_json::{Value, json};

const SLACK_TOKEN: &str = "xoxb-0000-grace-test";
const SLACK_SIGNING: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const ROUTING_KEY: &str = "e93facc04764012d7bfb002500d5d1a6";
const JIRA_TOKEN: &str = "jira-api-token";
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const PAGERDUTY_SECRET: &str = "grace-pd-test-secret";

struct Vendors {
    slack: SlackServer,
    pagerduty: PagerDutyServer,
    jira: JiraServer,
}

impl Vendors {
    fn start() -> Vendors {
        Vendors {
            slack: SlackServer::start(SLACK_TOKEN, SLACK_SIGNING, &[("C0OPS0001", "ops")]),
            pagerduty: PagerDutyServer::start(ROUTING_KEY),
            jira: JiraServer::start("grace@example.com", JIRA_TOKEN, "OPS"),
        }
    }

    fn assert_no_violations(&self) {
        assert!(
            self.slack.faults.violations().is_empty(),
            "Slack: {:?}",
            self.slack.faults.violations()
        );
        assert!(
            self.pagerduty.faults.violations().is_empty(),
            "PagerDuty: {:?}",
            self.pagerduty.faults.violations()
        );
        assert!(
            self.jira.faults.violations().is_empty(),
            "Jira: {:?}",
            self.jira.faults.violations()
        );
    }
}

fn secret(dir: &Path, name: &str, value: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `grace.toml`: production groups (two approvers), the integrations, one route.
fn config(dir: &Path, v: &Vendors) -> String {
    config_with(
        dir,
        v,
        &format!(
            "signing_secret = {{ file = \"{}\" }}",
            secret(dir, "slack-signing", SLACK_SIGNING)
        ),
    )
}

/// [`config`], with `slack` (how presses come in) in `[integrations.slack]`.
fn config_with(dir: &Path, v: &Vendors, slack: &str) -> String {
    let text = format!(
        r#"{trust}
[integrations]
public_url = "https://grace.example.com"

[integrations.slack]
token = {{ file = "{slack_token}" }}
{slack}
api_url = "{slack_api}"
approvers = {{ U0ALICE01 = "alice", U0BOB0001 = "bob", U0CAROL01 = "carol" }}

[integrations.pagerduty]
routing_key = {{ file = "{routing_key}" }}
events_url = "{pagerduty_url}"
webhook_secret = {{ file = "{pagerduty_secret}" }}
services = {{ PF9KMXH = "api-asg" }}

[integrations.jira]
url = "{jira_url}"
email = "grace@example.com"
token = {{ file = "{jira_token}" }}
project = "OPS"

[integrations.github]
webhook_secret = {{ file = "{github_secret}" }}
resources = {{ "acme/api" = "api-asg" }}

[[notify]]
name = "oncall"
on = ["run.waiting-approval", "run.succeeded", "run.failed"]
to = ["slack:#ops", "pagerduty", "jira"]
"#,
        trust = trust_section(""),
        slack_token = secret(dir, "slack-token", SLACK_TOKEN),
        slack_api = v.slack.api_url(),
        routing_key = secret(dir, "pd-key", ROUTING_KEY),
        pagerduty_url = v.pagerduty.events_url(),
        pagerduty_secret = secret(dir, "pd-webhook", PAGERDUTY_SECRET),
        jira_url = v.jira.url(),
        jira_token = secret(dir, "jira-token", JIRA_TOKEN),
        github_secret = secret(dir, "github-secret", GITHUB_SECRET),
    );
    let path = dir.join("grace.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Posts `body` with `headers` and no token, as a vendor does.
fn post_signed(
    server: &Server,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, Value) {
    rt().block_on(async {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", server.url))
            .body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

/// `user` presses `action_id` in the message `ts`, as Slack sends it: the status GRACE answers.
fn press(server: &Server, v: &Vendors, user: &str, ts: &str, action_id: &str) -> u16 {
    let (headers, body) = v.slack.press(user, ts, action_id);
    post_signed(server, INTERACTIONS, &headers, body).0
}

/// The interactivity URL.
const INTERACTIONS: &str = "/v1/integrations/slack/interactions";

/// The vendors, a server configured for them with production changes needing two people,
/// and `approvers` (local principals holding `approve` tokens).
fn scene(approvers: &[&str]) -> (tempfile::TempDir, Vendors, Server, String) {
    let dir = common::data_dir();
    let v = Vendors::start();
    let cfg = config(dir.path(), &v);
    let server = Server::start(dir.path(), &["--config", &cfg]);
    add_policies(&server, dir.path());
    for person in approvers {
        server.token_with(person, &["approve"]);
    }
    (dir, v, server, cfg)
}

fn the_message(slack: &SlackServer) -> Message {
    let messages = slack.messages();
    assert_eq!(messages.len(), 1, "one message per run: {messages:?}");
    messages[0].clone()
}

/// `Some` once the run's one message shows it succeeded, without buttons.
fn shows_outcome(slack: &SlackServer) -> Option<()> {
    let m = the_message(slack);
    (!has_buttons(&m) && m.text.contains("succeeded")).then_some(())
}

fn has_buttons(m: &Message) -> bool {
    m.blocks
        .as_array()
        .is_some_and(|b| b.iter().any(|b| b["type"] == "actions"))
}

#[test]
fn two_slack_users_approve_and_pagerduty_and_jira_follow_the_run_to_its_end() {
    let (_dir, v, server, _cfg) = scene(&["alice", "bob"]);
    // carol is mapped in Slack but holds no `approve` token.
    server.token_with("carol", &["read"]);

    let run = start_incident(&server);
    let message = poll_until(
        "the run's Slack message with buttons",
        Duration::from_secs(60),
        || v.slack.messages().into_iter().find(has_buttons),
    );
    let text = message.blocks.to_string();
    assert!(text.contains("two-person rule"), "{text}");
    assert!(
        text.contains(&format!("https://grace.example.com/runs/{run}")),
        "{text}"
    );
    poll_until("PagerDuty's incident", Duration::from_secs(30), || {
        v.pagerduty
            .incidents()
            .get(&format!("grace/run/{run}"))
            .filter(|i| i.status == "triggered")
            .cloned()
    });
    poll_until("the Jira issue", Duration::from_secs(30), || {
        v.jira
            .issues()
            .into_iter()
            .find(|i| i.labels.contains(&format!("grace-run-{run}")))
    });

    // Someone Slack does not map, and someone without `approve`: told, not counted.
    for stranger in ["U0EVE0001", "U0CAROL01"] {
        let (headers, body) = v.slack.press(stranger, &message.ts, "grace.approve");
        let (status, _) = post_signed(&server, INTERACTIONS, &headers, body);
        assert_eq!(status, 200);
    }
    poll_until("two users told why", Duration::from_secs(10), || {
        (v.slack.ephemeral().len() == 2).then_some(())
    });
    let pending = common::approvals::approvals(&server, "pending");
    assert_eq!(pending.len(), 1);
    assert!(
        pending[0]["approved_by"].as_array().unwrap().is_empty(),
        "{pending:?}"
    );

    // A forged signature, and a replay of a press that was taken.
    let (headers, body) = v.slack.press("U0ALICE01", &message.ts, "grace.approve");
    let mut forged = headers.clone();
    forged[2].1 = format!("v0={}", "0".repeat(64));
    let (status, refused) = post_signed(&server, INTERACTIONS, &forged, body.clone());
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["error"]["field"], "x-slack-signature");
    let (status, _) = post_signed(&server, INTERACTIONS, &headers, body.clone());
    assert_eq!(status, 200);
    let (status, _) = post_signed(&server, INTERACTIONS, &headers, body);
    assert_eq!(status, 401, "a replayed press");

    // One of two: the message shows who approved, and keeps its buttons.
    poll_until("alice shown as approving", Duration::from_secs(30), || {
        let m = the_message(&v.slack);
        (m.blocks.to_string().contains("Approved by: alice") && has_buttons(&m)).then_some(())
    });
    // alice again (a second press, a new signature) is still one person.
    assert_eq!(
        press(&server, &v, "U0ALICE01", &message.ts, "grace.approve"),
        200
    );
    assert_eq!(common::approvals::approvals(&server, "pending").len(), 1);

    assert_eq!(
        press(&server, &v, "U0BOB0001", &message.ts, "grace.approve"),
        200
    );
    server.wait_state(&run, &["succeeded"]);

    poll_until(
        "the message showing the outcome without buttons",
        Duration::from_secs(60),
        || shows_outcome(&v.slack),
    );
    poll_until(
        "PagerDuty's incident resolved",
        Duration::from_secs(60),
        || {
            v.pagerduty
                .incidents()
                .get(&format!("grace/run/{run}"))
                .filter(|i| i.status == "resolved")
                .cloned()
        },
    );
    let issue = poll_until("the Jira issue done", Duration::from_secs(60), || {
        v.jira.issues().into_iter().find(|i| i.status == "Done")
    });
    assert!(!issue.comments.is_empty());
    v.assert_no_violations();

    // What a vendor shows is recorded a moment after: wait for the records.
    let delivered = poll_until("every delivery recorded", Duration::from_secs(30), || {
        let (status, list) = server.get("/v1/notifications?state=delivered");
        assert_eq!(status, 200, "{list}");
        let delivered = list["notifications"].as_array().unwrap().clone();
        ["slack:#ops", "pagerduty", "jira"]
            .iter()
            .all(|c| delivered.iter().filter(|n| n["channel"] == *c).count() >= 2)
            .then_some(delivered)
    });
    assert!(
        server.metric("grace_notifications_total{vendor=\"slack\",result=\"delivered\"}") >= 2.0
    );
    let listed = server.grace_with(&["notifications", "list", "--state", "delivered"]);
    let out = common::stdout(&listed);
    assert!(listed.status.success(), "{out}{}", common::stderr(&listed));
    assert!(
        out.contains("slack:#ops") && out.contains("run.succeeded"),
        "{out}"
    );
    let first = delivered[0]["id"].as_u64().unwrap().to_string();
    let shown = common::stdout(&server.grace_with(&["notifications", "show", &first]));
    assert!(shown.contains("delivered"), "{shown}");
}

#[test]
fn a_vendor_that_limits_or_fails_delays_its_notifications_only_and_they_arrive() {
    let (_dir, v, server, _cfg) = scene(&[]);
    v.slack.faults.push(Fault::RateLimited(Some(1)));
    v.slack.faults.push(Fault::Status(503));
    v.pagerduty.faults.push(Fault::Status(500));
    v.jira.faults.push(Fault::RateLimited(Some(1)));

    let run = start_incident(&server);
    // The run got to its approval without waiting for anyone's delivery.
    server.wait_state(&run, &["waiting-approval"]);
    poll_until(
        "Slack's message after a 429 and a 503",
        Duration::from_secs(60),
        || v.slack.messages().into_iter().find(has_buttons),
    );
    poll_until(
        "PagerDuty's incident after a 500",
        Duration::from_secs(60),
        || {
            v.pagerduty
                .incidents()
                .get(&format!("grace/run/{run}"))
                .cloned()
        },
    );
    poll_until(
        "the Jira issue after a 429",
        Duration::from_secs(60),
        || v.jira.issues().into_iter().next(),
    );
    assert_eq!(v.jira.issues().len(), 1, "one issue, however many attempts");
    v.assert_no_violations();
    assert!(server.metric("grace_notifications_total{vendor=\"slack\",result=\"retried\"}") >= 2.0);
    // The message is on Slack a moment before its record says so: wait for the record.
    let slack = poll_until(
        "the Slack notification recorded delivered",
        Duration::from_secs(30),
        || {
            let (_, list) = server.get("/v1/notifications");
            list["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["channel"] == "slack:#ops" && n["state"] == "delivered")
                .cloned()
        },
    );
    assert_eq!(slack["state"], "delivered", "{slack}");
    // The 429 was waited out, not counted: the 503 and the delivery are.
    assert_eq!(slack["attempts"], 2, "{slack}");
}

#[test]
fn deployments_and_pagerduty_incidents_come_in_signed_once_each() {
    let dir = common::data_dir();
    let v = Vendors::start();
    let cfg = config(dir.path(), &v);
    let server = Server::start(dir.path(), &["--config", &cfg]);

    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let payload = github::deployment_status("acme/api", "production", "success", &now);
    let (headers, body) = github::delivery(
        GITHUB_SECRET,
        "deployment_status",
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        &payload,
    );
    let (status, answer) = post_signed(&server, "/v1/sources/github", &headers, body.clone());
    assert_eq!(status, 202, "{answer}");
    // GitHub's redelivery of the same delivery: taken, not ingested again.
    let (status, answer) = post_signed(&server, "/v1/sources/github", &headers, body.clone());
    assert_eq!((status, answer["duplicate"].clone()), (200, json!(true)));
    // A replay with a new delivery id (the header is not signed): the same content, taken once.
    let (replayed, _) = github::delivery(
        GITHUB_SECRET,
        "deployment_status",
        "99999999-cc78-11e3-81ab-4c9367dc0958",
        &payload,
    );
    let (status, answer) = post_signed(&server, "/v1/sources/github", &replayed, body.clone());
    assert_eq!((status, answer["duplicate"].clone()), (200, json!(true)));
    // A deployment of a repository the configuration does not list: ignored.
    let stranger = github::deployment_status("acme/api-asg", "production", "success", &now);
    let (headers_s, body_s) = github::delivery(
        GITHUB_SECRET,
        "deployment_status",
        "88888888-cc78-11e3-81ab-4c9367dc0958",
        &stranger,
    );
    let (status, answer) = post_signed(&server, "/v1/sources/github", &headers_s, body_s);
    assert_eq!(status, 200, "{answer}");
    assert!(answer["ignored"].is_string(), "{answer}");
    // A delivery signed long ago: refused.
    let old =
        github::deployment_status("acme/api", "production", "failure", "2026-01-01T00:00:00Z");
    let (headers_o, body_o) = github::delivery(
        GITHUB_SECRET,
        "deployment_status",
        "77777777-cc78-11e3-81ab-4c9367dc0958",
        &old,
    );
    let (status, answer) = post_signed(&server, "/v1/sources/github", &headers_o, body_o);
    assert_eq!(
        (status, answer["error"]["field"].clone()),
        (400, json!("deployment_status.created_at")),
        "{answer}"
    );
    let mut forged = headers.clone();
    forged.retain(|(k, _)| k != "x-hub-signature-256");
    forged.push((
        "x-hub-signature-256".to_owned(),
        grace_notify_sign("other secret", &body),
    ));
    let (status, refused) = post_signed(&server, "/v1/sources/github", &forged, body);
    assert_eq!(status, 401, "{refused}");
    let (headers, body) = github::delivery(
        GITHUB_SECRET,
        "ping",
        "11111111-cc78-11e3-81ab-4c9367dc0958",
        &json!({"zen": "Keep it logically awesome."}),
    );
    assert_eq!(
        post_signed(&server, "/v1/sources/github", &headers, body).0,
        200
    );

    let incident = json!({"event": {
        "id": "5ac64822-4adc-4fda-ade0-410becf0de4f", "event_type": "incident.triggered",
        "resource_type": "incident", "occurred_at": now, "agent": null, "client": null,
        "data": {"id": "PGR0VU2", "type": "incident", "number": 2, "status": "triggered",
                 "title": "API latency", "urgency": "high",
                 "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                 "service": {"id": "PF9KMXH", "summary": "API Service", "type": "service_reference"}}}});
    let (headers, body) = pagerduty::webhook(PAGERDUTY_SECRET, "f0a0c4f4-webhook-1", &incident);
    let (status, answer) = post_signed(&server, "/v1/sources/pagerduty", &headers, body.clone());
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        post_signed(&server, "/v1/sources/pagerduty", &headers, body.clone()).0,
        200
    );
    let (renamed, _) = pagerduty::webhook(PAGERDUTY_SECRET, "f0a0c4f4-webhook-9", &incident);
    let (status, answer) = post_signed(&server, "/v1/sources/pagerduty", &renamed, body.clone());
    assert_eq!(
        (status, answer["duplicate"].clone()),
        (200, json!(true)),
        "a new X-Webhook-Id, the same signed event"
    );
    let (bad_headers, _) = pagerduty::webhook("not the secret", "f0a0c4f4-webhook-2", &incident);
    assert_eq!(
        post_signed(&server, "/v1/sources/pagerduty", &bad_headers, body).0,
        401
    );

    let events = server.events();
    let deployments: Vec<&Value> = events.iter().filter(|e| e["source"] == "github").collect();
    assert_eq!(deployments.len(), 1, "{events:?}");
    assert_eq!(deployments[0]["event_type"], "deployment.success");
    assert_eq!(deployments[0]["resource"], "api-asg");
    let incidents: Vec<&Value> = events
        .iter()
        .filter(|e| e["source"] == "pagerduty")
        .collect();
    assert_eq!(incidents.len(), 1, "{events:?}");
    assert_eq!(incidents[0]["event_type"], "pagerduty.incident.triggered");
    assert_eq!(incidents[0]["resource"], "api-asg");
    assert_eq!(incidents[0]["payload"]["title"], "API latency");
    assert!(server.metric("grace_webhooks_total{source=\"github\",result=\"replayed\"}") >= 1.0);
}

fn grace_notify_sign(secret: &str, body: &[u8]) -> String {
    let (headers, _) = github::delivery(
        secret,
        "deployment_status",
        "x",
        &serde_json::from_slice::<Value>(body).unwrap(),
    );
    headers
        .into_iter()
        .find(|(k, _)| k == "x-hub-signature-256")
        .unwrap()
        .1
}

#[test]
fn notifications_owed_when_the_server_is_killed_arrive_after_its_restart() {
    let dir = common::data_dir();
    let v = Vendors::start();
    let cfg = config(dir.path(), &v);
    let mut server = Server::start(dir.path(), &["--config", &cfg]);
    add_policies(&server, dir.path());
    // Slack is down: every attempt fails until the restart.
    for _ in 0..50 {
        v.slack.faults.push(Fault::Status(503));
    }
    let run = start_incident(&server);
    server.wait_state(&run, &["waiting-approval"]);
    poll_until(
        "a Slack notification tried and pending",
        Duration::from_secs(60),
        || {
            let (_, list) = server.get("/v1/notifications?state=pending");
            list["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["channel"] == "slack:#ops" && n["attempts"].as_u64() >= Some(1))
                .cloned()
        },
    );
    server.kill9();
    while v.slack.faults.next().is_some() {}
    assert!(v.slack.messages().is_empty());

    let _server = Server::start(dir.path(), &["--config", &cfg]);
    poll_until(
        "the run's message after the restart",
        Duration::from_secs(60),
        || v.slack.messages().into_iter().find(has_buttons),
    );
    assert_eq!(v.slack.messages().len(), 1, "told once");
    v.assert_no_violations();
}

#[test]
fn over_socket_mode_presses_count_and_slack_refreshing_the_connection_loses_none() {
    let dir = common::data_dir();
    let v = Vendors::start();
    let app_token = secret(dir.path(), "slack-app-token", &v.slack.app_token);
    let cfg = config_with(
        dir.path(),
        &v,
        &format!("app_token = {{ file = \"{app_token}\" }}"),
    );
    let server = Server::start(dir.path(), &["--config", &cfg]);
    add_policies(&server, dir.path());
    for person in ["alice", "bob"] {
        server.token_with(person, &["approve"]);
    }
    poll_until(
        "GRACE connected over Socket Mode",
        Duration::from_secs(30),
        || (v.slack.connections() == 1).then_some(()),
    );
    // Without a signing secret, nothing is taken over HTTP.
    let (status, _) = post_signed(&server, INTERACTIONS, &[], b"payload=%7B%7D".to_vec());
    assert_eq!(status, 404);

    let run = start_incident(&server);
    let message = poll_until(
        "the run's Slack message with buttons",
        Duration::from_secs(60),
        || v.slack.messages().into_iter().find(has_buttons),
    );
    let first = v
        .slack
        .press_over_socket("U0ALICE01", &message.ts, "grace.approve");
    poll_until(
        "alice's press acknowledged and counted",
        Duration::from_secs(30),
        || {
            let pending = common::approvals::approvals(&server, "pending");
            (v.slack.acks().contains(&first)
                && pending
                    .first()
                    .is_some_and(|a| !a["approved_by"].as_array().unwrap().is_empty()))
            .then_some(())
        },
    );
    // Slack refreshes the connection: GRACE connects again and bob's press arrives on the new one.
    v.slack.disconnect();
    poll_until("GRACE connected again", Duration::from_secs(30), || {
        (v.slack.connections() == 2).then_some(())
    });
    let second = v
        .slack
        .press_over_socket("U0BOB0001", &message.ts, "grace.approve");
    server.wait_state(&run, &["succeeded"]);
    assert!(v.slack.acks().contains(&second));
    v.assert_no_violations();
}

#[test]
fn a_slow_vendor_holds_up_only_its_own_notifications() {
    let (_dir, v, server, _cfg) = scene(&["alice", "bob"]);
    // PagerDuty answers each of its next requests after 6 s (within the 10 s a request may take).
    for _ in 0..4 {
        v.pagerduty.faults.push(Fault::Delay(6_000));
    }
    let run = start_incident(&server);
    let message = poll_until("the run's Slack message", Duration::from_secs(60), || {
        v.slack.messages().into_iter().find(has_buttons)
    });
    for user in ["U0ALICE01", "U0BOB0001"] {
        assert_eq!(press(&server, &v, user, &message.ts, "grace.approve"), 200);
    }
    server.wait_state(&run, &["succeeded"]);
    // Slack follows the run while PagerDuty is still answering slowly.
    poll_until(
        "Slack showing the outcome, PagerDuty still slow",
        Duration::from_secs(10),
        || shows_outcome(&v.slack),
    );
    assert!(
        v.pagerduty.faults.peek().is_some()
            || v.pagerduty
                .incidents()
                .values()
                .all(|i| i.status != "resolved")
    );
    poll_until(
        "PagerDuty resolved in the end",
        Duration::from_secs(60),
        || {
            v.pagerduty
                .incidents()
                .get(&format!("grace/run/{run}"))
                .filter(|i| i.status == "resolved")
                .cloned()
        },
    );
    v.assert_no_violations();
}

#[test]
fn a_playbooks_message_reaches_its_granted_slack_channel_once_as_written() {
    let (_dir, v, server, _cfg) = scene(&[]);
    let manifest = std::fs::read_to_string(
        grace_testkit::playbooks_dir().join("fixtures/notifier/playbook.toml"),
    )
    .unwrap();
    assert_eq!(
        server.upload(&manifest, common::component("notifier")).0,
        201
    );
    let text = "<!channel> p95 *doubled* since <https://evil.example|deploy 4f2c>";
    let event = json!({
        "event_type": "test.notify", "source": "test", "actor": "tests", "resource": "api-asg",
        "payload": { "messages": [
            { "channel": "slack:#ops", "text": text },
            { "channel": "slack:#general", "text": "not granted" },
        ] },
    });
    let (status, body) = server.post("/v1/events", event);
    assert!(status == 202 || status == 200, "{status} {body}");
    let id = poll_until("the notifier's run", Duration::from_secs(60), || {
        server.runs_of("notifier").first()?["id"]
            .as_str()
            .map(str::to_owned)
    });
    let run = server.wait_state(&id, &["succeeded"]);
    let answers: Value =
        serde_json::from_str(run["outcome"]["details"]["answers"].as_str().unwrap()).unwrap();
    let notification = answers[0]["ok"]
        .as_u64()
        .unwrap_or_else(|| panic!("{answers}"));
    assert_eq!(answers[1]["error"]["kind"], "denied", "{answers}");

    // Slack got it once, in the channel granted, shown as written: no mention, no link.
    let posted = poll_until("the message in Slack", Duration::from_secs(30), || {
        v.slack
            .messages()
            .into_iter()
            .find(|m| m.blocks[0]["text"]["text"] == text)
    });
    assert_eq!(posted.channel, "C0OPS0001");
    assert_eq!(posted.blocks[0]["text"]["type"], "plain_text");
    assert!(!posted.text.contains("<!channel>"), "{}", posted.text);
    assert!(
        posted.blocks[1]
            .to_string()
            .contains("from notifier on api-asg"),
        "{}",
        posted.blocks[1]
    );
    let (_, listed) = server.get(&format!("/v1/notifications/{notification}"));
    assert_eq!(listed["route"], "notify.send", "{listed}");
    assert_eq!(listed["channel"], "slack:#ops", "{listed}");
    let listed = poll_until("delivered", Duration::from_secs(30), || {
        let (_, n) = server.get(&format!("/v1/notifications/{notification}"));
        (n["state"] == "delivered").then_some(n)
    });
    assert!(
        listed["detail"].as_str().unwrap().starts_with("posted"),
        "{listed}"
    );
    // Nothing reached #general, and the run's own notice is its own message.
    let copies = v
        .slack
        .messages()
        .iter()
        .filter(|m| m.blocks[0]["text"]["text"] == text)
        .count();
    assert_eq!(copies, 1);
    v.assert_no_violations();
}
