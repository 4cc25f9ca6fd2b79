//! `grace run` without `--dry-run`: the backends of `grace.toml` (`[aws]`, `[docker]`,
//! `[kubernetes]`, `prometheus`, `[[providers]]`, routed as `grace serve` routes them), the
//! trust core on the data directory's database (its stored policies, its change history) and
//! its ledger.
//!
//! The data directory's database is one process's at a time: while a `grace serve` holds it,
//! a real run is refused with a clear error (publish the event to that server instead). A
//! change that needs people's approval is refused: a one-off run cannot wait for them, and no
//! approval request is left behind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::anyhow;
use grace_engine::text::escape;
use grace_executor::Executors;
use grace_ledger::{Durability, Ledger, LedgerError};
use grace_server::config::{ConfigFile, Overrides, ServeConfig};
use grace_server::trust::HostTrust;
use grace_server::trust::offline::{self, PolicyOrigin};

use super::dry_trust::{TrustSource, TrustVerdict};
use super::{Exit, ledger_path};
use crate::cli::RunArgs;

/// What a real run acts through, decides with and records in.
pub struct Backends {
    /// The providers of `grace.toml`, routed.
    pub executors: Executors,
    /// Each capability's providers, described.
    pub providers: BTreeMap<&'static str, BTreeMap<String, String>>,
    /// The data directory's ledger.
    pub ledger: Arc<Ledger>,
    /// The trust core on the data directory's database.
    pub trust: Arc<HostTrust>,
    source: TrustSource,
}

/// Reads `grace.toml` (`--config`, else `./grace.toml` if present), opens the data directory
/// and connects the providers.
pub async fn connect(args: &RunArgs) -> Result<Backends, Exit> {
    if !args.trust.policies.is_empty() {
        return Err(Exit::Invalid(anyhow!(
            "`--policies` is for dry runs: a real run is decided by the policies stored in the data directory (`grace policy add`)"
        )));
    }
    let file = match &args.trust.config {
        Some(path) => ConfigFile::Named(path.clone()),
        None => ConfigFile::Default,
    };
    let config =
        ServeConfig::load(&file, Overrides::default()).map_err(|e| Exit::Invalid(anyhow!(e)))?;
    if config.simulate {
        return Err(Exit::Invalid(anyhow!(
            "the configuration sets `simulate`: `grace run` acts on the backends of grace.toml; pass `--dry-run` to run against the simulated fleet"
        )));
    }
    if !config.has_providers() {
        return Err(Exit::Invalid(anyhow!(
            "no backend is configured: add [aws], [docker], [kubernetes], `prometheus` or [[providers]] to grace.toml (or name one with `--config`; see docs/providers.md), or pass `--dry-run` to run against the simulated fleet"
        )));
    }
    let ledger = Arc::new(open_ledger(&args.data.data_dir, config.storage.recovery())?);
    let database = ledger.database();
    let sets = offline::stored_policy_sets(&*database).map_err(|e| Exit::Invalid(anyhow!(e)))?;
    let trust = HostTrust::open(database, &config.trust)
        .map_err(|e| Exit::Invalid(anyhow!("`[trust]`: {e}")))?
        .for_one_run();
    let (mut executors, providers) = grace_server::providers::connect_for_one_run(&config)
        .await
        .map_err(|e| Exit::Invalid(anyhow!(e)))?;
    // One run scores no samples: `anomaly` reads answer `none` for every series.
    executors.anomaly = Some(Arc::new(grace_executor::NoDetectorHistory));
    let source = TrustSource {
        origin: if sets.is_empty() {
            PolicyOrigin::None
        } else {
            PolicyOrigin::DataDir
        },
        sets: sets.into_iter().map(|(name, _)| name).collect(),
        policies: trust.core().policies().active().len(),
        config: match file {
            ConfigFile::Named(path) => Some(path),
            ConfigFile::Default => {
                let default = std::path::PathBuf::from(grace_server::config::DEFAULT_CONFIG_FILE);
                default.exists().then_some(default)
            }
        },
    };
    Ok(Backends {
        executors,
        providers,
        ledger,
        trust: Arc::new(trust),
        source,
    })
}

/// The data directory's ledger, committing for `recovery` as `[storage]` says (the server opens
/// the same database so), or a clear error when a server holds it.
fn open_ledger(
    data_dir: &std::path::Path,
    recovery: grace_ledger::Recovery,
) -> Result<Ledger, Exit> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        Exit::Internal(anyhow!(
            "cannot create data directory `{}`: {e}",
            data_dir.display()
        ))
    })?;
    let path = ledger_path(data_dir);
    match Ledger::open_with(&path, Durability::Immediate, recovery) {
        Ok(ledger) => Ok(ledger),
        Err(LedgerError::Open {
            source: redb::Error::DatabaseAlreadyOpen,
            ..
        }) => Err(Exit::Invalid(anyhow!(
            "the data directory `{}` is in use by another process (a running `grace serve`): its database is one process's at a time. Publish the event to that server to run the playbook there (`grace events publish FILE`), or stop the server first",
            data_dir.display()
        ))),
        Err(e) => Err(Exit::Internal(anyhow!(e))),
    }
}

impl Backends {
    /// What the trust core was set up with, as a dry run reports it.
    pub fn trust_source(&self) -> &TrustSource {
        &self.source
    }

    /// The `trust` section: the set-up, approvals refused, one line per verdict.
    pub fn trust_section(&self, out: &mut String, verdicts: &[TrustVerdict]) {
        super::dry_trust::section(out, &self.source, verdicts);
        let _ = writeln!(
            out,
            "         a change that needs approval is refused: nobody can approve a one-off run"
        );
    }

    /// One line per capability with providers.
    pub fn providers_section(&self) -> String {
        let mut out = String::new();
        for (capability, providers) in &self.providers {
            for (name, description) in providers {
                let _ = writeln!(
                    out,
                    "backend  {capability}: `{}` ({})",
                    escape(name),
                    escape(description)
                );
            }
        }
        out
    }
}
