//! What says a run's signal cleared: the [`Watch`] a run is given when its trigger fires, made
//! from the triggering event and the trigger's condition, kept with the run (so a restart
//! watches for the same thing), and [`Watch::clears`], asked of every later event.
//!
//! | the triggering event | the signal cleared at the first later event that is |
//! |---|---|
//! | `anomaly` (a detector's alarm) | `anomaly.cleared` of the same series (source, resource, `sample_event_type`, `metric`, `labels`) |
//! | `alert.firing` | `alert.resolved` of the same alert (source, resource, `fingerprint`, else `labels`) |
//! | any other, with a condition | of the same type and series (source, resource, `metric`, `labels`), with the condition false |
//! | any other, without a condition | nothing: the run cannot be judged, and says so |
//!
//! Only events from the same actor (the source's or collector's name) count. A triggering
//! event of the same series after a clearing ([`Watch::breaches`]) says the clearing did not
//! last.

use grace_model::TriggerEvent;
use grace_model::condition::Condition;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::anomaly::{ALARM_EVENT_TYPE, CLEARED_EVENT_TYPE};

/// The payload fields that name an anomaly detector's series on its alarm and clearing events.
const ANOMALY_SERIES: &[&str] = &["sample_event_type", "metric", "labels"];
/// The payload fields that name a metric's series on a sample.
const SAMPLE_SERIES: &[&str] = &["metric", "labels"];

/// What a run watches for to know its signal cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    /// The type of the events that can say so.
    pub event_type: String,
    /// The type of the events that say the signal is back (the triggering event's): a clearing
    /// followed by one of these did not last.
    #[serde(default)]
    pub fires_on: String,
    /// Their source.
    pub source: String,
    /// Who sent them (the source's or collector's name): the same as the triggering event's
    /// (any, for a watch stored without one).
    #[serde(default)]
    pub actor: String,
    /// Their resource.
    pub resource: String,
    /// Payload fields they must carry with these same values: the series (or the alert) of
    /// the triggering event. A field the triggering event lacked must be absent.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub series: Map<String, Value>,
    /// The trigger's condition: the signal cleared at the first such event it is false for.
    /// Absent, any such event says so (it is the signal's own clearing event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
    /// The triggering event's time (ms): only later events count.
    pub since: u64,
    /// By when (event time, ms) the signal must clear for the run to count as having cleared it.
    pub until: u64,
}

/// Why a run's signal cannot be watched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the trigger has no condition and `{event_type}` events have no clearing event, so nothing says when the signal is over"
)]
pub struct Unwatchable {
    /// The triggering event's type.
    pub event_type: String,
}

impl Watch {
    /// The watch of a run that `event` triggered through a trigger with `condition`, giving the
    /// signal `window_ms` from the event to clear.
    pub fn new(
        event: &TriggerEvent,
        condition: Option<&Condition>,
        window_ms: u64,
    ) -> Result<Watch, Unwatchable> {
        let (event_type, fields, unless): (&str, &[&str], _) = match event.event_type.as_str() {
            ALARM_EVENT_TYPE => (CLEARED_EVENT_TYPE, ANOMALY_SERIES, None),
            "alert.firing" if event.payload.get("fingerprint").is_some_and(is_named) => {
                ("alert.resolved", &["fingerprint"], None)
            }
            "alert.firing" => ("alert.resolved", &["labels"], None),
            other => match condition {
                Some(c) => (other, SAMPLE_SERIES, Some(c.as_str().to_owned())),
                None => {
                    return Err(Unwatchable {
                        event_type: other.to_owned(),
                    });
                }
            },
        };
        let series = fields
            .iter()
            .map(|f| {
                let v = event.payload.get(*f).cloned().unwrap_or(Value::Null);
                ((*f).to_owned(), v)
            })
            .collect();
        Ok(Watch {
            event_type: event_type.to_owned(),
            fires_on: event.event_type.clone(),
            source: event.source.clone(),
            actor: event.actor.clone(),
            resource: event.resource.clone(),
            series,
            unless,
            since: event.timestamp,
            until: event.timestamp.saturating_add(window_ms),
        })
    }

    /// The watch's condition, parsed again (it was parsed when the playbook was uploaded):
    /// `Ok(None)` for a watch without one, `Err` when it no longer parses (then nothing can
    /// say the signal cleared: every sample of the series would).
    pub fn condition(&self) -> Result<Option<Condition>, String> {
        self.unless
            .as_deref()
            .map(|c| Condition::parse(c).map_err(|e| format!("`{c}`: {}", e.message)))
            .transpose()
    }

    /// Whether `event` is of the watched series (whatever it says).
    fn of_series(&self, event: &TriggerEvent) -> bool {
        event.resource == self.resource
            && event.source == self.source
            && (self.actor.is_empty() || event.actor == self.actor)
            && event.timestamp > self.since
            && self
                .series
                .iter()
                .all(|(k, v)| event.payload.get(k).unwrap_or(&Value::Null) == v)
    }

