//! `apps/v1` ReplicaSets, as the deployment controller keeps them: one per pod template a
//! deployment has had, which is how `kubectl rollout history` and `kubectl rollout undo` see a
//! deployment's revisions.
//!
//! Like the real controller, whenever a deployment gets a pod template (on create, and on every
//! write that changes `spec.template`):
//!
//! - the ReplicaSet owned by the deployment (a controller owner reference to its uid) whose
//!   `pod-template-hash` is the template's is reused, else one named `<deployment>-<hash>` is
//!   made, with the template, the selector and labels plus `pod-template-hash`;
//! - that ReplicaSet gets the next revision (`deployment.kubernetes.io/revision`: one more than
//!   every other owned one), and so does the deployment: a rollback to an old template makes
//!   its ReplicaSet the newest revision again, as in a cluster;
//! - it runs the deployment's replicas and the others none (the rollout itself is the
//!   deployment controller's, [`crate::controller`]);
//! - beyond `spec.revisionHistoryLimit` (default 10) old ReplicaSets, the oldest are deleted;
//! - a deleted deployment's ReplicaSets go with it (garbage collection).
//!
//! The hash is FNV-1a over the template's JSON, as hex: Kubernetes' own is also FNV-1a, over
//! its own rendering of the template, so the values differ from a cluster's but behave alike.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::objects::{Collection, Collections, Kind};
use crate::status::ApiError;
use crate::store::Serials;

/// The label ReplicaSets and their pods carry: their template's hash.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The annotation of a deployment's and a ReplicaSet's revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Old ReplicaSets kept when the deployment does not say.
const DEFAULT_HISTORY_LIMIT: i32 = 10;

impl Kind for ReplicaSet {
    const GENERATION: bool = true;
    const RETURNS_DELETED_OBJECT: bool = false;

    fn collection(all: &Collections) -> &Collection<Self> {
        &all.replica_sets
    }

    fn collection_mut(all: &mut Collections) -> &mut Collection<Self> {
        &mut all.replica_sets
    }

    fn admit(&mut self, _previous: Option<&Self>, _serials: &mut Serials) -> Result<(), ApiError> {
        let name = self.metadata.name.clone().unwrap_or_default();
        let spec = &self.spec;
        let selector = spec.selector.match_labels.clone().unwrap_or_default();
        let labels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        if selector.is_empty() || selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return Err(ApiError::invalid_of::<ReplicaSet>(
                &name,
                "spec.template.metadata.labels",
                "Invalid value: `selector` does not match template `labels`",
            ));
        }
        Ok(())
    }
}

/// FNV-1a (32 bits) of `bytes`, as hex.
fn fnv1a(bytes: &[u8]) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:x}")
}

/// The `pod-template-hash` of `deployment`'s template.
pub(crate) fn template_hash(deployment: &Deployment) -> String {
    fnv1a(&serde_json::to_vec(&deployment.spec.template).unwrap_or_default())
}

fn revision_of(meta: &ObjectMeta) -> u64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Whether `rs` is owned (as its controller) by the deployment with `uid`.
fn owned_by(rs: &ReplicaSet, uid: &str) -> bool {
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The ReplicaSets of `ns` the deployment with `uid` owns.
fn owned(all: &Collections, ns: &str, uid: &str) -> Vec<ReplicaSet> {
    let Ok(filter) = crate::selectors::Filter::parse(Some(ns), None, None) else {
        return Vec::new();
    };
    all.replica_sets
        .list(&filter)
        .into_iter()
        .filter(|rs| owned_by(rs, uid))
        .collect()
}

/// Gives `deployment` (stored in `ns`, with its uid) the revision of its template, making or
/// reusing its ReplicaSet; sets the deployment's revision annotation.
pub(crate) fn roll(
    all: &mut Collections,
    serials: &mut Serials,
    ns: &str,
    deployment: &mut Deployment,
) -> Result<(), ApiError> {
    let Some(uid) = deployment.metadata.uid.clone() else {
        return Ok(());
    };
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let hash = template_hash(deployment);
    let mut replica_sets = owned(all, ns, &uid);
    let newest = replica_sets
        .iter()
        .map(|rs| revision_of(&rs.metadata))
        .max()
        .unwrap_or(0);
    let current = replica_sets.iter().position(|rs| {
        rs.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_TEMPLATE_HASH))
            == Some(&hash)
    });
    let revision = match current {
        Some(i) if revision_of(&replica_sets[i].metadata) == newest => newest,
        _ => newest + 1,
    };
    let replicas = deployment.spec.replicas.unwrap_or(1);
    // The others run nothing once the rollout is through.
    for rs in &mut replica_sets {
        let mine = rs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_TEMPLATE_HASH))
            == Some(&hash);
        let mut changed = rs.clone();
        changed.spec.replicas = Some(if mine { replicas } else { 0 });
        if mine {
            changed
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(REVISION.to_owned(), revision.to_string());
        }
        if changed != *rs {
            let rs_name = changed.metadata.name.clone().unwrap_or_default();
            *rs = all.replica_sets.replace(ns, &rs_name, changed, serials)?;
        }
    }
    if current.is_none() {
        let mut template = deployment.spec.template.clone();
        template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.to_owned(), hash.clone());
        let mut selector = deployment.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.to_owned(), hash.clone());
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(POD_TEMPLATE_HASH.to_owned(), hash.clone());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{name}-{hash}")),
                namespace: Some(ns.to_owned()),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(
                    REVISION.to_owned(),
                    revision.to_string(),
                )])),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".to_owned(),
                    kind: "Deployment".to_owned(),
                    name: name.clone(),
                    uid: uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(replicas),
                selector,
                template: Some(template),
                min_ready_seconds: None,
            },
            status: None,
        };
        replica_sets.push(all.replica_sets.create(ns, rs, serials)?);
    }
    // Old ReplicaSets beyond the history limit go, oldest first.
    let limit = usize::try_from(
        deployment
            .spec
            .revision_history_limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT),
    )
    .unwrap_or(0);
    let mut old: Vec<(u64, String)> = replica_sets
        .iter()
        .filter(|rs| revision_of(&rs.metadata) != revision)
        .map(|rs| {
            (
                revision_of(&rs.metadata),
                rs.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    old.sort_unstable();
    let excess = old.len().saturating_sub(limit);
    for (_, rs_name) in old.into_iter().take(excess) {
        all.replica_sets.delete(ns, &rs_name, serials)?;
    }
    deployment
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION.to_owned(), revision.to_string());
    Ok(())
}

/// Deletes the ReplicaSets the deployment with `uid` owned.
pub(crate) fn collect_garbage(all: &mut Collections, serials: &mut Serials, ns: &str, uid: &str) {
    for rs in owned(all, ns, uid) {
        let rs_name = rs.metadata.name.unwrap_or_default();
        let _ = all.replica_sets.delete(ns, &rs_name, serials);
    }
}
