//! Kubernetes deployments.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{ExecError, Reconciled};

/// The parts of an `apps/v1` Deployment's spec and status a playbook reasons about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Desired replicas (`spec.replicas`).
    pub replicas: u32,
    /// `status.readyReplicas`.
    pub ready_replicas: u32,
    /// `status.updatedReplicas`.
    pub updated_replicas: u32,
    /// `status.availableReplicas`.
    pub available_replicas: u32,
    /// `metadata.generation`.
    pub generation: u64,
    /// `status.observedGeneration`.
    pub observed_generation: u64,
    /// `metadata.resourceVersion` as read: the precondition of a write that must not land on
    /// anything newer. `None` where the provider has no such thing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// The pod template's `kubectl.kubernetes.io/restartedAt` annotation: the marker of the
    /// last rollout restart, `None` when it was never restarted so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<String>,
    /// What the pod template is, as [`template_hash`] names it: equal for equal templates, so
    /// a rollback can be read back. `None` where the provider did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_hash: Option<String>,
}

/// Most revisions a history answers: Kubernetes keeps 10 old ReplicaSets by default
/// (`revisionHistoryLimit`); a deployment keeping more answers its newest.
pub const MAX_REVISIONS: usize = 50;

/// Most images one revision lists (its containers').
pub const MAX_IMAGES: usize = 16;

/// One revision of a deployment's pod template, as `kubectl rollout history` lists them (in a
/// cluster, one ReplicaSet the deployment owns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Its number (`deployment.kubernetes.io/revision`), growing with each new template.
    pub revision: u64,
    /// When it was made (the ReplicaSet's creation), in milliseconds since the Unix epoch.
    pub created_millis: u64,
    /// The images of its containers, in order (at most [`MAX_IMAGES`]).
    pub images: Vec<String>,
    /// Why it was made (`kubernetes.io/change-cause`), when someone said.
    pub change_cause: Option<String>,
    /// Its pod template, as [`template_hash`] names it.
    pub template_hash: String,
}

/// A stable name of a pod template: the SHA-256 of its JSON (keys in order, as serde_json
/// writes maps), without the `pod-template-hash` label ReplicaSets add, first 16 hex digits.
/// Equal templates have equal names whichever ReplicaSet or deployment holds them.
pub fn template_hash(template: &serde_json::Value) -> String {
    use sha2::{Digest as _, Sha256};
    let mut template = template.clone();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(serde_json::Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
        if labels.is_empty()
            && let Some(meta) = template
                .pointer_mut("/metadata")
                .and_then(serde_json::Value::as_object_mut)
        {
            meta.remove("labels");
        }
    }
    let bytes = serde_json::to_vec(&template).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..8])
}

/// The revision a rollback goes to: `to` when given (0: the newest one older than `current`,
/// as `kubectl rollout undo` picks), found in `history`.
pub fn rollback_target(
    history: &[Revision],
    current: u64,
    to: u64,
) -> Result<&Revision, ExecError> {
    let found = if to == 0 {
        history
            .iter()
            .filter(|r| r.revision < current)
            .max_by_key(|r| r.revision)
    } else {
        history.iter().find(|r| r.revision == to)
    };
    found.ok_or_else(|| {
        ExecError::NotFound(if to == 0 {
            format!("no revision older than the current one ({current}) is kept to roll back to")
        } else {
            format!("revision {to} is not in the deployment's history")
        })
    })
}

impl Deployment {
    /// Whether the rollout is complete, by the rule `kubectl rollout status` applies.
    pub fn is_rolled_out(&self) -> bool {
        self.observed_generation >= self.generation
            && self.updated_replicas == self.replicas
            && self.ready_replicas == self.replicas
            && self.available_replicas == self.replicas
    }
}

/// A change of a deployment whose earlier outcome is unknown, as its intent recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `scale-deployment`: done when `spec.replicas` is `replicas`; when it is not, and the
    /// deployment's spec changed since the change was decided (its `metadata.generation` is
    /// no longer `generation`), someone else wrote it: a conflict.
    Scale {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The replicas asked for.
        replicas: u32,
        /// `metadata.generation` read before the change. Status updates (pods becoming ready)
        /// leave it as it is, unlike `resourceVersion`. `None`: not recorded, not compared.
        generation: Option<u64>,
    },
    /// `rollout-restart`: done when the pod template carries `stamp`, the restart marker the
    /// change was made with (unique per call: see [`restart_stamp`]); not made when it still
    /// carries `before`, the marker read before the change; a conflict when it carries
    /// another one (someone else restarted it since).
    RolloutRestart {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The marker written by the restart.
        stamp: String,
        /// The marker read before the change (`None`: the template had none).
        before: Option<String>,
    },
    /// `rollout-undo`: done when the pod template is `to` (the template of the revision rolled
    /// back to, by [`template_hash`]); not made when it still is `before` and the spec is still
    /// at `generation` (a template changed away and back, A→B→A, is someone else's change); a
    /// conflict otherwise.
    RolloutUndo {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The revision rolled back to.
        revision: u64,
        /// Its template's hash.
        to: String,
        /// The template's hash read before the change.
        before: String,
        /// `metadata.generation` read before the change.
        generation: u64,
    },
}

