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
    /// Run the host server: the HTTP API, the trigger mesh and the runs.
    Serve(ServeArgs),
    /// Run one playbook on one event (or one collector pass).
    Run(RunArgs),
    /// Replay recorded events against playbooks in simulation: what would have fired and done.
    Replay(ReplayArgs),
    /// Inspect and verify the ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Manage the playbooks and collectors of a running server (`grace serve`).
    #[command(subcommand)]
    Playbook(PlaybookCommand),
    /// Publish events to a running server.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Follow and steer the runs of a running server.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Show every event source of a running server and its health (exit 1 if one is down).
    Sources {
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Trust policies (Cedar): try them offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Signing keys for ledger checkpoints.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Show the simulated fleet of a server started with `--simulate`.
    Fleet {
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Settings file (default `grace.toml` when it exists); flags override it.
    #[arg(long, env = "GRACE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long, env = "GRACE_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// Data directory (holds the database) [default: .grace].
    #[arg(long, env = "GRACE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Run against the simulated fleet instead of real backends.
    #[arg(long, env = "GRACE_SIMULATE")]
    pub simulate: bool,
    /// The simulated fleet (TOML); the examples' default fleet when absent.
    #[arg(long, env = "GRACE_FLEET")]
    pub fleet: Option<PathBuf>,
    /// Events that may wait to be matched before publishers get 429 [default: 10000].
    #[arg(long, env = "GRACE_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Runs executing at once [default: 8].
    #[arg(long, env = "GRACE_MAX_CONCURRENT_RUNS")]
    pub max_concurrent_runs: Option<usize>,
    /// Largest JSON request body in bytes [default: 4194304].
    #[arg(long, env = "GRACE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest playbook upload in bytes [default: 67108864].
    #[arg(long, env = "GRACE_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: Option<usize>,
    /// How long events are kept, e.g. `7d` [default: 7d].
    #[arg(long, env = "GRACE_EVENT_RETENTION")]
    pub event_retention: Option<String>,
    /// A Prometheus base URL (e.g. `http://127.0.0.1:9090`): the `metrics` capability queries
    /// it, even with `--simulate`.
    #[arg(long, value_name = "URL", env = "GRACE_PROMETHEUS")]
    pub prometheus: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The events: a JSON array, one event, JSON lines, or `GET /v1/events` output.
    pub events: PathBuf,
    /// Replay in simulation (the only mode for now).
    #[arg(long)]
    pub dry_run: bool,
    /// A playbook to replay against: its directory or `playbook.toml` (repeatable).
    #[arg(long)]
    pub playbook: Vec<PathBuf>,
    /// The simulated fleet (TOML); the examples' default fleet when absent.
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// Print a machine-readable report.
    #[arg(long)]
    pub json: bool,
}

/// Which server a client command talks to.
#[derive(Debug, Args, Clone)]
pub struct Server {
    /// The GRACE server's base URL.
    #[arg(long = "server", value_name = "URL", env = "GRACE_SERVER", default_value = crate::client::DEFAULT_SERVER)]
    pub url: String,
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
        /// Verify the ledger of the server at this URL instead of the local data directory.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Also check the ledger against this signed checkpoint (written earlier by `grace ledger
        /// checkpoint`): catches a truncated or rewritten history that a re-hashed chain hides.
        #[arg(long, value_name = "FILE", requires = "key", conflicts_with = "server")]
        checkpoint: Option<std::path::PathBuf>,
        /// The checkpoint signer's public key (`grace keys generate` writes it as `<key>.pub`).
        #[arg(long, value_name = "FILE")]
        key: Option<std::path::PathBuf>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Sign a checkpoint of the ledger (its size and Merkle root) and print it.
    Checkpoint {
        /// The signing key (`grace keys generate`).
        #[arg(long, value_name = "FILE")]
        key: std::path::PathBuf,
        /// Also write the checkpoint to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Prove that entry SEQ is in the ledger: its Merkle inclusion proof, checked before printing.
    Proof {
        /// The entry's sequence number.
        seq: u64,
        /// Print the proof as JSON.
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

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Decide one request (JSON) against policy files, and explain which policies decided it;
    /// exit 0 when allowed, 1 when denied or waiting for approval, 2 when a file is invalid.
    Test {
        /// The request: principal, action, resource, state, change, signal, history, at_millis.
        #[arg(long, value_name = "FILE")]
        request: std::path::PathBuf,
        /// Cedar policy files (each a policy set named after the file); none: no policy loaded.
        #[arg(long = "policies", value_name = "FILE")]
        policies: Vec<std::path::PathBuf>,
        /// Risk weights and guardrails (TOML: `[risk]`, `[[guardrail]]`).
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an Ed25519 signing key: FILE (secret, mode 0600) and FILE.pub (public).
    Generate {
        /// The key's name, also the checkpoints' origin, e.g. `grace.example.com/ledger`.
        #[arg(long)]
        name: String,
        /// Where to write the secret key; never overwritten.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// Upload a playbook or collector: its directory or its `playbook.toml` (and the component it
    /// names); checked locally first.
    Upload {
        /// The playbook's directory or its `playbook.toml`.
        path: PathBuf,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// List the server's playbooks and collectors.
    List {
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Show one playbook and its versions.
    Show {
        /// The playbook's name.
        name: String,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Enable a playbook: its triggers go live.
    Enable {
        /// The playbook's name.
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Disable a playbook: its triggers stop firing.
    Disable {
        /// The playbook's name.
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// Delete a playbook and every version (its runs and ledger entries stay).
    Delete {
        /// The playbook's name.
        name: String,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Publish events from a file (`-` for stdin): one event object, a JSON array of events, or
    /// one event per line; sent in batches of at most 1000, retried while the server is busy.
    Publish {
        /// The file, or `-` for stdin.
        file: PathBuf,
        #[command(flatten)]
        server: Server,
    },
}

/// The run states, as the server names them.
pub const RUN_STATES: [&str; 8] = [
    "queued",
    "running",
    "waiting-approval",
    "succeeded",
    "failed",
    "cancelled",
    "timed-out",
    "interrupted",
];

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs in this state.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(RUN_STATES))]
        state: Option<String>,
        /// Only runs of this playbook.
        #[arg(long)]
        playbook: Option<String>,
        /// Only runs about this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Most runs to list (the server's default is 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Show a run: its event, outcome or failure, and the timeline of its host calls.
    Show {
        /// The run's id.
        id: String,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Cancel a run that has not finished.
    Cancel {
        /// The run's id.
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// Queue an interrupted run again.
    Resume {
        /// The run's id.
        id: String,
        #[command(flatten)]
        server: Server,
    },
}
