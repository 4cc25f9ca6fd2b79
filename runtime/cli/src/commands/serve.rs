//! `grace serve`: the host server.

use std::path::PathBuf;

use anyhow::anyhow;
use grace_server::config::{FileConfig, ServeConfig};
use grace_server::{Server, StartError};

use super::Exit;
use crate::cli::ServeArgs;

/// Defaults, then `grace.toml`, then flags and environment variables.
fn resolve(args: &ServeArgs) -> Result<ServeConfig, Exit> {
    let (path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from("grace.toml"), false),
    };
    let file = FileConfig::load(&path, required).map_err(|e| Exit::Invalid(e.into()))?;
    let mut c = file
        .apply(ServeConfig::default())
        .map_err(|e| Exit::Invalid(e.into()))?;
    if let Some(v) = args.listen {
        c.listen = v;
    }
    if let Some(v) = &args.data_dir {
        c.data_dir = v.clone();
    }
    if args.simulate {
        c.simulate = true;
    }
    if let Some(v) = &args.fleet {
        c.fleet = Some(v.clone());
    }
    if let Some(v) = args.queue_capacity {
        c.queue_capacity = v;
    }
    if let Some(v) = args.max_concurrent_runs {
        c.max_concurrent_runs = v;
    }
    if let Some(v) = args.max_body_bytes {
        c.max_body_bytes = v;
    }
    if let Some(v) = args.max_upload_bytes {
        c.max_upload_bytes = v;
    }
    if let Some(v) = args.max_connections {
        c.max_connections = v;
    }
    let duration = |flag: &str, v: &str| {
        humantime::parse_duration(v)
            .map_err(|e| Exit::Invalid(anyhow!("--{flag}: `{v}` is not a duration ({e})")))
    };
    if let Some(v) = &args.header_read_timeout {
        c.header_read_timeout = duration("header-read-timeout", v)?;
    }
    if let Some(v) = &args.body_read_timeout {
        c.body_read_timeout = duration("body-read-timeout", v)?;
    }
    if let Some(v) = &args.event_retention {
        c.event_retention = humantime::parse_duration(v).map_err(|e| {
            Exit::Invalid(anyhow!("--event-retention: `{v}` is not a duration ({e})"))
        })?;
    }
    if let Some(v) = &args.prometheus {
        c.prometheus = Some(v.clone());
    }
    c.insecure_no_auth = args.insecure_no_auth;
    c.insecure_plaintext = args.insecure_plaintext;
    // Each flag overrides its own setting of grace.toml; the pair is then checked as one.
    let (file_cert, file_key) = match c.tls.take() {
        Some(files) => (Some(files.cert), Some(files.key)),
        None => (None, None),
    };
    c.tls = grace_server::config::tls_files(
        args.tls_cert.clone().or(file_cert),
        args.tls_key.clone().or(file_key),
    )
    .map_err(|e| Exit::Invalid(e.into()))?;
    if args.allow_unsigned_playbooks {
        c.allow_unsigned_playbooks = true;
    }
    for path in &args.trust_root {
        c.trust_roots.push(trust_root(path)?);
    }
    c.validate().map_err(|e| Exit::Invalid(e.into()))?;
    Ok(c)
}

/// A `--trust-root` key file, named after its key.
fn trust_root(path: &std::path::Path) -> Result<grace_server::signing::TrustRootConfig, Exit> {
    let key = grace_ledger::VerifierKey::load(path)
        .map_err(|e| Exit::Invalid(anyhow!("--trust-root: {e}")))?;
    Ok(grace_server::signing::TrustRootConfig {
        name: key.name().to_owned(),
        public_key: key.to_string(),
    })
}

pub fn run(args: ServeArgs) -> Exit {
    let config = match resolve(&args) {
        Ok(c) => c,
        Err(exit) => return exit,
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
        match server.serve(shutdown).await {
            Ok(()) => Exit::Ok,
            Err(e) => Exit::Internal(anyhow!("the server failed: {e}")),
        }
    });
    // Runs still in flight are dropped at their next yield; blocking work (a ledger commit) gets
    // a moment to finish, but never holds the process after a SIGTERM.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    exit
}
