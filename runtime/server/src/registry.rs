//! The registry: playbook and collector versions (stored in the data directory) and their
//! compiled components in memory.
//!
//! The enabled versions are live: a playbook's triggers are in the [trigger
//! mesh](crate::triggers), a collector is polled by the [source
//! supervisor](crate::sources::supervisor). A version that stops being live (superseded by an
//! upload, disabled) may still be needed by a run that fired before (a retry, a run going on
//! after an approval): the last [`RETAINED_VERSIONS`] of them stay compiled, and a version
//! pushed out of that cache is dropped from the engine's component cache too, so memory does
//! not grow with every upload. An upload that does not go live (refused, repeated, or for a
//! disabled playbook) leaves the engine's cache as soon as it is decided. A run that needs an
//! evicted version compiles it again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use grace_engine::event::system_now_millis;
use grace_engine::{Engine, Guest, Kind, LoadError, Manifest, ManifestError};
use grace_mesh::PlaybookTriggers;

use crate::collectors::Collectors;
use crate::config::{ConfigError, ServeConfig};
use crate::error::ApiError;
use crate::runs::RunRecord;
use crate::signing::{SignedBy, TrustRoots};
use crate::store::{PlaybookRecord, PutOutcome, Store, StoreError, VersionRecord};
use crate::sync::{lock, read, write};
use crate::triggers::Triggers;

/// Compiled versions kept beyond the live ones, most recently used first.
pub const RETAINED_VERSIONS: usize = 16;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The uploaded manifest is invalid or asks more than the server's caps.
    #[error(transparent)]
    Manifest(ManifestError),
    /// The uploaded component cannot be used.
    #[error("{0}")]
    Component(LoadError),
    /// A collector would take a configured source's name.
    #[error(
        "`{0}` is the name of a source configured in grace.toml; collectors share the sources' names (GET /v1/sources): rename it"
    )]
    SourceName(String),
    /// The version exists with other contents.
    #[error(
        "`{name}` version `{version}` is already stored (component `{existing}`) with another component or manifest; versions are immutable, bump `version`"
    )]
    Immutable {
        /// The playbook.
        name: String,
        /// The version.
        version: String,
        /// The digest already stored.
        existing: String,
    },
    /// No such playbook.
    #[error("no playbook named `{0}`")]
    NotFound(String),
    /// A run's playbook was deleted.
    #[error("playbook `{0}` was deleted")]
    PlaybookDeleted(String),
    /// A run's version was deleted.
    #[error("version `{0}` was deleted")]
    VersionDeleted(String),
    /// A stored record lacks a part it must have.
    #[error("{0}")]
    Corrupt(&'static str),
    /// A stored manifest does not parse any more.
    #[error("stored manifest no longer parses: {0}")]
    StoredManifest(ManifestError),
    /// A stored component does not compile any more.
    #[error("{0}")]
    StoredComponent(LoadError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A compilation task failed.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Manifest(e) => ApiError::from_manifest(e),
            RegistryError::Component(_) => ApiError::field("component", e.to_string()),
            RegistryError::SourceName(_) | RegistryError::Immutable { .. } => {
                ApiError::conflict(e.to_string())
            }
            RegistryError::NotFound(_)
            | RegistryError::PlaybookDeleted(_)
            | RegistryError::VersionDeleted(_) => ApiError::not_found(e.to_string()),
            RegistryError::Store(e) => e.into(),
            RegistryError::Corrupt(_)
            | RegistryError::StoredManifest(_)
            | RegistryError::StoredComponent(_)
            | RegistryError::Task(_) => ApiError::internal(e.to_string()),
        }
    }
}

/// Playbook versions and their compiled components.
pub struct Registry {
    store: Store,
    engine: Engine,
    config: Arc<ServeConfig>,
    trust_roots: TrustRoots,
    triggers: Arc<Triggers>,
    collectors: Arc<Collectors>,
    /// The live version of each enabled playbook.
    live: RwLock<HashMap<String, Guest>>,
    retained: Mutex<Retained<Guest>>,
    /// Serializes changes to playbooks (store and memory together).
    admin: tokio::sync::Mutex<()>,
}

