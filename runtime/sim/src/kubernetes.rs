//! Kubernetes deployments in the simulation: the rollout model and the simulated
//! [`KubernetesExecutor`].
//!
//! A deployment remembers its status at its last change and when that change completes; its
//! status at any later moment follows from those:
//!
//! - scaling up: `ready` and `available` stay at the old count, `updated` is the new count, until
//!   the rollout duration has passed;
//! - scaling down: everything is at the new count at once;
//! - a restart: `updated` is 0 and `ready` stays, until the rollout duration has passed.
//!
//! The controller is instant: `observed_generation` always equals `generation`. As in Kubernetes,
//! setting the replica count it already has changes nothing, generation included.

use std::time::Duration;

use grace_executor::kubernetes::{Change, Deployment, Revision};
use grace_executor::{ExecError, KubernetesExecutor, Reconciled};
use serde::{Deserialize, Serialize};

use crate::fleet::DeploymentSpec;
use crate::simulation::{Simulation, millis};

/// A deployment and its rollout in progress, if any.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeploymentState {
    pub namespace: String,
    pub name: String,
    rollout_millis: u64,
    replicas: u32,
    generation: u64,
    /// Ready (and available) replicas from the last change until `done_at`.
    ready_from: u32,
    /// Updated replicas from the last change until `done_at`.
    updated_from: u32,
    /// When the last change completes; from then on every count equals `replicas`.
    done_at: u64,
    /// The marker of the last restart (the pod template's `restartedAt` in a cluster).
    restart_stamp: Option<String>,
    /// The pod templates it had, oldest revision first: each restart is one, as in a cluster
    /// (empty in states saved before revisions were kept: the one template, revision 1).
    #[serde(default)]
    revisions: Vec<SimRevision>,
}

/// One revision of a simulated deployment: its template is its restart marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SimRevision {
    revision: u64,
    created_millis: u64,
    stamp: Option<String>,
}

/// Old revisions a simulated deployment keeps, as Kubernetes' default `revisionHistoryLimit`.
const HISTORY_LIMIT: usize = 10;

impl DeploymentState {
    pub fn new(spec: &DeploymentSpec) -> DeploymentState {
        DeploymentState {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            rollout_millis: millis(spec.rollout),
            replicas: spec.replicas,
            generation: 1,
            ready_from: spec.replicas,
            updated_from: spec.replicas,
            done_at: 0,
            restart_stamp: None,
            revisions: Vec::new(),
        }
    }

    /// The image a simulated deployment runs: one per deployment (restarts keep it).
    fn image(&self) -> String {
        format!("{}:simulated", self.name)
    }

    /// The hash of the template marked `stamp`, as a cluster's would differ between them.
    fn template_hash(&self, stamp: Option<&str>) -> String {
        grace_executor::kubernetes::template_hash(&serde_json::json!({
            "image": self.image(),
            "restartedAt": stamp,
        }))
    }

    /// Its revisions, oldest first. Before any change, its one template is revision 1, made
    /// before the simulation began (time 0).
    fn revisions(&self) -> Vec<SimRevision> {
        if self.revisions.is_empty() {
            vec![SimRevision {
                revision: 1,
                created_millis: 0,
                stamp: self.restart_stamp.clone(),
            }]
        } else {
            self.revisions.clone()
        }
    }

    /// Its history as a cluster lists it: newest first.
    pub fn history(&self) -> Vec<Revision> {
        self.revisions()
            .into_iter()
            .rev()
            .map(|r| Revision {
                revision: r.revision,
                created_millis: r.created_millis,
                images: vec![self.image()],
                change_cause: None,
                template_hash: self.template_hash(r.stamp.as_deref()),
            })
            .collect()
    }

    /// Records the template now in place as the newest revision, made at `now` unless it
    /// is an older revision's (a rollback: that one becomes the newest, created when it was).
    fn record_revision(&mut self, now: u64) {
        let mut revisions = self.revisions();
        let newest = revisions.last().map_or(0, |r| r.revision);
        let created_millis = match revisions.iter().position(|r| r.stamp == self.restart_stamp) {
            Some(i) => revisions.remove(i).created_millis,
            None => now,
        };
        revisions.push(SimRevision {
            revision: newest + 1,
            created_millis,
            stamp: self.restart_stamp.clone(),
        });
        let excess = revisions.len().saturating_sub(HISTORY_LIMIT + 1);
        revisions.drain(..excess);
        self.revisions = revisions;
    }

    /// Rolls the template back to `stamp` (an older revision's) at `now`: every pod replaced,
    /// as a restart does.
    fn roll_back(&mut self, now: u64, stamp: Option<String>) {
        self.new_template(now, stamp);
    }

