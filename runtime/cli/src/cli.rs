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
    /// The API token file of client commands (default: `$GRACE_CONFIG_DIR/token`, else
    /// `~/.config/grace/token`); `GRACE_TOKEN` holding the token itself wins over both.
    #[arg(long, value_name = "FILE", env = "GRACE_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// A CA certificate file (PEM) client commands trust for an `https://` server, besides the
    /// system's roots: e.g. the certificate of `grace init --tls`.
    #[arg(long, value_name = "FILE", env = "GRACE_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host server: the HTTP API, the trigger mesh and the runs.
    Serve(Box<ServeArgs>),
    /// Set up a data directory for `grace serve` (offline, before it starts) and an `admin`
    /// token for this CLI, written to its credentials file.
    Init(InitArgs),
    /// Manage a running server's API tokens (needs the `admin` scope).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Manage a running server's local principals, the people and systems tokens belong to
    /// (needs the `admin` scope).
    #[command(subcommand)]
    Principals(PrincipalsCommand),
    /// Run one playbook on one event (or one collector pass), once: against the backends of
    /// grace.toml, recorded in the data directory's ledger; or with `--dry-run`, against the
    /// simulated fleet, writing nothing. With `--event`, only if one of its triggers holds.
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
    /// Trust policies (Cedar): manage a server's policy sets, or try policies offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Changes waiting for people to approve them: list, approve, deny.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Signing keys for ledger checkpoints and playbook signatures.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// A clustered server's view of the cluster: replicas, shards and their holders, leases.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The health graph of a running server: what runs where, what depends on what, how
    /// healthy each part is (needs `[graph]` in its grace.toml).
    #[command(subcommand)]
    Graph(GraphCommand),
    /// Incidents of a running server and their likely causes (docs/anomaly.md).
    #[command(subcommand)]
    Incidents(IncidentsCommand),
    /// What a running server learnt from its runs' outcomes, per playbook and resource:
    /// how often their signal cleared, how fast, at what cost (docs/outcomes.md).
    Outcomes {
        /// Only this playbook's.
        #[arg(long)]
        playbook: Option<String>,
        /// Only this resource's.
        #[arg(long)]
        resource: Option<String>,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Playbooks a running server's meta-loop paused for a resource (flapping), and resuming
    /// them (docs/outcomes.md).
    #[command(subcommand)]
    Pauses(PausesCommand),
    /// What a running server told Slack, PagerDuty and Jira, and how each delivery went
    /// (docs/integrations.md).
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Score anomaly detectors on a folder laid out like the Numenta Anomaly Benchmark
    /// (docs/anomaly.md).
    #[command(subcommand)]
    Nab(NabCommand),
    /// Show the simulated fleet of a server started with `--simulate`.
    Fleet {
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
}

/// `grace incidents` subcommands.
#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// Incidents, open ones first, newest first.
    List {
        /// Most incidents (default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// One incident: its resources, signals and runs, and its likely causes, ranked.
    Show {
        /// Its id, e.g. `inc-20260101T0005-1a2b3c4d`.
        id: String,
        /// Print the server's JSON (the incident and its causes).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
}

/// `grace pauses` subcommands.
#[derive(Debug, Subcommand)]
pub enum PausesCommand {
    /// The paused playbooks, each with the resource, since when and why.
    List {
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Lets a paused playbook start runs for the resource again.
    Resume {
        /// The playbook.
        #[arg(long)]
        playbook: String,
        /// The resource it was paused for.
        #[arg(long)]
        resource: String,
        #[command(flatten)]
        server: Server,
    },
}

/// `grace notifications` subcommands.
#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// Notifications, newest first.
    List {
        /// Only those in this state: `pending`, `delivered` or `failed`.
        #[arg(long)]
        state: Option<String>,
        /// Most notifications (1 to 500, default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// One notification: what it said, where, and how its delivery went.
    Show {
        /// Its id.
        id: u64,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
}

/// `grace nab` subcommands.
#[derive(Debug, Subcommand)]
pub enum NabCommand {
    /// Run each detector over every series of `--data` and score it the NAB way: per profile,
    /// the threshold chosen and the normalised score per category and overall.
    Score {
        /// The corpus: category folders of `timestamp,value` CSV files and NAB's
        /// `windows.json` (and optionally `profiles.json`) beside them.
        #[arg(long, value_name = "DIR")]
        data: std::path::PathBuf,
        /// A detector to score (repeatable; default: every detector).
        #[arg(long = "detector", value_name = "NAME")]
        detectors: Vec<grace_anomaly::DetectorKind>,
        /// A threshold fixed beforehand instead of optimised on this corpus: `T` for every
        /// profile or `PROFILE=T` (repeatable), e.g. as tuned on another corpus.
        #[arg(long = "threshold", value_name = "[PROFILE=]T")]
        thresholds: Vec<String>,
        /// Print the per-file scores too.
        #[arg(long, conflicts_with = "json")]
        files: bool,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `grace graph` subcommands.
#[derive(Debug, Subcommand)]
pub enum GraphCommand {
    /// Nodes with their health and KPIs, edges with their traffic: the whole graph, or what is
    /// within `--depth` steps of `--around`.
    Show {
        /// Print Graphviz DOT (`grace graph show --dot | dot -Tsvg > graph.svg`).
        #[arg(long, conflicts_with = "json")]
        dot: bool,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        /// Only this node (`service:shop/web`) and its neighbourhood.
        #[arg(long, value_name = "NODE")]
        around: Option<String>,
        /// Steps from `--around`, either way (default 1, at most 10).
        #[arg(long, requires = "around")]
        depth: Option<u32>,
        /// Most nodes shown (default 10000).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        server: Server,
    },
    /// One node: its KPIs, why it has its health, what depends on it and what it depends on.
    Node {
        /// Its id, e.g. `service:shop/web`.
        id: String,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Replicas, shards and their holders, this replica's leases; exits 1 when the replica is
    /// not ready (cut off from the engine).
    Status {
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Settings file (default `grace.toml` when it exists); flags and `GRACE_*` variables
    /// override it (docs/configuration.md).
    #[arg(long, env = "GRACE_CONFIG")]
    pub config: Option<PathBuf>,
    // Every setting a flag overrides, declared with the settings themselves.
    #[command(flatten)]
    pub overrides: grace_server::config::Overrides,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Data directory (holds the database) [default: .grace].
    #[arg(long, env = "GRACE_DATA_DIR", default_value = ".grace")]
    pub data_dir: PathBuf,
    /// Replace the `local-admin` token if there is one (the old one is revoked).
    #[arg(long, alias = "force")]
    pub rotate: bool,
    /// Also print the token on stdout (it is written to the credentials file either way).
    #[arg(long)]
    pub print: bool,
    /// Also make a self-signed certificate and key for `grace serve --tls-cert --tls-key`, to
    /// try HTTPS (`<data-dir>/tls/`; for 127.0.0.1, ::1 and localhost plus each `--tls-san`).
    #[arg(long)]
    pub tls: bool,
    /// Another name or IP address the `--tls` certificate is valid for (repeatable).
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_san: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum PrincipalsCommand {
    /// Make a local principal (`local:<name>`); an audit entry in the ledger names you.
    Create {
        /// Its name (`alice`, `ci-deploy`): 1 to 64 letters, digits, spaces and `.-_@'`.
        name: String,
        /// How people see it (default: the name).
        #[arg(long)]
        display_name: Option<String>,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// List the local principals.
    List {
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token; its secret is printed once, here.
    Create {
        /// A name for people: who or what uses it (`alertmanager`, `ci-deploy`).
        #[arg(long)]
        name: String,
        /// The local principal it speaks for (`grace principals create` makes one); yours
        /// when absent. The two-person rule counts principals, not tokens.
        #[arg(long)]
        principal: Option<String>,
        /// What it may do (repeatable): read, operate, approve, admin.
        #[arg(long = "scope", required = true, value_parser = clap::builder::PossibleValuesParser::new(["read", "operate", "approve", "admin"]))]
        scopes: Vec<String>,
        /// When it stops working, e.g. `30d` (default: never).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// List the tokens (never their secrets).
    List {
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id (`tok_...`).
        id: String,
        #[command(flatten)]
        server: Server,
    },
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
    #[command(flatten)]
    pub trust: DryTrustArgs,
    #[command(flatten)]
    pub data: DataDir,
}

/// What decides a dry run's calls: the trust core `grace serve` runs, with these policies and
/// this `[trust]` configuration.
#[derive(Debug, Args, Clone)]
pub struct DryTrustArgs {
    /// Cedar policy files (repeatable; each a policy set named after its file). Without them,
    /// the policy sets stored in the data directory; with none there, no policy is loaded and
    /// the grants decide, as in `grace serve`.
    #[arg(long = "policies", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// A `grace.toml` whose `[trust]` (guardrails, risk weights, `[[trust.resource]]`) the trust
    /// core applies; none: the defaults. A real `grace run` also acts on its backends (and reads
    /// ./grace.toml when none is named).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// The triggering event, as a JSON file (`-` for stdin); collectors take none. The
    /// playbook's triggers are checked on it first: it runs only if one holds.
    #[arg(long)]
    pub event: Option<PathBuf>,
    /// Run even if no trigger holds for the event (the report says it was forced).
    #[arg(long, requires = "event")]
    pub force: bool,
    /// Run against the simulated fleet instead of the backends of grace.toml, with a temporary
    /// ledger: the data directory is only read (its policies), never written. Without it, the
    /// run acts on the backends of `--config` (or ./grace.toml), decided by the policies stored
    /// in the data directory and recorded in its ledger; refused while a `grace serve` holds
    /// the data directory.
    #[arg(long)]
    pub dry_run: bool,
    /// The simulated fleet (TOML); the examples' default fleet when absent.
    #[arg(long, requires = "dry_run")]
    pub fleet: Option<PathBuf>,
    /// Print a machine-readable report.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub trust: DryTrustArgs,
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Verify a server's ledger here, trusting nothing it says: fetch its entries, tree head and
    /// latest signed checkpoint, recompute every hash and the Merkle root, and check the
    /// checkpoint's signature with `--key`. Exit 0 verified, 1 tampered, rewritten or not signed
    /// by the key (the message says which), 2 bad input, 3 the server could not be asked, 4 its
    /// newest signed checkpoint is older than `--max-age`.
    /// With `--data-dir`, walk the ledger file of a data directory instead (offline).
    Verify {
        /// Print a machine-readable result.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
        /// Verify the ledger file of this data directory (offline, e.g. with the server stopped)
        /// instead of a server's.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Verify every replica's ledger of the cluster `--server` belongs to, read through it:
        /// each chain as above, each extending the checkpoint its replica published to the
        /// engine, and each change made once in all the chains together.
        #[arg(long, conflicts_with_all = ["data_dir", "checkpoint", "since"])]
        cluster: bool,
        /// The public key of the server's `checkpoint_key` (`grace keys generate` writes it as
        /// `<key>.pub`; get it from the operator, never from the server itself). Without it, a
        /// server's ledger is checked for consistency only: nothing proves the server did not
        /// rewrite all of it.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// A signed checkpoint kept from earlier (`grace ledger checkpoint`, or a server's
        /// `GET /v1/ledger/checkpoint`): the ledger must still extend it, which catches a
        /// truncated or rewritten history that a re-hashed chain hides.
        #[arg(long, value_name = "FILE", requires = "key")]
        checkpoint: Option<PathBuf>,
        /// Incremental, for cron: verify only the entries after the state saved in FILE (a signed
        /// checkpoint and its Merkle frontier, written by the previous run) and that the
        /// server's new checkpoint extends it; then write the new state back. A missing FILE
        /// starts from entry 1.
        #[arg(
            long,
            value_name = "FILE",
            requires = "key",
            conflicts_with_all = ["checkpoint", "data_dir"]
        )]
        since: Option<PathBuf>,
        /// Fail (exit 4) when the server's newest signed checkpoint is older than this (`90s`,
        /// `15m`, `1h`): a server replaying an old checkpoint would hide every entry after it.
        /// A server signs one at least every `checkpoint_every`, even when idle; allow a few.
        #[arg(
            long,
            value_name = "DURATION",
            requires = "key",
            conflicts_with = "data_dir",
            value_parser = humantime::parse_duration
        )]
        max_age: Option<std::time::Duration>,
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
    /// Add a policy set to a server, or replace it with a new version (validated against the
    /// schema by the server; errors give line and column). Needs the `admin` scope.
    Add {
        /// The policy set's name (`ops`, `freeze`, `approvals`...).
        name: String,
        /// The Cedar file.
        file: PathBuf,
        #[command(flatten)]
        server: Server,
    },
    /// List a server's active policy sets.
    List {
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Show a policy set's text, or every version of it.
    Show {
        /// The policy set.
        name: String,
        /// Every version, oldest first.
        #[arg(long)]
        history: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Remove a policy set (its history is kept). Needs the `admin` scope.
    Remove {
        /// The policy set.
        name: String,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approval requests (pending ones unless `--state` says otherwise).
    List {
        /// `pending`, `approved`, `denied`, `expired`, `cancelled`, or `all`.
        #[arg(long, default_value = "pending")]
        state: String,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Show one approval request: the change, its risk and why it needs approval.
    Show {
        /// The approval's id (`ap-...`).
        id: String,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Approve a change (needs the `approve` scope); with the two-person rule, a second person
    /// must approve too.
    Approve {
        /// The approval's id.
        id: String,
        /// A note for the record.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// Deny a change (needs the `approve` scope): the playbook gets `denied`.
    Deny {
        /// The approval's id.
        id: String,
        /// Why (required: it is recorded).
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        server: Server,
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
    /// Start a playbook or collector crate from one of the examples: Cargo.toml (the GRACE SDK
    /// from its release tag, the examples' release profile), src/lib.rs, playbook.toml, a
    /// sample event and a README on building and dry-running it.
    New {
        /// Its crate and playbook name: lowercase letters, digits and `-`, starting with a letter.
        name: String,
        /// A playbook, run on events, or a collector, run on a schedule to emit events.
        #[arg(long, default_value = "playbook", value_parser = clap::builder::PossibleValuesParser::new(["playbook", "collector"]))]
        kind: String,
        /// The example it starts from (`playbooks/examples`) [default: the first of its kind].
        #[arg(long, value_parser = crate::commands::playbook_new::template_names())]
        template: Option<String>,
        /// Where to write it [default: ./NAME]; it must not exist, or be empty.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Upload a playbook or collector: its directory or its `playbook.toml` (and the component it
    /// names); checked locally first.
    Upload {
        /// The playbook's directory or its `playbook.toml`.
        path: PathBuf,
        /// The signature file [default: `<manifest>.sig`, sent when it exists].
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Sign a playbook or collector for upload: a detached Ed25519 signature over its
    /// component's digest and its manifest's exact bytes, written to `<manifest>.sig`.
    Sign {
        /// The playbook's directory or its `playbook.toml`.
        path: PathBuf,
        /// The signing key (`grace keys generate`); its public half must be a server's trust root.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where to write the signature [default: `<manifest>.sig`].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
    /// List stored events, oldest first, with the token that published each through the API.
    List {
        /// The first sequence number to list.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most events to list (the server allows at most 10000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The commands that work without a server, and why; every other command is a client of
    /// one. A new command is a client unless it is added here.
    const OFFLINE: [(&str, &str); 12] = [
        ("serve", "is the server"),
        ("init", "sets up a data directory before the server starts"),
        ("run", "runs a playbook here"),
        ("replay", "replays events here"),
        (
            "ledger checkpoint",
            "signs the ledger file of a data directory",
        ),
        ("ledger proof", "reads the ledger file of a data directory"),
        ("ledger show", "reads the ledger file of a data directory"),
        ("policy test", "decides a request against policy files"),
        ("keys generate", "writes key files"),
        ("playbook sign", "signs files"),
        ("playbook new", "writes a new crate"),
        ("nab score", "scores detectors on a folder of series"),
    ];

    /// Every command without subcommands, by its path (`ledger verify`).
    fn leaves(command: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in command.get_subcommands() {
            let path = format!("{prefix}{}", sub.get_name()).trim().to_owned();
            if sub.has_subcommands() {
                leaves(sub, &format!("{path} "), out);
            } else {
                out.push((path, sub.clone()));
            }
        }
    }

    #[test]
    fn every_client_command_takes_its_server_from_grace_server_like_the_others() {
        let mut commands = Vec::new();
        leaves(&Cli::command(), "", &mut commands);
        assert!(commands.len() > 30, "{} commands", commands.len());
        for (path, command) in &commands {
            let server = command
                .get_arguments()
                .find(|a| a.get_long() == Some("server"));
            if OFFLINE.iter().any(|(offline, _)| offline == path) {
                assert!(
                    server.is_none(),
                    "`grace {path}` is listed as offline but takes --server: remove it from OFFLINE"
                );
                continue;
            }
            let server = server.unwrap_or_else(|| {
                panic!("`grace {path}` takes no --server: flatten `cli::Server` into it, or list it in OFFLINE with the reason")
            });
            // One definition: `cli::Server`, with its environment variable and default.
            assert_eq!(server.get_id(), "url", "`grace {path}`");
            assert_eq!(
                server.get_env().and_then(|e| e.to_str()),
                Some("GRACE_SERVER"),
                "`grace {path}`"
            );
            assert_eq!(
                server
                    .get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>(),
                [crate::client::DEFAULT_SERVER],
                "`grace {path}`"
            );
        }
        for (offline, _) in OFFLINE {
            assert!(
                commands.iter().any(|(path, _)| path == offline),
                "OFFLINE names `grace {offline}`, which does not exist"
            );
        }
    }
}
