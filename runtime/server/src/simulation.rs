//! The simulated fleet of `grace serve --simulate` as the server keeps it: what may advance its
//! virtual clock, and its state kept in the data directory beside the runs.
//!
//! **Time.** Virtual time follows the events: the matcher moves the clock to each event's
//! `timestamp` (never back). So that no single event can jump the simulated fleet into another
//! year, the intake refuses (before anything is stored or acknowledged) an event stamped more
//! than `max_event_skew` after both the simulation's time and the wall clock. The simulation's
//! time here is its horizon: the latest of its clock and every event accepted so far, since
//! accepted events move the clock once matched. A recorded incident still replays (its samples
//! are minutes apart, each within the bound of the one before), and a real source (Alertmanager,
//! Prometheus) stamping events with the wall clock is accepted. The bound is per step, not a
//! cap: an `operate` token can still walk the clock forward by `max_event_skew` per event (a
//! batch of 10,000 events 15 min apart moves it about 104 days). That is deliberate: recorded
//! incidents longer than the bound must replay, and publishing with `operate` is trusted. The
//! walk stops [`MAX_SAVED_CLOCK_AHEAD`] after the wall clock, where a restart would no longer
//! restore the clock.
//!
//! **State.** Every change the simulated fleet makes is saved in the same database as the runs
//! and the ledger ([`SavedSimulation`], written as the change is made, before its result is
//! recorded, as a real backend keeps its state), and the clock is saved with each matched
//! batch (in the transaction of its mark: no extra write) and after the runs an event fired.
//! A restart restores both onto the same fleet file; onto an edited one, the clock only, and
//! says so loudly, naming the groups, deployments and containers that differ. A saved fleet
//! that the file could not have become (another resource, a count outside the file's limits)
//! is not restored either, with a warning saying why (see [`grace_sim::Restored`]). The saved
//! state is bounded ([`grace_sim::MAX_GROUP_HISTORY`]). A saved clock reading more than
//! [`MAX_SAVED_CLOCK_AHEAD`] after the wall clock (a corrupt or forged data directory: events
//! can walk the clock ahead, but not by a year in any plausible replay) is not taken, nor the
//! world saved with it: the fleet starts over from the fleet file, loudly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use grace_engine::TriggerEvent;
use grace_engine::event::{format_millis, system_now_millis};
use grace_executor::Clock;
use grace_sim::{Restored, SaveState, SavedState, Simulation};

use crate::store::{Store, StoreError};

/// The bound on event timestamps in simulation (see the module documentation).
#[derive(Debug)]
pub struct EventTimeBound {
    sim: Simulation,
    skew_millis: u64,
    /// The latest timestamp accepted (or the clock's reading, if later, when last checked).
    horizon: AtomicU64,
}

/// An event stamped too far ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`timestamp` {timestamp} is more than {skew} after the simulation's time ({horizon}) and the wall clock ({wall}), or more than {cap} after the wall clock: the simulated fleet's time follows events, by at most `max_event_skew` each, and never further ahead than a restart would restore",
    cap = humantime::format_duration(MAX_SAVED_CLOCK_AHEAD)
)]
pub struct TooFarAhead {
    /// Its position in the batch.
    pub index: usize,
    /// The event's timestamp, RFC 3339.
    pub timestamp: String,
    /// The simulation's time, RFC 3339.
    pub horizon: String,
    /// The wall clock, RFC 3339.
    pub wall: String,
    /// The bound, e.g. `15m`.
    pub skew: String,
}

impl EventTimeBound {
    /// A bound of `skew` on events offered to `sim`.
    pub fn new(sim: &Simulation, skew: Duration) -> EventTimeBound {
        EventTimeBound {
            horizon: AtomicU64::new(sim.clock().now_millis()),
            sim: sim.clone(),
            skew_millis: millis(skew),
        }
    }

