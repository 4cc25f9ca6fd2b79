//! `grace serve`: the host server.

use anyhow::anyhow;
use grace_server::config::{ConfigFile, ServeConfig};
use grace_server::{Server, StartError};

use super::Exit;
use crate::cli::ServeArgs;

pub fn run(args: ServeArgs) -> Exit {
    let file = match args.config {
        Some(path) => ConfigFile::Named(path),
        None => ConfigFile::Default,
    };
    let config = match ServeConfig::load(&file, args.overrides) {
        Ok(c) => c,
        Err(e) => return Exit::Invalid(e.into()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Exit::Internal(anyhow!("cannot start the async runtime: {e}")),
    };
    let exit = runtime.block_on(async move {
        let simulate = config.simulate;
        let data_dir = config.data_dir.clone();
        let server = match Server::bind(config).await {
            Ok(s) => s,
            Err(e @ (StartError::Config(_) | StartError::NoProviders | StartError::Tls(_))) => {
                return Exit::Invalid(e.into());
            }
            Err(
                e @ StartError::Cluster(
                    grace_cluster::ClusterError::Settings(_)
                    | grace_cluster::ClusterError::Mismatch { .. }
                    | grace_cluster::ClusterError::Schema { .. },
                ),
            ) => return Exit::Invalid(e.into()),
            Err(e) => return Exit::Internal(e.into()),
        };
        eprintln!(
            "grace serving on {} ({}; data in `{}`)",
            server.url(),
            if simulate { "simulation" } else { "live" },
            data_dir.display()
        );
        if server.app.auth.is_insecure() {
            eprintln!(
                "grace: WARNING: --insecure-no-auth: the API has NO AUTHENTICATION; anyone who can reach {} may do anything",
                server.url()
            );
        }
        if server.app.config.insecure_plaintext && server.tls.is_none() {
            eprintln!(
                "grace: WARNING: --insecure-plaintext: the API speaks plain HTTP on {}; bearer tokens and everything else cross the network IN CLEAR, readable and replayable by anyone on the path (use --tls-cert/--tls-key, or a TLS proxy you trust on the same host)",
                server.addr
            );
        }
        let cluster = server.app.cluster.clone();
        if let Some(cluster) = &cluster {
            let settings = cluster.settings();
            eprintln!(
                "grace: clustered as replica `{}` on {} ({} shards); see `grace cluster status` and docs/cluster.md for what is shared so far",
                settings.replica_name(),
                settings.nats.join(", "),
                settings.shards
            );
        }
        let shutdown = async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(t) => t,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
            eprintln!("grace: shutting down");
        };
        let served = server.serve(shutdown).await;
        // A replica stopping cleanly gives its shards back now, rather than after lease_ttl.
        if let Some(cluster) = cluster {
            cluster.leave().await;
        }
        match served {
            Ok(()) => Exit::Ok,
            Err(e) => Exit::Internal(anyhow!("the server failed: {e}")),
        }
    });
    // Runs still in flight are dropped at their next yield; blocking work (a ledger commit) gets
    // a moment to finish, but never holds the process after a SIGTERM.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    exit
}
