//! `grace`: dry-run playbooks against a simulated fleet, inspect the ledger, and drive a running
//! server (`grace serve`) through its HTTP API.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod client;
mod commands;
mod credentials;
mod render;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    init_tracing(args.verbose);
    commands::run(args)
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,grace=info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRACE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Log lines carry text from outside (guests' log lines, errors quoting input): every control
    // character in an event is escaped, so one event is one line and nothing reaches the
    // terminal raw. The formatter's own colours would be escaped too, so there are none.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| grace_engine::text::EscapedLines(std::io::stderr()))
        .init();
}
