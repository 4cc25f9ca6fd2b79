//! `grace principals create|list`: a running server's local principals (scope `admin`), the
//! people and systems its tokens belong to.

use grace_engine::event::format_millis;
use serde_json::{Value, json};

use super::{Exit, client};
use crate::cli::PrincipalsCommand;
use crate::client::ClientError;
use crate::render;

pub fn run(cmd: PrincipalsCommand) -> Exit {
    let result = match cmd {
        PrincipalsCommand::Create {
            name,
            display_name,
            json,
            server,
        } => create(&server.url, &name, display_name.as_deref(), json),
        PrincipalsCommand::List { json, server } => list(&server.url, json),
    };
    result.unwrap_or_else(|exit| exit)
}

fn api(e: ClientError) -> Exit {
    e.into_exit()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn create(server: &str, name: &str, display_name: Option<&str>, json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let mut body = json!({ "name": name });
    if let Some(d) = display_name {
        body["display_name"] = json!(d);
    }
    let answer = client
        .post(&["v1", "principals"], Some(&body))
        .map_err(api)?;
    if json {
        println!("{}", answer.body);
        return Ok(Exit::Ok);
    }
    println!(
        "created principal {} `{}`; give it tokens with `grace tokens create --principal {name} ...`",
        text(&answer.body, "id"),
        text(&answer.body, "display_name"),
    );
    Ok(Exit::Ok)
}

fn list(server: &str, json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let value = client.get_value(&["v1", "principals"], &[]).map_err(api)?;
    if json {
        println!("{value}");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            vec![
                text(p, "id").to_owned(),
                text(p, "display_name").to_owned(),
                text(p, "kind").to_owned(),
                p["created_at"]
                    .as_u64()
                    .map(format_millis)
                    .unwrap_or_default(),
                text(p, "created_by").to_owned(),
            ]
        })
        .collect();
    print!(
        "{}",
        render::table(&["ID", "NAME", "KIND", "CREATED", "CREATED BY"], &rows)
    );
    Ok(Exit::Ok)
}
