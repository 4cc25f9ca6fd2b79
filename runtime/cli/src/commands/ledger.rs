//! `grace ledger verify|checkpoint|proof|show` and `grace keys`: the ledger file of a data
//! directory; `verify` without `--data-dir` checks a server's ledger ([`super::ledger_audit`]).

use anyhow::anyhow;
use grace_ledger::{Durability, Ledger, LedgerError};
use serde_json::json;

use super::{Exit, ledger_path};
use crate::cli::{DataDir, KeysCommand, LedgerCommand};
use crate::render;

pub fn run(cmd: LedgerCommand) -> Exit {
    match cmd {
        LedgerCommand::Verify {
            json,
            server,
            cluster: true,
            key,
            max_age,
            ..
        } => super::ledger_cluster::run(super::ledger_cluster::Request {
            server: server.url,
            key,
            max_age,
            json,
        }),
        LedgerCommand::Verify {
            json,
            server,
            data_dir,
            key,
            checkpoint,
            since,
            max_age,
            cluster: false,
        } => match (data_dir, checkpoint, key) {
            (Some(data_dir), Some(checkpoint), Some(key)) => {
                verify_checkpoint(&DataDir { data_dir }, &checkpoint, &key, json)
            }
            (Some(data_dir), _, _) => verify(&DataDir { data_dir }, json),
            (None, checkpoint, key) => super::ledger_audit::run(super::ledger_audit::Request {
                server: server.url,
                key,
                checkpoint,
                since,
                max_age,
                json,
            }),
        },
        LedgerCommand::Checkpoint { key, out, data } => checkpoint(&data, &key, out.as_deref()),
        LedgerCommand::Proof { seq, json, data } => proof(&data, seq, json),
        LedgerCommand::Show {
            run,
            from,
            limit,
            json,
            data,
        } => show(&data, run.as_deref(), from, limit, json),
    }
}

fn open_existing(data: &DataDir) -> Result<Ledger, Exit> {
    let path = ledger_path(&data.data_dir);
    if !path.is_file() {
        return Err(Exit::Invalid(anyhow!(
            "no ledger at `{}` (pass --data-dir, or run something first)",
            path.display()
        )));
    }
    Ledger::open(&path, Durability::Immediate)
        .map_err(|e| Exit::Internal(anyhow!("cannot open the ledger `{}`: {e}", path.display())))
}

fn verify(data: &DataDir, as_json: bool) -> Exit {
    let ledger = match open_existing(data) {
        Ok(l) => l,
        Err(exit) => return exit,
    };
    let path = ledger_path(&data.data_dir);
    match ledger.verify() {
        Ok(report) => {
            // Not a failure: runs in flight, and runs a crash interrupted, have no end record.
            let open = ledger.runs_without_end().unwrap_or_else(|e| {
                eprintln!("grace: cannot look for runs without an end record: {e}");
                Vec::new()
            });
            if as_json {
                println!(
                    "{}",
                    json!({ "ok": true, "path": path, "entries": report.entries, "head": report.head, "runs_without_end": open })
                );
            } else {
                match &report.head {
                    Some(head) => println!(
                        "ledger ok: {} entries, head {head} ({})",
                        report.entries,
                        path.display()
                    ),
                    None => println!("ledger ok: empty ({})", path.display()),
                }
            }
            if !open.is_empty() && !as_json {
                let shown: Vec<&str> = open.iter().take(10).map(String::as_str).collect();
                println!(
                    "note: {} runs have no run.finished record (in flight, or interrupted by a crash): {}{}",
                    open.len(),
                    shown.join(", "),
                    if open.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    }
                );
            }
            Exit::Ok
        }
        Err(LedgerError::Tampered(tampering)) => {
            if as_json {
                println!(
                    "{}",
                    json!({ "ok": false, "path": path, "first_bad_seq": tampering.seq, "problem": tampering.to_string() })
                );
            } else {
                println!("ledger TAMPERED ({}): {tampering}", path.display());
            }
            Exit::Failed
        }
        Err(e) => Exit::Internal(anyhow!("cannot verify the ledger: {e}")),
    }
}

fn show(data: &DataDir, run: Option<&str>, from: u64, limit: usize, as_json: bool) -> Exit {
    let ledger = match open_existing(data) {
        Ok(l) => l,
        Err(exit) => return exit,
    };
    let entries = match run {
        Some(run) => ledger.entries_for_run(run).map(|mut e| {
            e.retain(|e| e.seq >= from);
            e.truncate(limit);
            e
        }),
        None => ledger.entries(from, limit),
    };
    let entries = match entries {
        Ok(e) => e,
        Err(e) => return Exit::Internal(anyhow!("cannot read the ledger: {e}")),
    };
    for entry in &entries {
        if as_json {
            match serde_json::to_string(entry) {
                Ok(line) => println!("{line}"),
                Err(e) => return Exit::Internal(e.into()),
            }
        } else {
            println!("{}", render::ledger_entry(entry));
        }
    }
    Exit::Ok
}