    /// Checks a batch, in order (each event may step up to the bound past the ones before it);
    /// nothing is recorded until [`EventTimeBound::accepted`].
    pub fn check(&self, events: &[TriggerEvent]) -> Result<(), TooFarAhead> {
        let wall = system_now_millis();
        let mut horizon = self
            .horizon
            .load(Ordering::Acquire)
            .max(self.sim.clock().now_millis());
        // Past this, a restart would refuse the saved clock and start the fleet over: the
        // walk forward that `max_event_skew` allows per step stops here.
        let cap = wall.saturating_add(millis(MAX_SAVED_CLOCK_AHEAD));
        for (index, e) in events.iter().enumerate() {
            let limit = horizon.max(wall).saturating_add(self.skew_millis).min(cap);
            if e.timestamp > limit {
                return Err(TooFarAhead {
                    index,
                    timestamp: format_millis(e.timestamp),
                    horizon: format_millis(horizon),
                    wall: format_millis(wall),
                    skew: humantime::format_duration(Duration::from_millis(self.skew_millis))
                        .to_string(),
                });
            }
            horizon = horizon.max(e.timestamp);
        }
        Ok(())
    }

    /// Records a stored batch: the clock will follow its events.
    pub fn accepted(&self, events: &[TriggerEvent]) {
        if let Some(latest) = events.iter().map(|e| e.timestamp).max() {
            self.horizon.fetch_max(latest, Ordering::AcqRel);
        }
    }
}

/// How far after the wall clock a restored simulation clock may read; a later saved reading is
/// refused (see the module documentation). Events are refused past it too, so that a clock the
/// server walked forward itself is always one a restart restores.
pub const MAX_SAVED_CLOCK_AHEAD: Duration = Duration::from_secs(366 * 24 * 60 * 60);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Saves the simulated fleet's state in the store after each change.
pub struct SavedSimulation {
    store: Store,
}

impl std::fmt::Debug for SavedSimulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SavedSimulation")
    }
}

impl SaveState for SavedSimulation {
    fn save(&self, state: &SavedState) {
        // The change is made in the world already: a failure to keep it is reported, and the
        // next change (or the end of the runs an event fired) saves the whole state again.
        if let Err(e) = self.store.put_simulation(&state.to_bytes()) {
            tracing::error!("the simulated fleet's state could not be saved: {e}");
        }
    }
}

