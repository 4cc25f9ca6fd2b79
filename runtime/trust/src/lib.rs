//! GRACE's trust core: before a playbook's host call changes the world, it decides **allow**,
//! **deny** or **require approval**, and says why in one paragraph.
//!
//! A decision runs three stages, in this order:
//!
//! 1. **Guardrails**: invariants per resource (never fewer than N healthy, at most M changes an
//!    hour, nothing during a freeze window, capacity within a budget), checked by applying the
//!    change to a copy of the resource's current state. A violation denies, naming the
//!    guardrail, the invariant and the numbers; policies are not consulted.
//! 2. **Risk score**: 0 to 100 from six named, weighted factors, each explained in one line.
//! 3. **Cedar policies**, with the risk score in their context, so a policy can say
//!    `when { context.risk_score > 80 }`.
//!
//! ```text
//! request ─▶ guardrails ──violation──▶ deny (guardrail named)
//!                 │ hold
//!                 ▼
//!            risk score ─▶ Cedar policies ─▶ any forbid            ─▶ deny
//!                                           any require-approval ─▶ require approval (n approvers)
//!                                           any permit           ─▶ allow
//!                                           nothing matches      ─▶ deny (default deny)
//! ```
//!
//! # Policies
//!
//! Policies are [Cedar](https://www.cedarpolicy.com) in policy sets named by the operator
//! (`ops`, `freeze`, `approvals`...), validated against GRACE's schema ([`SCHEMA_TEXT`]) when
//! they are added, stored in redb with every version kept ([`PolicyStore`]).
//!
//! - **Principals**: `Grace::Playbook::"<name>"` (attributes `name`, `digest`, `version`) and
//!   `Grace::User::"<name>"` (`name`, `scopes`).
//! - **Actions**: one per capability function, `Grace::Action::"scaling::SetDesiredCapacity"`,
//!   `"containers::Restart"`, `"kubernetes::ScaleDeployment"`, `"metrics::Query"`... (see
//!   [`Action`]), in the groups `"read"`, `"change"`, `"capacity"` (the three capacity
//!   changes), `"restart"` (container restart, rollout restart) and one per capability
//!   (`"scaling"`, `"containers"`, `"kubernetes"`, `"metrics"`, `"graph"`, `"anomaly"`,
//!   `"notify"`).
//! - **Resources**: `Grace::Group::"<name>"`, `Grace::Container::"<id>"`,
//!   `Grace::Service::"app=web,env=prod"` (the containers a selector picks: what `list` and
//!   `scale` act on), `Grace::Deployment::"<namespace>/<name>"`, `Grace::Query::"<text>"` (a query's
//!   text, or the selector of the series an `anomaly` read names), `Grace::Channel::"slack:#ops"`
//!   (where `notify::Send` posts: `name`, `vendor`; messages score risk 0 and only guardrails
//!   of `kind = "channel"` cover them).
//!   All but queries, nodes and channels have `name` and `environment` (`"unknown"` when nobody said), optional
//!   `tier` and `owner` (test them with `has`), and their labels as Cedar tags
//!   (`resource.hasTag("app") && resource.getTag("app") == "web"`); deployments have
//!   `namespace`, containers an optional `image`.
//! - **Context**: `change_delta` (proposed − current capacity), `change_size` (instances
//!   touched), `change_percent`, optional `current_capacity`, `proposed_capacity`, `healthy`;
//!   `risk_score` (0-100), `recent_failures`; optional `anomaly_score` and
//!   `signal_confidence` (0-100) and `incident_id`; the time in UTC: `timestamp` (seconds),
//!   `hour`, `minute`, `day_of_week` (1 = Monday) and `weekday` (`"Mon"`...).
//!
//! ## Require approval: an annotation on a permit
//!
//! Cedar has two effects; GRACE needs a third outcome. It is a **permit annotated
//! `@decision("require_approval")`**, with `@approvers("2")` for the two-person rule (1 when
//! absent). A separate policy set for approvals was the alternative; annotations won because
//! the rule stays one Cedar policy among others: the same validation, the same slicing, one
//! list to read, and Cedar's semantics unchanged (an approval policy *is* a permit: it grants
//! the action, on the condition that people agree). Cedar itself ignores annotations, so
//! GRACE checks them on load: `@decision` is `allow` or `require_approval` on a permit (only
//! `deny` on a forbid), `@approvers` a whole number from 1 to 9 and only with
//! `require_approval`, `@id` unique within its set. `@id("...")` names the policy in
//! decisions (`<set>/<id>`; `<set>/policy<n>` without it) and `@reason("...")` is quoted in
//! them.
//!
//! Outcomes combine as: **any forbid → deny**; else **any matching require-approval permit →
//! require approval** (by the most approvers any of them asks); else **any permit → allow**;
//! else **deny**. A forbid that fails to evaluate counts as matching (failing open would let
//! through what its author meant to stop). **With no policy loaded at all, everything is
//! allowed**: the playbook's grants, checked before the trust core, already bound every call,
//! and a fresh install should behave as before policies existed. Once one policy is loaded,
//! default deny applies, reads included; [`BASELINE`] is the usual first set (permit
//! everything the grants allow), and further sets carve out forbids and approvals.
//!
//! ```cedar
//! // No change to production groups during the Friday freeze.
//! @id("no-prod-friday")
//! @reason("production freeze on Friday afternoons")
//! forbid(principal, action in Grace::Action::"change", resource is Grace::Group)
//! when { resource.environment == "prod" && context.weekday == "Fri" && context.hour >= 16 };
//!
//! // Two people approve the riskiest changes.
//! @id("two-person-rule")
//! @decision("require_approval")
//! @approvers("2")
//! @reason("risk above 80")
//! permit(principal, action in Grace::Action::"change", resource)
//! when { context.risk_score > 80 };
//!
//! // Frontend containers may be restarted by any playbook.
//! @id("restart-frontends")
//! permit(principal is Grace::Playbook, action == Grace::Action::"containers::Restart",
//!        resource is Grace::Container)
//! when { resource has tier && resource.tier == "frontend" };
//! ```
//!
//! A malformed policy is rejected with its line and column (`line 3, column 18: unexpected
//! token ...`); one that does not fit the schema is rejected naming the problem (`attribute
//! `colour` on entity type `Grace::Group` not found`).
//!
//! # Guardrails
//!
//! ```toml
//! [[guardrail]]
//! name = "prod web"
//! kind = "group"               # group | container | service | deployment (any if absent)
//! match = "web-prod-*"         # glob on the resource id
//! environment = "prod"         # and/or labels = { app = "web" }
//! min_healthy = 2              # never fewer healthy instances after the change
//! max_changes_per_hour = 6     # per resource, over any sliding hour
//! max_capacity = 20            # budget
//! freeze = ["Fri 16:00-Mon 08:00", "daily 02:00-03:00", "2025-12-24T00:00:00Z/2025-12-27T00:00:00Z"]
//! ```
//!
//! Every change is applied to a copy of the state the request carries, in the worst case
//! while it is under way (a restarting instance is not healthy, new instances are not healthy
//! yet, instances removed may be the healthy ones), and every invariant of every covering
//! guardrail is checked on the result. A change that leaves an invariant no worse than it is
//! (scaling out while below `min_healthy`) is never blocked: that is remediation. When the
//! state needed is unknown, the change is denied. Changes are counted from a history the
//! trust core keeps in redb ([`TrustCore::record_change`]), so a restart does not reset it.
//! Times are UTC. Many small steps cannot add up past a budget or below a minimum: each step
//! is checked against the state it starts from.
//!
//! # Risk score
//!
//! The weighted mean of six factors, each 0 to 1 ([`RiskConfig`] sets weights and
//! environment risks):
//!
//! | factor | default weight | 0 | 1 |
//! |---|---|---|---|
//! | `blast_radius` | 0.30 | disrupts nothing running | takes down every instance; ×(1 + 0.25 × the dependents' weight: see `risk`) |
//! | `environment` | 0.20 | `dev`/`test` (0.1) | `prod` (staging 0.5, unknown 0.8) |
//! | `magnitude` | 0.15 | capacity unchanged | capacity changed by 100% or more |
//! | `recent_failures` | 0.15 | no failed run | 1 − 0.5ⁿ for n failed runs |
//! | `deployment_recency` | 0.10 | no recent deployment | deployed now; halves every 30 min |
//! | `signal_confidence` | 0.10 | the detector is certain | it is guessing (0.5 without a signal) |
//!
//! Each factor reports its value, weight, contribution (points of the score) and a one-line
//! explanation; decisions quote the top three. Reads score 0.
//!
//! # Performance
//!
//! Cedar evaluates every policy it is given, about a microsecond each on the project's
//! machine. The active set is therefore sliced when it changes: by action, by
//! `principal == ...` and `resource == ...`, and in large buckets by a `when` conjunct such
//! as `resource.tier == "db"` or `resource.getTag("app") == "web"`; a decision evaluates only
//! what can match, and gets Cedar's answer (a property test compares it with a bare
//! `is_authorized` on the whole set). With 1,000 policies a full decision takes about 10 µs
//! (`cargo bench -p grace-trust`). Policies on one action told apart only by conditions on
//! the context cannot be sliced: a thousand of those cost what Cedar costs, about 1 ms.
//!
//! # Integration
//!
//! Build a [`Request`] per host call after the grants allowed it: [`Action::from_call`] from
//! the WIT names, the [`Resource`] (with its environment, tier, owner and labels), the
//! [`State`] the capability already fetched to check its grants (a group's desired capacity
//! and healthy instances in service, a deployment's replicas and ready replicas, a
//! container's service), the [`Change`] (`Capacity { to }`, `Restart { instances: 1 }`,
//! [`Change::rolling_restart`]), the run's [`Signal`] and [`History`]. Then:
//!
//! - [`Outcome::Allow`]: run it; record the [`Decision`] in the ledger; after a change ran
//!   (whatever its result) call [`TrustCore::record_change`];
//! - [`Outcome::Deny`]: refuse with [`Decision::reason`];
//! - [`Outcome::RequireApproval`]: park the call until `approvers` distinct people approve,
//!   then decide again with fresh state (a freeze may have started meanwhile) and run it
//!   unless that decision denies.
//!
//! # Use
//!
//! ```
//! use grace_trust::{Action, Change, Outcome, Principal, Request, Resource, State, TrustConfig, TrustCore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let trust = TrustCore::in_memory(TrustConfig::from_toml(
//!     r#"
//!     [[guardrail]]
//!     kind = "group"
//!     min_healthy = 2
//!     "#,
//! )?)?;
//! trust.policies().add("base", grace_trust::BASELINE, "alice")?;
//! trust.policies().add(
//!     "approvals",
//!     r#"@id("big-prod-change") @decision("require_approval") @approvers("2")
//!        permit(principal, action in Grace::Action::"capacity", resource)
//!        when { resource.environment == "prod" && context.change_percent >= 50 };"#,
//!     "alice",
//! )?;
//!
//! let request = Request::new(
//!     Principal::playbook("scale-on-latency", "sha256:3c5d", "1.2.0"),
//!     Action::from_cedar_id("scaling::SetDesiredCapacity").ok_or("no such action")?,
//!     Resource::group("web-prod").environment("prod"),
//!     1_750_000_000_000,
//! )
//! .with_state(State::new(4, 4))
//! .with_change(Change::Capacity { to: 8 });
//!
//! let decision = trust.decide(&request);
//! assert_eq!(decision.outcome, Outcome::RequireApproval { approvers: 2 });
//! assert_eq!(decision.policies, ["approvals/big-prod-change"]);
//! println!("{}", decision.reason);
//! # Ok(())
//! # }
//! ```

