//! The trust core on the server: every host call the grants allow is decided by
//! [`grace_trust::TrustCore`] (guardrails, risk score, Cedar policies), and a change it would
//! only allow with people's approval waits for them ([`approvals`]).
//!
//! The engine asks ([`grace_engine::trust::Ask`]); this module builds the trust core's
//! [`Request`] from it: the playbook as principal, the resource as the capability saw it,
//! described further by `[[trust.resource]]` (environment, tier, owner, dependents: Auto Scaling
//! groups have no labels to say so), the playbook's failed runs in the last day, the resource's
//! latest deployment event, and the triggering event's `anomaly_score`, `confidence` and
//! `incident_id` (payload fields, 0 to 1).

pub mod approvals;
pub mod cluster_history;
pub mod offline;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grace_engine::TriggerEvent;
use grace_engine::glob::Glob;
use grace_engine::trust::{Ask, Trust, TrustDecision, TrustOutcome};
use grace_trust::{
    Decision, History, Outcome, Principal, Request, Resource, ResourceKind, Signal, TrustConfig,
    TrustCore,
};
use serde::Deserialize;
use serde_json::{Value, json};

use approvals::{Approval, ApprovalState, Approvals, approval_id};
use grace_model::capability::Effect;

/// How far back failed runs count towards a playbook's `recent_failures`.
const FAILURE_WINDOW_MS: u64 = 24 * 3600 * 1000;
/// Failed runs remembered per playbook.
const MAX_FAILURES_KEPT: usize = 64;
/// Resources whose latest deployment is remembered.
const MAX_DEPLOYMENTS_KEPT: usize = 10_000;

/// `[trust]` in `grace.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrustSettings {
    /// `[trust.risk]`: factor weights and environment risks.
    #[serde(default)]
    pub risk: grace_trust::RiskConfig,
    /// `[[trust.guardrail]]`.
    #[serde(default)]
    pub guardrail: Vec<grace_trust::Guardrail>,
    /// `approval_ttl = "1h"`: how long an approval request waits before it counts as denied.
    #[serde(default, with = "humantime_serde")]
    pub approval_ttl: Option<Duration>,
    /// `[[trust.resource]]`: what the trust core should know of resources.
    #[serde(default)]
    pub resource: Vec<ResourceDefaults>,
    /// `[trust.learning]`: what the trust core does with runs' outcomes (`approval_after`).
    #[serde(default)]
    pub learning: grace_trust::LearningConfig,
}

/// `[[trust.resource]]`: attributes of the resources whose id matches, for policies and the risk
/// score (labels, where a resource has them, say the same with `environment`, `tier`, `owner`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourceDefaults {
    /// `group`, `container`, `service`, `deployment` (any if absent).
    #[serde(default)]
    pub kind: Option<ResourceKind>,
    /// Glob on the resource's id (`web-prod-*`, `shop/*`).
    #[serde(rename = "match")]
    pub matches: String,
    /// `prod`, `staging`, `dev`...
    #[serde(default)]
    pub environment: Option<String>,
    /// Its tier.
    #[serde(default)]
    pub tier: Option<String>,
    /// The owning team.
    #[serde(default)]
    pub owner: Option<String>,
    /// How many services depend on it.
    #[serde(default)]
    pub dependents: Option<u32>,
}

/// Default wait for approvals.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(3600);

impl TrustSettings {
    /// Checks the settings; errors name the key.
    pub fn validate(&self) -> Result<(TrustConfig, Duration), String> {
        let ttl = self.approval_ttl.unwrap_or(DEFAULT_APPROVAL_TTL);
        if ttl < Duration::from_secs(1) {
            return Err("trust.approval_ttl: must be at least 1s".into());
        }
        for (i, r) in self.resource.iter().enumerate() {
            if r.matches.trim().is_empty() {
                return Err(format!("trust.resource[{i}].match: must not be empty"));
            }
        }
        let config = TrustConfig {
            risk: self.risk.clone(),
            guardrails: self.guardrail.clone(),
            learning: self.learning,
        };
        grace_trust::RiskModel::new(config.risk.clone()).map_err(|e| format!("trust.risk: {e}"))?;
        grace_trust::Guardrails::new(config.guardrails.clone())
            .map_err(|e| format!("trust.guardrail: {e}"))?;
        Ok((config, ttl))
    }
}

