//! Slack's Web API as a test server: `chat.postMessage`, `chat.update` and
//! `chat.postEphemeral` at `/api/<method>`, and Slack's side of pressing a message's button.
//!
//! Checked as Slack documents them (docs.slack.dev, "chat.postMessage", "chat.update",
//! "Block Kit" reference, "Rate limits"):
//! - `Authorization: Bearer <bot token>`: missing → `not_authed`, another → `invalid_auth`;
//! - `Content-Type: application/json; charset=utf-8` (JSON without a charset is accepted with
//!   Slack's `missing_charset` warning, and recorded as a violation);
//! - `channel`: a known channel's id or `#name` → else `channel_not_found`; `chat.update` takes
//!   the id only, and a `ts` of a message in it → else `message_not_found`;
//! - `text` or `blocks` → else `no_text`; blocks: at most 50, of known types, texts within
//!   their limits (header 150, section text 3,000, field 2,000 and at most 10 fields, button
//!   text 75, `action_id` 255 and unique in a message, `value` 2,000, `style` `primary` or
//!   `danger`) → else `invalid_blocks`;
//! - every error is `200 {"ok": false, "error": "<code>"}`, as Slack answers; a rate limit is
//!   `429` with `Retry-After` and `{"ok": false, "error": "ratelimited"}`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use grace_notify::Secret;
use serde_json::{Value, json};

use crate::{Fault, Faults, lock};

/// A message as Slack keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its channel's id.
    pub channel: String,
    /// Its timestamp (id).
    pub ts: String,
    /// The fallback text.
    pub text: String,
    /// The blocks.
    pub blocks: Value,
    /// How many times `chat.update` changed it.
    pub updates: u32,
}

#[derive(Default)]
struct World {
    /// The open Socket Mode connection's sender, if any.
    socket: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// Socket Mode connections opened so far.
    connections: u32,
    /// Envelope ids acknowledged over Socket Mode.
    acks: Vec<String>,
    /// Channel id → its name.
    channels: BTreeMap<String, String>,
    messages: Vec<Message>,
    ephemeral: Vec<(String, String, String)>,
    next_ts: u64,
}

/// The server's settings and state.
#[derive(Clone)]
pub struct SlackServer {
    addr: SocketAddr,
    token: String,
    /// The app-level token `apps.connections.open` takes (Socket Mode).
    pub app_token: String,
    /// The app's signing secret (for [`SlackServer::press`]).
    pub signing_secret: Secret,
    world: Arc<Mutex<World>>,
    /// Faults and the request log.
    pub faults: Faults,
}

impl SlackServer {
    /// Starts it, on its own runtime, accepting `token` and knowing `channels` (`(id, name)`).
    pub fn start(token: &str, signing_secret: &str, channels: &[(&str, &str)]) -> SlackServer {
        let (token, signing_secret) = (token.to_owned(), signing_secret.to_owned());
        let channels: Vec<(String, String)> = channels
            .iter()
            .map(|(i, n)| ((*i).to_owned(), (*n).to_owned()))
            .collect();
        crate::on_own_runtime(move || {
            Box::pin(async move {
                let world = World {
                    channels: channels.into_iter().collect(),
                    next_ts: 1,
                    ..World::default()
                };
                let mut server = SlackServer {
                    addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                    token,
                    app_token: "xapp-1-A0GRACE01-test".to_owned(),
                    signing_secret: Secret::new(signing_secret),
                    world: Arc::new(Mutex::new(world)),
                    faults: Faults::default(),
                };
                let router = Router::new()
                    .route("/api/apps.connections.open", post(connections_open))
                    .route("/link", axum::routing::get(link))
                    .route("/api/{method}", post(api))
                    .with_state(server.clone());
                server.addr = crate::serve(router).await;
                server
            })
        })
    }

    /// The Web API's base URL (`http://127.0.0.1:<port>/api`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Every message, in the order posted.
    pub fn messages(&self) -> Vec<Message> {
        lock(&self.world).messages.clone()
    }

    /// The messages shown to one user alone: `(channel, user, text)`.
    pub fn ephemeral(&self) -> Vec<(String, String, String)> {
        lock(&self.world).ephemeral.clone()
    }

    /// Socket Mode connections opened so far.
    pub fn connections(&self) -> u32 {
        lock(&self.world).connections
    }

    /// The envelope ids GRACE acknowledged over Socket Mode.
    pub fn acks(&self) -> Vec<String> {
        lock(&self.world).acks.clone()
    }