impl Registry {
    /// A registry over `store`; reads the trust roots uploads may be signed by.
    pub fn new(
        store: Store,
        engine: Engine,
        config: Arc<ServeConfig>,
        triggers: Arc<Triggers>,
        collectors: Arc<Collectors>,
    ) -> Result<Registry, ConfigError> {
        let trust_roots =
            TrustRoots::load(&config.trust_roots).map_err(|e| ConfigError::Invalid {
                field: "trust_roots",
                message: e.to_string(),
            })?;
        if config.allow_unsigned_playbooks {
            tracing::warn!(
                "INSECURE: allow_unsigned_playbooks: unsigned playbook uploads are accepted (marked `signed: false`). Development only."
            );
        } else if trust_roots.is_empty() {
            tracing::warn!(
                "no trust roots are configured: every playbook upload will be refused; add `[[trust_roots]]` to grace.toml (see docs/security.md)"
            );
        }
        for (name, key) in trust_roots.keys() {
            tracing::info!(trust_root = %name, key = %format!("{}+{:08x}", key.name(), key.id()), "playbook uploads may be signed by this key");
        }
        Ok(Registry {
            store,
            engine,
            config,
            trust_roots,
            triggers,
            collectors,
            live: RwLock::new(HashMap::new()),
            retained: Mutex::new(Retained::new(RETAINED_VERSIONS)),
            admin: tokio::sync::Mutex::new(()),
        })
    }

    /// Keeps `capacity` compiled versions beyond the live ones instead of
    /// [`RETAINED_VERSIONS`].
    pub fn with_retained(mut self, capacity: usize) -> Registry {
        self.retained = Mutex::new(Retained::new(capacity));
        self
    }

    /// The keys uploads may be signed by.
    pub fn trust_roots(&self) -> &TrustRoots {
        &self.trust_roots
    }

    /// Whether unsigned uploads are accepted (`allow_unsigned_playbooks`).
    pub fn allows_unsigned(&self) -> bool {
        self.config.allow_unsigned_playbooks
    }

    /// Makes the stored enabled playbooks live; one that cannot be is logged and left out.
    pub async fn load_enabled(&self) -> Result<(), StoreError> {
        for record in self.store.playbooks()? {
            if record.enabled
                && let Err(e) = self.activate(&record).await
            {
                tracing::error!(playbook = %record.name, "cannot load the stored playbook: {e}");
            }
        }
        Ok(())
    }

    /// Every stored playbook.
    pub fn playbooks(&self) -> Result<Vec<PlaybookRecord>, StoreError> {
        self.store.playbooks()
    }

