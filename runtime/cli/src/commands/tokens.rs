//! `grace tokens create|list|revoke`: a running server's API tokens (scope `admin`).

use anyhow::anyhow;
use grace_engine::event::format_millis;
use serde_json::{Value, json};

use super::{Exit, client};
use crate::cli::TokensCommand;
use crate::client::ClientError;
use crate::render;

pub fn run(cmd: TokensCommand) -> Exit {
    let result = match cmd {
        TokensCommand::Create {
            name,
            principal,
            scopes,
            expires_in,
            json,
            server,
        } => create(
            &server.url,
            &name,
            principal.as_deref(),
            &scopes,
            expires_in.as_deref(),
            json,
        ),
        TokensCommand::List { json, server } => list(&server.url, json),
        TokensCommand::Revoke { id, server } => revoke(&server.url, &id),
    };
    result.unwrap_or_else(|exit| exit)
}

fn api(e: ClientError) -> Exit {
    e.into_exit()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn scopes(v: &Value) -> String {
    v["scopes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn create(
    server: &str,
    name: &str,
    principal: Option<&str>,
    scope_names: &[String],
    expires_in: Option<&str>,
    json: bool,
) -> Result<Exit, Exit> {
    let client = client(server)?;
    let mut body = json!({ "name": name, "scopes": scope_names });
    if let Some(p) = principal {
        body["principal"] = json!(p);
    }
    if let Some(e) = expires_in {
        body["expires_in"] = json!(e);
    }
    let answer = client.post(&["v1", "tokens"], Some(&body)).map_err(api)?;
    if json {
        println!("{}", answer.body);
        return Ok(Exit::Ok);
    }
    let t = &answer.body;
    let token = text(t, "token");
    if token.is_empty() {
        return Err(Exit::Internal(anyhow!(
            "the server's answer holds no token: are the server and the CLI the same version?"
        )));
    }
    eprintln!(
        "created token {} `{}` of `{}` (scopes {}); it is shown only now:",
        text(t, "id"),
        text(t, "name"),
        text(t, "principal"),
        scopes(t)
    );
    println!("{token}");
    Ok(Exit::Ok)
}

fn list(server: &str, json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let value = client.get_value(&["v1", "tokens"], &[]).map_err(api)?;
    if json {
        println!("{value}");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let state = if t["revoked"].as_bool() == Some(true) {
                "revoked".to_owned()
            } else {
                match t["expires_at"].as_u64() {
                    Some(at) if at <= grace_engine::event::system_now_millis() => {
                        "expired".to_owned()
                    }
                    Some(at) => format!("until {}", format_millis(at)),
                    None => "live".to_owned(),
                }
            };
            vec![
                text(t, "id").to_owned(),
                text(t, "name").to_owned(),
                text(t, "principal").to_owned(),
                scopes(t),
                state,
                t["created_at"]
                    .as_u64()
                    .map(format_millis)
                    .unwrap_or_default(),
                text(t, "created_by").to_owned(),
            ]
        })
        .collect();
    print!(
        "{}",
        render::table(
            &[
                "ID",
                "NAME",
                "PRINCIPAL",
                "SCOPES",
                "STATE",
                "CREATED",
                "CREATED BY"
            ],
            &rows
        )
    );
    Ok(Exit::Ok)
}

fn revoke(server: &str, id: &str) -> Result<Exit, Exit> {
    let client = client(server)?;
    let answer = client.delete(&["v1", "tokens", id]).map_err(api)?;
    println!(
        "revoked token {id} `{}`: it no longer authenticates",
        text(&answer.body, "name")
    );
    Ok(Exit::Ok)
}
