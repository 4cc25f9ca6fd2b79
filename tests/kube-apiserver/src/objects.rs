//! The store of the kinds without a controller (core `v1` services, `discovery.k8s.io/v1`
//! endpoint slices): one generic [`Collection`] per [`Kind`], with the rules the real API server
//! applies to every write of them:
//!
//! - every write (create, replace, delete) takes the next value of the global `resourceVersion`
//!   ([`Serials`], shared with deployments); a replace naming an older one is refused with
//!   `409 Conflict`, and a replace that changes nothing is not a write;
//! - server-managed metadata (`uid`, `creationTimestamp`, `resourceVersion`, and `generation` for
//!   the kinds that count it) is the server's, whatever the client sends;
//! - a create without a name takes `generateName` and five more characters, as the real server
//!   does (from a serial rather than at random, so runs repeat);
//! - what differs between kinds (defaults, validation, immutable fields, status) is
//!   [`Kind::admit`].
//!
//! Writes here are not watch events: watches serve deployments only.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ListableResource, Metadata, NamespaceResourceScope, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::selectors::Filter;
use crate::status::ApiError;
use crate::store::{Key, Serials, key, now, uid};

/// A kind the generic store and routes serve.
pub(crate) trait Kind:
    Resource<Scope = NamespaceResourceScope>
    + ListableResource
    + Metadata<Ty = ObjectMeta>
    + Clone
    + PartialEq
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Whether `metadata.generation` counts the changes of the object (beyond its metadata,
    /// labels aside): endpoint slices do, services do not.
    const GENERATION: bool;

    /// Whether `DELETE` answers with the deleted object (services) rather than a `Status`
    /// (endpoint slices, and most kinds).
    const RETURNS_DELETED_OBJECT: bool;

    /// The collection of this kind.
    fn collection(all: &Collections) -> &Collection<Self>;

    /// The collection of this kind, to write.
    fn collection_mut(all: &mut Collections) -> &mut Collection<Self>;

    /// What the real server does to the object before it stores it: defaults, values it
    /// allocates (from `serials`), fields only it writes (kept from `previous` on a replace),
    /// then validation (`422 Invalid`). Server-managed metadata is set already.
    fn admit(&mut self, previous: Option<&Self>, serials: &mut Serials) -> Result<(), ApiError>;
}

/// The objects of every kind without a controller.
#[derive(Debug, Default)]
pub(crate) struct Collections {
    pub services: Collection<Service>,
    pub endpoint_slices: Collection<EndpointSlice>,
    /// Made and kept by the deployments' writes ([`crate::replica_sets`]).
    pub replica_sets: Collection<k8s_openapi::api::apps::v1::ReplicaSet>,
}

/// The objects of one kind, by namespace and name.
#[derive(Debug)]
pub(crate) struct Collection<K> {
    items: BTreeMap<Key, K>,
}

impl<K> Default for Collection<K> {
    fn default() -> Self {
        Collection {
            items: BTreeMap::new(),
        }
    }
}

/// The characters the real server draws `generateName` suffixes from (no vowels, no look-alikes).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The longest prefix a generated name keeps, so that the name stays within 63 characters.
const MAX_GENERATE_NAME_PREFIX: usize = 58;

/// Five characters of [`SUFFIX_ALPHABET`] spelling `serial`.
fn generated_suffix(mut serial: u64) -> String {
    let base = SUFFIX_ALPHABET.len() as u64;
    (0..5)
        .map(|_| {
            let digit = usize::try_from(serial % base).unwrap_or(0);
            serial /= base;
            SUFFIX_ALPHABET.get(digit).copied().map_or('b', char::from)
        })
        .collect()
}

/// Whether two objects differ in what `metadata.generation` counts: everything but metadata,
/// and the labels.
fn content_changed<K: Kind>(a: &K, b: &K) -> bool {
    let content = |object: &K| {
        let mut object = object.clone();
        let labels = object.metadata().labels.clone();
        *object.metadata_mut() = ObjectMeta {
            labels,
            ..ObjectMeta::default()
        };
        object
    };
    content(a) != content(b)
}

fn name_of<K: Kind>(object: &K) -> &str {
    object.metadata().name.as_deref().unwrap_or_default()
}

fn namespace_mismatch() -> ApiError {
    ApiError::bad_request(
        "the namespace of the provided object does not match the namespace sent on the request",
    )
}

impl<K: Kind> Collection<K> {
    /// The object `ns/name`.
    pub(crate) fn get(&self, ns: &str, name: &str) -> Option<&K> {
        self.items.get(&key(ns, name))
    }

    /// The objects `filter` selects, by namespace and name.
    pub(crate) fn list(&self, filter: &Filter) -> Vec<K> {
        self.items
            .values()
            .filter(|o| filter.matches_meta(o.metadata()))
            .cloned()
            .collect()
    }

