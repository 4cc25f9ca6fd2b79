//! The audit trail of the API: who changed what, recorded in the ledger next to the host calls.
//!
//! Each entry has interface `api`, run id `api` (so `grace ledger show --run api` lists them
//! all), the function asked for (`playbooks.upload`, `tokens.create`, `principals.create`, ...),
//! the caller's token name, token id and principal id with what was asked in `args`, the decision `allowed` with the scope that let
//! the caller in as its reason (or `denied` for a token lacking the scope), and the result,
//! `{"ok": ...}` or `{"error": "..."}`.
//!
//! Event publication is high volume: one entry per accepted batch (its count and sequence
//! range), queued without waiting for its commit, so the `202` still waits only for the events'
//! own fsync (see [`Audit::batch`]).

use std::sync::Arc;

use axum::http::Method;
use grace_executor::Clock;
use grace_ledger::{Decision, Ledger, NewEntry};
use serde_json::{Value, json};

use super::{Caller, Scope};
use crate::error::ApiError;

/// The run id of every audit entry.
pub const AUDIT_RUN_ID: &str = "api";

/// What an audit entry records: its `function`. The one list of audited requests:
/// `docs/security.md` is checked against [`AuditAction::ALL`] by a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// `POST /v1/playbooks`: an upload, refused ones included.
    PlaybooksUpload,
    /// `POST /v1/playbooks/{name}/enable`.
    PlaybooksEnable,
    /// `POST /v1/playbooks/{name}/disable`.
    PlaybooksDisable,
    /// `DELETE /v1/playbooks/{name}`.
    PlaybooksDelete,
    /// `POST /v1/runs/{id}/cancel`.
    RunsCancel,
    /// `POST /v1/runs/{id}/resume`.
    RunsResume,
    /// `POST /v1/pauses/resume`: a person resumes a playbook the meta-loop paused.
    PausesResume,
    /// `POST /v1/tokens`.
    TokensCreate,
    /// `DELETE /v1/tokens/{id}`.
    TokensRevoke,
    /// `POST /v1/principals`.
    PrincipalsCreate,
    /// `PUT /v1/policies/{name}` of a new policy set.
    PoliciesAdd,
    /// `PUT /v1/policies/{name}` of an existing policy set.
    PoliciesReplace,
    /// `DELETE /v1/policies/{name}`.
    PoliciesRemove,
    /// A batch of published events (one entry per batch, see [`Audit::batch`]).
    EventsPublish,
    /// A batch of alerts from the Alertmanager webhook.
    SourcesAlertmanager,
    /// A batch of pushed metrics.
    SourcesMetrics,
    /// A request refused because the caller's token lacks the scope.
    RequestDenied,
}

impl AuditAction {
    /// Every audited request.
    pub const ALL: [AuditAction; 17] = [
        AuditAction::PlaybooksUpload,
        AuditAction::PlaybooksEnable,
        AuditAction::PlaybooksDisable,
        AuditAction::PlaybooksDelete,
        AuditAction::RunsCancel,
        AuditAction::RunsResume,
        AuditAction::PausesResume,
        AuditAction::TokensCreate,
        AuditAction::TokensRevoke,
        AuditAction::PrincipalsCreate,
        AuditAction::PoliciesAdd,
        AuditAction::PoliciesReplace,
        AuditAction::PoliciesRemove,
        AuditAction::EventsPublish,
        AuditAction::SourcesAlertmanager,
        AuditAction::SourcesMetrics,
        AuditAction::RequestDenied,
    ];

