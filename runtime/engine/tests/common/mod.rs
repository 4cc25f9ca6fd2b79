//! Shared by the engine's integration tests: real guests compiled from `playbooks/` (once per
//! test process; cargo's own cache makes later builds no-ops), the simulated default fleet and a
//! ledger in a temporary directory.

#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use grace_engine::trust::PassThrough;
use grace_engine::{Engine, EngineConfig, Guest, RunEnv, RunReport, RunStatus, TriggerEvent};
use grace_ledger::{Durability, Ledger};
use grace_sim::{Fleet, Simulation};

pub use grace_testkit::{build_guests, components_dir, example, fixture, playbooks_dir};

/// One engine per test process: compiling components is the slow part, and the engine caches
/// them by digest.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Engine::new(&EngineConfig {
                max_concurrent_runs: 16,
                ..EngineConfig::default()
            })
            .expect("the engine starts")
        })
        .clone()
}

/// Loads a built guest.
pub fn load(dir: &Path) -> Guest {
    build_guests();
    engine()
        .load(dir)
        .unwrap_or_else(|e| panic!("{} loads: {e}", dir.display()))
}

/// A simulated world, a ledger in a temporary directory, and what runs need of them.
pub struct World {
    pub sim: Simulation,
    pub ledger: Arc<Ledger>,
    pub env: RunEnv,
    pub dir: tempfile::TempDir,
}

impl World {
    /// The default fleet, a fresh ledger.
    pub fn new() -> World {
        World::with_fleet(&Fleet::default_fleet())
    }

    /// A given fleet, a fresh ledger.
    pub fn with_fleet(fleet: &Fleet) -> World {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ledger = Arc::new(
            Ledger::open(dir.path().join("grace.redb"), Durability::None)
                .expect("the ledger opens"),
        );
        let sim = Simulation::new(fleet);
        let env = RunEnv::new(sim.executors(), ledger.clone(), Arc::new(PassThrough));
        World {
            sim,
            ledger,
            env,
            dir,
        }
    }

    /// Runs a playbook on an event, on a fresh current-thread runtime.
    pub fn run(&self, guest: &Guest, event: &TriggerEvent) -> RunReport {
        runtime().block_on(async {
            let report = engine().run_playbook(guest, event, &self.env).await;
            // The run's `finished` record is submitted, not awaited: wait for it here.
            self.ledger.flush().await.expect("the ledger flushes");
            report
        })
    }

    /// Runs a collector once.
    pub fn collect(&self, guest: &Guest) -> RunReport {
        runtime().block_on(async {
            let report = engine().run_collector(guest, &self.env).await;
            self.ledger.flush().await.expect("the ledger flushes");
            report
        })
    }
}

/// A small multi-threaded runtime, as the CLI and server use.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A test event.
pub fn event(event_type: &str, resource: &str, payload: serde_json::Value) -> TriggerEvent {
    TriggerEvent {
        event_type: event_type.into(),
        source: "test".into(),
        actor: "tests".into(),
        resource: resource.into(),
        payload,
        timestamp: 1_767_225_900_000,
    }
}

/// The desired capacity of `group` in the world's simulated fleet.
pub fn desired(world: &World, group: &str) -> u64 {
    let snapshot = serde_json::to_value(world.sim.snapshot()).unwrap();
    snapshot["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == group)
        .unwrap()["desired_capacity"]
        .as_u64()
        .unwrap()
}

/// What a probing fixture (`container-prober`, `group-scaler`) reported for each call, in
/// order: its outcome's `call0`, `call1`, ... details.
pub fn results(report: &RunReport) -> Vec<String> {
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "{:?}\n{}",
        report.failure,
        report.guest_stderr
    );
    let outcome = report.outcome.as_ref().expect("an outcome");
    (0..)
        .map_while(|n| outcome.details.get(&format!("call{n}")).cloned())
        .collect()
}
