//! The simulated fleet's state kept across restarts (`grace serve --simulate` saves it in its
//! data directory beside the runs): what changes in the world (groups, containers,
//! deployments) and the virtual clock's reading, as JSON.
//!
//! A saved state is only restored onto the fleet it was saved from: it carries the world as
//! the fleet file first described it, and a state saved from another file (or an edited one)
//! restores the clock alone, never resources that may no longer exist; [`Restored::ClockOnly`]
//! names what differs. The saved world is checked against the fleet file before it is taken:
//! the file's groups, deployments and containers (and clones of its containers only), with
//! numbers within the file's limits; one that is not is not restored either, and says why.
//!
//! The state is bounded: a group remembers its last [`crate::MAX_GROUP_HISTORY`] changes and removed
//! instances, a container its last [`crate::containers::MAX_LOG_LINES`] log lines.

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

    /// What differs between the fleet file this world was first described by (`self`) and
    /// `now`'s: one line per group, deployment or container added, removed or changed.
    fn differences(&self, now: &SavedWorld) -> Vec<String> {
        let groups = |w: &SavedWorld| -> Vec<(String, serde_json::Value)> {
            w.groups.iter().map(|g| (g.name.clone(), json(g))).collect()
        };
        let deployments = |w: &SavedWorld| -> Vec<(String, serde_json::Value)> {
            w.deployments
                .iter()
                .map(|d| (format!("{}/{}", d.namespace, d.name), json(d)))
                .collect()
        };
        let mut out = Vec::new();
        diff("group", &groups(self), &groups(now), &mut out);
        diff(
            "deployment",
            &deployments(self),
            &deployments(now),
            &mut out,
        );
        diff(
            "container",
            &self.containers.originals(),
            &now.containers.originals(),
            &mut out,
        );
        if out.is_empty() {
            // Same resources, in another order or with another start.
            out.push("the fleet file's resources are described differently".to_owned());
        }
        out
    }

    /// Why this world cannot be `initial` (the fleet file's) after changes, if it cannot.
    fn check_against(&self, initial: &SavedWorld) -> Result<(), String> {
        if self.groups.len() != initial.groups.len() {
            return Err(format!(
                "it holds {} groups where the fleet file has {}",
                self.groups.len(),
                initial.groups.len()
            ));
        }
        for (group, first) in self.groups.iter().zip(&initial.groups) {
            group.check_against(first)?;
        }
        if self.deployments.len() != initial.deployments.len() {
            return Err(format!(
                "it holds {} deployments where the fleet file has {}",
                self.deployments.len(),
                initial.deployments.len()
            ));
        }
        for (deployment, first) in self.deployments.iter().zip(&initial.deployments) {
            deployment.check_against(first)?;
        }
        self.containers.check_against(&initial.containers)
    }
}

/// Adds to `out` what differs between `before` and `after`, by name.
fn diff(
    kind: &str,
    before: &[(String, serde_json::Value)],
    after: &[(String, serde_json::Value)],
    out: &mut Vec<String>,
) {
    for (name, value) in after {
        match before.iter().find(|(n, _)| n == name) {
            None => out.push(format!("{kind} `{name}` is new")),
            Some((_, old)) if old != value => out.push(format!("{kind} `{name}` changed")),
            Some(_) => {}
        }
    }
    for (name, _) in before {
        if !after.iter().any(|(n, _)| n == name) {
            out.push(format!("{kind} `{name}` is gone"));
        }
    }
}

/// A state as JSON, to compare: plain structs, which cannot fail to serialise.
fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restored {
    /// The world and the clock.
    Everything,
    /// The clock only: the state was saved from another fleet file, or holds a world this
    /// fleet file cannot have, so the world is the one this fleet file describes.
    ClockOnly {
        /// What differs, one line each (`group `api-asg` changed`), or why the saved world
        /// was refused.
        why: Vec<String>,
    },
    /// Nothing: the saved clock reads later than the caller allows (a corrupt or forged
    /// state), so neither the clock nor the world is taken and the simulation starts over
    /// from its fleet file.
    Nothing {
        /// Why, naming the saved reading and the latest allowed.
        why: String,
    },
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
    /// and the world becomes the saved one if it was saved from the same fleet file. A state
    /// whose clock reads later than `latest_millis` (milliseconds since the epoch) is not
    /// taken at all ([`Restored::Nothing`]): the simulation has no wall clock of its own, so
    /// the caller says how far ahead of the real time a saved reading may be.
    pub fn restore(&self, saved: &SavedState, latest_millis: u64) -> Restored {
        if saved.clock_millis > latest_millis {
            return Restored::Nothing {
                why: format!(
                    "its clock reads {} ms since the epoch, later than the latest allowed, {latest_millis}",
                    saved.clock_millis
                ),
            };
        }
        let clock = self.clock();
        let now = clock.now_millis();
        if saved.clock_millis > now {
            clock.advance(Duration::from_millis(saved.clock_millis - now));
        }
        if !saved.initial.same_as(&self.initial) {
            return Restored::ClockOnly {
                why: saved.initial.differences(&self.initial),
            };
        }
        if let Err(why) = saved.world.check_against(&self.initial) {
            return Restored::ClockOnly {
                why: vec![format!(
                    "the saved fleet is not one this fleet file can have: {why}"
                )],
            };
        }
        self.with_world(|world, _| {
            world.groups = saved.world.groups.clone();
            // States saved before history was bounded: bounded now.
            for group in &mut world.groups {
                group.forget_old_history();
            }
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
        assert_eq!(restarted.restore(&saved, u64::MAX), Restored::Everything);
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
        assert!(matches!(
            restarted.restore(&saved, u64::MAX),
            Restored::ClockOnly { why } if why.contains(&"group `web` is new".to_owned())
                && why.contains(&"group `api-asg` is gone".to_owned())
        ));
        assert_eq!(restarted.clock().now_millis(), saved.clock_millis);
        assert_eq!(restarted.snapshot().groups[0].name, "web");
    }

    #[tokio::test]
    async fn a_state_whose_clock_reads_past_the_latest_allowed_is_not_restored_at_all() {
        let sim = Simulation::new(&Fleet::default_fleet());
        let group = sim.executors().scaling.default_provider().expect("sim");
        group
            .executor()
            .set_desired_capacity("api-asg", 5)
            .await
            .expect("within limits");
        let mut saved = sim.state();
        saved.clock_millis = 253_402_300_799_000; // 9999-12-31T23:59:59Z

        let restarted = Simulation::new(&Fleet::default_fleet());
        let before = restarted.clock().now_millis();
        let restored = restarted.restore(&saved, saved.clock_millis - 1);
        assert!(
            matches!(&restored, Restored::Nothing { why } if why.contains("253402300799000")),
            "{restored:?}"
        );
        assert_eq!(restarted.clock().now_millis(), before, "the clock stays");
        assert_eq!(
            restarted.snapshot(),
            Simulation::new(&Fleet::default_fleet()).snapshot(),
            "the world is the fleet file's"
        );
    }
}
