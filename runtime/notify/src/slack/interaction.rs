//! A press of GRACE's Approve or Deny button, as Slack sends it: over HTTP, a form
//! (`application/x-www-form-urlencoded`) with one field, `payload`, holding the JSON of a
//! `block_actions` interaction; over Socket Mode, the same JSON as an envelope's `payload`.
//!
//! Only what GRACE acts on is read, and checked before anyone looks it up: the Slack user
//! (`user.id`), their workspace (`team.id`), the button (`actions[0].action_id`, one of
//! GRACE's two), the approval it names (`actions[0].value`), and the message it sits in
//! (`container.channel_id`, `container.message_ts`). Anything else is refused with the field
//! it is about.

use serde_json::Value;

use super::blocks::{APPROVE_ACTION, DENY_ACTION};

/// The largest form Slack is expected to send for one button press (the message's blocks are
/// in it).
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// Which button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    /// Approve.
    Approve,
    /// Deny.
    Deny,
}

/// One press of a GRACE button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Press {
    /// The Slack user who pressed (`U…` or `W…`).
    pub user: String,
    /// Their workspace (`T…`).
    pub team: String,
    /// Approve or deny.
    pub vote: Vote,
    /// The approval's id, from the button's value.
    pub approval: String,
    /// The channel of the message.
    pub channel: Option<String>,
    /// The message's `ts`.
    pub message_ts: Option<String>,
}

/// Why a request is not a press of a GRACE button.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct InteractionError {
    /// The field (`payload`, `user.id`, `actions[0].value`...).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> InteractionError {
    InteractionError {
        field,
        message: message.into(),
    }
}

/// Reads the form Slack posts.
pub fn parse_form(body: &[u8]) -> Result<Press, InteractionError> {
    if body.len() > MAX_FORM_BYTES {
        return Err(refuse("payload", "the form is too large"));
    }
    let mut payload = None;
    for (key, value) in form_urlencoded::parse(body) {
        if key == "payload" {
            if payload.is_some() {
                return Err(refuse("payload", "given twice"));
            }
            payload = Some(value.into_owned());
        }
    }
    let payload = payload.ok_or_else(|| refuse("payload", "missing"))?;
    let value: Value =
        serde_json::from_str(&payload).map_err(|e| refuse("payload", format!("not JSON: {e}")))?;
    parse_payload(&value)
}

/// Reads a `block_actions` payload (the form's `payload`, or a Socket Mode envelope's).
pub fn parse_payload(payload: &Value) -> Result<Press, InteractionError> {
    let kind = payload.get("type").and_then(Value::as_str);
    if kind != Some("block_actions") {
        return Err(refuse(
            "type",
            format!(
                "GRACE takes `block_actions` only, not {}",
                kind.map_or("nothing".to_owned(), |k| format!("`{}`", shown(k)))
            ),
        ));
    }
    let user = id(payload, "/user/id", "user.id", &['U', 'W'])?;
    let team = id(payload, "/team/id", "team.id", &['T', 'E'])?;
    let actions = payload
        .get("actions")
        .and_then(Value::as_array)
        .ok_or_else(|| refuse("actions", "missing"))?;
    let [action] = actions.as_slice() else {
        return Err(refuse("actions", "one button press is one action"));
    };
    let vote = match action.get("action_id").and_then(Value::as_str) {
        Some(APPROVE_ACTION) => Vote::Approve,
        Some(DENY_ACTION) => Vote::Deny,
        other => {
            return Err(refuse(
                "actions[0].action_id",
                format!("not a GRACE button: {}", other.map_or("none", shown_str)),
            ));
        }
    };
    let approval = action
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("actions[0].value", "missing"))?;
    if approval.is_empty()
        || approval.len() > 128
        || !approval
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(refuse("actions[0].value", "not an approval id"));
    }
    let channel = optional_id(payload, "/container/channel_id", "container.channel_id")?;
    let message_ts = match payload.pointer("/container/message_ts") {
        None | Some(Value::Null) => None,
        Some(Value::String(ts)) if is_ts(ts) => Some(ts.clone()),
        Some(_) => return Err(refuse("container.message_ts", "not a message timestamp")),
    };
    Ok(Press {
        user,
        team,
        vote,
        approval: approval.to_owned(),
        channel,
        message_ts,
    })
}

/// A Slack id: an uppercase letter among `first`, then 2 to 31 uppercase letters and digits.
fn id(
    payload: &Value,
    pointer: &str,
    field: &'static str,
    first: &[char],
) -> Result<String, InteractionError> {
    let value = payload
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| refuse(field, "missing"))?;
    if is_id(value, first) {
        Ok(value.to_owned())
    } else {
        Err(refuse(field, "not a Slack id"))
    }
}