    /// Sends the press of [`SlackServer::press`] as a Socket Mode envelope instead; its
    /// `envelope_id`. Panics when no connection is open.
    pub fn press_over_socket(&self, user: &str, ts: &str, action_id: &str) -> String {
        let payload = self.payload(user, ts, action_id);
        let world = lock(&self.world);
        let sender = world
            .socket
            .as_ref()
            .unwrap_or_else(|| panic!("no Socket Mode connection is open"));
        let id = format!(
            "env-{}",
            world.acks.len() + world.connections as usize * 1000 + 1
        );
        let envelope = json!({
            "envelope_id": id, "type": "interactive",
            "accepts_response_payload": false, "payload": payload,
        });
        let _ = sender.send(envelope.to_string());
        id
    }

    /// Asks the connected app to reconnect, as Slack does every few hours.
    pub fn disconnect(&self) {
        if let Some(sender) = lock(&self.world).socket.as_ref() {
            let _ = sender.send(json!({ "type": "disconnect", "reason": "refresh_requested", "debug_info": { "host": "test" } }).to_string());
        }
    }

    /// What Slack sends GRACE's interactivity URL when `user` (of team `T0GRACE01`) presses the
    /// button whose `action_id` is `action_id` in the message `ts`: the form body and its
    /// signature headers, signed now.
    pub fn press(&self, user: &str, ts: &str, action_id: &str) -> (Vec<(String, String)>, Vec<u8>) {
        let payload = self.payload(user, ts, action_id);
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = grace_notify::slack::signature::sign(&self.signing_secret, now, &body);
        let headers = vec![
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("x-slack-request-timestamp".to_owned(), now.to_string()),
            ("x-slack-signature".to_owned(), signature),
        ];
        (headers, body)
    }

    /// The `block_actions` payload of `user` pressing `action_id` in the message `ts`.
    fn payload(&self, user: &str, ts: &str, action_id: &str) -> Value {
        let message = self
            .messages()
            .into_iter()
            .find(|m| m.ts == ts)
            .unwrap_or_else(|| panic!("no message {ts}"));
        let button = message
            .blocks
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| {
                let block_id = b["block_id"].clone();
                b["elements"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |e| (block_id.clone(), e))
            })
            .find(|(_, e)| e["action_id"] == action_id)
            .unwrap_or_else(|| {
                panic!("message {ts} has no button {action_id}: {}", message.blocks)
            });
        let (block_id, element) = button;
        let payload = json!({
            "type": "block_actions",
            "user": { "id": user, "username": user.to_lowercase(), "team_id": "T0GRACE01" },
            "api_app_id": "A0GRACE01",
            "token": "deprecated-verification-token",
            "container": {
                "type": "message", "message_ts": message.ts,
                "channel_id": message.channel, "is_ephemeral": false
            },
            "trigger_id": "1.2.3",
            "team": { "id": "T0GRACE01", "domain": "grace-tests" },
            "channel": { "id": message.channel, "name": "ops" },
            "message": { "type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks },
            "response_url": "https://hooks.slack.com/actions/T0GRACE01/1/x",
            "actions": [{
                "action_id": element["action_id"], "block_id": block_id,
                "text": element["text"], "value": element["value"],
                "style": element["style"], "type": "button",
                "action_ts": "1700000000.000001"
            }]
        });
        payload
    }
}

/// `apps.connections.open`: the app-level token, then a WebSocket URL.
async fn connections_open(State(server): State<SlackServer>, headers: HeaderMap) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let response = if auth != Some(server.app_token.as_str()) {
        server
            .faults
            .violation("apps.connections.open: not the app-level token");
        error("invalid_auth")
    } else {
        // The handlers' copy of the server was made before its port was known: the client's
        // `Host` is where it reached this server.
        let host = headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1");
        ok(json!({ "url": format!("ws://{host}/link?ticket=t") }))
    };
    server.faults.received(
        "POST",
        "/api/apps.connections.open",
        response.status().as_u16(),
    );
    response
}

/// The Socket Mode WebSocket: `hello`, then whatever the test sends; acknowledgements kept.
async fn link(
    State(server): State<SlackServer>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    upgrade.on_upgrade(move |mut socket| async move {
        use axum::extract::ws::Message as Ws;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        {
            let mut world = lock(&server.world);
            world.socket = Some(tx);
            world.connections += 1;
        }
        let hello = json!({ "type": "hello", "num_connections": 1, "connection_info": { "app_id": "A0GRACE01" } });
        if socket.send(Ws::Text(hello.to_string().into())).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(text) => {
                        if socket.send(Ws::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Ws::Text(text))) => {
                        let ack: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                        match ack.get("envelope_id").and_then(Value::as_str) {
                            Some(id) => lock(&server.world).acks.push(id.to_owned()),
                            None => server.faults.violation(format!("Socket Mode: not an acknowledgement: {text}")),
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
            }
        }
    })
}

