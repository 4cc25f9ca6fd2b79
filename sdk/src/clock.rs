//! The run's clock.
//!
//! In simulation (`grace run --dry-run`) this is virtual time: sleeping costs no wall time and
//! every run gives the same timeline. Use it instead of `std::time`, which the sandbox does not
//! tie to the run.

use std::time::Duration;

use crate::Result;
use crate::bindings::playbook::grace::playbook::clock as wit;

/// Milliseconds since the Unix epoch, on the run's clock.
pub fn now() -> u64 {
    wit::now()
}

/// Waits `duration` on the run's clock (whole milliseconds).
///
/// Fails with [`Error::TimedOut`](crate::Error::TimedOut) when the wait would end after the
/// run's deadline (`limits.timeout`).
pub fn sleep(duration: Duration) -> Result<()> {
    wit::sleep(millis(duration)).map_err(crate::Error::from_host)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
