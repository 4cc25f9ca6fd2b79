//! A retried run does not act twice: each change carries an idempotency key (the run, the
//! change and its rank in the run), and a retry replays the changes an earlier attempt of the
//! same run completed instead of making them again.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use grace_engine::trust::PassThrough;
use grace_engine::{RunReport, RunStatus, TriggerEvent};
use serde_json::json;

/// The default fleet with so much load that api-service stays slow at any capacity: every run
/// of scale-on-latency wants to add two more instances.
fn overloaded() -> World {
    let fleet = grace_sim::Fleet::from_toml(
        &std::fs::read_to_string(playbooks_dir().join("fleet.toml"))
            .unwrap()
            .replace("load_rps = 520", "load_rps = 5000"),
    )
    .unwrap();
    World::with_fleet(&fleet)
}

fn slow() -> TriggerEvent {
    event("metrics.latency", "api-service", json!({ "value": 2000.0 }))
}

fn attempt(world: &World, guest: &grace_engine::Guest, retrying: bool) -> RunReport {
    attempt_in(world, guest, &world.env.clone().retrying(retrying))
}

/// One attempt of run-1 on a slow api-service with `env`, its records flushed.
fn attempt_in(world: &World, guest: &grace_engine::Guest, env: &grace_engine::RunEnv) -> RunReport {
    runtime().block_on(async {
        let report = engine().run_playbook_as("run-1", guest, &slow(), env).await;
        world.ledger.flush().await.unwrap();
        report
    })
}

#[test]
fn a_retried_run_replays_the_changes_its_earlier_attempt_made_instead_of_repeating_them() {
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    let first = attempt(&world, &guest, false);
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.failure);
    assert_eq!(desired(&world, "api-asg"), 5);
    let key = first.actions().next().unwrap().result["idempotency_key"]
        .as_str()
        .unwrap()
        .to_owned();

    // The same run again (a retry after a transient failure, or a resume after a crash).
    let retry = attempt(&world, &guest, true);
    assert_eq!(retry.status, RunStatus::Succeeded, "{:?}", retry.failure);
    assert_eq!(
        desired(&world, "api-asg"),
        5,
        "the retry did not scale a second time"
    );
    let replayed = retry.actions().next().unwrap();
    assert_eq!(replayed.result["idempotency_key"], key.as_str());
    assert!(
        replayed.result["replayed_from"].as_u64().is_some(),
        "{replayed:?}"
    );
    assert!(replayed.reason.contains("replayed"), "{}", replayed.reason);
    // The guest got what the first attempt's change returned.
    assert_eq!(replayed.result["ok"]["desired_capacity"], 5);
    world.ledger.verify().unwrap();
}

#[test]
fn without_the_retry_flag_the_same_run_id_acts_again() {
    // The control for the test above: the replay, not the fleet, kept capacity at 5.
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    attempt(&world, &guest, false);
    attempt(&world, &guest, false);
    assert_eq!(desired(&world, "api-asg"), 7);
}

/// How [`FakeScaling`] departs from the simulated groups it wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Every capacity change fails as a throttled API would (nothing is changed).
    Throttled,
    /// Every capacity change is made and then its answer is lost, as when a provider applies a
    /// change and the call times out.
    LostAnswer,
    /// The first capacity change is refused as a conflicting scaling activity (nothing is
    /// changed); later ones are made.
    RefusedOnce,
    /// Reading a change back always finds a conflict.
    ConflictingReadBack,
    /// Reading a change back fails as a provider's contention would (the read itself is
    /// refused; it judges nothing).
    ContendedReadBack,
}

