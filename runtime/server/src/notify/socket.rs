//! Slack's Socket Mode: for a GRACE that Slack cannot reach, it opens a WebSocket to Slack and
//! takes the buttons' presses over it, instead of at `/v1/integrations/slack/interactions`.
//!
//! With `[integrations.slack] app_token` (an app-level token, `xapp-…`, with
//! `connections:write`):
//! 1. `apps.connections.open` gives a WebSocket URL;
//! 2. Slack sends `hello`, then an envelope per interaction; each is acknowledged at once with
//!    its `envelope_id` (Slack wants it within three seconds), then a button press is taken
//!    exactly as over HTTP ([`super::slack_in::take`]): the connection, opened with the app's
//!    own token, authenticates Slack, so no signature is involved;
//! 3. on `disconnect` (Slack refreshes connections every few hours), a closed socket or an
//!    error, it connects again, waiting 1 s after a failure, doubling to a minute.
//!
//! Frames are read up to 512 KiB; a connection that says nothing for two minutes (Slack pings
//! far more often) is dropped and opened again.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use grace_notify::Secret;
use grace_notify::slack::socket::{Envelope, MAX_ENVELOPE_BYTES, ack, open, parse};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::app::App;
use crate::supervisor::TaskError;

/// The longest silence before the connection is opened again.
const SILENCE: Duration = Duration::from_secs(120);
/// The longest wait between two attempts to connect.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The app-level token and where the Web API is.
pub struct SocketMode {
    /// `xapp-…`.
    pub app_token: Secret,
    /// The Web API's base.
    pub api_url: String,
}

/// The task: connected to Slack for as long as the server runs.
pub async fn run(app: App) -> Result<(), TaskError> {
    let Some(socket) = app.notifier.socket.as_ref() else {
        return Ok(());
    };
    let http = grace_notify::http::Http::new("slack", super::config::REQUEST_TIMEOUT)
        .map_err(TaskError::new)?;
    let mut wait = Duration::from_secs(1);
    loop {
        match session(&app, socket, &http).await {
            // Slack asked for a new connection (it refreshes them every few hours): one, a
            // second later, never a tight loop.
            Ok(reason) if reason != "disconnect: link_disabled" => {
                tracing::info!("Slack's Socket Mode connection ended ({reason}); connecting again");
                wait = Duration::from_secs(1);
                tokio::time::sleep(wait).await;
            }
            ended => {
                let (e, asked) = match ended {
                    Ok(reason) => (format!("{reason} (Socket Mode is off for this app)"), None),
                    Err(failed) => failed,
                };
                app.metrics.webhook("slack-socket", "disconnected");
                let pause = asked.unwrap_or(wait).max(wait);
                tracing::warn!(
                    "Slack's Socket Mode: {e}; connecting again in {}s",
                    pause.as_secs()
                );
                tokio::time::sleep(pause).await;
                wait = (wait * 2).min(MAX_WAIT);
            }
        }
    }
}

fn tls() -> Result<tokio_tungstenite::Connector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
}

/// One connection, until Slack asks to reconnect (`Ok`, with why) or it fails (`Err`, with
/// how long Slack asked to wait, if it did).
async fn session(
    app: &App,
    socket: &SocketMode,
    http: &grace_notify::http::Http,
) -> Result<String, (String, Option<Duration>)> {
    let url = open(http, &socket.app_token, &socket.api_url)
        .await
        .map_err(|e| (e.to_string(), e.retry_after()))?;
    session_on(app, &url).await.map_err(|e| (e, None))
}

/// The connection to `url`.
async fn session_on(app: &App, url: &str) -> Result<String, String> {
    let connector = if url.starts_with("wss://") {
        Some(tls()?)
    } else {
        Some(tokio_tungstenite::Connector::Plain)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_ENVELOPE_BYTES))
        .max_frame_size(Some(MAX_ENVELOPE_BYTES));
    let (mut ws, _) = tokio::time::timeout(
        super::config::REQUEST_TIMEOUT,
        tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, connector),
    )
    .await
    .map_err(|_| "the WebSocket did not open in time".to_owned())?
    .map_err(|e| format!("cannot open the WebSocket: {e}"))?;
    app.metrics.webhook("slack-socket", "connected");
    loop {
        let frame = match tokio::time::timeout(SILENCE, ws.next()).await {
            Err(_) => return Err("no word from Slack for two minutes".to_owned()),
            Ok(None) => return Ok("closed".to_owned()),
            Ok(Some(Err(e))) => return Err(format!("the WebSocket failed: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Message::Text(text) => text,
            Message::Ping(data) => {
                ws.send(Message::Pong(data))
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
            Message::Close(_) => return Ok("closed by Slack".to_owned()),
            _ => continue,
        };
        match parse(text.as_str()) {
            Ok(Envelope::Hello) => {}
            Ok(Envelope::Disconnect { reason }) => return Ok(format!("disconnect: {reason}")),
            Ok(Envelope::Interactive {
                envelope_id,
                payload,
            }) => {
                ws.send(Message::text(ack(&envelope_id)))
                    .await
                    .map_err(|e| e.to_string())?;
                match grace_notify::slack::parse_payload(&payload) {
                    Ok(press) => {
                        let app = app.clone();
                        tokio::spawn(async move {
                            super::slack_in::take(
                                press,
                                &app.notifier,
                                &app.scheduler,
                                &app.auth.tokens,
                                &app.metrics,
                            )
                            .await;
                        });
                    }
                    Err(e) => {
                        app.metrics.webhook("slack", "refused");
                        tracing::warn!(
                            "an interaction over Socket Mode was not a GRACE button press: {e}"
                        );
                    }
                }
            }
            Ok(Envelope::Other { envelope_id, kind }) => {
                tracing::debug!(%kind, "a Socket Mode envelope GRACE does not act on");
                ws.send(Message::text(ack(&envelope_id)))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Err(e) => tracing::warn!("Slack's Socket Mode sent something unreadable: {e}"),
        }
    }
}
