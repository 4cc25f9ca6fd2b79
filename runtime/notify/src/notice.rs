//! What GRACE tells people, before any vendor's wording: the server builds a [`Notice`] from a
//! run, its approval and its incident; each integration renders it (Block Kit, a PagerDuty
//! event, a Jira comment).

use serde::{Deserialize, Serialize};

/// What happened to a run.
/// Serialized by its [`NoticeKind::name`], as routes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NoticeKind {
    /// A worker started it.
    #[serde(rename = "run.started", alias = "started")]
    Started,
    /// It waits for people to approve a change.
    #[serde(rename = "run.waiting-approval", alias = "waiting-approval")]
    WaitingApproval,
    /// Its playbook returned an outcome.
    #[serde(rename = "run.succeeded", alias = "succeeded")]
    Succeeded,
    /// It failed, after its retries.
    #[serde(rename = "run.failed", alias = "failed")]
    Failed,
    /// Someone cancelled it.
    #[serde(rename = "run.cancelled", alias = "cancelled")]
    Cancelled,
    /// It ran past its deadline.
    #[serde(rename = "run.timed-out", alias = "timed-out")]
    TimedOut,
    /// Its playbook posted a message (`notify.send`): sent to the channel the playbook named,
    /// not routed by `[[notify]]`, and no state of the run.
    #[serde(rename = "run.message")]
    Message,
}

impl NoticeKind {
    /// Every kind a `[[notify]]` route can ask for: the run's changes of state.
    pub const ALL: [NoticeKind; 6] = [
        NoticeKind::Started,
        NoticeKind::WaitingApproval,
        NoticeKind::Succeeded,
        NoticeKind::Failed,
        NoticeKind::Cancelled,
        NoticeKind::TimedOut,
    ];

    /// Its name in configuration and the API (`run.started`, `run.waiting-approval`, ...).
    pub fn name(self) -> &'static str {
        match self {
            NoticeKind::Started => "run.started",
            NoticeKind::WaitingApproval => "run.waiting-approval",
            NoticeKind::Succeeded => "run.succeeded",
            NoticeKind::Failed => "run.failed",
            NoticeKind::Cancelled => "run.cancelled",
            NoticeKind::TimedOut => "run.timed-out",
            NoticeKind::Message => "run.message",
        }
    }

    /// Parses the name of a kind routes can ask for ([`NoticeKind::ALL`]).
    pub fn parse(name: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            NoticeKind::Started | NoticeKind::WaitingApproval | NoticeKind::Message
        )
    }
}

/// One thing to tell about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// What happened.
    pub kind: NoticeKind,
    /// The run.
    pub run_id: String,
    /// Its playbook.
    pub playbook: String,
    /// The resource its triggering event named.
    pub resource: String,
    /// The event type that triggered it.
    pub event_type: String,
    /// The incident it belongs to, GRACE's stable id: PagerDuty's `dedup_key` and the Jira
    /// issue's label, so that everything about one incident lands in one place.
    pub incident: Option<String>,
    /// The outcome's or the failure's message, when over.
    pub outcome: Option<String>,
    /// The approval it waits for.
    pub approval: Option<NoticeApproval>,
    /// A link to the run in GRACE's dashboard (`public_url`), when GRACE has a public address.
    pub link: Option<String>,
    /// When it happened, milliseconds since the Unix epoch.
    pub at: u64,
    /// A playbook's message, as it wrote it ([`NoticeKind::Message`]); rendered as plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The change a run waits to have approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeApproval {
    /// The approval's id, which a vote names.
    pub id: String,
    /// The action (`containers::Restart`, ...).
    pub action: String,
    /// The resource it acts on.
    pub resource: String,
    /// The trust core's risk score (0 to 100).
    pub risk: f64,
    /// The risk factors that weigh most, with their contributions, heaviest first.
    pub factors: Vec<(String, f64)>,
    /// Why it waits (the trust core's reason).
    pub reason: String,
    /// How many approvals it needs in all (2 under the two-person rule).
    pub required: u32,
    /// Who approved so far.
    pub approved_by: Vec<String>,
}

impl Notice {
    /// One line for people: `restart-web on web-1: waiting for approval`.
    pub fn headline(&self) -> String {
        let what = match self.kind {
            NoticeKind::Started => "started",
            NoticeKind::WaitingApproval => "waiting for approval",
            NoticeKind::Succeeded => "succeeded",
            NoticeKind::Failed => "failed",
            NoticeKind::Cancelled => "cancelled",
            NoticeKind::TimedOut => "timed out",
            NoticeKind::Message => "message",
        };
        format!("{} on {}: {what}", self.playbook, self.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in NoticeKind::ALL {
            assert_eq!(NoticeKind::parse(kind.name()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::json!(kind.name()))
            );
        }
        assert_eq!(NoticeKind::parse("run.exploded"), None);
    }
}
