//! The running server: what the HTTP handlers call, and the two tasks behind them.
//!
//! ```text
//! POST /v1/events → validate → reserve queue slots (429 when full) → event log (durable) → 202
//!   → matcher task: trigger mesh (conditions, windows, cooldown, dedup, exclusivity)
//!       → runs stored as `queued`, with the events marked matched, in one transaction
//!   → runner task: a worker per run (bounded), attempts with backoff for transient errors,
//!       every state change stored, locks released when the run ends
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use grace_engine::event::system_now_millis;
use grace_engine::{Engine, EngineConfig, Guest, Kind, Manifest, RunEnv, TriggerEvent};
use grace_executor::{Clock, Executors};
use grace_ledger::{Decision, Durability, Ledger, NewEntry};
use grace_mesh::{Decision as MeshDecision, Mesh, PlaybookTriggers, RunKey};
use grace_sim::{Fleet, Simulation};
use serde_json::json;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::metrics::{Gauges, Metrics};
use crate::runs::{Attempt, RunRecord, RunState, RunSummary, is_transient, state_of};
use crate::sources::containers::ContainersSource;
use crate::sources::health::Sources;
use crate::sources::poll::{self, Polled, Poller, Schedule};
use crate::sources::promql;
use crate::store::{EventLog, PlaybookRecord, PutOutcome, RunFilter, Store, VersionRecord};

/// An accepted event on its way to the matcher.
struct Queued {
    seq: u64,
    event: TriggerEvent,
    received_at: u64,
    accepted: Instant,
}

/// A run a worker has claimed: what a cancel needs to stop it at any point of its life.
#[derive(Default)]
struct Active {
    /// Set by a cancel; the worker checks it before every attempt and every backoff.
    cancelled: std::sync::atomic::AtomicBool,
    /// The task running now (an attempt or a backoff sleep).
    task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Notified when the worker has stored the run's final state.
    done: Notify,
}

impl Active {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Registers the task now running; a run cancelled meanwhile has it aborted at once.
    fn running(&self, task: tokio::task::AbortHandle) {
        let mut slot = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_cancelled() {
            task.abort();
        }
        *slot = Some(task);
    }

    fn cancel(&self) {
        let slot = self.task.lock().unwrap_or_else(|e| e.into_inner());
        self.cancelled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(task) = slot.as_ref() {
            task.abort();
        }
    }
}

/// A Wasm collector as a polled source: one pass per poll.
struct CollectorPoller {
    app: std::sync::Weak<App>,
    guest: Guest,
}

#[async_trait::async_trait]
impl Poller for CollectorPoller {
    async fn poll(&self) -> Result<Polled, grace_executor::ExecError> {
        let unavailable =
            || grace_executor::ExecError::Unavailable("the server is shutting down".into());
        let app = self.app.upgrade().ok_or_else(unavailable)?;
        let _slot = app.slots.acquire().await.map_err(|_| unavailable())?;
        let mut env = RunEnv::new(app.executors.clone(), app.ledger.clone());
        env.bounds = app.config.limits.run;
        let report = app.engine.run_collector(&self.guest, &env).await;
        app.metrics.host_calls.fetch_add(
            u64::from(report.host_calls),
            std::sync::atomic::Ordering::Relaxed,
        );
        let over_cap = report
            .failure
            .is_none()
            .then(|| collector_output_over_cap(&app.config, &report.events))
            .flatten();
        app.metrics
            .collector_pass(report.failure.is_none() && over_cap.is_none());
        if let Some(message) = over_cap {
            tracing::warn!(collector = %self.guest.manifest.name, "collector pass refused: {message}");
            return Err(grace_executor::ExecError::InvalidArgument(message));
        }
        match report.failure {
            Some(f) => Err(grace_executor::ExecError::Other(format!(
                "{:?}: {}",
                f.kind, f.message
            ))),
            None => Ok(Polled {
                events: report.events,
                stale: 0,
            }),
        }
    }
}

/// Why a collector pass's output is refused: more events or bytes than the server allows per
/// pass (`collector_max_events`, `collector_max_bytes`). The whole pass is dropped, so a
/// collector cannot flood the event log a little under the cap at every pass unnoticed: its
/// source turns unhealthy and `GET /v1/sources` shows why.
fn collector_output_over_cap(config: &ServeConfig, events: &[TriggerEvent]) -> Option<String> {
    if events.len() > config.collector_max_events {
        return Some(format!(
            "the pass returned {} events, above the server's `collector_max_events` of {}",
            events.len(),
            config.collector_max_events
        ));
    }
    let bytes: usize = events
        .iter()
        .map(|e| e.event_type.len() + e.resource.len() + e.payload_text().len())
        .sum();
    (bytes > config.collector_max_bytes).then(|| {
        format!(
            "the pass returned {bytes} bytes of events, above the server's `collector_max_bytes` of {}",
            config.collector_max_bytes
        )
    })
}

/// The server's shared state.
pub struct App {
    /// Settings.
    pub config: ServeConfig,
    /// The wasm engine.
    pub engine: Engine,
    /// Playbooks, runs, events.
    pub store: Store,
    /// Every host call.
    pub ledger: Arc<Ledger>,
    /// Metrics.
    pub metrics: Metrics,
    /// The simulated fleet, in simulation mode.
    pub sim: Option<Simulation>,
    executors: Executors,
    /// Each capability's providers by name, described for `/healthz`: `simulated`,
    /// `docker unix:///...`, ...
    pub providers:
        std::collections::BTreeMap<&'static str, std::collections::BTreeMap<String, String>>,
    events: EventLog,
    mesh: Mutex<Mesh>,
    guests: RwLock<HashMap<String, Guest>>,
    queue: mpsc::Sender<Queued>,
    runs: mpsc::UnboundedSender<String>,
    active: Mutex<HashMap<String, Arc<Active>>>,
    keys: Mutex<HashMap<String, RunKey>>,
    accepted_at: Mutex<HashMap<String, Instant>>,
    claim: Mutex<()>,
    /// Counts finished runs, so that waiters can wake up when one ends.
    finished: tokio::sync::watch::Sender<u64>,
    /// The polling task of each built-in source and enabled collector.
    pollers: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Every source's health.
    pub sources: Sources,
    /// A weak handle on itself, for the tasks it starts.
    this: std::sync::Weak<App>,
    /// Slots for guests running at once: runs and collector passes share them, so the engine's
    /// instance pool is never exhausted.
    slots: Arc<Semaphore>,
    /// Serializes changes to playbooks (store and memory together).
    admin: tokio::sync::Mutex<()>,
    /// API tokens and whether the server runs without authentication (see [`crate::auth`]).
    pub auth: crate::auth::Authenticator,
    /// The keys uploads may be signed by (see [`crate::signing`]).
    pub trust_roots: crate::signing::TrustRoots,
    /// The trust core: policies, risk, guardrails, approvals (see [`crate::trust`]).
    pub trust: Arc<crate::trust::HostTrust>,
    /// The background tasks' health (see [`crate::supervisor`]).
    pub supervisor: Arc<crate::supervisor::Supervisor>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Live mode with nothing to act on.
    #[error(
        "no provider is configured: add [aws], [docker], [kubernetes], `prometheus` or [[providers]] to grace.toml (see docs/providers.md), or start with `--simulate` to run against the simulated fleet"
    )]
    NoProviders,
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