/// The trust core as the engine's [`Trust`]: decisions, approvals, and the history they need.
pub struct HostTrust {
    core: Arc<TrustCore>,
    approvals: Approvals,
    ttl: Duration,
    catalogue: Vec<(Glob, ResourceDefaults)>,
    /// Wall-clock times of each playbook's recent failed runs.
    failures: Mutex<HashMap<String, VecDeque<u64>>>,
    /// Each resource's latest deployment event (event time, ms).
    deployments: Mutex<HashMap<String, u64>>,
    /// Wall clock (approvals are human time, even when runs are simulated).
    now: fn() -> u64,
    /// For one run outside the server (`grace run`): nobody could approve, so a change that
    /// needs approval is refused instead of leaving a request behind.
    one_run: bool,
    /// Clustered: every replica's changes of each resource, for `max_changes_per_hour`.
    cluster_history: Option<Arc<cluster_history::ClusterHistory>>,
    /// The health graph (the server's with `[graph]`, the simulated fleet's in a dry run):
    /// what depends on each resource, for the blast-radius factor.
    graph: Option<Arc<dyn grace_executor::GraphReader>>,
    /// What was learnt from runs' outcomes, for `recent_failures` and `approval_after`.
    learning: Option<Arc<crate::outcomes::learning::Learning>>,
    /// The meta-loop's pauses: a paused playbook's changes of the resource that flapped are
    /// refused.
    meta: Option<Arc<crate::meta::Meta>>,
}

impl std::fmt::Debug for HostTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTrust")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

/// Why a trust core cannot be set up: its settings, its database, or the policies given to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustSetupError {
    /// A `[trust]` setting cannot be used; the message names the key.
    #[error("{0}")]
    Settings(String),
    /// The trust core's or the approvals' tables cannot be opened.
    #[error("cannot open the trust core's tables: {0}")]
    Storage(String),
    /// A policy set is refused (it does not parse or does not fit the schema).
    #[error("policy set `{set}`: {message}")]
    Policy {
        /// The set's name.
        set: String,
        /// Why.
        message: String,
    },
    /// A policy file cannot be read or named.
    #[error("`{path}`: {message}")]
    PolicyFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
    /// A data directory's stored policies cannot be read.
    #[error("cannot read the policies stored in `{path}`: {message}")]
    StoredPolicies {
        /// The database.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
}

/// Why the trust core cannot decide a call: it is then refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{call}` {why}")]
pub struct Undecidable {
    /// `interface.function`.
    pub call: String,
    /// What is missing.
    pub why: &'static str,
}

impl HostTrust {
    /// For one run outside the server (`grace run` against real backends): a change that would
    /// wait for people's approval is refused, and no approval request is stored.
    pub fn for_one_run(mut self) -> HostTrust {
        self.one_run = true;
        self
    }

    /// The trust core on the server's database, with `settings`.
    pub fn open(
        db: Arc<grace_ledger::Database>,
        settings: &TrustSettings,
    ) -> Result<HostTrust, TrustSetupError> {
        let (config, ttl) = settings.validate().map_err(TrustSetupError::Settings)?;
        let core = Arc::new(
            TrustCore::open(db.clone(), config)
                .map_err(|e| TrustSetupError::Storage(e.to_string()))?,
        );
        let approvals = Approvals::open(db).map_err(|e| TrustSetupError::Storage(e.to_string()))?;
        Ok(HostTrust {
            core,
            approvals,
            ttl,
            catalogue: settings
                .resource
                .iter()
                .map(|r| (Glob::new(r.matches.clone()), r.clone()))
                .collect(),
            failures: Mutex::new(HashMap::new()),
            deployments: Mutex::new(HashMap::new()),
            now: grace_engine::event::system_now_millis,
            one_run: false,
            cluster_history: None,
            graph: None,
            learning: None,
            meta: None,
        })
    }

    /// Keeps approval requests in `approvals` (the engine's, when clustered) instead of the
    /// server's database.
    pub fn with_approvals(mut self, approvals: Approvals) -> HostTrust {
        self.approvals = approvals;
        self
    }