/// Brings back the state saved in `store` (if any) and saves every later change there.
pub fn restore_and_keep(sim: &Simulation, store: &Store) -> Result<(), StoreError> {
    let latest = system_now_millis().saturating_add(millis(MAX_SAVED_CLOCK_AHEAD));
    if let Some(bytes) = store.simulation()? {
        match SavedState::from_bytes(&bytes) {
            Ok(saved) => match sim.restore(&saved, latest) {
                Restored::Everything => tracing::info!(
                    time = %format_millis(sim.clock().now_millis()),
                    "the simulated fleet is restored as it was saved in the data directory"
                ),
                Restored::ClockOnly { why } => tracing::warn!(
                    time = %format_millis(sim.clock().now_millis()),
                    "the simulated fleet saved in the data directory is not restored ({}): it starts over from the fleet file (the runs and the ledger remember the old one), its clock goes on from the saved time",
                    why.join("; ")
                ),
                Restored::Nothing { why } => tracing::warn!(
                    time = %format_millis(sim.clock().now_millis()),
                    latest = %format_millis(latest),
                    "the simulated fleet saved in the data directory is not restored ({why}): its clock is more than {} after the wall clock, so it starts over from the fleet file and its clock (the runs and the ledger remember the old one)",
                    humantime::format_duration(MAX_SAVED_CLOCK_AHEAD)
                ),
                _ => {}
            },
            Err(e) => tracing::warn!(
                "the simulated fleet starts over from the fleet file (the runs and the ledger remember the old one): {e}"
            ),
        }
    }
    // The clock kept with the last matched batch may be later than the last saved state's.
    if let Some(clock) = store.simulation_clock()? {
        let now = sim.clock().now_millis();
        if clock > latest {
            tracing::warn!(
                saved = clock,
                latest = %format_millis(latest),
                "the simulated clock kept with the last matched batch is more than {} after the wall clock: it is not restored",
                humantime::format_duration(MAX_SAVED_CLOCK_AHEAD)
            );
        } else if clock > now {
            sim.clock().advance(Duration::from_millis(clock - now));
        }
    }
    sim.save_changes_to(Arc::new(SavedSimulation {
        store: store.clone(),
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        Store::temporary()
    }

    fn fleet() -> Simulation {
        Simulation::new(&grace_sim::Fleet::default_fleet())
    }

    /// A state of the default fleet with api-asg scaled to 5, its clock reading `clock_millis`.
    async fn scaled_state(clock_millis: u64) -> SavedState {
        let sim = fleet();
        let group = sim.executors().scaling.default_provider().unwrap();
        group
            .executor()
            .set_desired_capacity("api-asg", 5)
            .await
            .unwrap();
        let mut saved = sim.state();
        saved.clock_millis = clock_millis;
        saved
    }

    fn desired(sim: &Simulation) -> u32 {
        sim.snapshot().groups[0].desired_capacity
    }

    fn event_at(timestamp: u64) -> TriggerEvent {
        TriggerEvent::from_value(
            serde_json::json!({
                "event_type": "metric.threshold",
                "source": "test",
                "actor": "test",
                "resource": "api-asg",
                "timestamp": timestamp,
            }),
            0,
        )
        .unwrap()
    }

    #[test]
    fn events_walk_the_clock_forward_only_as_far_as_a_restart_restores() {
        let sim = fleet();
        let ahead = millis(MAX_SAVED_CLOCK_AHEAD);
        // The clock was walked to a minute short of the cap, one step at a time.
        let near_cap = system_now_millis() + ahead - 60_000;
        sim.clock()
            .advance(Duration::from_millis(near_cap - sim.clock().now_millis()));
        let bound = EventTimeBound::new(&sim, Duration::from_secs(15 * 60));

        // A step within `max_event_skew` but past the cap is refused, naming the cap.
        let past = bound
            .check(&[event_at(near_cap + 10 * 60_000)])
            .unwrap_err();
        let cap = humantime::format_duration(MAX_SAVED_CLOCK_AHEAD).to_string();
        assert!(past.to_string().contains(&cap), "{past}");
        // Up to the cap, steps are taken.
        assert!(bound.check(&[event_at(near_cap + 30_000)]).is_ok());
    }

    #[tokio::test]
    async fn a_saved_state_within_the_bound_is_restored() {
        let (_dir, store) = store();
        let saved = scaled_state(system_now_millis() + 60_000).await;
        store.put_simulation(&saved.to_bytes()).unwrap();

        let restarted = fleet();
        restore_and_keep(&restarted, &store).unwrap();
        assert_eq!(restarted.clock().now_millis(), saved.clock_millis);
        assert_eq!(desired(&restarted), 5);
    }

    #[tokio::test]
    async fn a_saved_clock_far_past_the_wall_clock_is_refused_and_the_fleet_starts_over() {
        let (_dir, store) = store();
        let far = system_now_millis() + millis(MAX_SAVED_CLOCK_AHEAD) + 3_600_000;
        store
            .put_simulation(&scaled_state(far).await.to_bytes())
            .unwrap();
        store.put_matched(&[], 0, None, Some(far)).unwrap();

        let restarted = fleet();
        let (before, fresh) = (restarted.clock().now_millis(), desired(&restarted));
        restore_and_keep(&restarted, &store).unwrap();
        assert_eq!(
            restarted.clock().now_millis(),
            before,
            "the clock is not moved"
        );
        assert_eq!(desired(&restarted), fresh, "the world is the fleet file's");
        assert_ne!(fresh, 5);
    }
}
