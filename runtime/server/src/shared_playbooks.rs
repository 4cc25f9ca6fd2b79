//! Playbooks shared by the replicas of a cluster: an upload, an enable or disable, a delete on
//! any replica reaches every other one.
//!
//! The catalogue in the engine ([`grace_cluster::playbooks`]) holds each playbook's versions
//! (manifest, component digest, signature as uploaded), whether it is enabled, or that it was
//! deleted; the components are in the engine's object store. A replica that changes a playbook
//! through its API writes the change to the catalogue ([`SharedPlaybooks::publish`], a
//! compare-and-set merge that never drops a version another replica added meanwhile); every
//! replica follows the catalogue ([`follow`]) and installs what it lacks through its own
//! registry, exactly as an upload to it: the component's digest checked, **the signature
//! verified against its own trust roots** (a replica that does not trust the signer does not
//! install the version, and says so), the manifest checked against its own caps, the component
//! compiled. What a replica installs this way is not written back: only API changes are.

use std::sync::Arc;

use grace_cluster::{Cluster, ClusterError};
use serde::{Deserialize, Serialize};

use crate::registry::{Registry, RegistryError};
use crate::signing::Signature;
use crate::store::PlaybookRecord;
use crate::supervisor::TaskError;

/// The most versions of one playbook the catalogue keeps (the newest): a replica joining later
/// installs these; older ones stay on the replicas that have them.
pub const MAX_SHARED_VERSIONS: usize = 32;

/// A playbook as the catalogue holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shared {
    /// The name.
    pub name: String,
    /// Whether its triggers are live.
    pub enabled: bool,
    /// Deleted: every replica deletes it (an upload of the name makes it again).
    #[serde(default)]
    pub deleted: bool,
    /// Its versions, oldest first; the last is the one that runs.
    pub versions: Vec<SharedVersion>,
}

/// One version in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedVersion {
    /// The manifest's version.
    pub version: String,
    /// The component's digest: its object in the engine.
    pub digest: String,
    /// The manifest as uploaded.
    pub manifest: String,
    /// The signature as uploaded; absent for an unsigned upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Why a change could not be shared with the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The engine did not take it.
    #[error("the cluster's engine: {0}")]
    Engine(#[from] ClusterError),
    /// This replica's registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Another replica has the same version with another component or manifest.
    #[error(
        "`{name}` version `{version}` is in the cluster with another component or manifest (`{existing}`), uploaded on another replica; versions are immutable, bump `version`"
    )]
    Conflict {
        /// The playbook.
        name: String,
        /// The version.
        version: String,
        /// The digest in the catalogue.
        existing: String,
    },
    /// The catalogue's value cannot be read or written.
    #[error("the catalogue's record of `{0}` cannot be read or written: {1}")]
    Record(String, String),
}

/// A change made through a replica's API, as the catalogue records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// Version `0` was uploaded: it is added (and runs everywhere, as the newest upload).
    Uploaded(&'a str),
    /// Enabled or disabled.
    Enabled(bool),
    /// Deleted.
    Deleted,
    /// What this replica has, for a playbook the catalogue lacks (a replica that had playbooks
    /// before it joined).
    Everything,
}

fn shared_version(v: &crate::store::VersionRecord) -> SharedVersion {
    SharedVersion {
        version: v.version.clone(),
        digest: v.digest.clone(),
        manifest: v.manifest.clone(),
        signature: v.signature.clone(),
    }
}

/// Adds `v` to `versions` (last: it runs), unless there with the same contents; the same
/// version with another component or manifest is a conflict.
fn add_version(
    name: &str,
    versions: &mut Vec<SharedVersion>,
    v: SharedVersion,
) -> Result<(), ShareError> {
    if let Some(at) = versions.iter().position(|s| s.version == v.version) {
        let same = &versions[at];
        if same.digest != v.digest || same.manifest != v.manifest {
            return Err(ShareError::Conflict {
                name: name.to_owned(),
                version: v.version,
                existing: same.digest.clone(),
            });
        }
        versions.remove(at);
    }
    versions.push(v);
    Ok(())
}

