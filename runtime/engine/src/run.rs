//! What a run produces: its status, the guest's outcome or failure, and the timeline of every
//! host call with its decision and result.

use std::collections::BTreeMap;

use grace_ledger::Verdict;
use serde::{Deserialize, Serialize};

use crate::event::TriggerEvent;
use crate::manifest::Kind;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// The guest returned an outcome (playbook) or events (collector).
    Succeeded,
    /// The guest returned an error, trapped, or was stopped for exceeding a limit.
    Failed,
    /// The guest was stopped at its deadline.
    TimedOut,
    /// A change needs people's approval: the run stopped before it and goes on (as a retry of
    /// the same run) once they decided. [`RunReport::approval`] names the approval.
    WaitingApproval,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed-out",
            RunStatus::WaitingApproval => "waiting-approval",
        })
    }
}

/// Why a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The guest returned its own error.
    GuestError,
    /// The deadline (`limits.timeout`) passed.
    DeadlineExceeded,
    /// The fuel (`limits.fuel`) ran out.
    FuelExhausted,
    /// The guest tried to grow its memory past `limits.memory`.
    MemoryLimit,
    /// The guest overflowed its stack.
    StackOverflow,
    /// The guest made more than `limits.max_host_calls` host calls.
    HostCallLimit,
    /// The guest panicked or hit an `unreachable`.
    Panic,
    /// Any other trap.
    Trap,
    /// The ledger could not record a call, so the guest was stopped.
    LedgerUnavailable,
    /// The guest's result was malformed (e.g. a collector emitted an invalid event).
    InvalidOutput,
    /// The guest could not be instantiated.
    Instantiation,
    /// The guest logged more than `limits.max_total_log_bytes` in all.
    LogLimit,
    /// The run put more on record than the host allows one run (bytes or timeline entries).
    RecordLimit,
    /// The host's fence check refused a change: in a cluster, this replica no longer holds the
    /// run's shard (another replica owns its resource now). Nothing was changed.
    Fenced,
}

/// A failed run's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// For humans.
    pub message: String,
}

/// A playbook's report of what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// One line.
    pub summary: String,
    /// Whether anything in the world changed.
    pub changed: bool,
    /// Extra facts.
    pub details: BTreeMap<String, String>,
}

/// One host call, as the run saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// The ledger entry recording it.
    pub seq: u64,
    /// Run-clock time of the call, in milliseconds since the epoch.
    pub at: u64,
    /// Milliseconds since the run started, on the run clock.
    pub offset_ms: u64,
    /// WIT interface.
    pub interface: String,
    /// WIT function.
    pub function: String,
    /// Arguments.
    pub args: serde_json::Value,
    /// Allowed or denied.
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
    /// The trust core's details: risk score and factors, deciding policies, guardrail,
    /// approvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<serde_json::Value>,
    /// `{"ok": value}` or `{"error": {"kind", "message"}}`.
    pub result: serde_json::Value,
    /// Whether the call changes the world (an action).
    pub change: bool,
}

impl TimelineEntry {
    /// Whether this is an action that was allowed and succeeded.
    pub fn is_effective_action(&self) -> bool {
        self.change && self.verdict == Verdict::Allowed && self.result.get("ok").is_some()
    }
}

/// Which guest ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestInfo {
    /// Manifest name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// Playbook or collector.
    pub kind: Kind,
    /// Component digest, `sha256:<hex>`.
    pub digest: String,
}

/// Everything about one finished run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Unique id.
    pub run_id: String,
    /// The guest.
    pub guest: GuestInfo,
    /// The triggering event (playbooks).
    pub event: Option<TriggerEvent>,
    /// How it ended.
    pub status: RunStatus,
    /// The playbook's outcome, when it succeeded.
    pub outcome: Option<Outcome>,
    /// The events a collector emitted, validated.
    pub events: Vec<TriggerEvent>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// The approval the run waits for ([`RunStatus::WaitingApproval`]).
    pub approval: Option<String>,
    /// Run-clock start, milliseconds since the epoch.
    pub started_at: u64,
    /// Run-clock end.
    pub finished_at: u64,
    /// Every host call.
    pub timeline: Vec<TimelineEntry>,
    /// Number of host calls.
    pub host_calls: u32,
    /// Fuel consumed.
    pub fuel_consumed: u64,
    /// What the guest wrote to stderr (bounded), e.g. a panic message.
    pub guest_stderr: String,
    /// Whether the outcome was cut to fit (see `engine::MAX_OUTCOME_TEXT_BYTES`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outcome_truncated: bool,
}

impl RunReport {
    /// The calls that changed the world.
    pub fn actions(&self) -> impl Iterator<Item = &TimelineEntry> {
        self.timeline.iter().filter(|e| e.is_effective_action())
    }

    /// The calls that were denied.
    pub fn denials(&self) -> impl Iterator<Item = &TimelineEntry> {
        self.timeline
            .iter()
            .filter(|e| e.verdict == Verdict::Denied)
    }
}
