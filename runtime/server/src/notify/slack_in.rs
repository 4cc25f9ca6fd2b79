//! Slack's Approve / Deny buttons: `POST /v1/integrations/slack/interactions`, Slack's
//! interactivity Request URL.
//!
//! A press counts exactly as a vote through `POST /v1/approvals/{id}/approve` would:
//! 1. the request is Slack's: its `v0` signature under the app's signing secret, within five
//!    minutes, and never seen before (signatures are remembered for the window);
//! 2. the Slack user is an approver: `[integrations.slack] approvers` maps them to a GRACE
//!    local principal, which must hold a live token with the `approve` scope (revoking the
//!    person's tokens revokes their buttons too);
//! 3. the vote goes through the scheduler's one path ([`crate::api::approvals::vote`]): the
//!    two-person rule counts principals, so the same person through Slack and the API is one
//!    approver; the ledger records the vote with the principal and `slack:<user id>`.
//!
//! A press that is not taken (not an approver, already voted, already decided) is answered to
//! the user alone (`chat.postEphemeral`) and counted; Slack always gets `200` for a request it
//! signed, so it does not show the user an error of its own.

use std::collections::{BTreeMap, VecDeque};

use grace_notify::Secret;
use grace_notify::slack::signature::REPLAY_WINDOW_SECS;

use crate::auth::Caller;
use crate::auth::{Scope, Scopes};

/// Signatures remembered (for the replay window), at most.
pub const MAX_REMEMBERED: usize = 10_000;

/// Slack's side of approvals.
pub struct SlackIn {
    /// The signing secret, to take presses over HTTP; `None` takes them over Socket Mode only.
    pub secret: Option<Secret>,
    /// Slack user → local principal name.
    pub approvers: BTreeMap<String, String>,
    /// The workspace presses must come from, if configured.
    team: Option<String>,
    seen: std::sync::Mutex<VecDeque<(u64, String)>>,
}

/// Why a press is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The user is not in `approvers`.
    #[error(
        "you are not a GRACE approver: ask an admin to map your Slack user ({0}) to a GRACE principal"
    )]
    NotApprover(String),
    /// The principal holds no live token with `approve`.
    #[error("your GRACE principal `{0}` holds no live token with the `approve` scope")]
    NoScope(String),
}

impl SlackIn {
    /// Approvals through Slack with `secret`, for `approvers`.
    pub fn new(secret: Option<Secret>, approvers: BTreeMap<String, String>) -> SlackIn {
        SlackIn {
            secret,
            approvers,
            team: None,
            seen: std::sync::Mutex::new(VecDeque::new()),
        }
    }

    /// Takes presses from `team` only (any workspace when `None`).
    pub fn in_team(mut self, team: Option<String>) -> SlackIn {
        self.team = team;
        self
    }

    /// Remembers `signature`, signed at `at` (seconds); `false` when it was seen within the
    /// window (a replay).
    pub fn first_time(&self, signature: &str, at: u64, now: u64) -> bool {
        // The signature's hex may be written in either case and still verify: it is remembered
        // as the MAC it stands for, not as the text sent.
        let signature = signature.trim().to_ascii_lowercase();
        let signature = signature.as_str();
        let mut seen = crate::sync::lock(&self.seen);
        while seen
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > 2 * REPLAY_WINDOW_SECS)
        {
            seen.pop_front();
        }
        if seen.iter().any(|(_, s)| s == signature) {
            return false;
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.pop_front();
        }
        seen.push_back((at, signature.to_owned()));
        true
    }

    /// The caller a press of `user` votes as: their principal, with the `approve` scope of one
    /// of its live tokens.
    pub fn caller(
        &self,
        user: &str,
        tokens: &crate::auth::TokenStore,
        now: u64,
    ) -> Result<Caller, Refusal> {
        let name = self
            .approvers
            .get(user)
            .ok_or_else(|| Refusal::NotApprover(user.to_owned()))?;
        let name = name.strip_prefix("local:").unwrap_or(name);
        let principal = crate::auth::principals::local_id(name);
        let token = tokens
            .list()
            .into_iter()
            .filter(|t| t.principal == principal && t.is_live(now))
            .find(|t| t.scopes.allows(Scope::Approve))
            .ok_or_else(|| Refusal::NoScope(principal.clone()))?;
        let display = tokens
            .principals()
            .get(&principal)
            .map_or_else(|| name.to_owned(), |p| p.display_name.clone());
        Ok(Caller {
            name: format!("slack:{user}"),
            token_id: token.id,
            principal,
            principal_name: display,
            scopes: [Scope::Approve].into_iter().collect::<Scopes>(),
            granted: Scope::Approve,
        })
    }
}