/// The simulated groups with one [`Fault`]; counts the read-backs asked for. A fake, named so:
/// it exercises the pipeline's reconciliation, not a provider's
/// (tests/parity/tests/unknown_outcomes.rs runs the same against moto, Podman and the
/// Kubernetes test API server through a proxy losing answers).
struct FakeScaling {
    inner: std::sync::Arc<dyn grace_executor::ScalingExecutor>,
    fault: Fault,
    refused: std::sync::atomic::AtomicBool,
    reconciles: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

#[async_trait::async_trait]
impl grace_executor::ScalingExecutor for FakeScaling {
    fn check_group_name<'a>(
        &self,
        argument: &'static str,
        name: &'a str,
    ) -> Result<&'a str, grace_executor::IdentError> {
        self.inner.check_group_name(argument, name)
    }
    async fn describe_group(
        &self,
        name: &str,
    ) -> Result<grace_executor::scaling::Group, grace_executor::ExecError> {
        self.inner.describe_group(name).await
    }
    async fn set_desired_capacity(
        &self,
        name: &str,
        desired: u32,
    ) -> Result<grace_executor::scaling::Group, grace_executor::ExecError> {
        use grace_executor::ExecError;
        match self.fault {
            Fault::Throttled => Err(ExecError::Unavailable("throttled".into())),
            Fault::LostAnswer => {
                self.inner.set_desired_capacity(name, desired).await?;
                Err(ExecError::TimedOut("no answer within 10s".into()))
            }
            Fault::RefusedOnce if !self.refused.swap(true, std::sync::atomic::Ordering::SeqCst) => {
                Err(ExecError::Conflict(
                    "ScalingActivityInProgress: a scaling activity is in progress".into(),
                ))
            }
            Fault::RefusedOnce | Fault::ConflictingReadBack | Fault::ContendedReadBack => {
                self.inner.set_desired_capacity(name, desired).await
            }
        }
    }
    async fn wait_in_service(
        &self,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<grace_executor::scaling::Group, grace_executor::ExecError> {
        self.inner.wait_in_service(name, timeout).await
    }
    async fn reconcile(
        &self,
        change: &grace_executor::scaling::Change,
    ) -> Result<grace_executor::Reconciled<grace_executor::scaling::Group>, grace_executor::ExecError>
    {
        self.reconciles
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match self.fault {
            Fault::ConflictingReadBack => {
                return Ok(grace_executor::Reconciled::Conflict(
                    "another writer changed the group".into(),
                ));
            }
            Fault::ContendedReadBack => {
                return Err(grace_executor::ExecError::Conflict(
                    "ResourceContention: pending update to the group".into(),
                ));
            }
            _ => {}
        }
        self.inner.reconcile(change).await
    }
}

/// `world`'s providers with its scaling provider given `fault`, and the count of read-backs
/// that provider was asked for.
fn faulty_env(
    world: &World,
    fault: Fault,
) -> (
    grace_engine::RunEnv,
    std::sync::Arc<std::sync::atomic::AtomicU32>,
) {
    let reconciles = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut executors = world.sim.executors();
    let sim = executors.scaling.default_provider().unwrap();
    let fake = FakeScaling {
        inner: sim.executor().clone(),
        fault,
        refused: std::sync::atomic::AtomicBool::new(false),
        reconciles: reconciles.clone(),
    };
    executors.scaling = grace_executor::Providers::single(sim.name(), std::sync::Arc::new(fake));
    let env = grace_engine::RunEnv::new(
        executors,
        world.ledger.clone(),
        std::sync::Arc::new(PassThrough),
    );
    (env, reconciles)
}

#[test]
fn a_change_that_failed_in_an_earlier_attempt_is_made_by_the_retry() {
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    let (throttled, _) = faulty_env(&world, Fault::Throttled);
    let first = attempt_in(&world, &guest, &throttled);
    assert_ne!(first.status, RunStatus::Succeeded);
    let failed = failed_change(&first, "unavailable");
    assert_eq!(desired(&world, "api-asg"), 3);

    // The failure's record is not a completion: the retry makes the change.
    let retry = attempt(&world, &guest, true);
    assert_eq!(retry.status, RunStatus::Succeeded, "{:?}", retry.failure);
    assert_eq!(desired(&world, "api-asg"), 5);
    let action = retry.actions().next().unwrap();
    assert!(action.result.get("replayed_from").is_none(), "{action:?}");
    assert_eq!(
        action.result["idempotency_key"],
        failed.result["idempotency_key"]
    );
}