    /// Whether `event` says the signal is back after clearing: a triggering event of the same
    /// series (with the condition true, for a watch with one).
    pub fn breaches(
        &self,
        event: &TriggerEvent,
        graph: Option<&Value>,
        condition: Option<&Condition>,
    ) -> bool {
        event.event_type == self.fires_on
            && self.of_series(event)
            && condition.is_none_or(|c| c.eval_with(event, graph))
    }

    /// Whether `event` (whose resource the health graph described as `graph`) says the signal
    /// cleared; `condition` is [`Self::condition`].
    pub fn clears(
        &self,
        event: &TriggerEvent,
        graph: Option<&Value>,
        condition: Option<&Condition>,
    ) -> bool {
        event.event_type == self.event_type
            && self.of_series(event)
            && condition.is_none_or(|c| !c.eval_with(event, graph))
    }
}

fn is_named(v: &Value) -> bool {
    v.as_str().is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: u64 = 1_700_000_000_000;
    const WINDOW: u64 = 15 * 60_000;

    fn event(kind: &str, at: u64, payload: Value) -> TriggerEvent {
        TriggerEvent {
            event_type: kind.into(),
            source: "prometheus".into(),
            actor: "test".into(),
            resource: "web".into(),
            payload,
            timestamp: at,
        }
    }

    fn cond(text: &str) -> Condition {
        Condition::parse(text).unwrap()
    }

    #[test]
    fn a_metric_signal_clears_at_the_first_later_sample_of_its_series_back_within_the_bound() {
        let c = cond("value > 500");
        let labels = json!({"le": "0.95"});
        let fired = event(
            "metrics.latency",
            T0,
            json!({"metric": "p95", "labels": labels, "value": 700}),
        );
        let w = Watch::new(&fired, Some(&c), WINDOW).unwrap();
        assert_eq!(w.until, T0 + WINDOW);
        let c = w.condition().unwrap();
        let clears = |e: &TriggerEvent| w.clears(e, None, c.as_ref());
        let sample = |at, metric: &str, labels: &Value, value| {
            event(
                "metrics.latency",
                at,
                json!({"metric": metric, "labels": labels, "value": value}),
            )
        };
        assert!(!clears(&sample(T0 + 1, "p95", &labels, 650)), "still high");
        assert!(
            !clears(&sample(T0 + 2, "p50", &labels, 100)),
            "another series"
        );
        assert!(
            !clears(&sample(T0 + 3, "p95", &json!({"le": "0.99"}), 100)),
            "other labels"
        );
        assert!(!clears(&sample(T0, "p95", &labels, 100)), "not later");
        assert!(clears(&sample(T0 + 4, "p95", &labels, 400)));
    }

    #[test]
    fn an_anomaly_clears_at_its_series_clearing_event_and_an_alert_at_its_resolution() {
        let alarm = event(
            "anomaly",
            T0,
            json!({"sample_event_type": "metrics.latency", "metric": "p95", "anomaly_score": 0.9}),
        );
        let w = Watch::new(&alarm, Some(&cond("anomaly_score > 0.8")), WINDOW).unwrap();
        assert_eq!(w.event_type, "anomaly.cleared");
        assert!(
            w.unless.is_none(),
            "the clearing event says it, whatever its score"
        );
        let cleared = event(
            "anomaly.cleared",
            T0 + 60_000,
            json!({"sample_event_type": "metrics.latency", "metric": "p95", "value": 3}),
        );
        assert!(w.clears(&cleared, None, None));
        let other = event(
            "anomaly.cleared",
            T0 + 60_000,
            json!({"sample_event_type": "metrics.errors", "metric": "p95"}),
        );
        assert!(!w.clears(&other, None, None));

        let firing = event(
            "alert.firing",
            T0,
            json!({"fingerprint": "abc", "labels": {"alertname": "High"}}),
        );
        let w = Watch::new(&firing, None, WINDOW).unwrap();
        let resolved = |fp: &str| {
            event(
                "alert.resolved",
                T0 + 1,
                json!({"fingerprint": fp, "labels": {"alertname": "High", "x": "changed"}}),
            )
        };
        assert!(w.clears(&resolved("abc"), None, None));
        assert!(!w.clears(&resolved("def"), None, None));
    }

    #[test]
    fn a_trigger_without_a_condition_on_an_event_without_a_clearing_event_cannot_be_watched() {
        let deploy = event("deploy.finished", T0, json!({}));
        let e = Watch::new(&deploy, None, WINDOW).unwrap_err();
        assert!(e.to_string().contains("`deploy.finished`"), "{e}");
    }

    #[test]
    fn a_watch_reads_back_as_it_was_stored() {
        let fired = event("metrics.latency", T0, json!({"value": 700}));
        let w = Watch::new(&fired, Some(&cond("value > 500")), WINDOW).unwrap();
        let back: Watch = serde_json::from_value(serde_json::to_value(&w).unwrap()).unwrap();
        assert_eq!(back, w);
        assert_eq!(back.series.get("metric"), Some(&Value::Null));
    }
}
