//! One module per subcommand. Each returns an [`Exit`]; errors are printed once, here.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

mod ledger;
mod run;

/// What the process exits with, and why.
pub enum Exit {
    /// 0: done.
    Ok,
    /// 1: the command ran and found a problem (a failed run, a tampered ledger).
    Failed,
    /// 2: bad input (arguments, files, manifests, events); the message says what to fix.
    Invalid(anyhow::Error),
    /// 3: GRACE itself could not do its job (e.g. the ledger cannot be opened).
    Internal(anyhow::Error),
}

pub fn run(cli: Cli) -> ExitCode {
    let exit = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Ledger(cmd) => ledger::run(cmd),
    };
    match exit {
        Exit::Ok => ExitCode::SUCCESS,
        Exit::Failed => ExitCode::from(1),
        Exit::Invalid(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Exit::Internal(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// The ledger file inside a data directory.
pub fn ledger_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("grace.redb")
}
