//! A [`Notice`] in Block Kit: a header, the run's facts, the change waiting for approval with
//! its risk explanation and the Approve / Deny buttons, the outcome, and a link to the run.
//!
//! Every text from outside (playbook and resource names, reasons, outcomes) is escaped as
//! Slack's `mrkdwn` requires (`&`, `<`, `>`), so it can neither mention people (`<!channel>`,
//! `<@U…>`) nor make a link; and cut to Block Kit's limits: header 150 characters, section
//! text 3,000, field 2,000, button value 2,000, fallback text 40,000 (Slack truncates there).

use serde_json::{Value, json};

use crate::notice::{Notice, NoticeKind};
use crate::text::{cut, printable};

/// The `action_id` of the Approve button.
pub const APPROVE_ACTION: &str = "grace.approve";
/// The `action_id` of the Deny button.
pub const DENY_ACTION: &str = "grace.deny";
/// The `block_id` of the buttons' block.
pub const ACTIONS_BLOCK: &str = "grace.approval";

/// Block Kit's limits (api.slack.com/reference/block-kit).
const HEADER_CHARS: usize = 150;
const SECTION_CHARS: usize = 3000;
const FIELD_CHARS: usize = 2000;
const FALLBACK_CHARS: usize = 3000;
/// Factors listed in the risk explanation.
const FACTORS_SHOWN: usize = 5;

/// A message: the fallback `text` (notifications, screen readers) and its `blocks`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Plain text, shown where blocks are not.
    pub text: String,
    /// The Block Kit blocks.
    pub blocks: Value,
}

