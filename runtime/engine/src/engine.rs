//! The engine: wasmtime configured for hostile guests, a cache of pre-instantiated components by
//! digest, and runs — a fresh instance per run, bounded by fuel, an epoch deadline and memory
//! limits, its every host call going through the pipeline.
//!
//! Safety is configuration, and it is all here: the pooling allocator (instances come from
//! preallocated slots, memory has guard regions), `max_wasm_stack`, fuel, epoch interruption
//! driven by one ticker thread, and the per-store [`GuestLimiter`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grace_executor::Executors;
use grace_ledger::Ledger;
use serde_json::json;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::artifacts::ArtifactCache;
use crate::bindings::collector::CollectorPre;
use crate::bindings::playbook::{Playbook, PlaybookPre};
use crate::bindings::types as wit;
use crate::bounds::RunBounds;
use crate::component::{
    CompiledComponent, Guest, LoadError, Pre, check_header, manifest_path, sha256,
};
use crate::event::TriggerEvent;
use crate::host::{GUEST_OUTPUT_BYTES, HostState};
use crate::limiter::GuestLimiter;
use crate::manifest::{Kind, MAX_MEMORY_BYTES, Manifest};
use crate::pipeline::{Completed, RunState, Unknowns, completed_changes, unknown_changes};
use crate::run::{Failure, FailureKind, GuestInfo, Outcome, RunReport, RunStatus};
use crate::trust::Trust;

/// Most events one `collect` may return.
pub const MAX_COLLECTED_EVENTS: usize = 1000;
/// Longest error text a guest may return; longer ones are cut.
const MAX_GUEST_ERROR_BYTES: usize = 4096;
/// Longest outcome summary, and longest outcome detail value, kept; longer ones are cut.
pub const MAX_OUTCOME_TEXT_BYTES: usize = 4096;
/// Most outcome details kept.
pub const MAX_OUTCOME_DETAILS: usize = 64;
/// Longest outcome detail key kept.
const MAX_OUTCOME_KEY_BYTES: usize = 256;

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Runs that may be in flight at once (sizes the instance pool).
    pub max_concurrent_runs: u32,
    /// How often the epoch advances: the granularity of deadlines and of yielding to other tasks.
    pub epoch_tick: Duration,
    /// Largest wasm stack a guest may use.
    pub max_wasm_stack: usize,
    /// Where compiled components are kept between processes (see [`crate::artifacts`]); `None`
    /// compiles every component each time a process first loads it.
    pub compiled_cache: Option<PathBuf>,
    /// The most bytes the compiled-component cache keeps in one configuration's directory:
    /// past it the least recently used files go (see [`crate::artifacts`]).
    pub compiled_cache_max_bytes: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent_runs: 64,
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack: 512 * 1024,
            compiled_cache: None,
            compiled_cache_max_bytes: crate::artifacts::DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

/// What a run acts through: the providers, the ledger, the trust core.
#[derive(Clone)]
pub struct RunEnv {
    /// Providers and the run clock.
    pub executors: Executors,
    /// Where every host call is recorded.
    pub ledger: Arc<Ledger>,
    /// Decides about each call the grants allow.
    pub trust: Arc<dyn Trust>,
    /// Whether earlier attempts of the run may have made changes already (a retry, a resumed
    /// run): then the run's ledger records are read first; each change an earlier attempt
    /// completed is replayed from its record instead of being made again, and each change an
    /// earlier attempt began without a recorded outcome is reconciled: its provider reads the
    /// resource, and the change is made again only if it is not in place.
    pub earlier_attempts: bool,
    /// The host's bounds on the run, whatever its manifest asks.
    pub bounds: RunBounds,
    /// Checked immediately before every change (see [`crate::fence`]); none by default.
    pub fence: Option<Arc<dyn crate::fence::Fence>>,
    /// Keeps every change's intent and outcome beside the ledger, and is where a retry reads
    /// its earlier attempts from (see [`crate::journal`]); none by default.
    pub journal: Option<Arc<dyn crate::journal::Journal>>,
}

impl RunEnv {
    /// Providers, ledger and the trust core that decides each call. There is no default trust
    /// core: a host says which one its runs answer to (tests and embedders that decide
    /// elsewhere say [`PassThrough`](crate::trust::PassThrough) out loud).
    pub fn new(executors: Executors, ledger: Arc<Ledger>, trust: Arc<dyn Trust>) -> Self {
        RunEnv {
            executors,
            ledger,
            trust,
            earlier_attempts: false,
            bounds: RunBounds::default(),
            fence: None,
            journal: None,
        }
    }

