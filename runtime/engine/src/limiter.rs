//! The guest's memory and table limits, enforced by wasmtime through [`ResourceLimiter`].
//!
//! The manifest's `memory` is one budget for the whole guest: every linear memory and every
//! table of every core instance in the component counts against it together. A component may
//! hold several memories (the pool allows a few per component), and wasmtime asks the limiter
//! about each one separately, with that memory's own size; checking each growth against the
//! budget alone would let a guest with four memories use four times its `memory`. So the limiter
//! keeps the running total and checks what it would become.
//!
//! Growing past a limit stops the guest (a trap) rather than failing the growth: a guest that
//! hits its memory limit is misbehaving, and a trap with a named reason is easier to act on than
//! an out-of-memory abort deep inside the guest's allocator. The limiter remembers what was
//! refused so the run report can say so.

use wasmtime::ResourceLimiter;

/// Most table elements a guest may have, over all its tables.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// What one table element is charged against the memory budget: the host keeps a pointer-sized
/// reference per element, and more for some reference types; this rounds up.
pub(crate) const TABLE_ELEMENT_BYTES: usize = 16;

/// Limits for one store.
pub(crate) struct GuestLimiter {
    /// The manifest's `memory`: for all memories and tables together.
    budget_bytes: usize,
    /// Bytes of linear memory and tables the guest holds now, over all its instances.
    used_bytes: usize,
    /// Table elements the guest holds now, over all its tables.
    table_elements: usize,
    /// The growth granted last, taken back if wasmtime then fails to perform it.
    last_growth: Growth,
    /// What was refused, if anything.
    pub(crate) exceeded: Option<String>,
}

/// A growth the limiter granted, in the units it was counted in.
#[derive(Clone, Copy)]
enum Growth {
    None,
    Memory(usize),
    Table(usize),
}

impl GuestLimiter {
    pub(crate) fn new(memory_bytes: u64) -> Self {
        GuestLimiter {
            budget_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            used_bytes: 0,
            table_elements: 0,
            last_growth: Growth::None,
            exceeded: None,
        }
    }