    /// Puts the template marked `stamp` in place at `now`: a new spec, every pod replaced over
    /// the rollout, and the revision recorded. The template replaced is a revision of its own
    /// (the first one included).
    fn new_template(&mut self, now: u64, stamp: Option<String>) {
        self.revisions = self.revisions();
        self.restart_stamp = stamp;
        let current = self.status(now);
        self.generation = self.generation.saturating_add(1);
        self.ready_from = current.ready_replicas;
        self.updated_from = 0;
        self.done_at = if self.replicas == 0 {
            now
        } else {
            now.saturating_add(self.rollout_millis)
        };
        self.record_revision(now);
    }

    /// The deployment as the executor trait reports it, at `t` (no earlier than the last change).
    pub fn status(&self, t: u64) -> Deployment {
        let (ready, updated) = if t >= self.done_at {
            (self.replicas, self.replicas)
        } else {
            (self.ready_from, self.updated_from)
        };
        Deployment {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            replicas: self.replicas,
            ready_replicas: ready,
            updated_replicas: updated,
            available_replicas: ready,
            generation: self.generation,
            observed_generation: self.generation,
            // Only spec changes write a simulated deployment (its controller is instant), so
            // its generation serves as its version.
            resource_version: Some(self.generation.to_string()),
            restarted_at: self.restart_stamp.clone(),
            template_hash: Some(self.template_hash(self.restart_stamp.as_deref())),
        }
    }

    /// Why this deployment, restored from a saved state, cannot be the fleet file's `initial`
    /// after changes: another name or rollout time, or counts Kubernetes could not hold.
    pub fn check_against(&self, initial: &DeploymentState) -> Result<(), String> {
        let name = format!("{}/{}", initial.namespace, initial.name);
        if (&self.namespace, &self.name, self.rollout_millis)
            != (&initial.namespace, &initial.name, initial.rollout_millis)
        {
            return Err(format!(
                "deployment `{}/{}` is not the fleet file's `{name}` (name or rollout differ)",
                self.namespace, self.name
            ));
        }
        for (what, n) in [
            ("replicas", self.replicas),
            ("ready replicas", self.ready_from),
            ("updated replicas", self.updated_from),
        ] {
            grace_executor::kubernetes::replicas_i32(n)
                .map_err(|e| format!("deployment `{name}`: {what}: {e}"))?;
        }
        if self.ready_from > self.replicas || self.updated_from > self.replicas {
            return Err(format!(
                "deployment `{name}` has more ready or updated replicas than its {} replicas",
                self.replicas
            ));
        }
        // Kubernetes keeps `metadata.generation` in an int64.
        if i64::try_from(self.generation).is_err() {
            return Err(format!(
                "deployment `{name}` has generation {}, past Kubernetes' int64",
                self.generation
            ));
        }
        if self.generation < initial.generation {
            return Err(format!(
                "deployment `{name}` has generation {}, before the fleet file's {}",
                self.generation, initial.generation
            ));
        }
        Ok(())
    }

    /// Sets `spec.replicas` at `now`.
    pub fn scale(&mut self, now: u64, replicas: u32) {
        if replicas == self.replicas {
            return;
        }
        let current = self.status(now);
        self.generation = self.generation.saturating_add(1);
        self.ready_from = current.ready_replicas.min(replicas);
        self.updated_from = if current.updated_replicas == current.replicas {
            replicas
        } else {
            current.updated_replicas.min(replicas)
        };
        self.replicas = replicas;
        self.done_at = if self.ready_from == replicas && self.updated_from == replicas {
            now
        } else {
            now.saturating_add(self.rollout_millis)
        };
    }

    /// Restarts every pod at `now`, as `kubectl rollout restart` does, marking the template with
    /// `stamp`; a template already marked with it is left alone, as a patch setting an
    /// annotation to its value changes nothing.
    pub fn restart(&mut self, now: u64, stamp: &str) {
        if self.restart_stamp.as_deref() == Some(stamp) {
            return;
        }
        self.new_template(now, Some(stamp.to_owned()));
    }

    /// When the rollout in progress at `now` completes, if one is in progress.
    pub fn completes_at(&self, now: u64) -> Option<u64> {
        (self.done_at > now).then_some(self.done_at)
    }
}

/// The simulated Kubernetes cluster.
#[derive(Debug, Clone)]
pub(crate) struct SimKubernetes {
    pub sim: Simulation,
}

#[async_trait::async_trait]
impl KubernetesExecutor for SimKubernetes {
    async fn get_deployment(&self, namespace: &str, name: &str) -> Result<Deployment, ExecError> {
        self.sim
            .with_world(|world, now| Ok(world.deployment(namespace, name)?.status(now)))
    }

