//! The server's trust core without a server, for `grace run --dry-run` and `grace replay`: the
//! same [`HostTrust`] (the same requests, guardrails, risk model, Cedar policies and approval
//! rules as `grace serve`) on a throwaway in-memory database, so a dry run stores nothing: its
//! change history, its approval requests and its policies are gone when it ends.
//!
//! The policies come from Cedar files, or are copied from the policy sets a server stored in
//! its data directory ([`stored_policy_sets`]). A change that would wait for approval stops the
//! dry run exactly where `grace serve` would stop the run, with the approval request's details
//! in its ledger entry; nobody can approve it, and nothing is kept.

use std::path::Path;
use std::sync::Arc;

use super::{HostTrust, TrustSettings, TrustSetupError};

/// Where a dry run's policies came from, to say so in its report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyOrigin {
    /// Cedar files named on the command line.
    Files,
    /// The policy sets stored in a server's data directory.
    DataDir,
    /// None: like a server with no policy loaded, the grants decide.
    None,
}

/// A policy set: its name and Cedar text.
pub type PolicySet = (String, String);

/// A trust core for one dry run: `settings` (`[trust]` of `grace.toml`) and the policy `sets`,
/// on an in-memory database.
pub fn dry_run(settings: &TrustSettings, sets: &[PolicySet]) -> Result<HostTrust, TrustSetupError> {
    let db = redb::Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .map_err(|e| TrustSetupError::Storage(format!("an in-memory database: {e}")))?;
    // Nothing in memory survives a crash: no commit needs to prepare a quick recovery.
    let db = grace_ledger::Database::new(db, grace_ledger::Recovery::Full);
    let trust = HostTrust::open(Arc::new(db), settings)?;
    for (name, text) in sets {
        trust
            .core()
            .policies()
            .add(name, text, "dry-run")
            .map_err(|e| TrustSetupError::Policy {
                set: name.clone(),
                message: e.to_string(),
            })?;
    }
    Ok(trust)
}

/// Policy sets from Cedar files, each named after its file (`ops.cedar` is set `ops`), as
/// `grace policy test --policies` names them.
pub fn policy_files(paths: &[impl AsRef<Path>]) -> Result<Vec<PolicySet>, TrustSetupError> {
    // A policy file is text an operator wrote: a bound keeps a huge file unread.
    const MAX_POLICY_FILE_BYTES: u64 = 4 * 1024 * 1024;
    let mut sets = Vec::with_capacity(paths.len());
    for path in paths {
        let path = path.as_ref();
        let refused = |message: String| TrustSetupError::PolicyFile {
            path: path.to_owned(),
            message,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| refused(format!("cannot be read: {e}")))?
            .len();
        if size > MAX_POLICY_FILE_BYTES {
            return Err(refused(format!(
                "a policy file is at most {MAX_POLICY_FILE_BYTES} bytes"
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| refused(format!("cannot be read: {e}")))?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| refused("the file name cannot name a policy set".into()))?;
        sets.push((name.to_owned(), text));
    }
    Ok(sets)
}

/// The live policy sets stored in `db` (a server's database, `<data-dir>/grace.redb`), read
/// with read transactions only.
pub fn stored_policy_sets(
    db: &impl redb::ReadableDatabase,
) -> Result<Vec<PolicySet>, TrustSetupError> {
    let (_, sets) =
        grace_trust::stored_sets(db).map_err(|e| TrustSetupError::Storage(e.to_string()))?;
    Ok(sets.into_iter().map(|v| (v.name, v.text)).collect())
}

/// A copy of a server's database is read at most this big: the file holds the ledger too, and
/// a dry run should not fill a disk to read a few policies.
const MAX_COPIED_DATABASE_BYTES: u64 = 1024 * 1024 * 1024;

/// The live policy sets stored in the database at `path` (`<data-dir>/grace.redb`); none when
/// there is no database there. A dry run never writes the server's database: it is opened
/// read-only, and when that is refused (a `grace serve` holds it, or it was not closed cleanly
/// and would need a repair, which writes) a copy of it in a temporary directory is opened
/// instead, and removed before this returns.
pub fn stored_policy_sets_at(path: &Path) -> Result<Vec<PolicySet>, TrustSetupError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let refused = |message: String| TrustSetupError::StoredPolicies {
        path: path.to_owned(),
        message,
    };
    match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => return stored_policy_sets(&db).map_err(|e| refused(e.to_string())),
        Err(e) => tracing::debug!(error = %e, "reading a copy of the database"),
    }
    let size = std::fs::metadata(path)
        .map_err(|e| refused(format!("cannot be read: {e}")))?
        .len();
    if size > MAX_COPIED_DATABASE_BYTES {
        return Err(refused(format!(
            "it is in use and larger than the {MAX_COPIED_DATABASE_BYTES} bytes a dry run copies; name the policies with `--policies`"
        )));
    }
    let dir = tempfile::tempdir().map_err(|e| refused(format!("no temporary directory: {e}")))?;
    let copy = dir.path().join("grace.redb");
    std::fs::copy(path, &copy).map_err(|e| refused(format!("cannot be copied: {e}")))?;
    // The copy may have been taken in the middle of a commit: opening it repairs the copy, or
    // fails and says how to go on.
    let db = redb::Database::open(&copy).map_err(|e| {
        refused(format!(
            "a copy of it cannot be opened: {e} (name the policies with `--policies`)"
        ))
    })?;
    stored_policy_sets(&db).map_err(|e| refused(e.to_string()))
}