fn other<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> StartError + '_ {
    move |e| StartError::Other(format!("{context}: {e}"))
}

impl App {
    /// Opens the data directory, recovers from a crash, loads the enabled playbooks and starts
    /// the matcher and runner tasks (on the current tokio runtime).
    pub async fn start(config: ServeConfig) -> Result<Arc<App>, StartError> {
        config.validate()?;
        let sim = if config.simulate {
            let fleet = match &config.fleet {
                Some(path) => Fleet::load(path)
                    .map_err(|e| StartError::Other(format!("fleet `{}`: {e}", path.display())))?,
                None => Fleet::default_fleet(),
            };
            Some(Simulation::new(&fleet))
        } else if config.has_providers() {
            None
        } else {
            return Err(StartError::NoProviders);
        };
        let crate::providers::Connected {
            executors,
            descriptions: providers,
            cloudwatch,
        } = crate::providers::connect(&config, sim.as_ref()).await?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(other("cannot create the data directory"))?;
        let ledger = Arc::new(
            Ledger::open(config.data_dir.join("grace.redb"), Durability::Immediate)
                .map_err(other("cannot open the ledger"))?,
        );
        let store = Store::open(ledger.database()).map_err(other("cannot open the store"))?;
        let (auth, trust_roots) = crate::auth::start(&config, ledger.database())?;
        let trust = Arc::new(
            crate::trust::HostTrust::open(ledger.database(), &config.trust).map_err(|message| {
                crate::config::ConfigError::Invalid {
                    field: "trust",
                    message,
                }
            })?,
        );
        let supervisor = Arc::new(crate::supervisor::Supervisor::default());
        let events = EventLog::start(ledger.database(), supervisor.clone())
            .map_err(other("cannot start the event log"))?;
        let engine = Engine::new(&EngineConfig {
            max_concurrent_runs: u32::try_from(config.max_concurrent_runs + 4).unwrap_or(64),
            ..EngineConfig::default()
        })
        .map_err(other("cannot start the wasm engine"))?;
        let (queue, queue_rx) = mpsc::channel(config.queue_capacity);
        let max_concurrent_runs = config.max_concurrent_runs;
        let (runs, runs_rx) = mpsc::unbounded_channel();

        let app = Arc::new_cyclic(|this| App {
            config,
            engine,
            store,
            ledger,
            metrics: Metrics::default(),
            sim,
            executors,
            providers,
            events,
            mesh: Mutex::new(Mesh::new()),
            guests: RwLock::new(HashMap::new()),
            queue,
            runs,
            active: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            accepted_at: Mutex::new(HashMap::new()),
            claim: Mutex::new(()),
            finished: tokio::sync::watch::Sender::new(0),
            pollers: Mutex::new(HashMap::new()),
            sources: Sources::default(),
            this: this.clone(),
            slots: Arc::new(Semaphore::new(max_concurrent_runs)),
            admin: tokio::sync::Mutex::new(()),
            auth,
            trust_roots,
            trust,
            supervisor,
        });

        app.recover().await?;
        for record in app
            .store
            .playbooks()
            .map_err(other("cannot read playbooks"))?
        {
            if record.enabled
                && let Err(e) = app.activate(&record).await
            {
                tracing::error!(playbook = %record.name, "cannot load the stored playbook: {e}");
            }
        }
        app.warm_up_mesh().map_err(other("cannot read events"))?;
        app.sources.pushed(
            "alertmanager",
            "alertmanager",
            "POST /v1/sources/alertmanager".into(),
        );
        app.sources.pushed(
            "metrics-push",
            "metrics-push",
            "POST /v1/sources/metrics".into(),
        );
        app.start_builtin_sources(cloudwatch.as_ref())?;
        let next = app
            .store
            .matched_through()
            .map_err(other("cannot read the store"))?
            + 1;
        // Each task's receiver outlives a start: a restarted task takes up the same queue.
        let queue_rx = Arc::new(tokio::sync::Mutex::new(queue_rx));
        let runs_rx = Arc::new(tokio::sync::Mutex::new(runs_rx));
        let first_start = Arc::new(std::sync::atomic::AtomicBool::new(true));
        app.supervise("matcher", move |app| {
            let (rx, first) = (queue_rx.clone(), first_start.clone());
            async move {
                let restarted = !first.swap(false, std::sync::atomic::Ordering::SeqCst);
                matcher(app, rx, restarted).await
            }
        });
        app.supervise("runner", move |app| runner(app, runs_rx.clone()));
        app.supervise("retention", retention);
        app.supervise("approval-expiry", approval_expiry);
        app.continue_decided().await;
        if let Some(path) = &app.config.checkpoint_key {
            let key = grace_ledger::SigningKey::load(path).map_err(|e| {
                crate::config::ConfigError::Invalid {
                    field: "checkpoint_key",
                    message: format!("`{}`: {e}", path.display()),
                }
            })?;
            app.supervise("checkpoint-signer", move |app| {
                checkpoints(app, key.clone())
            });
        }
        // Events accepted before a crash but not yet matched are queued before anything new is
        // accepted; the matcher takes events in sequence order whatever order they arrive in.
        let backlog = app
            .store
            .events(next, usize::MAX)
            .map_err(other("cannot read events"))?;
        if !backlog.is_empty() {
            tracing::info!(
                events = backlog.len(),
                "matching events accepted before the restart"
            );
            for e in backlog {
                let q = Queued {
                    seq: e.seq,
                    event: e.event,
                    received_at: e.received_at,
                    accepted: Instant::now(),
                };
                if app.queue.send(q).await.is_err() {
                    break;
                }
            }
        }
        Ok(app)
    }

    /// Runs a background task under the supervisor, restarted whenever it dies.
    fn supervise<F, Fut>(&self, name: &str, task: F)
    where
        F: Fn(Arc<App>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let this = self.this.clone();
        self.supervisor.spawn(name, move || {
            let app = this.upgrade();
            let run = app.map(&task);
            async move {
                match run {
                    Some(run) => run.await,
                    None => Ok(()), // shutting down
                }
            }
        });
    }

