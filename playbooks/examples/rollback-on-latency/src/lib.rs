//! Playbook `rollback-on-latency`: when a deployment's latency regresses right after it was
//! deployed, roll it back to the revision before, tell the team, and wait for the rollout.
//!
//! The event's resource names the deployment as `namespace/name`. The playbook reads the
//! deployment's history (`kubectl rollout history`): the current revision is the newest, and
//! its time is when the deployment last got a new pod template. If the regression began
//! within `window_minutes` of that, the deployment is the suspect, and the playbook rolls it
//! back to the previous revision (`kubectl rollout undo`). Otherwise it changes nothing and
//! says why: a regression long after a deployment is not the deployment's, and a rollback
//! would only add a change to an incident.
//!
//! A rollback reuses the old revision's template and time, so once rolled back the current
//! revision is older than the one before it: the playbook never rolls "back" to what it rolled
//! back from. A revision deployed after the regression began (a fix) is left alone too.

use std::time::Duration;

use grace_sdk::prelude::*;
use grace_sdk::{config, kubernetes, notify};

/// Posts `text` to the configured channel; a message that cannot be sent does not stop the
/// rollback (the run records why).
fn tell(channel: &str, text: &str) {
    if let Err(e) = notify::send(channel, text) {
        grace_sdk::warn!("could not tell {channel}: {e}");
    }
}

struct RollbackOnLatency;

impl Playbook for RollbackOnLatency {
    fn run(event: TriggerEvent) -> Result<Outcome> {
        let Some((namespace, name)) = event.resource.split_once('/') else {
            return Err(Error::msg(format_args!(
                "event resource `{}` is not `namespace/name`",
                event.resource
            )));
        };
        let window_minutes: u64 = config::get_or("window_minutes", 30)?;
        let timeout = Duration::from_secs(config::get_or("rollout_timeout_seconds", 600)?);
        let channel: String = config::get_or("channel", "slack:#ops".to_owned())?;
        let p95 = event.payload_f64("value")?;

        let history = kubernetes::rollout_history(namespace, name)?;
        let Some(current) = history.first() else {
            return Ok(Outcome::unchanged(format!(
                "{namespace}/{name} has no revision history: nothing to roll back to"
            )));
        };
        let Some(previous) = history.get(1) else {
            return Ok(Outcome::unchanged(format!(
                "{namespace}/{name} has one revision ({}): nothing to roll back to",
                current.revision
            )));
        };
        // Deployed after the regression began (a fix people rolled out): theirs to judge.
        if current.created_millis > event.timestamp {
            return Ok(Outcome::unchanged(format!(
                "{namespace}/{name} revision {} was deployed after p95 reached {p95:.0} ms: \
                 not rolled back",
                current.revision
            ))
            .detail("revision", current.revision));
        }
        // The current revision is an older template brought back (a rollback keeps its
        // revision's time): going "back" now would deploy what was rolled back.
        if current.created_millis < previous.created_millis {
            return Ok(Outcome::unchanged(format!(
                "{namespace}/{name} revision {} is itself a rollback to an older template: \
                 not rolled back",
                current.revision
            ))
            .detail("revision", current.revision));
        }
        // How long before the regression the current revision was deployed.
        let since_ms = event.timestamp - current.created_millis;
        let window_ms = window_minutes.saturating_mul(60_000);
        let minutes = since_ms / 60_000;
        if since_ms > window_ms {
            return Ok(Outcome::unchanged(format!(
                "{namespace}/{name} was last deployed {minutes} min before p95 reached \
                 {p95:.0} ms, more than {window_minutes} min: not rolled back"
            ))
            .detail("revision", current.revision));
        }

        let images = |r: &kubernetes::Revision| r.images.join(", ");
        tell(
            &channel,
            &format!(
                "p95 of {namespace}/{name} reached {p95:.0} ms {minutes} min after revision {} \
                 ({}) was deployed: rolling back to revision {} ({}).",
                current.revision,
                images(current),
                previous.revision,
                images(previous)
            ),
        );
        grace_sdk::info!(
            "rolling {namespace}/{name} back from revision {} to {}",
            current.revision,
            previous.revision
        );
        kubernetes::rollout_undo(namespace, name, previous.revision)?;
        let rolled = kubernetes::wait_for_rollout(namespace, name, timeout)?;
        tell(
            &channel,
            &format!(
                "{namespace}/{name} is back on revision {} ({}): {}/{} replicas ready.",
                previous.revision,
                images(previous),
                rolled.ready_replicas,
                rolled.replicas
            ),
        );
        Ok(Outcome::changed(format!(
            "rolled {namespace}/{name} back from revision {} to {} ({}), deployed {minutes} min \
             before p95 reached {p95:.0} ms",
            current.revision,
            previous.revision,
            images(previous)
        ))
        .detail("deployment", &event.resource)
        .detail("from_revision", current.revision)
        .detail("to_revision", previous.revision)
        .detail("ready_replicas", rolled.ready_replicas))
    }
}

grace_sdk::export_playbook!(RollbackOnLatency);