fn ok(mut body: Value) -> Response {
    body["ok"] = json!(true);
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn error(code: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "ok": false, "error": code })),
    )
        .into_response()
}

async fn api(
    State(server): State<SlackServer>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = handle(&server, &method, &headers, &body);
    server.faults.received(
        "POST",
        &format!("/api/{method}"),
        response.status().as_u16(),
    );
    response
}

fn handle(server: &SlackServer, method: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    match server.faults.next() {
        Some(Fault::RateLimited(after)) => {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({ "ok": false, "error": "ratelimited" })),
            )
                .into_response();
            if let Some(s) = after
                && let Ok(v) = s.to_string().parse()
            {
                r.headers_mut().insert("retry-after", v);
            }
            return r;
        }
        Some(Fault::Status(s)) => {
            return (
                StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "upstream trouble",
            )
                .into_response();
        }
        Some(Fault::Delay(_)) | None => {}
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match auth {
        None => {
            server
                .faults
                .violation(format!("{method}: no bearer token"));
            return error("not_authed");
        }
        Some(t) if t != server.token => {
            server.faults.violation(format!("{method}: wrong token"));
            return error("invalid_auth");
        }
        Some(_) => {}
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        server
            .faults
            .violation(format!("{method}: content type `{content_type}`"));
        return error("invalid_form_data");
    }
    if !content_type.contains("charset=utf-8") {
        server.faults.violation(format!(
            "{method}: JSON without `charset=utf-8` (missing_charset)"
        ));
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        server.faults.violation(format!("{method}: body not JSON"));
        return error("invalid_json");
    };
    match method {
        "chat.postMessage" => post_message(server, &body),
        "chat.update" => update(server, &body),
        "chat.postEphemeral" => ephemeral(server, &body),
        _ => {
            server.faults.violation(format!("unknown method {method}"));
            error("unknown_method")
        }
    }
}

/// The channel's id, from an id or a `#name`.
fn channel_id(world: &World, channel: &str) -> Option<String> {
    if world.channels.contains_key(channel) {
        return Some(channel.to_owned());
    }
    let name = channel.strip_prefix('#').unwrap_or(channel);
    world
        .channels
        .iter()
        .find(|(_, n)| n.as_str() == name)
        .map(|(id, _)| id.clone())
}

fn text_or_blocks(
    server: &SlackServer,
    method: &str,
    body: &Value,
) -> Result<(String, Value), Box<Response>> {
    let text = body.get("text").and_then(Value::as_str).unwrap_or("");
    let blocks = body.get("blocks").cloned().unwrap_or(Value::Null);
    if text.is_empty() && blocks.is_null() {
        server
            .faults
            .violation(format!("{method}: neither text nor blocks"));
        return Err(Box::new(error("no_text")));
    }
    if !blocks.is_null()
        && let Err(why) = check_blocks(&blocks)
    {
        server
            .faults
            .violation(format!("{method}: invalid blocks: {why}"));
        return Err(Box::new(error("invalid_blocks")));
    }
    if text.chars().count() > 40_000 {
        server
            .faults
            .violation(format!("{method}: text over 40,000 characters"));
    }
    Ok((text.to_owned(), blocks))
}