    /// Counts every replica's changes of a resource, from `history` (the cluster's), in
    /// `max_changes_per_hour`, and adds this replica's there.
    pub fn with_cluster_history(mut self, history: cluster_history::ClusterHistory) -> HostTrust {
        self.cluster_history = Some(Arc::new(history));
        self
    }

    /// Tells the risk model what depends on each resource, from the health graph.
    pub fn with_graph(mut self, graph: Arc<dyn grace_executor::GraphReader>) -> HostTrust {
        self.graph = Some(graph);
        self
    }

    /// Tells the trust core what was learnt from runs' outcomes (see
    /// [`crate::outcomes::learning`]).
    pub fn with_learning(
        mut self,
        learning: Arc<crate::outcomes::learning::Learning>,
    ) -> HostTrust {
        self.learning = Some(learning);
        self
    }

    /// Refuses the changes the meta-loop's pauses hold (see [`crate::meta`]).
    pub fn with_meta(mut self, meta: Arc<crate::meta::Meta>) -> HostTrust {
        self.meta = Some(meta);
        self
    }

    /// The trust core (policies, guardrails, risk model).
    pub fn core(&self) -> &TrustCore {
        &self.core
    }

    /// The approval requests.
    pub fn approvals(&self) -> &Approvals {
        &self.approvals
    }

    /// How long approvals wait.
    pub fn approval_ttl(&self) -> Duration {
        self.ttl
    }

