//! The one path every host call takes, whatever the capability:
//!
//! ```text
//! admit (count against max_host_calls; over the limit the guest is stopped)
//!   → authorize:
//!       resolve the provider (configuration routes the resource; unmapped is refused)
//!       → identifiers valid by that provider's rules? (invalid-argument)
//!       → within the manifest's grants and bounds, and the provider the grant names? (denied)
//!   → trust decision (allow, deny, or stop the run until people approve)
//!   → execute (on the resolved provider, bounded by the run's deadline)
//!   → ledger append (arguments, decision, result with the provider's name; the guest is
//!     stopped if it cannot be recorded)
//!   → typed result back to the guest
//! ```
//!
//! Capability modules supply only the two closures: what to check and what to do. The provider
//! is resolved before the call enters the pipeline ([`Call::via`]), so that every record of
//! the call names where it went.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use grace_executor::{ExecError, Executors, Reconciled};
use grace_ledger::{Decision, Ledger, NewEntry, Pending, Verdict};
use grace_model::resource::Resource;
use serde::Serialize;
use serde_json::{Value, json};

use crate::bindings::types::Error as WitError;
use crate::bounds::{RunBounds, json_len, record_ok};
use crate::event::TriggerEvent;
use crate::grants::{Denial, Grants};
use crate::journal::{ChangeRecord, Journal};
use crate::manifest::Limits;
use crate::run::{Failure, FailureKind, GuestInfo, TimelineEntry};
pub use crate::trust::Call;
use crate::trust::{Ask, Proposal, Trust, TrustDecision, TrustOutcome};

/// Longest text argument (names, queries, ids) a guest may pass.
pub const MAX_TEXT_ARG_BYTES: usize = 4096;
/// How much of a long text argument the ledger keeps.
const PREVIEW_BYTES: usize = 256;

/// The field of a recorded error naming the ledger entry of an earlier attempt's change whose
/// read-back met a conflict (the resource was changed by someone else since, or now routes to
/// another provider): no retry of the run can get past it.
pub const UNRECONCILED_FROM: &str = "unreconciled_from";

/// In the record of a change made after an earlier attempt's intent whose outcome was unknown,
/// once the resource read back showed it not made: that intent's ledger sequence number. An
/// audit across replicas tells such a change, made again knowingly, from one made twice.
pub const READ_BACK_FROM: &str = "read_back_from";

/// The idempotency key of the `rank`-th (from 1) `interface.function` change of `target` in
/// run `run_id`: the same in every attempt of the run, so a retried run can tell which of its
/// changes an earlier attempt already made. Length-prefixed, so no two inputs collide.
pub fn idempotency_key(
    run_id: &str,
    interface: &str,
    function: &str,
    target: &str,
    rank: u32,
) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for part in [run_id, interface, function, target] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(rank.to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A change an earlier attempt of the run completed.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedChange {
    /// The ledger sequence number of its record.
    pub seq: u64,
    /// What it returned.
    pub ok: Value,
    /// Its WIT interface.
    pub interface: String,
    /// The arguments it was made with: what a replay records as done.
    pub args: Value,
}

/// Changes that earlier attempts of a run completed, by idempotency key.
pub type Completed = std::collections::HashMap<String, CompletedChange>;

/// The completed changes among a run's ledger entries (records of allowed changes whose result
/// is `ok`; intents and failures are not completions, so those changes may run again).
pub fn completed_changes(entries: &[ChangeRecord]) -> Completed {
    entries
        .iter()
        .filter(|e| e.is_allowed() && e.interface != "run")
        .filter_map(|e| {
            let key = e.key()?;
            let ok = e.result.get("ok")?;
            Some((
                key.to_owned(),
                CompletedChange {
                    seq: e.seq,
                    ok: ok.clone(),
                    interface: e.interface.clone(),
                    args: e.args.clone(),
                },
            ))
        })
        .collect()
}

/// A change an earlier attempt of the run began (its intent is on record) without a recorded
/// completion: the provider may or may not have made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unknown {
    /// The ledger sequence number of its first intent record.
    pub seq: u64,
    /// Its WIT interface.
    pub interface: String,
    /// When that intent was recorded, on the run clock (milliseconds since the epoch).
    pub at_millis: u64,
    /// The arguments it recorded: what that attempt asked for. A retry may ask for something
    /// else (its playbook reads the state the earlier change left), but the same change, by its
    /// key, is what is read back, and what is recorded when it reads back as made.
    pub args: Value,
    /// What the intent kept for reading the resource back (its `before` field: the version
    /// read before the change, the restart marker written with it); `null` when nothing.
    pub before: Value,
    /// The provider the intent was routed to (`None` for an intent that named none): the only
    /// one that can say whether the change happened.
    pub provider: Option<String>,
}

/// Changes whose outcome is unknown, by idempotency key.
pub type Unknowns = std::collections::HashMap<String, Unknown>;

/// Why a change whose fence check passed was not made all the same.
const VOID_PROOF: &str = "the fence check's proof no longer held right before the change (the process was held up, or this replica gave the run's shard up)";

/// Whether the recorded outcome `result` of a change proves the change was not made: a
/// failure the provider answered with (see [`ExecError::proves_not_applied`]). A timeout, a
/// transport or server error, or a record that cannot be read leaves the outcome unknown.
fn proves_not_applied(result: &Value) -> bool {
    result
        .get("error")
        .and_then(|error| serde_json::from_value::<ExecError>(error.clone()).ok())
        .is_some_and(|e| e.proves_not_applied())
}

