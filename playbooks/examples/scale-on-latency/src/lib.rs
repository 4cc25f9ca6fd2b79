//! Playbook `scale-on-latency`: when a service's p95 latency is over its threshold, add
//! capacity to the Auto Scaling group that serves it and wait until the new instances serve.
//!
//! It starts from a metric event (`metrics.latency`, its p95 in `value`) or from an Alertmanager
//! alert (`alert.firing`, its p95 in the annotation `value` when the rule sets one).
//!
//! 1. Take the p95 the event reports, if it reports one, and confirm it with a fresh query: the
//!    event may be stale by the time the playbook runs, and an alert may carry no value at all.
//!    The query's answer decides; when it has none, the event's value does; when neither has
//!    one, the run fails saying so.
//! 2. At or below the threshold: nothing to do.
//! 3. Otherwise raise the group's desired capacity by `step` (never above its `max_size`), wait
//!    until the capacity is in service, and measure the latency again for the report.

use std::time::Duration;

use grace_sdk::alert::{Alert, VALUE_ANNOTATION};
use grace_sdk::prelude::*;
use grace_sdk::{config, metrics, scaling};

/// The query the playbook confirms the latency with; `{resource}` is the event's resource.
const DEFAULT_QUERY: &str = r#"service_latency_p95_ms{service="{resource}"}"#;

struct ScaleOnLatency;

impl Playbook for ScaleOnLatency {
    fn run(event: TriggerEvent) -> Result<Outcome> {
        let threshold: f64 = config::get_or("threshold_ms", 500.0)?;
        let step: u32 = config::get_or("step", 2)?;
        let group_name: String = config::require("group")?;
        let wait = Duration::from_secs(config::get_or("wait_seconds", 300)?);
        let query = config::get_or("latency_query", DEFAULT_QUERY.to_owned())?
            .replace("{resource}", &event.resource);

        let reported = reported_latency(&event)?;
        let before = match (metrics::query_value(&query)?, reported) {
            (Some(current), _) => current,
            (None, Some(reported)) => {
                grace_sdk::warn!("`{query}` returned no value; using the event's {reported:.0} ms");
                reported
            }
            (None, None) => {
                return Err(Error::msg(format_args!(
                    "no p95 to act on: the {} event carries none and `{query}` returned no value",
                    event.event_type
                )));
            }
        };
        let reported_text =
            reported.map_or_else(|| "no value".to_owned(), |ms| format!("{ms:.0} ms"));
        if before <= threshold {
            return Ok(Outcome::unchanged(format!(
                "p95 is {before:.0} ms, within the threshold of {threshold:.0} ms \
                 (the event reported {reported_text}); nothing to do"
            ))
            .detail("latency_before_ms", before)
            .detail("threshold_ms", threshold));
        }

        let group = scaling::describe_group(&group_name)?;
        let from = group.desired_capacity;
        let to = from.saturating_add(step).min(group.max_size);
        if to <= from {
            return Ok(Outcome::unchanged(format!(
                "p95 is {before:.0} ms (threshold {threshold:.0} ms) but {group_name} is \
                 already at max_size ({})",
                group.max_size
            ))
            .detail("group", &group_name)
            .detail("desired_capacity", from)
            .detail("latency_before_ms", before));
        }

        grace_sdk::info!(
            "p95 {before:.0} ms > {threshold:.0} ms: scaling {group_name} from {from} to {to}"
        );
        scaling::set_desired_capacity(&group_name, to)?;
        let (in_service, waited) = match scaling::wait_in_service(&group_name, wait) {
            Ok(group) => (group.in_service(), "in service"),
            // The change is made either way: report it rather than fail the run.
            Err(e @ Error::TimedOut(_)) => {
                grace_sdk::warn!("{e}");
                let group = scaling::describe_group(&group_name)?;
                (group.in_service(), "not yet in service")
            }
            Err(e) => return Err(e),
        };
        let after = metrics::query_value(&query)?;
        let after_text = after.map_or_else(|| "unknown".to_owned(), |ms| format!("{ms:.0} ms"));

        let mut outcome = Outcome::changed(format!(
            "scaled {group_name} from {from} to {to} ({in_service} {waited}); \
             p95 {before:.0} ms -> {after_text} (threshold {threshold:.0} ms)"
        ))
        .detail("group", &group_name)
        .detail("from", from)
        .detail("to", to)
        .detail("latency_before_ms", format!("{before:.0}"));
        if let Some(after) = after {
            outcome = outcome.detail("latency_after_ms", format!("{after:.0}"));
        }
        Ok(outcome.detail("in_service", in_service))
    }
}

/// The p95 the event reports: an alert's `value` annotation (`None` when its rule sets none),
/// or a metric event's `value` (required).
fn reported_latency(event: &TriggerEvent) -> Result<Option<f64>> {
    if Alert::is_alert(event) {
        let alert = event.alert()?;
        let value = alert.value()?;
        if value.is_none() {
            grace_sdk::info!(
                "alert `{}` has no `{VALUE_ANNOTATION}` annotation: measuring the p95",
                alert.alertname.as_deref().unwrap_or("(unnamed)")
            );
        }
        Ok(value)
    } else {
        event.payload_f64("value").map(Some)
    }
}

grace_sdk::export_playbook!(ScaleOnLatency);