    /// A stored playbook.
    pub fn playbook(&self, name: &str) -> Result<PlaybookRecord, RegistryError> {
        self.store
            .playbook(name)?
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))
    }

    /// A stored component by digest.
    pub fn component(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        self.store
            .component(digest)?
            .ok_or(RegistryError::Corrupt("a version without its component"))
    }

    /// Enabled playbooks.
    pub fn enabled_count(&self) -> usize {
        read(&self.live).len()
    }

    /// The live version of `playbook`: its version and component digest.
    pub fn live_version(&self, playbook: &str) -> Option<(String, String)> {
        read(&self.live)
            .get(playbook)
            .map(|g| (g.manifest.version.clone(), g.component.digest().to_owned()))
    }

    /// The condition of trigger `trigger` (its index) of the live version of `playbook`.
    pub fn live_condition(
        &self,
        playbook: &str,
        trigger: usize,
    ) -> Option<grace_model::condition::Condition> {
        read(&self.live)
            .get(playbook)
            .and_then(|g| g.manifest.triggers.get(trigger))
            .and_then(|t| t.condition.clone())
    }

    /// Validates and stores an upload; a new version of an enabled playbook goes live.
    /// `signed_by` is who signed it, checked by the caller against `signature` (`None`:
    /// unsigned, where allowed).
    pub async fn upload(
        &self,
        manifest_text: String,
        component: Vec<u8>,
        signed_by: Option<SignedBy>,
        signature: Option<String>,
    ) -> Result<(bool, PlaybookRecord), RegistryError> {
        self.store_version(manifest_text, component, signed_by, signature, true)
            .await
    }

    /// [`Registry::upload`] of a version another replica uploaded: a playbook new here is
    /// stored enabled only if `enabled_if_new` (the cluster's state), so a disabled one never
    /// goes live, not even for a moment.
    pub async fn install(
        &self,
        manifest_text: String,
        component: Vec<u8>,
        signed_by: Option<SignedBy>,
        signature: Option<String>,
        enabled_if_new: bool,
    ) -> Result<(bool, PlaybookRecord), RegistryError> {
        self.store_version(
            manifest_text,
            component,
            signed_by,
            signature,
            enabled_if_new,
        )
        .await
    }

    async fn store_version(
        &self,
        manifest_text: String,
        component: Vec<u8>,
        signed_by: Option<SignedBy>,
        signature: Option<String>,
        enabled_if_new: bool,
    ) -> Result<(bool, PlaybookRecord), RegistryError> {
        let manifest = Manifest::parse(&manifest_text).map_err(RegistryError::Manifest)?;
        self.config
            .limits
            .caps
            .check(&manifest.limits)
            .map_err(RegistryError::Manifest)?;
        let engine = self.engine.clone();
        let bytes = component.clone();
        let guest =
            tokio::task::spawn_blocking(move || engine.guest(manifest, &bytes, "component"))
                .await?
                .map_err(RegistryError::Component)?;
        // Store and memory change together, one playbook change at a time.
        let _admin = self.admin.lock().await;
        let digest = guest.component.digest().to_owned();
        let signed = signed_by.map(|by| (by, signature));
        let outcome = self.store_upload(guest, manifest_text, &component, signed, enabled_if_new);
        // Compiling put the component in the engine's cache: unless the upload went live (or a
        // live or retained version shares the component), it leaves the cache again, so that
        // refused, repeated and disabled uploads do not add to memory for good.
        self.forget_unless_kept(&digest);
        outcome
    }

    /// Stores a compiled upload; a new version of an enabled playbook goes live.
    fn store_upload(
        &self,
        guest: Guest,
        manifest_text: String,
        component: &[u8],
        signed: Option<(SignedBy, Option<String>)>,
        enabled_if_new: bool,
    ) -> Result<(bool, PlaybookRecord), RegistryError> {
        if guest.manifest.kind == Kind::Collector
            && is_configured_source(&self.config, &guest.manifest.name)
        {
            return Err(RegistryError::SourceName(guest.manifest.name.clone()));
        }
        let version = VersionRecord {
            name: guest.manifest.name.clone(),
            version: guest.manifest.version.clone(),
            kind: guest.manifest.kind,
            digest: guest.component.digest().to_owned(),
            uploaded_at: system_now_millis(),
            manifest: manifest_text,
            signature: signed.as_ref().and_then(|(_, text)| text.clone()),
            signed_by: signed.map(|(by, _)| by),
        };
        match self
            .store
            .put_version(version.clone(), component, enabled_if_new)?
        {
            PutOutcome::Conflict { existing } => Err(RegistryError::Immutable {
                name: version.name,
                version: version.version,
                existing,
            }),
            PutOutcome::Unchanged(record) => Ok((false, record)),
            PutOutcome::Created(record) => {
                if record.enabled {
                    // The previous version may have been of the other kind.
                    self.deactivate(&record.name);
                    self.go_live(&record.name, guest);
                }
                tracing::info!(playbook = %record.name, version = %version.version, digest = %version.digest, "playbook uploaded");
                Ok((true, record))
            }
        }
    }

    /// Enables or disables a playbook.
    pub async fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<PlaybookRecord, RegistryError> {
        let _admin = self.admin.lock().await;
        let record = self
            .store
            .set_enabled(name, enabled)?
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        if enabled {
            self.activate(&record).await?;
        } else {
            self.deactivate(name);
        }
        Ok(record)
    }

    /// Makes playbook `name` run version `active`, enabled or not, as the cluster's catalogue
    /// says (a replica that installed the versions out of order, or missed a change).
    pub async fn follow(
        &self,
        name: &str,
        active: &str,
        enabled: bool,
    ) -> Result<PlaybookRecord, RegistryError> {
        let _admin = self.admin.lock().await;
        let mut record = self.playbook(name)?;
        let moved = record.active_version != active;
        if moved {
            record = self
                .store
                .set_active(name, active)?
                .ok_or(RegistryError::Corrupt(
                    "the cluster's active version is not stored here",
                ))?;
        }
        if record.enabled != enabled {
            record = self
                .store
                .set_enabled(name, enabled)?
                .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        }
        if record.enabled {
            if moved || self.live_version(name).is_none() {
                self.deactivate(name);
                self.activate(&record).await?;
            }
        } else {
            self.deactivate(name);
        }
        Ok(record)
    }

    /// Deletes a playbook.
    pub async fn delete(&self, name: &str) -> Result<(), RegistryError> {
        let _admin = self.admin.lock().await;
        let record = self.playbook(name)?;
        if !self.store.delete_playbook(name)? {
            return Err(RegistryError::NotFound(name.to_owned()));
        }
        self.deactivate(name);
        let mut retained = lock(&self.retained);
        for version in &record.versions {
            retained.remove(&version.digest);
            self.engine.forget(&version.digest);
        }
        Ok(())
    }

    /// Whether version `digest` of `playbook` is here (live, retained or stored), so that a
    /// run of it can be run here.
    pub fn has_version(&self, playbook: &str, digest: &str) -> bool {
        if read(&self.live)
            .get(playbook)
            .is_some_and(|g| g.component.digest() == digest)
            || lock(&self.retained).get(digest).is_some()
        {
            return true;
        }
        self.store
            .playbook(playbook)
            .ok()
            .flatten()
            .is_some_and(|record| record.versions.iter().any(|v| v.digest == digest))
    }

    /// The guest for a run: the live version if its digest matches, else that exact version
    /// (from the retained ones, or compiled again).
    pub async fn guest_for(&self, run: &RunRecord) -> Result<Guest, RegistryError> {
        let live = read(&self.live)
            .get(&run.playbook)
            .filter(|g| g.component.digest() == run.digest)
            .cloned();
        if let Some(g) = live {
            return Ok(g);
        }
        if let Some(g) = lock(&self.retained).get(&run.digest) {
            return Ok(g);
        }
        let record = self
            .store
            .playbook(&run.playbook)?
            .ok_or_else(|| RegistryError::PlaybookDeleted(run.playbook.clone()))?;
        let version = record
            .versions
            .iter()
            .find(|v| v.digest == run.digest)
            .ok_or_else(|| RegistryError::VersionDeleted(run.version.clone()))?;
        let guest = self.compile(version).await?;
        self.retain(guest.clone());
        Ok(guest)
    }

    /// The digests of the compiled versions retained beyond the live ones, most recently used
    /// first.
    pub fn retained(&self) -> Vec<String> {
        lock(&self.retained).digests()
    }

    /// Compiles a stored playbook's active version and makes it live.
    async fn activate(&self, record: &PlaybookRecord) -> Result<(), RegistryError> {
        let Some(version) = record.active() else {
            return Err(RegistryError::Corrupt(
                "a playbook without its active version",
            ));
        };
        let guest = self.compile(version).await?;
        self.go_live(&record.name, guest);
        Ok(())
    }

    fn go_live(&self, name: &str, guest: Guest) {
        match guest.manifest.kind {
            Kind::Playbook => self
                .triggers
                .set_playbook(PlaybookTriggers::from_manifest(&guest.manifest)),
            Kind::Collector => self.collectors.schedule(&guest),
        }
        write(&self.live).insert(name.to_owned(), guest);
    }

    /// Takes a playbook out of service; its version stays compiled among the retained ones.
    fn deactivate(&self, name: &str) {
        self.collectors.stop(name);
        self.triggers.remove_playbook(name);
        let old = write(&self.live).remove(name);
        if let Some(guest) = old {
            self.retain(guest);
        }
    }

    /// Keeps `guest` compiled; the version pushed out of the cache leaves the engine's cache,
    /// unless a live version shares its component.
    fn retain(&self, guest: Guest) {
        let digest = guest.component.digest().to_owned();
        let evicted = lock(&self.retained).put(digest, guest);
        if let Some(digest) = evicted {
            self.forget_unless_kept(&digest);
        }
    }

    /// Drops component `digest` from the engine's cache unless a live or retained version
    /// shares it: the registry's bound is the engine cache's bound.
    fn forget_unless_kept(&self, digest: &str) {
        let live = read(&self.live)
            .values()
            .any(|g| g.component.digest() == digest);
        let retained = lock(&self.retained).contains(digest);
        if !live && !retained {
            self.engine.forget(digest);
        }
    }

    async fn compile(&self, version: &VersionRecord) -> Result<Guest, RegistryError> {
        let bytes = self
            .store
            .component(&version.digest)?
            .ok_or(RegistryError::Corrupt(
                "a stored version without its component",
            ))?;
        let mut manifest =
            Manifest::parse(&version.manifest).map_err(RegistryError::StoredManifest)?;
        // Stored before a cap was lowered: it runs within the caps all the same.
        let caps = self.config.limits.caps;
        if let Err(e) = caps.check(&manifest.limits) {
            tracing::warn!(playbook = %manifest.name, "runs with its limits lowered to the server's caps: {e}");
            manifest.limits = caps.clamp(manifest.limits);
        }
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.guest(manifest, &bytes, "stored component"))
            .await?
            .map_err(RegistryError::StoredComponent)
    }
}

