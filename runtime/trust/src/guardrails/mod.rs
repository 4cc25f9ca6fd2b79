//! Guardrails: declarative invariants per resource, checked before a change runs by applying
//! the change to a copy of the resource's current state and checking every invariant of every
//! guardrail that matches the resource on the result.
//!
//! ```toml
//! [[guardrail]]
//! name = "prod web"
//! kind = "group"                   # group | container | service | deployment | channel
//!                                  # (absent: any kind but channel: messages are not changes)
//! match = "web-prod-*"             # glob on the resource id (`*` matches anything)
//! environment = "prod"             # and/or labels = { app = "web" }
//! min_healthy = 2                  # never fewer healthy instances after the change
//! max_changes_per_hour = 6         # changes of one resource in any sliding hour
//! max_capacity = 20                # capacity never above this budget
//! freeze = ["Fri 16:00-Mon 08:00", "2025-12-24T00:00:00Z/2025-12-27T00:00:00Z"]
//! ```
//!
//! A guardrail never blocks a change that makes its invariant no worse: scaling out while
//! below `min_healthy`, or scaling in while above `max_capacity`, is remediation. When the
//! state needed to check an invariant is unknown, the change is denied (fail closed).

mod freeze;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use freeze::FreezeWindow;

use crate::action::ResourceKind;
use crate::error::TrustError;
use crate::request::{Change, Request, Resource, State};

/// One guardrail: which resources it covers and the invariants it keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrail {
    /// A name for messages (`#<n>`, its position from 1, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The kind of resource it covers (every kind when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ResourceKind>,
    /// A glob on the resource id, `*` matching any text (every id when absent).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// The environment it covers (compared case-insensitively; every one when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Labels the resource must all carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Never fewer healthy instances than this after a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_healthy: Option<u32>,
    /// At most this many changes of one resource in any sliding hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_changes_per_hour: Option<u32>,
    /// Capacity never above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_capacity: Option<u32>,
    /// When no change may run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<FreezeWindow>,
}

impl Guardrail {
    /// Whether it covers `resource`.
    pub fn covers(&self, resource: &Resource) -> bool {
        // A guardrail without a kind guards what runs (a freeze stops changes, not messages
        // about them); channels are covered only by a guardrail that names their kind.
        let kind = match self.kind {
            Some(k) => k == resource.kind,
            None => resource.kind.has_state(),
        };
        kind && self
            .matches
            .as_deref()
            .is_none_or(|g| crate::glob::matches(g, &resource.id))
            && self.environment.as_deref().is_none_or(|e| {
                resource
                    .environment
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(e))
            })
            && self
                .labels
                .iter()
                .all(|(k, v)| resource.labels.get(k) == Some(v))
    }
}

/// Which invariant a change would break, with the numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "invariant", rename_all = "snake_case")]
pub enum Invariant {
    /// Fewer healthy instances than `min` after the change (`None`: unknown).
    MinHealthy {
        /// The minimum.
        min: u32,
        /// Healthy now.
        before: Option<u32>,
        /// Healthy after the change.
        after: Option<u32>,
    },
    /// More changes of the resource in the last hour than `max`.
    MaxChangesPerHour {
        /// The maximum.
        max: u32,
        /// Changes recorded in the hour before the decision.
        count: u32,
    },
    /// Capacity above `max` after the change.
    MaxCapacity {
        /// The budget.
        max: u32,
        /// Capacity now.
        before: Option<u32>,
        /// Capacity after the change.
        after: Option<u32>,
    },
    /// Inside a freeze window.
    Freeze {
        /// The window, as configured.
        window: String,
    },
}

/// A change a guardrail refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The guardrail's name.
    pub guardrail: String,
    /// The invariant and its numbers.
    #[serde(flatten)]
    pub invariant: Invariant,
    /// One sentence naming the guardrail, the invariant and the numbers.
    pub message: String,
}

/// The guardrails in force, checked for every change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// The guardrails, in order; the first violation found is reported.
    #[serde(default, rename = "guardrail")]
    pub list: Vec<Guardrail>,
}

