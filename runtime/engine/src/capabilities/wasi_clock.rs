//! `wasi:clocks/monotonic-clock` on the run clock (see `crate::wasi_clock`): linked over
//! wasmtime-wasi's own, so that guests' waits follow the run clock and its deadline.

use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, subscribe};

use crate::host::HostState;
use crate::wasi_clock::NANOS_PER_MILLI;

impl monotonic_clock::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.timers.now_nanos())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(NANOS_PER_MILLI)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let timer = self.timers.until(when);
        let table = self.table();
        let timer = table.push(timer)?;
        subscribe(table, timer)
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let timer = self.timers.after(duration);
        let table = self.table();
        let timer = table.push(timer)?;
        subscribe(table, timer)
    }
}
