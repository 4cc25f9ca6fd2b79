//! The health graph on the server: one [`HealthGraph`] kept current by the discovery sources
//! ([`discovery`]), stored every `persist_every` so that a restart does not start blind, read by
//! the API (`/v1/graph`), the trust core's blast-radius factor and the `graph` capability.
//!
//! On with a `[graph]` section in `grace.toml` ([`GraphConfig`]); see `docs/graph.md`.

pub mod discovery;
pub mod settings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use grace_graph::{Applied, HealthGraph, NodeId, Observation, Snapshot};

pub use settings::GraphConfig;

use crate::store::{Store, StoreError};
use crate::supervisor::TaskError;

/// The graph, shared by its writers (discovery) and readers.
pub struct Graph {
    graph: RwLock<HealthGraph>,
    config: GraphConfig,
    /// Bumped by every change; the store writes only when it moved.
    generation: AtomicU64,
    stored: AtomicU64,
    store: Store,
    /// Wakes every discovery source (see [`Graph::event_seen`]).
    wake: Arc<tokio::sync::Notify>,
    refresh_on: Vec<grace_model::glob::Glob>,
    /// When the sources were last woken (ms): at most once a second.
    woken_at: AtomicU64,
}

impl Graph {
    /// The graph as last stored, or empty.
    pub fn open(store: Store, config: GraphConfig) -> Result<Graph, StoreError> {
        let settings = config.graph_settings();
        let graph = match store.graph()? {
            Some(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(s) if s.version == Snapshot::VERSION => {
                    let graph = HealthGraph::restore(settings, s);
                    tracing::info!(
                        nodes = graph.node_count(),
                        edges = graph.edge_count(),
                        "health graph restored"
                    );
                    graph
                }
                // Discovery rebuilds it: an unreadable snapshot costs one refresh, nothing more.
                Ok(s) => {
                    tracing::warn!(
                        version = s.version,
                        "stored health graph has another format; starting empty"
                    );
                    HealthGraph::new(settings)
                }
                Err(e) => {
                    tracing::warn!("stored health graph is unreadable ({e}); starting empty");
                    HealthGraph::new(settings)
                }
            },
            None => HealthGraph::new(settings),
        };
        let refresh_on = config
            .refresh_on
            .iter()
            .map(|g| grace_model::glob::Glob::new(g.clone()))
            .collect();
        Ok(Graph {
            wake: Arc::new(tokio::sync::Notify::new()),
            refresh_on,
            woken_at: AtomicU64::new(0),
            graph: RwLock::new(graph),
            config,
            generation: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            store,
        })
    }

    /// Its settings.
    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    /// Merges what `source` saw at `now`.
    pub fn apply(&self, source: &str, observation: &Observation, now: u64) -> Applied {
        let applied = crate::sync::write(&self.graph).apply(source, observation, now);
        self.generation.fetch_add(1, Ordering::SeqCst);
        applied
    }

    /// What discovery sources wait on between their scheduled looks.
    pub fn wake(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// An event was accepted: when its type is one of `refresh_on` (a deployment, a
    /// `graph.refresh`), every discovery source looks again at once, at most once a second.
    pub fn event_seen(&self, event_type: &str) {
        if !self.refresh_on.iter().any(|g| g.matches(event_type)) {
            return;
        }
        let now = grace_engine::event::system_now_millis();
        let last = self.woken_at.load(Ordering::SeqCst);
        if now.saturating_sub(last) >= 1000
            && self
                .woken_at
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            tracing::debug!(event_type, "graph discovery woken by an event");
            self.wake.notify_waiters();
        }
    }

    /// Forgets what only sources `keep` refuses reported (see
    /// [`HealthGraph::retain_sources`]).
    pub fn retain_sources(&self, keep: &dyn Fn(&str) -> bool) -> Applied {
        let applied = crate::sync::write(&self.graph).retain_sources(keep);
        self.generation.fetch_add(1, Ordering::SeqCst);
        applied
    }

    /// Reads the graph.
    pub fn read<R>(&self, f: impl FnOnce(&HealthGraph) -> R) -> R {
        f(&crate::sync::read(&self.graph))
    }

    /// What the graph says of an event's resource now, for trigger conditions
    /// (`event.graph`; see [`HealthGraph::facts`]).
    pub fn facts(&self, resource: &str) -> Option<serde_json::Value> {
        let now = grace_engine::event::system_now_millis();
        self.read(|graph| graph.facts(resource, now))
    }

    /// Stores the graph if it changed since it was last stored; whether it wrote.
    pub fn persist(&self) -> Result<bool, StoreError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if generation == self.stored.load(Ordering::SeqCst) {
            return Ok(false);
        }
        // Copied under the lock, encoded outside it: readers and discovery wait for a copy,
        // not for the encoding.
        let snapshot = self.read(HealthGraph::snapshot);
        let bytes = serde_json::to_vec(&snapshot)
            .map_err(|e| StoreError::Db(format!("cannot encode the health graph: {e}")))?;
        self.store.save_graph(&bytes)?;
        self.stored.store(generation, Ordering::SeqCst);
        Ok(true)
    }

    /// Stores the graph every `persist_every`, until the task is aborted.
    pub async fn keep(self: Arc<Self>) -> Result<(), TaskError> {
        let mut tick = tokio::time::interval(self.config.persist_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let graph = self.clone();
            // Encoding and writing a large graph is blocking work.
            tokio::task::spawn_blocking(move || graph.persist())
                .await
                .map_err(TaskError::new)?
                .map_err(TaskError::new)?;
        }
    }
}

impl grace_executor::GraphReader for Graph {
    fn node(&self, id: &NodeId, limit: usize) -> Option<grace_graph::NodeDetail> {
        let now = grace_engine::event::system_now_millis();
        self.read(|graph| graph.detail(id, now, limit))
    }

    fn walk(
        &self,
        id: &NodeId,
        walk: grace_graph::Walk,
        depth: u32,
        limit: usize,
        visible: &dyn Fn(&NodeId) -> bool,
    ) -> Option<Vec<(grace_graph::Reached, grace_graph::Health)>> {
        let now = grace_engine::event::system_now_millis();
        self.read(|graph| {
            grace_executor::graph::read_walk(graph, id, walk, depth, limit, visible, now)
        })
    }

    fn blast_radius(
        &self,
        id: &NodeId,
        depth: u32,
        limit: usize,
    ) -> Option<Vec<grace_graph::Dependent>> {
        let now = grace_engine::event::system_now_millis();
        self.read(|graph| {
            graph
                .node(id)
                .map(|_| graph.blast_radius(id, depth, limit, now))
        })
    }

    fn identity(&self) -> grace_graph::Identity {
        self.config.identity.clone()
    }

    fn facts(&self, resource: &str) -> Option<serde_json::Value> {
        Graph::facts(self, resource)
    }
}
