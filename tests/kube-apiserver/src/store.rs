//! The in-memory object store, with the rules the real API server applies to every write:
//!
//! - one global `resourceVersion` counter: every write (create, update, status update, delete)
//!   takes the next value, and a write whose `metadata.resourceVersion` names an older one is
//!   refused with `409 Conflict`; a write that changes nothing is not a write (no new version);
//! - `metadata.generation` starts at 1 and grows when, and only when, the spec changes;
//! - status is the controller's: writes to the object itself cannot change it;
//! - server-managed metadata (`uid`, `creationTimestamp`, `generation`, `resourceVersion`) is the
//!   server's, whatever the client sends;
//! - every write is an event (`ADDED`, `MODIFIED`, `DELETED`) for watches, and the last
//!   [`HISTORY`] events are kept so a watch can resume from a `resourceVersion`.
//!
//! Deployments live here; the kinds without a controller (services, endpoint slices) live in
//! [`Collections`] behind the same lock, and take their versions and uids from the same
//! [`Serials`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::controller;
use crate::objects::{Collections, Kind};
use crate::selectors::Filter;
use crate::status::ApiError;

/// How many events are kept for watches that resume from a `resourceVersion`.
pub const HISTORY: usize = 10_000;

/// An object's namespace and name.
pub(crate) type Key = (String, String);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One write, as watches see it.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// The `resourceVersion` of the write.
    pub rv: u64,
    pub kind: EventKind,
    /// The object after the write (before it, for a deletion, with the deletion's version).
    pub object: Deployment,
}

/// A stored deployment and what its controller has rolled out.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub deployment: Deployment,
    /// The pod template the controller last rolled to (`None` until it first looks).
    pub rolled_template: Option<Value>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchStart {
    /// Every matching object as `ADDED`, then changes (`resourceVersion` absent or `0`).
    Now,
    /// Changes after this version, replayed from the history.
    After(u64),
}

/// What a new watch receives: the events it must send first, then the live feed.
pub(crate) struct Subscription {
    pub initial: Vec<Event>,
    pub live: broadcast::Receiver<Arc<Event>>,
    /// The version of the last event in `initial` (or of the store, when none): live events at
    /// or below it were already covered.
    pub last_rv: u64,
}

/// The counters every kind shares: the global `resourceVersion`, and the serial behind uids and
/// the other values the server makes up (generated names, cluster IPs).
#[derive(Debug)]
pub(crate) struct Serials {
    resource_version: u64,
    next: u64,
}

impl Serials {
    /// The version of the last write.
    pub(crate) fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// The version of a new write.
    pub(crate) fn next_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    /// A number never handed out before.
    pub(crate) fn next_serial(&mut self) -> u64 {
        let serial = self.next;
        self.next += 1;
        serial
    }
}

/// The uid of the object created with `serial`.
pub(crate) fn uid(serial: u64) -> String {
    format!("00000000-0000-4000-8000-{serial:012x}")
}

/// The whole state behind one lock: requests are short and the server is for tests.
#[derive(Debug)]
pub(crate) struct State {
    serials: Serials,
    objects: BTreeMap<Key, Entry>,
    /// Services and endpoint slices.
    collections: Collections,
    history: VecDeque<Arc<Event>>,
    /// Every event after this version is in `history`.
    history_floor: u64,
    /// Writes to come that another writer gets to first.
    conflicts: HashMap<Key, u32>,
    controller_paused: bool,
    events: broadcast::Sender<Arc<Event>>,
}

/// The shared store.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    inner: Arc<Mutex<State>>,
}

impl Store {
    pub(crate) fn new() -> Store {
        let (events, _) = broadcast::channel(4096);
        Store {
            inner: Arc::new(Mutex::new(State {
                serials: Serials {
                    resource_version: 1,
                    next: 1,
                },
                objects: BTreeMap::new(),
                collections: Collections::default(),
                history: VecDeque::new(),
                history_floor: 1,
                conflicts: HashMap::new(),
                controller_paused: false,
                events,
            })),
        }
    }

    /// The state; a panic in another request cannot leave it half-written (every write
    /// builds the new object before storing it), so a poisoned lock is still usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The key of `ns/name`.
pub(crate) fn key(ns: &str, name: &str) -> Key {
    (ns.to_owned(), name.to_owned())
}

/// Now, to the second, as `creationTimestamp` has it.
pub(crate) fn now() -> Time {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_default())
}