    /// A run of `playbook` failed at `at` (wall clock): it counts towards the risk of its next
    /// changes for a day.
    pub fn run_failed(&self, playbook: &str, at: u64) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let list = failures.entry(playbook.to_owned()).or_default();
        list.push_back(at);
        while list.len() > MAX_FAILURES_KEPT {
            list.pop_front();
        }
    }

    /// Notes deployment events (`deployment`, `deploy.*`, `*.deployed`...): how recent the last
    /// deployment of a resource is weighs on the risk of changing it.
    pub fn observe(&self, event: &TriggerEvent) {
        let t = &event.event_type;
        if !(t.starts_with("deploy") || t.ends_with("deployed") || t.ends_with(".deployment")) {
            return;
        }
        let mut deployments = self.deployments.lock().unwrap_or_else(|e| e.into_inner());
        if deployments.len() >= MAX_DEPLOYMENTS_KEPT && !deployments.contains_key(&event.resource) {
            // Forget the oldest: the factor halves every 30 minutes, old ones weigh nothing.
            if let Some(oldest) = deployments
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
            {
                deployments.remove(&oldest);
            }
        }
        let latest = deployments.entry(event.resource.clone()).or_default();
        *latest = (*latest).max(event.timestamp);
    }

    fn recent_failures(&self, playbook: &str, now: u64) -> u32 {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(playbook).map_or(0, |list| {
            let n = list
                .iter()
                .filter(|at| now.saturating_sub(**at) < FAILURE_WINDOW_MS)
                .count();
            u32::try_from(n).unwrap_or(u32::MAX)
        })
    }

    fn last_deployment(&self, resource: &Resource) -> Option<u64> {
        let deployments = self.deployments.lock().unwrap_or_else(|e| e.into_inner());
        [resource.id.as_str(), resource.name.as_str()]
            .iter()
            .filter_map(|k| deployments.get(*k).copied())
            .max()
    }

    /// `resource` with what `[[trust.resource]]` says of it (labels win where both say).
    fn describe(&self, mut resource: Resource) -> Resource {
        for (glob, d) in &self.catalogue {
            if d.kind.is_some_and(|k| k != resource.kind) || !glob.matches(&resource.id) {
                continue;
            }
            if resource.environment.is_none() {
                resource.environment = d.environment.clone();
            }
            if resource.tier.is_none() {
                resource.tier = d.tier.clone();
            }
            if resource.owner.is_none() {
                resource.owner = d.owner.clone();
            }
            if let Some(n) = d.dependents {
                resource.dependents = resource.dependents.max(n);
            }
        }
        if let Some(graph) = &self.graph {
            // The graph's own view, never the guest's: discovery saw these dependents.
            resource.downstream = grace_executor::graph::downstream(graph.as_ref(), &resource);
            let direct = resource.downstream.iter().filter(|d| d.depth == 1).count();
            resource.dependents = resource
                .dependents
                .max(u32::try_from(direct).unwrap_or(u32::MAX));
        }
        resource
    }

    /// The trust core's request for `ask`; `Ok(None)` for a call that acts on no resource
    /// (functions whose descriptor says they touch only the run: logging, the clock, the
    /// manifest's configuration), and an error for
    /// any other call the request cannot be built for, which is then refused: a call of a
    /// resource capability never runs undecided.
    pub fn request(&self, ask: &Ask<'_>) -> Result<Option<Request>, Undecidable> {
        let descriptor = ask.call.descriptor;
        if descriptor.effect == Effect::Local {
            return Ok(None);
        }
        let undecidable = |why| Undecidable {
            call: format!("{}.{}", descriptor.interface, descriptor.name),
            why,
        };
        let action = descriptor
            .action()
            .ok_or_else(|| undecidable("has no trust action"))?;
        let principal = Principal::playbook(
            ask.guest.name.clone(),
            ask.guest.digest.clone(),
            ask.guest.version.clone(),
        );
        let (resource, state, change) = match ask.proposal {
            Some(p) => (p.resource.clone(), p.state, p.change),
            None => (
                ask.call
                    .resource
                    .clone()
                    .ok_or_else(|| undecidable("names no resource"))?,
                grace_trust::State::default(),
                grace_trust::Change::None,
            ),
        };
        let resource = self.describe(resource);
        let history = History {
            recent_failures: self.recent_failures(&ask.guest.name, (self.now)()),
            last_deployment_millis: self.last_deployment(&resource),
            // Learnt per playbook and the resource its trigger watched (the run's event's),
            // which is what the outcomes judged.
            learned: self
                .learning
                .as_ref()
                .zip(ask.event)
                .and_then(|(l, e)| l.learned(&ask.guest.name, &e.resource)),
        };
        Ok(Some(
            Request::new(principal, action, resource, ask.at_millis)
                .with_state(state)
                .with_change(change)
                .with_signal(ask.event.map(signal_of).unwrap_or_default())
                .with_history(history),
        ))
    }

    /// Applies the approval flow to a decision that requires approval.
    async fn await_or_use_approval(
        &self,
        ask: &Ask<'_>,
        request: &Request,
        decision: &Decision,
        approvers: u8,
    ) -> TrustDecision {
        let details = details_of(decision, None);
        let Some(key) = ask.key else {
            return TrustDecision::deny(format!(
                "{}; approval is only given for changes, and this call reads",
                decision.reason
            ))
            .with_details(details);
        };
        if self.one_run {
            return TrustDecision::deny(format!(
                "{}; it needs {approvers} {} to approve it, and a one-off `grace run` cannot wait for them: publish the event to `grace serve`, whose runs wait for approval",
                decision.reason,
                if approvers == 1 { "person" } else { "people" }
            ))
            .with_details(details);
        }
        let id = approval_id(ask.run_id, key, &ask.call.args);
        let now = (self.now)();
        let existing = match self.approvals.get(&id).await {
            Ok(a) => a,
            Err(e) => {
                return TrustDecision::deny(format!(
                    "{}; approval `{id}` cannot be read, so the change is refused: {e}",
                    decision.reason
                ))
                .with_details(details);
            }
        };
        let approval = match existing {
            Some(a) => a,
            None => {
                let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
                let a = Approval {
                    id: id.clone(),
                    run_id: ask.run_id.to_owned(),
                    idempotency_key: key.to_owned(),
                    playbook: ask.guest.name.clone(),
                    digest: ask.guest.digest.clone(),
                    action: format!("{}.{}", ask.call.interface(), ask.call.function()),
                    args: ask.call.args.clone(),
                    resource: request.resource.key(),
                    approvers,
                    reason: decision.reason.clone(),
                    decision: serde_json::to_value(decision).unwrap_or(Value::Null),
                    state: ApprovalState::Pending,
                    created_at: now,
                    expires_at: now.saturating_add(ttl),
                    decided_at: None,
                    approved_by: Vec::new(),
                    denied_by: None,
                };
                match self.approvals.ask(&a).await {
                    Ok(stored) => {
                        tracing::info!(approval = %id, run = %ask.run_id, playbook = %ask.guest.name, "a change waits for approval");
                        stored
                    }
                    Err(e) => {
                        return TrustDecision::deny(format!(
                            "{}; the approval request cannot be stored, so the change is refused: {e}",
                            decision.reason
                        ))
                        .with_details(details);
                    }
                }
            }
        };
        // Approved under a policy that asked for fewer people than the one deciding now: the
        // request is open again for the rest.
        let approval = if approval.state == ApprovalState::Approved
            && approval.approved_by.len() < usize::from(approvers)
        {
            let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
            match self
                .approvals
                .reopen(&id, approvers, now.saturating_add(ttl))
                .await
            {
                Ok(Some(reopened)) => reopened,
                Ok(None) => approval,
                Err(e) => {
                    return TrustDecision::deny(format!(
                        "{}; approval `{id}` cannot be reopened for {approvers} approvers, so the change is refused: {e}",
                        decision.reason
                    ))
                    .with_details(details);
                }
            }
        } else {
            approval
        };
        let details = details_of(decision, Some(&approval));
        match approval.state {
            ApprovalState::Pending if now < approval.expires_at => TrustDecision {
                outcome: TrustOutcome::AwaitApproval { approval: id },
                reason: decision.reason.clone(),
                details: Some(details),
            },
            ApprovalState::Pending | ApprovalState::Expired => TrustDecision::deny(format!(
                "approval {id} expired without {} approving it: an unanswered request counts as denied ({})",
                people(approval.approvers),
                decision.reason
            ))
            .with_details(details),
            ApprovalState::Approved => TrustDecision::allow(format!(
                "approved by {} (approval {id}); {}",
                approval.approvers_text(),
                decision.reason
            ))
            .with_details(details),
            ApprovalState::Denied => {
                let (by, comment) = approval.denied_by.as_ref().map_or(("someone", None), |v| {
                    (v.by.as_str(), v.comment.as_deref())
                });
                let said = comment.map(|c| format!(": \"{c}\"")).unwrap_or_default();
                TrustDecision::deny(format!("denied by {by} (approval {id}){said}"))
                    .with_details(details)
            }
            ApprovalState::Cancelled => {
                TrustDecision::deny(format!("approval {id} was withdrawn: its run was cancelled"))
                    .with_details(details)
            }
        }
    }
}