/// What the catalogue says of playbook `name` once `change`, made on this replica (which has
/// `local` now), is written over `shared` (what the catalogue says now): only what the change
/// touched, so that a replica that has not seen another's change yet does not undo it.
fn merge(
    name: &str,
    shared: Option<&Shared>,
    local: Option<&PlaybookRecord>,
    change: Change<'_>,
) -> Result<Shared, ShareError> {
    let live = shared.filter(|s| !s.deleted).cloned();
    let fresh = || Shared {
        name: name.to_owned(),
        enabled: local.is_none_or(|l| l.enabled),
        deleted: false,
        versions: Vec::new(),
    };
    let mut wanted = match change {
        Change::Deleted => {
            return Ok(Shared {
                name: name.to_owned(),
                enabled: false,
                deleted: true,
                versions: Vec::new(),
            });
        }
        Change::Enabled(enabled) => Shared {
            enabled,
            ..live.unwrap_or_else(fresh)
        },
        Change::Uploaded(version) => {
            let mut wanted = live.unwrap_or_else(fresh);
            let v = local
                .and_then(|l| l.versions.iter().find(|v| v.version == version))
                .ok_or_else(|| {
                    ShareError::Record(name.to_owned(), format!("no version `{version}` here"))
                })?;
            add_version(name, &mut wanted.versions, shared_version(v))?;
            wanted
        }
        Change::Everything => {
            let mut wanted = live.unwrap_or_else(fresh);
            if let Some(local) = local {
                for v in &local.versions {
                    if v.version != local.active_version {
                        add_version(name, &mut wanted.versions, shared_version(v))?;
                    }
                }
                if let Some(active) = local.active() {
                    add_version(name, &mut wanted.versions, shared_version(active))?;
                }
            }
            wanted
        }
    };
    let excess = wanted.versions.len().saturating_sub(MAX_SHARED_VERSIONS);
    wanted.versions.drain(..excess);
    Ok(wanted)
}

fn encode(shared: &Shared) -> Result<Vec<u8>, ShareError> {
    let mut shared = shared.clone();
    loop {
        let bytes = serde_json::to_vec(&shared)
            .map_err(|e| ShareError::Record(shared.name.clone(), e.to_string()))?;
        let limit = usize::try_from(grace_cluster::playbooks::MAX_RECORD_BYTES).unwrap_or(0);
        if bytes.len() <= limit {
            return Ok(bytes);
        }
        // Large manifests: fewer versions, the oldest dropped first, the active one kept.
        if shared.versions.len() <= 1 {
            return Err(ShareError::Record(
                shared.name,
                "larger than one engine message".into(),
            ));
        }
        shared.versions.remove(0);
    }
}

fn decode(name: &str, bytes: &[u8]) -> Result<Shared, ShareError> {
    let shared: Shared = serde_json::from_slice(bytes)
        .map_err(|e| ShareError::Record(name.to_owned(), e.to_string()))?;
    if shared.name != name {
        return Err(ShareError::Record(
            name.to_owned(),
            "it names another playbook".into(),
        ));
    }
    Ok(shared)
}

/// This replica's side of the cluster's playbooks.
pub struct SharedPlaybooks {
    cluster: Arc<Cluster>,
    registry: Arc<Registry>,
    /// The largest component installed (`max_upload_bytes`).
    max_component_bytes: usize,
    /// One catalogue change applied here at a time.
    applying: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SharedPlaybooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPlaybooks").finish_non_exhaustive()
    }
}

impl SharedPlaybooks {
    /// Shares `registry`'s playbooks through `cluster`.
    pub fn new(
        cluster: Arc<Cluster>,
        registry: Arc<Registry>,
        max_component_bytes: usize,
    ) -> SharedPlaybooks {
        SharedPlaybooks {
            cluster,
            registry,
            max_component_bytes,
            applying: tokio::sync::Mutex::new(()),
        }
    }

