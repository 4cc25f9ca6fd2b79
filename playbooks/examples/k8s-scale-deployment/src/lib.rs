//! Playbook `k8s-scale-deployment`: gives a saturated Kubernetes deployment more replicas and
//! waits for the rollout.
//!
//! The event's resource names the deployment as `namespace/name`. The payload may ask for an
//! absolute `replicas`; otherwise the playbook adds `step`. Either way the count is kept within
//! `1..=max_replicas`.

use std::time::Duration;

use grace_sdk::prelude::*;
use grace_sdk::serde_json::Value;
use grace_sdk::{config, kubernetes};

struct K8sScaleDeployment;

impl Playbook for K8sScaleDeployment {
    fn run(event: TriggerEvent) -> Result<Outcome> {
        let Some((namespace, name)) = event.resource.split_once('/') else {
            return Err(Error::msg(format_args!(
                "event resource `{}` is not `namespace/name`",
                event.resource
            )));
        };
        let step: u32 = config::get_or("step", 1)?;
        let max_replicas: u32 = config::get_or("max_replicas", 6)?;
        let timeout = Duration::from_secs(config::get_or("rollout_timeout_seconds", 300)?);

        let current = kubernetes::get_deployment(namespace, name)?;
        let from = current.replicas;
        let wanted = match event.payload_json()?.get("replicas") {
            None | Some(Value::Null) => from.saturating_add(step),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    Error::msg(format_args!(
                        "event payload `replicas` = `{v}` is not a count"
                    ))
                })?,
        };
        let to = wanted.clamp(1, max_replicas.max(1));
        if to == from {
            return Ok(Outcome::unchanged(format!(
                "{namespace}/{name} already has {from} replicas (asked for {wanted}, \
                 max_replicas {max_replicas})"
            ))
            .detail("deployment", &event.resource)
            .detail("replicas", from));
        }

        grace_sdk::info!("scaling {namespace}/{name} from {from} to {to} replicas");
        kubernetes::scale_deployment(namespace, name, to)?;
        let rolled = kubernetes::wait_for_rollout(namespace, name, timeout)?;
        Ok(Outcome::changed(format!(
            "scaled {namespace}/{name} from {from} to {to} replicas; {}/{} ready",
            rolled.ready_replicas, rolled.replicas
        ))
        .detail("deployment", &event.resource)
        .detail("from", from)
        .detail("to", to)
        .detail("ready_replicas", rolled.ready_replicas)
        .detail("available_replicas", rolled.available_replicas))
    }
}

grace_sdk::export_playbook!(K8sScaleDeployment);