#[test]
fn idempotency_keys_differ_by_run_change_target_and_rank() {
    use grace_engine::pipeline::idempotency_key as key;
    let k = key("run-1", "scaling", "set-desired-capacity", "api-asg", 1);
    assert_eq!(k.len(), 32);
    assert_eq!(
        k,
        key("run-1", "scaling", "set-desired-capacity", "api-asg", 1)
    );
    for other in [
        key("run-2", "scaling", "set-desired-capacity", "api-asg", 1),
        key("run-1", "scaling", "set-desired-capacity", "batch-asg", 1),
        key("run-1", "scaling", "set-desired-capacity", "api-asg", 2),
        key("run-1", "containers", "restart", "api-asg", 1),
        // Length prefixes: moving a character between parts is another key.
        key("run-1s", "caling", "set-desired-capacity", "api-asg", 1),
    ] {
        assert_ne!(k, other);
    }
}

/// The run's first change, which must have failed with an error of `kind`.
fn failed_change<'a>(report: &'a RunReport, kind: &str) -> &'a grace_engine::TimelineEntry {
    let change = report.timeline.iter().find(|c| c.change).unwrap();
    assert_eq!(change.result["error"]["kind"], kind, "{change:?}");
    change
}

/// The run's ledger records of `scaling.set-desired-capacity`.
fn capacity_records(world: &World, run: &str) -> Vec<grace_ledger::Entry> {
    world
        .ledger
        .entries_for_run(run)
        .unwrap()
        .into_iter()
        .filter(|e| e.function == "set-desired-capacity")
        .collect()
}

#[test]
fn a_change_made_whose_answer_was_lost_is_read_back_by_the_retry_not_made_again() {
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    let (env, _) = faulty_env(&world, Fault::LostAnswer);
    let first = attempt_in(&world, &guest, &env);
    assert_ne!(first.status, RunStatus::Succeeded);
    failed_change(&first, "timed-out");
    // The provider made it: 3 → 5.
    assert_eq!(desired(&world, "api-asg"), 5);

    // The retry's playbook reads 5 and asks for 7; the same change (by its key) is read back
    // as the first attempt asked it, found in place, and not made again.
    let retry = attempt(&world, &guest, true);
    assert_eq!(retry.status, RunStatus::Succeeded, "{:?}", retry.failure);
    assert_eq!(desired(&world, "api-asg"), 5, "the change was made once");
    let action = retry.actions().next().unwrap();
    let intent_seq = capacity_records(&world, "run-1")
        .iter()
        .find(|e| e.result["intent"] == "executing")
        .unwrap()
        .seq;
    assert_eq!(action.result["reconciled_from"], intent_seq, "{action:?}");
    assert!(action.result.get("replayed_from").is_none(), "{action:?}");
    assert!(action.reason.contains("reconciled"), "{}", action.reason);
    assert_eq!(action.result["ok"]["desired_capacity"], 5);
    world.ledger.verify().unwrap();
}

/// Puts on record what a host killed between a change's intent and its outcome leaves: the
/// intent of run-1's first `set-desired-capacity` of api-asg to `desired`, and nothing after.
fn intent_without_outcome(world: &World, guest: &grace_engine::Guest, desired: u32) {
    intent_on_provider_without_outcome(world, guest, desired, "sim");
}

