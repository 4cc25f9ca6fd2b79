//! `grace notifications`: what a running server told Slack, PagerDuty and Jira, and how each
//! delivery went (docs/integrations.md).
//!
//! Channels, details and errors come from configuration and vendors: everything is escaped.

use serde_json::Value;

use super::{Exit, client};
use crate::cli::{NotificationsCommand, Server};
use crate::render::{self, cell, millis};

pub fn run(command: NotificationsCommand) -> Exit {
    match command {
        NotificationsCommand::List {
            state,
            limit,
            json,
            server,
        } => list(&server, state, limit, json),
        NotificationsCommand::Show { id, json, server } => show(&server, id, json),
    }
}

fn list(server: &Server, state: Option<String>, limit: Option<usize>, json: bool) -> Exit {
    let result = (|| {
        let client = client(&server.url)?;
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(state) = state {
            query.push(("state", state));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let page = client
            .get_value(&["v1", "notifications"], &query)
            .map_err(|e| e.into_exit())?;
        if json {
            println!("{page}");
            return Ok(Exit::Ok);
        }
        let rows: Vec<Vec<String>> = page["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|n| {
                vec![
                    cell(&n["id"]),
                    cell(&n["channel"]),
                    cell(&n["notice"]["kind"]),
                    cell(&n["notice"]["run_id"]),
                    cell(&n["state"]),
                    cell(&n["attempts"]),
                    millis(&n["created_at"]),
                    render::shorten(
                        n["detail"]
                            .as_str()
                            .or(n["last_error"].as_str())
                            .unwrap_or("-"),
                        60,
                    ),
                ]
            })
            .collect();
        print!(
            "{}",
            render::table(
                &[
                    "ID", "CHANNEL", "KIND", "RUN", "STATE", "ATTEMPTS", "MADE", "DETAIL"
                ],
                &rows
            )
        );
        Ok(Exit::Ok)
    })();
    result.unwrap_or_else(|exit| exit)
}

fn show(server: &Server, id: u64, json: bool) -> Exit {
    let result = (|| {
        let client = client(&server.url)?;
        let n = client
            .get_value(&["v1", "notifications", &id.to_string()], &[])
            .map_err(|e| e.into_exit())?;
        if json {
            println!("{n}");
            return Ok(Exit::Ok);
        }
        let line = |label: &str, v: &Value| println!("{label:<10} {}", cell(v));
        line("id", &n["id"]);
        line("route", &n["route"]);
        line("channel", &n["channel"]);
        line("kind", &n["notice"]["kind"]);
        line("run", &n["notice"]["run_id"]);
        line("incident", &n["notice"]["incident"]);
        line("state", &n["state"]);
        line("attempts", &n["attempts"]);
        println!("{:<10} {}", "made", millis(&n["created_at"]));
        println!("{:<10} {}", "next", millis(&n["next_attempt_at"]));
        println!("{:<10} {}", "finished", millis(&n["finished_at"]));
        println!(
            "{:<10} {}",
            "detail",
            render::shorten(n["detail"].as_str().unwrap_or("-"), 200)
        );
        println!(
            "{:<10} {}",
            "error",
            render::shorten(n["last_error"].as_str().unwrap_or("-"), 500)
        );
        Ok(Exit::Ok)
    })();
    result.unwrap_or_else(|exit| exit)
}
