//! The deployment controller: makes each deployment's status follow its spec, one replica per
//! step, the way a rolling update with one surge pod looks from outside.
//!
//! The model counts ready pods of the current template (`updated`) and of older templates
//! (`old`); every count in the status follows from those (`replicas` = `readyReplicas` =
//! `availableReplicas` = `updated + old`, `updatedReplicas` = `updated`). Each step:
//!
//! - `observedGeneration` catches up with `metadata.generation`;
//! - a new pod template (a rollout restart, an image change) turns every pod old;
//! - then one pod changes: a new pod becomes ready (and, once there are enough, an old one goes),
//!   or a surplus pod goes.
//!
//! So scaling 2 → 5 takes three steps, a restart of 5 takes five (ready stays at 5 throughout),
//! and a paused deployment only has its generation observed. Counts of zero are omitted from
//! the status, as the real server omits them.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use tokio::sync::watch;

use crate::store::{Entry, Store};

fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

fn status_of(desired: i32, updated: i32, old: i32, observed: i64) -> DeploymentStatus {
    let ready = updated + old;
    DeploymentStatus {
        observed_generation: Some(observed),
        replicas: nonzero(ready),
        updated_replicas: nonzero(updated),
        ready_replicas: nonzero(ready),
        available_replicas: nonzero(ready),
        unavailable_replicas: nonzero((desired - ready).max(0)),
        ..DeploymentStatus::default()
    }
}

/// The status of a deployment of `replicas` whose rollout of `generation` is complete.
pub(crate) fn settled_status(replicas: i32, generation: i64) -> DeploymentStatus {
    status_of(replicas, replicas, 0, generation)
}

/// One step of the controller on one deployment: its new status, if it changes.
pub(crate) fn step(entry: &mut Entry) -> Option<DeploymentStatus> {
    let d: &Deployment = &entry.deployment;
    let spec = &d.spec;
    let desired = spec.replicas.unwrap_or(1).max(0);
    let generation = d.metadata.generation.unwrap_or(1);
    let current = d.status.clone().unwrap_or_default();
    let mut updated = current.updated_replicas.unwrap_or(0).max(0);
    let mut old = (current.ready_replicas.unwrap_or(0) - updated).max(0);

    let template = serde_json::to_value(&spec.template).ok();
    if entry.rolled_template.is_some() && entry.rolled_template != template {
        old += updated;
        updated = 0;
    }
    entry.rolled_template = template;

    if !spec.paused.unwrap_or(false) {
        if updated < desired {
            updated += 1;
            if updated + old > desired {
                old -= 1;
            }
        } else if updated > desired {
            updated -= 1;
        } else if old > 0 {
            old -= 1;
        }
    }
    let next = DeploymentStatus {
        conditions: current.conditions.clone(),
        collision_count: current.collision_count,
        ..status_of(desired, updated, old, generation)
    };
    (next != current).then_some(next)
}

/// Runs the controller every `step` until `stop` turns true.
pub(crate) async fn run(store: Store, step: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(step.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => store.lock().reconcile_all(),
            _ = stop.wait_for(|stopping| *stopping) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(replicas: i32) -> Entry {
        let mut deployment = crate::deployment("shop", "checkout", replicas);
        deployment.metadata.generation = Some(1);
        let rolled_template = serde_json::to_value(&deployment.spec.template).ok();
        deployment.status = Some(settled_status(replicas, 1));
        Entry {
            deployment,
            rolled_template,
        }
    }

    fn counts(e: &Entry) -> (i32, i32, i64) {
        let s = e.deployment.status.clone().unwrap_or_default();
        (
            s.ready_replicas.unwrap_or(0),
            s.updated_replicas.unwrap_or(0),
            s.observed_generation.unwrap_or(0),
        )
    }

    fn run_steps(e: &mut Entry, n: usize) -> Vec<(i32, i32, i64)> {
        (0..n)
            .map(|_| {
                if let Some(s) = step(e) {
                    e.deployment.status = Some(s);
                }
                counts(e)
            })
            .collect()
    }

    #[test]
    fn a_settled_deployment_does_not_change() {
        let mut e = entry(3);
        assert!(step(&mut e).is_none());
    }

    #[test]
    fn scaling_up_adds_one_ready_replica_per_step() {
        let mut e = entry(2);
        e.deployment.spec.replicas = Some(5);
        e.deployment.metadata.generation = Some(2);
        assert_eq!(
            run_steps(&mut e, 4),
            vec![(3, 3, 2), (4, 4, 2), (5, 5, 2), (5, 5, 2)]
        );
    }

    #[test]
    fn scaling_down_removes_one_replica_per_step() {
        let mut e = entry(3);
        e.deployment.spec.replicas = Some(1);
        e.deployment.metadata.generation = Some(2);
        assert_eq!(run_steps(&mut e, 3), vec![(2, 2, 2), (1, 1, 2), (1, 1, 2)]);
    }

    #[test]
    fn a_new_template_rolls_through_keeping_ready_pods() {
        let mut e = entry(3);
        let spec = &mut e.deployment.spec;
        spec.template.metadata.as_mut().unwrap().annotations = Some(
            [(
                "kubectl.kubernetes.io/restartedAt".to_owned(),
                "now".to_owned(),
            )]
            .into(),
        );
        e.deployment.metadata.generation = Some(2);
        assert_eq!(
            run_steps(&mut e, 4),
            vec![(3, 1, 2), (3, 2, 2), (3, 3, 2), (3, 3, 2)]
        );
    }

    #[test]
    fn a_new_deployment_starts_from_zero() {
        let mut e = entry(2);
        e.deployment.status = None;
        e.rolled_template = None;
        assert_eq!(run_steps(&mut e, 3), vec![(1, 1, 1), (2, 2, 1), (2, 2, 1)]);
    }

    #[test]
    fn a_paused_deployment_only_observes_its_generation() {
        let mut e = entry(2);
        let spec = &mut e.deployment.spec;
        spec.replicas = Some(4);
        spec.paused = Some(true);
        e.deployment.metadata.generation = Some(2);
        assert_eq!(run_steps(&mut e, 2), vec![(2, 2, 2), (2, 2, 2)]);
    }
}
