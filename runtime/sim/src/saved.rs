//! The simulated fleet's state kept across restarts (`grace serve --simulate` saves it in its
//! data directory beside the runs): what changes in the world (groups, containers,
//! deployments) and the virtual clock's reading, as JSON.
//!
//! A saved state is only restored onto the fleet it was saved from: it carries the world as
//! the fleet file first described it, and a state saved from another file (or an edited one)
//! restores the clock alone, never resources that may no longer exist.

use std::fmt;
use std::time::Duration;

use grace_executor::Clock;
use serde::{Deserialize, Serialize};

use crate::containers::Containers;
use crate::kubernetes::DeploymentState;
use crate::scaling::GroupState;
use crate::simulation::{Simulation, World};

/// Where a simulation saves its state after each change
/// ([`Simulation::save_changes_to`]). Called with the world locked: keep it short, and report
/// failures yourself (a change already made in the world cannot be taken back).
pub trait SaveState: Send + Sync + fmt::Debug {
    /// Keeps `state`, replacing the one kept before.
    fn save(&self, state: &SavedState);
}

/// What changes in the world.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedWorld {
    pub groups: Vec<GroupState>,
    pub containers: Containers,
    pub deployments: Vec<DeploymentState>,
}

impl SavedWorld {
    fn same_as(&self, other: &SavedWorld) -> bool {
        // Compared as JSON: the states hold no floats, so equal worlds give equal values.
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

/// The simulation at one moment: its clock, its world, and the world its fleet file described.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedState {
    /// The virtual clock's reading, in milliseconds since the Unix epoch.
    pub clock_millis: u64,
    initial: SavedWorld,
    world: SavedWorld,
}

/// A saved state that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the saved simulation state cannot be read: {0}")]
pub struct SavedStateError(#[from] serde_json::Error);

impl SavedState {
    /// As stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain structs and vectors: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a stored state.
    pub fn from_bytes(bytes: &[u8]) -> Result<SavedState, SavedStateError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// What [`Simulation::restore`] brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restored {
    /// The world and the clock.
    Everything,
    /// The clock only: the state was saved from another fleet file, so the world is the one
    /// this fleet file describes.
    ClockOnly,
}

impl Simulation {
    /// The simulation's state now.
    pub fn state(&self) -> SavedState {
        self.with_world(|world, _| self.state_of(world))
    }

    pub(crate) fn state_of(&self, world: &World) -> SavedState {
        SavedState {
            clock_millis: self.clock().now_millis(),
            initial: (*self.initial).clone(),
            world: world.saved(),
        }
    }

    /// Brings back a saved state: the clock moves forward to its reading (it never goes back),
    /// and the world becomes the saved one if it was saved from the same fleet file.
    pub fn restore(&self, saved: &SavedState) -> Restored {
        let clock = self.clock();
        let now = clock.now_millis();
        if saved.clock_millis > now {
            clock.advance(Duration::from_millis(saved.clock_millis - now));
        }
        if !saved.initial.same_as(&self.initial) {
            return Restored::ClockOnly;
        }
        self.with_world(|world, _| {
            world.groups = saved.world.groups.clone();
            world.containers = saved.world.containers.clone();
            world.deployments = saved.world.deployments.clone();
        });
        Restored::Everything
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fleet;
    use grace_executor::Clock;

    #[tokio::test]
    async fn a_restored_state_has_the_saved_capacity_and_clock() {
        let sim = Simulation::new(&Fleet::default_fleet());
        let scaling = sim.executors().scaling;
        let group = scaling.default_provider().expect("sim serves scaling");
        sim.clock().advance(Duration::from_secs(60));
        group
            .executor()
            .set_desired_capacity("api-asg", 5)
            .await
            .expect("within limits");
        let saved = SavedState::from_bytes(&sim.state().to_bytes()).expect("reads back");

        let restarted = Simulation::new(&Fleet::default_fleet());
        assert_eq!(restarted.restore(&saved), Restored::Everything);
        assert_eq!(restarted.clock().now_millis(), sim.clock().now_millis());
        assert_eq!(restarted.snapshot(), sim.snapshot());
    }

    #[test]
    fn a_state_of_another_fleet_restores_the_clock_only() {
        let sim = Simulation::new(&Fleet::default_fleet());
        sim.clock().advance(Duration::from_secs(60));
        let saved = sim.state();
        let other = Fleet::from_toml(
            "[[groups]]\nname = \"web\"\nmin_size = 1\nmax_size = 2\ndesired_capacity = 1\n",
        )
        .expect("valid fleet");
        let restarted = Simulation::new(&other);
        assert_eq!(restarted.restore(&saved), Restored::ClockOnly);
        assert_eq!(restarted.clock().now_millis(), saved.clock_millis);
        assert_eq!(restarted.snapshot().groups[0].name, "web");
    }
}
