//! Socket Mode: for a GRACE that Slack cannot reach, the app opens a WebSocket to Slack
//! (`apps.connections.open` with an app-level token, `xapp-…`) and Slack sends each request as
//! an envelope over it; the app acknowledges each within three seconds by sending back its
//! `envelope_id`.
//!
//! ```json
//! {"envelope_id": "…", "type": "interactive", "accepts_response_payload": false,
//!  "payload": { "type": "block_actions", … }}
//! ```
//!
//! Besides `interactive`, Slack sends `hello` once connected and `disconnect` when the app
//! should reconnect (`refresh_requested`, `warning`, `link_disabled`); `events_api` and
//! `slash_commands` are acknowledged and otherwise ignored.

use serde::Deserialize;
use serde_json::{Value, json};

use super::VENDOR;
use crate::http::Http;
use crate::{DeliveryError, Secret};

/// The largest envelope read from the socket.
pub const MAX_ENVELOPE_BYTES: usize = 512 * 1024;

/// One message from Slack over the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// Connected.
    Hello,
    /// Slack asks the app to reconnect, for `reason`.
    Disconnect {
        /// `refresh_requested`, `warning`, `link_disabled`...
        reason: String,
    },
    /// A button press or another interaction, to acknowledge with `envelope_id`.
    Interactive {
        /// What to acknowledge.
        envelope_id: String,
        /// The interaction.
        payload: Value,
    },
    /// Anything else that carries an id: acknowledged, not acted on.
    Other {
        /// What to acknowledge.
        envelope_id: String,
        /// Its type.
        kind: String,
    },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    envelope_id: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    reason: Option<String>,
}

/// Reads one text frame.
pub fn parse(frame: &str) -> Result<Envelope, String> {
    if frame.len() > MAX_ENVELOPE_BYTES {
        return Err(format!(
            "an envelope larger than {MAX_ENVELOPE_BYTES} bytes"
        ));
    }
    let raw: Raw = serde_json::from_str(frame).map_err(|e| format!("not an envelope: {e}"))?;
    let envelope_id = raw.envelope_id.filter(|id| {
        !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    });
    Ok(match (raw.kind.as_str(), envelope_id) {
        ("hello", _) => Envelope::Hello,
        ("disconnect", _) => Envelope::Disconnect {
            reason: crate::text::cut(
                &crate::text::printable(raw.reason.as_deref().unwrap_or("")),
                100,
            ),
        },
        ("interactive", Some(envelope_id)) => Envelope::Interactive {
            envelope_id,
            payload: raw.payload.unwrap_or(Value::Null),
        },
        (kind, Some(envelope_id)) => Envelope::Other {
            envelope_id,
            kind: crate::text::cut(&crate::text::printable(kind), 60),
        },
        (kind, None) => {
            return Err(format!(
                "a `{}` envelope without a usable envelope_id",
                crate::text::cut(&crate::text::printable(kind), 60)
            ));
        }
    })
}

/// The acknowledgement of `envelope_id`.
pub fn ack(envelope_id: &str) -> String {
    json!({ "envelope_id": envelope_id }).to_string()
}

/// Whether a `ws://` URL's host is a loopback address.
fn loopback(url: &str) -> bool {
    let rest = url.strip_prefix("ws://").unwrap_or("");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Asks Slack for a WebSocket URL (`apps.connections.open`, with the app-level token).
pub async fn open(http: &Http, app_token: &Secret, api: &str) -> Result<String, DeliveryError> {
    let request = http
        .client()
        .post(format!(
            "{}/apps.connections.open",
            api.trim_end_matches('/')
        ))
        .bearer_auth(app_token.expose())
        .header("content-type", "application/x-www-form-urlencoded");
    let answer = http.send(request).await?;
    #[derive(Deserialize)]
    struct Opened {
        ok: bool,
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        error: Option<String>,
    }
    let opened: Opened = answer.json(VENDOR)?;
    match (opened.ok, opened.url) {
        // The socket is what tells Slack's envelopes from anyone's: TLS, unless both ends are
        // this machine (a test server).
        (true, Some(url))
            if url.starts_with("wss://") || (url.starts_with("ws://") && loopback(&url)) =>
        {
            Ok(url)
        }
        (true, _) => Err(DeliveryError::Transient {
            vendor: VENDOR,
            message: "apps.connections.open answered without a WebSocket URL".to_owned(),
        }),
        (false, _) => {
            let code = crate::text::cut(
                &crate::text::printable(opened.error.as_deref().unwrap_or("unknown_error")),
                100,
            );
            Err(if code == "ratelimited" {
                DeliveryError::RateLimited {
                    vendor: VENDOR,
                    retry_after: crate::http::retry_after(&answer.headers),
                }
            } else {
                DeliveryError::Rejected {
                    vendor: VENDOR,
                    message: format!("apps.connections.open: {code}"),
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn envelopes_are_read_by_type_and_acknowledged_by_id() {
        assert_eq!(
            parse(r#"{"type":"hello","num_connections":1,"debug_info":{}}"#).unwrap(),
            Envelope::Hello
        );
        assert_eq!(
            parse(r#"{"type":"disconnect","reason":"refresh_requested"}"#).unwrap(),
            Envelope::Disconnect {
                reason: "refresh_requested".to_owned()
            }
        );
        let e = parse(
            r#"{"envelope_id":"57d6a792-4d35-4d0b-b6aa-3361493e1caf","type":"interactive",
                "accepts_response_payload":false,"payload":{"type":"block_actions"}}"#,
        )
        .unwrap();
        let Envelope::Interactive {
            envelope_id,
            payload,
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!(payload["type"], "block_actions");
        assert_eq!(
            ack(&envelope_id),
            r#"{"envelope_id":"57d6a792-4d35-4d0b-b6aa-3361493e1caf"}"#
        );
        assert!(matches!(
            parse(r#"{"envelope_id":"x1","type":"events_api","payload":{}}"#).unwrap(),
            Envelope::Other { .. }
        ));
        assert!(parse(r#"{"envelope_id":"a\"b","type":"interactive"}"#).is_err());
        assert!(parse("not json").is_err());
        assert!(loopback("ws://127.0.0.1:9/link"));
        assert!(loopback("ws://[::1]:9/link"));
        assert!(!loopback("ws://wss-primary.slack.com/link"));
        assert!(!loopback("ws://10.0.0.1/link"));
    }
}
