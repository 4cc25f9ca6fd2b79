//! `grace pauses`: the playbooks a running server's meta-loop paused for a resource, and
//! resuming them (docs/outcomes.md).
//!
//! Names and reasons come from outside: everything is escaped.

use serde_json::{Value, json};

use super::{Exit, client};
use crate::cli::{PausesCommand, Server};
use crate::render;

pub fn run(command: PausesCommand) -> Exit {
    let result = match command {
        PausesCommand::List { json, server } => list(&server, json),
        PausesCommand::Resume {
            playbook,
            resource,
            server,
        } => resume(&server, &playbook, &resource),
    };
    result.unwrap_or_else(|exit| exit)
}

fn list(server: &Server, json: bool) -> Result<Exit, Exit> {
    let client = client(&server.url)?;
    let all = client
        .get_value(&["v1", "pauses"], &[])
        .map_err(|e| e.into_exit())?;
    if json {
        println!("{all}");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = all
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            vec![
                render::cell(&p["playbook"]),
                render::cell(&p["resource"]),
                render::millis(&p["since"]),
                render::shorten(p["reason"].as_str().unwrap_or(""), 120),
            ]
        })
        .collect();
    print!(
        "{}",
        render::table(&["PLAYBOOK", "RESOURCE", "SINCE", "WHY"], &rows)
    );
    Ok(Exit::Ok)
}

fn resume(server: &Server, playbook: &str, resource: &str) -> Result<Exit, Exit> {
    let client = client(&server.url)?;
    let pause: Value = client
        .post(
            &["v1", "pauses", "resume"],
            Some(&json!({ "playbook": playbook, "resource": resource })),
        )
        .map_err(|e| e.into_exit())?
        .decode("POST /v1/pauses/resume")
        .map_err(|e| e.into_exit())?;
    println!(
        "resumed `{}` for `{}` (paused: {})",
        render::shorten(playbook, 200),
        render::shorten(resource, 200),
        render::shorten(pause["reason"].as_str().unwrap_or(""), 400)
    );
    Ok(Exit::Ok)
}
