//! Runs as the server keeps them: lifecycle, attempts, and what each attempt did.

use grace_engine::run::Outcome;
use grace_engine::{Failure, FailureKind, RunReport, RunStatus, TimelineEntry, TriggerEvent};
use serde::{Deserialize, Serialize};

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Created by a trigger, waiting for a worker (or for its retry).
    Queued,
    /// A worker is running it.
    Running,
    /// Paused until a human approves an action (trust core).
    WaitingApproval,
    /// The playbook returned an outcome.
    Succeeded,
    /// The playbook failed, after its retries.
    Failed,
    /// Cancelled through the API.
    Cancelled,
    /// Stopped at its deadline.
    TimedOut,
    /// In flight when the server stopped; resume it to run again.
    Interrupted,
}

impl RunState {
    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled | RunState::TimedOut
        )
    }

    /// Every state, for metrics.
    pub const ALL: [RunState; 8] = [
        RunState::Queued,
        RunState::Running,
        RunState::WaitingApproval,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
        RunState::TimedOut,
        RunState::Interrupted,
    ];

    /// The state's name, as in the API.
    pub fn name(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::WaitingApproval => "waiting-approval",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::TimedOut => "timed-out",
            RunState::Interrupted => "interrupted",
        }
    }

    /// Parses a state name.
    pub fn parse(name: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One attempt of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// From 1.
    pub attempt: u32,
    /// How it ended.
    pub state: RunState,
    /// Wall clock, milliseconds since the epoch.
    pub started_at: u64,
    /// Wall clock.
    pub finished_at: u64,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// Host calls it made.
    pub host_calls: u32,
}

/// A run, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique id; also the run id of every ledger entry the run's attempts made.
    pub id: String,
    /// Playbook name.
    pub playbook: String,
    /// Its version at the time.
    pub version: String,
    /// Its component digest.
    pub digest: String,
    /// Which of its triggers fired.
    pub trigger: usize,
    /// The event that fired it.
    pub event_seq: u64,
    /// The event.
    pub event: TriggerEvent,
    /// The event's resource.
    pub resource: String,
    /// The rendered dedup key, if the trigger has one.
    pub dedup_key: Option<String>,
    /// The exclusivity locks it holds while active (`capability:resource`).
    pub locks: Vec<String>,
    /// The trigger mesh's handle on the run: what to release when it ends, and to take again
    /// when an interrupted run is resumed.
    pub key: Option<grace_mesh::RunKey>,
    /// Lifecycle state.
    pub state: RunState,
    /// Attempts started so far.
    pub attempts: u32,
    /// When the trigger fired (wall clock, ms).
    pub created_at: u64,
    /// When its event was accepted (wall clock, ms).
    pub ingested_at: u64,
    /// When the first attempt started.
    pub started_at: Option<u64>,
    /// When it reached a final state.
    pub finished_at: Option<u64>,
    /// The outcome of the successful attempt.
    pub outcome: Option<Outcome>,
    /// Why the last attempt failed.
    pub failure: Option<Failure>,
    /// The approval the run waits for, or waited for last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// The last attempt's host calls.
    pub timeline: Vec<TimelineEntry>,
    /// Every attempt.
    pub attempts_log: Vec<Attempt>,
    /// What says the run's signal cleared (see [`crate::outcomes`]); absent when nothing can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<crate::outcomes::Watch>,
    /// Whether the signal cleared, how fast, and what the run cost: set once the run is over
    /// and its signal cleared or its window ran out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<crate::outcomes::Recovery>,
}

/// A run in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Id.
    pub id: String,
    /// Playbook name.
    pub playbook: String,
    /// Version.
    pub version: String,
    /// Digest.
    pub digest: String,
    /// Resource.
    pub resource: String,
    /// State.
    pub state: RunState,
    /// Attempts.
    pub attempts: u32,
    /// Created.
    pub created_at: u64,
    /// Started.
    pub started_at: Option<u64>,
    /// Finished.
    pub finished_at: Option<u64>,
    /// The outcome's summary or the failure's message.
    pub summary: Option<String>,
}

impl RunRecord {
    /// The list view.
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id.clone(),
            playbook: self.playbook.clone(),
            version: self.version.clone(),
            digest: self.digest.clone(),
            resource: self.resource.clone(),
            state: self.state,
            attempts: self.attempts,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            summary: self
                .outcome
                .as_ref()
                .map(|o| o.summary.clone())
                .or_else(|| self.failure.as_ref().map(|f| f.message.clone())),
        }
    }
}