/// [`intent_without_outcome`], its intent routed to `provider`.
fn intent_on_provider_without_outcome(
    world: &World,
    guest: &grace_engine::Guest,
    desired: u32,
    provider: &str,
) {
    use grace_engine::pipeline::idempotency_key;
    use grace_executor::Clock as _;
    let key = idempotency_key("run-1", "scaling", "set-desired-capacity", "api-asg", 1);
    let entry = grace_ledger::NewEntry {
        run_id: "run-1".into(),
        playbook: guest.manifest.name.clone(),
        digest: guest.component.digest().to_owned(),
        interface: "scaling".into(),
        function: "set-desired-capacity".into(),
        args: json!({ "group": "api-asg", "desired_capacity": desired }),
        decision: grace_ledger::Decision::allowed("within grants"),
        result: json!({ "intent": "executing", "idempotency_key": key, "provider": provider }),
        at_millis: world.sim.clock().now_millis(),
    };
    runtime().block_on(async {
        world.ledger.submit(entry).unwrap().await.unwrap();
    });
}

#[test]
fn a_change_made_before_a_crash_that_left_only_its_intent_is_not_made_again_on_resume() {
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    intent_without_outcome(&world, &guest, 5);
    // The provider made the change; the host died before recording it.
    let sim = world.sim.executors().scaling.default_provider().unwrap();
    runtime()
        .block_on(sim.set_desired_capacity("api-asg", 5))
        .unwrap();

    let resumed = attempt(&world, &guest, true);
    assert_eq!(
        resumed.status,
        RunStatus::Succeeded,
        "{:?}",
        resumed.failure
    );
    assert_eq!(
        desired(&world, "api-asg"),
        5,
        "not 7: the change was made once"
    );
    let action = resumed.actions().next().unwrap();
    assert!(action.result["reconciled_from"].is_u64(), "{action:?}");
}

#[test]
fn a_change_whose_intent_is_on_record_but_which_never_happened_is_made_on_resume() {
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    // The host died after the intent, before the provider was called.
    intent_without_outcome(&world, &guest, 5);

    let resumed = attempt(&world, &guest, true);
    assert_eq!(
        resumed.status,
        RunStatus::Succeeded,
        "{:?}",
        resumed.failure
    );
    assert_eq!(desired(&world, "api-asg"), 5);
    let action = resumed.actions().next().unwrap();
    assert!(action.result.get("reconciled_from").is_none(), "{action:?}");
    assert!(action.reason.contains("made now"), "{}", action.reason);
}

#[test]
fn a_change_read_back_as_made_is_recorded_with_the_arguments_its_first_attempt_made_it_with() {
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    let (env, _) = faulty_env(&world, Fault::LostAnswer);
    attempt_in(&world, &guest, &env);
    assert_eq!(desired(&world, "api-asg"), 5, "the lost change was made");

    // The retry's playbook reads 5 and asks for 7; what is in place, and on record, is 5.
    let retry = attempt(&world, &guest, true);
    assert_eq!(retry.status, RunStatus::Succeeded, "{:?}", retry.failure);
    let action = retry.actions().next().unwrap();
    assert!(action.result["reconciled_from"].is_u64(), "{action:?}");
    assert_eq!(action.args["desired_capacity"], 5, "{action:?}");
    let outcome = capacity_records(&world, "run-1")
        .into_iter()
        .rfind(|e| e.result.get("ok").is_some())
        .unwrap();
    assert_eq!(outcome.args["desired_capacity"], 5, "{outcome:?}");
    assert!(
        outcome.decision.reason.contains("reconciled"),
        "{outcome:?}"
    );
    world.ledger.verify().unwrap();
}