fn name_of(d: &Deployment) -> &str {
    d.metadata.name.as_deref().unwrap_or_default()
}

/// Whether `name` is a lowercase RFC 1123 subdomain, as most object names must be.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 253
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// The checks of the real server's validation that matter to clients of deployments.
fn validate(d: &Deployment, previous: Option<&Deployment>) -> Result<(), ApiError> {
    let name = name_of(d);
    let invalid =
        |field: &str, problem: &str| ApiError::invalid("Deployment.apps", name, field, problem);
    if !is_dns_subdomain(name) {
        return Err(invalid(
            "metadata.name",
            &format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ));
    }
    let spec = &d.spec;
    if let Some(replicas) = spec.replicas
        && replicas < 0
    {
        return Err(invalid(
            "spec.replicas",
            &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let match_labels = spec.selector.match_labels.clone().unwrap_or_default();
    if match_labels.is_empty()
        && spec
            .selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
    {
        return Err(invalid(
            "spec.selector",
            "Invalid value: empty selector is invalid for deployment",
        ));
    }
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if match_labels
        .iter()
        .any(|(k, v)| template_labels.get(k) != Some(v))
    {
        return Err(invalid(
            "spec.template.metadata.labels",
            &format!(
                "Invalid value: {template_labels:?}: `selector` does not match template `labels`"
            ),
        ));
    }
    if spec
        .template
        .spec
        .as_ref()
        .is_none_or(|s| s.containers.is_empty())
    {
        return Err(invalid("spec.template.spec.containers", "Required value"));
    }
    if let Some(before) = previous.map(|p| &p.spec)
        && before.selector != spec.selector
    {
        return Err(invalid(
            "spec.selector",
            "Invalid value: field is immutable",
        ));
    }
    Ok(())
}

impl State {
    /// The current `resourceVersion`.
    pub(crate) fn resource_version(&self) -> u64 {
        self.serials.resource_version()
    }

    fn next_version(&mut self) -> u64 {
        self.serials.next_version()
    }

    fn emit(&mut self, kind: EventKind, object: &Deployment, rv: u64) {
        let event = Arc::new(Event {
            rv,
            kind,
            object: object.clone(),
        });
        self.history.push_back(Arc::clone(&event));
        while self.history.len() > HISTORY {
            if let Some(dropped) = self.history.pop_front() {
                self.history_floor = dropped.rv;
            }
        }
        // No receiver is no watch: nothing to do.
        let _ = self.events.send(event);
    }

    /// A deployment.
    pub(crate) fn get(&self, ns: &str, name: &str) -> Option<&Deployment> {
        self.objects.get(&key(ns, name)).map(|e| &e.deployment)
    }

    /// The deployments `filter` selects, by namespace and name.
    pub(crate) fn list(&self, filter: &Filter) -> Vec<Deployment> {
        self.objects
            .values()
            .map(|e| &e.deployment)
            .filter(|d| filter.matches(d))
            .cloned()
            .collect()
    }

    /// Creates a deployment in `ns`, as `POST` does.
    pub(crate) fn create(&mut self, ns: &str, d: Deployment) -> Result<Deployment, ApiError> {
        self.insert(ns, d, false)
    }

    /// Stores a new deployment; when `rolled_out`, with a status saying its rollout is complete.
    pub(crate) fn insert(
        &mut self,
        ns: &str,
        mut d: Deployment,
        rolled_out: bool,
    ) -> Result<Deployment, ApiError> {
        if let Some(given) = &d.metadata.namespace
            && given != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = name_of(&d).to_owned();
        if name.is_empty() {
            return Err(ApiError::invalid(
                "Deployment.apps",
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
        if self.objects.contains_key(&key(ns, &name)) {
            return Err(ApiError::already_exists(&name));
        }
        // Defaulting, as the real server does before validation.
        d.spec.replicas.get_or_insert(1);
        validate(&d, None)?;
        let rv = self.next_version();
        let serial = self.serials.next_serial();
        let meta = &mut d.metadata;
        meta.namespace = Some(ns.to_owned());
        meta.uid = Some(uid(serial));
        meta.creation_timestamp = Some(now());
        meta.generation = Some(1);
        meta.resource_version = Some(rv.to_string());
        meta.managed_fields = None;
        meta.deletion_timestamp = None;
        crate::replica_sets::roll(&mut self.collections, &mut self.serials, ns, &mut d)?;
        let mut rolled_template = None;
        d.status = if rolled_out {
            let replicas = d.spec.replicas.unwrap_or(1);
            rolled_template = serde_json::to_value(&d.spec.template).ok();
            Some(controller::settled_status(replicas, 1))
        } else {
            None
        };
        self.objects.insert(
            key(ns, &name),
            Entry {
                deployment: d.clone(),
                rolled_template,
            },
        );
        self.emit(EventKind::Added, &d, rv);
        tracing::debug!(namespace = ns, name, rv, "deployment created");
        Ok(d)
    }

    /// Writes the deployment `ns/name` as `change` makes it from the current one.
    ///
    /// `change` returns the object the client asked for; its `metadata.resourceVersion`, when
    /// set, is the precondition. Status and server-managed metadata are kept from the current
    /// object whatever `change` did to them.
    pub(crate) fn modify(
        &mut self,
        ns: &str,
        name: &str,
        change: impl FnOnce(&Deployment) -> Result<Deployment, ApiError>,
    ) -> Result<Deployment, ApiError> {
        let k = key(ns, name);
        if !self.objects.contains_key(&k) {
            return Err(ApiError::not_found(name));
        }
        self.other_writer_first(&k);
        let current = self
            .objects
            .get(&k)
            .map(|e| e.deployment.clone())
            .ok_or_else(|| ApiError::not_found(name))?;
        let mut new = change(&current)?;
        if name_of(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&new)
            )));
        }
        if new.metadata.namespace.as_deref().is_some_and(|n| n != ns) {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let precondition = new
            .metadata
            .resource_version
            .take()
            .filter(|v| !v.is_empty());
        if precondition.is_some() && precondition != current.metadata.resource_version {
            return Err(ApiError::conflict(name));
        }
        let meta = &mut new.metadata;
        meta.namespace = current.metadata.namespace.clone();
        meta.uid = current.metadata.uid.clone();
        meta.creation_timestamp = current.metadata.creation_timestamp.clone();
        meta.generation = current.metadata.generation;
        meta.resource_version = current.metadata.resource_version.clone();
        meta.deletion_timestamp = None;
        meta.managed_fields = None;
        new.status = current.status.clone();
        new.spec.replicas.get_or_insert(1);
        validate(&new, Some(&current))?;
        if new == current {
            return Ok(current);
        }
        if new.spec != current.spec {
            new.metadata.generation = Some(current.metadata.generation.unwrap_or(0) + 1);
        }
        // A new template is a new revision; a new replica count is the current ReplicaSet's.
        if new.spec.template != current.spec.template || new.spec.replicas != current.spec.replicas
        {
            crate::replica_sets::roll(&mut self.collections, &mut self.serials, ns, &mut new)?;
        }
        let rv = self.next_version();
        new.metadata.resource_version = Some(rv.to_string());
        if let Some(entry) = self.objects.get_mut(&k) {
            entry.deployment = new.clone();
        }
        self.emit(EventKind::Modified, &new, rv);
        tracing::debug!(namespace = ns, name, rv, generation = ?new.metadata.generation, "deployment updated");
        Ok(new)
    }

    /// An injected conflict: another writer changes the object just before this write, so a
    /// write naming the version it read fails as it would on a busy cluster.
    fn other_writer_first(&mut self, k: &Key) {
        let Some(pending) = self.conflicts.get_mut(k) else {
            return;
        };
        *pending -= 1;
        if *pending == 0 {
            self.conflicts.remove(k);
        }
        let rv = self.next_version();
        let Some(entry) = self.objects.get_mut(k) else {
            return;
        };
        entry.deployment.metadata.resource_version = Some(rv.to_string());
        let object = entry.deployment.clone();
        self.emit(EventKind::Modified, &object, rv);
        tracing::debug!(namespace = %k.0, name = %k.1, rv, "injected write by another writer");
    }

    /// Deletes a deployment; the returned object carries the deletion's version.
    pub(crate) fn delete(&mut self, ns: &str, name: &str) -> Result<Deployment, ApiError> {
        let Some(entry) = self.objects.remove(&key(ns, name)) else {
            return Err(ApiError::not_found(name));
        };
        let rv = self.next_version();
        let mut d = entry.deployment;
        d.metadata.resource_version = Some(rv.to_string());
        if let Some(uid) = d.metadata.uid.clone() {
            crate::replica_sets::collect_garbage(
                &mut self.collections,
                &mut self.serials,
                ns,
                &uid,
            );
        }
        self.emit(EventKind::Deleted, &d, rv);
        Ok(d)
    }

    /// Makes the next `n` writes to `ns/name` lose to another writer (see `other_writer_first`).
    pub(crate) fn conflict_next_writes(&mut self, ns: &str, name: &str, n: u32) {
        if n == 0 {
            self.conflicts.remove(&key(ns, name));
        } else {
            self.conflicts.insert(key(ns, name), n);
        }
    }

    /// Injected conflicts not yet used on `ns/name`.
    pub(crate) fn pending_conflicts(&self, ns: &str, name: &str) -> u32 {
        self.conflicts.get(&key(ns, name)).copied().unwrap_or(0)
    }

    /// Pauses or resumes the controller.
    pub(crate) fn set_controller_paused(&mut self, paused: bool) {
        self.controller_paused = paused;
    }

    /// One controller step over every deployment: each status moves one replica towards its
    /// spec, and every change is a write.
    pub(crate) fn reconcile_all(&mut self) {
        if self.controller_paused {
            return;
        }
        let mut changed: Vec<(Key, DeploymentStatus)> = Vec::new();
        for (k, entry) in &mut self.objects {
            if let Some(status) = controller::step(entry) {
                changed.push((k.clone(), status));
            }
        }
        for (k, status) in changed {
            let rv = self.next_version();
            let Some(entry) = self.objects.get_mut(&k) else {
                continue;
            };
            entry.deployment.status = Some(status);
            entry.deployment.metadata.resource_version = Some(rv.to_string());
            let object = entry.deployment.clone();
            self.emit(EventKind::Modified, &object, rv);
        }
    }

    /// Starts a watch of what `filter` selects.
    pub(crate) fn subscribe(
        &self,
        filter: &Filter,
        start: WatchStart,
    ) -> Result<Subscription, ApiError> {
        let live = self.events.subscribe();
        let (initial, last_rv) = match start {
            WatchStart::Now => {
                let initial = self
                    .objects
                    .values()
                    .filter(|e| filter.matches(&e.deployment))
                    .map(|e| Event {
                        rv: e
                            .deployment
                            .metadata
                            .resource_version
                            .as_deref()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0),
                        kind: EventKind::Added,
                        object: e.deployment.clone(),
                    })
                    .collect();
                (initial, self.resource_version())
            }
            WatchStart::After(version) => {
                if version < self.history_floor {
                    return Err(ApiError::expired(version, self.history_floor));
                }
                let initial = self
                    .history
                    .iter()
                    .filter(|e| e.rv > version && filter.matches(&e.object))
                    .map(|e| Event::clone(e))
                    .collect();
                (initial, self.resource_version().max(version))
            }
        };
        Ok(Subscription {
            initial,
            live,
            last_rv,
        })
    }

    /// The object `ns/name` of kind `K`.
    pub(crate) fn object<K: Kind>(&self, ns: &str, name: &str) -> Option<&K> {
        K::collection(&self.collections).get(ns, name)
    }

    /// The objects of kind `K` that `filter` selects, by namespace and name.
    pub(crate) fn objects<K: Kind>(&self, filter: &Filter) -> Vec<K> {
        K::collection(&self.collections).list(filter)
    }

    /// Creates an object of kind `K` in `ns`, as `POST` does.
    pub(crate) fn create_object<K: Kind>(&mut self, ns: &str, object: K) -> Result<K, ApiError> {
        K::collection_mut(&mut self.collections).create(ns, object, &mut self.serials)
    }

    /// Replaces the object `ns/name` of kind `K` by `object`, as `PUT` does.
    pub(crate) fn replace_object<K: Kind>(
        &mut self,
        ns: &str,
        name: &str,
        object: K,
    ) -> Result<K, ApiError> {
        K::collection_mut(&mut self.collections).replace(ns, name, object, &mut self.serials)
    }

    /// Deletes the object `ns/name` of kind `K`; the returned object carries the deletion's
    /// version.
    pub(crate) fn delete_object<K: Kind>(&mut self, ns: &str, name: &str) -> Result<K, ApiError> {
        K::collection_mut(&mut self.collections).delete(ns, name, &mut self.serials)
    }
}
