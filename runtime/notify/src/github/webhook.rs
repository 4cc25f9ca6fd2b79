//! Reading and checking a GitHub webhook delivery (see the module above).

use serde_json::Value;

use crate::Secret;
use crate::signature::verify_hex;

/// GitHub's signature header.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The event name header.
pub const EVENT_HEADER: &str = "x-github-event";
/// The delivery id header.
pub const DELIVERY_HEADER: &str = "x-github-delivery";
/// The largest delivery read. GitHub caps payloads at 25 MB; deployment events are a few KB,
/// and the server's own body limit applies first.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The deployment states GitHub sends: the webhook schema's and the REST API's (`inactive`).
pub const STATES: [&str; 8] = [
    "error",
    "failure",
    "inactive",
    "in_progress",
    "queued",
    "pending",
    "success",
    "waiting",
];

/// Whether `header` signs `body` under `secret`.
pub fn verify(secret: &Secret, header: Option<&str>, body: &[u8]) -> bool {
    header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .is_some_and(|hex| verify_hex(secret.expose().as_bytes(), &[body], hex))
}

/// The `X-Hub-Signature-256` of `body`, as GitHub computes it (for tests).
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(crate::signature::hmac_sha256(
            secret.expose().as_bytes(),
            &[body]
        ))
    )
}

/// A deployment, or a change of its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// `deployment` or `deployment_status`.
    pub event: String,
    /// The repository (`owner/name`).
    pub repository: String,
    /// The environment (`production`, ...).
    pub environment: String,
    /// `deployment.id`.
    pub id: u64,
    /// `deployment_status.id`, for a `deployment_status`.
    pub status_id: Option<u64>,
    /// The commit deployed.
    pub sha: String,
    /// The branch or tag.
    pub git_ref: String,
    /// For `deployment_status`, its state (one of [`STATES`]).
    pub state: Option<String>,
    /// Who (`sender.login`).
    pub sender: Option<String>,
    /// When: `deployment_status.created_at`, else `deployment.created_at` (RFC 3339).
    pub at: String,
}

/// Why a delivery is not a deployment event GRACE reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// An event GRACE does not take (GRACE answers `2xx` and ignores it, so GitHub does not
    /// count the hook as failing; `ping` is one).
    #[error("GRACE takes `deployment` and `deployment_status` events, not `{0}`")]
    Ignored(String),
    /// A field is missing or malformed.
    #[error("`{field}`: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: &'static str, message: &str) -> WebhookError {
    WebhookError::Invalid {
        field,
        message: message.to_owned(),
    }
}

impl Deployment {
    /// What identifies this delivery's content, signed with it: `deployment:<id>` or
    /// `deployment_status:<id>`. GitHub's `X-GitHub-Delivery` header is not signed, so a
    /// replay with a new one must still be recognised: this is the key to take it once by.
    pub fn signed_key(&self) -> String {
        match self.status_id {
            Some(status) => format!("deployment_status:{status}"),
            None => format!("deployment:{}", self.id),
        }
    }
}

