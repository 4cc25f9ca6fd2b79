//! `grace playbook sign|upload|list|show|enable|disable|delete`: signing playbooks, and a
//! server's playbooks and collectors (`grace playbook new` is [`super::playbook_new`]).

use std::path::Path;

use anyhow::anyhow;
use grace_engine::component::{digest, manifest_path};
use grace_engine::event::format_millis;
use grace_engine::text::escape;
use grace_engine::{LoadError, Manifest};
use reqwest::StatusCode;

use grace_server::signing::{self, Signature};

use super::{Exit, client};
use crate::cli::PlaybookCommand;
use crate::client::{ClientError, PlaybookDetail, PlaybookSummary, Upload};
use crate::render;

pub fn run(cmd: PlaybookCommand) -> Exit {
    let result = match cmd {
        PlaybookCommand::Upload {
            path,
            signature,
            json,
            server,
        } => upload(&server.url, &path, signature.as_deref(), json),
        PlaybookCommand::Sign { path, key, out } => sign(&path, &key, out.as_deref()),
        PlaybookCommand::List { json, server } => list(&server.url, json),
        PlaybookCommand::Show { name, json, server } => show(&server.url, &name, json),
        PlaybookCommand::Enable { name, server } => set_enabled(&server.url, &name, true),
        PlaybookCommand::Disable { name, server } => set_enabled(&server.url, &name, false),
        PlaybookCommand::Delete { name, server } => delete(&server.url, &name),
        PlaybookCommand::New {
            name,
            kind,
            template,
            dir,
        } => Ok(super::playbook_new::run(
            &name,
            &kind,
            template.as_deref(),
            dir.as_deref(),
        )),
    };
    result.unwrap_or_else(|exit| exit)
}

fn api(e: ClientError) -> Exit {
    e.into_exit()
}

/// What an upload sends: read and validated here, so mistakes are reported without a round trip.
/// The signature is `signature`'s file, else `<manifest>.sig` when it exists.
fn read_upload(path: &Path, signature: Option<&Path>) -> Result<(Manifest, Upload), Exit> {
    let invalid = |e: LoadError| Exit::Invalid(e.into());
    let manifest_file = manifest_path(path).map_err(invalid)?;
    // Validates the schema, the grants and the triggers, and resolves `component` against the
    // manifest's directory.
    let manifest = Manifest::load(&manifest_file).map_err(|e| invalid(e.into()))?;
    let text = std::fs::read_to_string(&manifest_file)
        .map_err(|e| Exit::Invalid(anyhow!("cannot read `{}`: {e}", manifest_file.display())))?;
    let component = std::fs::read(&manifest.component).map_err(|source| {
        invalid(LoadError::ReadComponent {
            path: manifest.component.clone(),
            source,
        })
    })?;
    let file_name = manifest.component.file_name().map_or_else(
        || "component.wasm".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let signature = match signature {
        Some(p) => Some(read_signature(p)?),
        None => {
            let default = signing::default_path(&manifest_file);
            if default.is_file() {
                Some(read_signature(&default)?)
            } else {
                None
            }
        }
    };
    Ok((
        manifest,
        Upload {
            manifest: text,
            component,
            file_name,
            signature,
        },
    ))
}

fn read_signature(path: &Path) -> Result<String, Exit> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Exit::Invalid(anyhow!(
            "cannot read the signature `{}`: {e}",
            path.display()
        ))
    })?;
    Signature::parse(&text).map_err(|e| Exit::Invalid(anyhow!("`{}`: {e}", path.display())))?;
    Ok(text)
}

/// `grace playbook sign`: the manifest's exact bytes and the component it names, signed.
fn sign(path: &Path, key: &Path, out: Option<&Path>) -> Result<Exit, Exit> {
    let key = grace_ledger::SigningKey::load(key).map_err(|e| Exit::Invalid(e.into()))?;
    let (manifest, upload) = read_upload(path, None)?;
    let signature = Signature::sign(&key, &upload.component, upload.manifest.as_bytes());
    let manifest_file = manifest_path(path).map_err(|e| Exit::Invalid(e.into()))?;
    let out = out.map_or_else(|| signing::default_path(&manifest_file), Path::to_owned);
    std::fs::write(&out, signature.to_text())
        .map_err(|e| Exit::Internal(anyhow!("cannot write `{}`: {e}", out.display())))?;
    println!(
        "signed {} {} (component {}, manifest {}) with key {}: `{}`",
        manifest.name,
        manifest.version,
        render::short_digest(&signature.component),
        render::short_digest(&signature.manifest),
        signature.key,
        out.display()
    );
    Ok(Exit::Ok)
}

