//! Flapping: opposite capacity changes of one resource in quick succession. A change that goes
//! the other way from the resource's previous change, less than `min_hold` after it, is a
//! **reversal**; `reversals` of them within `window` is flapping. A scale-in made after the
//! scale-out held for `min_hold` (capacity given back once the incident is over) is planned,
//! not a reversal.

use std::collections::{HashMap, VecDeque};

/// Resources whose recent changes are kept, at most; beyond, the one changed least recently
/// is forgotten.
pub const MAX_RESOURCES: usize = 10_000;
/// Changes kept per resource, at most.
const MAX_CHANGES: usize = 64;
/// The most reversals a rule may ask for: what [`MAX_CHANGES`] changes can hold.
pub const MAX_REVERSALS: u32 = MAX_CHANGES as u32 - 1;

/// One capacity change a run made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// When (run clock, ms).
    pub at: u64,
    /// Up (`true`) or down.
    pub up: bool,
    /// The playbook that made it.
    pub playbook: String,
    /// The run's triggering resource (what a pause is keyed by, with the playbook).
    pub about: String,
    /// The run.
    pub run: String,
}

/// The rule's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Reversals that make flapping (0: never).
    pub reversals: u32,
    /// Within how long (ms).
    pub window_ms: u64,
    /// A change reversing one at least this old (ms) is planned, not a reversal.
    pub min_hold_ms: u64,
}

/// Recent capacity changes per resource.
#[derive(Debug, Default)]
pub struct Flapping {
    resources: HashMap<String, VecDeque<Change>>,
}

impl Flapping {
    /// Adds a change of `resource`; when it makes the resource flap, the changes that did (the
    /// resource's changes within the window), and forgets them: one episode, one verdict.
    pub fn observe(&mut self, rule: Rule, resource: &str, change: Change) -> Option<Vec<Change>> {
        if rule.reversals == 0 {
            return None;
        }
        if self.resources.len() >= MAX_RESOURCES
            && !self.resources.contains_key(resource)
            && let Some(stale) = self
                .resources
                .iter()
                .min_by_key(|(_, c)| c.back().map_or(0, |c| c.at))
                .map(|(k, _)| k.clone())
        {
            self.resources.remove(&stale);
        }
        let changes = self.resources.entry(resource.to_owned()).or_default();
        // In time order: runs finish in any order.
        let place = changes.partition_point(|c| c.at <= change.at);
        changes.insert(place, change);
        let newest = changes.back().map_or(0, |c| c.at);
        while changes
            .front()
            .is_some_and(|c| c.at.saturating_add(rule.window_ms) < newest)
            || changes.len() > MAX_CHANGES
        {
            changes.pop_front();
        }
        // The changes at either end of a reversal: only their playbooks made the flapping.
        let mut involved = vec![false; changes.len()];
        let mut reversals = 0;
        for (i, (a, b)) in changes.iter().zip(changes.iter().skip(1)).enumerate() {
            if a.up != b.up && b.at.saturating_sub(a.at) < rule.min_hold_ms {
                reversals += 1;
                involved[i] = true;
                involved[i + 1] = true;
            }
        }
        if reversals < rule.reversals as usize {
            return None;
        }
        let flapped = changes
            .drain(..)
            .zip(involved)
            .filter_map(|(c, involved)| involved.then_some(c))
            .collect();
        self.resources.remove(resource);
        Some(flapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const RULE: Rule = Rule {
        reversals: 3,
        window_ms: 30 * MIN,
        min_hold_ms: 10 * MIN,
    };

    fn change(at_min: u64, up: bool) -> Change {
        Change {
            at: at_min * MIN,
            up,
            playbook: if up { "scale-up" } else { "scale-down" }.into(),
            about: "web".into(),
            run: format!("r{at_min}"),
        }
    }

    #[test]
    fn up_down_up_down_within_the_window_is_flapping_at_the_third_reversal() {
        let mut f = Flapping::default();
        for (at, up) in [(0, true), (3, false), (6, true)] {
            assert_eq!(f.observe(RULE, "group/api-asg", change(at, up)), None);
        }
        let flapped = f.observe(RULE, "group/api-asg", change(9, false)).unwrap();
        assert_eq!(flapped.len(), 4);
        assert_eq!(
            f.observe(RULE, "group/api-asg", change(12, true)),
            None,
            "one episode, one verdict"
        );
    }

    #[test]
    fn a_playbook_whose_change_reversed_nothing_is_not_among_the_flapping() {
        let mut f = Flapping::default();
        let mut steady = change(0, true);
        steady.playbook = "steady".into();
        assert_eq!(f.observe(RULE, "group/api-asg", steady), None);
        // Held for 15 minutes, then the naive pair flaps.
        for (at, up) in [(15, false), (17, true), (19, false)] {
            assert_eq!(f.observe(RULE, "group/api-asg", change(at, up)), None);
        }
        let flapped = f.observe(RULE, "group/api-asg", change(21, true)).unwrap();
        assert!(
            flapped.iter().all(|c| c.playbook != "steady"),
            "{flapped:?}"
        );
        assert_eq!(flapped.len(), 4);
    }

    #[test]
    fn a_scale_in_after_the_minimum_hold_is_planned_not_flapping() {
        let mut f = Flapping::default();
        for (at, up) in [(0, true), (10, false), (20, true), (30, false), (40, true)] {
            assert_eq!(
                f.observe(RULE, "group/api-asg", change(at, up)),
                None,
                "{at}"
            );
        }
    }

    #[test]
    fn changes_the_same_way_or_on_other_resources_or_out_of_the_window_are_not_reversals() {
        let mut f = Flapping::default();
        for at in 0..10 {
            assert_eq!(f.observe(RULE, "group/a", change(at, true)), None);
        }
        for (at, up) in [(0, true), (1, false)] {
            assert_eq!(f.observe(RULE, "group/b", change(at, up)), None);
            assert_eq!(f.observe(RULE, "group/c", change(at + 2, !up)), None);
        }
        let mut f = Flapping::default();
        for (at, up) in [(0, true), (5, false), (40, true), (45, false), (80, true)] {
            assert_eq!(f.observe(RULE, "group/a", change(at, up)), None, "{at}");
        }
    }

    #[test]
    fn a_change_reported_late_takes_its_place_in_time() {
        let mut f = Flapping::default();
        for (at, up) in [(0, true), (6, true), (3, false)] {
            assert_eq!(f.observe(RULE, "group/a", change(at, up)), None);
        }
        // In time: up, down, up; then down makes the third reversal.
        assert!(f.observe(RULE, "group/a", change(8, false)).is_some());
    }

    #[test]
    fn no_rule_no_verdict() {
        let mut f = Flapping::default();
        let off = Rule {
            reversals: 0,
            ..RULE
        };
        for at in 0..20 {
            assert_eq!(f.observe(off, "group/a", change(at, at % 2 == 0)), None);
        }
    }
}