    /// Rebuilds the trigger mesh's memory (hold windows, cooldowns) from the events matched
    /// before the restart, so that a restart neither forgets a cooldown nor restarts a window.
    /// Runs those events fired are over (or interrupted): their claims are released at once.
    fn warm_up_mesh(&self) -> Result<(), crate::store::StoreError> {
        const HORIZON: Duration = Duration::from_secs(24 * 3600);
        const MAX_EVENTS: usize = 1_000_000;
        let matched = self.store.matched_through()?;
        let since =
            system_now_millis().saturating_sub(u64::try_from(HORIZON.as_millis()).unwrap_or(0));
        let highest_id = self
            .store
            .runs(&RunFilter::default())?
            .iter()
            .filter_map(|r| r.key.as_ref().map(|k| k.id()))
            .max()
            .unwrap_or(0);
        let mut mesh = self.mesh.lock().unwrap_or_else(|e| e.into_inner());
        mesh.continue_ids_after(highest_id);
        let mut from = 1;
        let mut replayed = 0;
        while from <= matched && replayed < MAX_EVENTS {
            let chunk = self.store.events(from, 10_000)?;
            let Some(last) = chunk.last() else { break };
            from = last.seq + 1;
            for e in chunk
                .into_iter()
                .filter(|e| e.seq <= matched && e.received_at >= since)
            {
                for decision in mesh.offer(&e.event) {
                    if let MeshDecision::Fire { run, .. } = decision {
                        mesh.run_finished(&run);
                    }
                }
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::info!(
                events = replayed,
                "trigger windows and cooldowns rebuilt from the event log"
            );
        }
        Ok(())
    }

    /// Runs that were in flight when the server stopped are marked interrupted.
    async fn recover(&self) -> Result<(), StartError> {
        let runs = self
            .store
            .runs(&RunFilter::default())
            .map_err(other("cannot read runs"))?;
        for mut run in runs {
            if run.state == RunState::Failed
                && run
                    .finished_at
                    .is_some_and(|t| system_now_millis().saturating_sub(t) < 24 * 3600 * 1000)
            {
                self.trust
                    .run_failed(&run.playbook, run.finished_at.unwrap_or_default());
            }
            // A run waiting for approval waits on disk, not in memory: it goes on when people
            // decide, restart or not.
            if matches!(run.state, RunState::Queued | RunState::Running) {
                let was = run.state;
                run.state = RunState::Interrupted;
                self.store
                    .put_run(&run)
                    .map_err(other("cannot store a run"))?;
                self.record(
                    &run,
                    "interrupted",
                    json!({ "was": was }),
                    json!({ "ok": null }),
                )
                .await;
                tracing::warn!(run = %run.id, "run was {} when the server stopped: now interrupted", was.name());
            }
        }
        Ok(())
    }

    /// Compiles a stored playbook's active version and puts its triggers in the mesh.
    async fn activate(&self, record: &PlaybookRecord) -> Result<(), ApiError> {
        let Some(version) = record.active() else {
            return Err(ApiError::internal("a playbook without its active version"));
        };
        let guest = self.compile_version(version).await?;
        match guest.manifest.kind {
            Kind::Playbook => self.mesh_set(&guest),
            Kind::Collector => self.schedule(&guest),
        }
        self.guests
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.name.clone(), guest);
        Ok(())
    }

    fn mesh_set(&self, guest: &Guest) {
        let triggers = PlaybookTriggers::from_manifest(&guest.manifest);
        self.mesh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_playbook(triggers);
    }

    /// Runs an enabled collector on its schedule (first pass at once, failures retried with
    /// backoff); the events it emits are ingested like published ones. Replaces the
    /// collector's previous schedule, if any.
    fn schedule(&self, guest: &Guest) {
        let name = guest.manifest.name.clone();
        let every = guest.manifest.schedule.unwrap_or(Duration::from_secs(60));
        let schedule = Schedule {
            every,
            // A pass is bounded by its manifest's deadline; this only catches a stuck slot wait.
            timeout: every.max(Duration::from_secs(60)),
            ..Schedule::default()
        };
        let poller = Arc::new(CollectorPoller {
            app: self.this.clone(),
            guest: guest.clone(),
        });
        let target = format!("{}@{}", guest.manifest.name, guest.manifest.version);
        self.start_poller(&name, "collector", target, poller, schedule);
    }

