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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