/// Reads a delivery of event `event` (the `X-GitHub-Event` header) with body `body` of
/// content type `content_type`.
pub fn parse(event: &str, content_type: &str, body: &[u8]) -> Result<Deployment, WebhookError> {
    if event != "deployment" && event != "deployment_status" {
        return Err(WebhookError::Ignored(crate::text::cut(
            &crate::text::printable(event),
            60,
        )));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(invalid("payload", "larger than 1 MiB"));
    }
    let json: Value = if content_type.starts_with("application/x-www-form-urlencoded") {
        let payload = form_urlencoded::parse(body)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| invalid("payload", "missing from the form"))?;
        serde_json::from_str(&payload).map_err(|_| invalid("payload", "not JSON"))?
    } else {
        serde_json::from_slice(body).map_err(|_| invalid("payload", "not JSON"))?
    };
    // The event's name comes in a header, which is not signed: it must agree with the body,
    // which is, or a `deployment_status` body could be replayed as a `deployment`.
    if json.get("deployment_status").is_some_and(Value::is_object) != (event == "deployment_status")
    {
        return Err(invalid(
            "x-github-event",
            "does not match the body (a deployment_status body carries `deployment_status`)",
        ));
    }
    let text = |pointer: &str, field: &'static str, max: usize| -> Result<String, WebhookError> {
        let v = json
            .pointer(pointer)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(field, "missing"))?;
        if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
            return Err(invalid(field, "empty, too long or not printable"));
        }
        Ok(v.to_owned())
    };
    let repository = text("/repository/full_name", "repository.full_name", 200)?;
    let id = json
        .pointer("/deployment/id")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("deployment.id", "missing or not a number"))?;
    let sha = text("/deployment/sha", "deployment.sha", 64)?;
    if !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid("deployment.sha", "not a commit hash"));
    }
    let git_ref = text("/deployment/ref", "deployment.ref", 255)?;
    let status_id = if event == "deployment_status" {
        Some(
            json.pointer("/deployment_status/id")
                .and_then(Value::as_u64)
                .ok_or_else(|| invalid("deployment_status.id", "missing or not a number"))?,
        )
    } else {
        None
    };
    let (environment, state, at) = if event == "deployment_status" {
        let state = text("/deployment_status/state", "deployment_status.state", 20)?;
        if !STATES.contains(&state.as_str()) {
            return Err(invalid("deployment_status.state", "not a deployment state"));
        }
        (
            text(
                "/deployment_status/environment",
                "deployment_status.environment",
                255,
            )?,
            Some(state),
            text(
                "/deployment_status/created_at",
                "deployment_status.created_at",
                64,
            )?,
        )
    } else {
        (
            text("/deployment/environment", "deployment.environment", 255)?,
            None,
            text("/deployment/created_at", "deployment.created_at", 64)?,
        )
    };
    let sender = json
        .pointer("/sender/login")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 100 && !s.chars().any(char::is_control))
        .map(str::to_owned);
    Ok(Deployment {
        event: event.to_owned(),
        repository,
        environment,
        id,
        status_id,
        sha,
        git_ref,
        state,
        sender,
        at,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn deployment_status(state: &str) -> Value {
        json!({
            "action": "created",
            "deployment_status": {
                "id": 209916254, "state": state, "description": "", "environment": "production",
                "created_at": "2019-05-15T15:20:55Z", "updated_at": "2019-05-15T15:20:55Z"
            },
            "deployment": {
                "id": 145988746, "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "ref": "master",
                "task": "deploy", "payload": {}, "environment": "production",
                "created_at": "2019-05-15T15:20:53Z"
            },
            "repository": { "id": 186853002, "full_name": "Codertocat/Hello-World" },
            "sender": { "login": "Codertocat", "id": 21031067 }
        })
    }

    #[test]
    fn a_deployment_status_names_the_repository_environment_and_state() {
        let body = deployment_status("success").to_string();
        let d = parse("deployment_status", "application/json", body.as_bytes()).unwrap();
        assert_eq!(d.repository, "Codertocat/Hello-World");
        assert_eq!(d.environment, "production");
        assert_eq!(d.state.as_deref(), Some("success"));
        assert_eq!(d.id, 145_988_746);
        assert_eq!(d.signed_key(), "deployment_status:209916254");
        assert_eq!(d.at, "2019-05-15T15:20:55Z");
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &body)
            .finish();
        let from_form = parse(
            "deployment_status",
            "application/x-www-form-urlencoded",
            form.as_bytes(),
        )
        .unwrap();
        assert_eq!(from_form, d);
        // The same body under another event name (the header is not signed): refused.
        assert!(matches!(
            parse("deployment", "application/json", body.as_bytes()),
            Err(WebhookError::Invalid {
                field: "x-github-event",
                ..
            })
        ));
        let mut created = deployment_status("success");
        created.as_object_mut().unwrap().remove("deployment_status");
        let d = parse(
            "deployment",
            "application/json",
            created.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(d.state, None);
        assert_eq!(d.at, "2019-05-15T15:20:53Z");
    }

    #[test]
    fn other_events_are_ignored_and_bad_payloads_refused() {
        assert_eq!(
            parse("ping", "application/json", b"{}"),
            Err(WebhookError::Ignored("ping".to_owned()))
        );
        let bad = deployment_status("exploded").to_string();
        assert!(matches!(
            parse("deployment_status", "application/json", bad.as_bytes()),
            Err(WebhookError::Invalid {
                field: "deployment_status.state",
                ..
            })
        ));
        let mut v = deployment_status("success");
        v["deployment"]["sha"] = json!("not-a-sha; rm -rf");
        assert!(matches!(
            parse(
                "deployment_status",
                "application/json",
                v.to_string().as_bytes()
            ),
            Err(WebhookError::Invalid {
                field: "deployment.sha",
                ..
            })
        ));
    }

    #[test]
    fn the_signature_covers_the_raw_body() {
        let secret = Secret::new("It's a Secret to Everybody");
        let sig = sign(&secret, b"Hello, World!");
        assert_eq!(
            sig,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert!(verify(&secret, Some(&sig), b"Hello, World!"));
        assert!(!verify(&secret, Some(&sig), b"Hello, World"));
        assert!(!verify(
            &secret,
            Some(&sig.replace("sha256=", "sha1=")),
            b"Hello, World!"
        ));
        assert!(!verify(&secret, None, b"Hello, World!"));
    }
}