/// Takes one press, from HTTP (its signature checked) or Socket Mode: the vote as the user's
/// principal, or a word to the user alone on why not (see the module documentation).
pub async fn take(
    press: grace_notify::slack::Press,
    notifier: &std::sync::Arc<super::Notifier>,
    scheduler: &crate::scheduler::Scheduler,
    tokens: &crate::auth::TokenStore,
    metrics: &crate::metrics::Metrics,
) {
    let Some(slack) = notifier.slack_in.as_ref() else {
        return;
    };
    if slack.team.as_ref().is_some_and(|team| *team != press.team) {
        metrics.webhook("slack", "refused");
        tracing::warn!(team = %press.team, "a Slack button press from another workspace was refused");
        return;
    }
    let now = grace_engine::event::system_now_millis();
    let caller = match slack.caller(&press.user, tokens, now) {
        Ok(caller) => caller,
        Err(refusal) => {
            metrics.webhook("slack", "ignored");
            tracing::warn!(user = %press.user, approval = %press.approval, "a Slack button press was not taken: {refusal}");
            tell(notifier, &press, refusal.to_string());
            return;
        }
    };
    let approve = press.vote == grace_notify::slack::Vote::Approve;
    let comment = (!approve).then(|| format!("denied in Slack by {}", caller.principal_name));
    match scheduler
        .vote(&press.approval, &caller, approve, comment)
        .await
    {
        Ok(approval) => {
            metrics.webhook("slack", "accepted");
            if approval.state == crate::trust::approvals::ApprovalState::Pending
                && let Err(e) = notifier.approval_changed(&approval.run_id).await
            {
                tracing::warn!(
                    "the Slack message of run {} was not refreshed: {e}",
                    approval.run_id
                );
            }
        }
        Err(e) => {
            metrics.webhook("slack", "ignored");
            tell(
                notifier,
                &press,
                format!(
                    "Your vote was not counted: {}",
                    crate::error::ApiError::from(e).message()
                ),
            );
        }
    }
}

/// Tells the presser alone why their press was not taken, without holding Slack's answer.
fn tell(
    notifier: &std::sync::Arc<super::Notifier>,
    press: &grace_notify::slack::Press,
    text: String,
) {
    let Some(channel) = press.channel.clone() else {
        return;
    };
    let (notifier, user) = (notifier.clone(), press.user.clone());
    tokio::spawn(async move {
        if let Some(slack) = notifier.slack()
            && let Err(e) = slack.tell(&channel, &user, &text).await
        {
            tracing::warn!("could not tell a Slack user why their press was not taken: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_taken_once_within_the_window() {
        let s = SlackIn::new(Some(Secret::new("s")), BTreeMap::new());
        assert!(s.first_time("v0=aa", 1000, 1000));
        assert!(!s.first_time("v0=aa", 1000, 1001));
        assert!(
            !s.first_time("v0=AA", 1000, 1001),
            "the same MAC in capitals"
        );
        assert!(s.first_time("v0=bb", 1000, 1001));
        // Long after the window it is forgotten (and the timestamp check refuses it anyway).
        assert!(s.first_time("v0=aa", 3000, 3000));
    }
}