/// The state an attempt's report puts the run in.
pub fn state_of(report: &RunReport) -> RunState {
    match report.status {
        RunStatus::Succeeded => RunState::Succeeded,
        RunStatus::Failed => RunState::Failed,
        RunStatus::TimedOut => RunState::TimedOut,
        RunStatus::WaitingApproval => RunState::WaitingApproval,
    }
}

/// Whether a failed attempt is worth retrying: the playbook gave up right after a provider said
/// it was unavailable, throttling, conflicting or slow. Limits exceeded, denials and the
/// playbook's own logic errors are not retried, and neither is a conflict met reading back a
/// change an earlier attempt began (its error carries `unreconciled_from`, the ledger entry of
/// that change's intent): the resource was changed by someone else since, or routes to another
/// provider, so every further attempt would meet the same refusal.
pub fn is_transient(report: &RunReport) -> bool {
    let Some(failure) = &report.failure else {
        return false;
    };
    if failure.kind != FailureKind::GuestError {
        return false;
    }
    let Some(last) = report.timeline.iter().rev().find(|e| e.interface != "log") else {
        return false;
    };
    let Some(error) = last.result.get("error") else {
        return false;
    };
    if error
        .get(grace_engine::pipeline::UNRECONCILED_FROM)
        .is_some()
    {
        return false;
    }
    match error.get("kind").and_then(|k| k.as_str()) {
        Some("unavailable" | "conflict") => true,
        // A change that timed out may have happened: the retry reads the resource before
        // making it again (the pipeline reconciles changes whose outcome is unknown).
        Some("timed-out") => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grace_engine::Kind;
    use grace_ledger::Verdict;
    use serde_json::json;

    /// A playbook that gave up right after a change whose recorded result is `result`.
    fn gave_up_after(result: serde_json::Value) -> RunReport {
        RunReport {
            run_id: "run-1".into(),
            guest: grace_engine::run::GuestInfo {
                name: "scale-on-latency".into(),
                version: "1.0.0".into(),
                kind: Kind::Playbook,
                digest: "sha256:00".into(),
            },
            event: None,
            status: RunStatus::Failed,
            outcome: None,
            events: Vec::new(),
            failure: Some(Failure {
                kind: FailureKind::GuestError,
                message: "the change failed".into(),
            }),
            approval: None,
            started_at: 0,
            finished_at: 1,
            timeline: vec![TimelineEntry {
                seq: 7,
                at: 0,
                offset_ms: 0,
                interface: "scaling".into(),
                function: "set-desired-capacity".into(),
                args: json!({ "group": "api-asg", "desired": 5 }),
                verdict: Verdict::Allowed,
                reason: "allowed".into(),
                trust: None,
                result,
                change: true,
            }],
            host_calls: 1,
            fuel_consumed: 0,
            guest_stderr: String::new(),
            outcome_truncated: false,
        }
    }

    #[test]
    fn a_conflict_the_provider_answered_is_retried() {
        let report = gave_up_after(json!({ "error": {
            "kind": "conflict",
            "message": "ScalingActivityInProgress: a scaling activity is in progress",
        }}));
        assert!(is_transient(&report));
    }

    #[test]
    fn a_conflict_met_reading_back_an_earlier_attempts_change_is_not_retried() {
        let report = gave_up_after(json!({ "error": {
            "kind": "conflict",
            "message": "container `web-1` is another container than the one the restart was decided on",
            "unreconciled_from": 3,
        }}));
        assert!(!is_transient(&report));
    }

    #[test]
    fn a_change_whose_earlier_attempt_routed_to_another_provider_is_not_retried() {
        let report = gave_up_after(json!({ "error": {
            "kind": "conflict",
            "message": "an earlier attempt of this run began this change on provider `aws-eu` (ledger entry 3) and its outcome is unknown, but the resource now routes to provider `sim`",
            "unreconciled_from": 3,
        }}));
        assert!(!is_transient(&report));
    }

    #[test]
    fn a_change_that_timed_out_is_retried() {
        let report = gave_up_after(json!({ "error": {
            "kind": "timed-out",
            "message": "no answer within 10s",
        }}));
        assert!(is_transient(&report));
    }
}