#[test]
fn a_change_whose_intent_went_to_another_provider_is_refused_naming_both_not_read_back() {
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    // The earlier attempt's change went to `aws-eu`; the routes now send api-asg to `sim`.
    intent_on_provider_without_outcome(&world, &guest, 5, "aws-eu");

    let resumed = attempt(&world, &guest, true);
    assert_ne!(resumed.status, RunStatus::Succeeded);
    assert_eq!(desired(&world, "api-asg"), 3, "nothing made on `sim`");
    let refused = failed_change(&resumed, "conflict");
    let message = refused.result["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`aws-eu`") && message.contains("`sim`"),
        "{message}"
    );
    assert!(
        refused.result.get("reconciled_from").is_none(),
        "{refused:?}"
    );
    // The same refusal awaits every retry: the record says so, and the server stops there.
    let intent = capacity_records(&world, "run-1")[0].seq;
    assert_eq!(
        refused.result["error"]["unreconciled_from"], intent,
        "{refused:?}"
    );
}

#[test]
fn a_change_the_provider_refused_is_not_an_unknown_outcome_and_is_made_anew_by_the_retry() {
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    let (env, reconciles) = faulty_env(&world, Fault::RefusedOnce);
    let first = attempt_in(&world, &guest, &env);
    assert_ne!(first.status, RunStatus::Succeeded);
    let refused = failed_change(&first, "conflict");
    assert!(
        refused.result["error"].get("unreconciled_from").is_none(),
        "an ordinary conflict may clear: {refused:?}"
    );

    let retry = attempt_in(&world, &guest, &env.clone().retrying(true));
    assert_eq!(retry.status, RunStatus::Succeeded, "{:?}", retry.failure);
    assert_eq!(desired(&world, "api-asg"), 5);
    assert_eq!(
        reconciles.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a refused change is known not made: nothing to read back"
    );
    let action = retry.actions().next().unwrap();
    assert!(
        !action.reason.contains("earlier attempt"),
        "{}",
        action.reason
    );
}

#[test]
fn a_conflict_reported_on_reading_back_leaves_the_first_attempts_outcome_unknown() {
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    let (lost, _) = faulty_env(&world, Fault::LostAnswer);
    attempt_in(&world, &guest, &lost);
    assert_eq!(desired(&world, "api-asg"), 5, "the lost change was made");
    let first_intent = capacity_records(&world, "run-1")[0].seq;
    // The second attempt's read-back reports a conflict: its record is a failure that
    // proves nothing about the first attempt's change.
    let (conflicting, _) = faulty_env(&world, Fault::ConflictingReadBack);
    let second = attempt_in(&world, &guest, &conflicting.retrying(true));
    let refused = failed_change(&second, "conflict");
    assert_eq!(
        refused.result["error"]["unreconciled_from"], first_intent,
        "{refused:?}"
    );

    // The third attempt still reads the first attempt's change back, and finds it made.
    let third = attempt(&world, &guest, true);
    assert_eq!(third.status, RunStatus::Succeeded, "{:?}", third.failure);
    assert_eq!(desired(&world, "api-asg"), 5, "not made a second time");
    let action = third.actions().next().unwrap();
    assert_eq!(action.result["reconciled_from"], first_intent, "{action:?}");
}

#[test]
fn a_provider_conflict_while_reading_back_stays_retryable_and_the_retry_reads_again() {
    let guest = load(&example("scale-on-latency"));
    let world = overloaded();
    let (lost, _) = faulty_env(&world, Fault::LostAnswer);
    attempt_in(&world, &guest, &lost);
    let first_intent = capacity_records(&world, "run-1")[0].seq;
    // The read-back itself is refused (contention): that says nothing of the resource, so the
    // record does not mark the change as one no retry gets past.
    let (contended, _) = faulty_env(&world, Fault::ContendedReadBack);
    let second = attempt_in(&world, &guest, &contended.retrying(true));
    let refused = failed_change(&second, "conflict");
    assert!(
        refused.result["error"].get("unreconciled_from").is_none(),
        "{refused:?}"
    );

    let third = attempt(&world, &guest, true);
    assert_eq!(third.status, RunStatus::Succeeded, "{:?}", third.failure);
    let action = third.actions().next().unwrap();
    assert_eq!(action.result["reconciled_from"], first_intent, "{action:?}");
    assert_eq!(desired(&world, "api-asg"), 5, "not made a second time");
}

