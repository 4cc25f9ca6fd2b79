//! `grace policy add|list|show|remove`: a server's policy sets; `grace policy test`: a request
//! decided by the trust core against policy files, offline.

use anyhow::anyhow;
use grace_trust::{Outcome, Policies, Request, TrustConfig, TrustCore};

use serde_json::{Value, json};

use super::{Exit, client};
use crate::cli::PolicyCommand;
use crate::client::ClientError;
use crate::render;

pub fn run(cmd: PolicyCommand) -> Exit {
    let result = match cmd {
        PolicyCommand::Test {
            request,
            policies,
            config,
            json,
        } => return test(&request, &policies, config.as_deref(), json),
        PolicyCommand::Add { name, file, server } => add(&server.url, &name, &file),
        PolicyCommand::List { json, server } => list(&server.url, json),
        PolicyCommand::Show {
            name,
            history,
            server,
        } => show(&server.url, &name, history),
        PolicyCommand::Remove { name, server } => remove(&server.url, &name),
    };
    result.unwrap_or_else(|exit| exit)
}

fn add(server: &str, name: &str, file: &std::path::Path) -> Result<Exit, Exit> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Exit::Invalid(anyhow!("cannot read `{}`: {e}", file.display())))?;
    let client = client(server)?;
    let stored: Value = client
        .put(&["v1", "policies", name], &json!({ "text": text }))
        .map_err(ClientError::into_exit)?
        .decode("PUT /v1/policies/{name}")
        .map_err(ClientError::into_exit)?;
    println!(
        "policy set `{name}` is at version {} (policy revision {})",
        stored.get("version").unwrap_or(&Value::Null),
        stored.get("revision").unwrap_or(&Value::Null)
    );
    Ok(Exit::Ok)
}

fn list(server: &str, json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let sets = client
        .get_value(&["v1", "policies"], &[])
        .map_err(ClientError::into_exit)?;
    if json {
        println!("{sets}");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = sets
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let field = |k: &str| match s.get(k) {
                Some(Value::String(t)) => t.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            let at = s
                .get("at_millis")
                .and_then(Value::as_u64)
                .map(grace_engine::event::format_millis)
                .unwrap_or_default();
            vec![
                field("name"),
                field("version"),
                field("policies"),
                field("by"),
                at,
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no policy sets: every call the grants allow is allowed");
        return Ok(Exit::Ok);
    }
    print!(
        "{}",
        render::table(&["NAME", "VERSION", "POLICIES", "BY", "AT"], &rows)
    );
    Ok(Exit::Ok)
}

fn show(server: &str, name: &str, history: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let query = if history {
        vec![("history", "true".to_owned())]
    } else {
        Vec::new()
    };
    let value = client
        .get_value(&["v1", "policies", name], &query)
        .map_err(ClientError::into_exit)?;
    let versions = match value {
        Value::Array(v) => v,
        one => vec![one],
    };
    for v in versions {
        let removed = v.get("removed").and_then(Value::as_bool).unwrap_or(false);
        println!(
            "// {name} version {} by {}{}",
            v.get("version").unwrap_or(&Value::Null),
            v.get("by").and_then(Value::as_str).unwrap_or("?"),
            if removed { " (removed)" } else { "" }
        );
        println!("{}", v.get("text").and_then(Value::as_str).unwrap_or(""));
    }
    Ok(Exit::Ok)
}

fn remove(server: &str, name: &str) -> Result<Exit, Exit> {
    let client = client(server)?;
    client
        .delete(&["v1", "policies", name])
        .map_err(ClientError::into_exit)?;
    println!("policy set `{name}` removed (its history is kept)");
    Ok(Exit::Ok)
}

fn test(
    request: &std::path::Path,
    policies: &[std::path::PathBuf],
    config: Option<&std::path::Path>,
    json: bool,
) -> Exit {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|e| Exit::Invalid(anyhow!("cannot read `{}`: {e}", path.display())))
    };
    let result = (|| {
        let request_text = read(request)?;
        let request: Request = serde_json::from_str(&request_text)
            .map_err(|e| Exit::Invalid(anyhow!("`{}`: not a request: {e}", request.display())))?;
        let config = match config {
            Some(path) => TrustConfig::from_toml(&read(path)?)
                .map_err(|e| Exit::Invalid(anyhow!("`{}`: {e}", path.display())))?,
            None => TrustConfig::default(),
        };
        let mut sets = Vec::new();
        for path in policies {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("policies")
                .to_owned();
            sets.push((name, read(path)?));
        }
        let compiled = Policies::compile(sets.iter().map(|(n, t)| (n.as_str(), t.as_str())))
            .map_err(|e| Exit::Invalid(anyhow!("{e}")))?;
        let trust = TrustCore::in_memory(config).map_err(|e| Exit::Internal(anyhow!("{e}")))?;
        let explanation = trust.explain_with(&compiled, &request);
        if json {
            let value = serde_json::to_value(&explanation.decision)
                .map_err(|e| Exit::Internal(e.into()))?;
            println!("{value}");
        } else {
            print!("{explanation}");
        }
        Ok(match explanation.decision.outcome {
            Outcome::Allow => Exit::Ok,
            _ => Exit::Failed,
        })
    })();
    result.unwrap_or_else(|exit| exit)
}