fn people(n: u8) -> String {
    if n == 1 {
        "anyone".to_owned()
    } else {
        format!("{n} people")
    }
}

/// The triggering event's signal: payload `anomaly_score` and `confidence` (0 to 1) and
/// `incident_id`.
fn signal_of(event: &TriggerEvent) -> Signal {
    let p = &event.payload;
    let unit = |k: &str| {
        p.get(k)
            .and_then(Value::as_f64)
            .filter(|v| (0.0..=1.0).contains(v))
    };
    Signal {
        anomaly_score: unit("anomaly_score"),
        confidence: unit("confidence"),
        incident_id: p
            .get("incident_id")
            .and_then(Value::as_str)
            .map(|s| s.chars().take(256).collect()),
    }
}

/// What the ledger and the timeline keep of a decision.
/// `decided` with the resource's state as the trust core saw it (the provider's answer, never
/// the guest's) and the change proposed: the record a run's cost is read from
/// (`crate::outcomes::cost`).
fn with_proposal(mut decided: TrustDecision, request: &Request) -> TrustDecision {
    if request.change == grace_trust::Change::None {
        return decided;
    }
    if let Some(details) = decided.details.as_mut().and_then(Value::as_object_mut) {
        details.insert("resource".into(), json!(request.resource.key()));
        details.insert("state".into(), json!(request.state));
        details.insert("change".into(), json!(request.change));
    }
    decided
}

fn details_of(decision: &Decision, approval: Option<&Approval>) -> Value {
    let mut v = json!({
        "outcome": decision.outcome,
        "risk": decision.risk,
        "policies": decision.policies,
        "policy_revision": decision.policy_revision,
    });
    if let Some(g) = &decision.guardrail {
        v["guardrail"] = json!(g);
    }
    if let Some(a) = approval {
        v["approval"] = json!({
            "id": a.id,
            "state": a.state,
            "approvers": a.approvers,
            "approved_by": a.approved_by,
            "denied_by": a.denied_by,
        });
    }
    v
}

