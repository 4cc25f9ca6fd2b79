//! The running server as a composition of its parts, each with one job:
//!
//! - [`Intake`]: events in, stored and queued, all or nothing;
//! - [`Scheduler`]: queue → trigger mesh → runs, retries, approvals, cancel and resume;
//! - [`Registry`]: playbook versions and their compiled components;
//! - [`SourceSupervisor`]: the polled sources and collectors, their batches to the intake;
//! - [`crate::executors`]: what runs act through; [`HostTrust`]: what they may do;
//! - [`Authenticator`] and [`Audit`]: who may call the API, and what they did.
//!
//! [`App::start`] builds them in dependency order (no part knows the app) and starts their
//! tasks under the [`Supervisor`]. The API's handlers take the parts they need from the app
//! by [`axum::extract::FromRef`] (see [`crate::api`]).

mod setup;

use std::collections::BTreeMap;
use std::sync::Arc;

use grace_engine::{Engine, EngineConfig, RunEnv};
use grace_ledger::{Durability, Ledger, LedgerError};
use grace_sim::{Fleet, FleetError, Simulation};
use tokio::sync::{Semaphore, mpsc};

use crate::auth::{Audit, Authenticator, TokenError};
use crate::collectors::Collectors;
use crate::config::{ConfigError, ServeConfig};
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::scheduler::{Resources, Scheduler};
use crate::sources::supervisor::SourceSupervisor;
use crate::store::{EventLog, Store, StoreError};
use crate::supervisor::Supervisor;
use crate::triggers::Triggers;
use crate::trust::HostTrust;