fn post_message(server: &SlackServer, body: &Value) -> Response {
    let Some(channel) = body.get("channel").and_then(Value::as_str) else {
        server.faults.violation("chat.postMessage: no channel");
        return error("channel_not_found");
    };
    let (text, blocks) = match text_or_blocks(server, "chat.postMessage", body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let mut world = lock(&server.world);
    let Some(id) = channel_id(&world, channel) else {
        return error("channel_not_found");
    };
    let ts = format!("1700000000.{:06}", world.next_ts);
    world.next_ts += 1;
    world.messages.push(Message {
        channel: id.clone(),
        ts: ts.clone(),
        text: text.clone(),
        blocks: blocks.clone(),
        updates: 0,
    });
    ok(
        json!({ "channel": id, "ts": ts, "message": { "type": "message", "text": text, "blocks": blocks } }),
    )
}

fn update(server: &SlackServer, body: &Value) -> Response {
    let channel = body.get("channel").and_then(Value::as_str).unwrap_or("");
    let ts = body.get("ts").and_then(Value::as_str).unwrap_or("");
    let (text, blocks) = match text_or_blocks(server, "chat.update", body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let mut world = lock(&server.world);
    if !world.channels.contains_key(channel) {
        server
            .faults
            .violation(format!("chat.update: `{channel}` is not a channel id"));
        return error("channel_not_found");
    }
    let Some(message) = world
        .messages
        .iter_mut()
        .find(|m| m.channel == channel && m.ts == ts)
    else {
        return error("message_not_found");
    };
    message.text = text;
    message.blocks = blocks;
    message.updates += 1;
    ok(json!({ "channel": channel, "ts": ts, "text": message.text }))
}

fn ephemeral(server: &SlackServer, body: &Value) -> Response {
    let channel = body.get("channel").and_then(Value::as_str).unwrap_or("");
    let user = body.get("user").and_then(Value::as_str).unwrap_or("");
    let text = body.get("text").and_then(Value::as_str).unwrap_or("");
    let mut world = lock(&server.world);
    if channel_id(&world, channel).is_none() {
        return error("channel_not_found");
    }
    if user.is_empty() || text.is_empty() {
        server
            .faults
            .violation("chat.postEphemeral: no user or no text");
        return error("invalid_arguments");
    }
    world
        .ephemeral
        .push((channel.to_owned(), user.to_owned(), text.to_owned()));
    ok(json!({ "message_ts": "1700000000.999999" }))
}

fn text_object(v: &Value, max: usize, what: &str) -> Result<(), String> {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "plain_text" && kind != "mrkdwn" {
        return Err(format!("{what}: a text object's type is `{kind}`"));
    }
    let text = v.get("text").and_then(Value::as_str).unwrap_or("");
    if text.is_empty() || text.chars().count() > max {
        return Err(format!(
            "{what}: text of {} characters (1 to {max})",
            text.chars().count()
        ));
    }
    Ok(())
}

/// Block Kit's rules for the blocks GRACE uses (and refusal of any other type).
pub fn check_blocks(blocks: &Value) -> Result<(), String> {
    let blocks = blocks.as_array().ok_or("blocks is not an array")?;
    if blocks.len() > 50 {
        return Err(format!("{} blocks (at most 50)", blocks.len()));
    }
    let mut action_ids = std::collections::BTreeSet::new();
    for (i, b) in blocks.iter().enumerate() {
        let at = format!("blocks[{i}]");
        match b.get("type").and_then(Value::as_str).unwrap_or("") {
            "header" => {
                let t = &b["text"];
                if t["type"] != "plain_text" {
                    return Err(format!("{at}: a header's text is plain_text"));
                }
                text_object(t, 150, &at)?;
            }
            "section" => {
                if let Some(t) = b.get("text") {
                    text_object(t, 3000, &at)?;
                }
                if let Some(fields) = b.get("fields") {
                    let fields = fields.as_array().ok_or(format!("{at}: fields"))?;
                    if fields.is_empty() || fields.len() > 10 {
                        return Err(format!("{at}: {} fields (1 to 10)", fields.len()));
                    }
                    for f in fields {
                        text_object(f, 2000, &at)?;
                    }
                }
                if b.get("text").is_none() && b.get("fields").is_none() {
                    return Err(format!("{at}: a section needs text or fields"));
                }
            }
            "context" => {
                let e = b["elements"].as_array().ok_or(format!("{at}: elements"))?;
                if e.is_empty() || e.len() > 10 {
                    return Err(format!("{at}: {} elements (1 to 10)", e.len()));
                }
                for x in e {
                    text_object(x, 3000, &at)?;
                }
            }
            "divider" => {}
            "actions" => {
                let e = b["elements"].as_array().ok_or(format!("{at}: elements"))?;
                if e.is_empty() || e.len() > 25 {
                    return Err(format!("{at}: {} elements (1 to 25)", e.len()));
                }
                for x in e {
                    if x["type"] != "button" {
                        return Err(format!("{at}: only buttons here"));
                    }
                    if x["text"]["type"] != "plain_text" {
                        return Err(format!("{at}: a button's text is plain_text"));
                    }
                    text_object(&x["text"], 75, &at)?;
                    let id = x["action_id"].as_str().unwrap_or("");
                    if id.is_empty() || id.len() > 255 || !action_ids.insert(id.to_owned()) {
                        return Err(format!("{at}: action_id `{id}` empty, long or repeated"));
                    }
                    if x["value"].as_str().is_some_and(|v| v.len() > 2000) {
                        return Err(format!("{at}: value over 2,000 characters"));
                    }
                    if let Some(style) = x.get("style")
                        && style != "primary"
                        && style != "danger"
                    {
                        return Err(format!("{at}: style {style}"));
                    }
                }
                if b.get("block_id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.len() > 255)
                {
                    return Err(format!("{at}: block_id over 255 characters"));
                }
            }
            other => return Err(format!("{at}: unknown block type `{other}`")),
        }
    }
    Ok(())
}
