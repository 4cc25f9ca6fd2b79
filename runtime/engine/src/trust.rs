//! The trust seam: after the grants allow a call and before it runs, the trust core decides
//! **allow**, **deny** or **await approval**.
//!
//! The engine knows what is asked ([`Ask`]: who, which call, on what resource in which state,
//! with which change, for which event) and what to do with each answer; *how* to decide is the
//! host's business ([`Trust`]). `grace serve` plugs in the trust core of `grace-trust`
//! (policies, risk score, guardrails, approvals), and so do `grace run --dry-run` and
//! `grace replay`, on a throwaway database; [`PassThrough`] is for the engine's own tests and
//! examples, so a host sets [`RunEnv::trust`](crate::RunEnv::trust) for every guest it runs.
//!
//! Awaiting approval is not waiting in the guest: the run stops there (its status is
//! [`RunStatus::WaitingApproval`](crate::RunStatus::WaitingApproval)) and holds no instance,
//! memory or deadline while people decide. When they have, the host runs the playbook again as
//! a retry of the same run: the changes made before the pause are replayed from the ledger by
//! their idempotency keys, and the call that waited is decided again, this time with the
//! approval (or the refusal) on record under the same key.

use std::sync::Arc;

use grace_model::capability::Function;
use grace_model::resource::{Change, Resource, State};
use serde_json::Value;

use crate::event::TriggerEvent;
use crate::run::GuestInfo;

/// One host call, as the pipeline and the trust core see it.
#[derive(Debug, Clone)]
pub struct Call {
    /// What the called function is (read or change, resource kind, Cedar action, lock):
    /// the one description of it, in `grace-model`.
    pub descriptor: &'static Function,
    /// Arguments as recorded (long texts shortened).
    pub args: Value,
    /// What a change acts on (a group, a container, `namespace/name`): with the run and the
    /// change's rank, what its idempotency key is made of.
    pub target: String,
    /// What a read looks at, for the trust core (changes bring theirs in their [`Proposal`]).
    pub resource: Option<Resource>,
    /// The resource lock a change holds from its checks until its result is recorded
    /// (see `grace_executor::locks`); `None` for reads.
    pub lock: Option<String>,
    /// The provider the call was routed to, recorded in the result of each of its ledger
    /// entries (`"provider": "aws-eu"`); `None` for host-local calls and unmapped resources.
    pub provider: Option<Arc<str>>,
}

impl Call {
    fn new(descriptor: &'static Function, target: String, args: Value) -> Self {
        Call {
            descriptor,
            args,
            lock: descriptor
                .is_change()
                .then(|| format!("{}/{target}", descriptor.interface)),
            target,
            resource: None,
            provider: None,
        }
    }

    /// The WIT interface, e.g. `scaling`.
    pub fn interface(&self) -> &'static str {
        self.descriptor.interface
    }

    /// The WIT function, e.g. `set-desired-capacity`.
    pub fn function(&self) -> &'static str {
        self.descriptor.name
    }

    /// Whether the call changes the world.
    pub fn is_change(&self) -> bool {
        self.descriptor.is_change()
    }

    /// The provider `route` resolved the call's resource to, if it resolved.
    pub(crate) fn via<T: ?Sized>(
        mut self,
        route: &Result<grace_executor::Provider<T>, grace_executor::RouteError>,
    ) -> Self {
        self.provider = route.as_ref().ok().map(|p| Arc::from(p.name()));
        self
    }

    /// A call served by the host-wide `provider` (a queue rather than a routed resource).
    pub(crate) fn provided_by(mut self, provider: impl Into<Arc<str>>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// A call of a function that only reads (or touches only the run).
    pub(crate) fn read(descriptor: &'static Function, args: Value) -> Self {
        debug_assert!(!descriptor.is_change(), "{} changes", descriptor.name);
        Call::new(descriptor, String::new(), args)
    }

    /// The resource a read looks at.
    pub(crate) fn on(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// A call of a function that changes `target`.
    pub(crate) fn change(
        descriptor: &'static Function,
        target: impl Into<String>,
        args: Value,
    ) -> Self {
        debug_assert!(descriptor.is_change(), "{} only reads", descriptor.name);
        Call::new(descriptor, target.into(), args)
    }

    /// A change whose resource lock is `key` rather than its own target: for resources that
    /// can overlap (label selectors), one key for all of them.
    pub(crate) fn locking(mut self, key: impl Into<String>) -> Self {
        self.lock = Some(key.into());
        self
    }
}

/// What a change would do, as the capability saw it while checking the grants: the resource
/// (with its labels), its state now and the change proposed.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// What the change acts on.
    pub resource: Resource,
    /// Its state before the change.
    pub state: State,
    /// What the change would do to it.
    pub change: Change,
}

/// Everything the trust core is told about one call.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The guest making the call.
    pub guest: &'a GuestInfo,
    /// The call (interface, function, arguments as recorded).
    pub call: &'a Call,
    /// The change's idempotency key: the same in every attempt of the run, so an approval given
    /// for it is found when the run goes on. `None` for reads.
    pub key: Option<&'a str>,
    /// For changes: the resource, its state and the change, as the grants check saw them.
    pub proposal: Option<&'a Proposal>,
    /// The event that triggered the run (`None` for collectors).
    pub event: Option<&'a TriggerEvent>,
    /// When the call is made, on the run clock (milliseconds since the epoch).
    pub at_millis: u64,
}

/// What the trust core decided, with the details that go into the ledger entry and the
/// timeline (risk score and factors, deciding policies, guardrail, approvers).
#[derive(Debug, Clone, PartialEq)]
pub struct TrustDecision {
    /// Allow, deny or await approval.
    pub outcome: TrustOutcome,
    /// Why, for humans; recorded as the decision's reason.
    pub reason: String,
    /// Structured details (a JSON object), recorded with the decision.
    pub details: Option<Value>,
}

/// The three answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustOutcome {
    /// Go ahead.
    Allow,
    /// Refused: the guest receives `denied` with the reason.
    Deny,
    /// People must approve first: the run stops and waits for approval `approval`.
    AwaitApproval {
        /// The approval request's id.
        approval: String,
    },
}

impl TrustDecision {
    /// Allow, for `reason`.
    pub fn allow(reason: impl Into<String>) -> Self {
        TrustDecision {
            outcome: TrustOutcome::Allow,
            reason: reason.into(),
            details: None,
        }
    }

    /// Deny, for `reason`.
    pub fn deny(reason: impl Into<String>) -> Self {
        TrustDecision {
            outcome: TrustOutcome::Deny,
            reason: reason.into(),
            details: None,
        }
    }

    /// With structured details (a JSON object).
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// Decides whether a call the grants allow may run.
///
/// `decide` is awaited on the guest's call path, which runs on a wasmtime fiber: work that needs
/// a real thread stack (Cedar measures the stack it has left, and a fiber's is not the thread's)
/// belongs on a blocking thread (`tokio::task::spawn_blocking`).
#[async_trait::async_trait]
pub trait Trust: Send + Sync {
    /// Decides about one call.
    async fn decide(&self, ask: &Ask<'_>) -> TrustDecision;

    /// Told after a change was executed, whatever its result (a failed change may still have
    /// touched the resource): e.g. to count changes per hour.
    fn executed(&self, _ask: &Ask<'_>) {}
}

/// Allows every call the grants allow.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

#[async_trait::async_trait]
impl Trust for PassThrough {
    async fn decide(&self, _ask: &Ask<'_>) -> TrustDecision {
        TrustDecision::allow("within grants; no trust policy configured")
    }
}