    /// Marks the run as a retry: see [`RunEnv::earlier_attempts`].
    pub fn retrying(mut self, earlier_attempts: bool) -> Self {
        self.earlier_attempts = earlier_attempts;
        self
    }
}

/// The GRACE engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    wasmtime: wasmtime::Engine,
    linker: Linker<HostState>,
    cache: Mutex<HashMap<(String, Kind), CompiledComponent>>,
    /// Compiled components on disk, when configured and usable.
    artifacts: Option<ArtifactCache>,
    /// Components loaded from `artifacts` instead of compiled.
    artifact_hits: AtomicU64,
    _ticker: EpochTicker,
}

/// The thread that advances an engine's epoch every tick: the clock of deadlines and of
/// yielding. It stops when dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts ticking `engine` every `tick`.
    pub fn start(engine: &wasmtime::Engine, tick: Duration) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("grace-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    ticking.increment_epoch();
                }
            })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl EngineConfig {
    /// The wasmtime configuration every GRACE engine uses: pooling allocation sized for
    /// `max_concurrent_runs`, fuel, epoch interruption, a bounded wasm stack. Public so that
    /// benchmarks can measure raw wasmtime with exactly the same settings.
    pub fn wasmtime_config(&self) -> anyhow::Result<Config> {
        let mut pool = PoolingAllocationConfig::default();
        let n = self.max_concurrent_runs.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(16))
            .total_memories(n.saturating_mul(4))
            .total_tables(n.saturating_mul(16))
            .total_stacks(n)
            .max_memories_per_component(4)
            .max_memory_size(usize::try_from(MAX_MEMORY_BYTES)?);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(self.max_wasm_stack);
        Ok(wasm)
    }
}

impl Engine {
    /// Configures wasmtime and starts the epoch ticker.
    pub fn new(config: &EngineConfig) -> anyhow::Result<Engine> {
        let wasm = config.wasmtime_config()?;
        let wasmtime = wasmtime::Engine::new(&wasm)?;

        let mut linker = Linker::<HostState>::new(&wasmtime);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // WASI's monotonic clock waits on the run clock, not tokio's timer (see `wasi_clock`).
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<
            HostState,
            HasSelf<HostState>,
        >(&mut linker, |s| s)?;
        linker.allow_shadowing(false);
        Playbook::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;

        let ticker = EpochTicker::start(&wasmtime, config.epoch_tick)?;
        // The cache only saves time: one that cannot be used is reported, and every component
        // is compiled.
        let artifacts =
            config.compiled_cache.as_deref().and_then(|root| {
                match ArtifactCache::open(root, &wasmtime, config.compiled_cache_max_bytes) {
                    Ok(cache) => Some(cache),
                    Err(e) => {
                        tracing::warn!("{e}");
                        None
                    }
                }
            });

        Ok(Engine {
            inner: Arc::new(Inner {
                wasmtime,
                linker,
                cache: Mutex::new(HashMap::new()),
                artifacts,
                artifact_hits: AtomicU64::new(0),
                _ticker: ticker,
            }),
        })
    }

