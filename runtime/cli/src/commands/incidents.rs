//! `grace incidents`: a running server's incidents and their likely causes (docs/anomaly.md).
//!
//! Resources, metric and alert names come from outside: everything is escaped.

use serde_json::{Value, json};

use super::{Exit, client};
use crate::cli::{IncidentsCommand, Server};
use crate::render;

pub fn run(command: IncidentsCommand) -> Exit {
    match command {
        IncidentsCommand::List {
            limit,
            json,
            server,
        } => list(&server, limit, json),
        IncidentsCommand::Show { id, json, server } => show(&server, &id, json),
    }
}

use render::{cell as text, millis as when};

fn list(server: &Server, limit: Option<usize>, json: bool) -> Exit {
    let result = (|| {
        let client = client(&server.url)?;
        let query: Vec<(&str, String)> = limit
            .map(|l| ("limit", l.to_string()))
            .into_iter()
            .collect();
        let all = client
            .get_value(&["v1", "incidents"], &query)
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
            .map(|i| {
                let resources: Vec<String> = i["resources"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(text)
                    .collect();
                vec![
                    text(&i["id"]),
                    text(&i["state"]),
                    when(&i["opened_at"]),
                    text(&i["signal_count"]),
                    render::shorten(&resources.join(","), 60),
                ]
            })
            .collect();
        print!(
            "{}",
            render::table(
                &["INCIDENT", "STATE", "OPENED", "SIGNALS", "RESOURCES"],
                &rows
            )
        );
        Ok(Exit::Ok)
    })();
    result.unwrap_or_else(|exit| exit)
}

fn show(server: &Server, id: &str, json: bool) -> Exit {
    let result = (|| {
        let client = client(&server.url)?;
        let incident = client
            .get_value(&["v1", "incidents", id], &[])
            .map_err(|e| e.into_exit())?;
        let causes = client
            .get_value(&["v1", "incidents", id, "causes"], &[])
            .map_err(|e| e.into_exit())?;
        if json {
            println!("{}", json!({"incident": incident, "causes": causes}));
            return Ok(Exit::Ok);
        }
        println!(
            "{}  {}  opened {}  last signal {}",
            text(&incident["id"]),
            text(&incident["state"]),
            when(&incident["opened_at"]),
            when(&incident["last_signal_at"])
        );
        if let Some(why) = incident["closed_because"].as_str() {
            println!(
                "closed {}: {}",
                when(&incident["closed_at"]),
                render::shorten(why, 80)
            );
        }
        println!("first signal on {}", text(&incident["first_resource"]));
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        println!("\nsignals ({}):", text(&incident["signal_count"]));
        for s in list(&incident["signals"]) {
            println!(
                "  {}  {}  {}  {}{}",
                when(&s["at"]),
                text(&s["event_type"]),
                text(&s["resource"]),
                text(&s["name"]),
                s["score"]
                    .as_f64()
                    .map_or_else(String::new, |x| format!("  score {x:.2}"))
            );
        }
        print!("\n{}", render_causes(&causes));
        let runs = list(&incident["runs"]);
        if !runs.is_empty() {
            println!("\nruns:");
            for r in runs {
                println!(
                    "  {}  {}  {}  {}",
                    text(&r["id"]),
                    text(&r["playbook"]),
                    text(&r["resource"]),
                    text(&r["state"])
                );
            }
        }
        Ok(Exit::Ok)
    })();
    result.unwrap_or_else(|exit| exit)
}

/// The ranked causes as `grace incidents show` and `grace runs show` print them.
pub fn render_causes(causes: &Value) -> String {
    let mut out = String::from("likely causes");
    if causes["graph"] != Value::Bool(true) {
        out.push_str(" (no health graph: ranked by onset and correlation only)");
    }
    out.push_str(":\n");
    for c in causes["causes"].as_array().cloned().unwrap_or_default() {
        out.push_str(&format!(
            "  {}. {}  score {}\n     {}\n",
            text(&c["rank"]),
            text(&c["resource"]),
            text(&c["score"]),
            render::shorten(c["reason"].as_str().unwrap_or(""), 300)
        ));
    }
    out
}
