//! The trust core: one entry point, [`TrustCore::decide`], running guardrails, then the risk
//! model, then the policies (with the risk score in their context), and combining them.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decision::{Decision, Outcome};
use crate::error::TrustError;
use crate::guardrails::{Guardrail, Guardrails, Simulation, Violation, simulate};
use crate::history::ChangeHistory;
use crate::policy::store::PolicyStore;
use crate::policy::{Evaluation, Policies, PolicyDecision, PolicyInfo, cedar, schema};
use crate::request::{Request, Resource};
use crate::risk::{Risk, RiskConfig, RiskModel};

/// The trust core's configuration: the risk model and the guardrails (TOML: a `[risk]` table
/// and `[[guardrail]]` tables).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The risk model.
    #[serde(default)]
    pub risk: RiskConfig,
    /// The guardrails.
    #[serde(default, rename = "guardrail")]
    pub guardrails: Vec<Guardrail>,
    /// What the trust core does with what the host learnt from runs' outcomes.
    #[serde(default)]
    pub learning: LearningConfig,
}

/// `[learning]`: what the trust core does with the outcomes of a playbook's earlier runs on a
/// resource ([`crate::Learned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningConfig {
    /// A change the policies (or the grants) allow needs one person's approval once this many
    /// runs of the playbook on the resource in a row did not clear their signal, until one
    /// does (0: never). A forbid or a guardrail still denies first.
    pub approval_after: u32,
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig { approval_after: 3 }
    }
}

impl TrustConfig {
    /// Reads the configuration from TOML.
    pub fn from_toml(text: &str) -> Result<Self, TrustError> {
        toml::from_str(text).map_err(|e| TrustError::Config(e.to_string()))
    }
}

/// Decides about every proposed action; see the crate documentation.
pub struct TrustCore {
    policies: PolicyStore,
    risk: RiskModel,
    guardrails: Guardrails,
    history: ChangeHistory,
    learning: LearningConfig,
}

impl fmt::Debug for TrustCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustCore")
            .field("policies", &self.policies)
            .field("guardrails", &self.guardrails.list.len())
            .finish_non_exhaustive()
    }
}

/// A decision with everything that went into it, for `grace policy test` and the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The decision.
    pub decision: Decision,
    /// The action.
    pub action: crate::Action,
    /// The resource's key (`group/web`).
    pub resource: String,
    /// The deciding policies, in full.
    pub determining: Vec<PolicyInfo>,
    /// Policies that failed to evaluate, with the error (a failing forbid counts as matching).
    pub errors: Vec<(String, String)>,
    /// How many active policies the request was evaluated against after slicing, of how many.
    pub evaluated: (usize, usize),
    /// The resource's state before and after the change, as the guardrails saw it.
    #[serde(skip)]
    pub simulation: Simulation,
}

impl TrustCore {
    /// Opens the trust core on `db` (its tables are created if needed; the database may be
    /// shared with other components) with `config`.
    pub fn open(db: Arc<grace_ledger::Database>, config: TrustConfig) -> Result<Self, TrustError> {
        let risk = RiskModel::new(config.risk)?;
        let guardrails = Guardrails::new(config.guardrails)?;
        Ok(TrustCore {
            policies: PolicyStore::open(db.clone())?,
            history: ChangeHistory::open(db)?,
            risk,
            guardrails,
            learning: config.learning,
        })
    }