/// Escapes `text` for `mrkdwn` (Slack: "Escaping text"), after taking out control characters.
pub fn escape(text: &str) -> String {
    printable(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` escaped, then cut to `max` characters without cutting an escape in two.
fn escaped(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for c in printable(text).chars() {
        let piece = match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            c => c.to_string(),
        };
        let n = piece.chars().count();
        if count + n > max.saturating_sub(1) {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        count += n;
    }
    out
}

/// A `mrkdwn` text object, `verbatim` so that Slack does not turn bare URLs, channel names or
/// `@here` into links and mentions on its own.
fn mrkdwn(text: String) -> Value {
    json!({ "type": "mrkdwn", "text": text, "verbatim": true })
}

fn plain(text: &str, max: usize) -> Value {
    json!({ "type": "plain_text", "text": cut(&printable(text), max), "emoji": false })
}

/// A playbook's message: its text as plain text (Slack shows it as written: no mentions, links
/// or formatting), then who sent it.
fn render_message(notice: &Notice, text: &str) -> Rendered {
    let from = format!(
        "from {} on {}, {}",
        escaped(&notice.playbook, 200),
        escaped(&notice.resource, 200),
        run_reference(notice)
    );
    Rendered {
        // Shown alone in notifications: it says who is speaking.
        text: format!(
            "{}: {}",
            escaped(&notice.playbook, 100),
            escaped(text, FALLBACK_CHARS - 110)
        ),
        blocks: json!([
            { "type": "section", "text": plain(text, SECTION_CHARS) },
            { "type": "context", "elements": [mrkdwn(from)] },
        ]),
    }
}

/// The run, linked to the dashboard when GRACE has a public address.
fn run_reference(notice: &Notice) -> String {
    match &notice.link {
        Some(link) => format!("<{}|run {}>", escape(link), escape(&notice.run_id)),
        None => format!("run {}", escape(&notice.run_id)),
    }
}

/// The message for `notice`. Buttons appear only while the run waits for approval.
pub fn render(notice: &Notice) -> Rendered {
    if let (NoticeKind::Message, Some(text)) = (notice.kind, &notice.message) {
        return render_message(notice, text);
    }
    let headline = notice.headline();
    let mut blocks = vec![json!({ "type": "header", "text": plain(&headline, HEADER_CHARS) })];
    let mut fields = vec![
        mrkdwn(format!(
            "*Playbook*\n{}",
            escaped(&notice.playbook, FIELD_CHARS - 20)
        )),
        mrkdwn(format!(
            "*Resource*\n{}",
            escaped(&notice.resource, FIELD_CHARS - 20)
        )),
        mrkdwn(format!(
            "*Event*\n{}",
            escaped(&notice.event_type, FIELD_CHARS - 20)
        )),
    ];
    if let Some(incident) = &notice.incident {
        fields.push(mrkdwn(format!(
            "*Incident*\n{}",
            escaped(incident, FIELD_CHARS - 20)
        )));
    }
    blocks.push(json!({ "type": "section", "fields": fields }));
    if let Some(approval) = &notice.approval {
        let factors: Vec<String> = approval
            .factors
            .iter()
            .take(FACTORS_SHOWN)
            .map(|(name, value)| format!("{} {value:+.0}", escape(name)))
            .collect();
        let mut text = format!(
            "*Change:* {} on {}\n*Risk:* {:.0}: {}",
            escaped(&approval.action, 200),
            escaped(&approval.resource, 500),
            approval.risk,
            escaped(&approval.reason, 1000),
        );
        if !factors.is_empty() {
            text.push_str(&format!("\n*Factors:* {}", factors.join(", ")));
        }
        blocks.push(json!({ "type": "section", "text": mrkdwn(cut(&text, SECTION_CHARS)) }));
        let approved = if approval.approved_by.is_empty() {
            "nobody yet".to_owned()
        } else {
            approval
                .approved_by
                .iter()
                .map(|p| escaped(p, 100))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rule = if approval.required > 1 {
            format!(
                "Needs {} approvals from different people (two-person rule).",
                approval.required
            )
        } else {
            "Needs one approval.".to_owned()
        };
        blocks.push(json!({
            "type": "context",
            "elements": [mrkdwn(format!("{rule} Approved by: {approved}."))],
        }));
        if notice.kind == NoticeKind::WaitingApproval {
            blocks.push(json!({
                "type": "actions",
                "block_id": ACTIONS_BLOCK,
                "elements": [
                    {
                        "type": "button",
                        "text": plain("Approve", 75),
                        "style": "primary",
                        "action_id": APPROVE_ACTION,
                        "value": cut(&approval.id, 2000),
                    },
                    {
                        "type": "button",
                        "text": plain("Deny", 75),
                        "style": "danger",
                        "action_id": DENY_ACTION,
                        "value": cut(&approval.id, 2000),
                    },
                ],
            }));
        }
    }
    if let Some(outcome) = &notice.outcome {
        blocks.push(json!({
            "type": "section",
            "text": mrkdwn(format!("*Outcome:* {}", escaped(outcome, SECTION_CHARS - 20))),
        }));
    }
    blocks.push(json!({ "type": "context", "elements": [mrkdwn(run_reference(notice))] }));
    Rendered {
        // The fallback text is read as `mrkdwn`, and shown in notifications: escaped too.
        text: escaped(&headline, FALLBACK_CHARS),
        blocks: Value::Array(blocks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::NoticeApproval;

    pub(crate) fn notice(kind: NoticeKind) -> Notice {
        Notice {
            kind,
            run_id: "0d6b4c1e-run".to_owned(),
            playbook: "restart-web".to_owned(),
            resource: "web-1".to_owned(),
            event_type: "alert.firing".to_owned(),
            incident: Some("inc-7".to_owned()),
            outcome: None,
            approval: Some(NoticeApproval {
                id: "ap-1".to_owned(),
                action: "containers::Restart".to_owned(),
                resource: "web-1".to_owned(),
                risk: 72.0,
                factors: vec![("blast_radius".to_owned(), 30.0)],
                reason: "risk 72 is above 60".to_owned(),
                required: 2,
                approved_by: vec![],
            }),
            link: Some("https://grace.example.com/runs/0d6b4c1e-run".to_owned()),
            at: 0,
            message: None,
        }
    }

    #[test]
    fn a_playbooks_message_is_plain_text_signed_with_its_run() {
        let mut n = notice(NoticeKind::Message);
        n.approval = None;
        n.message = Some("*rolling back* <!channel> <https://evil.example|web> & \u{1b}[2J".into());
        let r = render(&n);
        let blocks = r.blocks.as_array().unwrap();
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert_eq!(blocks[0]["text"]["emoji"], false);
        let shown = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(shown.starts_with("*rolling back* <!channel>"), "{shown}");
        assert!(!shown.contains('\u{1b}'), "{shown}");
        // The fallback text is mrkdwn: escaped.
        assert!(!r.text.contains("<!channel>"), "{}", r.text);
        assert!(r.text.contains("&lt;!channel&gt;"), "{}", r.text);
        assert!(
            r.text.starts_with("restart-web: *rolling back*"),
            "{}",
            r.text
        );
        let from = blocks[1].to_string();
        assert!(from.contains("restart-web on web-1"), "{from}");
        assert!(from.contains("|run 0d6b4c1e-run>"), "{from}");
        assert!(actions(&r.blocks).is_none());
    }

    fn actions(blocks: &Value) -> Option<&Value> {
        blocks
            .as_array()
            .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
    }

    #[test]
    fn a_run_waiting_for_approval_has_approve_and_deny_buttons_naming_the_approval() {
        let r = render(&notice(NoticeKind::WaitingApproval));
        let actions = actions(&r.blocks).unwrap();
        let buttons = actions["elements"].as_array().unwrap();
        assert_eq!(buttons[0]["action_id"], APPROVE_ACTION);
        assert_eq!(buttons[0]["value"], "ap-1");
        assert_eq!(buttons[0]["style"], "primary");
        assert_eq!(buttons[1]["action_id"], DENY_ACTION);
        assert_eq!(buttons[1]["style"], "danger");
        let all = r.blocks.to_string();
        assert!(all.contains("two-person rule"), "{all}");
        assert!(all.contains("blast_radius +30"), "{all}");
        assert_eq!(r.text, "restart-web on web-1: waiting for approval");
    }

    #[test]
    fn a_finished_run_has_no_buttons_and_its_outcome() {
        let mut n = notice(NoticeKind::Succeeded);
        n.outcome = Some("restarted web-1".to_owned());
        let r = render(&n);
        assert!(actions(&r.blocks).is_none());
        assert!(r.blocks.to_string().contains("*Outcome:* restarted web-1"));
    }

    #[test]
    fn text_from_outside_cannot_mention_people_or_make_links() {
        let mut n = notice(NoticeKind::Failed);
        n.resource = "<!channel> & <https://evil.example|click>".to_owned();
        n.outcome = Some("<@U123> \u{1b}[2J".to_owned());
        let r = render(&n);
        assert!(!r.text.contains("<!channel>"), "{}", r.text);
        let blocks = r.blocks.as_array().unwrap();
        // The header is plain text, which Slack shows as written and never parses.
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        let all = serde_json::to_string(&blocks[1..]).unwrap();
        assert!(!all.contains("<!channel>"), "{all}");
        assert!(!all.contains("<@U123>"), "{all}");
        assert!(!all.contains("<https://evil"), "{all}");
        assert!(all.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"));
        assert!(!all.contains('\u{1b}'));
    }

    #[test]
    fn long_texts_are_cut_to_block_kits_limits_without_splitting_an_escape() {
        let mut n = notice(NoticeKind::Failed);
        n.playbook = "p".repeat(500);
        n.outcome = Some("<".repeat(5000));
        let r = render(&n);
        let blocks = r.blocks.as_array().unwrap();
        let header = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(header.chars().count() <= HEADER_CHARS);
        let outcome = blocks
            .iter()
            .find_map(|b| {
                b["text"]["text"]
                    .as_str()
                    .filter(|t| t.starts_with("*Outcome"))
            })
            .unwrap();
        assert!(
            outcome.chars().count() <= SECTION_CHARS,
            "{}",
            outcome.len()
        );
        assert!(
            outcome.ends_with("&lt;…"),
            "{}",
            &outcome[outcome.len() - 20..]
        );
    }
}