/// The state before and after a proposed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Simulation {
    /// Now.
    pub before: State,
    /// After the change (the worst case while it is under way: a restarting instance is not
    /// healthy, new instances are not healthy yet, removed ones may have been the healthy ones).
    pub after: State,
}

/// Applies `change` to a copy of `state`.
pub fn simulate(state: State, change: Change) -> Simulation {
    let after = match change {
        Change::None => state,
        Change::Capacity { to } => State {
            capacity: Some(to),
            healthy: state.healthy.map(|h| h.min(to)),
        },
        Change::Restart { instances } => State {
            capacity: state.capacity,
            healthy: state.healthy.map(|h| h.saturating_sub(instances)),
        },
        Change::Stop { instances } => State {
            capacity: state.capacity.map(|c| c.saturating_sub(instances)),
            healthy: state.healthy.map(|h| h.saturating_sub(instances)),
        },
        Change::Start { instances } => State {
            capacity: state.capacity.map(|c| c.saturating_add(instances)),
            healthy: state.healthy,
        },
    };
    Simulation {
        before: state,
        after,
    }
}

/// Whether `change` can lower the healthy count of a resource whose capacity is `capacity`.
fn may_lower_healthy(change: Change, capacity: Option<u32>) -> bool {
    match change {
        Change::Capacity { to } => capacity.is_none_or(|c| to < c),
        Change::Restart { instances } | Change::Stop { instances } => instances > 0,
        Change::Start { .. } | Change::None => false,
    }
}

impl Guardrails {
    /// Guardrails from a list, checked: names unique, globs not empty, limits sensible.
    pub fn new(list: Vec<Guardrail>) -> Result<Self, TrustError> {
        let g = Guardrails { list };
        g.check()?;
        Ok(g)
    }

    /// Guardrails from TOML: `[[guardrail]]` tables (see the module documentation).
    pub fn from_toml(text: &str) -> Result<Self, TrustError> {
        let g: Guardrails =
            toml::from_str(text).map_err(|e| TrustError::Config(format!("guardrails: {e}")))?;
        g.check()?;
        Ok(g)
    }

    /// Checks the configuration (called by [`Guardrails::new`] and [`Guardrails::from_toml`];
    /// call it after deserializing `Guardrails` some other way).
    pub fn check(&self) -> Result<(), TrustError> {
        let mut names = std::collections::HashSet::new();
        for (i, g) in self.list.iter().enumerate() {
            let name = self.name_of(i);
            if !names.insert(name.clone()) {
                return Err(TrustError::Config(format!(
                    "two guardrails are named `{name}`"
                )));
            }
            if g.matches.as_deref().is_some_and(str::is_empty) {
                return Err(TrustError::Config(format!(
                    "guardrail `{name}`: `match` is empty; leave it out to cover every id"
                )));
            }
            if g.max_changes_per_hour == Some(0) {
                return Err(TrustError::Config(format!(
                    "guardrail `{name}`: `max_changes_per_hour = 0` forbids every change; use a freeze window to say so"
                )));
            }
            if g.min_healthy.is_none()
                && g.max_changes_per_hour.is_none()
                && g.max_capacity.is_none()
                && g.freeze.is_empty()
            {
                return Err(TrustError::Config(format!(
                    "guardrail `{name}` sets no invariant (min_healthy, max_changes_per_hour, max_capacity or freeze)"
                )));
            }
        }
        Ok(())
    }

    /// Whether any guardrail counts changes (so the change history must be consulted).
    pub fn counts_changes(&self) -> bool {
        self.list.iter().any(|g| g.max_changes_per_hour.is_some())
    }

    /// The name of the guardrail at `index`.
    pub fn name_of(&self, index: usize) -> String {
        self.list
            .get(index)
            .and_then(|g| g.name.clone())
            .unwrap_or_else(|| format!("#{}", index + 1))
    }