mod action;
mod core;
mod decision;
mod error;
pub mod glob;
pub mod guardrails;
mod history;
mod policy;
mod request;
pub mod risk;
pub mod tables;
mod utc;

pub use action::{Action, ResourceKind};
pub use core::{Explanation, LearningConfig, TrustConfig, TrustCore};
pub use decision::{Decision, Outcome};
pub use error::{PolicyError, Problem, TrustError};
pub use guardrails::{FreezeWindow, Guardrail, Guardrails, Invariant, Violation};
pub use policy::schema::{SCHEMA_TEXT, schema};
pub use policy::store::{PolicySetVersion, PolicyStore, stored_sets};
pub use policy::{Effect, Policies, PolicyDecision, PolicyInfo};
pub use request::{
    Change, Downstream, History, Learned, Principal, Request, Resource, Signal, State,
};
pub use risk::{Factor, FactorKind, Risk, RiskConfig, RiskModel, Weights};

/// The usual first policy set: permit everything the playbook's grants allow, so that further
/// sets only need to add forbids and approvals.
pub const BASELINE: &str = r#"@id("within-grants")
@reason("the playbook's grants allow it")
permit(principal, action, resource);
"#;

/// Cedar internals used by the benchmark to compare with a bare `is_authorized` call on the
/// very request a decision evaluates. Not a stable API.
#[doc(hidden)]
pub mod bench_support {
    use crate::policy::{cedar, schema};
    use crate::{Policies, Request};

