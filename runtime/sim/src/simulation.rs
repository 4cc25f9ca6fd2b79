//! The live simulated world, and the handle every simulated executor shares.
//!
//! One [`World`] behind a mutex holds all state; the executors lock it for each call and never
//! hold the lock across a sleep. Time is the [`VirtualClock`]'s: every change is stamped with
//! the clock's reading, and every state is computed from those stamps at read time, so nothing
//! changes unless someone calls an executor or moves the clock.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use grace_executor::{Clock, ExecError, Executors, Providers, VirtualClock};

/// The simulation's name as a provider: what routes, grants and the ledger call it.
pub const PROVIDER: &str = "sim";

use crate::containers::{Containers, SimContainers};
use crate::fleet::{DependencySpec, Fleet};
use crate::kubernetes::{DeploymentState, SimKubernetes};
use crate::metrics::{FixedSeries, Seed, SimMetrics};
use crate::saved::{SaveState, SavedWorld};
use crate::scaling::{GroupState, ServiceState, SimScaling};
use crate::snapshot::{FleetSnapshot, GroupSnapshot, ServiceSnapshot};

/// The most values events seeded ([`Simulation::seed_series`]) the simulation keeps: one per
/// event that names a series, so a long-running server drops the oldest.
pub const MAX_SEEDS: usize = 1_000;

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Everything the simulation knows. Every list is sorted by name (deployments by namespace,
/// then name), except containers, which keep creation order.
#[derive(Debug)]
pub(crate) struct World {
    pub groups: Vec<GroupState>,
    pub services: Vec<ServiceState>,
    pub containers: Containers,
    pub deployments: Vec<DeploymentState>,
    pub series: Vec<FixedSeries>,
    /// The fleet file's calls between workloads, in file order.
    pub dependencies: Vec<DependencySpec>,
    /// Values events seeded ([`Simulation::seed_series`]), newest last.
    pub seeds: Vec<Seed>,
}

impl World {
    fn new(fleet: &Fleet) -> World {
        let mut groups: Vec<GroupState> = fleet.groups().iter().map(GroupState::new).collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        let mut services: Vec<ServiceState> =
            fleet.services().iter().map(ServiceState::new).collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        let mut deployments: Vec<DeploymentState> = fleet
            .deployments()
            .iter()
            .map(DeploymentState::new)
            .collect();
        deployments.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        World {
            groups,
            services,
            containers: Containers::new(fleet.containers()),
            deployments,
            series: fleet
                .series()
                .iter()
                .filter_map(|s| FixedSeries::new(s, fleet.start_millis()))
                .collect(),
            dependencies: fleet.dependencies().to_vec(),
            seeds: Vec::new(),
        }
    }

    /// What changes: groups, containers and deployments (services, series and dependencies
    /// are the fleet file's and never change).
    pub(crate) fn saved(&self) -> SavedWorld {
        SavedWorld {
            groups: self.groups.clone(),
            containers: self.containers.clone(),
            deployments: self.deployments.clone(),
        }
    }

    pub fn group(&self, name: &str) -> Result<&GroupState, ExecError> {
        self.groups
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| no_group(name))
    }

    pub fn group_mut(&mut self, name: &str) -> Result<&mut GroupState, ExecError> {
        self.groups
            .iter_mut()
            .find(|g| g.name == name)
            .ok_or_else(|| no_group(name))
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Result<&DeploymentState, ExecError> {
        self.deployments
            .iter()
            .find(|d| d.namespace == namespace && d.name == name)
            .ok_or_else(|| no_deployment(namespace, name))
    }

    pub fn deployment_mut(
        &mut self,
        namespace: &str,
        name: &str,
    ) -> Result<&mut DeploymentState, ExecError> {
        self.deployments
            .iter_mut()
            .find(|d| d.namespace == namespace && d.name == name)
            .ok_or_else(|| no_deployment(namespace, name))
    }

    fn snapshot(&self, now: u64) -> FleetSnapshot {
        let groups = self
            .groups
            .iter()
            .map(|g| GroupSnapshot {
                name: g.name.clone(),
                min_size: g.min_size,
                max_size: g.max_size,
                desired_capacity: g.desired_at(now),
                in_service: g.in_service_at(now),
                pending: g.pending_at(now),
            })
            .collect();
        let services = self
            .services
            .iter()
            .map(|s| {
                let in_service = self.group(&s.group).map_or(0, |g| g.in_service_at(now));
                ServiceSnapshot {
                    name: s.name.clone(),
                    group: s.group.clone(),
                    load_rps: s.load_rps,
                    in_service,
                    capacity_rps: s.capacity_rps(in_service),
                    p95_latency_ms: s.p95_latency_ms(in_service),
                    utilisation: s.utilisation(in_service),
                }
            })
            .collect();
        FleetSnapshot {
            time: crate::snapshot::rfc3339(now),
            time_millis: now,
            groups,
            services,
            containers: self.containers.all(),
            deployments: self.deployments.iter().map(|d| d.status(now)).collect(),
        }
    }
}

fn no_group(name: &str) -> ExecError {
    ExecError::NotFound(format!("no group named `{name}`"))
}

fn no_deployment(namespace: &str, name: &str) -> ExecError {
    ExecError::NotFound(format!("no deployment `{name}` in namespace `{namespace}`"))
}

/// A simulated fleet, live: groups of instances, services, containers, deployments and metric
/// series on a virtual clock.
///
/// Cloning gives another handle to the same world. The same fleet driven by the same calls gives
/// the same results and the same [`FleetSnapshot`], every time.
#[derive(Debug, Clone)]
pub struct Simulation {
    world: Arc<Mutex<World>>,
    clock: Arc<VirtualClock>,
    /// The world as the fleet file describes it, to recognise a saved state of the same fleet.
    pub(crate) initial: Arc<SavedWorld>,
    /// Where each change is saved, once set ([`Simulation::save_changes_to`]).
    saver: Arc<OnceLock<Arc<dyn SaveState>>>,
    /// The messages playbooks posted: kept, never sent (a simulated fleet has no team).
    messages: Arc<grace_executor::DryRunMessages>,
}

impl Simulation {
    /// Starts the fleet as described, on a new virtual clock reading the fleet's `start`.
    pub fn new(fleet: &Fleet) -> Simulation {
        let world = World::new(fleet);
        Simulation {
            initial: Arc::new(world.saved()),
            world: Arc::new(Mutex::new(world)),
            clock: Arc::new(VirtualClock::starting_at(fleet.start_millis())),
            saver: Arc::default(),
            messages: Arc::default(),
        }
    }

    /// The messages playbooks posted on this fleet (`notify.send`), oldest first.
    pub fn messages(&self) -> Vec<grace_executor::notify::Message> {
        self.messages.messages()
    }

    /// The virtual clock the simulation runs on; advancing it moves the whole fleet forward.
    pub fn clock(&self) -> Arc<VirtualClock> {
        Arc::clone(&self.clock)
    }

    /// All four executors, acting on this world, each as the provider [`PROVIDER`] serving
    /// every resource of its capability, and its virtual clock.
    pub fn executors(&self) -> Executors {
        Executors {
            clock: self.clock(),
            scaling: Providers::single(PROVIDER, Arc::new(SimScaling { sim: self.clone() })),
            containers: Providers::single(PROVIDER, Arc::new(SimContainers { sim: self.clone() })),
            kubernetes: Providers::single(PROVIDER, Arc::new(SimKubernetes { sim: self.clone() })),
            metrics: Providers::single(PROVIDER, Arc::new(SimMetrics { sim: self.clone() })),
            graph: Some(Arc::new(crate::discover::SimGraph { sim: self.clone() })),
            // No detector has seen the simulated fleet's series: every series reads `none`.
            anomaly: Some(Arc::new(grace_executor::NoDetectorHistory)),
            notify: Some(self.messages.clone()),
            locks: Arc::default(),
        }
    }

    /// The fleet's state now.
    pub fn snapshot(&self) -> FleetSnapshot {
        self.with_world(|world, now| world.snapshot(now))
    }

    /// Answers `query` with `value` from `from_millis` (an event's time) until the fleet next
    /// changes; before and after, the fleet file's series or the model answer as usual. So a
    /// playbook re-reading the metric an event reported sees the event's value, and once the
    /// playbook acts, the simulation's model takes over again.
    /// At most [`MAX_SEEDS`] seeds are kept, the oldest dropped first.
    pub fn seed_series(&self, query: &str, value: f64, from_millis: u64) {
        self.with_world(|world, _| {
            if world.seeds.len() >= MAX_SEEDS {
                let excess = world.seeds.len() + 1 - MAX_SEEDS;
                world.seeds.drain(..excess);
            }
            world.seeds.push(Seed::new(query, value, from_millis));
        });
    }

    /// Saves the simulation's state with `saver` after every change from now on (the first
    /// call wins; later ones are ignored).
    pub fn save_changes_to(&self, saver: Arc<dyn SaveState>) {
        let _ = self.saver.set(saver);
    }

    /// Saves the state now (with the saver of [`Simulation::save_changes_to`], if any), with
    /// the world locked, so that this save and those of changes are kept in the order made:
    /// after the clock moved, a save of the state as it was never overwrites a newer one.
    pub fn save_now(&self) {
        if let Some(saver) = self.saver.get() {
            let world = self.world.lock().unwrap_or_else(|e| e.into_inner());
            saver.save(&self.state_of(&world));
        }
    }

    /// Runs a change `f` on the locked world (see [`Simulation::with_world`]); when it succeeds,
    /// seeded values end and the new state is saved, before the lock is let go, so saves are in
    /// the order of the changes.
    pub(crate) fn change_world<T, E>(
        &self,
        f: impl FnOnce(&mut World, u64) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now_millis();
        let out = f(&mut world, now)?;
        for seed in &mut world.seeds {
            seed.end_at(now);
        }
        if let Some(saver) = self.saver.get() {
            saver.save(&self.state_of(&world));
        }
        Ok(out)
    }

    /// Runs `f` on the locked world with the clock's reading, so changes and reads are stamped
    /// consistently. Never hold this across an `await`.
    pub(crate) fn with_world<T>(&self, f: impl FnOnce(&mut World, u64) -> T) -> T {
        // A poisoned lock means another caller panicked mid-call; a simulation is still worth
        // reading after that, so carry on rather than panic in turn.
        let mut world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now_millis();
        f(&mut world, now)
    }
}