/// The server's shared state: its parts, each cheap to clone.
#[derive(Clone)]
pub struct App {
    /// Settings.
    pub config: Arc<ServeConfig>,
    /// Playbooks, runs, events.
    pub store: Store,
    /// Every host call.
    pub ledger: Arc<Ledger>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The simulated fleet, in simulation mode.
    pub sim: Option<Arc<Simulation>>,
    /// Each capability's providers by name, described for `/healthz`: `simulated`,
    /// `docker unix:///...`, ...
    pub providers: Arc<BTreeMap<&'static str, BTreeMap<String, String>>>,
    /// Events in.
    pub intake: Arc<Intake>,
    /// Runs.
    pub scheduler: Arc<Scheduler>,
    /// Playbook versions.
    pub registry: Arc<Registry>,
    /// Sources and their health.
    pub sources: Arc<SourceSupervisor>,
    /// API tokens and whether the server runs without authentication (see [`crate::auth`]).
    pub auth: Arc<Authenticator>,
    /// The audit trail of the API.
    pub audit: Audit,
    /// The trust core: policies, risk, guardrails, approvals (see [`crate::trust`]).
    pub trust: Arc<HostTrust>,
    /// The background tasks' health (see [`crate::supervisor`]).
    pub supervisor: Arc<Supervisor>,
    /// This replica's part in a cluster, with `[cluster]` (see `docs/cluster.md`).
    pub cluster: Option<Arc<grace_cluster::Cluster>>,
    /// The cluster's playbooks, with `[cluster]`: API changes are shared through them.
    pub shared_playbooks: Option<Arc<crate::shared_playbooks::SharedPlaybooks>>,
    /// The cluster's policy sets, with `[cluster]`: API changes are shared through them.
    pub shared_policies: Option<Arc<crate::shared_policies::SharedPolicies>>,
    /// The cluster's tokens and principals, with `[cluster]`.
    pub shared_credentials: Option<Arc<crate::shared_credentials::SharedCredentials>>,
    /// The health graph, with `[graph]` (see [`crate::graph`]).
    pub graph: Option<Arc<crate::graph::Graph>>,
    /// Anomaly detectors, forecasts and incidents (see [`crate::anomaly`]).
    pub anomalies: Arc<crate::anomaly::Anomalies>,
    /// The dashboard's sessions, live updates and chart history (see [`crate::dashboard`]).
    pub dashboard: Arc<crate::dashboard::Dashboard>,
    /// Notifications out, and the integrations' requests in (see [`crate::notify`]).
    pub notifier: Arc<crate::notify::Notifier>,
    /// Runs' outcomes, and what was learnt from them (see [`crate::outcomes`]).
    pub outcomes: Arc<crate::outcomes::Outcomes>,
    /// The meta-loop's pauses (see [`crate::meta`]).
    pub meta: Arc<crate::meta::Meta>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Live mode with nothing to act on.
    #[error(
        "no provider is configured: add [aws], [docker], [kubernetes], `prometheus` or [[providers]] to grace.toml (see docs/providers.md), or start with `--simulate` to run against the simulated fleet"
    )]
    NoProviders,
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The simulated fleet's file cannot be used.
    #[error("fleet `{path}`: {source}")]
    Fleet {
        /// The file.
        path: String,
        /// Why.
        source: FleetError,
    },
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The ledger cannot be opened.
    #[error("cannot open the ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The store cannot be opened or read.
    #[error("{what}: {source}")]
    Store {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: StoreError,
    },
    /// The token table cannot be opened.
    #[error("cannot open the token table: {0}")]
    Tokens(TokenError),
    /// The OIDC verifier cannot be built.
    #[error(transparent)]
    Oidc(#[from] crate::auth::oidc::OidcSetupError),
    /// The wasm engine cannot start.
    #[error("cannot start the wasm engine: {0}")]
    Engine(anyhow::Error),
    /// The cluster's engine cannot be reached, or this replica's `[cluster]` disagrees with it.
    #[error(transparent)]
    Cluster(#[from] grace_cluster::ClusterError),
}

fn store_error(what: &'static str) -> impl FnOnce(StoreError) -> StartError {
    move |source| StartError::Store { what, source }
}

impl App {
    /// Opens the data directory, recovers from a crash, loads the enabled playbooks and starts
    /// the background tasks (on the current tokio runtime).
    pub async fn start(config: ServeConfig) -> Result<Arc<App>, StartError> {
        config.validate()?;
        let config = Arc::new(config);
        let sim = if config.simulate {
            let fleet = match &config.fleet {
                Some(path) => Fleet::load(path).map_err(|source| StartError::Fleet {
                    path: path.display().to_string(),
                    source,
                })?,
                None => Fleet::default_fleet(),
            };
            Some(Arc::new(Simulation::new(&fleet)))
        } else if config.has_providers() {
            None
        } else {
            return Err(StartError::NoProviders);
        };
        let providers = crate::providers::connect(&config, sim.as_deref()).await?;
        let cluster = match &config.cluster {
            Some(settings) => Some(Arc::new(grace_cluster::Cluster::start(settings).await?)),
            None => None,
        };
        let mut executors = providers.executors;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::Io {
            what: "cannot create the data directory".into(),
            source,
        })?;
        let ledger = Arc::new(Ledger::open_with(
            config.data_dir.join("grace.redb"),
            Durability::Immediate,
            config.storage.recovery(),
        )?);
        let db = ledger.database();
        let store = Store::open(db.clone()).map_err(store_error("cannot open the store"))?;
        if let Some(sim) = &sim {
            crate::simulation::restore_and_keep(sim, &store)
                .map_err(store_error("cannot read the simulated fleet's saved state"))?;
        }
        let auth = Arc::new(setup::auth(&config, db.clone())?);
        let graph = match &config.graph {
            Some(settings) => Some(Arc::new(
                crate::graph::Graph::open(store.clone(), settings.clone())
                    .map_err(store_error("cannot read the stored health graph"))?,
            )),
            None => None,
        };
        let outcomes = Arc::new(
            crate::outcomes::Outcomes::open(store.clone(), config.outcomes.clone())
                .map_err(store_error("cannot read the runs' outcomes"))?,
        );

        let meta = Arc::new(
            crate::meta::Meta::open(store.clone(), ledger.clone(), &config.meta)
                .map_err(store_error("cannot read the paused playbooks"))?,
        );
        let mut trust = HostTrust::open(db.clone(), &config.trust)
            .map_err(|e| ConfigError::Invalid {
                field: "trust",
                message: e.to_string(),
            })?
            .with_learning(outcomes.learning().clone())
            .with_meta(meta.clone());
        if let Some(cluster) = &cluster {
            // Seen and decided from any replica; a run taken over finds its request.
            trust = trust
                .with_approvals(crate::trust::approvals::Approvals::shared(
                    cluster.approvals().clone(),
                ))
                .with_cluster_history(crate::trust::cluster_history::ClusterHistory::new(
                    cluster.resource_changes().clone(),
                ));
        }
        match (&graph, &executors.graph) {
            (Some(graph), _) => {
                trust = trust.with_graph(graph.clone());
                // Runs read the discovered graph (in simulation too: it holds the simulated
                // fleet's).
                executors.graph = Some(graph.clone());
            }
            // In simulation without `[graph]`: runs and the trust core read the same graph,
            // the simulated fleet's.
            (None, Some(simulated)) => trust = trust.with_graph(simulated.clone()),
            (None, None) => {}
        }
        let trust = Arc::new(trust);
        let supervisor = Arc::new(Supervisor::default());
        let events = EventLog::start(db, supervisor.clone())
            .map_err(store_error("cannot start the event log"))?;
        let engine = Engine::new(&EngineConfig {
            max_concurrent_runs: u32::try_from(config.max_concurrent_runs + 4).unwrap_or(64),
            // Uploads compile once: a restart loads what was compiled before.
            compiled_cache: Some(config.data_dir.join("compiled")),
            ..EngineConfig::default()
        })
        .map_err(StartError::Engine)?;
        let metrics = Arc::new(Metrics::default());
        // Slots for guests running at once: runs and collector passes share them, so the
        // engine's instance pool is never exhausted.
        let slots = Arc::new(Semaphore::new(config.max_concurrent_runs));

        let (queue, queue_rx) = mpsc::channel(config.queue_capacity);
        let mut intake = Intake::new(
            events,
            queue,
            config.queue_capacity,
            metrics.clone(),
            trust.clone(),
            executors.clock.clone(),
        );
        if let Some(sim) = &sim {
            intake = intake.with_time_bound(crate::simulation::EventTimeBound::new(
                sim,
                config.max_event_skew,
            ));
        }
        if let Some(cluster) = &cluster {
            intake = intake.with_shared_log(cluster.events().clone());
        }
        if let Some(graph) = &graph {
            intake = intake.with_graph(graph.clone());
        }
        // Detectors learn what the log holds before anything new is scored: the scores after a
        // restart are those the detectors would have given without it.
        // Incidents join neighbours on the graph the trust core reads (the discovered one, or in
        // simulation the simulated fleet's).
        let incident_graph: Option<Arc<dyn grace_executor::graph::GraphReader>> =
            match (&graph, &executors.graph) {
                (Some(g), _) => Some(g.clone()),
                (None, Some(simulated)) => Some(simulated.clone()),
                (None, None) => None,
            };
        let anomalies = Arc::new(crate::anomaly::Anomalies::new(
            config.anomaly.clone(),
            metrics.clone(),
            incident_graph,
        ));
        let (relearning, log) = (anomalies.clone(), store.clone());
        let relearnt = tokio::task::spawn_blocking(move || relearning.rebuild(&log))
            .await
            .map_err(|e| ConfigError::Invalid {
                field: "anomaly",
                message: format!("rebuilding the detectors failed: {e}"),
            })?
            .map_err(store_error("cannot read events"))?;
        tracing::info!(
            events = relearnt,
            series = anomalies.series(),
            "anomaly detectors rebuilt"
        );
        // Runs read the detectors' scores and forecasts (`anomaly`), in simulation too: the
        // samples they scored are the ones this server accepted.
        executors.anomaly = Some(anomalies.clone());
        // Playbooks' messages go to the outbox when Slack is configured; without it a
        // simulated fleet keeps them (its `DryRunMessages`), and a real one has nowhere to
        // send them (`notify.send` is unavailable).
        if config.integrations.slack.is_some() {
            executors.notify = Some(Arc::new(crate::notify::messages::OutboxMessages::new(
                store.clone(),
                config.integrations.public_url.clone(),
                cluster.as_ref().map(|c| c.replica().to_owned()),
            )));
        } else if sim.is_none() {
            executors.notify = None;
        }
        let intake = Arc::new(intake.with_anomalies(anomalies.clone()));
        let (mut sources, batches) = SourceSupervisor::new(supervisor.clone());
        if let Some(cluster) = &cluster {
            let (owner, shards) = (cluster.clone(), cluster.settings().shards);
            sources = sources.gated(Arc::new(move |name: &str| {
                let key = format!("source:{name}");
                owner
                    .owns(grace_cluster::shards::shard_of(&key, shards))
                    .is_some()
            }));
        }
        let sources = Arc::new(sources);
        let batches = Arc::new(tokio::sync::Mutex::new(batches));
        let pump_intake = intake.clone();
        supervisor.spawn("source-intake", move || {
            pump_intake.clone().pump(batches.clone())
        });
        // A collector's metrics queries are decided by the trust core like a playbook's calls.
        let mut collector_env = RunEnv::new(executors.clone(), ledger.clone(), trust.clone());
        collector_env.bounds = config.limits.run;
        let collectors = Arc::new(Collectors::new(
            engine.clone(),
            collector_env,
            config.clone(),
            metrics.clone(),
            slots.clone(),
            sources.clone(),
        ));
        let triggers = Arc::new(Triggers::default());
        let registry = Arc::new(Registry::new(
            store.clone(),
            engine.clone(),
            config.clone(),
            triggers.clone(),
            collectors,
        )?);
        let shared_playbooks = cluster.as_ref().map(|c| {
            Arc::new(crate::shared_playbooks::SharedPlaybooks::new(
                c.clone(),
                registry.clone(),
                config.max_upload_bytes,
            ))
        });
        let shared_policies = cluster.as_ref().map(|c| {
            Arc::new(crate::shared_policies::SharedPolicies::new(
                c.clone(),
                trust.clone(),
            ))
        });
        let shared_credentials = cluster.as_ref().map(|c| {
            Arc::new(crate::shared_credentials::SharedCredentials::new(
                c.clone(),
                auth.clone(),
            ))
        });
        let shared_runs = cluster
            .as_ref()
            .map(|c| Arc::new(crate::shared_runs::SharedRuns::new(c.clone())));
        let (scheduler, queues) = Scheduler::new(
            Resources {
                config: config.clone(),
                engine,
                executors: executors.clone(),
                store: store.clone(),
                ledger: ledger.clone(),
                trust: trust.clone(),
                metrics: metrics.clone(),
                registry: registry.clone(),
                triggers: triggers.clone(),
                simulation: sim.clone(),
                slots,
                fence: cluster.as_ref().zip(shared_runs.as_ref()).map(|(c, runs)| {
                    Arc::new(crate::fence::ShardFence::new(c.clone(), runs.clone()))
                        as Arc<dyn grace_engine::fence::Fence>
                }),
                shared: shared_runs.clone(),
                outcomes: outcomes.clone(),
                meta: meta.clone(),
            },
            queue_rx,
        );

        // Each step of recovery is timed for the log: what a restart after a crash costs.
        let recovering = std::time::Instant::now();
        scheduler
            .recover()
            .await
            .map_err(store_error("cannot read runs"))?;
        let watched = outcomes.rebuild().map_err(store_error(
            "cannot read the runs waiting for their outcome",
        ))?;
        tracing::info!(
            runs = watched,
            "runs waiting for their outcome watched again"
        );
        let runs_read = recovering.elapsed();
        registry
            .load_enabled()
            .await
            .map_err(store_error("cannot read playbooks"))?;
        let playbooks_loaded = recovering.elapsed();
        let warm = triggers
            .warm_up(&store)
            .map_err(store_error("cannot read events"))?;
        let warmed = recovering.elapsed();
        metrics
            .recovery_events_replayed
            .store(warm.replayed, std::sync::atomic::Ordering::Relaxed);
        setup::sources(&sources, &config, &executors, providers.cloudwatch.as_ref())?;
        if let Some(graph) = &graph {
            let mut discoverable = providers.discoverable;
            if let Some(sim) = &sim {
                discoverable.push((
                    grace_sim::PROVIDER.to_owned(),
                    crate::graph::discovery::Provider::Simulated(sim.clone()),
                ));
            }
            crate::graph::discovery::start(graph, &sources, &discoverable);
            let kept = graph.clone();
            supervisor.spawn("graph-store", move || kept.clone().keep());
        }
        let next = store
            .matched_through()
            .map_err(store_error("cannot read the store"))?
            + 1;
        // Clustered: the cluster's policies, revocations and playbook states are taken in
        // before this replica decides anything, accepts a token or takes a shard.
        if let Some(shared) = &shared_policies {
            shared.catch_up().await?;
        }
        if let Some(shared) = &shared_credentials {
            shared.catch_up().await?;
        }
        if let Some(shared) = &shared_playbooks {
            shared.catch_up().await?;
        }
        scheduler.start(&supervisor, queues).await;
        if let Some(cluster) = &cluster {
            let (importing, into, mesh) = (cluster.clone(), intake.clone(), triggers.clone());
            let matched = scheduler.matched_in_log();
            supervisor.spawn("shard-import", move || {
                crate::shard_import::run(
                    importing.clone(),
                    into.clone(),
                    mesh.clone(),
                    matched.clone(),
                )
            });
            if let Some(shared) = &shared_playbooks {
                let shared = shared.clone();
                supervisor.spawn("playbook-catalogue", move || {
                    crate::shared_playbooks::follow(shared.clone())
                });
            }
            if let Some(shared) = &shared_policies {
                let shared = shared.clone();
                supervisor.spawn("policy-sets", move || {
                    crate::shared_policies::follow(shared.clone())
                });
            }
            if let Some(shared) = &shared_credentials {
                let shared = shared.clone();
                supervisor.spawn("credentials", move || {
                    crate::shared_credentials::follow(shared.clone())
                });
            }
            if let Some(shared) = &shared_runs {
                let (shared, runs) = (shared.clone(), scheduler.clone());
                supervisor.spawn("run-adoption", move || {
                    crate::shared_runs::adopt(shared.clone(), runs.clone())
                });
            }
            let (answering, answered) = (cluster.clone(), ledger.clone());
            supervisor.spawn("ledger-questions", move || {
                crate::cluster_ledger::serve(answering.clone(), answered.clone())
            });
            let (publishing, published, every, dir) = (
                cluster.clone(),
                ledger.clone(),
                config.checkpoint_every,
                config.data_dir.clone(),
            );
            supervisor.spawn("ledger-publisher", move || {
                crate::cluster_ledger::publish(
                    publishing.clone(),
                    published.clone(),
                    every,
                    dir.clone(),
                )
            });
            let member = cluster.clone();
            supervisor.spawn("cluster", move || {
                let member = member.clone();
                async move {
                    member.run().await;
                    Ok(())
                }
            });
        }
        let (retained, retention) = (store.clone(), config.event_retention);
        supervisor.spawn("retention", move || {
            crate::maintenance::retention(retained.clone(), retention)
        });
        if let Some(path) = &config.checkpoint_key {
            let key = grace_ledger::SigningKey::load(path).map_err(|e| ConfigError::Invalid {
                field: "checkpoint_key",
                message: format!("`{}`: {e}", path.display()),
            })?;
            let (signed, every) = (ledger.clone(), config.checkpoint_every);
            supervisor.spawn("checkpoint-signer", move || {
                crate::maintenance::checkpoints(signed.clone(), key.clone(), every)
            });
        }
        // Events accepted before a crash but not yet matched are queued before anything new is
        // accepted; the matcher takes events in sequence order whatever order they arrive in.
        let backlog = store
            .events(next, usize::MAX)
            .map_err(store_error("cannot read events"))?;
        metrics
            .recovery_backlog_events
            .store(backlog.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if !backlog.is_empty() {
            tracing::info!(
                events = backlog.len(),
                "matching events accepted before the restart"
            );
            intake.requeue(backlog).await;
        }
        tracing::info!(
            runs_ms = runs_read.as_millis(),
            playbooks_ms = (playbooks_loaded - runs_read).as_millis(),
            mesh_ms = (warmed - playbooks_loaded).as_millis(),
            mesh_events_replayed = warm.replayed,
            total_ms = recovering.elapsed().as_millis(),
            "recovered"
        );
        // The integrations' secrets are read here: one that cannot be read stops the start.
        let notifier = Arc::new(crate::notify::Notifier::new(
            &config.integrations,
            &config.notify,
            store.clone(),
            trust.clone(),
            anomalies.clone(),
            metrics.clone(),
        )?);
        let dashboard = crate::dashboard::Dashboard::new(&config.data_dir, config.tls().is_some())
            .map_err(|e| StartError::Io {
                what: "the dashboard's session key".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let app = Arc::new(App {
            audit: Audit::new(ledger.clone(), executors.clock.clone()),
            config,
            store,
            ledger,
            metrics,
            sim,
            providers: Arc::new(providers.descriptions),
            intake,
            scheduler,
            registry,
            sources,
            auth,
            trust,
            supervisor,
            cluster,
            shared_playbooks,
            shared_policies,
            shared_credentials,
            graph,
            anomalies,
            dashboard: Arc::new(dashboard),
            notifier: notifier.clone(),
            outcomes,
            meta,
        });
        app.supervisor
            .spawn("notifier", move || notifier.clone().run());
        if app.notifier.socket.is_some() {
            let connected = App::clone(&app);
            app.supervisor.spawn("slack-socket", move || {
                crate::notify::socket::run(connected.clone())
            });
        }
        let watched = App::clone(&app);
        app.supervisor.spawn("dashboard-live", move || {
            crate::dashboard::live::watch(watched.clone())
        });
        let sampled = App::clone(&app);
        app.supervisor.spawn("dashboard-history", move || {
            crate::dashboard::history::sample(sampled.clone())
        });
        Ok(app)
    }
}