impl Change {
    /// The deployment it changes: `(namespace, name)`.
    pub fn target(&self) -> (&str, &str) {
        match self {
            Change::Scale {
                namespace, name, ..
            }
            | Change::RolloutRestart {
                namespace, name, ..
            }
            | Change::RolloutUndo {
                namespace, name, ..
            } => (namespace, name),
        }
    }

    /// How the change reads on `deployment`, as read now: in place, not made (and safe to make
    /// now: nobody else changed what it changes since it was decided), or a conflict. Every
    /// provider judges by this, on its own read, in `reconcile` and again in `redo` just
    /// before writing.
    pub fn read_back(&self, deployment: Deployment) -> Reconciled<Deployment> {
        match self {
            Change::Scale {
                replicas,
                generation,
                ..
            } => {
                if deployment.replicas == *replicas {
                    return Reconciled::Done(deployment);
                }
                match generation {
                    Some(then) if *then != deployment.generation => Reconciled::Conflict(format!(
                        "deployment `{}/{}` has {} replicas, not {replicas}, and its spec was changed since the change was decided (generation {then}, now {}): it is not scaled again over the other writer's change",
                        deployment.namespace,
                        deployment.name,
                        deployment.replicas,
                        deployment.generation
                    )),
                    Some(_) => Reconciled::NotApplied,
                    // An intent from before generations were recorded: whether another writer
                    // changed the spec since cannot be told, so nothing is written over it.
                    None => Reconciled::Conflict(format!(
                        "deployment `{}/{}` has {} replicas, not {replicas}, and the earlier attempt's intent did not record the spec's generation (an older GRACE wrote it): whether someone else changed it since cannot be told, so it is not scaled again",
                        deployment.namespace, deployment.name, deployment.replicas
                    )),
                }
            }
            Change::RolloutRestart { stamp, before, .. } => {
                if deployment.restarted_at.as_deref() == Some(stamp.as_str()) {
                    Reconciled::Done(deployment)
                } else if deployment.restarted_at == *before {
                    Reconciled::NotApplied
                } else {
                    Reconciled::Conflict(format!(
                        "deployment `{}/{}` was restarted by someone else since this restart was decided (its restart marker is {}, was {}): it is not restarted again over theirs",
                        deployment.namespace,
                        deployment.name,
                        marker(deployment.restarted_at.as_deref()),
                        marker(before.as_deref())
                    ))
                }
            }
            Change::RolloutUndo {
                revision,
                to,
                before,
                generation,
                ..
            } => match deployment.template_hash.as_deref() {
                Some(now) if now == to => Reconciled::Done(deployment),
                Some(now) if now == before && deployment.generation == *generation => {
                    Reconciled::NotApplied
                }
                now => Reconciled::Conflict(format!(
                    "deployment `{}/{}` has pod template {} at generation {}, not revision {revision}'s ({to}), nor the one the rollback was decided on ({before}) at generation {generation}: someone else changed it since, so it is not rolled back over theirs",
                    deployment.namespace,
                    deployment.name,
                    marker(now),
                    deployment.generation
                )),
            },
        }
    }
}

/// A restart marker for messages.
fn marker(value: Option<&str>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| format!("`{v}`"))
}

/// `replicas` as the API holds it: `spec.replicas` is an `int32`, so a larger count is refused
/// the same way by every provider, the simulation (a dry-run refuses what production would)
/// and the guest boundary.
pub fn replicas_i32(replicas: u32) -> Result<i32, ExecError> {
    i32::try_from(replicas).map_err(|_| {
        ExecError::InvalidArgument(format!(
            "`replicas` is {replicas}, above the limit of {} (Kubernetes' int32)",
            i32::MAX
        ))
    })
}

