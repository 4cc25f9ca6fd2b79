//! One module per subcommand. Each returns an [`Exit`]; errors are printed once, here.

use std::process::ExitCode;

use grace_engine::text::escape_lines;

use crate::cli::{Cli, Command};

mod approvals;
mod cluster;
mod dry_trust;
mod events;
mod fleet;
mod graph;
mod incidents;
mod init;
mod ledger;
mod ledger_audit;
mod ledger_cluster;
mod nab;
mod notifications;
mod outcomes;
mod pauses;
mod playbook;
pub mod playbook_new;
mod policy;
mod principals;
mod replay;
mod run;
mod run_backends;
mod run_triggers;
mod runs;
mod serve;
mod sources;
mod tokens;

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
    /// 4: what was checked holds but is too old to vouch for now (`grace ledger verify
    /// --max-age`: the newest signed checkpoint is older than allowed).
    Stale,
}

pub fn run(cli: Cli) -> ExitCode {
    crate::credentials::set_token_file(cli.token_file);
    crate::client::set_ca_cert(cli.ca_cert);
    let exit = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Init(args) => init::run(&args),
        Command::Tokens(cmd) => tokens::run(cmd),
        Command::Principals(cmd) => principals::run(cmd),
        Command::Run(args) => run::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Ledger(cmd) => ledger::run(cmd),
        Command::Keys(cmd) => ledger::keys(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Approvals(cmd) => approvals::run(cmd),
        Command::Playbook(cmd) => playbook::run(cmd),
        Command::Events(cmd) => events::run(cmd),
        Command::Runs(cmd) => runs::run(cmd),
        Command::Cluster(cmd) => cluster::run(cmd),
        Command::Fleet { json, server } => fleet::run(server, json),
        Command::Graph(cmd) => graph::run(cmd),
        Command::Nab(cmd) => nab::run(cmd),
        Command::Incidents(cmd) => incidents::run(cmd),
        Command::Outcomes {
            playbook,
            resource,
            json,
            server,
        } => outcomes::run(&server, playbook, resource, json),
        Command::Pauses(cmd) => pauses::run(cmd),
        Command::Notifications(cmd) => notifications::run(cmd),
        Command::Sources { json, server } => sources::run(server, json),
    };
    match exit {
        Exit::Ok => ExitCode::SUCCESS,
        Exit::Failed => ExitCode::from(1),
        Exit::Stale => ExitCode::from(4),
        // Errors quote input and the server's answers: shown escaped (`grace_engine::text`).
        Exit::Invalid(e) => {
            eprintln!("error: {}", escape_lines(&format!("{e:#}")));
            ExitCode::from(2)
        }
        Exit::Internal(e) => {
            eprintln!("error: {}", escape_lines(&format!("{e:#}")));
            ExitCode::from(3)
        }
    }
}

/// A client of `server`, or the exit that says why there is none.
pub fn client(server: &str) -> Result<crate::client::Client, Exit> {
    crate::client::Client::new(server).map_err(crate::client::ClientError::into_exit)
}

/// Where `grace run` and `grace replay` keep compiled components between invocations (see
/// `grace_engine::artifacts`): `GRACE_CACHE_DIR` (empty: no cache), else
/// `$XDG_CACHE_HOME/grace/compiled`, else `$HOME/.cache/grace/compiled`. A user cache rather
/// than the data directory, so that a replay, which writes nothing there, creates nothing there.
pub fn compiled_cache_dir() -> Option<std::path::PathBuf> {
    let from = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    if let Some(dir) = std::env::var_os("GRACE_CACHE_DIR") {
        return (!dir.is_empty()).then(|| dir.into());
    }
    from("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| from("HOME").map(|home| std::path::Path::new(&home).join(".cache")))
        .map(|cache| cache.join("grace").join("compiled"))
}

/// The ledger file inside a data directory.
pub fn ledger_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("grace.redb")
}