    /// Compiles (or takes from the cache) a component that must implement `kind`'s world.
    /// `what` names the bytes in errors (a path or an upload).
    pub fn compile(
        &self,
        bytes: &[u8],
        kind: Kind,
        what: &str,
    ) -> Result<CompiledComponent, LoadError> {
        check_header(bytes, what)?;
        let sha = sha256(bytes);
        let digest = format!("sha256:{}", hex::encode(sha));
        let key = (digest.clone(), kind);
        if let Some(hit) = self.cache().get(&key) {
            return Ok(hit.clone());
        }
        let cached = self
            .inner
            .artifacts
            .as_ref()
            .and_then(|a| a.load(&self.inner.wasmtime, &sha));
        let component = match cached {
            Some(component) => {
                self.inner.artifact_hits.fetch_add(1, Ordering::Relaxed);
                component
            }
            None => {
                let component = Component::new(&self.inner.wasmtime, bytes).map_err(|e| {
                    LoadError::Compile {
                        what: what.into(),
                        message: format!("{e:#}"),
                    }
                })?;
                if let Some(artifacts) = &self.inner.artifacts {
                    artifacts.store(&sha, &component);
                }
                component
            }
        };
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            what: what.into(),
            kind,
            message: format!("{e:#}"),
        };
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = match kind {
            Kind::Playbook => Pre::Playbook(PlaybookPre::new(instance_pre).map_err(wrong_world)?),
            Kind::Collector => {
                Pre::Collector(CollectorPre::new(instance_pre).map_err(wrong_world)?)
            }
        };
        let compiled = CompiledComponent { digest, pre };
        self.cache().insert(key, compiled.clone());
        Ok(compiled)
    }

    /// Drops a component from the cache (e.g. its playbook was deleted); it is compiled again if
    /// it is ever loaded again.
    pub fn forget(&self, digest: &str) {
        self.cache().retain(|(d, _), _| d != digest);
    }

    /// Components this engine loaded from its compiled-component cache on disk instead of
    /// compiling them.
    pub fn compiled_cache_hits(&self) -> u64 {
        self.inner.artifact_hits.load(Ordering::Relaxed)
    }

    /// The directory of this engine configuration's compiled components, if the cache is on.
    pub fn compiled_cache_dir(&self) -> Option<&Path> {
        self.inner.artifacts.as_ref().map(ArtifactCache::dir)
    }

    /// Whether a component is in the cache, compiled.
    pub fn is_cached(&self, digest: &str) -> bool {
        self.cache().keys().any(|(d, _)| d == digest)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Kind), CompiledComponent>> {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads a guest from its directory or manifest path.
    pub fn load(&self, path: &Path) -> Result<Guest, LoadError> {
        let manifest_path = manifest_path(path)?;
        let manifest = Manifest::load(&manifest_path)?;
        let bytes =
            std::fs::read(&manifest.component).map_err(|source| LoadError::ReadComponent {
                path: manifest.component.clone(),
                source,
            })?;
        self.guest(
            manifest,
            &bytes,
            &format!("`{}`", path_display(&manifest_path, &bytes)),
        )
    }

    /// Builds a guest from a manifest and component bytes (e.g. an upload).
    pub fn guest(&self, manifest: Manifest, bytes: &[u8], what: &str) -> Result<Guest, LoadError> {
        let component = self.compile(bytes, manifest.kind, what)?;
        Ok(Guest {
            manifest: Arc::new(manifest),
            component,
        })
    }

    /// Runs a playbook on one event, under a fresh run id.
    pub async fn run_playbook(
        &self,
        guest: &Guest,
        event: &TriggerEvent,
        env: &RunEnv,
    ) -> RunReport {
        self.run(guest, Some(event), env, uuid::Uuid::new_v4().to_string())
            .await
    }

    /// Runs a playbook on one event under a given run id (e.g. the server's run, attempt after
    /// attempt: the ledger groups every attempt's calls under it).
    pub async fn run_playbook_as(
        &self,
        run_id: &str,
        guest: &Guest,
        event: &TriggerEvent,
        env: &RunEnv,
    ) -> RunReport {
        self.run(guest, Some(event), env, run_id.to_owned()).await
    }

    /// Runs a collector once.
    pub async fn run_collector(&self, guest: &Guest, env: &RunEnv) -> RunReport {
        self.run(guest, None, env, uuid::Uuid::new_v4().to_string())
            .await
    }

    async fn run(
        &self,
        guest: &Guest,
        event: Option<&TriggerEvent>,
        env: &RunEnv,
        run_id: String,
    ) -> RunReport {
        let manifest = &guest.manifest;
        let limits = manifest.limits;
        let clock = env.executors.clock.clone();
        let started_at = clock.now_millis();
        let timeout_ms = u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX);
        let info = GuestInfo {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            kind: manifest.kind,
            digest: guest.component.digest.clone(),
        };
        let (completed, unknown, unreadable) = if env.earlier_attempts {
            match earlier_records(env, &run_id).await {
                Ok(records) => (completed_changes(&records), unknown_changes(&records), None),
                Err(e) => (Completed::new(), Unknowns::new(), Some(e)),
            }
        } else {
            (Completed::new(), Unknowns::new(), None)
        };
        // The run's budgets hold across its attempts: what earlier attempts completed or began
        // counts from the start (a call repeating one of them is not counted twice).
        let mut changes = BTreeMap::new();
        let mut notify_bytes = 0u64;
        let earlier = completed
            .values()
            .map(|c| (c.interface.as_str(), &c.args))
            .chain(unknown.values().map(|u| (u.interface.as_str(), &u.args)));
        for (interface, args) in earlier {
            if let Some(i) = grace_model::capability::INTERFACES
                .iter()
                .find(|i| i.name == interface)
            {
                *changes.entry(i.name).or_insert(0u32) += 1;
            }
            if interface == grace_model::capability::notify::INTERFACE.name {
                let bytes = args.get("bytes").and_then(serde_json::Value::as_u64);
                notify_bytes = notify_bytes.saturating_add(bytes.unwrap_or(0));
            }
        }
        let state = RunState {
            run_id: run_id.clone(),
            guest: info.clone(),
            grants: Arc::new(manifest.grants.clone()),
            config: Arc::new(manifest.config.clone()),
            limits,
            executors: env.executors.clone(),
            ledger: env.ledger.clone(),
            trust: env.trust.clone(),
            fence: env.fence.clone(),
            journal: env.journal.clone(),
            event: event.cloned().map(Arc::new),
            awaiting: None,
            started_at,
            deadline_at: started_at.saturating_add(timeout_ms),
            wall_deadline: tokio::time::Instant::now() + limits.timeout,
            host_calls: 0,
            changes,
            timeline: Vec::new(),
            stop: None,
            pending: Vec::new(),
            deferred: None,
            completed: Arc::new(completed),
            unknown: Arc::new(unknown),
            ranks: HashMap::new(),
            bounds: env.bounds,
            recorded_bytes: 0,
            log_bytes: 0,
            notify_bytes: Arc::new(std::sync::atomic::AtomicU64::new(notify_bytes)),
        };
        let stderr = MemoryOutputPipe::new(GUEST_OUTPUT_BYTES);
        let mut store = Store::new(
            &self.inner.wasmtime,
            HostState::new(
                state,
                GuestLimiter::new(limits.memory_bytes),
                stderr.clone(),
            ),
        );
        store.limiter(|s| &mut s.limiter);
        let wall_deadline = Instant::now() + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= wall_deadline {
                Err(Trap::Interrupt.into())
            } else {
                // Let other runs and the server make progress between ticks.
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let mut report = RunReport {
            run_id,
            guest: info,
            event: event.cloned(),
            status: RunStatus::Failed,
            outcome: None,
            events: Vec::new(),
            failure: None,
            approval: None,
            started_at,
            finished_at: started_at,
            timeline: Vec::new(),
            host_calls: 0,
            fuel_consumed: 0,
            guest_stderr: String::new(),
            outcome_truncated: false,
        };

        if let Some(e) = unreadable {
            // Without the earlier attempts' records, a change could be made twice: do nothing.
            report.failure = Some(Failure {
                kind: FailureKind::LedgerUnavailable,
                message: format!(
                    "the records of this run's earlier attempts could not be read, so it did not run: {e}"
                ),
            });
            return report;
        }
        let started = store
            .data_mut()
            .run
            .record_lifecycle(
                "started",
                json!({ "kind": manifest.kind, "version": manifest.version, "event": event, "simulated": clock.is_virtual() }),
                json!({ "ok": null }),
            );
        if let Err(e) = started {
            report.failure = Some(Failure {
                kind: FailureKind::LedgerUnavailable,
                message: format!(
                    "the ledger could not record the run's start, so it did not run: {e}"
                ),
            });
            return report;
        }

        let overslept = store.data().timers.overslept.clone();
        let result = match store.set_fuel(limits.fuel) {
            Ok(()) => {
                // A backstop past the epoch deadline, in case a host call ignores its own timeout.
                let backstop = limits.timeout + Duration::from_secs(5);
                let ended = tokio::select! {
                    r = tokio::time::timeout(
                        backstop,
                        call_guest(&mut store, &guest.component.pre, event),
                    ) => Some(r.unwrap_or_else(|_| Err(wasmtime::Error::from(Trap::Interrupt)))),
                    // A WASI wait reached the deadline: the guest is blocked in the host, where
                    // no epoch check reaches it, so the run is stopped here.
                    () = overslept.reached() => None,
                };
                ended.unwrap_or_else(|| {
                    store.data_mut().run.stop = Some(Failure {
                        kind: FailureKind::DeadlineExceeded,
                        message: format!(
                            "the guest waited past its deadline of {}; it was stopped at the deadline",
                            humantime::format_duration(limits.timeout)
                        ),
                    });
                    Err(wasmtime::Error::from(Trap::Interrupt))
                })
            }
            Err(e) => Err(e),
        };

        report.guest_stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
        report.fuel_consumed = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        match result {
            Ok(GuestResult::Outcome(Ok(outcome))) => {
                report.status = RunStatus::Succeeded;
                let (outcome, truncated) = bounded_outcome(outcome);
                report.outcome = Some(outcome);
                report.outcome_truncated = truncated;
            }
            Ok(GuestResult::Events(Ok(events))) => match self.accept_events(manifest, events) {
                Ok(events) => {
                    report.status = RunStatus::Succeeded;
                    report.events = events;
                }
                Err(message) => {
                    report.failure = Some(Failure {
                        kind: FailureKind::InvalidOutput,
                        message,
                    })
                }
            },
            Ok(GuestResult::Outcome(Err(message)) | GuestResult::Events(Err(message))) => {
                report.failure = Some(Failure {
                    kind: FailureKind::GuestError,
                    message: truncate(message, MAX_GUEST_ERROR_BYTES),
                });
            }
            Err(_) if store.data().run.awaiting.is_some() => {
                report.status = RunStatus::WaitingApproval;
                report.approval = store.data().run.awaiting.clone();
            }
            Err(error) => {
                let failure = classify(&error, store.data(), &report.guest_stderr);
                if failure.kind == FailureKind::DeadlineExceeded {
                    report.status = RunStatus::TimedOut;
                }
                report.failure = Some(failure);
            }
        }

        let state = &mut store.data_mut().run;
        report.finished_at = clock.now_millis();
        report.host_calls = state.host_calls;
        // The timeline needs the sequence numbers of its records; the `started` record needs no
        // waiting for (dropping its receipt does not withdraw it).
        state.pending.retain(|(index, _)| index.is_some());
        let _ = state.confirm_pending(false).await;
        let mut result = json!({
            "status": report.status,
            "outcome": report.outcome,
            "failure": report.failure,
            "events": report.events.len(),
        });
        if report.outcome_truncated {
            result["outcome_truncated"] = json!(true);
        }
        let finished = state.record_lifecycle(
            "finished",
            json!({ "host_calls": state.host_calls, "fuel_consumed": report.fuel_consumed }),
            result,
        );
        report.timeline = std::mem::take(&mut state.timeline);
        // A run's end is always on record: one whose end could not be recorded failed, whatever
        // the guest returned.
        let recorded = match finished {
            Ok(Some(pending)) => pending.await.map(drop),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            tracing::error!(run = %report.run_id, "the ledger could not record the run's end: {e}");
            if report.status != RunStatus::WaitingApproval {
                report.status = RunStatus::Failed;
                report.outcome = None;
                report.events.clear();
                report.failure = Some(Failure {
                    kind: FailureKind::LedgerUnavailable,
                    message: format!("the ledger could not record the run's end: {e}"),
                });
            }
        }
        report
    }

    /// Validates a collector's events. The host names where they came from: `source` and
    /// `actor` are the collector's own name whatever the guest wrote, so that no collector can
    /// pass its events off as another source's (`alertmanager`) and fire playbooks gated on it.
    fn accept_events(
        &self,
        manifest: &Manifest,
        events: Vec<wit::TriggerEvent>,
    ) -> Result<Vec<TriggerEvent>, String> {
        if events.len() > MAX_COLLECTED_EVENTS {
            return Err(format!(
                "the collector returned {} events, above the limit of {MAX_COLLECTED_EVENTS}",
                events.len()
            ));
        }
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                TriggerEvent::from_guest(
                    e.event_type,
                    manifest.name.clone(),
                    manifest.name.clone(),
                    e.resource,
                    &e.payload,
                    e.timestamp,
                )
                .map_err(|err| format!("event {i}: {err}"))
            })
            .collect()
    }
}

