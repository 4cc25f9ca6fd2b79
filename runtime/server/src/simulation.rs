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
//! incidents longer than the bound must replay, and publishing with `operate` is trusted.
//!
//! **State.** Every change the simulated fleet makes is saved in the same database as the runs
//! and the ledger ([`SavedSimulation`], written as the change is made, before its result is
//! recorded, as a real backend keeps its state), and the clock is saved with each matched
//! batch (in the transaction of its mark: no extra write) and after the runs an event fired.
//! A restart restores both onto the same fleet file; onto an edited one, the clock only, and
//! says so loudly, naming the groups, deployments and containers that differ. A saved fleet
//! that the file could not have become (another resource, a count outside the file's limits)
//! is not restored either, with a warning saying why (see [`grace_sim::Restored`]). The saved
//! state is bounded ([`grace_sim::MAX_GROUP_HISTORY`]).

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
    "`timestamp` {timestamp} is more than {skew} after the simulation's time ({horizon}) and the wall clock ({wall}): the simulated fleet's time follows events, by at most `max_event_skew`"
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
            skew_millis: u64::try_from(skew.as_millis()).unwrap_or(u64::MAX),
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
        for (index, e) in events.iter().enumerate() {
            let limit = horizon.max(wall).saturating_add(self.skew_millis);
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
    if let Some(bytes) = store.simulation()? {
        match SavedState::from_bytes(&bytes) {
            Ok(saved) => match sim.restore(&saved) {
                Restored::Everything => tracing::info!(
                    time = %format_millis(sim.clock().now_millis()),
                    "the simulated fleet is restored as it was saved in the data directory"
                ),
                Restored::ClockOnly { why } => tracing::warn!(
                    time = %format_millis(sim.clock().now_millis()),
                    "the simulated fleet saved in the data directory is not restored ({}): it starts over from the fleet file (the runs and the ledger remember the old one), its clock goes on from the saved time",
                    why.join("; ")
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
        if clock > now {
            sim.clock().advance(Duration::from_millis(clock - now));
        }
    }
    sim.save_changes_to(Arc::new(SavedSimulation {
        store: store.clone(),
    }));
    Ok(())
}