    /// Bytes of memories and tables the guest holds now (all of them together).
    #[cfg(test)]
    pub(crate) fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    fn refuse(&mut self, message: String) -> wasmtime::Result<bool> {
        self.exceeded = Some(message.clone());
        Err(wasmtime::Error::msg(message))
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.used_bytes.saturating_add(growth);
        if total > self.budget_bytes {
            return self.refuse(format!(
                "memory limit of {} bytes reached (all memories and tables together): growing a memory from {current} to {desired} bytes would bring the total from {} to {total} bytes",
                self.budget_bytes, self.used_bytes
            ));
        }
        self.used_bytes = total;
        self.last_growth = Growth::Memory(growth);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Growth::Memory(growth) = std::mem::replace(&mut self.last_growth, Growth::None) {
            self.used_bytes = self.used_bytes.saturating_sub(growth);
        }
        // As wasmtime's default: the guest sees `memory.grow` return -1.
        tracing::debug!("a guest memory could not grow: {error:#}");
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let elements = self.table_elements.saturating_add(growth);
        if elements > MAX_TABLE_ELEMENTS {
            return self.refuse(format!(
                "table limit of {MAX_TABLE_ELEMENTS} elements reached (all tables together): growing a table from {current} to {desired} would bring the total to {elements}"
            ));
        }
        let bytes = growth.saturating_mul(TABLE_ELEMENT_BYTES);
        let total = self.used_bytes.saturating_add(bytes);
        if total > self.budget_bytes {
            return self.refuse(format!(
                "memory limit of {} bytes reached (all memories and tables together): growing a table from {current} to {desired} elements would bring the total from {} to {total} bytes",
                self.budget_bytes, self.used_bytes
            ));
        }
        self.table_elements = elements;
        self.used_bytes = total;
        self.last_growth = Growth::Table(growth);
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Growth::Table(growth) = std::mem::replace(&mut self.last_growth, Growth::None) {
            self.table_elements = self.table_elements.saturating_sub(growth);
            self.used_bytes = self
                .used_bytes
                .saturating_sub(growth.saturating_mul(TABLE_ELEMENT_BYTES));
        }
        tracing::debug!("a guest table could not grow: {error:#}");
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn growths_of_different_memories_share_one_budget() {
        let mut limiter = GuestLimiter::new(16 * MIB as u64);
        // Four memories of 4 MiB each: exactly the budget.
        for _ in 0..4 {
            assert!(limiter.memory_growing(0, 4 * MIB, None).unwrap());
        }
        assert_eq!(limiter.used_bytes(), 16 * MIB);
        // A fifth memory, or any memory growing by one page, passes the budget.
        assert!(limiter.memory_growing(0, 64 * 1024, None).is_err());
        assert!(
            limiter
                .exceeded
                .as_deref()
                .unwrap()
                .contains("memory limit")
        );
    }

    #[test]
    fn tables_count_against_the_memory_budget() {
        let mut limiter = GuestLimiter::new(MIB as u64);
        assert!(limiter.memory_growing(0, MIB - 1024, None).unwrap());
        // 1024 bytes left: 64 elements fit, 65 do not.
        assert!(limiter.table_growing(0, 64, None).unwrap());
        assert!(limiter.table_growing(0, 1, None).is_err());
    }

    /// A component of `count` core instances, each of a module that defines one memory of
    /// `pages` 64 KiB pages: any toolchain can emit one (Rust's gives each guest one memory).
    fn component_with_memories(count: u8, pages: u8) -> Vec<u8> {
        assert!(count < 0x80 && pages < 0x80, "one LEB128 byte each");
        // A core module with a memory section holding one memory of minimum `pages`.
        let module = [b"\0asm\x01\0\0\0".as_slice(), &[5, 3, 1, 0, pages]].concat();
        let mut component = b"\0asm\x0d\0\x01\0".to_vec();
        for i in 0..count {
            // A core module section, then a core instance section instantiating it.
            component.extend_from_slice(&[1, u8::try_from(module.len()).unwrap()]);
            component.extend_from_slice(&module);
            component.extend_from_slice(&[2, 4, 1, 0, i, 0]);
        }
        component
    }

    /// Instantiates `bytes` with the engine's own wasmtime configuration (its pool included) and
    /// a limiter of `budget` bytes.
    fn instantiate(bytes: &[u8], budget: usize) -> (wasmtime::Result<()>, GuestLimiter) {
        let config = crate::EngineConfig {
            max_concurrent_runs: 2,
            ..crate::EngineConfig::default()
        };
        let engine = wasmtime::Engine::new(&config.wasmtime_config().unwrap()).unwrap();
        let component = wasmtime::component::Component::new(&engine, bytes).unwrap();
        let mut store = wasmtime::Store::new(&engine, GuestLimiter::new(budget as u64));
        store.limiter(|limiter| limiter);
        let linker = wasmtime::component::Linker::<GuestLimiter>::new(&engine);
        let result = linker.instantiate(&mut store, &component).map(|_| ());
        (result, store.into_data())
    }

    #[test]
    fn hostile_component_with_four_memories_is_held_to_one_budget() {
        // Four memories of 4 MiB: each within the 8 MiB budget, together twice it.
        let (result, limiter) = instantiate(&component_with_memories(4, 64), 8 * MIB);
        assert!(
            result.is_err(),
            "four memories of 4 MiB fit an 8 MiB budget"
        );
        assert!(
            limiter
                .exceeded
                .as_deref()
                .unwrap()
                .contains("all memories and tables together")
        );
        assert!(limiter.used_bytes() <= 8 * MIB);
    }

    #[test]
    fn a_component_whose_memories_fit_the_budget_together_is_instantiated() {
        let (result, limiter) = instantiate(&component_with_memories(4, 16), 8 * MIB);
        result.unwrap();
        assert_eq!(limiter.used_bytes(), 4 * MIB);
        assert!(limiter.exceeded.is_none());
    }

    #[test]
    fn a_growth_wasmtime_could_not_perform_is_given_back() {
        let mut limiter = GuestLimiter::new(MIB as u64);
        assert!(limiter.memory_growing(0, MIB, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::Error::msg("no room"))
            .unwrap();
        assert_eq!(limiter.used_bytes(), 0);
        assert!(limiter.memory_growing(0, MIB, None).unwrap());
    }
}