    /// A trust core on a fresh in-memory database: for dry runs and tests.
    pub fn in_memory(config: TrustConfig) -> Result<Self, TrustError> {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| TrustError::storage("create an in-memory database", e))?;
        // Nothing in memory survives a crash: no commit needs to prepare a quick recovery.
        let db = grace_ledger::Database::new(db, grace_ledger::Recovery::Full);
        TrustCore::open(Arc::new(db), config)
    }

    /// The policy store: add, replace, remove, list and inspect policy sets.
    pub fn policies(&self) -> &PolicyStore {
        &self.policies
    }

    /// The risk model.
    pub fn risk_model(&self) -> &RiskModel {
        &self.risk
    }

    /// The guardrails.
    pub fn guardrails(&self) -> &Guardrails {
        &self.guardrails
    }

    /// Decides about `request` against the active policies. Never fails: a request that cannot
    /// be evaluated is denied, saying why.
    pub fn decide(&self, request: &Request) -> Decision {
        let policies = self.policies.active();
        self.run(&policies, request).0
    }

    /// Decides about `request` against `policies` instead of the active ones (e.g. policies
    /// being tried with `grace policy test --file`), with the same guardrails and history.
    pub fn decide_with(&self, policies: &Policies, request: &Request) -> Decision {
        self.run(policies, request).0
    }

    /// Decides and explains: which policies decided (in full), which failed to evaluate, how
    /// many were evaluated, the simulated state.
    pub fn explain(&self, request: &Request) -> Explanation {
        let policies = self.policies.active();
        self.explain_with(&policies, request)
    }

    /// [`TrustCore::explain`] against `policies`.
    pub fn explain_with(&self, policies: &Policies, request: &Request) -> Explanation {
        let (decision, evaluation, evaluated) = self.run(policies, request);
        let determining = decision
            .policies
            .iter()
            .filter_map(|id| policies.get(id).cloned())
            .collect();
        Explanation {
            action: request.action,
            resource: request.resource.key(),
            determining,
            errors: evaluation.errors,
            evaluated: (evaluated, policies.len()),
            simulation: simulate(request.state, request.change),
            decision,
        }
    }

    /// Records that a change of `resource` was executed at `at_millis` (durably), for
    /// `max_changes_per_hour`. Call it after every executed change, whatever its result: a
    /// failed change may still have touched the resource.
    pub fn record_change(&self, resource: &Resource, at_millis: u64) -> Result<(), TrustError> {
        self.history.record(resource, at_millis)
    }

    /// Adds changes of `resource` another host recorded (the other replicas of a cluster), so
    /// that `max_changes_per_hour` counts them too; a time already here is not added again.
    pub fn merge_changes(&self, resource: &Resource, others: &[u64]) {
        self.history.merge(resource, others);
    }

    /// The recorded changes of `resource` in the hour before its latest one.
    pub fn recent_changes(&self, resource: &Resource) -> Vec<u64> {
        self.history.recent(resource)
    }

    fn run(&self, policies: &Policies, request: &Request) -> (Decision, Evaluation, usize) {
        let (decision, evaluation, evaluated) = self.evaluate(policies, request);
        (self.learned(decision, request), evaluation, evaluated)
    }

    /// A change allowed to a playbook whose last runs on the resource did not clear their
    /// signal ([`LearningConfig::approval_after`] in a row) needs one person's approval: what
    /// keeps failing does not keep acting unattended. Only ever raises an allow.
    fn learned(&self, mut decision: Decision, request: &Request) -> Decision {
        let after = self.learning.approval_after;
        let Some(learned) = &request.history.learned else {
            return decision;
        };
        let streak = learned.not_cleared_streak;
        if after == 0
            || streak < after
            || decision.outcome != Outcome::Allow
            || !request.action.is_change()
        {
            return decision;
        }
        decision.outcome = Outcome::RequireApproval { approvers: 1 };
        let rest = decision
            .reason
            .strip_prefix("allowed")
            .unwrap_or(&decision.reason)
            .to_owned();
        decision.reason = format!(
            "requires approval by one approver: the last {streak} runs of `{}` on `{}` did not clear their signal (learned: approval is needed until one does); was allowed{rest}",
            request.principal.name(),
            learned.about
        );
        decision
    }

    fn evaluate(&self, policies: &Policies, request: &Request) -> (Decision, Evaluation, usize) {
        let revision = policies.revision();
        let risk = self.risk.score(request);
        let deny = |reason: String, risk: Risk, guardrail: Option<Violation>| Decision {
            outcome: Outcome::Deny,
            reason,
            risk,
            policies: Vec::new(),
            guardrail,
            policy_revision: revision,
        };
        // 1. Guardrails: an invariant the change would break denies it, whatever the policies.
        let violation = self.guardrails.check_request(request, || {
            self.history
                .count_last_hour(&request.resource, request.at_millis)
        });
        if let Some(v) = violation {
            let reason = format!("denied: {}; {}", v.message, risk_text(request, &risk));
            return (deny(reason, risk, Some(v)), Evaluation::default(), 0);
        }
        let passed = if request.action.is_change() && !self.guardrails.list.is_empty() {
            "; guardrails hold"
        } else {
            ""
        };
        // 2. No policies at all: the manifest's grants, already checked, decide.
        if policies.is_empty() {
            let reason = format!(
                "allowed: no trust policies are loaded, so the playbook's grants decide; {}{passed}",
                risk_text(request, &risk)
            );
            let decision = Decision {
                outcome: Outcome::Allow,
                reason,
                risk,
                policies: Vec::new(),
                guardrail: None,
                policy_revision: revision,
            };
            return (decision, Evaluation::default(), 0);
        }
        // 3. Policies, with the risk score in their context.
        let cedar = schema::names()
            .map_err(str::to_owned)
            .and_then(|names| cedar::build(names, request, risk.score));
        let cedar = match cedar {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("denied: the request cannot be evaluated: {e}");
                return (deny(reason, risk, None), Evaluation::default(), 0);
            }
        };
        let evaluation = policies.evaluate(request, &cedar);
        let decision = combine(policies, request, &evaluation, risk, revision, passed);
        let evaluated = evaluation.evaluated;
        (decision, evaluation, evaluated)
    }
}

