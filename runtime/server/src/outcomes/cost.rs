//! What a run cost: the capacity its changes added (or gave back), read from the resource's
//! state as the trust core saw it before each change (the provider's answer, recorded with the
//! decision) and the change it allowed; and the capacity-minutes that added capacity held until
//! the run was judged (its signal cleared, or its window ran out).

use grace_engine::TimelineEntry;
use grace_model::resource::{Change, State};
use serde::{Deserialize, Serialize};

/// A run's cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Instances (desired capacity, replicas, containers) the run's changes added; negative
    /// when it gave capacity back.
    pub capacity_added: i64,
    /// Instance-minutes the changes added (or gave back) up to the judgement.
    pub capacity_minutes: f64,
}

/// The cost of the changes in `timeline` (a run's last attempt), held until `until` (ms).
/// Only changes that were allowed and succeeded count; a change recorded without the state it
/// was decided on (a replay of an earlier attempt's change) counts nothing.
pub fn of(timeline: &[TimelineEntry], until: u64) -> Cost {
    let mut cost = Cost::default();
    for entry in timeline.iter().filter(|e| e.is_effective_action()) {
        let Some(added) = entry.trust.as_ref().and_then(added_by) else {
            continue;
        };
        cost.capacity_added += added;
        let minutes = until.saturating_sub(entry.at) as f64 / 60_000.0;
        cost.capacity_minutes += added as f64 * minutes;
    }
    cost
}

/// The instances one decided change added, from its decision's details.
pub fn added_by(details: &serde_json::Value) -> Option<i64> {
    let state: State = serde_json::from_value(details.get("state")?.clone()).ok()?;
    let change: Change = serde_json::from_value(details.get("change")?.clone()).ok()?;
    match change {
        Change::Capacity { to } => Some(i64::from(to) - i64::from(state.capacity?)),
        Change::Start { instances } => Some(i64::from(instances)),
        Change::Stop { instances } => Some(-i64::from(instances)),
        Change::None | Change::Restart { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grace_ledger::Verdict;
    use serde_json::json;

    const MIN: u64 = 60_000;

    fn change(at: u64, trust: serde_json::Value, result: serde_json::Value) -> TimelineEntry {
        TimelineEntry {
            seq: 1,
            at,
            offset_ms: 0,
            interface: "scaling".into(),
            function: "set-desired-capacity".into(),
            args: json!({}),
            verdict: Verdict::Allowed,
            reason: "allowed".into(),
            trust: Some(trust),
            result,
            change: true,
        }
    }

    #[test]
    fn capacity_added_is_held_until_the_judgement() {
        let timeline = [
            change(
                0,
                json!({"state": {"capacity": 2, "healthy": 2}, "change": {"kind": "capacity", "to": 4}}),
                json!({"ok": {}}),
            ),
            change(
                10 * MIN,
                json!({"state": {"capacity": 4}, "change": {"kind": "capacity", "to": 5}}),
                json!({"ok": {}}),
            ),
        ];
        let cost = of(&timeline, 20 * MIN);
        assert_eq!(cost.capacity_added, 3);
        assert!(
            (cost.capacity_minutes - (2.0 * 20.0 + 10.0)).abs() < 1e-9,
            "{cost:?}"
        );
    }

    #[test]
    fn refused_failed_and_stateless_changes_cost_nothing_and_a_scale_in_gives_back() {
        let grow = json!({"state": {"capacity": 2}, "change": {"kind": "capacity", "to": 4}});
        let mut refused = change(0, grow.clone(), json!({"error": {"kind": "denied"}}));
        refused.verdict = Verdict::Denied;
        let failed = change(0, grow.clone(), json!({"error": {"kind": "unavailable"}}));
        let replayed = change(0, json!({"risk": {}}), json!({"ok": {}}));
        let shrink = change(
            0,
            json!({"state": {"capacity": 4}, "change": {"kind": "capacity", "to": 1}}),
            json!({"ok": {}}),
        );
        let cost = of(&[refused, failed, replayed, shrink], MIN);
        assert_eq!(cost.capacity_added, -3);
        assert!((cost.capacity_minutes + 3.0).abs() < 1e-9, "{cost:?}");
    }
}
