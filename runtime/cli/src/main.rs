//! `grace`: dry-run playbooks against a simulated fleet, inspect the ledger, and drive a running
//! server (`grace serve`) through its HTTP API.

use std::process::ExitCode;

use clap::Parser;

// Every command prints through these, not std's: they end the process quietly when stdout's
// reader has gone away instead of panicking ([`output`]). Defined before the modules, so that
// they are the `print!` and `println!` every module sees.
macro_rules! print {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*), false) };
}
macro_rules! println {
    () => { $crate::output::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*), true) };
}

mod cli;
mod client;
mod commands;
mod credentials;
mod output;
mod render;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    init_tracing(args.verbose);
    let code = commands::run(args);
    output::flush();
    code
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