/// The simulated containers, except that `web-1` always lists as unhealthy (so every attempt
/// of restart-unhealthy-container restarts it) and the first restart is made and then its
/// answer is lost; counts the restarts made.
struct LostRestart {
    inner: std::sync::Arc<dyn grace_executor::ContainerExecutor>,
    lost: std::sync::atomic::AtomicBool,
    restarts: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

#[async_trait::async_trait]
impl grace_executor::ContainerExecutor for LostRestart {
    async fn list(
        &self,
        selector: &grace_executor::Labels,
    ) -> Result<Vec<grace_executor::containers::Container>, grace_executor::ExecError> {
        let mut all = self.inner.list(selector).await?;
        for c in &mut all {
            if c.name == "web-1" {
                c.health = grace_executor::containers::Health::Unhealthy;
            }
        }
        Ok(all)
    }
    async fn inspect(
        &self,
        id: &str,
    ) -> Result<grace_executor::containers::Container, grace_executor::ExecError> {
        self.inner.inspect(id).await
    }
    async fn restart(
        &self,
        id: &str,
    ) -> Result<grace_executor::containers::Container, grace_executor::ExecError> {
        self.restarts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let restarted = self.inner.restart(id).await?;
        if !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(grace_executor::ExecError::TimedOut(
                "no answer within 10s".into(),
            ));
        }
        Ok(restarted)
    }
    async fn start(
        &self,
        id: &str,
    ) -> Result<grace_executor::containers::Container, grace_executor::ExecError> {
        self.inner.start(id).await
    }
    async fn stop(
        &self,
        id: &str,
    ) -> Result<grace_executor::containers::Container, grace_executor::ExecError> {
        self.inner.stop(id).await
    }
    async fn scale(
        &self,
        selector: &grace_executor::Labels,
        replicas: u32,
    ) -> Result<Vec<grace_executor::containers::Container>, grace_executor::ExecError> {
        self.inner.scale(selector, replicas).await
    }
    async fn logs(&self, id: &str, tail: u32) -> Result<Vec<String>, grace_executor::ExecError> {
        self.inner.logs(id, tail).await
    }
    async fn reconcile(
        &self,
        change: &grace_executor::containers::Change,
    ) -> Result<
        grace_executor::Reconciled<grace_executor::containers::Container>,
        grace_executor::ExecError,
    > {
        self.inner.reconcile(change).await
    }
}

#[test]
fn a_container_restart_whose_answer_was_lost_is_read_back_by_its_start_not_made_again() {
    let guest = load(&example("restart-unhealthy-container"));
    let world = World::new();
    let restarts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut executors = world.sim.executors();
    let sim = executors.containers.default_provider().unwrap();
    executors.containers = grace_executor::Providers::single(
        sim.name(),
        std::sync::Arc::new(LostRestart {
            inner: sim.executor().clone(),
            lost: std::sync::atomic::AtomicBool::new(false),
            restarts: restarts.clone(),
        }),
    );
    let env = grace_engine::RunEnv::new(
        executors,
        world.ledger.clone(),
        std::sync::Arc::new(PassThrough),
    );
    let unhealthy = event("container.unhealthy", "web-1", json!({}));
    let run = |env: &grace_engine::RunEnv| {
        runtime().block_on(async {
            let r = engine()
                .run_playbook_as("run-1", &guest, &unhealthy, env)
                .await;
            world.ledger.flush().await.unwrap();
            r
        })
    };
    let first = run(&env);
    assert_ne!(first.status, RunStatus::Succeeded);
    failed_change(&first, "timed-out");
    let intent = world
        .ledger
        .entries_for_run("run-1")
        .unwrap()
        .into_iter()
        .find(|e| e.result["intent"] == "executing")
        .unwrap();
    assert!(
        intent.result["before"]["container_id"].is_string(),
        "{intent:?}"
    );

    let retry = run(&env.clone().retrying(true));
    assert_eq!(retry.status, RunStatus::Succeeded, "{:?}", retry.failure);
    assert_eq!(
        restarts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "restarted once in all"
    );
    let action = retry.actions().next().unwrap();
    assert_eq!(action.result["reconciled_from"], intent.seq, "{action:?}");
}

