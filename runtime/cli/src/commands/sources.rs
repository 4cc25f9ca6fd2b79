//! `grace sources`: every event source of a running server and its health.

use serde_json::Value;

use super::{Exit, client};
use crate::cli::Server;
use crate::render;

pub fn run(server: Server, json: bool) -> Exit {
    let result = (|| {
        let client = client(&server.url)?;
        let sources = client
            .get_value(&["v1", "sources"], &[])
            .map_err(|e| e.into_exit())?;
        if json {
            println!("{sources}");
            return Ok(Exit::Ok);
        }
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        let rows: Vec<Vec<String>> = sources
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|s| {
                vec![
                    text(&s["name"]),
                    text(&s["kind"]),
                    text(&s["status"]),
                    s["events"].to_string(),
                    format!("{}/{}", s["failures"], s["successes"]),
                    render::shorten(&text(&s["last_error"]), 60),
                    render::shorten(&text(&s["target"]), 60),
                ]
            })
            .collect();
        print!(
            "{}",
            render::table(
                &[
                    "NAME",
                    "KIND",
                    "STATUS",
                    "EVENTS",
                    "FAILED/OK",
                    "LAST ERROR",
                    "TARGET"
                ],
                &rows
            )
        );
        // A source that is down is worth an exit code for scripts and cron checks.
        let down = sources
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["status"] == "down"));
        Ok(if down { Exit::Failed } else { Exit::Ok })
    })();
    result.unwrap_or_else(|exit| exit)
}
