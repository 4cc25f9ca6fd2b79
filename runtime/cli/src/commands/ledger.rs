//! `grace ledger verify|show`.

use anyhow::anyhow;
use grace_ledger::{Durability, Ledger, LedgerError};
use serde_json::json;

use super::{Exit, ledger_path};
use crate::cli::{DataDir, LedgerCommand};
use crate::render;

pub fn run(cmd: LedgerCommand) -> Exit {
    match cmd {
        LedgerCommand::Verify { json, data } => verify(&data, json),
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