/// The guest's outcome, cut to what one ledger entry and one API answer comfortably hold: at
/// most [`MAX_OUTCOME_DETAILS`] details, texts of at most [`MAX_OUTCOME_TEXT_BYTES`]. Whether
/// anything was cut comes back with it.
fn bounded_outcome(outcome: wit::Outcome) -> (Outcome, bool) {
    let mut truncated = outcome.summary.len() > MAX_OUTCOME_TEXT_BYTES
        || outcome.details.len() > MAX_OUTCOME_DETAILS;
    let details = outcome
        .details
        .into_iter()
        .take(MAX_OUTCOME_DETAILS)
        .map(|l| {
            truncated |=
                l.key.len() > MAX_OUTCOME_KEY_BYTES || l.value.len() > MAX_OUTCOME_TEXT_BYTES;
            (
                truncate(l.key, MAX_OUTCOME_KEY_BYTES),
                truncate(l.value, MAX_OUTCOME_TEXT_BYTES),
            )
        })
        .collect();
    let outcome = Outcome {
        summary: truncate(outcome.summary, MAX_OUTCOME_TEXT_BYTES),
        changed: outcome.changed,
        details,
    };
    (outcome, truncated)
}

enum GuestResult {
    Outcome(Result<wit::Outcome, String>),
    Events(Result<Vec<wit::TriggerEvent>, String>),
}

