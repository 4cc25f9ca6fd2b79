//! `grace ledger verify|show`: the local ledger, or with `verify --server` a server's.

use anyhow::anyhow;
use grace_ledger::{Durability, Ledger, LedgerError};
use serde_json::json;

use super::{Exit, client, ledger_path};
use crate::cli::{DataDir, LedgerCommand};
use crate::client::VerifyResult;
use crate::render;

pub fn run(cmd: LedgerCommand) -> Exit {
    match cmd {
        LedgerCommand::Verify { json, server, data } => match server {
            Some(server) => verify_remote(&server, json),
            None => verify(&data, json),
        },
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
            if as_json {
                println!(
                    "{}",
                    json!({ "ok": true, "path": path, "entries": report.entries, "head": report.head })
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

/// `GET /v1/ledger/verify`, reported as the local verification is, with the server's URL where
/// the local one names the file.
fn verify_remote(server: &str, as_json: bool) -> Exit {
    let client = match client(server) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let result: VerifyResult = match client.get(&["v1", "ledger", "verify"], &[]) {
        Ok(r) => r,
        Err(e) => return e.into_exit(),
    };
    let server = client.server();
    if result.ok {
        let entries = result.entries.unwrap_or(0);
        if as_json {
            println!(
                "{}",
                json!({ "ok": true, "server": server, "entries": entries, "head": result.head })
            );
        } else {
            match &result.head {
                Some(head) => println!("ledger ok: {entries} entries, head {head} ({server})"),
                None => println!("ledger ok: empty ({server})"),
            }
        }
        Exit::Ok
    } else {
        let problem = result
            .problem
            .unwrap_or_else(|| match result.first_bad_seq {
                Some(seq) => format!("entry {seq} is not what the ledger wrote"),
                None => "the chain does not verify".to_owned(),
            });
        if as_json {
            println!(
                "{}",
                json!({ "ok": false, "server": server, "first_bad_seq": result.first_bad_seq, "problem": problem })
            );
        } else {
            println!("ledger TAMPERED ({server}): {problem}");
        }
        Exit::Failed
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
