//! `grace runs list|show|cancel|resume`: a server's runs.

use grace_engine::event::format_millis;

use super::{Exit, client};
use crate::cli::RunsCommand;
use crate::client::{ClientError, Run, RunSummary};
use crate::render;

pub fn run(cmd: RunsCommand) -> Exit {
    let result = match cmd {
        RunsCommand::List {
            state,
            playbook,
            resource,
            limit,
            json,
            server,
        } => {
            let mut query = Vec::new();
            if let Some(s) = state {
                query.push(("state", s));
            }
            if let Some(p) = playbook {
                query.push(("playbook", p));
            }
            if let Some(r) = resource {
                query.push(("resource", r));
            }
            if let Some(l) = limit {
                query.push(("limit", l.to_string()));
            }
            list(&server.url, &query, json)
        }
        RunsCommand::Show { id, json, server } => show(&server.url, &id, json),
        RunsCommand::Cancel { id, server } => cancel(&server.url, &id),
        RunsCommand::Resume { id, server } => resume(&server.url, &id),
    };
    result.unwrap_or_else(|exit| exit)
}

fn api(e: ClientError) -> Exit {
    e.into_exit()
}

fn list(server: &str, query: &[(&str, String)], json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    if json {
        println!("{}", client.get_value(&["v1", "runs"], query).map_err(api)?);
        return Ok(Exit::Ok);
    }
    let runs: Vec<RunSummary> = client.get(&["v1", "runs"], query).map_err(api)?;
    if runs.is_empty() {
        println!("no runs");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.state.clone(),
                format!("{} {}", r.playbook, r.version),
                r.resource.clone(),
                r.attempts.to_string(),
                format_millis(r.created_at),
                render::shorten(r.summary.as_deref().unwrap_or(""), 60),
            ]
        })
        .collect();
    print!(
        "{}",
        render::table(
            &[
                "ID", "STATE", "PLAYBOOK", "RESOURCE", "ATTEMPTS", "CREATED", "SUMMARY"
            ],
            &rows
        )
    );
    Ok(Exit::Ok)
}

fn show(server: &str, id: &str, json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let segments = ["v1", "runs", id];
    if json {
        println!("{}", client.get_value(&segments, &[]).map_err(api)?);
        return Ok(Exit::Ok);
    }
    let run: Run = client.get(&segments, &[]).map_err(api)?;
    print!("{}", render::run_detail(&run));
    // The incident its event belongs to, and that incident's likely causes.
    if let Some(incident) = run
        .event
        .payload
        .get("incident_id")
        .and_then(serde_json::Value::as_str)
    {
        println!("\nincident {}", render::shorten(incident, 64));
        match client.get_value(&["v1", "incidents", incident, "causes"], &[]) {
            Ok(causes) => print!("{}", super::incidents::render_causes(&causes)),
            Err(e) => println!(
                "  (causes unavailable: {})",
                render::shorten(&format!("{e:?}"), 200)
            ),
        }
    }
    Ok(Exit::Ok)
}

fn cancel(server: &str, id: &str) -> Result<Exit, Exit> {
    let client = client(server)?;
    let run: RunSummary = client
        .post(&["v1", "runs", id, "cancel"], None)
        .map_err(api)?
        .decode("POST /v1/runs/{id}/cancel")
        .map_err(api)?;
    if run.state == "cancelled" {
        println!("cancelled run {}", run.id);
        Ok(Exit::Ok)
    } else {
        // The run finished on its own while the cancel was on its way.
        println!(
            "run {} finished as {} before it could be cancelled",
            run.id, run.state
        );
        Ok(Exit::Failed)
    }
}

fn resume(server: &str, id: &str) -> Result<Exit, Exit> {
    let client = client(server)?;
    let run: RunSummary = client
        .post(&["v1", "runs", id, "resume"], None)
        .map_err(api)?
        .decode("POST /v1/runs/{id}/resume")
        .map_err(api)?;
    println!("resumed run {}: {}", run.id, run.state);
    Ok(Exit::Ok)
}