async fn call_guest(
    store: &mut Store<HostState>,
    pre: &Pre,
    event: Option<&TriggerEvent>,
) -> wasmtime::Result<GuestResult> {
    match pre {
        Pre::Playbook(pre) => {
            let event =
                event.ok_or_else(|| wasmtime::Error::msg("a playbook needs an event to run"))?;
            let instance = pre.instantiate_async(&mut *store).await?;
            let wit_event = wit::TriggerEvent {
                event_type: event.event_type.clone(),
                source: event.source.clone(),
                actor: event.actor.clone(),
                resource: event.resource.clone(),
                payload: event.payload_text(),
                timestamp: event.timestamp,
            };
            Ok(GuestResult::Outcome(
                instance.call_run(&mut *store, &wit_event).await?,
            ))
        }
        Pre::Collector(pre) => {
            let instance = pre.instantiate_async(&mut *store).await?;
            Ok(GuestResult::Events(
                instance.call_collect(&mut *store).await?,
            ))
        }
    }
}

/// Tells why the guest stopped: the host's own reasons first, then wasmtime's trap codes.
fn classify(error: &wasmtime::Error, state: &HostState, stderr: &str) -> Failure {
    if let Some(stop) = &state.run.stop {
        return stop.clone();
    }
    if let Some(message) = &state.limiter.exceeded {
        return Failure {
            kind: FailureKind::MemoryLimit,
            message: message.clone(),
        };
    }
    let (kind, message) = match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => (
            FailureKind::DeadlineExceeded,
            format!(
                "the deadline of {} passed; the guest was stopped",
                humantime::format_duration(state.run.limits.timeout)
            ),
        ),
        Some(Trap::OutOfFuel) => (
            FailureKind::FuelExhausted,
            format!(
                "the guest used all of its fuel ({}); it was stopped",
                state.run.limits.fuel
            ),
        ),
        Some(Trap::StackOverflow) => (
            FailureKind::StackOverflow,
            "the guest overflowed its stack".to_owned(),
        ),
        Some(Trap::UnreachableCodeReached) => {
            let said = stderr.trim();
            let message = if said.is_empty() {
                "the guest trapped (unreachable code reached)".to_owned()
            } else {
                format!("the guest panicked: {}", truncate(said.to_owned(), 1024))
            };
            (FailureKind::Panic, message)
        }
        Some(trap) => (FailureKind::Trap, format!("the guest trapped: {trap}")),
        None => (
            FailureKind::Trap,
            format!("the guest was stopped: {error:#}"),
        ),
    };
    Failure { kind, message }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

fn path_display(manifest: &Path, _bytes: &[u8]) -> String {
    manifest.display().to_string()
}

/// The change records of run `run_id`'s earlier attempts: this host's ledger's, and with a
/// journal (which holds what every host did for the run) the journal's, with this host's own
/// records the journal missed (an outcome whose journaling failed) put back where they were:
/// right after this host's last journaled record before them.
async fn earlier_records(
    env: &RunEnv,
    run_id: &str,
) -> Result<Vec<crate::journal::ChangeRecord>, String> {
    let (ledger, id) = (env.ledger.clone(), run_id.to_owned());
    let local: Vec<crate::journal::ChangeRecord> =
        match tokio::task::spawn_blocking(move || ledger.entries_for_run(&id)).await {
            Ok(Ok(entries)) => entries.iter().map(Into::into).collect(),
            Ok(Err(e)) => return Err(format!("the ledger could not be read: {e}")),
            Err(e) => return Err(e.to_string()),
        };
    let Some(journal) = &env.journal else {
        return Ok(local);
    };
    Ok(crate::journal::merge(
        journal.records(run_id).await?,
        local,
        journal.host(),
    ))
}