    /// The entry's `function`.
    pub fn name(self) -> &'static str {
        match self {
            AuditAction::PlaybooksUpload => "playbooks.upload",
            AuditAction::PlaybooksEnable => "playbooks.enable",
            AuditAction::PlaybooksDisable => "playbooks.disable",
            AuditAction::PlaybooksDelete => "playbooks.delete",
            AuditAction::RunsCancel => "runs.cancel",
            AuditAction::RunsResume => "runs.resume",
            AuditAction::PausesResume => "pauses.resume",
            AuditAction::TokensCreate => "tokens.create",
            AuditAction::TokensRevoke => "tokens.revoke",
            AuditAction::PrincipalsCreate => "principals.create",
            AuditAction::PoliciesAdd => "policies.add",
            AuditAction::PoliciesReplace => "policies.replace",
            AuditAction::PoliciesRemove => "policies.remove",
            AuditAction::EventsPublish => "events.publish",
            AuditAction::SourcesAlertmanager => "sources.alertmanager",
            AuditAction::SourcesMetrics => "sources.metrics",
            AuditAction::RequestDenied => "request.denied",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn entry(clock: &dyn Clock, caller: &Caller, function: AuditAction, args: Value) -> NewEntry {
    let mut args = match args {
        Value::Object(map) => Value::Object(map),
        Value::Null => json!({}),
        other => json!({ "request": other }),
    };
    args["caller"] = json!(caller.name);
    args["token_id"] = json!(caller.token_id);
    args["principal"] = json!(caller.principal);
    let text = |key: &str| {
        args.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    NewEntry {
        run_id: AUDIT_RUN_ID.into(),
        playbook: text("playbook"),
        digest: text("digest"),
        interface: "api".into(),
        function: function.name().into(),
        decision: Decision::allowed(format!("scope `{}`", caller.granted)),
        args,
        result: Value::Null,
        at_millis: clock.now_millis(),
    }
}

/// What an audited request came to: any `Result` of a serializable value and an [`ApiError`]
/// (owned or borrowed), recorded as `{"ok": value}` or `{"error": message, "status": code}`.
pub trait Audited {
    /// The entry's `result`.
    fn to_audit(&self) -> Value;
    /// Whether the request changed something (so its entry is made durable before the answer).
    fn succeeded(&self) -> bool;
}

impl<T: serde::Serialize, E: std::borrow::Borrow<ApiError>> Audited for Result<T, E> {
    fn to_audit(&self) -> Value {
        match self {
            Ok(v) => json!({ "ok": serde_json::to_value(v).unwrap_or(Value::Null) }),
            Err(e) => {
                let e = e.borrow();
                json!({ "error": e.to_string(), "status": e.status().as_u16() })
            }
        }
    }

    fn succeeded(&self) -> bool {
        self.is_ok()
    }
}

/// The audit trail: the ledger, and the run clock its entries are timed by; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    ledger: Arc<Ledger>,
    clock: Arc<dyn Clock>,
}

impl Audit {
    /// Records in `ledger`, timed by `clock` (virtual in simulation).
    pub fn new(ledger: Arc<Ledger>, clock: Arc<dyn Clock>) -> Audit {
        Audit { ledger, clock }
    }

    /// Records in the ledger that `caller` asked for `function` with `args` (a JSON object; the
    /// keys `playbook` and `digest`, when present, also fill the entry's fields), and how it
    /// went. After a success it waits until the entry is durable, so that an acknowledged change
    /// is always attributable; a refusal changed nothing, and its entry is only queued. A ledger
    /// failure is logged, not returned, since the change itself is already made.
    pub async fn record(
        &self,
        caller: &Caller,
        function: AuditAction,
        args: Value,
        result: &impl Audited,
    ) {
        let mut e = entry(&*self.clock, caller, function, args);
        e.result = result.to_audit();
        let recorded = if result.succeeded() {
            self.ledger.append(e).await.map(drop)
        } else {
            self.ledger.submit(e).map(drop)
        };
        if let Err(err) = recorded {
            tracing::error!(caller = %caller.name, "the ledger could not record `{function}`: {err}");
        }
    }

    /// Records an accepted batch of events (`function` `events.publish`, `sources.alertmanager`,
    /// ...) without waiting for the entry's commit: the events are durable already, and the
    /// entry joins the ledger's next group commit.
    pub fn batch(&self, caller: &Caller, function: AuditAction, count: usize, seqs: (u64, u64)) {
        let mut e = entry(
            &*self.clock,
            caller,
            function,
            json!({ "count": count, "first_seq": seqs.0, "last_seq": seqs.1 }),
        );
        e.result = json!({ "ok": null });
        if let Err(err) = self.ledger.submit(e) {
            tracing::error!(caller = %caller.name, "the ledger could not record `{function}`: {err}");
        }
    }

    /// Records a request refused because the caller's token lacks the scope `needed`.
    pub(crate) fn denied(&self, caller: &Caller, method: &Method, route: &str, needed: Scope) {
        let mut e = entry(
            &*self.clock,
            caller,
            AuditAction::RequestDenied,
            json!({ "method": method.as_str(), "route": route }),
        );
        e.decision = Decision::denied(format!("needs scope `{needed}`"));
        e.result = json!({ "error": format!("needs scope `{needed}`"), "status": 403 });
        if let Err(err) = self.ledger.submit(e) {
            tracing::error!(caller = %caller.name, "the ledger could not record a denied request: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::AuditAction;

    /// The audit paragraph of `docs/security.md`: from `## Audit` to the first blank line after
    /// the list of functions.
    fn documented() -> BTreeSet<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/security.md");
        let doc = std::fs::read_to_string(path).expect("docs/security.md");
        let section = doc.split("## Audit\n").nth(1).expect("an Audit section");
        let paragraph = section
            .trim_start()
            .split("\n\n")
            .next()
            .unwrap_or_default();
        paragraph
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|code| {
                code.split_once('.').is_some_and(|(a, b)| {
                    [a, b]
                        .iter()
                        .all(|w| !w.is_empty() && w.bytes().all(|c| c.is_ascii_lowercase()))
                })
            })
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_security_doc_lists_exactly_the_audited_requests() {
        let actual: BTreeSet<String> = AuditAction::ALL
            .iter()
            .map(|a| a.name().to_owned())
            .collect();
        assert_eq!(documented(), actual);
    }
}
