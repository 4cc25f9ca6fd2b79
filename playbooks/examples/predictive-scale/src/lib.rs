//! Playbook `predictive-scale`: when a service's p95 latency is forecast to cross its threshold
//! within ten minutes (the server's forecast, carried in the metric event), add capacity to the
//! Auto Scaling group that serves it now, before the breach.
//!
//! 1. Read the p95 and the forecast the event carries: the forecast's highest point within ten
//!    minutes and the prediction interval's upper end there.
//! 2. Already above the threshold, or no longer forecast to cross it: nothing to do (a
//!    threshold playbook handles breaches; the forecast may have changed since the trigger).
//! 3. Otherwise raise the group's desired capacity by `step`, never above its `max_size`.

use grace_sdk::prelude::*;
use grace_sdk::{config, scaling};

struct PredictiveScale;

impl Playbook for PredictiveScale {
    fn run(event: TriggerEvent) -> Result<Outcome> {
        let threshold: f64 = config::get_or("threshold_ms", 500.0)?;
        let step: u32 = config::get_or("step", 2)?;
        let group_name: String = config::require("group")?;

        let now = event.payload_f64("value")?;
        let payload = event.payload_json()?;
        let ten = &payload["forecast"]["10m"];
        let (Some(peak), high) = (ten["max"].as_f64(), ten["high"].as_f64()) else {
            return Err(Error::msg(
                "the event carries no 10-minute forecast (`forecast[\"10m\"].max`): \
                 is the metric in [anomaly.forecast] with the horizon \"10m\"?",
            ));
        };
        let high_text = high.map_or_else(|| "unknown".to_owned(), |h| format!("{h:.0} ms"));
        if now > threshold || peak <= threshold {
            return Ok(Outcome::unchanged(format!(
                "p95 {now:.0} ms, forecast peak {peak:.0} ms within 10 minutes (interval up to \
                 {high_text}), threshold {threshold:.0} ms: no breach ahead to prevent"
            ))
            .detail("latency_ms", now)
            .detail("forecast_peak_ms", peak));
        }

        let group = scaling::describe_group(&group_name)?;
        let from = group.desired_capacity;
        let to = from.saturating_add(step).min(group.max_size);
        if to <= from {
            return Ok(Outcome::unchanged(format!(
                "p95 forecast to reach {peak:.0} ms within 10 minutes but {group_name} is already \
                 at max_size ({})",
                group.max_size
            ))
            .detail("group", &group_name)
            .detail("desired_capacity", from));
        }
        grace_sdk::info!(
            "p95 {now:.0} ms, forecast {peak:.0} ms within 10 minutes (> {threshold:.0} ms): \
             scaling {group_name} from {from} to {to} ahead of the breach"
        );
        scaling::set_desired_capacity(&group_name, to)?;
        Ok(Outcome::changed(format!(
            "scaled {group_name} from {from} to {to} before the forecast breach: p95 {now:.0} ms \
             now, {peak:.0} ms forecast within 10 minutes (interval up to {high_text}), \
             threshold {threshold:.0} ms"
        ))
        .detail("group", &group_name)
        .detail("from", from)
        .detail("to", to)
        .detail("latency_ms", format!("{now:.0}"))
        .detail("forecast_peak_ms", format!("{peak:.0}")))
    }
}

grace_sdk::export_playbook!(PredictiveScale);
