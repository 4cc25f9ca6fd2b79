//! Playbook `safe-restart`: restarts an unhealthy Kubernetes deployment, unless services that
//! depend on it are already unhealthy.
//!
//! A restart takes a service's pods down one by one; its callers ride it out on the pods still
//! up. When those callers are already failing, the restart takes away what they have left, and
//! a human should look first. So the playbook asks the health graph for the deployment's direct
//! dependents (`graph.dependents`, depth 1) and refuses, naming them, when one is unhealthy;
//! otherwise it restarts the deployment and waits for the rollout.
//!
//! The event's resource names the deployment as `namespace/name`; its graph node is
//! `service:<namespace>/<name>`.

use std::time::Duration;

use grace_sdk::graph::{self, Health};
use grace_sdk::prelude::*;
use grace_sdk::{config, kubernetes};

struct SafeRestart;

impl Playbook for SafeRestart {
    fn run(event: TriggerEvent) -> Result<Outcome> {
        let Some((namespace, name)) = event.resource.split_once('/') else {
            return Err(Error::msg(format_args!(
                "event resource `{}` is not `namespace/name`",
                event.resource
            )));
        };
        let timeout = Duration::from_secs(config::get_or("rollout_timeout_seconds", 300)?);
        let node = graph::service_id(namespace, name);
        let dependents = graph::dependents(&node, 1)?;
        let unhealthy: Vec<&str> = dependents
            .iter()
            .filter(|d| d.health == Health::Unhealthy)
            .map(|d| d.id.as_str())
            .collect();
        if !unhealthy.is_empty() {
            return Ok(Outcome::unchanged(format!(
                "refused to restart {namespace}/{name}: its dependents {} are already unhealthy",
                unhealthy.join(", ")
            ))
            .detail("deployment", &event.resource)
            .detail("unhealthy_dependents", unhealthy.join(",")));
        }

        grace_sdk::info!(
            "restarting {namespace}/{name}; its {} dependents are not unhealthy",
            dependents.len()
        );
        kubernetes::rollout_restart(namespace, name)?;
        let rolled = kubernetes::wait_for_rollout(namespace, name, timeout)?;
        Ok(Outcome::changed(format!(
            "restarted {namespace}/{name}; {}/{} ready",
            rolled.ready_replicas, rolled.replicas
        ))
        .detail("deployment", &event.resource)
        .detail("dependents", dependents.len())
        .detail("ready_replicas", rolled.ready_replicas))
    }
}

grace_sdk::export_playbook!(SafeRestart);