#[cfg(test)]
mod tests {
    use grace_engine::Kind;
    use grace_engine::pipeline::Call;
    use grace_engine::run::GuestInfo;
    use grace_engine::trust::{Ask, Trust, TrustDecision, TrustOutcome};
    use serde_json::json;

    use super::*;

    fn guest() -> GuestInfo {
        GuestInfo {
            name: "probe".into(),
            version: "1.0.0".into(),
            kind: Kind::Playbook,
            digest: "sha256:00".into(),
        }
    }

    fn read(interface: &'static str, function: &'static str) -> Call {
        let descriptor = grace_model::capability::function(interface, function).unwrap();
        Call {
            descriptor,
            args: json!({}),
            target: String::new(),
            resource: None,
            lock: None,
            provider: None,
        }
    }

    async fn decide(trust: &HostTrust, call: &Call) -> TrustDecision {
        let guest = guest();
        let ask = Ask {
            run_id: "run",
            guest: &guest,
            call,
            key: None,
            proposal: None,
            event: None,
            at_millis: 0,
        };
        trust.decide(&ask).await
    }

    #[tokio::test]
    async fn a_read_naming_no_resource_is_refused() {
        let trust = dry_run(&TrustSettings::default(), &[]).unwrap();
        let decided = decide(&trust, &read("containers", "logs")).await;
        assert_eq!(decided.outcome, TrustOutcome::Deny, "{}", decided.reason);
        assert!(
            decided.reason.contains("names no resource"),
            "{}",
            decided.reason
        );
    }

    #[tokio::test]
    async fn log_clock_and_config_are_outside_the_trust_core_and_allowed() {
        // A forbid of everything would refuse any call the trust core is asked about.
        let forbid = (
            "all".to_owned(),
            "forbid (principal, action, resource);".to_owned(),
        );
        let trust = dry_run(&TrustSettings::default(), &[forbid]).unwrap();
        for (interface, function) in [
            ("log", "log"),
            ("clock", "now"),
            ("clock", "sleep"),
            ("config", "get"),
        ] {
            let decided = decide(&trust, &read(interface, function)).await;
            assert_eq!(
                decided.outcome,
                TrustOutcome::Allow,
                "{interface}.{function}"
            );
        }
        let logs = Call {
            resource: Some(grace_trust::Resource::container("web-1")),
            ..read("containers", "logs")
        };
        assert_eq!(decide(&trust, &logs).await.outcome, TrustOutcome::Deny);
    }

    #[test]
    fn a_dry_run_copies_the_policies_a_server_stored() {
        let db = Arc::new(grace_ledger::Database::new(
            redb::Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .unwrap(),
            grace_ledger::Recovery::Full,
        ));
        let store = grace_trust::PolicyStore::open(db.clone()).unwrap();
        store.add("base", grace_trust::BASELINE, "admin").unwrap();
        drop(store);
        let sets = stored_policy_sets(&*db).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].0, "base");
        let trust = dry_run(&TrustSettings::default(), &sets).unwrap();
        assert_eq!(trust.core().policies().list().len(), 1);
    }
}