    /// The Cedar request, entities and whole policy set a decision about `request` with
    /// `risk_score` would evaluate.
    pub fn cedar_parts(
        policies: &Policies,
        request: &Request,
        risk_score: u8,
    ) -> Result<
        (
            cedar_policy::Request,
            cedar_policy::Entities,
            cedar_policy::PolicySet,
        ),
        String,
    > {
        let names = schema::names()?;
        let c = cedar::build(names, request, risk_score)?;
        Ok((c.request, c.entities, policies.to_policy_set()))
    }

    /// A Cedar request built for a decision (opaque), to time the stages apart.
    pub struct Prepared(cedar::CedarRequest);

    /// Stage 3a of a decision: the Cedar request, entities and context.
    pub fn prepare(request: &Request, risk_score: u8) -> Result<Prepared, String> {
        let names = schema::names()?;
        cedar::build(names, request, risk_score).map(Prepared)
    }

    /// Stage 3b of a decision: evaluating the sliced policies; returns how many matched.
    pub fn evaluate(policies: &Policies, request: &Request, prepared: &Prepared) -> usize {
        let e = policies.evaluate(request, &prepared.0);
        e.forbids.len() + e.permits.len()
    }

    /// How many policies a decision about `request` evaluates after slicing.
    pub fn evaluated(policies: &Policies, request: &Request) -> Result<usize, String> {
        let names = schema::names()?;
        let c = cedar::build(names, request, 0)?;
        Ok(policies.evaluated_for(request, &c))
    }

    /// Builds the Cedar request through Cedar's public API validated against the schema, and
    /// checks that decisions build the same: `Err` names what does not fit.
    pub fn validate_against_schema(request: &Request, risk_score: u8) -> Result<(), String> {
        let names = schema::names()?;
        cedar::validate(names, request, risk_score)
    }
}
