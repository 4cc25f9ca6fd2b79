//! `grace outcomes`: what a running server learnt from its runs' outcomes (docs/outcomes.md).
//!
//! Playbook and resource names come from outside: everything is escaped.

use serde_json::Value;

use super::{Exit, client};
use crate::cli::Server;
use crate::render;

pub fn run(
    server: &Server,
    playbook: Option<String>,
    resource: Option<String>,
    json: bool,
) -> Exit {
    let result = (|| {
        let client = client(&server.url)?;
        let query: Vec<(&str, String)> = [("playbook", playbook), ("resource", resource)]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        let all = client
            .get_value(&["v1", "outcomes"], &query)
            .map_err(|e| e.into_exit())?;
        if json {
            println!("{all}");
            return Ok(Exit::Ok);
        }
        let rows: Vec<Vec<String>> = all["outcomes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(row)
            .collect();
        print!(
            "{}",
            render::table(
                &[
                    "PLAYBOOK",
                    "RESOURCE",
                    "CLEARED",
                    "SUCCESS (95% INTERVAL)",
                    "NOT CLEARED IN A ROW",
                    "MEDIAN RECOVERY",
                    "CAPACITY-MIN",
                ],
                &rows
            )
        );
        Ok(Exit::Ok)
    })();
    result.unwrap_or_else(|exit| exit)
}

fn row(o: &Value) -> Vec<String> {
    let percent = |v: &Value| {
        v.as_f64()
            .map_or("-".to_owned(), |p| format!("{:.0}%", p * 100.0))
    };
    let interval = &o["success_interval"];
    vec![
        render::cell(&o["playbook"]),
        render::cell(&o["resource"]),
        format!(
            "{}/{}",
            render::cell(&o["cleared"]),
            render::cell(&o["judged"])
        ),
        format!(
            "{} ({}-{})",
            percent(&o["success_rate"]),
            percent(&interval[0]),
            percent(&interval[1])
        ),
        render::cell(&o["not_cleared_streak"]),
        o["median_time_to_recover_ms"]
            .as_u64()
            .map_or("-".to_owned(), |ms| format!("{} s", ms / 1000)),
        o["capacity_minutes"]
            .as_f64()
            .map_or("-".to_owned(), |m| format!("{m:.1}")),
    ]
}