/// Whether `name` is a push source or a source configured in `grace.toml` (collectors may not
/// take these names: they share the sources' names).
fn is_configured_source(config: &ServeConfig, name: &str) -> bool {
    matches!(name, "alertmanager" | "metrics-push")
        || config.sources.names().any(|(_, n)| n == name)
}

/// Compiled versions that are not live, by component digest, most recently used first, at most
/// `capacity` of them.
struct Retained<G> {
    capacity: usize,
    guests: VecDeque<(String, G)>,
}

impl<G: Clone> Retained<G> {
    fn new(capacity: usize) -> Retained<G> {
        Retained {
            capacity,
            guests: VecDeque::new(),
        }
    }

    /// Keeps `guest` first; returns the digest pushed out, if any.
    fn put(&mut self, digest: String, guest: G) -> Option<String> {
        self.remove(&digest);
        self.guests.push_front((digest, guest));
        if self.guests.len() > self.capacity {
            self.guests.pop_back().map(|(d, _)| d)
        } else {
            None
        }
    }

    /// The guest of `digest`, now the most recently used.
    fn get(&mut self, digest: &str) -> Option<G> {
        let i = self.guests.iter().position(|(d, _)| d == digest)?;
        let entry = self.guests.remove(i)?;
        let guest = entry.1.clone();
        self.guests.push_front(entry);
        Some(guest)
    }

