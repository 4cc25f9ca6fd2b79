//! `grace-kube-testserver`: the test API server as a process. Prints its URL on the first line
//! of standard output, then serves until interrupted (Ctrl-C or SIGTERM).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use grace_kube_testserver::{ServerConfig, TestServer};

/// A small Kubernetes API server for tests (apps/v1 deployments, scale, watch; v1 services and
/// discovery.k8s.io/v1 endpoint slices), in memory.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The loopback address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// How often the controller moves each deployment one replica towards its spec.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    step: Duration,
    /// A deployment to create, already rolled out: `namespace/name=replicas` (repeatable).
    #[arg(long, value_name = "NS/NAME=REPLICAS")]
    seed: Vec<String>,
}

fn parse_seed(text: &str) -> Result<(String, String, i32), String> {
    let malformed = || format!("`{text}` is not `namespace/name=replicas`");
    let (path, replicas) = text.split_once('=').ok_or_else(malformed)?;
    let (ns, name) = path.split_once('/').ok_or_else(malformed)?;
    let replicas = replicas.parse::<i32>().map_err(|_| malformed())?;
    if ns.is_empty() || name.is_empty() || replicas < 0 {
        return Err(malformed());
    }
    Ok((ns.to_owned(), name.to_owned(), replicas))
}

async fn stopped() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(args: Args) -> Result<(), String> {
    let seeds = args
        .seed
        .iter()
        .map(|s| parse_seed(s))
        .collect::<Result<Vec<_>, _>>()?;
    let server = TestServer::bind(args.listen, ServerConfig { step: args.step })
        .await
        .map_err(|e| e.to_string())?;
    for (ns, name, replicas) in seeds {
        server.seed_rolled_out(&ns, &name, replicas);
    }
    // The first line of standard output is the contract with scripts that start this.
    println!("{}", server.url());
    stopped().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("grace-kube-testserver: {message}");
            ExitCode::FAILURE
        }
    }
}