/// Any forbid denies; else any matching require-approval permit requires approval (by the
/// most approvers any of them asks); else any permit allows; else deny.
fn combine(
    policies: &Policies,
    request: &Request,
    e: &Evaluation,
    risk: Risk,
    revision: u64,
    passed: &str,
) -> Decision {
    let risk_part = risk_text(request, &risk);
    let errors = error_text(e);
    let (outcome, ids, reason) = if !e.forbids.is_empty() {
        let reason = format!(
            "denied by {}{errors}; {risk_part}{passed}",
            cite(policies, &e.forbids)
        );
        (Outcome::Deny, e.forbids.clone(), reason)
    } else {
        let approvals: Vec<(String, u8)> = e
            .permits
            .iter()
            .filter_map(|id| match policies.get(id)?.decision {
                PolicyDecision::RequireApproval { approvers } => Some((id.clone(), approvers)),
                _ => None,
            })
            .collect();
        if let Some(approvers) = approvals.iter().map(|(_, n)| *n).max() {
            let ids: Vec<String> = approvals.into_iter().map(|(id, _)| id).collect();
            let who = if approvers == 1 {
                "one approver".to_owned()
            } else {
                format!("{approvers} distinct approvers")
            };
            let reason = format!(
                "requires approval by {who} under {}{errors}; {risk_part}{passed}",
                cite(policies, &ids)
            );
            (Outcome::RequireApproval { approvers }, ids, reason)
        } else if !e.permits.is_empty() {
            let reason = format!(
                "allowed by {}{errors}; {risk_part}{passed}",
                cite(policies, &e.permits)
            );
            (Outcome::Allow, e.permits.clone(), reason)
        } else {
            let reason = format!(
                "denied: no policy permits `{}` on `{}` by {} `{}` (default deny){errors}; {risk_part}{passed}",
                request.action,
                request.resource.key(),
                match request.principal {
                    crate::Principal::Playbook { .. } => "playbook",
                    crate::Principal::User { .. } => "user",
                },
                request.principal.name()
            );
            (Outcome::Deny, Vec::new(), reason)
        }
    };
    Decision {
        outcome,
        reason,
        risk,
        policies: ids,
        guardrail: None,
        policy_revision: revision,
    }
}

/// `policy `ops/x` ("its reason")` or `policies `a`, `b` ("...")`.
fn cite(policies: &Policies, ids: &[String]) -> String {
    let mut out = String::from(if ids.len() == 1 {
        "policy "
    } else {
        "policies "
    });
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "`{id}`");
        if let Some(reason) = policies.get(id).and_then(|p| p.reason.as_deref()) {
            let _ = write!(out, " (\"{reason}\")");
        }
    }
    out
}

fn error_text(e: &Evaluation) -> String {
    let mut out = String::new();
    for (id, message) in &e.errors {
        let _ = write!(
            out,
            "; policy `{id}` could not be evaluated ({message}){}",
            if e.forbids.contains(id) {
                " and counts as a forbid"
            } else {
                ""
            }
        );
    }
    out
}

fn risk_text(request: &Request, risk: &Risk) -> String {
    if request.action.is_change() {
        risk.to_string()
    } else {
        "a read: risk 0/100".to_owned()
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.decision;
        writeln!(f, "{}: {} on {}", d.outcome, self.action, self.resource)?;
        writeln!(f, "  {}", d.reason)?;
        writeln!(
            f,
            "policies: {} of {} active evaluated (policy revision {})",
            self.evaluated.0, self.evaluated.1, d.policy_revision
        )?;
        for p in &self.determining {
            let decision = match p.decision {
                PolicyDecision::Allow => "permit".to_owned(),
                PolicyDecision::Deny => "forbid".to_owned(),
                PolicyDecision::RequireApproval { approvers } => {
                    format!("permit, require approval by {approvers}")
                }
            };
            writeln!(
                f,
                "  {} ({decision}; line {} of set `{}`)",
                p.id, p.line, p.set
            )?;
            if let Some(reason) = &p.reason {
                writeln!(f, "    reason: {reason}")?;
            }
            for line in p.text.lines() {
                writeln!(f, "    | {line}")?;
            }
        }
        for (id, message) in &self.errors {
            writeln!(f, "  {id} failed to evaluate: {message}")?;
        }
        match &d.guardrail {
            Some(v) => writeln!(f, "guardrail: {}", v.message)?,
            None => writeln!(f, "guardrails: none violated")?,
        }
        let s = self.simulation;
        if s.before != s.after {
            writeln!(
                f,
                "state: capacity {} → {}, healthy {} → {}",
                opt(s.before.capacity),
                opt(s.after.capacity),
                opt(s.before.healthy),
                opt(s.after.healthy)
            )?;
        }
        writeln!(f, "risk {}/100", d.risk.score)?;
        for factor in &d.risk.factors {
            writeln!(
                f,
                "  {:<19} {:>5.3} × {:.3} = {:>5.1}  {}",
                factor.kind.name(),
                factor.value,
                factor.weight,
                factor.contribution,
                factor.explanation
            )?;
        }
        Ok(())
    }
}

fn opt(n: Option<u32>) -> String {
    n.map_or_else(|| "?".to_owned(), |n| n.to_string())
}