    fn remove(&mut self, digest: &str) {
        self.guests.retain(|(d, _)| d != digest);
    }

    fn contains(&self, digest: &str) -> bool {
        self.guests.iter().any(|(d, _)| d == digest)
    }

    fn digests(&self) -> Vec<String> {
        self.guests.iter().map(|(d, _)| d.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_superseded_version_is_evicted_past_the_bound() {
        let mut r = Retained::new(2);
        assert_eq!(r.put("v1".into(), 1), None);
        assert_eq!(r.put("v2".into(), 2), None);
        assert_eq!(r.put("v3".into(), 3), Some("v1".into()));
        assert_eq!(r.digests(), ["v3", "v2"]);
    }

    #[test]
    fn a_version_used_again_is_kept_over_older_ones() {
        let mut r = Retained::new(2);
        r.put("v1".into(), 1);
        r.put("v2".into(), 2);
        assert_eq!(r.get("v1"), Some(1));
        assert_eq!(r.put("v3".into(), 3), Some("v2".into()));
        assert_eq!(r.get("v2"), None);
    }

    #[test]
    fn retaining_a_version_twice_keeps_one_copy() {
        let mut r = Retained::new(2);
        r.put("v1".into(), 1);
        assert_eq!(r.put("v1".into(), 1), None);
        assert_eq!(r.digests(), ["v1"]);
    }
}