    /// A free name for `generateName` = `prefix` in `ns`.
    fn generate_name(&self, ns: &str, prefix: &str, serials: &mut Serials) -> String {
        let prefix: String = prefix
            .char_indices()
            .take_while(|(i, c)| i + c.len_utf8() <= MAX_GENERATE_NAME_PREFIX)
            .map(|(_, c)| c)
            .collect();
        // Names taken by hand may collide with a generated one: draw again, as the real
        // server's client would after an `AlreadyExists`.
        loop {
            let name = format!("{prefix}{}", generated_suffix(serials.next_serial()));
            if !self.items.contains_key(&key(ns, &name)) {
                return name;
            }
        }
    }

    /// Creates `object` in `ns`, as `POST` does.
    pub(crate) fn create(
        &mut self,
        ns: &str,
        mut object: K,
        serials: &mut Serials,
    ) -> Result<K, ApiError> {
        let meta = object.metadata();
        if meta.namespace.as_deref().is_some_and(|given| given != ns) {
            return Err(namespace_mismatch());
        }
        let mut name = meta.name.clone().unwrap_or_default();
        if name.is_empty() {
            let prefix = meta.generate_name.clone().unwrap_or_default();
            if prefix.is_empty() {
                return Err(ApiError::invalid_of::<K>(
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            name = self.generate_name(ns, &prefix, serials);
        }
        if self.items.contains_key(&key(ns, &name)) {
            return Err(ApiError::already_exists_of::<K>(&name));
        }
        let serial = serials.next_serial();
        let meta = object.metadata_mut();
        meta.name = Some(name.clone());
        meta.namespace = Some(ns.to_owned());
        meta.uid = Some(uid(serial));
        meta.creation_timestamp = Some(now());
        meta.generation = K::GENERATION.then_some(1);
        meta.resource_version = None;
        meta.managed_fields = None;
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        object.admit(None, serials)?;
        let rv = serials.next_version();
        object.metadata_mut().resource_version = Some(rv.to_string());
        self.items.insert(key(ns, &name), object.clone());
        tracing::debug!(kind = K::KIND, namespace = ns, name, rv, "object created");
        Ok(object)
    }

    /// Replaces the object `ns/name` by `new`, as `PUT` does; `new`'s
    /// `metadata.resourceVersion`, when set, is the precondition.
    pub(crate) fn replace(
        &mut self,
        ns: &str,
        name: &str,
        mut new: K,
        serials: &mut Serials,
    ) -> Result<K, ApiError> {
        let k = key(ns, name);
        let current = self
            .items
            .get(&k)
            .cloned()
            .ok_or_else(|| ApiError::not_found_of::<K>(name))?;
        if name_of(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&new)
            )));
        }
        if new.metadata().namespace.as_deref().is_some_and(|n| n != ns) {
            return Err(namespace_mismatch());
        }
        let before = current.metadata();
        let precondition = new
            .metadata_mut()
            .resource_version
            .take()
            .filter(|v| !v.is_empty());
        if precondition.is_some() && precondition != before.resource_version {
            return Err(ApiError::conflict_of::<K>(name));
        }
        let meta = new.metadata_mut();
        meta.namespace = before.namespace.clone();
        meta.uid = before.uid.clone();
        meta.creation_timestamp = before.creation_timestamp.clone();
        meta.generation = before.generation;
        meta.resource_version = before.resource_version.clone();
        meta.managed_fields = None;
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        new.admit(Some(&current), serials)?;
        if new == current {
            return Ok(current);
        }
        if K::GENERATION && content_changed(&new, &current) {
            new.metadata_mut().generation = Some(before.generation.unwrap_or(0) + 1);
        }
        let rv = serials.next_version();
        new.metadata_mut().resource_version = Some(rv.to_string());
        self.items.insert(k, new.clone());
        tracing::debug!(kind = K::KIND, namespace = ns, name, rv, "object replaced");
        Ok(new)
    }

    /// Deletes the object `ns/name`; the returned object carries the deletion's version.
    pub(crate) fn delete(
        &mut self,
        ns: &str,
        name: &str,
        serials: &mut Serials,
    ) -> Result<K, ApiError> {
        let Some(mut object) = self.items.remove(&key(ns, name)) else {
            return Err(ApiError::not_found_of::<K>(name));
        };
        let rv = serials.next_version();
        object.metadata_mut().resource_version = Some(rv.to_string());
        tracing::debug!(kind = K::KIND, namespace = ns, name, rv, "object deleted");
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_suffixes_are_five_characters_of_the_alphabet_and_differ() {
        let a = generated_suffix(1);
        let b = generated_suffix(2);
        assert_eq!(a.len(), 5);
        assert!(a.bytes().all(|c| SUFFIX_ALPHABET.contains(&c)), "{a}");
        assert_ne!(a, b);
        assert_eq!(generated_suffix(u64::MAX).len(), 5);
    }

    #[test]
    fn generation_counts_labels_and_content_but_not_other_metadata() {
        let slice = crate::endpoint_slice("shop", "web", &[], 80);
        let mut annotated = slice.clone();
        annotated.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        assert!(!content_changed(&slice, &annotated));
        let mut relabelled = slice.clone();
        relabelled.metadata.labels = None;
        assert!(content_changed(&slice, &relabelled));
        let mut moved = slice.clone();
        moved.address_type = "IPv6".to_owned();
        assert!(content_changed(&slice, &moved));
    }
}
