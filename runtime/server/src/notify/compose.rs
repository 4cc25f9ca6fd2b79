//! From a run's change of state to the [`Notice`] that tells it: what happened, the approval
//! the run waits for (with its risk explanation and votes), the outcome, the incident.
//!
//! The incident a notice names is the one the run's triggering event was stamped with, and
//! only if the server's incident tracker knows it and holds the run's resource: an
//! `incident_id` written by a publisher into an event's payload cannot make GRACE resolve, in
//! PagerDuty or Jira, an incident the run is not part of.

use grace_notify::{Notice, NoticeApproval, NoticeKind};
use serde_json::Value;

use crate::runs::{RunRecord, RunState};
use crate::store::outbox::Transition;
use crate::trust::approvals::{Approval, ApprovalState};

/// The longest outcome or failure message a notice carries.
const MAX_OUTCOME_CHARS: usize = 2000;
/// The most risk factors a notice carries.
const MAX_FACTORS: usize = 5;

/// What a change of state tells, if anything: a run queued (or queued again after an
/// approval, or interrupted) tells nothing; `running` tells it started.
pub fn kind(transition: &Transition) -> Option<NoticeKind> {
    match transition.to {
        RunState::Running => Some(NoticeKind::Started),
        RunState::WaitingApproval => Some(NoticeKind::WaitingApproval),
        RunState::Succeeded => Some(NoticeKind::Succeeded),
        RunState::Failed => Some(NoticeKind::Failed),
        RunState::Cancelled => Some(NoticeKind::Cancelled),
        RunState::TimedOut => Some(NoticeKind::TimedOut),
        RunState::Queued | RunState::Interrupted => None,
    }
}

/// The incident `run` belongs to, as checked above.
pub fn incident(
    run: &RunRecord,
    known: impl Fn(&str) -> Option<crate::incidents::Incident>,
) -> Option<String> {
    let id = run.event.payload.get("incident_id")?.as_str()?;
    let incident = known(id)?;
    (incident.resources.contains(&run.resource) || incident.first_resource == run.resource)
        .then_some(incident.id)
}

/// The notice of `run` in `kind`, with its pending `approval`.
pub fn notice(
    kind: NoticeKind,
    run: &RunRecord,
    approval: Option<&Approval>,
    incident: Option<String>,
    public_url: Option<&str>,
    at: u64,
) -> Notice {
    let outcome = match kind {
        NoticeKind::Succeeded => run.outcome.as_ref().map(|o| o.summary.clone()),
        NoticeKind::Failed | NoticeKind::TimedOut | NoticeKind::Cancelled => run
            .failure
            .as_ref()
            .map(|f| f.message.clone())
            .or_else(|| run.outcome.as_ref().map(|o| o.summary.clone())),
        NoticeKind::Started | NoticeKind::WaitingApproval | NoticeKind::Message => None,
    }
    .map(|text| grace_notify::text::cut(&text, MAX_OUTCOME_CHARS));
    Notice {
        kind,
        run_id: run.id.clone(),
        playbook: run.playbook.clone(),
        resource: run.resource.clone(),
        event_type: run.event.event_type.clone(),
        incident,
        outcome,
        approval: approval
            .filter(|a| kind == NoticeKind::WaitingApproval || a.state != ApprovalState::Pending)
            .map(notice_approval),
        link: public_url.map(|base| format!("{}/runs/{}", base.trim_end_matches('/'), run.id)),
        at,
        message: None,
    }
}

/// An approval as a notice tells it.
pub fn notice_approval(a: &Approval) -> NoticeApproval {
    let risk = a.decision.get("risk");
    let mut factors: Vec<(String, f64)> = risk
        .and_then(|r| r.get("factors"))
        .and_then(Value::as_array)
        .map(|fs| {
            fs.iter()
                .filter_map(|f| {
                    let kind = f.get("kind").and_then(Value::as_str)?;
                    let c = f.get("contribution").and_then(Value::as_f64)?;
                    c.is_finite()
                        .then(|| (grace_notify::text::cut(kind, 60), c))
                })
                .take(50)
                .collect()
        })
        .unwrap_or_default();
    factors.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    factors.truncate(MAX_FACTORS);
    NoticeApproval {
        id: a.id.clone(),
        action: a.action.clone(),
        resource: a.resource.clone(),
        risk: risk
            .and_then(|r| r.get("score"))
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite())
            .unwrap_or(0.0),
        factors,
        reason: grace_notify::text::cut(&a.reason, 1000),
        required: u32::from(a.approvers),
        approved_by: a
            .approved_by
            .iter()
            .take(10)
            .map(|v| grace_notify::text::cut(&v.by, 100))
            .collect(),
    }
}