    async fn scale_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> Result<Deployment, ExecError> {
        // As the API server does: `spec.replicas` is an int32, so a dry-run refuses what
        // production would.
        grace_executor::kubernetes::replicas_i32(replicas)?;
        self.sim.change_world(|world, now| {
            let deployment = world.deployment_mut(namespace, name)?;
            deployment.scale(now, replicas);
            tracing::debug!(namespace, name, replicas, "simulated deployment scaled");
            Ok(deployment.status(now))
        })
    }

    async fn rollout_restart(
        &self,
        namespace: &str,
        name: &str,
        stamp: &str,
    ) -> Result<Deployment, ExecError> {
        self.sim.change_world(|world, now| {
            let deployment = world.deployment_mut(namespace, name)?;
            deployment.restart(now, stamp);
            tracing::debug!(namespace, name, "simulated deployment restarted");
            Ok(deployment.status(now))
        })
    }

    async fn rollout_history(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<Revision>, ExecError> {
        self.sim
            .with_world(|world, _| Ok(world.deployment(namespace, name)?.history()))
    }

    /// Judged and made in one step of the world, like [`KubernetesExecutor::redo`] here.
    async fn rollout_undo(&self, change: &Change) -> Result<Deployment, ExecError> {
        self.redo(change).await
    }

    async fn reconcile(&self, change: &Change) -> Result<Reconciled<Deployment>, ExecError> {
        let (namespace, name) = change.target();
        let read = self.get_deployment(namespace, name).await?;
        Ok(change.read_back(read))
    }

    /// Judged and made in one step of the world, which nothing else changes in between: the
    /// precondition a cluster checks by `resourceVersion` holds by construction.
    async fn redo(&self, change: &Change) -> Result<Deployment, ExecError> {
        if let Change::Scale { replicas, .. } = change {
            grace_executor::kubernetes::replicas_i32(*replicas)?;
        }
        self.sim.change_world(|world, now| {
            let (namespace, name) = change.target();
            let deployment = world.deployment_mut(namespace, name)?;
            match change.read_back(deployment.status(now)) {
                Reconciled::Done(read) => return Ok(read),
                Reconciled::Conflict(message) => return Err(ExecError::Conflict(message)),
                Reconciled::NotApplied => {}
            }
            match change {
                Change::Scale { replicas, .. } => deployment.scale(now, *replicas),
                Change::RolloutRestart { stamp, .. } => deployment.restart(now, stamp),
                Change::RolloutUndo { revision, to, .. } => {
                    let revisions = deployment.revisions();
                    let Some(target) = revisions.iter().find(|r| {
                        r.revision == *revision
                            && deployment.template_hash(r.stamp.as_deref()) == *to
                    }) else {
                        return Err(ExecError::Conflict(format!(
                            "deployment `{namespace}/{name}` no longer keeps revision {revision} with the template it was decided on ({to})"
                        )));
                    };
                    deployment.roll_back(now, target.stamp.clone());
                }
            }
            Ok(deployment.status(now))
        })
    }

    async fn wait_for_rollout(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Deployment, ExecError> {
        let clock = self.sim.clock();
        let deadline = self.sim.with_world(|world, now| {
            world
                .deployment(namespace, name)
                .map(|_| now.saturating_add(millis(timeout)))
        })?;
        loop {
            let (status, completes_at, now) = self.sim.with_world(|world, now| {
                let deployment = world.deployment(namespace, name)?;
                Ok::<_, ExecError>((deployment.status(now), deployment.completes_at(now), now))
            })?;
            let Some(completes_at) = completes_at else {
                return Ok(status);
            };
            if now >= deadline {
                return Err(ExecError::TimedOut(format!(
                    "deployment `{namespace}/{name}` has {} of {} replicas ready and {} updated after waiting {}",
                    status.ready_replicas,
                    status.replicas,
                    status.updated_replicas,
                    humantime::format_duration(timeout)
                )));
            }
            let until = completes_at.min(deadline);
            grace_executor::Clock::sleep(clock.as_ref(), Duration::from_millis(until - now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: u32) -> DeploymentState {
        DeploymentState::new(&DeploymentSpec {
            namespace: "shop".to_owned(),
            name: "checkout".to_owned(),
            replicas,
            rollout: Duration::from_secs(45),
        })
    }

    #[test]
    fn scaling_to_the_same_count_changes_nothing() {
        let mut d = deployment(2);
        d.scale(1_000, 2);
        assert_eq!(d.status(1_000).generation, 1);
        assert!(d.status(1_000).is_rolled_out());
    }

    #[test]
    fn scaling_up_during_a_restart_keeps_updated_below_replicas() {
        let mut d = deployment(2);
        d.restart(0, "first");
        d.scale(10_000, 4);
        let s = d.status(10_000);
        assert_eq!(
            (s.ready_replicas, s.updated_replicas, s.generation),
            (2, 0, 3)
        );
        assert!(!s.is_rolled_out());
        assert!(d.status(55_000).is_rolled_out());
    }
}
