//! What the mesh decides for each (playbook, trigger) an event matches, and the [`RunKey`] a
//! fired run hands back when it finishes.

use std::fmt;

use grace_model::event::format_millis;
use grace_model::manifest::Hold;
use serde::{Deserialize, Serialize};

/// The mesh's answer for one trigger an event matched (by event type and resource).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Start a run of the playbook for this event.
    Fire {
        /// The playbook's name.
        playbook: String,
        /// Which of its triggers fired (index into the manifest's `triggers`).
        trigger: usize,
        /// The event's resource.
        resource: String,
        /// The rendered dedup key, when the trigger has one.
        dedup_key: Option<String>,
        /// What to hand to [`crate::Mesh::run_finished`] when the run ends: it holds the run's
        /// exclusivity locks and dedup key until then.
        run: RunKey,
    },
    /// The trigger matched, but does not start a run.
    Suppressed {
        /// The playbook's name.
        playbook: String,
        /// Which of its triggers matched.
        trigger: usize,
        /// The event's resource.
        resource: String,
        /// Why not.
        reason: Suppression,
    },
}

impl Decision {
    /// The playbook the decision is about.
    pub fn playbook(&self) -> &str {
        match self {
            Decision::Fire { playbook, .. } | Decision::Suppressed { playbook, .. } => playbook,
        }
    }

    /// The index of the trigger the decision is about.
    pub fn trigger(&self) -> usize {
        match self {
            Decision::Fire { trigger, .. } | Decision::Suppressed { trigger, .. } => *trigger,
        }
    }

    /// The event's resource.
    pub fn resource(&self) -> &str {
        match self {
            Decision::Fire { resource, .. } | Decision::Suppressed { resource, .. } => resource,
        }
    }

    /// Whether a run starts.
    pub fn is_fire(&self) -> bool {
        matches!(self, Decision::Fire { .. })
    }

    /// Why the trigger did not fire, if it did not.
    pub fn suppression(&self) -> Option<&Suppression> {
        match self {
            Decision::Fire { .. } => None,
            Decision::Suppressed { reason, .. } => Some(reason),
        }
    }
}

/// Why a matching trigger did not fire, in the order the mesh checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Suppression {
    /// The condition is false for this event (and the trigger's hold window starts over).
    ConditionFalse,
    /// The condition holds, but not yet for as long as the trigger's `for` asks.
    Holding {
        /// Timestamp (ms) of the first true event of the current run of true events.
        since: u64,
        /// What the trigger's `for` asks.
        needed: Hold,
        /// True events so far in this run, this one included.
        seen_events: u32,
    },
    /// Another trigger of the same playbook already fired on this event: one event starts a
    /// playbook at most once.
    AlreadyFired {
        /// The trigger that fired.
        trigger: usize,
    },
    /// The playbook ran for this resource less than its cooldown ago.
    CoolingDown {
        /// Timestamp (ms) from which it may fire again.
        until: u64,
    },
    /// A run of the playbook with the same dedup key has not finished.
    Duplicate {
        /// The rendered key.
        dedup_key: String,
    },
    /// A run (of any playbook) that can change the same thing on this resource has not
    /// finished.
    Busy {
        /// The lock that is held: `capability:resource`.
        lock: String,
        /// The playbook whose run holds it.
        held_by: String,
    },
}

impl Suppression {
    /// A short, stable name for metrics and logs: `condition_false`, `holding`,
    /// `already_fired`, `cooling_down`, `duplicate`, `busy`.
    pub fn name(&self) -> &'static str {
        match self {
            Suppression::ConditionFalse => "condition_false",
            Suppression::Holding { .. } => "holding",
            Suppression::AlreadyFired { .. } => "already_fired",
            Suppression::CoolingDown { .. } => "cooling_down",
            Suppression::Duplicate { .. } => "duplicate",
            Suppression::Busy { .. } => "busy",
        }
    }
}

impl fmt::Display for Suppression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Suppression::ConditionFalse => f.write_str("the condition is false"),
            Suppression::Holding {
                since,
                needed,
                seen_events,
            } => write!(
                f,
                "the condition has held since {} ({seen_events} event{}); `for` asks {needed}",
                format_millis(*since),
                if *seen_events == 1 { "" } else { "s" }
            ),
            Suppression::AlreadyFired { trigger } => {
                write!(f, "trigger {trigger} of this playbook fired on this event")
            }
            Suppression::CoolingDown { until } => {
                write!(f, "cooling down until {}", format_millis(*until))
            }
            Suppression::Duplicate { dedup_key } => {
                write!(f, "a run with dedup key `{dedup_key}` has not finished")
            }
            Suppression::Busy { lock, held_by } => {
                write!(f, "`{lock}` is held by a run of `{held_by}`")
            }
        }
    }
}

/// A fired run's claim on the mesh: its exclusivity locks and dedup key, held until it is handed
/// back to [`crate::Mesh::run_finished`]. Serializable, so that a server can store it with the run
/// and give it back to [`crate::Mesh::resume_run`] after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunKey {
    /// The mesh's sequence number of the fire, so that a stale key never releases a later run's
    /// locks.
    pub(crate) id: u64,
    pub(crate) playbook: String,
    pub(crate) resource: String,
    pub(crate) locks: Vec<String>,
    pub(crate) dedup_key: Option<String>,
}

impl RunKey {
    /// The mesh's sequence number of the fire (1, 2, ... per mesh).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The playbook that fired.
    pub fn playbook(&self) -> &str {
        &self.playbook
    }

    /// The event's resource.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The exclusivity locks the run holds: `capability:resource`, sorted.
    pub fn locks(&self) -> &[String] {
        &self.locks
    }

    /// The rendered dedup key it holds, if its trigger has one.
    pub fn dedup_key(&self) -> Option<&str> {
        self.dedup_key.as_deref()
    }
}
