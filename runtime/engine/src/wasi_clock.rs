//! The run clock as WASI's `wasi:clocks/monotonic-clock`, waiting included: the timers a run
//! holds. The interface itself is implemented in `capabilities/wasi_clock.rs`.
//!
//! wasmtime-wasi reads the clock through [`wasmtime_wasi::HostMonotonicClock`], which the host
//! sets to the run clock, but the pollables of `subscribe-duration` and `subscribe-instant` (what
//! `std::thread::sleep` and every guest-side timeout use, through `wasi:io/poll`) wait on tokio's
//! real timer. So the engine links its own implementation of the interface over
//! wasmtime-wasi's (the linker shadows it), and its pollables wait on the run clock:
//!
//! - in simulation the clock is virtual: waiting advances it at once, so a dry-run of a sleeping
//!   guest is instant and gives the same timeline every time;
//! - in every run the wait is bounded by the run's deadline: a guest asking to wait past it is
//!   woken at the deadline by [`Overslept`], which stops the run there (`deadline-exceeded`), so a
//!   sleeping guest never holds a run slot beyond its deadline.
//!
//! Several timers polled together in simulation each advance the clock in turn when polled
//! (virtual time has no scheduler to pick the earliest): a `poll` over timers of 1 s and 10 s
//! returns both, 10 s later. A guest has nothing else to wait on, and `std` polls one timer.

use std::sync::Arc;
use std::time::Duration;

use grace_executor::Clock;
use tokio::sync::Notify;
use wasmtime_wasi::p2::Pollable;

/// The clock's resolution: the run clock counts milliseconds.
pub(crate) const NANOS_PER_MILLI: u64 = 1_000_000;

/// The run clock as WASI's monotonic clock: milliseconds on the run clock, read as nanoseconds
/// since the run started, and waits bounded by the run's deadline.
pub(crate) struct RunTimers {
    clock: Arc<dyn Clock>,
    /// The run clock's reading when the run started: the monotonic clock's zero.
    origin: u64,
    /// The run's deadline on the run clock.
    deadline_at: u64,
    /// Told when a guest's wait reached the deadline.
    pub(crate) overslept: Arc<Overslept>,
}

/// Wakes the engine when a guest's wait reaches the run's deadline: the guest is blocked in the
/// host then, where no epoch check can stop it, so the engine stops the run itself.
#[derive(Debug, Default)]
pub(crate) struct Overslept(Notify);

impl Overslept {
    /// Resolves once a guest's wait has reached the deadline.
    pub(crate) async fn reached(&self) {
        self.0.notified().await;
    }
}

impl RunTimers {
    pub(crate) fn new(clock: Arc<dyn Clock>, deadline_at: u64) -> Self {
        RunTimers {
            origin: clock.now_millis(),
            clock,
            deadline_at,
            overslept: Arc::new(Overslept::default()),
        }
    }

    /// Nanoseconds since the run started.
    pub(crate) fn now_nanos(&self) -> u64 {
        self.clock
            .now_millis()
            .saturating_sub(self.origin)
            .saturating_mul(NANOS_PER_MILLI)
    }

    /// A wait until the monotonic clock reads `when` (nanoseconds since the run started).
    pub(crate) fn until(&self, when: u64) -> RunTimer {
        self.timer(self.origin.saturating_add(millis_ceil(when)))
    }

    /// A wait of `duration` nanoseconds from now.
    pub(crate) fn after(&self, duration: u64) -> RunTimer {
        self.timer(
            self.clock
                .now_millis()
                .saturating_add(millis_ceil(duration)),
        )
    }

    /// A pollable ready when the run clock reads `target` (milliseconds), or never if that is
    /// past the deadline.
    fn timer(&self, target: u64) -> RunTimer {
        RunTimer {
            clock: self.clock.clone(),
            target,
            deadline_at: self.deadline_at,
            overslept: self.overslept.clone(),
            yielded: false,
        }
    }
}

/// A wait on the run clock (one `subscribe-*` pollable).
pub(crate) struct RunTimer {
    clock: Arc<dyn Clock>,
    target: u64,
    deadline_at: u64,
    overslept: Arc<Overslept>,
    /// Whether a wait that was already over has yielded once (see [`Pollable::ready`]).
    yielded: bool,
}

#[async_trait::async_trait]
impl Pollable for RunTimer {
    async fn ready(&mut self) {
        let now = self.clock.now_millis();
        if self.target <= now {
            // As wasmtime-wasi does for a zero timeout: yield to tokio once, so that a guest
            // polling in a busy loop does not starve the runtime.
            if !self.yielded {
                self.yielded = true;
                tokio::task::yield_now().await;
            }
            return;
        }
        let until = self.target.min(self.deadline_at);
        if until > now {
            self.clock.sleep(Duration::from_millis(until - now)).await;
        }
        if self.target > self.deadline_at {
            // The wait would end past the deadline: the run ends here instead.
            self.overslept.0.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

/// Milliseconds, rounded up, in `nanos`: a wait is never cut short by the clock's resolution.
fn millis_ceil(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_MILLI)
}

#[cfg(test)]
mod tests {
    use grace_executor::VirtualClock;

    use super::*;

    #[tokio::test]
    async fn a_wait_in_simulation_advances_the_virtual_clock_at_once() {
        let clock = Arc::new(VirtualClock::starting_at(1_000));
        let timers = RunTimers::new(clock.clone(), 1_000 + 3_600_000);
        let mut timer = timers.timer(1_000 + 600_000);
        timer.ready().await;
        assert_eq!(clock.now_millis(), 601_000);
        assert_eq!(timers.now_nanos(), 600_000 * NANOS_PER_MILLI);
    }

    #[tokio::test]
    async fn a_wait_past_the_deadline_stops_at_the_deadline_and_says_so() {
        let clock = Arc::new(VirtualClock::starting_at(0));
        let timers = RunTimers::new(clock.clone(), 5_000);
        let mut timer = timers.timer(3_600_000);
        let overslept = timers.overslept.clone();
        tokio::select! {
            () = timer.ready() => panic!("a wait past the deadline ended"),
            () = overslept.reached() => {}
        }
        assert_eq!(clock.now_millis(), 5_000);
    }

    #[test]
    fn waits_round_up_to_the_clock_resolution() {
        assert_eq!(millis_ceil(0), 0);
        assert_eq!(millis_ceil(1), 1);
        assert_eq!(millis_ceil(NANOS_PER_MILLI), 1);
        assert_eq!(millis_ceil(u64::MAX), u64::MAX / NANOS_PER_MILLI + 1);
    }
}