fn optional_id(
    payload: &Value,
    pointer: &str,
    field: &'static str,
) -> Result<Option<String>, InteractionError> {
    match payload.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) if is_id(v, &['C', 'G', 'D']) => Ok(Some(v.clone())),
        Some(_) => Err(refuse(field, "not a Slack channel id")),
    }
}

fn is_id(value: &str, first: &[char]) -> bool {
    (3..=32).contains(&value.len())
        && value.starts_with(first)
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// `1712345678.123456`.
fn is_ts(ts: &str) -> bool {
    ts.len() <= 32
        && ts.split_once('.').is_some_and(|(s, f)| {
            !s.is_empty()
                && !f.is_empty()
                && s.chars().all(|c| c.is_ascii_digit())
                && f.chars().all(|c| c.is_ascii_digit())
        })
}

fn shown(text: &str) -> String {
    crate::text::cut(&crate::text::printable(text), 60)
}

fn shown_str(text: &str) -> &str {
    if text.len() <= 60 && !text.chars().any(char::is_control) {
        text
    } else {
        "(unreadable)"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    /// A `block_actions` payload as Slack documents it, for GRACE's Approve button.
    pub(crate) fn press(action_id: &str, value: &str) -> Value {
        json!({
            "type": "block_actions",
            "user": { "id": "U0123ABC", "username": "alice", "team_id": "T0001" },
            "api_app_id": "A0001",
            "token": "deprecated-verification-token",
            "container": {
                "type": "message", "message_ts": "1712345678.000100",
                "channel_id": "C0ABCDEF", "is_ephemeral": false
            },
            "trigger_id": "123.456.abc",
            "team": { "id": "T0001", "domain": "example" },
            "channel": { "id": "C0ABCDEF", "name": "ops" },
            "message": { "type": "message", "ts": "1712345678.000100", "text": "…" },
            "response_url": "https://hooks.slack.com/actions/T0001/1/abc",
            "actions": [{
                "action_id": action_id, "block_id": "grace.approval",
                "text": { "type": "plain_text", "text": "Approve" },
                "value": value, "style": "primary", "type": "button",
                "action_ts": "1712345680.000200"
            }]
        })
    }

    fn form(payload: &Value) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    #[test]
    fn a_press_of_approve_names_the_user_the_team_and_the_approval() {
        let p = parse_form(&form(&press(APPROVE_ACTION, "ap-1"))).unwrap();
        assert_eq!(
            p,
            Press {
                user: "U0123ABC".to_owned(),
                team: "T0001".to_owned(),
                vote: Vote::Approve,
                approval: "ap-1".to_owned(),
                channel: Some("C0ABCDEF".to_owned()),
                message_ts: Some("1712345678.000100".to_owned()),
            }
        );
        assert_eq!(
            parse_payload(&press(DENY_ACTION, "ap-1")).unwrap().vote,
            Vote::Deny
        );
    }

    #[test]
    fn anything_else_is_refused_naming_the_field() {
        let field = |p: &Value| parse_payload(p).unwrap_err().field;
        assert_eq!(
            field(&press("other.button", "ap-1")),
            "actions[0].action_id"
        );
        assert_eq!(field(&press(APPROVE_ACTION, "../ap")), "actions[0].value");
        assert_eq!(field(&press(APPROVE_ACTION, "")), "actions[0].value");
        let mut p = press(APPROVE_ACTION, "ap-1");
        p["user"]["id"] = json!("alice");
        assert_eq!(field(&p), "user.id");
        let mut p = press(APPROVE_ACTION, "ap-1");
        p["type"] = json!("view_submission");
        assert_eq!(field(&p), "type");
        let mut p = press(APPROVE_ACTION, "ap-1");
        p["actions"] = json!([p["actions"][0], p["actions"][0]]);
        assert_eq!(field(&p), "actions");
        let mut p = press(APPROVE_ACTION, "ap-1");
        p["container"]["message_ts"] = json!("now");
        assert_eq!(field(&p), "container.message_ts");
        assert_eq!(parse_form(b"payload=%7Bnot").unwrap_err().field, "payload");
        assert_eq!(parse_form(b"other=1").unwrap_err().field, "payload");
        let twice = [
            form(&press(APPROVE_ACTION, "a")),
            b"&".to_vec(),
            form(&press(DENY_ACTION, "a")),
        ]
        .concat();
        assert_eq!(parse_form(&twice).unwrap_err().field, "payload");
    }
}