/// The changes among a run's ledger entries that were begun (an intent on record) and never
/// completed (no record with a result `ok`): each one's first intent whose outcome is unknown,
/// since the change may have happened any time after it. An intent followed by a failure that
/// proves the change was not made (a `404`, a `403`, a rejected precondition) leaves nothing
/// unknown: a retry makes that change as a new one.
pub fn unknown_changes(entries: &[ChangeRecord]) -> Unknowns {
    let completed = completed_changes(entries);
    let mut unknown = Unknowns::new();
    // Each key's latest intent not yet followed by its outcome.
    let mut open: std::collections::HashMap<&str, &ChangeRecord> = std::collections::HashMap::new();
    let settle = |intent: &ChangeRecord, key: &str, unknown: &mut Unknowns| {
        unknown.entry(key.to_owned()).or_insert_with(|| Unknown {
            seq: intent.seq,
            interface: intent.interface.clone(),
            at_millis: intent.at_millis,
            args: intent.args.clone(),
            before: intent.result.get("before").cloned().unwrap_or(Value::Null),
            provider: intent
                .result
                .get("provider")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    };
    for e in entries {
        let Some(key) = e.key() else {
            continue;
        };
        if completed.contains_key(key) || !e.is_allowed() {
            continue;
        }
        if e.result.get("intent").and_then(Value::as_str) == Some("executing") {
            // An intent after another without an outcome between: the host died in between.
            if let Some(earlier) = open.insert(key, e) {
                settle(earlier, key, &mut unknown);
            }
        } else if let Some(intent) = open.remove(key)
            && !proves_not_applied(&e.result)
        {
            settle(intent, key, &mut unknown);
        }
    }
    for (key, intent) in open {
        settle(intent, key, &mut unknown);
    }
    unknown
}

/// The `reconcile` of calls that are not changes: never called, since only changes have keys.
fn never_reconciled<T, P>(
    _: &P,
    _: &Unknown,
) -> std::future::Ready<Result<Reconciled<T>, ExecError>> {
    std::future::ready(Ok(Reconciled::NotApplied))
}

/// Text for the ledger: long guest-supplied strings are shortened, so a hostile guest cannot
/// bloat the ledger.
pub(crate) fn preview(text: &str) -> Value {
    if text.len() <= PREVIEW_BYTES {
        return Value::String(text.to_owned());
    }
    let mut end = PREVIEW_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Value::String(format!("{}… ({} bytes)", &text[..end], text.len()))
}

/// Why a call did not run.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Outside the grants.
    Denied(String),
    /// Malformed arguments.
    Invalid(String),
    /// A provider error while authorizing (e.g. the resource does not exist).
    Failed(ExecError),
    /// The call could not even be checked (it waited for its resource until the deadline).
    Unchecked(ExecError),
}

impl From<Denial> for Refusal {
    fn from(d: Denial) -> Self {
        Refusal::Denied(d.0)
    }
}

impl From<ExecError> for Refusal {
    fn from(e: ExecError) -> Self {
        Refusal::Failed(e)
    }
}

impl From<grace_executor::RouteError> for Refusal {
    /// A capability without any provider here is unavailable (as an executor would say); a
    /// resource that the configuration routes nowhere is refused: the host will not act on it.
    fn from(e: grace_executor::RouteError) -> Self {
        match e {
            grace_executor::RouteError::Unmapped { .. } => Refusal::Denied(e.to_string()),
            other => Refusal::Failed(other.into()),
        }
    }
}

/// Checks a text argument's length; `Invalid` names the argument.
pub(crate) fn check_text(name: &str, value: &str) -> Result<(), Refusal> {
    if value.len() > MAX_TEXT_ARG_BYTES {
        return Err(Refusal::Invalid(format!(
            "`{name}` is {} bytes, above the limit of {MAX_TEXT_ARG_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// What a capability's closures may use: cheap clones of the run's context.
#[derive(Clone)]
pub(crate) struct Scope {
    /// The providers.
    pub executors: Executors,
    /// The manifest's grants.
    pub grants: Arc<Grants>,
    /// The guest's name, for messages.
    pub guest: Arc<str>,
    /// Changes this capability already made in this run.
    pub changes: u32,
    /// The run's deadline on the run clock, in milliseconds since the epoch.
    pub deadline_at: u64,
    /// For a change: what an earlier attempt of this run recorded of this very change, when
    /// its outcome is unknown. The change reuses what it can (a restart marker) and redoes
    /// only what reading the resource showed not done.
    pub earlier: Option<Unknown>,
    /// For a change: the idempotency key it gets if it is authorized, for executors that keep
    /// it with what they do (a queued message), so that reading back finds it.
    pub key: Option<String>,
    /// Whether an earlier attempt of the run completed or began this very change: it was
    /// within the run's budgets then, and `changes` does not count it.
    pub replaying: bool,
}

impl Scope {
    /// Run-clock time left before the deadline.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(
            self.deadline_at
                .saturating_sub(self.executors.clock.now_millis()),
        )
    }
}

/// What `authorize` saw of the resource, for the trust core.
enum Seen {
    /// Nothing more than the call says ([`Call::on`]).
    Asked,
    /// A change: what it would do, and what its intent keeps.
    Proposed(Proposal, Value),
    /// A read: the resource it looks at, resolved and described by its provider.
    Resolved(Resource),
}

/// What `authorize` of a change returns: the plan to execute, what the change would do (for
/// the trust core), and what its intent record keeps for reading the resource back after an
/// unknown outcome (`before`; `null` when the resource itself says enough).
pub(crate) struct Planned<P> {
    /// What `execute` and `reconcile` get.
    pub plan: P,
    /// For the trust core.
    pub proposal: Proposal,
    /// For the intent record.
    pub before: Value,
}

impl<P> Planned<P> {
    /// A plan whose intent keeps nothing more than the call's arguments.
    pub fn new(plan: P, proposal: Proposal) -> Self {
        Planned {
            plan,
            proposal,
            before: Value::Null,
        }
    }
}

/// Raised (as a trap) when a run must stop; the engine reads the failure back from the state.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Stop(pub String);

/// The state of one run that every host call goes through.
pub(crate) struct RunState {
    pub run_id: String,
    pub guest: GuestInfo,
    pub grants: Arc<Grants>,
    pub config: Arc<BTreeMap<String, String>>,
    pub limits: Limits,
    pub executors: Executors,
    pub ledger: Arc<Ledger>,
    pub trust: Arc<dyn Trust>,
    /// The host's check before every change.
    pub fence: Option<Arc<dyn crate::fence::Fence>>,
    /// Where each change's intent and outcome is also kept (see [`crate::journal`]), if the
    /// host keeps them beside its ledger.
    pub journal: Option<Arc<dyn Journal>>,
    /// The event that triggered the run (playbooks).
    pub event: Option<Arc<TriggerEvent>>,
    /// Set when a call awaits approval: the approval's id. The run stops there.
    pub awaiting: Option<String>,
    pub started_at: u64,
    pub deadline_at: u64,
    pub wall_deadline: tokio::time::Instant,
    pub host_calls: u32,
    pub changes: BTreeMap<&'static str, u32>,
    pub timeline: Vec<TimelineEntry>,
    /// Set when the host stopped the guest, so the engine can tell why the guest trapped.
    pub stop: Option<Failure>,
    /// Ledger records submitted but not yet confirmed, with their timeline index (`None` for
    /// lifecycle records). Records of calls that changed nothing are not waited for one by one:
    /// they are confirmed before the next change runs and when the run ends.
    pub pending: Vec<(Option<usize>, Pending)>,
    /// The `run.started` record, held until the first host call or the end of the run, so that
    /// a run that calls nothing hands the ledger both its records at once.
    pub deferred: Option<NewEntry>,
    /// Changes earlier attempts of this run completed: they are not made again.
    pub completed: Arc<Completed>,
    /// Changes earlier attempts of this run began without a recorded outcome: the resource is
    /// read before they are made again.
    pub unknown: Arc<Unknowns>,
    /// How many changes of each (interface, function, target) this attempt asked for.
    pub ranks: std::collections::HashMap<(&'static str, &'static str, String), u32>,
    /// The host's bounds on the run.
    pub bounds: RunBounds,
    /// Bytes of arguments, reasons and results put on record so far.
    pub recorded_bytes: u64,
    /// Bytes the guest logged so far.
    pub log_bytes: u64,
    /// Bytes of the messages posted in this run so far (`notify.send`), earlier attempts'
    /// included: counted when a message is queued, shared with the queuing closure.
    pub notify_bytes: Arc<std::sync::atomic::AtomicU64>,
}

fn to_wit(e: ExecError) -> WitError {
    match e {
        ExecError::InvalidArgument(m) => WitError::InvalidArgument(m),
        ExecError::NotFound(m) => WitError::NotFound(m),
        ExecError::Conflict(m) => WitError::Conflict(m),
        ExecError::Unavailable(m) => WitError::Unavailable(m),
        ExecError::TimedOut(m) => WitError::TimedOut(m),
        ExecError::Other(m) => WitError::Other(m),
        other => WitError::Other(other.to_string()),
    }
}

/// The decision with the trust core's details, when it gave any.
fn with_trust(decision: Decision, trust: Option<Value>) -> Decision {
    match trust {
        Some(details) => decision.with_trust(details),
        None => decision,
    }
}

fn error_json(kind: &str, message: &str) -> Value {
    json!({ "error": { "kind": kind, "message": message } })
}

fn exec_error_json(e: &ExecError) -> Value {
    if let ExecError::TooLarge { limit } = e {
        let mut v = error_json("too-large", &e.to_string());
        v["error"]["limit"] = json!(limit);
        return v;
    }
    serde_json::to_value(e).map_or_else(
        |_| error_json("other", &e.to_string()),
        |v| json!({ "error": v }),
    )
}

impl RunState {
    fn scope(&self, call: &Call) -> Scope {
        let key = self.next_key(call);
        let replaying = key
            .as_ref()
            .is_some_and(|k| self.completed.contains_key(k) || self.unknown.contains_key(k));
        // Every change earlier attempts of the run completed or began is counted from the start
        // of this one ([`RunState::changes`]); the call repeating one of them is not counted
        // against itself.
        let counted = self.changes.get(call.interface()).copied().unwrap_or(0);
        Scope {
            executors: self.executors.clone(),
            grants: self.grants.clone(),
            guest: Arc::from(self.guest.name.as_str()),
            changes: if replaying {
                counted.saturating_sub(1)
            } else {
                counted
            },
            deadline_at: self.deadline_at,
            earlier: self.earlier(call),
            key,
            replaying,
        }
    }

    /// The key `call`, a change, gets if it is authorized (its rank is counted then).
    fn next_key(&self, call: &Call) -> Option<String> {
        if !call.is_change() {
            return None;
        }
        let rank = self
            .ranks
            .get(&(call.interface(), call.function(), call.target.clone()))
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        Some(idempotency_key(
            &self.run_id,
            call.interface(),
            call.function(),
            &call.target,
            rank,
        ))
    }

    /// What an earlier attempt recorded of `call`, a change whose outcome is unknown: looked up
    /// by the key the call gets if it is authorized.
    fn earlier(&self, call: &Call) -> Option<Unknown> {
        if self.unknown.is_empty() {
            return None;
        }
        self.unknown.get(&self.next_key(call)?).cloned()
    }

    /// Runs one call that only reads through the pipeline.
    pub(crate) async fn perform<T, P, AF, EF>(
        &mut self,
        call: Call,
        authorize: impl FnOnce(Scope) -> AF + Send,
        execute: impl FnOnce(Scope, P) -> EF,
    ) -> wasmtime::Result<Result<T, WitError>>
    where
        AF: Future<Output = Result<P, Refusal>> + Send,
        EF: Future<Output = Result<T, ExecError>> + Send,
        T: Serialize + serde::de::DeserializeOwned + Send,
        P: Send,
    {
        self.perform_inner(
            call,
            |scope| async move { authorize(scope).await.map(|plan| (plan, Seen::Asked)) },
            never_reconciled,
            execute,
        )
        .await
    }

    /// Runs one read whose resource is known only once `authorize` has resolved it (a
    /// container named by an id prefix): the trust core is asked about the resource
    /// `authorize` returns, as the provider reports it, rather than about the guest's
    /// description of it in [`Call::on`].
    pub(crate) async fn perform_on<T, P, AF, EF>(
        &mut self,
        call: Call,
        authorize: impl FnOnce(Scope) -> AF + Send,
        execute: impl FnOnce(Scope, P) -> EF,
    ) -> wasmtime::Result<Result<T, WitError>>
    where
        AF: Future<Output = Result<(P, Resource), Refusal>> + Send,
        EF: Future<Output = Result<T, ExecError>> + Send,
        T: Serialize + serde::de::DeserializeOwned + Send,
        P: Send,
    {
        self.perform_inner(
            call,
            |scope| async move {
                authorize(scope)
                    .await
                    .map(|(plan, resource)| (plan, Seen::Resolved(resource)))
            },
            never_reconciled,
            execute,
        )
        .await
    }

    /// Runs one change through the pipeline: `authorize` also says what the change would do
    /// ([`Proposal`]), for the trust core, and what its intent keeps ([`Planned`]).
    ///
    /// When an earlier attempt of the run began this change and its outcome is unknown,
    /// `reconcile` reads the resource first (through the provider's `reconcile`): a change
    /// already in place is recorded as reconciled and not made again, a conflict is reported,
    /// and only a change not in place is made (`execute`, which sees the earlier attempt in
    /// [`Scope::earlier`]).
    pub(crate) async fn perform_change<T, P, AF, RF, EF>(
        &mut self,
        call: Call,
        authorize: impl FnOnce(Scope) -> AF + Send,
        reconcile: impl FnOnce(&P, &Unknown) -> RF,
        execute: impl FnOnce(Scope, P) -> EF,
    ) -> wasmtime::Result<Result<T, WitError>>
    where
        AF: Future<Output = Result<Planned<P>, Refusal>> + Send,
        RF: Future<Output = Result<Reconciled<T>, ExecError>> + Send,
        EF: Future<Output = Result<T, ExecError>> + Send,
        T: Serialize + serde::de::DeserializeOwned + Send,
        P: Send,
    {
        self.perform_inner(
            call,
            |scope| async move {
                authorize(scope).await.map(|planned| {
                    (
                        planned.plan,
                        Seen::Proposed(planned.proposal, planned.before),
                    )
                })
            },
            reconcile,
            execute,
        )
        .await
    }

    async fn perform_inner<T, P, AF, RF, EF>(
        &mut self,
        mut call: Call,
        authorize: impl FnOnce(Scope) -> AF,
        reconcile: impl FnOnce(&P, &Unknown) -> RF,
        execute: impl FnOnce(Scope, P) -> EF,
    ) -> wasmtime::Result<Result<T, WitError>>
    where
        AF: Future<Output = Result<(P, Seen), Refusal>> + Send,
        RF: Future<Output = Result<Reconciled<T>, ExecError>> + Send,
        EF: Future<Output = Result<T, ExecError>> + Send,
        T: Serialize + serde::de::DeserializeOwned + Send,
        P: Send,
    {
        self.admit(&call).await?;
        // Held until this call's result is recorded: another run's change of the same resource
        // waits here, then checks against the state this change left (bounds hold per
        // resource, not per call).
        let locked = match &call.lock {
            None => Ok(None),
            Some(key) => {
                tokio::time::timeout_at(self.wall_deadline, self.executors.locks.lock(key))
                    .await
                    .map(Some)
                    .map_err(|_| {
                        Refusal::Unchecked(ExecError::TimedOut(
                    "the run's deadline passed while another run was changing the same resource"
                        .into(),
                ))
                    })
            }
        };
        let scope = self.scope(&call);
        let (_resource_guard, authorized) = match locked {
            Err(refusal) => (None, Err(refusal)),
            Ok(guard) => (
                guard,
                match tokio::time::timeout_at(self.wall_deadline, authorize(scope.clone())).await {
                    Ok(a) => a,
                    Err(_) => Err(Refusal::Failed(ExecError::TimedOut(
                        "the run's deadline passed during the call".into(),
                    ))),
                },
            ),
        };
        let (plan, seen) = match authorized {
            Ok(authorized) => authorized,
            Err(Refusal::Denied(reason)) => return self.deny(&call, reason, None).await,
            Err(Refusal::Invalid(message)) => {
                let reason = format!("invalid argument: {message}");
                self.record(
                    &call,
                    Verdict::Denied,
                    &reason,
                    None,
                    error_json("invalid-argument", &message),
                )
                .await?;
                return Ok(Err(WitError::InvalidArgument(message)));
            }
            Err(Refusal::Failed(e)) => {
                self.record(
                    &call,
                    Verdict::Allowed,
                    "within grants",
                    None,
                    exec_error_json(&e),
                )
                .await?;
                return Ok(Err(to_wit(e)));
            }
            Err(Refusal::Unchecked(e)) => {
                let reason = format!("not checked: {e}");
                self.record(&call, Verdict::Denied, &reason, None, exec_error_json(&e))
                    .await?;
                return Ok(Err(to_wit(e)));
            }
        };
        let mut before = Value::Null;
        let proposal = match seen {
            Seen::Asked => None,
            Seen::Proposed(proposal, kept) => {
                before = kept;
                Some(proposal)
            }
            // The trust core judges what the checks resolved, not what the guest wrote.
            Seen::Resolved(resource) => {
                call.resource = Some(resource);
                None
            }
        };
        // The key is known before the trust core decides: an approval is given for it.
        let key = call.is_change().then(|| {
            let rank = self
                .ranks
                .entry((call.interface(), call.function(), call.target.clone()))
                .or_default();
            *rank += 1;
            idempotency_key(
                &self.run_id,
                call.interface(),
                call.function(),
                &call.target,
                *rank,
            )
        });
        let at_millis = self.executors.clock.now_millis();
        let ask = Ask {
            run_id: &self.run_id,
            guest: &self.guest,
            call: &call,
            key: key.as_deref(),
            proposal: proposal.as_ref(),
            event: self.event.as_deref(),
            at_millis,
        };
        let decision = self.trust.decide(&ask).await;
        let TrustDecision {
            outcome,
            reason,
            details,
        } = decision;
        match outcome {
            TrustOutcome::Allow => {}
            TrustOutcome::Deny => return self.deny(&call, reason, details).await,
            TrustOutcome::AwaitApproval { approval } => {
                let message = format!("waiting for approval {approval}: {reason}");
                let mut result = error_json("awaiting-approval", &message);
                result["approval"] = json!(approval);
                if let Some(key) = &key {
                    result["idempotency_key"] = json!(key);
                }
                self.record(&call, Verdict::Denied, &message, details, result)
                    .await?;
                self.confirm_pending(true).await?;
                // Nothing runs while people decide: the run stops here, and goes on as a retry
                // of the same run once they have.
                self.awaiting = Some(approval);
                return Err(Stop(message).into());
            }
        }
        let mut journaled = None;
        if let Some(key) = &key {
            // Changes of earlier attempts were counted when this attempt began.
            if !self.completed.contains_key(key) && !self.unknown.contains_key(key) {
                *self.changes.entry(call.interface()).or_default() += 1;
            }
            if let Some(earlier) = self.completed.get(key).cloned()
                && let Ok(done) = serde_json::from_value::<T>(earlier.ok.clone())
            {
                // An earlier attempt of this run made this change: it is not made twice, and
                // the guest gets what it returned then. The record says what was done (the
                // earlier arguments) and what this attempt asked.
                let seq = earlier.seq;
                let reason = format!(
                    "{reason}; replayed: an earlier attempt of this run already made this change (ledger entry {seq}), so it was not made again"
                );
                let asked = std::mem::replace(&mut call.args, earlier.args);
                let recorded = json!({ "ok": earlier.ok, "idempotency_key": key, "replayed_from": seq, "asked": asked });
                self.record(&call, Verdict::Allowed, &reason, details, recorded)
                    .await?;
                return Ok(Ok(done));
            }
            // Nothing acts before it, and everything that led to it, is on record: the intent
            // (arguments and decision) is durable before the provider is called, so a crash
            // between the call and its result leaves a trace of what may have changed.
            let intent = self
                .record_intent(&call, &reason, details.clone(), key, before)
                .await?;
            if let Some(journal) = self.journal.clone() {
                match journal.record(&self.run_id, &intent).await {
                    Ok(at) => journaled = Some(at),
                    // Whoever takes the run over must find the intent of every change that may
                    // have been made: a change whose intent could not be kept is not made.
                    Err(why) => {
                        let (key, why) = (
                            key.clone(),
                            format!("the change's intent could not be kept in the journal ({why})"),
                        );
                        return self.fenced(&call, &key, details, why).await;
                    }
                }
            }
        }
        // The last word before the provider is called: the host proves it may still act for
        // this run. Refused, nothing is called and the change is recorded as not made.
        let fence = match (&self.fence, &key) {
            (Some(fence), Some(key)) => {
                let checked = fence.check(&self.run_id, self.event.as_deref()).await;
                crate::fence::pause_point("before-change");
                match checked {
                    Ok(proof) if proof.permit.holds() => Some(proof),
                    Ok(_) => {
                        let key = key.clone();
                        return self
                            .fenced(&call, &key, details, VOID_PROOF.to_owned())
                            .await;
                    }
                    Err(why) => {
                        let key = key.clone();
                        return self.fenced(&call, &key, details, why).await;
                    }
                }
            }
            _ => None,
        };
        // What a provider may read for this call: the host's cap, and never more than the guest
        // could hold.
        let budget = self.bounds.max_response_bytes.min(self.limits.memory_bytes);
        // A change an earlier attempt may have made: read the resource before making it again.
        let earlier = key.as_deref().and_then(|k| self.unknown.get(k)).cloned();
        let mut reconciled_from = None;
        // Set where the read-back itself judged a conflict (or could not be made on the right
        // provider): every retry would meet it again. A provider's own error while reading
        // (throttling, contention) is not that, and stays retryable.
        let mut unreconciled = false;
        let result = match &earlier {
            None => Ok(None),
            // Only the provider the earlier attempt went to can say whether the change
            // happened; another one (the routes changed since) would read another resource.
            Some(unknown) if unknown.provider.as_deref() != call.provider.as_deref() => {
                unreconciled = true;
                Err(ExecError::Conflict(format!(
                    "an earlier attempt of this run began this change on provider `{}` (ledger entry {}) and its outcome is unknown, but the resource now routes to provider `{}`: it is neither read back nor made again on another provider than the one that may have made it",
                    unknown.provider.as_deref().unwrap_or("none"),
                    unknown.seq,
                    call.provider.as_deref().unwrap_or("none"),
                )))
            }
            Some(unknown) => {
                let reading =
                    grace_executor::budget::with_response_budget(budget, reconcile(&plan, unknown));
                match tokio::time::timeout_at(self.wall_deadline, reading).await {
                    Ok(Ok(Reconciled::Done(value))) => {
                        reconciled_from = Some(unknown.seq);
                        Ok(Some(value))
                    }
                    Ok(Ok(Reconciled::NotApplied)) => Ok(None),
                    Ok(Ok(Reconciled::Conflict(message))) => {
                        unreconciled = true;
                        Err(ExecError::Conflict(message))
                    }
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(ExecError::TimedOut(
                        "the run's deadline passed while reading whether an earlier attempt made the change: whether it happened is still unknown"
                            .into(),
                    )),
                }
            }
        };
        let result = match result {
            Ok(Some(done)) => Ok(done),
            Err(e) => Err(e),
            // The read-back above may have taken long: the permit is asked once more, the last
            // thing before the provider is called.
            Ok(None) if fence.as_ref().is_some_and(|f| !f.permit.holds()) => {
                let key = key.clone().unwrap_or_default();
                return self
                    .fenced(&call, &key, details, VOID_PROOF.to_owned())
                    .await;
            }
            Ok(None) => {
                let executing =
                    grace_executor::budget::with_response_budget(budget, execute(scope, plan));
                match tokio::time::timeout_at(self.wall_deadline, executing).await {
                    Ok(r) => r,
                    Err(_) if call.is_change() => Err(ExecError::TimedOut(
                        "the run's deadline passed during the call: whether the change happened is unknown"
                            .into(),
                    )),
                    Err(_) => Err(ExecError::TimedOut(
                        "the run's deadline passed during the call".into(),
                    )),
                }
            }
        };
        // A change read back as made was counted when its earlier attempt executed it.
        if call.is_change() && reconciled_from.is_none() {
            let ask = Ask {
                run_id: &self.run_id,
                guest: &self.guest,
                call: &call,
                key: key.as_deref(),
                proposal: proposal.as_ref(),
                event: self.event.as_deref(),
                at_millis: self.executors.clock.now_millis(),
            };
            self.trust.executed(&ask);
        }
        let (mut recorded, returned) = match result {
            // A change's result is kept whole: a retry replays it from the record. Changes
            // return small acknowledgements; reads may return whatever a provider holds.
            Ok(value) if call.is_change() => {
                let json = serde_json::to_value(&value).map_or_else(
                    |e| error_json("other", &e.to_string()),
                    |v| json!({ "ok": v }),
                );
                (json, Ok(value))
            }
            Ok(value) => (
                record_ok(&value, self.bounds.max_result_record_bytes),
                Ok(value),
            ),
            Err(e) => (exec_error_json(&e), Err(to_wit(e))),
        };
        if let Some(key) = key {
            recorded["idempotency_key"] = json!(key);
        }
        if let Some(fence) = fence {
            recorded["fence"] = fence.record;
        }
        if let Some(at) = journaled {
            recorded["journal"] = json!(at);
        }
        if let (true, Some(unknown)) = (unreconciled, &earlier) {
            recorded["error"][UNRECONCILED_FROM] = json!(unknown.seq);
        }
        let reason = match (reconciled_from, &earlier) {
            (Some(seq), Some(unknown)) => {
                recorded["reconciled_from"] = json!(seq);
                // What is in place is what the earlier attempt asked for, not what this
                // attempt asked (its playbook may have read the state that change left).
                call.args = unknown.args.clone();
                format!(
                    "{reason}; reconciled: an earlier attempt of this run began this change (ledger entry {seq}) and its outcome was unknown; the resource, read back, shows it made, so it was not made again"
                )
            }
            (None, Some(unknown)) if returned.is_ok() => {
                // For audits across replicas: this change was made again, knowingly.
                recorded[READ_BACK_FROM] = json!(unknown.seq);
                format!(
                    "{reason}; an earlier attempt of this run began this change (ledger entry {}) and its outcome was unknown; the resource, read back, showed it not made, so it was made now",
                    unknown.seq
                )
            }
            _ => reason,
        };
        self.record(&call, Verdict::Allowed, &reason, details, recorded)
            .await?;
        if call.is_change() {
            self.journal_outcome().await;
            crate::fence::pause_point("after-change");
        }
        Ok(returned)
    }

    /// Keeps the outcome just recorded (the timeline's last entry, confirmed) in the journal.
    /// A failure is logged: whoever takes the run over finds the change's intent without an
    /// outcome, and reads the resource back before making it again.
    async fn journal_outcome(&mut self) {
        let (Some(journal), Some(last)) = (self.journal.clone(), self.timeline.last()) else {
            return;
        };
        let record = ChangeRecord {
            seq: last.seq,
            host: None,
            at_millis: last.at,
            interface: last.interface.clone(),
            args: last.args.clone(),
            verdict: last.verdict,
            result: last.result.clone(),
        };
        if let Err(why) = journal.record(&self.run_id, &record).await {
            tracing::warn!(run = %self.run_id, "a change's outcome could not be kept in the journal: {why}");
        }
    }

    /// Records `call` as denied for `reason` (with the trust core's details, if it decided)
    /// and gives the guest `denied`.
    async fn deny<T>(
        &mut self,
        call: &Call,
        reason: String,
        trust: Option<Value>,
    ) -> wasmtime::Result<Result<T, WitError>> {
        self.record(
            call,
            Verdict::Denied,
            &reason,
            trust,
            error_json("denied", &reason),
        )
        .await?;
        Ok(Err(WitError::Denied(reason)))
    }

    /// Stops the run before a change the host's fence refused: the change is recorded as not
    /// made (refused, under its idempotency key, so a later attempt makes it as a new one)
    /// and the run fails as [`FailureKind::Fenced`].
    async fn fenced<T>(
        &mut self,
        call: &Call,
        key: &str,
        trust: Option<Value>,
        why: String,
    ) -> wasmtime::Result<Result<T, WitError>> {
        let reason = format!("fenced: {why}; the change was not made");
        let mut recorded = exec_error_json(&ExecError::Refused(reason.clone()));
        recorded["idempotency_key"] = json!(key);
        recorded["fenced"] = json!(true);
        self.record(call, Verdict::Denied, &reason, trust, recorded)
            .await?;
        self.confirm_pending(true).await?;
        self.stop = Some(Failure {
            kind: FailureKind::Fenced,
            message: reason.clone(),
        });
        Err(Stop(reason).into())
    }

    /// Counts the call; past `max_host_calls`, or past one of the host's totals for the run
    /// (bytes on record, timeline entries), the guest is stopped (and that is recorded).
    async fn admit(&mut self, call: &Call) -> wasmtime::Result<()> {
        self.host_calls = self.host_calls.saturating_add(1);
        if self.host_calls > self.limits.max_host_calls {
            let reason = format!(
                "host call limit of {} reached; the guest is stopped",
                self.limits.max_host_calls
            );
            return self.stop_at(call, FailureKind::HostCallLimit, reason).await;
        }
        if self.recorded_bytes > self.bounds.max_recorded_bytes {
            let reason = format!(
                "the run put more than {} bytes on record, the host's limit per run; the guest is stopped",
                self.bounds.max_recorded_bytes
            );
            return self.stop_at(call, FailureKind::RecordLimit, reason).await;
        }
        if self.timeline.len() >= self.bounds.max_timeline_entries {
            let reason = format!(
                "the run made {} recorded host calls, the host's limit per run; the guest is stopped",
                self.bounds.max_timeline_entries
            );
            return self.stop_at(call, FailureKind::RecordLimit, reason).await;
        }
        Ok(())
    }

    /// Counts `bytes` logged against `limits.max_total_log_bytes`; past it the guest is stopped
    /// (and that is recorded).
    pub(crate) async fn admit_log(&mut self, call: &Call, bytes: usize) -> wasmtime::Result<()> {
        self.log_bytes = self.log_bytes.saturating_add(bytes as u64);
        if self.log_bytes <= self.limits.max_total_log_bytes {
            return Ok(());
        }
        let reason = format!(
            "the run logged more than limits.max_total_log_bytes ({} bytes) in all; the guest is stopped",
            self.limits.max_total_log_bytes
        );
        self.stop_at(call, FailureKind::LogLimit, reason).await
    }

    /// Records `call` as denied for `reason` and stops the guest with a `kind` failure.
    async fn stop_at(
        &mut self,
        call: &Call,
        kind: FailureKind,
        reason: String,
    ) -> wasmtime::Result<()> {
        self.record(
            call,
            Verdict::Denied,
            &reason,
            None,
            error_json("limit", &reason),
        )
        .await?;
        self.stop = Some(Failure {
            kind,
            message: reason.clone(),
        });
        Err(Stop(reason).into())
    }

    /// Appends the call to the ledger and the timeline. The record of a call that changed the
    /// world is durable before the guest sees its result; other records are confirmed before the
    /// next change and at the end of the run. A ledger failure stops the guest: GRACE never acts
    /// without a record.
    async fn record(
        &mut self,
        call: &Call,
        verdict: Verdict,
        reason: &str,
        trust: Option<Value>,
        mut result: Value,
    ) -> wasmtime::Result<()> {
        if let Err(e) = self.submit_deferred() {
            return Err(self.ledger_failed(&e));
        }
        if let (Some(provider), Some(fields)) = (&call.provider, result.as_object_mut()) {
            fields.insert("provider".into(), json!(provider));
        }
        let at = self.executors.clock.now_millis();
        let size = json_len(&call.args)
            .saturating_add(reason.len() as u64)
            .saturating_add(trust.as_ref().map_or(0, json_len))
            .saturating_add(json_len(&result));
        self.recorded_bytes = self.recorded_bytes.saturating_add(size);
        let entry = NewEntry {
            run_id: self.run_id.clone(),
            playbook: self.guest.name.clone(),
            digest: self.guest.digest.clone(),
            interface: call.interface().to_owned(),
            function: call.function().to_owned(),
            args: call.args.clone(),
            decision: with_trust(
                match verdict {
                    Verdict::Allowed => Decision::allowed(reason),
                    Verdict::Denied => Decision::denied(reason),
                },
                trust,
            ),
            result,
            at_millis: at,
        };
        // Encoded from a borrow: the timeline then takes the entry's parts instead of copies
        // (a read's result can be large, and every call is recorded).
        let pending = match self.ledger.submit_ref(&entry) {
            Ok(p) => p,
            Err(e) => return Err(self.ledger_failed(&e)),
        };
        let NewEntry {
            interface,
            function,
            args,
            decision,
            result,
            ..
        } = entry;
        let index = self.timeline.len();
        self.timeline.push(TimelineEntry {
            seq: 0,
            at,
            offset_ms: at.saturating_sub(self.started_at),
            interface,
            function,
            args,
            verdict,
            reason: decision.reason,
            trust: decision.trust,
            result,
            change: call.is_change(),
        });
        self.pending.push((Some(index), pending));
        let effective = call.is_change() && verdict == Verdict::Allowed;
        if effective {
            self.confirm_pending(true).await?;
        }
        Ok(())
    }

    /// Records the intent of a change about to be executed, durably with every record pending
    /// before it; answers it as the journal keeps it.
    async fn record_intent(
        &mut self,
        call: &Call,
        reason: &str,
        trust: Option<Value>,
        key: &str,
        before: Value,
    ) -> wasmtime::Result<ChangeRecord> {
        if let Err(e) = self.submit_deferred() {
            return Err(self.ledger_failed(&e));
        }
        let entry = NewEntry {
            run_id: self.run_id.clone(),
            playbook: self.guest.name.clone(),
            digest: self.guest.digest.clone(),
            interface: call.interface().to_owned(),
            function: call.function().to_owned(),
            args: call.args.clone(),
            decision: with_trust(Decision::allowed(reason), trust),
            result: {
                let mut result = json!({ "intent": "executing", "idempotency_key": key });
                if let Some(provider) = &call.provider {
                    result["provider"] = json!(provider.as_ref());
                }
                if !before.is_null() {
                    result["before"] = before;
                }
                result
            },
            at_millis: self.executors.clock.now_millis(),
        };
        let mut record = ChangeRecord {
            seq: 0,
            host: None,
            at_millis: entry.at_millis,
            interface: entry.interface.clone(),
            args: entry.args.clone(),
            verdict: Verdict::Allowed,
            result: entry.result.clone(),
        };
        let pending = match self.ledger.submit(entry) {
            Ok(pending) => pending,
            Err(e) => return Err(self.ledger_failed(&e)),
        };
        self.confirm_pending(true).await?;
        match pending.await {
            Ok(receipt) => {
                record.seq = receipt.seq;
                Ok(record)
            }
            Err(e) => Err(self.ledger_failed(&e)),
        }
    }

    /// Waits for every submitted record, filling in the timeline's sequence numbers. With
    /// `strict`, a failure stops the guest; otherwise it is logged (the run is over).
    pub(crate) async fn confirm_pending(&mut self, strict: bool) -> wasmtime::Result<()> {
        for (index, pending) in std::mem::take(&mut self.pending) {
            match pending.await {
                Ok(receipt) => {
                    if let Some(entry) = index.and_then(|i| self.timeline.get_mut(i)) {
                        entry.seq = receipt.seq;
                    }
                }
                Err(e) if strict => return Err(self.ledger_failed(&e)),
                Err(e) => {
                    tracing::error!(run = %self.run_id, "the ledger could not record a call: {e}");
                }
            }
        }
        Ok(())
    }

    fn ledger_failed(&mut self, e: &grace_ledger::LedgerError) -> wasmtime::Error {
        let message = format!("the ledger could not record a host call: {e}");
        tracing::error!(run = %self.run_id, %message);
        self.stop = Some(Failure {
            kind: FailureKind::LedgerUnavailable,
            message: message.clone(),
        });
        Stop(message).into()
    }

    /// Submits a run lifecycle record (`run.started`, `run.finished`) to the ledger without
    /// waiting for it. `started` is held until the first call and confirmed with the first
    /// change; `finished` is handed back to be waited for: a run whose end is not on record
    /// cannot be reported as succeeded.
    pub(crate) fn record_lifecycle(
        &mut self,
        function: &'static str,
        args: Value,
        result: Value,
    ) -> Result<Option<Pending>, grace_ledger::LedgerError> {
        let entry = NewEntry {
            run_id: self.run_id.clone(),
            playbook: self.guest.name.clone(),
            digest: self.guest.digest.clone(),
            interface: "run".into(),
            function: function.into(),
            args,
            decision: Decision::allowed("run lifecycle"),
            result,
            at_millis: self.executors.clock.now_millis(),
        };
        if function == "started" {
            self.deferred = Some(entry);
            return Ok(None);
        }
        self.submit_deferred()?;
        Ok(Some(self.ledger.submit(entry)?))
    }

    /// Submits the held `run.started` record, if it is still held.
    fn submit_deferred(&mut self) -> Result<(), grace_ledger::LedgerError> {
        if let Some(entry) = self.deferred.take() {
            let pending = self.ledger.submit(entry)?;
            self.pending.push((None, pending));
        }
        Ok(())
    }
}