/// `grace keys generate`.
pub fn keys(cmd: KeysCommand) -> Exit {
    let KeysCommand::Generate { name, out } = cmd;
    let public = {
        let mut p = out.clone().into_os_string();
        p.push(".pub");
        std::path::PathBuf::from(p)
    };
    let key = match grace_ledger::generate_key(&name) {
        Ok(k) => k,
        Err(e) => return Exit::Invalid(anyhow!("--name: {e}")),
    };
    if let Err(e) = key.save(&out) {
        return Exit::Invalid(anyhow!("cannot write `{}`: {e}", out.display()));
    }
    if let Err(e) = key.verifier().save(&public) {
        return Exit::Invalid(anyhow!("cannot write `{}`: {e}", public.display()));
    }
    println!(
        "signing key `{name}` in {} (keep it secret); public key in {}",
        out.display(),
        public.display()
    );
    Exit::Ok
}

/// `grace ledger checkpoint`.
fn checkpoint(data: &DataDir, key: &std::path::Path, out: Option<&std::path::Path>) -> Exit {
    let key = match grace_ledger::SigningKey::load(key) {
        Ok(k) => k,
        Err(e) => return Exit::Invalid(anyhow!("--key `{}`: {e}", key.display())),
    };
    let ledger = match open_existing(data) {
        Ok(l) => l,
        Err(exit) => return exit,
    };
    let signed = match ledger.sign_checkpoint(&key) {
        Ok(s) => s,
        Err(e) if e.is_tampering() => {
            println!("ledger TAMPERED: {e}");
            return Exit::Failed;
        }
        Err(e) => return Exit::Internal(anyhow!("cannot sign a checkpoint: {e}")),
    };
    if let Some(out) = out
        && let Err(e) = std::fs::write(out, signed.as_str())
    {
        return Exit::Invalid(anyhow!("cannot write `{}`: {e}", out.display()));
    }
    print!("{}", signed.as_str());
    Exit::Ok
}

/// `grace ledger verify --checkpoint FILE --key FILE`.
fn verify_checkpoint(
    data: &DataDir,
    checkpoint: &std::path::Path,
    key: &std::path::Path,
    as_json: bool,
) -> Exit {
    let key = match grace_ledger::VerifierKey::load(key) {
        Ok(k) => k,
        Err(e) => return Exit::Invalid(anyhow!("--key `{}`: {e}", key.display())),
    };
    let signed = match grace_ledger::SignedCheckpoint::load(checkpoint) {
        Ok(s) => s,
        Err(e) => return Exit::Invalid(anyhow!("--checkpoint `{}`: {e}", checkpoint.display())),
    };
    let cp = match signed.verify(&key) {
        Ok(cp) => cp.clone(),
        Err(e) => {
            println!("checkpoint NOT SIGNED by `{}`: {e}", key.name());
            return Exit::Failed;
        }
    };
    let ledger = match open_existing(data) {
        Ok(l) => l,
        Err(exit) => return exit,
    };
    match ledger.verify_checkpoint(&cp) {
        Ok(report) => {
            if as_json {
                println!(
                    "{}",
                    json!({ "ok": true, "entries": report.entries, "checkpoint_size": cp.tree_size })
                );
            } else {
                println!(
                    "ledger ok: {} entries, consistent with the checkpoint of {} entries signed by `{}`",
                    report.entries,
                    cp.tree_size,
                    key.name()
                );
            }
            Exit::Ok
        }
        Err(e) if e.is_tampering() => {
            if as_json {
                println!("{}", json!({ "ok": false, "problem": e.to_string() }));
            } else {
                println!("ledger TAMPERED: {e}");
            }
            Exit::Failed
        }
        Err(e) => Exit::Internal(anyhow!("cannot verify the ledger: {e}")),
    }
}

/// `grace ledger proof SEQ`.
fn proof(data: &DataDir, seq: u64, as_json: bool) -> Exit {
    let ledger = match open_existing(data) {
        Ok(l) => l,
        Err(exit) => return exit,
    };
    let proof = match ledger.prove_inclusion(seq, None) {
        Ok(p) => p,
        Err(e) => return Exit::Invalid(anyhow!("no proof for entry {seq}: {e}")),
    };
    if let Err(e) = proof.verify(&proof.root_hash) {
        println!("proof of entry {seq} does NOT verify: {e}");
        return Exit::Failed;
    }
    if as_json {
        let path: Vec<String> = proof.path.iter().map(ToString::to_string).collect();
        println!(
            "{}",
            json!({
                "seq": proof.seq, "tree_size": proof.tree_size, "entry_hash": proof.entry_hash.to_string(),
                "leaf_hash": proof.leaf_hash().to_string(), "root_hash": proof.root_hash.to_string(), "path": path,
            })
        );
    } else {
        println!(
            "entry {} is in the tree of {} entries\nleaf  {}\nroot  {}",
            proof.seq,
            proof.tree_size,
            proof.leaf_hash(),
            proof.root_hash
        );
        for (i, h) in proof.path.iter().enumerate() {
            println!("path[{i}] {h}");
        }
    }
    Exit::Ok
}
