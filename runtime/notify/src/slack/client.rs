//! Slack's Web API: `chat.postMessage` and `chat.update`, with a bot token.
//!
//! Slack answers `200` with `{"ok": false, "error": "<code>"}` for most failures; the codes
//! sort as [`crate::http`] sorts statuses: `ratelimited` (also sent as `429` with
//! `Retry-After`) waits, Slack's own trouble (`internal_error`, `fatal_error`,
//! `service_unavailable`, `request_timeout`) is retried, every other code (`invalid_auth`,
//! `channel_not_found`, `not_in_channel`, `invalid_blocks`, `msg_too_long`, ...) is final.

use serde::Deserialize;
use serde_json::json;

use super::VENDOR;
use super::blocks::Rendered;
use crate::http::Http;
use crate::{DeliveryError, Secret};

/// Slack's error codes worth retrying.
const TRANSIENT_CODES: [&str; 4] = [
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// Where a message was posted: what `chat.update` needs to change it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The channel's id (Slack answers with the id even when a name was given).
    pub channel: String,
    /// The message's timestamp, its id within the channel.
    pub ts: String,
}

/// A Slack app's bot, posting through the Web API.
#[derive(Debug, Clone)]
pub struct SlackClient {
    http: Http,
    token: Secret,
    /// `https://slack.com/api`, or a test server's.
    api: String,
}

#[derive(Deserialize)]
struct ApiAnswer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
}

/// Checks a channel as `chat.postMessage` takes it: an id (`C0123ABCD`, `G…`, `D…`) or a
/// name (`#ops`, `ops`: lowercase letters, digits, `-`, `_`, `.`, at most 80).
pub fn validate_channel(channel: &str) -> Result<(), String> {
    grace_model::channel::validate_slack_channel(channel)
}

impl SlackClient {
    /// A client posting with `token` (a bot token, `xoxb-…`) to the Web API at `api`
    /// (`https://slack.com/api` unless testing).
    pub fn new(http: Http, token: Secret, api: &str) -> SlackClient {
        SlackClient {
            http,
            token,
            api: api.trim_end_matches('/').to_owned(),
        }
    }

    /// Posts `message` to `channel` (`chat.postMessage`).
    pub async fn post(&self, channel: &str, message: &Rendered) -> Result<Posted, DeliveryError> {
        let body = json!({
            "channel": channel,
            "text": message.text,
            "blocks": message.blocks,
            // Links GRACE writes are to its own pages: no previews of them.
            "unfurl_links": false,
            "unfurl_media": false,
        });
        self.call("chat.postMessage", &body).await
    }

    /// Replaces the message `ts` in `channel` with `message` (`chat.update`): the buttons go
    /// once the run no longer waits, and the outcome is added.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        message: &Rendered,
    ) -> Result<Posted, DeliveryError> {
        let body = json!({
            "channel": channel,
            "ts": ts,
            "text": message.text,
            "blocks": message.blocks,
        });
        self.call("chat.update", &body).await
    }

    /// Shows `text` to `user` alone in `channel` (`chat.postEphemeral`): why a button press
    /// was not taken.
    pub async fn tell(&self, channel: &str, user: &str, text: &str) -> Result<(), DeliveryError> {
        let body = json!({
            "channel": channel,
            "user": user,
            "text": super::blocks::escape(&crate::text::cut(text, 3000)),
        });
        self.send("chat.postEphemeral", &body).await.map(|_| ())
    }

    async fn call(&self, method: &str, body: &serde_json::Value) -> Result<Posted, DeliveryError> {
        let read = self.send(method, body).await?;
        match (read.channel, read.ts) {
            (Some(channel), Some(ts)) => Ok(Posted { channel, ts }),
            _ => Err(DeliveryError::Transient {
                vendor: VENDOR,
                message: format!("{method} answered ok without a channel and ts"),
            }),
        }
    }

    /// Calls Web API `method` with `body`: its answer when `ok`, else the error its code means
    /// (see the module documentation).
    async fn send(
        &self,
        method: &str,
        body: &serde_json::Value,
    ) -> Result<ApiAnswer, DeliveryError> {
        let request = self
            .http
            .client()
            .post(format!("{}/{method}", self.api))
            .bearer_auth(self.token.expose())
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string());
        let answer = self.http.send(request).await?;
        let read: ApiAnswer = answer.json(VENDOR)?;
        if read.ok {
            return Ok(read);
        }
        let code = read.error.unwrap_or_else(|| "unknown_error".to_owned());
        let code = crate::text::cut(&crate::text::printable(&code), 100);
        Err(if code == "ratelimited" {
            DeliveryError::RateLimited {
                vendor: VENDOR,
                // A `ratelimited` in a `200` has no `Retry-After`: the default wait then
                // reaches Slack's next per-minute window.
                retry_after: crate::http::retry_after(&answer.headers),
            }
        } else if TRANSIENT_CODES.contains(&code.as_str()) {
            DeliveryError::Transient {
                vendor: VENDOR,
                message: format!("{method}: {code}"),
            }
        } else {
            DeliveryError::Rejected {
                vendor: VENDOR,
                message: format!("{method}: {code}"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_ids_or_names() {
        for ok in ["C0123ABCD", "G0A1B2C3", "#ops", "ops-alerts", "team.web_1"] {
            assert!(validate_channel(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "#",
            "Ops",
            "ops alerts",
            "#ops\n",
            "<!channel>",
            "C",
            "x/../y",
        ] {
            assert!(validate_channel(bad).is_err(), "{bad:?}");
        }
    }
}
