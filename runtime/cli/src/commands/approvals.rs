//! `grace approvals list|show|approve|deny`: changes waiting for people.

use grace_engine::event::format_millis;
use grace_engine::text::{escape, escape_lines};
use serde_json::{Value, json};

use super::{Exit, client};
use crate::cli::ApprovalsCommand;
use crate::client::ClientError;
use crate::render;

pub fn run(cmd: ApprovalsCommand) -> Exit {
    let result = match cmd {
        ApprovalsCommand::List {
            state,
            json,
            server,
        } => list(&server.url, &state, json),
        ApprovalsCommand::Show { id, json, server } => show(&server.url, &id, json),
        ApprovalsCommand::Approve {
            id,
            comment,
            server,
        } => vote(&server.url, &id, "approve", comment),
        ApprovalsCommand::Deny {
            id,
            comment,
            server,
        } => vote(&server.url, &id, "deny", Some(comment)),
    };
    result.unwrap_or_else(|exit| exit)
}

/// A string field, escaped for the terminal (see `grace_engine::text`): reasons, explanations and
/// comments quote what guests and people wrote.
fn text(v: &Value, key: &str) -> String {
    escape(v.get(key).and_then(Value::as_str).unwrap_or("")).into_owned()
}

fn approved_by(v: &Value) -> Vec<String> {
    v.get("approved_by")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| text(x, "by")).collect::<Vec<_>>())
        .unwrap_or_default()
}

fn list(server: &str, state: &str, json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let query = if state == "all" {
        Vec::new()
    } else {
        vec![("state", state.to_owned())]
    };
    let approvals = client
        .get_value(&["v1", "approvals"], &query)
        .map_err(ClientError::into_exit)?;
    if json {
        println!("{approvals}");
        return Ok(Exit::Ok);
    }
    let list = approvals.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        println!("no {} approvals", if state == "all" { "" } else { state });
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let needed = a.get("approvers").and_then(Value::as_u64).unwrap_or(1);
            let risk = a
                .get("decision")
                .and_then(|d| d.get("risk"))
                .and_then(|r| r.get("score"))
                .and_then(Value::as_u64)
                .map_or_else(String::new, |s| s.to_string());
            vec![
                text(a, "id").to_owned(),
                text(a, "state").to_owned(),
                format!("{}/{}", approved_by(a).len(), needed),
                risk,
                text(a, "playbook").to_owned(),
                format!("{} {}", text(a, "action"), render::args(&a["args"])),
                a.get("expires_at")
                    .and_then(Value::as_u64)
                    .map(format_millis)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        render::table(
            &[
                "ID", "STATE", "APPROVED", "RISK", "PLAYBOOK", "CHANGE", "EXPIRES"
            ],
            &rows
        )
    );
    Ok(Exit::Ok)
}

fn show(server: &str, id: &str, json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let a = client
        .get_value(&["v1", "approvals", id], &[])
        .map_err(ClientError::into_exit)?;
    if json {
        println!("{a}");
        return Ok(Exit::Ok);
    }
    print!("{}", detail(&a));
    Ok(Exit::Ok)
}

/// An approval request for people to decide on.
fn detail(a: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let needed = a.get("approvers").and_then(Value::as_u64).unwrap_or(1);
    let by = approved_by(a);
    let _ = writeln!(out, "approval {} ({})", text(a, "id"), text(a, "state"));
    let _ = writeln!(
        out,
        "change   {} {} on {}",
        text(a, "action"),
        render::args(&a["args"]),
        text(a, "resource")
    );
    let _ = writeln!(
        out,
        "by       playbook {} ({}), run {}",
        text(a, "playbook"),
        render::short_digest(&text(a, "digest")),
        text(a, "run_id")
    );
    let _ = writeln!(out, "why      {}", text(a, "reason"));
    if let Some(factors) = a["decision"]["risk"]["factors"].as_array() {
        let _ = writeln!(
            out,
            "risk     {}/100",
            a["decision"]["risk"]["score"].as_u64().unwrap_or(0)
        );
        for f in factors {
            let _ = writeln!(
                out,
                "         {:<20} {:>5.1}  {}",
                text(f, "kind"),
                f.get("contribution").and_then(Value::as_f64).unwrap_or(0.0),
                text(f, "explanation")
            );
        }
    }
    let _ = writeln!(
        out,
        "needs    {needed} approver(s); approved by {}",
        if by.is_empty() {
            "nobody yet".to_owned()
        } else {
            by.join(", ")
        }
    );
    if let Some(d) = a.get("denied_by").filter(|d| !d.is_null()) {
        let _ = writeln!(out, "denied   by {}: {}", text(d, "by"), text(d, "comment"));
    }
    for (label, key) in [("asked", "created_at"), ("expires", "expires_at")] {
        if let Some(t) = a.get(key).and_then(Value::as_u64) {
            let _ = writeln!(out, "{label:<8} {}", format_millis(t));
        }
    }
    escape_lines(&out).into_owned()
}

fn vote(server: &str, id: &str, verb: &str, comment: Option<String>) -> Result<Exit, Exit> {
    let client = client(server)?;
    let body = json!({ "comment": comment });
    let a: Value = client
        .post(&["v1", "approvals", id, verb], Some(&body))
        .map_err(ClientError::into_exit)?
        .decode(&format!("POST /v1/approvals/{{id}}/{verb}"))
        .map_err(ClientError::into_exit)?;
    let state = text(&a, "state");
    let needed = a.get("approvers").and_then(Value::as_u64).unwrap_or(1);
    match state.as_str() {
        "pending" => println!(
            "approval {id}: {}/{needed} approvals; another person must approve",
            approved_by(&a).len()
        ),
        "approved" => println!(
            "approval {id} approved by {}: the run goes on",
            approved_by(&a).join(", ")
        ),
        other => println!("approval {id} {other}: the playbook is told the change was denied"),
    }
    Ok(Exit::Ok)
}