    /// Starts polling a source, replacing a poller of the same name.
    fn start_poller(
        &self,
        name: &str,
        kind: &'static str,
        target: String,
        poller: Arc<dyn Poller>,
        schedule: Schedule,
    ) {
        let state = self
            .sources
            .polled(name, kind, target, schedule.unhealthy_after);
        let (app, source) = (self.this.clone(), name.to_owned());
        let task = self.supervisor.spawn(&format!("source:{name}"), move || {
            let run = poll::run(
                app.clone(),
                source.clone(),
                poller.clone(),
                schedule,
                state.clone(),
            );
            async move {
                run.await;
                Ok(())
            }
        });
        if let Some(old) = self
            .pollers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), task.abort_handle())
        {
            old.abort();
        }
    }

    /// Whether `name` is a push source or a source configured in `grace.toml`.
    fn is_builtin_source(&self, name: &str) -> bool {
        matches!(name, "alertmanager" | "metrics-push")
            || self.config.sources.names().any(|(_, n)| n == name)
    }

    /// Starts the built-in sources of `grace.toml`.
    fn start_builtin_sources(
        &self,
        cloudwatch: Option<&grace_aws::CloudWatch>,
    ) -> Result<(), StartError> {
        let promql = promql::build_all(
            &self.config.sources.promql,
            self.config.prometheus.as_deref(),
        )
        .map_err(|message| crate::config::ConfigError::Invalid {
            field: "sources",
            message,
        })?;
        for (source, schedule) in promql {
            let (name, target) = (source.name().to_owned(), source.query().to_owned());
            self.start_poller(&name, "promql", target, source, schedule);
        }
        let cloudwatch =
            crate::sources::cloudwatch::build_all(&self.config.sources.cloudwatch, cloudwatch)
                .map_err(|message| crate::config::ConfigError::Invalid {
                    field: "sources",
                    message,
                })?;
        for (source, schedule) in cloudwatch {
            let (name, target) = (source.name().to_owned(), source.target());
            self.start_poller(&name, "cloudwatch", target, source, schedule);
        }
        for (i, config) in self.config.sources.containers.iter().enumerate() {
            let (source, schedule) = ContainersSource::new(
                config,
                self.executors
                    .containers
                    .default_provider()
                    .map(|p| p.executor().clone()),
                self.executors.clock.clone(),
                &format!("sources.containers[{i}]"),
            )
            .map_err(|message| crate::config::ConfigError::Invalid {
                field: "sources",
                message,
            })?;
            let (name, target) = (source.name().to_owned(), source.target());
            self.start_poller(&name, "containers", target, Arc::new(source), schedule);
        }
        Ok(())
    }

    fn deactivate(&self, name: &str) {
        self.sources.remove(name);
        self.supervisor.forget(&format!("source:{name}"));
        if let Some(task) = self
            .pollers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
        {
            task.abort();
        }
        self.mesh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove_playbook(name);
        self.guests
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    async fn compile_version(&self, version: &VersionRecord) -> Result<Guest, ApiError> {
        let bytes = self
            .store
            .component(&version.digest)?
            .ok_or_else(|| ApiError::internal("a stored version without its component"))?;
        let mut manifest = Manifest::parse(&version.manifest)
            .map_err(|e| ApiError::internal(format!("stored manifest no longer parses: {e}")))?;
        // Stored before a cap was lowered: it runs within the caps all the same.
        let caps = self.config.limits.caps;
        if let Err(e) = caps.check(&manifest.limits) {
            tracing::warn!(playbook = %manifest.name, "runs with its limits lowered to the server's caps: {e}");
            manifest.limits = caps.clamp(manifest.limits);
        }
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.guest(manifest, &bytes, "stored component"))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    // --- playbooks ------------------------------------------------------------------------

    /// Validates and stores an upload; a new version of an enabled playbook goes live.
    /// `signed_by` is who signed it, checked by the caller (`None`: unsigned, where allowed).
    pub async fn upload(
        &self,
        manifest_text: String,
        component: Vec<u8>,
        signed_by: Option<crate::signing::SignedBy>,
    ) -> Result<(bool, PlaybookRecord), ApiError> {
        let manifest = Manifest::parse(&manifest_text).map_err(ApiError::from_manifest)?;
        self.config
            .limits
            .caps
            .check(&manifest.limits)
            .map_err(ApiError::from_manifest)?;
        let engine = self.engine.clone();
        let bytes = component.clone();
        let guest =
            tokio::task::spawn_blocking(move || engine.guest(manifest, &bytes, "component"))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::field("component", e.to_string()))?;
        if guest.manifest.kind == Kind::Collector && self.is_builtin_source(&guest.manifest.name) {
            return Err(ApiError::conflict(format!(
                "`{}` is the name of a source configured in grace.toml; collectors share the sources' names (GET /v1/sources): rename it",
                guest.manifest.name
            )));
        }
        // Store and memory change together, one playbook change at a time.
        let _admin = self.admin.lock().await;
        let version = VersionRecord {
            name: guest.manifest.name.clone(),
            version: guest.manifest.version.clone(),
            kind: guest.manifest.kind,
            digest: guest.component.digest().to_owned(),
            uploaded_at: system_now_millis(),
            manifest: manifest_text,
            signed_by,
        };
        match self.store.put_version(version.clone(), &component)? {
            PutOutcome::Conflict { existing } => Err(ApiError::conflict(format!(
                "`{}` version `{}` is already stored (component `{existing}`) with another component or manifest; versions are immutable, bump `version`",
                version.name, version.version
            ))),
            PutOutcome::Unchanged(record) => Ok((false, record)),
            PutOutcome::Created(record) => {
                if record.enabled {
                    // The previous version may have been of the other kind.
                    self.deactivate(&record.name);
                    match guest.manifest.kind {
                        Kind::Playbook => self.mesh_set(&guest),
                        Kind::Collector => self.schedule(&guest),
                    }
                    self.guests
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(record.name.clone(), guest);
                }
                tracing::info!(playbook = %record.name, version = %version.version, digest = %version.digest, "playbook uploaded");
                Ok((true, record))
            }
        }
    }

    /// Enables or disables a playbook.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<PlaybookRecord, ApiError> {
        let _admin = self.admin.lock().await;
        let record = self
            .store
            .set_enabled(name, enabled)?
            .ok_or_else(|| ApiError::not_found(format!("no playbook named `{name}`")))?;
        if enabled {
            self.activate(&record).await?;
        } else {
            self.deactivate(name);
        }
        Ok(record)
    }

    /// Deletes a playbook.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let _admin = self.admin.lock().await;
        let record = self
            .store
            .playbook(name)?
            .ok_or_else(|| ApiError::not_found(format!("no playbook named `{name}`")))?;
        if !self.store.delete_playbook(name)? {
            return Err(ApiError::not_found(format!("no playbook named `{name}`")));
        }
        self.deactivate(name);
        for version in &record.versions {
            self.engine.forget(&version.digest);
        }
        Ok(())
    }

    /// Enabled playbooks.
    pub fn enabled_count(&self) -> usize {
        self.guests.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    // --- events ----------------------------------------------------------------------------

    /// Accepts a batch from a polled source or a collector: all of it is stored and queued, or
    /// none of it.
    pub async fn ingest(&self, events: Vec<TriggerEvent>) -> Result<(u64, u64), ApiError> {
        self.ingest_as(events, None).await
    }

    /// Accepts a batch published through the API: the events record the caller's token.
    pub async fn ingest_from(
        &self,
        events: Vec<TriggerEvent>,
        caller: &crate::auth::Caller,
    ) -> Result<(u64, u64), ApiError> {
        // The anonymous caller of `--insecure-no-auth` has no token to record.
        let publisher = (!caller.token_id.is_empty()).then(|| crate::store::Publisher {
            token_id: caller.token_id.clone(),
            name: caller.name.clone(),
        });
        self.ingest_as(events, publisher).await
    }

    async fn ingest_as(
        &self,
        events: Vec<TriggerEvent>,
        publisher: Option<crate::store::Publisher>,
    ) -> Result<(u64, u64), ApiError> {
        let Some(app) = self.this.upgrade() else {
            return Err(ApiError::internal("the server is shutting down"));
        };
        // Once stored, the events must reach the matcher: the store-then-queue step runs in its
        // own task, which a client hanging up (dropping this future) cannot cut short.
        tokio::spawn(async move { app.ingest_now(events, publisher).await })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
    }

    async fn ingest_now(
        &self,
        events: Vec<TriggerEvent>,
        publisher: Option<crate::store::Publisher>,
    ) -> Result<(u64, u64), ApiError> {
        let n = events.len();
        if n == 0 {
            return Err(ApiError::field("events", "the batch is empty"));
        }
        if n > self.config.queue_capacity {
            return Err(ApiError::too_large(format!(
                "a batch of {n} events can never fit the event queue ({} events): send smaller batches",
                self.config.queue_capacity
            )));
        }
        let permits = match self.queue.try_reserve_many(n) {
            Ok(p) => p,
            Err(_) => {
                self.metrics
                    .events_throttled
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                return Err(ApiError::queue_full(
                    n,
                    self.queue_depth(),
                    self.config.queue_capacity,
                ));
            }
        };
        let received_at = system_now_millis();
        let accepted = Instant::now();
        let events = Arc::new(events);
        let (first, last) = self
            .events
            .append(events.clone(), received_at, publisher)
            .await?;
        // The writer has let go of the batch by now: take it back without copying.
        let events = Arc::try_unwrap(events).unwrap_or_else(|shared| (*shared).clone());
        for event in &events {
            self.trust.observe(event);
        }
        for ((permit, event), seq) in permits.zip(events).zip(first..=last) {
            permit.send(Queued {
                seq,
                event,
                received_at,
                accepted,
            });
        }
        self.metrics
            .events_accepted
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok((first, last))
    }

    /// Now, on the run clock (virtual in simulation): the timestamp of events that carry none.
    pub fn now_millis(&self) -> u64 {
        self.executors.clock.now_millis()
    }

    /// Events waiting to be matched.
    pub fn queue_depth(&self) -> usize {
        self.config.queue_capacity - self.queue.capacity()
    }

    // --- runs ------------------------------------------------------------------------------

    /// Cancels a queued, interrupted or running run.
    pub async fn cancel(&self, id: &str) -> Result<RunSummary, ApiError> {
        let active = {
            let _claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
            let run = self
                .store
                .run(id)?
                .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
            if run.state.is_final() {
                return Err(ApiError::conflict(format!(
                    "run `{id}` already {}",
                    run.state.name()
                )));
            }
            let active = self
                .active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .cloned();
            if active.is_none() {
                // Not claimed by a worker (queued, interrupted): none will touch it now, since
                // claiming happens under the same lock.
                let mut run = run;
                run.state = RunState::Cancelled;
                run.finished_at = Some(system_now_millis());
                self.store.put_run(&run)?;
                self.metrics.transition(RunState::Cancelled);
                self.release(&run.id);
                self.finished.send_modify(|n| *n += 1);
            }
            active
        };
        if let Some(active) = active {
            // Listen before cancelling, so the worker's notification cannot be missed.
            let notified = active.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            active.cancel();
            let finished = self.store.run(id)?.is_some_and(|r| r.state.is_final());
            if !finished {
                let _ = tokio::time::timeout(Duration::from_secs(10), notified).await;
            }
        }
        let run = self
            .store
            .run(id)?
            .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
        if run.state != RunState::Cancelled {
            return Err(ApiError::conflict(format!(
                "run `{id}` {} before the cancel took effect",
                run.state.name()
            )));
        }
        if let Err(e) = self
            .trust
            .approvals()
            .cancel_for_run(&run.id, system_now_millis())
        {
            tracing::error!(run = %run.id, "cannot withdraw the run's approval requests: {e}");
        }
        self.record(&run, "cancelled", json!({}), json!({ "ok": null }))
            .await;
        Ok(run.summary())
    }

    /// Queues an interrupted run again.
    pub async fn resume(&self, id: &str) -> Result<RunSummary, ApiError> {
        let run = {
            let _claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
            let mut run = self
                .store
                .run(id)?
                .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
            if run.state != RunState::Interrupted {
                return Err(ApiError::conflict(format!(
                    "run `{id}` is {}; only interrupted runs can be resumed",
                    run.state.name()
                )));
            }
            // It takes its exclusivity locks and dedup key again, or waits for a later resume.
            if let Some(key) = &run.key {
                self.mesh
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .resume_run(key)
                    .map_err(|why| {
                        ApiError::conflict(format!("run `{id}` cannot resume now: {why}"))
                    })?;
                self.keys
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(run.id.clone(), key.clone());
            }
            run.state = RunState::Queued;
            if let Err(e) = self.store.put_run(&run) {
                self.release(&run.id);
                return Err(e.into());
            }
            run
        };
        self.record(&run, "resumed", json!({}), json!({ "ok": null }))
            .await;
        self.metrics.transition(RunState::Queued);
        let _ = self.runs.send(run.id.clone());
        Ok(run.summary())
    }

    /// A run stopped before a change that needs approval: it keeps its locks and waits, stored
    /// durably, until people decide (or the request expires).
    async fn pause_for_approval(&self, id: &str, run: &RunRecord) {
        if let Err(e) = self.ledger.flush().await {
            tracing::error!(run = %id, "the ledger could not record the pause: {e}");
        }
        if let Err(e) = self.store.put_run(run) {
            tracing::error!(run = %id, "cannot store the paused run: {e}");
        }
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.metrics.transition(RunState::WaitingApproval);
        self.finished.send_modify(|n| *n += 1);
        tracing::info!(run = %id, playbook = %run.playbook, approval = ?run.approval, "run waits for approval");
        // Decided while the attempt was ending (a fast approver): go on now.
        if let Some(approval) = &run.approval
            && let Ok(Some(a)) = self.trust.approvals().get(approval)
            && a.state != crate::trust::approvals::ApprovalState::Pending
        {
            self.continue_after_approval(id).await;
        }
    }

    /// Approves or denies approval `id` as `caller`; once it is decided, its run goes on.
    pub async fn vote(
        &self,
        id: &str,
        caller: &crate::auth::Caller,
        approve: bool,
        comment: Option<String>,
    ) -> Result<crate::trust::approvals::Approval, ApiError> {
        use crate::trust::approvals::{ApprovalState, Vote, VoteError};
        if let Some(c) = &comment
            && c.len() > 4096
        {
            return Err(ApiError::field("comment", "longer than 4096 bytes"));
        }
        let vote = Vote {
            by: caller.principal_name.clone(),
            principal: caller.principal.clone(),
            token_id: caller.token_id.clone(),
            at: system_now_millis(),
            comment,
        };
        let approvals = self.trust.approvals().clone();
        let ledger = self.ledger.clone();
        let at_millis = self.executors.clock.now_millis();
        let id_owned = id.to_owned();
        let caller_owned = caller.clone();
        // The vote and its ledger entry are one step (see `trust::approvals`): the entry is
        // appended and committed inside `Approvals::vote`, which stores the vote only after.
        let result = tokio::task::spawn_blocking(move || {
            approvals.vote(&id_owned, vote, approve, |approval| {
                ledger
                    .append_blocking(vote_entry(approval, &caller_owned, approve, at_millis))
                    .map(drop)
            })
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
        let approval = result.map_err(|e| match e {
            VoteError::NotFound(_) => ApiError::not_found(e.to_string()),
            VoteError::Closed { .. } | VoteError::AlreadyVoted { .. } => {
                ApiError::conflict(e.to_string())
            }
            VoteError::Storage(_) | VoteError::NotRecorded(_) | VoteError::NotStored(_) => {
                tracing::error!(approval = %id, principal = %caller.principal, "a vote was not counted: {e}");
                ApiError::internal(e.to_string())
            }
        })?;
        if approval.state != ApprovalState::Pending {
            self.continue_after_approval(&approval.run_id).await;
        }
        Ok(approval)
    }

    /// Queues a run that waited for an approval now decided: it goes on as a retry of itself,
    /// the changes it made before the pause replayed, the one that waited decided again with
    /// the approval (or the denial) on record.
    pub async fn continue_after_approval(&self, id: &str) {
        let run = {
            let _claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
            let mut run = match self.store.run(id) {
                Ok(Some(run)) if run.state == RunState::WaitingApproval => run,
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(run = %id, "cannot read the run: {e}");
                    return;
                }
            };
            let held = self
                .keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(id);
            if !held && let Some(key) = &run.key {
                // After a restart the run's locks were let go: take them again.
                let taken = self
                    .mesh
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .resume_run(key);
                match taken {
                    Ok(()) => {
                        self.keys
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(run.id.clone(), key.clone());
                    }
                    Err(why) => {
                        tracing::warn!(run = %id, "cannot go on after approval now ({why}): interrupted; resume it later");
                        run.state = RunState::Interrupted;
                        let _ = self.store.put_run(&run);
                        return;
                    }
                }
            }
            run.state = RunState::Queued;
            if let Err(e) = self.store.put_run(&run) {
                tracing::error!(run = %id, "cannot queue the approved run: {e}");
                return;
            }
            run
        };
        self.metrics.transition(RunState::Queued);
        let _ = self.runs.send(run.id.clone());
    }

    /// Runs whose approval was decided or expired while the server was down go on.
    async fn continue_decided(&self) {
        let waiting = match self.store.runs(&RunFilter {
            state: Some(RunState::WaitingApproval),
            limit: usize::MAX,
            ..RunFilter::default()
        }) {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!("cannot read the runs waiting for approval: {e}");
                return;
            }
        };
        let now = system_now_millis();
        if let Err(e) = self.trust.approvals().expire_due(now) {
            tracing::error!("cannot expire approvals: {e}");
        }
        for run in waiting {
            let decided = run.approval.as_ref().is_none_or(|a| {
                self.trust
                    .approvals()
                    .get(a)
                    .ok()
                    .flatten()
                    .is_none_or(|a| !a.is_open(now))
            });
            if decided {
                self.continue_after_approval(&run.id).await;
            }
        }
    }

    /// Records a lifecycle event of the server's own (interrupted, cancelled, resumed) in the
    /// ledger. A failure is logged: the state change itself is already stored.
    async fn record(
        &self,
        run: &RunRecord,
        function: &str,
        args: serde_json::Value,
        result: serde_json::Value,
    ) {
        let entry = NewEntry {
            run_id: run.id.clone(),
            playbook: run.playbook.clone(),
            digest: run.digest.clone(),
            interface: "run".into(),
            function: function.into(),
            args,
            decision: Decision::allowed("server lifecycle"),
            result,
            at_millis: self.executors.clock.now_millis(),
        };
        if let Err(e) = self.ledger.append(entry).await {
            tracing::error!(run = %run.id, "the ledger could not record `{function}`: {e}");
        }
    }

    fn release(&self, id: &str) {
        let key = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(key) = key {
            self.mesh
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .run_finished(&key);
        }
        self.accepted_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Metrics read at scrape time.
    pub fn gauges(&self) -> Gauges {
        let mut by_state: HashMap<RunState, u64> = HashMap::new();
        if let Ok(runs) = self.store.runs(&RunFilter::default()) {
            for r in runs {
                *by_state.entry(r.state).or_default() += 1;
            }
        }
        Gauges {
            queue_depth: self.queue_depth(),
            queue_capacity: self.config.queue_capacity,
            runs_by_state: RunState::ALL
                .into_iter()
                .map(|s| (s, by_state.get(&s).copied().unwrap_or(0)))
                .collect(),
            ledger_entries: self.ledger.head().ok().flatten().map_or(0, |h| h.entries),
            playbooks: self.enabled_count(),
            sources: self.sources.snapshot(),
        }
    }

    /// The guest for a run: the active version if its digest matches, else that exact version.
    async fn guest_for(&self, run: &RunRecord) -> Result<Guest, ApiError> {
        let active = self
            .guests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&run.playbook)
            .filter(|g| g.component.digest() == run.digest)
            .cloned();
        if let Some(g) = active {
            return Ok(g);
        }
        let record = self.store.playbook(&run.playbook)?.ok_or_else(|| {
            ApiError::not_found(format!("playbook `{}` was deleted", run.playbook))
        })?;
        let version = record
            .versions
            .iter()
            .find(|v| v.digest == run.digest)
            .ok_or_else(|| ApiError::not_found(format!("version `{}` was deleted", run.version)))?;
        self.compile_version(version).await
    }

    /// Executes one run, attempt after attempt, storing every state change.
    async fn execute(self: &Arc<App>, id: String) {
        let claimed = {
            let _claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
            match self.store.run(&id) {
                Ok(Some(mut run)) if run.state == RunState::Queued => {
                    run.state = RunState::Running;
                    run.started_at.get_or_insert(system_now_millis());
                    // Not fsynced: the run's first durable ledger record (the intent of its
                    // first change) makes it durable; before that a crash leaves it `queued`,
                    // which recovery turns into `interrupted` just the same.
                    match self.store.put_run_unsynced(&run) {
                        Ok(()) => {
                            let active = Arc::new(Active::default());
                            self.active
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(id.clone(), active.clone());
                            Some((run, active))
                        }
                        Err(e) => {
                            tracing::error!(run = %id, "cannot store the run: {e}");
                            None
                        }
                    }
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::error!(run = %id, "cannot read the run: {e}");
                    None
                }
            }
        };
        let Some((mut run, active)) = claimed else {
            return;
        };
        self.metrics.transition(RunState::Running);
        if let Some(t) = self
            .accepted_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
        {
            self.metrics.ingest_to_run_start.observe(t.elapsed());
        }
        let mut env = RunEnv::new(self.executors.clone(), self.ledger.clone());
        env.trust = self.trust.clone();
        env.bounds = self.config.limits.run;
        let guest = match self.guest_for(&run).await {
            Ok(g) => Some(g),
            Err(e) => {
                run.failure = Some(grace_engine::Failure {
                    kind: grace_engine::FailureKind::Instantiation,
                    message: e.to_string(),
                });
                run.state = RunState::Failed;
                None
            }
        };
        while let Some(guest) = guest.clone() {
            if active.is_cancelled() {
                run.state = RunState::Cancelled;
                break;
            }
            run.attempts += 1;
            let started = system_now_millis();
            let wall = Instant::now();
            let task = {
                // A retry or a resumed run replays the changes earlier attempts made.
                let (engine, event, env, id) = (
                    self.engine.clone(),
                    run.event.clone(),
                    env.clone().retrying(run.attempts > 1),
                    id.clone(),
                );
                tokio::spawn(async move { engine.run_playbook_as(&id, &guest, &event, &env).await })
            };
            active.running(task.abort_handle());
            let result = task.await;
            self.metrics.run_duration.observe(wall.elapsed());
            let report = match result {
                Ok(report) => report,
                Err(e) => {
                    run.state = if e.is_cancelled() {
                        RunState::Cancelled
                    } else {
                        RunState::Failed
                    };
                    if !e.is_cancelled() {
                        run.failure = Some(grace_engine::Failure {
                            kind: grace_engine::FailureKind::Trap,
                            message: "the run's task failed unexpectedly".into(),
                        });
                    }
                    run.attempts_log.push(Attempt {
                        attempt: run.attempts,
                        state: run.state,
                        started_at: started,
                        finished_at: system_now_millis(),
                        failure: run.failure.clone(),
                        host_calls: 0,
                    });
                    break;
                }
            };
            self.metrics.host_calls.fetch_add(
                u64::from(report.host_calls),
                std::sync::atomic::Ordering::Relaxed,
            );
            let state = state_of(&report);
            run.attempts_log.push(Attempt {
                attempt: run.attempts,
                state,
                started_at: started,
                finished_at: system_now_millis(),
                failure: report.failure.clone(),
                host_calls: report.host_calls,
            });
            let retry = state == RunState::Failed
                && is_transient(&report)
                && run.attempts < self.config.max_attempts;
            run.outcome = report.outcome;
            run.failure = report.failure;
            run.timeline = report.timeline;
            run.state = state;
            if report.approval.is_some() {
                run.approval = report.approval;
            }
            if !retry {
                break;
            }
            let backoff = self.config.retry_backoff * 2u32.saturating_pow(run.attempts - 1);
            tracing::info!(run = %id, attempt = run.attempts, ?backoff, "transient failure: retrying");
            run.state = RunState::Running;
            let _ = self.store.put_run(&run);
            let sleep = {
                let clock = self.executors.clock.clone();
                tokio::spawn(async move { clock.sleep(backoff.min(Duration::from_secs(60))).await })
            };
            active.running(sleep.abort_handle());
            if sleep.await.is_err() {
                run.state = RunState::Cancelled;
                break;
            }
        }
        if run.state == RunState::WaitingApproval {
            self.pause_for_approval(&id, &run).await;
            return;
        }
        if run.state == RunState::Failed {
            self.trust.run_failed(&run.playbook, system_now_millis());
        }
        run.finished_at = Some(system_now_millis());
        // The attempt's `run.finished` record is on record before the run is reported final.
        if let Err(e) = self.ledger.flush().await {
            tracing::error!(run = %id, "the ledger could not record the run's end: {e}");
        }
        if let Err(e) = self.store.put_run(&run) {
            tracing::error!(run = %id, "cannot store the run's end: {e}");
        }
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.metrics.transition(run.state);
        self.release(&id);
        active.done.notify_waiters();
        self.finished.send_modify(|n| *n += 1);
        tracing::info!(run = %id, playbook = %run.playbook, state = run.state.name(), "run finished");
    }
}

