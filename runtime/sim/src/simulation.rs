//! The live simulated world, and the handle every simulated executor shares.
//!
//! One [`World`] behind a mutex holds all state; the executors lock it for each call and never
//! hold the lock across a sleep. Time is the [`VirtualClock`]'s: every change is stamped with
//! the clock's reading, and every state is computed from those stamps at read time, so nothing
//! changes unless someone calls an executor or moves the clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use grace_executor::{Clock, ExecError, Executors, Providers, VirtualClock};

/// The simulation's name as a provider: what routes, grants and the ledger call it.
pub const PROVIDER: &str = "sim";

use crate::containers::{Containers, SimContainers};
use crate::fleet::Fleet;
use crate::kubernetes::{DeploymentState, SimKubernetes};
use crate::metrics::{FixedSeries, SimMetrics};
use crate::scaling::{GroupState, ServiceState, SimScaling};
use crate::snapshot::{FleetSnapshot, GroupSnapshot, ServiceSnapshot};

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
}

impl Simulation {
    /// Starts the fleet as described, on a new virtual clock reading the fleet's `start`.
    pub fn new(fleet: &Fleet) -> Simulation {
        Simulation {
            world: Arc::new(Mutex::new(World::new(fleet))),
            clock: Arc::new(VirtualClock::starting_at(fleet.start_millis())),
        }
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
            locks: Arc::default(),
        }
    }

    /// The fleet's state now.
    pub fn snapshot(&self) -> FleetSnapshot {
        self.with_world(|world, now| world.snapshot(now))
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