    /// Refuses an upload of version `version` of `name` that the cluster has with another
    /// component or manifest, before anything is stored here.
    pub async fn check_upload(
        &self,
        name: &str,
        version: &str,
        digest: &str,
        manifest: &str,
    ) -> Result<(), ShareError> {
        let Some(stored) = self.cluster.playbooks().records.get(name).await? else {
            return Ok(());
        };
        let shared = decode(name, &stored.value)?;
        match shared
            .versions
            .iter()
            .find(|v| v.version == version && !shared.deleted)
        {
            Some(v) if v.digest != digest || v.manifest != manifest => Err(ShareError::Conflict {
                name: name.to_owned(),
                version: version.to_owned(),
                existing: v.digest.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Writes `change`, just made to playbook `name` through this replica's API, to the
    /// catalogue: the components of the versions it adds first, then the record, merged over
    /// what another replica wrote meanwhile.
    pub async fn publish(&self, name: &str, change: Change<'_>) -> Result<(), ShareError> {
        let catalogue = self.cluster.playbooks();
        let local = match self.registry.playbook(name) {
            Ok(local) => Some(local),
            Err(RegistryError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        // The components first: a replica that reads the version finds its component.
        if let Some(local) = &local {
            for v in &local.versions {
                let adds = match change {
                    Change::Uploaded(version) => v.version == version,
                    Change::Everything => true,
                    Change::Enabled(_) | Change::Deleted => false,
                };
                if adds {
                    let bytes = self.registry.component(&v.digest)?;
                    catalogue.put_component(&v.digest, &bytes).await?;
                }
            }
        }
        catalogue
            .records
            .merge(name, |there| {
                let shared = there.map(|bytes| decode(name, bytes)).transpose()?;
                let wanted = merge(name, shared.as_ref(), local.as_ref(), change)?;
                if shared.as_ref() == Some(&wanted) {
                    return Ok(None);
                }
                encode(&wanted).map(Some)
            })
            .await
    }

    /// Applies every playbook the catalogue has, once; answers what it listed. Called at start,
    /// before the replica takes part, so that a playbook disabled or deleted while it was down
    /// does not run here.
    pub async fn catch_up(&self) -> Result<Vec<grace_cluster::Stored>, ClusterError> {
        let listed = self
            .cluster
            .playbooks()
            .records
            .list(grace_cluster::playbooks::MAX_LISTED)
            .await?;
        for entry in &listed {
            match decode(&entry.id, &entry.value) {
                Ok(record) => self.apply(&record).await,
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(listed)
    }

    /// Makes this replica's store say what the catalogue says of a playbook: versions it lacks
    /// installed as uploads (the signature verified here), enabled or disabled, or deleted.
    /// What cannot be installed is logged and left out.
    async fn apply(&self, shared: &Shared) {
        let _applying = self.applying.lock().await;
        let name = shared.name.as_str();
        let local = match self.registry.playbook(name) {
            Ok(local) => Some(local),
            Err(RegistryError::NotFound(_)) => None,
            Err(e) => {
                tracing::error!(playbook = %name, "cannot read the playbook here: {e}");
                return;
            }
        };
        if shared.deleted {
            if local.is_some()
                && let Err(e) = self.registry.delete(name).await
            {
                tracing::error!(playbook = %name, "cannot delete the playbook deleted on another replica: {e}");
            }
            return;
        }
        // Disabled in the cluster: off here before anything is installed.
        if !shared.enabled
            && local.as_ref().is_some_and(|l| l.enabled)
            && let Err(e) = self.registry.set_enabled(name, false).await
        {
            tracing::error!(playbook = %name, "cannot disable the playbook disabled on another replica: {e}");
        }
        for v in &shared.versions {
            if let Some(have) = local
                .as_ref()
                .and_then(|l| l.versions.iter().find(|h| h.version == v.version))
            {
                if have.digest != v.digest {
                    tracing::error!(playbook = %name, version = %v.version, "another replica has this version with another component: not installed here (versions are immutable)");
                }
                continue;
            }
            if let Err(why) = self.install(name, v, shared.enabled).await {
                self.cluster
                    .counters()
                    .installs_refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(playbook = %name, version = %v.version, "the version uploaded on another replica is not installed here: {why}");
            }
        }
        // The version that runs in the cluster runs here, if this replica could install it.
        let Some(active) = shared.versions.last() else {
            return;
        };
        let installed = self.registry.playbook(name).is_ok_and(|l| {
            l.versions
                .iter()
                .any(|h| h.version == active.version && h.digest == active.digest)
        });
        if installed {
            if let Err(e) = self
                .registry
                .follow(name, &active.version, shared.enabled)
                .await
            {
                tracing::error!(playbook = %name, "cannot follow the cluster's active version and state: {e}");
            }
        } else if self.registry.playbook(name).is_ok_and(|l| l.enabled) {
            // Not the cluster's version: nothing runs here rather than another version.
            tracing::error!(playbook = %name, version = %active.version, "the cluster runs a version this replica could not install: the playbook is disabled here");
            if let Err(e) = self.registry.set_enabled(name, false).await {
                tracing::error!(playbook = %name, "cannot disable the playbook: {e}");
            }
        }
    }

    /// Installs version `v` of `name` from the engine, checked as an upload to this replica.
    async fn install(&self, name: &str, v: &SharedVersion, enabled: bool) -> Result<(), String> {
        let component = self
            .cluster
            .playbooks()
            .component(&v.digest, self.max_component_bytes)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("its component is not in the engine")?;
        if crate::signing::digest(&component) != v.digest {
            return Err(format!("the component in the engine is not `{}`", v.digest));
        }
        let signed_by = match &v.signature {
            Some(text) => {
                let signature = Signature::parse(text).map_err(|e| e.to_string())?;
                let by = self
                    .registry
                    .trust_roots()
                    .verify(&signature, &component, v.manifest.as_bytes())
                    .map_err(|e| format!("its signature does not verify here: {e}"))?;
                Some(by)
            }
            None if self.registry.allows_unsigned() => None,
            None => {
                return Err(
                    "it is unsigned, and this replica takes signed playbooks only".to_owned(),
                );
            }
        };
        let (created, _) = self
            .registry
            .install(
                v.manifest.clone(),
                component,
                signed_by,
                v.signature.clone(),
                enabled,
            )
            .await
            .map_err(|e| e.to_string())?;
        if created {
            tracing::info!(playbook = %name, version = %v.version, "installed the version uploaded on another replica");
        }
        Ok(())
    }
}

/// Why following the catalogue stopped.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error("cannot follow the cluster's playbooks: {0}")]
    Engine(#[from] ClusterError),
    #[error("the engine stopped sending the cluster's playbook changes")]
    Ended,
}

/// Follows the catalogue: at start (and at each restart of this task), every playbook in it is
/// applied here and this replica's playbooks the catalogue lacks are published (a replica that
/// had playbooks before it joined); then each change, as it is written, by any replica.
pub async fn follow(shared: Arc<SharedPlaybooks>) -> Result<(), TaskError> {
    use futures_util::StreamExt as _;
    // Watching first, so that nothing written during the catch-up is missed.
    let changes = shared
        .cluster
        .playbooks()
        .records
        .changes()
        .await
        .map_err(|e| TaskError::new(FollowError::Engine(e)))?;
    let listed = shared
        .catch_up()
        .await
        .map_err(|e| TaskError::new(FollowError::Engine(e)))?;
    match shared.registry.playbooks() {
        Ok(local) => {
            for record in local {
                if !listed.iter().any(|e| e.id == record.name)
                    && let Err(e) = shared.publish(&record.name, Change::Everything).await
                {
                    tracing::warn!(playbook = %record.name, "cannot share the playbook with the cluster: {e}");
                }
            }
        }
        Err(e) => tracing::error!("cannot read this replica's playbooks: {e}"),
    }
    let mut changes = std::pin::pin!(changes);
    while let Some(change) = changes.next().await {
        match change
            .map_err(ShareError::from)
            .and_then(|e| decode(&e.id, &e.value))
        {
            Ok(record) => shared.apply(&record).await,
            Err(ShareError::Engine(e)) => return Err(TaskError::new(FollowError::Engine(e))),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    Err(TaskError::new(FollowError::Ended))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::VersionRecord;

    fn local(versions: &[(&str, &str)], active: &str) -> PlaybookRecord {
        PlaybookRecord {
            name: "scaler".into(),
            enabled: true,
            active_version: active.into(),
            versions: versions
                .iter()
                .map(|(version, digest)| VersionRecord {
                    name: "scaler".into(),
                    version: (*version).into(),
                    kind: grace_engine::Kind::Playbook,
                    digest: (*digest).into(),
                    uploaded_at: 0,
                    manifest: format!("version = \"{version}\""),
                    signed_by: None,
                    signature: Some(format!("sig of {version}")),
                })
                .collect(),
        }
    }

    #[test]
    fn an_upload_adds_its_version_and_keeps_what_other_replicas_wrote() {
        let theirs = merge(
            "scaler",
            None,
            Some(&local(&[("1.0.0", "d1"), ("1.1.0", "d2")], "1.1.0")),
            Change::Everything,
        )
        .unwrap();
        let ours = merge(
            "scaler",
            Some(&theirs),
            Some(&local(&[("1.0.0", "d1"), ("2.0.0", "d3")], "2.0.0")),
            Change::Uploaded("2.0.0"),
        )
        .unwrap();
        let order: Vec<&str> = ours.versions.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(order, ["1.0.0", "1.1.0", "2.0.0"]);
        assert_eq!(ours.versions[2].signature.as_deref(), Some("sig of 2.0.0"));
        // The same upload again changes nothing: no write.
        let again = merge(
            "scaler",
            Some(&ours),
            Some(&local(&[("2.0.0", "d3")], "2.0.0")),
            Change::Uploaded("2.0.0"),
        )
        .unwrap();
        assert_eq!(again, ours);
    }

    #[test]
    fn a_replica_that_missed_a_disable_does_not_undo_it_with_an_upload() {
        let mut disabled = merge(
            "scaler",
            None,
            Some(&local(&[("1.0.0", "d1")], "1.0.0")),
            Change::Everything,
        )
        .unwrap();
        disabled.enabled = false;
        // This replica still has it enabled, and uploads 1.1.0.
        let after = merge(
            "scaler",
            Some(&disabled),
            Some(&local(&[("1.0.0", "d1"), ("1.1.0", "d2")], "1.1.0")),
            Change::Uploaded("1.1.0"),
        )
        .unwrap();
        assert!(!after.enabled, "the cluster's disable stands");
        assert_eq!(after.versions.len(), 2);
        // Only an explicit enable turns it back on.
        let enabled = merge("scaler", Some(&after), None, Change::Enabled(true)).unwrap();
        assert!(enabled.enabled);
        assert_eq!(enabled.versions, after.versions);
    }

    #[test]
    fn the_same_version_with_another_component_is_a_conflict() {
        let theirs = merge(
            "scaler",
            None,
            Some(&local(&[("1.0.0", "d1")], "1.0.0")),
            Change::Everything,
        )
        .unwrap();
        let err = merge(
            "scaler",
            Some(&theirs),
            Some(&local(&[("1.0.0", "other")], "1.0.0")),
            Change::Uploaded("1.0.0"),
        )
        .unwrap_err();
        assert!(matches!(err, ShareError::Conflict { .. }), "{err}");
    }

    #[test]
    fn a_deleted_playbook_uploaded_again_starts_afresh_and_old_versions_are_capped() {
        let deleted = merge("scaler", None, None, Change::Deleted).unwrap();
        assert!(deleted.deleted && deleted.versions.is_empty());
        // A replica that missed the delete uploads 3.0.0: only that version comes back.
        let again = merge(
            "scaler",
            Some(&deleted),
            Some(&local(&[("1.0.0", "d1"), ("3.0.0", "d9")], "3.0.0")),
            Change::Uploaded("3.0.0"),
        )
        .unwrap();
        assert!(!again.deleted && again.enabled);
        assert_eq!(again.versions.len(), 1);
        assert_eq!(again.versions[0].version, "3.0.0");

        let many: Vec<(String, String)> = (0..40)
            .map(|i| (format!("1.0.{i}"), format!("d{i}")))
            .collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let capped = merge(
            "scaler",
            None,
            Some(&local(&refs, "1.0.39")),
            Change::Everything,
        )
        .unwrap();
        assert_eq!(capped.versions.len(), MAX_SHARED_VERSIONS);
        assert_eq!(capped.versions.last().unwrap().version, "1.0.39");
    }

    #[test]
    fn a_record_too_large_for_one_message_drops_its_oldest_versions() {
        let big = "x".repeat(300 * 1024);
        let mut record = merge(
            "scaler",
            None,
            Some(&local(
                &[
                    ("1.0.0", "a"),
                    ("1.0.1", "b"),
                    ("1.0.2", "c"),
                    ("1.0.3", "d"),
                ],
                "1.0.3",
            )),
            Change::Everything,
        )
        .unwrap();
        for v in &mut record.versions {
            v.manifest = big.clone();
        }
        let bytes = encode(&record).unwrap();
        let back: Shared = serde_json::from_slice(&bytes).unwrap();
        assert!(back.versions.len() < 4);
        assert_eq!(back.versions.last().unwrap().version, "1.0.3");
    }
}