/// How long the simulation's matcher waits for the runs an event fired before matching the next
/// event (see [`matcher`]).
const SIMULATED_RUN_WAIT: Duration = Duration::from_secs(1);

/// Matches accepted events against the triggers, in order, and creates runs.
///
/// Live, a batch of events is matched and its runs stored in one go. In simulation, virtual
/// time follows the events' timestamps, so the runs an event fires are let finish (they take
/// virtual time, not wall time; a guest that spins in wall time is waited for at most
/// [`SIMULATED_RUN_WAIT`]) before the clock moves on to the next event: a recorded incident
/// replays as it happened.
///
/// Events reach the queue in the order their publishers get there, not always in sequence
/// order (two batches committed together wake their publishers in any order): the matcher
/// holds early ones back and matches strictly in sequence, so the "matched through" mark only
/// ever covers a gap-free prefix of the log.
///
/// A restarted matcher (after a panic) takes up from the store: it matches from the first
/// unmatched event, reading those its previous start had taken off the queue back from the log.
async fn matcher(
    app: Arc<App>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Queued>>>,
    restarted: bool,
) -> Result<(), String> {
    let mut rx = rx.lock().await;
    let mut received = Vec::with_capacity(1024);
    let mut early: std::collections::BTreeMap<u64, Queued> = std::collections::BTreeMap::new();
    let store = app.store.clone();
    let mut next = tokio::task::spawn_blocking(move || store.matched_through())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read the store: {e}"))?
        + 1;
    if restarted {
        let store = app.store.clone();
        let backlog = tokio::task::spawn_blocking(move || store.events(next, usize::MAX))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot read events: {e}"))?;
        for e in backlog {
            early.insert(
                e.seq,
                Queued {
                    seq: e.seq,
                    event: e.event,
                    received_at: e.received_at,
                    accepted: Instant::now(),
                },
            );
        }
    }
    let mut counted = next.saturating_sub(1);
    while rx.recv_many(&mut received, 1024).await > 0 {
        for q in received.drain(..) {
            if q.seq >= next {
                early.insert(q.seq, q);
            }
        }
        let mut batch = Vec::new();
        while let Some(q) = early.remove(&next) {
            batch.push(q);
            next += 1;
        }
        if batch.is_empty() {
            continue;
        }
        let mut created = Vec::new();
        let mut last_seq = 0;
        for q in batch {
            last_seq = q.seq;
            let Some(sim) = &app.sim else {
                created.extend(match_one(&app, &q));
                continue;
            };
            let clock = sim.clock();
            let now = clock.now_millis();
            if q.event.timestamp > now {
                clock.advance(Duration::from_millis(q.event.timestamp - now));
            }
            let runs = match_one(&app, &q);
            if !runs.is_empty() {
                let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
                let mut finished = app.finished.subscribe();
                store_and_start(&app, runs, q.seq, &mut counted).await;
                wait_until_final(&app, &ids, &mut finished).await;
            }
        }
        store_and_start(&app, created, last_seq, &mut counted).await;
    }
    Ok(())
}