#[async_trait::async_trait]
impl Trust for HostTrust {
    async fn decide(&self, ask: &Ask<'_>) -> TrustDecision {
        let request = match self.request(ask) {
            Ok(Some(request)) => request,
            Ok(None) => {
                return TrustDecision::allow(
                    "within grants; logging, the clock and configuration act on no resource, so no trust decision",
                );
            }
            Err(e) => {
                return TrustDecision::deny(format!(
                    "denied: the trust core cannot decide this call, so it is refused: {e}"
                ));
            }
        };
        // A playbook paused for flapping changes nothing it flapped, whichever run asks: one
        // queued before the pause, one going on after an approval, one fired by another event.
        if ask.proposal.is_some()
            && let Some(pause) = self
                .meta
                .as_ref()
                .and_then(|m| m.holding(&ask.guest.name, &request.resource.key()))
        {
            return TrustDecision::deny(format!(
                "denied: `{}` is paused for `{}` since {} ({}); a person resumes it with `grace pauses resume --playbook {} --resource {}`",
                pause.playbook,
                pause.resource,
                grace_model::event::format_millis(pause.since),
                pause.reason,
                pause.playbook,
                pause.resource
            ));
        }
        // Clustered, the other replicas' changes of the resource count too (a shard that moved
        // brings its resources' recent changes): they are added to this replica's history
        // before the guardrails count.
        if let (Some(history), Some(_)) = (&self.cluster_history, ask.proposal) {
            let resource = request.resource.key();
            match history.of(&resource).await {
                Ok(times) => self.core.merge_changes(&request.resource, &times),
                Err(e) => {
                    return TrustDecision::deny(format!(
                        "denied: the cluster's recent changes of `{resource}` cannot be read, so the change is refused: {e}"
                    ));
                }
            }
        }
        // Without policies nothing reaches Cedar (guardrails and the risk score are plain code):
        // decided here, on the snapshot just taken, sparing each call a hop to a blocking thread.
        let policies = self.core.policies().active();
        let decided = if policies.is_empty() {
            Ok((self.core.decide_with(&policies, &request), request))
        } else {
            // Off the guest's fiber: Cedar checks the stack it has left, which on a fiber it
            // cannot measure (it would refuse every policy with "recursion limit reached").
            let core = self.core.clone();
            tokio::task::spawn_blocking(move || {
                let decision = core.decide_with(&policies, &request);
                (decision, request)
            })
            .await
        };
        let (decision, request) = match decided {
            Ok(d) => d,
            Err(e) => {
                return TrustDecision::deny(format!(
                    "the trust core failed while deciding, so the call is refused: {e}"
                ));
            }
        };
        let decided = match decision.outcome {
            Outcome::Allow => TrustDecision::allow(decision.reason.clone())
                .with_details(details_of(&decision, None)),
            Outcome::Deny => TrustDecision::deny(decision.reason.clone())
                .with_details(details_of(&decision, None)),
            Outcome::RequireApproval { approvers } => {
                self.await_or_use_approval(ask, &request, &decision, approvers)
                    .await
            }
        };
        with_proposal(decided, &request)
    }

    fn executed(&self, ask: &Ask<'_>) {
        let Some(proposal) = ask.proposal else { return };
        let resource = self.describe(proposal.resource.clone());
        if let Err(e) = self.core.record_change(&resource, ask.at_millis) {
            tracing::error!(resource = %resource.key(), "the trust core cannot record a change: {e}");
        }
        // Clustered: told to the engine without holding the run up; a replica deciding a change
        // of this resource before it lands may count one change fewer (see docs/cluster.md).
        if let (Some(history), Ok(runtime)) = (
            self.cluster_history.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            let (key, at) = (resource.key(), ask.at_millis);
            runtime.spawn(async move {
                if let Err(e) = history.add(&key, at).await {
                    tracing::warn!(resource = %key, "a change could not be added to the cluster's history: {e}");
                }
            });
        }
    }
}