/// A restart marker for one `rollout-restart` call: now, in RFC 3339 with nanoseconds, and
/// strictly later than every marker this process made before, so two calls never share one
/// (even in one nanosecond of the system clock, or when the clock steps back). The marker is
/// chosen before the change's intent is recorded, so a retry can read it back and tell
/// whether the restart happened.
pub fn restart_stamp() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    let nanos = loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(nanos)).to_string()
}

/// Acts on deployments.
#[async_trait::async_trait]
pub trait KubernetesExecutor: Send + Sync {
    /// Reads a deployment.
    async fn get_deployment(&self, namespace: &str, name: &str) -> Result<Deployment, ExecError>;
    /// Sets `spec.replicas` through the scale subresource.
    async fn scale_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> Result<Deployment, ExecError>;
    /// Restarts every pod, as `kubectl rollout restart` does, marking the pod template with
    /// `stamp` ([`restart_stamp`]); a template already carrying `stamp` is left as it is.
    async fn rollout_restart(
        &self,
        namespace: &str,
        name: &str,
        stamp: &str,
    ) -> Result<Deployment, ExecError>;
    /// The deployment's revisions, newest first, at most [`MAX_REVISIONS`].
    async fn rollout_history(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<Revision>, ExecError>;
    /// Rolls the pod template back to `change`'s revision ([`Change::RolloutUndo`]), as
    /// `kubectl rollout undo` does, only over the template `change` was decided on: a template
    /// already at the revision's is left as it is, another one is an [`ExecError::Conflict`].
    async fn rollout_undo(&self, change: &Change) -> Result<Deployment, ExecError>;
    /// Waits until the rollout is complete, or `timeout` passes on the run clock.
    async fn wait_for_rollout(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Deployment, ExecError>;
    /// Reads the deployment and says whether `change`, whose earlier outcome is unknown, is in
    /// place ([`Change::read_back`]; see [`crate::reconcile`]).
    async fn reconcile(&self, change: &Change) -> Result<Reconciled<Deployment>, ExecError>;
    /// Makes `change`, whose earlier outcome is unknown and which read back as not made, only
    /// on the deployment as nobody else changed it: reads it, judges it by
    /// [`Change::read_back`] (in place: returned as it is; a conflict: an
    /// [`ExecError::Conflict`]) and writes with that read's `resourceVersion` as a
    /// precondition, so a write by someone else in between is a conflict, reported rather than
    /// retried on a fresh read.
    async fn redo(&self, change: &Change) -> Result<Deployment, ExecError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_stamps_made_back_to_back_differ_and_are_rfc3339() {
        let stamps: Vec<String> = (0..1000).map(|_| restart_stamp()).collect();
        let distinct: std::collections::BTreeSet<&String> = stamps.iter().collect();
        assert_eq!(distinct.len(), stamps.len());
        for stamp in &stamps {
            assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
        }
    }

    fn deployment(replicas: u32, generation: u64, restarted_at: Option<&str>) -> Deployment {
        Deployment {
            namespace: "shop".into(),
            name: "checkout".into(),
            replicas,
            ready_replicas: replicas,
            updated_replicas: replicas,
            available_replicas: replicas,
            generation,
            observed_generation: generation,
            resource_version: Some("17".into()),
            restarted_at: restarted_at.map(str::to_owned),
            template_hash: Some(format!("t-{}", restarted_at.unwrap_or("none"))),
        }
    }

    fn undo(to: &str, before: &str) -> Change {
        Change::RolloutUndo {
            namespace: "shop".into(),
            name: "checkout".into(),
            revision: 3,
            to: to.into(),
            before: before.into(),
            generation: 2,
        }
    }

    #[test]
    fn a_rollback_reads_back_by_the_template_it_left() {
        let at = |marker| deployment(2, 2, Some(marker));
        assert!(matches!(
            undo("t-old", "t-new").read_back(at("old")),
            Reconciled::Done(_)
        ));
        assert_eq!(
            undo("t-old", "t-new").read_back(at("new")),
            Reconciled::NotApplied
        );
        let Reconciled::Conflict(m) = undo("t-old", "t-new").read_back(at("theirs")) else {
            panic!("a third template is someone else's change")
        };
        assert!(m.contains("`t-theirs`") && m.contains("revision 3"), "{m}");
        // The template it was decided on, but written again since (A→B→A): someone else's.
        let rewritten = deployment(2, 4, Some("new"));
        assert!(matches!(
            undo("t-old", "t-new").read_back(rewritten),
            Reconciled::Conflict(_)
        ));
    }

    fn revision(revision: u64) -> Revision {
        Revision {
            revision,
            created_millis: revision * 1000,
            images: vec![format!("web:{revision}")],
            change_cause: None,
            template_hash: format!("h{revision}"),
        }
    }

    #[test]
    fn a_rollback_goes_to_the_newest_older_revision_unless_told_which() {
        let history = [revision(7), revision(5), revision(4)];
        assert_eq!(rollback_target(&history, 7, 0).unwrap().revision, 5);
        assert_eq!(rollback_target(&history, 7, 4).unwrap().revision, 4);
        assert!(matches!(
            rollback_target(&history, 7, 6),
            Err(ExecError::NotFound(_))
        ));
        assert!(matches!(
            rollback_target(&history, 4, 0),
            Err(ExecError::NotFound(_))
        ));
    }

    #[test]
    fn a_template_hash_ignores_the_replica_sets_own_label() {
        let deployment = serde_json::json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}});
        let mut rs = deployment.clone();
        rs["metadata"]["labels"]["pod-template-hash"] = "5d8f9c".into();
        assert_eq!(template_hash(&deployment), template_hash(&rs));
        let mut other = deployment.clone();
        other["spec"]["containers"][0]["image"] = "web:2".into();
        assert_ne!(template_hash(&deployment), template_hash(&other));
        let bare =
            serde_json::json!({"metadata": {"labels": {"pod-template-hash": "x"}}, "spec": {}});
        assert_eq!(
            template_hash(&bare),
            template_hash(&serde_json::json!({"metadata": {}, "spec": {}}))
        );
    }

    fn scale(replicas: u32, generation: Option<u64>) -> Change {
        Change::Scale {
            namespace: "shop".into(),
            name: "checkout".into(),
            replicas,
            generation,
        }
    }

    fn restart(stamp: &str, before: Option<&str>) -> Change {
        Change::RolloutRestart {
            namespace: "shop".into(),
            name: "checkout".into(),
            stamp: stamp.into(),
            before: before.map(str::to_owned),
        }
    }

    #[test]
    fn a_scale_at_its_target_reads_as_done_whoever_changed_the_spec() {
        let read = scale(4, Some(1)).read_back(deployment(4, 3, None));
        assert!(matches!(read, Reconciled::Done(_)), "{read:?}");
    }

    #[test]
    fn a_scale_not_made_on_an_unchanged_spec_reads_as_not_applied() {
        assert_eq!(
            scale(4, Some(2)).read_back(deployment(2, 2, None)),
            Reconciled::NotApplied
        );
    }

    #[test]
    fn a_scale_not_made_on_a_spec_changed_since_reads_as_a_conflict() {
        let read = scale(4, Some(2)).read_back(deployment(3, 3, None));
        let Reconciled::Conflict(message) = read else {
            panic!("expected a conflict, got {read:?}")
        };
        assert!(message.contains("generation 2, now 3"), "{message}");
    }

    #[test]
    fn a_scale_not_made_whose_intent_recorded_no_generation_reads_as_a_conflict() {
        // An intent an older GRACE wrote: nothing tells whether the spec changed since.
        let read = scale(4, None).read_back(deployment(2, 2, None));
        let Reconciled::Conflict(message) = read else {
            panic!("expected a conflict, got {read:?}")
        };
        assert!(message.contains("did not record"), "{message}");
        let done = scale(4, None).read_back(deployment(4, 2, None));
        assert!(matches!(done, Reconciled::Done(_)), "{done:?}");
    }

    #[test]
    fn a_restart_whose_marker_is_in_place_reads_as_done() {
        let read = restart("ours", Some("old")).read_back(deployment(2, 2, Some("ours")));
        assert!(matches!(read, Reconciled::Done(_)), "{read:?}");
    }

    #[test]
    fn a_restart_over_the_marker_it_read_reads_as_not_applied() {
        assert_eq!(
            restart("ours", Some("old")).read_back(deployment(2, 2, Some("old"))),
            Reconciled::NotApplied
        );
        assert_eq!(
            restart("ours", None).read_back(deployment(2, 1, None)),
            Reconciled::NotApplied
        );
    }

    #[test]
    fn a_restart_over_someone_elses_newer_marker_reads_as_a_conflict() {
        let read = restart("ours", Some("old")).read_back(deployment(2, 3, Some("theirs")));
        let Reconciled::Conflict(message) = read else {
            panic!("expected a conflict, got {read:?}")
        };
        assert!(
            message.contains("`theirs`") && message.contains("`old`"),
            "{message}"
        );
    }
}