/// The runs one event fires.
fn match_one(app: &App, q: &Queued) -> Vec<RunRecord> {
    let mut decisions = Vec::new();
    let condition_false = app
        .mesh
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .offer_counting(&q.event, &mut decisions);
    if condition_false > 0 {
        app.metrics
            .suppressed_many("condition_false", condition_false);
    }
    let mut created = Vec::new();
    for decision in decisions {
        match decision {
            MeshDecision::Fire {
                playbook,
                trigger,
                resource,
                dedup_key,
                run: key,
            } => {
                let version = app
                    .guests
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&playbook)
                    .map(|g| (g.manifest.version.clone(), g.component.digest().to_owned()));
                let Some((version, digest)) = version else {
                    app.mesh
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .run_finished(&key);
                    continue;
                };
                let id = uuid::Uuid::new_v4().to_string();
                let locks = key.locks().to_vec();
                app.keys
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), key.clone());
                app.accepted_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), q.accepted);
                created.push(RunRecord {
                    id,
                    playbook,
                    version,
                    digest,
                    trigger,
                    event_seq: q.seq,
                    event: q.event.clone(),
                    resource,
                    dedup_key,
                    locks,
                    key: Some(key),
                    state: RunState::Queued,
                    attempts: 0,
                    created_at: system_now_millis(),
                    ingested_at: q.received_at,
                    started_at: None,
                    finished_at: None,
                    outcome: None,
                    failure: None,
                    approval: None,
                    timeline: Vec::new(),
                    attempts_log: Vec::new(),
                });
            }
            MeshDecision::Suppressed { reason, .. } => app.metrics.suppressed(reason.name()),
        }
    }
    created
}