fn upload(server: &str, path: &Path, signature: Option<&Path>, json: bool) -> Result<Exit, Exit> {
    let (manifest, upload) = read_upload(path, signature)?;
    let signed = upload.signature.is_some();
    let digest = digest(&upload.component);
    let client = client(server)?;
    let answer = client.upload(upload).map_err(api)?;
    if json {
        println!("{}", answer.body);
        return Ok(Exit::Ok);
    }
    let what = format!("{} {} ({digest})", manifest.name, manifest.version);
    if answer.status == StatusCode::CREATED {
        println!("uploaded {what}");
    } else {
        println!("already uploaded {what}");
    }
    // The answer is the playbook as it is now; say so when its triggers are not live.
    let summary = answer.decode::<PlaybookSummary>("POST /v1/playbooks").ok();
    match summary.as_ref().and_then(|s| s.signed_by.as_ref()) {
        Some(by) => println!("signed by {by}"),
        None if !signed => println!(
            "UNSIGNED: accepted only because the server allows unsigned playbooks (`grace playbook sign` signs it)"
        ),
        None => {}
    }
    if let Some(summary) = summary
        && !summary.enabled
    {
        println!(
            "`{}` is disabled: `grace playbook enable {}` makes its triggers live",
            summary.name, summary.name
        );
    }
    Ok(Exit::Ok)
}

fn list(server: &str, json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    if json {
        let value = client.get_value(&["v1", "playbooks"], &[]).map_err(api)?;
        println!("{value}");
        return Ok(Exit::Ok);
    }
    let playbooks: Vec<PlaybookSummary> = client.get(&["v1", "playbooks"], &[]).map_err(api)?;
    if playbooks.is_empty() {
        println!(
            "no playbooks on {} (upload one with `grace playbook upload <dir>`)",
            client.server()
        );
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = playbooks
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.kind.to_string(),
                if p.enabled { "yes" } else { "no" }.to_owned(),
                p.active_version.clone(),
                p.version_count.to_string(),
                render::short_digest(&p.digest),
                p.signed_by
                    .as_ref()
                    .map_or_else(|| "UNSIGNED".to_owned(), |s| s.trust_root.clone()),
                p.triggers.join(", "),
            ]
        })
        .collect();
    print!(
        "{}",
        render::table(
            &[
                "NAME",
                "KIND",
                "ENABLED",
                "VERSION",
                "VERSIONS",
                "DIGEST",
                "SIGNED BY",
                "TRIGGERS"
            ],
            &rows
        )
    );
    Ok(Exit::Ok)
}

fn show(server: &str, name: &str, json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let segments = ["v1", "playbooks", name];
    if json {
        println!("{}", client.get_value(&segments, &[]).map_err(api)?);
        return Ok(Exit::Ok);
    }
    let p: PlaybookDetail = client.get(&segments, &[]).map_err(api)?;
    let state = if p.enabled { "enabled" } else { "disabled" };
    println!("{} ({}, {state})", escape(&p.name), p.kind);
    println!(
        "active   {} {}",
        escape(&p.active_version),
        escape(&p.digest)
    );
    match &p.signed_by {
        Some(by) => println!("signed   by {}", escape(&by.to_string())),
        None => println!("signed   no (UNSIGNED)"),
    }
    if p.triggers.is_empty() {
        println!("triggers (none)");
    } else {
        println!("triggers {}", escape(&p.triggers.join(", ")));
    }
    println!();
    let rows: Vec<Vec<String>> = p
        .versions
        .iter()
        .map(|v| {
            let active = if v.version == p.active_version {
                "*"
            } else {
                ""
            };
            vec![
                format!("{}{active}", v.version),
                format_millis(v.uploaded_at),
                v.digest.clone(),
                v.signed_by
                    .as_ref()
                    .map_or_else(|| "UNSIGNED".to_owned(), ToString::to_string),
            ]
        })
        .collect();
    print!(
        "{}",
        render::table(&["VERSION", "UPLOADED", "DIGEST", "SIGNED BY"], &rows)
    );
    Ok(Exit::Ok)
}

fn set_enabled(server: &str, name: &str, enabled: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let action = if enabled { "enable" } else { "disable" };
    let summary: PlaybookSummary = client
        .post(&["v1", "playbooks", name, action], None)
        .map_err(api)?
        .decode(&format!("POST /v1/playbooks/{name}/{action}"))
        .map_err(api)?;
    if summary.enabled {
        println!(
            "enabled {} {}: its triggers are live",
            summary.name, summary.active_version
        );
    } else {
        println!("disabled {}: its triggers no longer fire", summary.name);
    }
    Ok(Exit::Ok)
}

fn delete(server: &str, name: &str) -> Result<Exit, Exit> {
    let client = client(server)?;
    client.delete(&["v1", "playbooks", name]).map_err(api)?;
    println!("deleted {name} and every version (its runs and ledger entries stay)");
    Ok(Exit::Ok)
}