    /// The first invariant `request` would break, if any. Reads break none. `changes_last_hour`
    /// says how many changes of the resource were recorded in the hour before the request; it
    /// is only called when a covering guardrail has `max_changes_per_hour`.
    pub fn check_request(
        &self,
        request: &Request,
        changes_last_hour: impl Fn() -> u32,
    ) -> Option<Violation> {
        if !request.action.is_change() {
            return None;
        }
        let mut count = None;
        let sim = simulate(request.state, request.change);
        for (i, g) in self.list.iter().enumerate() {
            if !g.covers(&request.resource) {
                continue;
            }
            let name = || self.name_of(i);
            let what = &request.resource;
            if let Some(w) = g.freeze.iter().find(|w| w.contains(request.at_millis)) {
                return Some(Violation {
                    message: format!(
                        "guardrail `{}`: `{}` is frozen ({}): no change may run",
                        name(),
                        what.id,
                        w.describe()
                    ),
                    guardrail: name(),
                    invariant: Invariant::Freeze {
                        window: w.as_str().to_owned(),
                    },
                });
            }
            if let Some(max) = g.max_changes_per_hour {
                let n = *count.get_or_insert_with(&changes_last_hour);
                if n >= max {
                    return Some(Violation {
                        message: format!(
                            "guardrail `{}` max_changes_per_hour: `{}` already changed {n} times in the last hour, the maximum is {max}",
                            name(),
                            what.id
                        ),
                        guardrail: name(),
                        invariant: Invariant::MaxChangesPerHour { max, count: n },
                    });
                }
            }
            if let Some(max) = g.max_capacity {
                let (before, after) = (sim.before.capacity, sim.after.capacity);
                let grows = match (before, after) {
                    (Some(b), Some(a)) => a > b,
                    (None, Some(_)) => true,
                    (_, None) => false,
                };
                if grows && after.is_some_and(|a| a > max) {
                    return Some(Violation {
                        message: format!(
                            "guardrail `{}` max_capacity: `{}` would go from {} to {} instances, above the budget of {max}",
                            name(),
                            what.id,
                            show(before),
                            show(after)
                        ),
                        guardrail: name(),
                        invariant: Invariant::MaxCapacity { max, before, after },
                    });
                }
            }
            if let Some(min) = g.min_healthy
                && may_lower_healthy(request.change, sim.before.capacity)
            {
                let (before, after) = (sim.before.healthy, sim.after.healthy);
                let message = match (before, after) {
                    (Some(b), Some(a)) if a < min && a < b => Some(format!(
                        "guardrail `{}` min_healthy: `{}` would go from {b} to {a} healthy instances, below the minimum of {min}",
                        name(),
                        what.id
                    )),
                    (None, _) | (_, None) => Some(format!(
                        "guardrail `{}` min_healthy: the healthy count of `{}` is unknown, so keeping at least {min} healthy cannot be checked",
                        name(),
                        what.id
                    )),
                    _ => None,
                };
                if let Some(message) = message {
                    return Some(Violation {
                        message,
                        guardrail: name(),
                        invariant: Invariant::MinHealthy { min, before, after },
                    });
                }
            }
        }
        None
    }
}

fn show(n: Option<u32>) -> String {
    n.map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::matches as glob;

    #[test]
    fn globs_match_like_shell_patterns() {
        assert!(glob("web-prod-*", "web-prod-eu"));
        assert!(glob("*", "anything"));
        assert!(glob("web", "web"));
        assert!(!glob("web", "web2"));
        assert!(glob("*-prod-*", "web-prod-eu"));
        assert!(!glob("*-prod-*", "web-staging-eu"));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(!glob("a*bc", "abc-bc-x"));
        assert!(glob("ab*b", "ab-b"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn a_restart_takes_instances_out_of_the_healthy_count() {
        let sim = simulate(State::new(4, 4), Change::Restart { instances: 2 });
        assert_eq!(sim.after, State::new(4, 2));
    }

    #[test]
    fn scaling_in_assumes_the_healthy_instances_go_first() {
        let sim = simulate(State::new(6, 5), Change::Capacity { to: 3 });
        assert_eq!(sim.after, State::new(3, 3));
    }
}