/// Stores new runs with the matched-through mark (one transaction), then hands them to the
/// runner.
///
/// `counted` is the last event counted as matched in the metrics: events count as matched once
/// their runs are stored, so a client that sees the count can read the runs.
async fn store_and_start(
    app: &Arc<App>,
    created: Vec<RunRecord>,
    last_seq: u64,
    counted: &mut u64,
) {
    if last_seq == 0 || (last_seq <= *counted && created.is_empty()) {
        return;
    }
    // Until the runs and the mark are stored, nothing moves on: a failure here (a full disk) is
    // retried rather than skipped, so no event is marked matched without its runs.
    let mut pause = Duration::from_millis(100);
    loop {
        let store = app.store.clone();
        let runs = created.clone();
        match tokio::task::spawn_blocking(move || store.put_matched(&runs, last_seq)).await {
            Ok(Ok(())) => break,
            Ok(Err(e)) => tracing::error!("cannot store matched runs, retrying in {pause:?}: {e}"),
            Err(e) => tracing::error!("matcher storage task failed, retrying in {pause:?}: {e}"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    app.metrics.events_matched.fetch_add(
        last_seq.saturating_sub(*counted),
        std::sync::atomic::Ordering::Relaxed,
    );
    *counted = (*counted).max(last_seq);
    for run in created {
        app.metrics
            .triggers_fired
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        app.metrics.transition(RunState::Queued);
        let _ = app.runs.send(run.id);
    }
}

/// Waits until the runs are final, at most [`SIMULATED_RUN_WAIT`].
async fn wait_until_final(
    app: &App,
    ids: &[String],
    finished: &mut tokio::sync::watch::Receiver<u64>,
) {
    let deadline = tokio::time::Instant::now() + SIMULATED_RUN_WAIT;
    loop {
        let all_final = ids.iter().all(|id| {
            app.store.run(id).ok().flatten().is_none_or(|r| {
                // A run waiting for people takes no virtual time meanwhile: the incident
                // replays on, as it did.
                r.state.is_final()
                    || matches!(r.state, RunState::Interrupted | RunState::WaitingApproval)
            })
        });
        if all_final {
            return;
        }
        match tokio::time::timeout_at(deadline, finished.changed()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// Starts runs, at most `max_concurrent_runs` at once.
async fn runner(
    app: Arc<App>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
) -> Result<(), String> {
    let mut rx = rx.lock().await;
    let slots = app.slots.clone();
    while let Some(id) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let app = app.clone();
        tokio::spawn(async move {
            app.execute(id).await;
            drop(slot);
        });
    }
    Ok(())
}

/// Deletes events past their retention (once they are matched), hourly, in bounded chunks.
/// Signs a checkpoint of the ledger now and then, when it has grown since the last one, so
/// that auditors holding an old checkpoint can prove the history was only ever appended to.
async fn checkpoints(app: Arc<App>, key: grace_ledger::SigningKey) -> Result<(), String> {
    let mut every = tokio::time::interval(app.config.checkpoint_every);
    loop {
        every.tick().await;
        let ledger = app.ledger.clone();
        let key = key.clone();
        let signed = tokio::task::spawn_blocking(move || {
            let size = ledger.tree_head()?.size;
            let last = ledger
                .latest_checkpoint()?
                .map(|c| c.unverified().tree_size);
            if size == 0 || last == Some(size) {
                return Ok(None);
            }
            ledger.sign_checkpoint(&key).map(Some)
        })
        .await;
        match signed {
            Ok(Ok(Some(c))) => {
                tracing::debug!(size = c.unverified().tree_size, "ledger checkpoint signed")
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!("cannot sign a ledger checkpoint: {e}"),
            Err(e) => tracing::error!("checkpoint task failed: {e}"),
        }
    }
}

/// Expires approval requests nobody decided in time; their runs go on, and the change that
/// waited is denied.
async fn approval_expiry(app: Arc<App>) -> Result<(), String> {
    let every =
        (app.trust.approval_ttl() / 10).clamp(Duration::from_millis(200), Duration::from_secs(30));
    loop {
        tokio::time::sleep(every).await;
        let approvals = app.trust.approvals().clone();
        let expired =
            tokio::task::spawn_blocking(move || approvals.expire_due(system_now_millis())).await;
        match expired {
            Ok(Ok(expired)) => {
                for a in expired {
                    tracing::warn!(approval = %a.id, run = %a.run_id, "approval expired unanswered: the change is denied");
                    app.continue_after_approval(&a.run_id).await;
                }
            }
            Ok(Err(e)) => tracing::error!("cannot expire approvals: {e}"),
            Err(e) => tracing::error!("approval expiry task failed: {e}"),
        }
    }
}

async fn retention(app: Arc<App>) -> Result<(), String> {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    every.tick().await; // not at startup: let the backlog be matched first
    loop {
        every.tick().await;
        let cutoff = system_now_millis().saturating_sub(
            u64::try_from(app.config.event_retention.as_millis()).unwrap_or(u64::MAX),
        );
        let mut total = 0;
        loop {
            let store = app.store.clone();
            match tokio::task::spawn_blocking(move || store.prune_events(cutoff, 10_000)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => total += n,
                Ok(Err(e)) => {
                    tracing::error!("cannot prune events: {e}");
                    break;
                }
                Err(e) => {
                    tracing::error!("pruning task failed: {e}");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(events = total, "pruned events past their retention");
        }
    }
}

/// The ledger entry of a vote: who (principal and token), on what, and the approval as the vote
/// leaves it.
fn vote_entry(
    approval: &crate::trust::approvals::Approval,
    caller: &crate::auth::Caller,
    approve: bool,
    at_millis: u64,
) -> NewEntry {
    NewEntry {
        run_id: approval.run_id.clone(),
        playbook: approval.playbook.clone(),
        digest: approval.digest.clone(),
        interface: "approval".into(),
        function: if approve { "approve" } else { "deny" }.into(),
        args: json!({
            "approval": approval.id,
            "by": caller.principal_name,
            "principal": caller.principal,
            "token_id": caller.token_id,
            "action": approval.action,
            "resource": approval.resource,
        }),
        decision: Decision::allowed(format!("{} holds the approve scope", caller.principal_name)),
        result: json!({ "ok": {
            "state": approval.state,
            "approved_by": approval.approved_by.iter().map(|v| &v.by).collect::<Vec<_>>(),
            "approved_by_principals": approval.approved_by.iter().map(|v| v.principal_id()).collect::<Vec<_>>(),
        } }),
        at_millis,
    }
}