/// Puts on record the intent of run-1's first `scale-deployment` of shop/checkout to
/// `replicas`, decided on `generation`, with nothing after (the host died before the call).
fn scale_intent_without_outcome(
    world: &World,
    guest: &grace_engine::Guest,
    replicas: u32,
    generation: u64,
) {
    use grace_engine::pipeline::idempotency_key;
    use grace_executor::Clock as _;
    let key = idempotency_key(
        "run-1",
        "kubernetes",
        "scale-deployment",
        "shop/checkout",
        1,
    );
    let provider = world.sim.executors().kubernetes.default_provider().unwrap();
    let entry = grace_ledger::NewEntry {
        run_id: "run-1".into(),
        playbook: guest.manifest.name.clone(),
        digest: guest.component.digest().to_owned(),
        interface: "kubernetes".into(),
        function: "scale-deployment".into(),
        args: json!({ "namespace": "shop", "name": "checkout", "replicas": replicas }),
        decision: grace_ledger::Decision::allowed("within grants"),
        result: json!({
            "intent": "executing",
            "idempotency_key": key,
            "provider": provider.name(),
            "before": { "generation": generation },
        }),
        at_millis: world.sim.clock().now_millis(),
    };
    runtime().block_on(async {
        world.ledger.submit(entry).unwrap().await.unwrap();
    });
}

/// Runs k8s-scale-deployment as a resumed run-1, asking for `replicas`.
fn resume_scale(world: &World, guest: &grace_engine::Guest, replicas: u32) -> RunReport {
    let env = world.env.clone().retrying(true);
    let saturated = event(
        "deployment.saturated",
        "shop/checkout",
        json!({ "replicas": replicas }),
    );
    runtime().block_on(async {
        let report = engine()
            .run_playbook_as("run-1", guest, &saturated, &env)
            .await;
        world.ledger.flush().await.unwrap();
        report
    })
}

#[test]
fn a_deployment_scale_never_made_is_redone_on_the_spec_generation_it_was_decided_on() {
    let guest = load(&example("k8s-scale-deployment"));
    let world = World::new();
    scale_intent_without_outcome(&world, &guest, 3, 1);

    let resumed = resume_scale(&world, &guest, 3);
    assert_eq!(
        resumed.status,
        RunStatus::Succeeded,
        "{:?}",
        resumed.failure
    );
    let action = resumed.actions().next().unwrap();
    assert!(action.reason.contains("made now"), "{}", action.reason);
    assert_eq!(action.result["ok"]["replicas"], 3, "{action:?}");
}

#[test]
fn a_deployment_scale_never_made_over_which_the_spec_changed_is_a_conflict_not_a_redo() {
    let guest = load(&example("k8s-scale-deployment"));
    let world = World::new();
    scale_intent_without_outcome(&world, &guest, 3, 1);
    // Someone else scales it after the change was decided: generation 2.
    let sim = world.sim.executors().kubernetes.default_provider().unwrap();
    runtime()
        .block_on(sim.scale_deployment("shop", "checkout", 4))
        .unwrap();

    let resumed = resume_scale(&world, &guest, 3);
    assert_ne!(resumed.status, RunStatus::Succeeded);
    let refused = failed_change(&resumed, "conflict");
    assert!(
        refused.result["error"]["unreconciled_from"].is_u64(),
        "no retry can clear it: {refused:?}"
    );
    let read = runtime()
        .block_on(sim.get_deployment("shop", "checkout"))
        .unwrap();
    assert_eq!(read.replicas, 4, "the other writer's change stands");
}
