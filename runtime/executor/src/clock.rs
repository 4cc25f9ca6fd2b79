//! The run clock: every wait in GRACE goes through [`Clock`], so a simulated ten-minute incident
//! runs in milliseconds on a [`VirtualClock`] and gives the same timeline every time.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of time that can also wait.
#[async_trait::async_trait]
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
    /// Waits for `duration` of this clock's time.
    async fn sleep(&self, duration: Duration);
    /// Whether this is simulated time (sleeping costs no wall time).
    fn is_virtual(&self) -> bool;
}

/// Real time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn is_virtual(&self) -> bool {
        false
    }
}

/// Simulated time: starts at a fixed instant and only moves when someone sleeps.
///
/// Sleeping advances the clock at once and returns, so waits cost no wall time and a dry-run is
/// deterministic. Concurrent sleepers each advance the shared clock by their own duration.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<u64>,
}

impl VirtualClock {
    /// A clock that reads `start_millis` until someone sleeps.
    pub fn starting_at(start_millis: u64) -> Self {
        VirtualClock {
            now: Mutex::new(start_millis),
        }
    }

    /// Moves the clock forward by `duration` without waiting.
    pub fn advance(&self, duration: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        let step = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        *now = now.saturating_add(step);
    }
}

#[async_trait::async_trait]
impl Clock for VirtualClock {
    fn now_millis(&self) -> u64 {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }

    fn is_virtual(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn virtual_sleep_advances_time_without_waiting() {
        let clock = VirtualClock::starting_at(1_000);
        let wall = std::time::Instant::now();
        clock.sleep(Duration::from_secs(600)).await;
        assert_eq!(clock.now_millis(), 601_000);
        assert!(wall.elapsed() < Duration::from_secs(5));
    }
}
