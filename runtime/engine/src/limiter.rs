//! The guest's memory and table limits, enforced by wasmtime through [`ResourceLimiter`].
//!
//! Growing past a limit stops the guest (a trap) rather than failing the growth: a guest that
//! hits its memory limit is misbehaving, and a trap with a named reason is easier to act on than
//! an out-of-memory abort deep inside the guest's allocator. The limiter remembers what was
//! refused so the run report can say so.

use wasmtime::ResourceLimiter;

/// Most table elements a guest may have.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Limits for one store.
pub(crate) struct GuestLimiter {
    memory_bytes: usize,
    /// What was refused, if anything.
    pub(crate) exceeded: Option<String>,
}

impl GuestLimiter {
    pub(crate) fn new(memory_bytes: u64) -> Self {
        GuestLimiter {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            exceeded: None,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired <= self.memory_bytes {
            return Ok(true);
        }
        let message = format!(
            "memory limit of {} bytes reached: the guest asked to grow from {current} to {desired} bytes",
            self.memory_bytes
        );
        self.exceeded = Some(message.clone());
        Err(wasmtime::Error::msg(message))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired <= MAX_TABLE_ELEMENTS {
            return Ok(true);
        }
        let message = format!(
            "table limit of {MAX_TABLE_ELEMENTS} elements reached: the guest asked to grow from {current} to {desired}"
        );
        self.exceeded = Some(message.clone());
        Err(wasmtime::Error::msg(message))
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}
