//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// GRACE: a self-healing operations runtime.
#[derive(Debug, Parser)]
#[command(name = "grace", version, about, propagate_version = true)]
pub struct Cli {
    /// More logs on stderr (-v, -vv, -vvv); `GRACE_LOG` takes a tracing filter instead.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one playbook on one event (or one collector pass).
    Run(RunArgs),
    /// Inspect and verify the ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

/// Where GRACE keeps its data.
#[derive(Debug, Args, Clone)]
pub struct DataDir {
    /// Data directory (holds the ledger).
    #[arg(long, env = "GRACE_DATA_DIR", default_value = ".grace")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The playbook: its directory or its `playbook.toml`.
    pub playbook: PathBuf,
    /// The triggering event, as a JSON file (`-` for stdin); collectors take none.
    #[arg(long)]
    pub event: Option<PathBuf>,
    /// Run against the simulated fleet instead of real backends.
    #[arg(long)]
    pub dry_run: bool,
    /// The simulated fleet (TOML); the examples' default fleet when absent.
    #[arg(long, requires = "dry_run")]
    pub fleet: Option<PathBuf>,
    /// Print a machine-readable report.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Walk the hash chain; exit 1 naming the first entry that was modified, removed or reordered.
    Verify {
        /// Print a machine-readable result.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Print ledger entries.
    Show {
        /// Only the entries of this run.
        #[arg(long)]
        run: Option<String>,
        /// First sequence number.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most entries to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDir,
    },
}
