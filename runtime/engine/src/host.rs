//! The store's data: the sandboxed WASI context (no files, network, environment or arguments;
//! clocks and randomness from the run), resource limits, and the run's state that every
//! capability goes through.

use std::sync::Arc;
use std::time::Duration;

use grace_executor::Clock;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limiter::GuestLimiter;
use crate::pipeline::RunState;
use crate::wasi_clock::RunTimers;

/// The most WASI handles (timer pollables, streams) a guest may hold at once; past it, creating
/// one traps. Host memory per handle is small, but a guest looping `subscribe-duration` without
/// dropping the handles would otherwise grow it until its deadline.
pub(crate) const MAX_GUEST_RESOURCES: usize = 4096;

/// How much of the guest's stdout and stderr is kept (panic messages land on stderr).
pub(crate) const GUEST_OUTPUT_BYTES: usize = 64 * 1024;

/// What a store holds for one run.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// WASI's monotonic clock and its waits, on the run clock.
    pub(crate) timers: RunTimers,
    pub(crate) limiter: GuestLimiter,
    pub(crate) run: RunState,
}

impl HostState {
    /// A sandbox for one run. WASI is present only because Rust's standard library imports it:
    /// no preopened directories, no environment, no arguments, no sockets, and its clocks are the
    /// run clock (virtual in simulation), so a guest sees no more of the host than its grants.
    pub(crate) fn new(run: RunState, limiter: GuestLimiter, stderr: MemoryOutputPipe) -> Self {
        let clock = run.executors.clock.clone();
        let timers = RunTimers::new(clock.clone(), run.deadline_at);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(MemoryOutputPipe::new(GUEST_OUTPUT_BYTES))
            .stderr(stderr)
            .wall_clock(RunWallClock(clock.clone()))
            .monotonic_clock(RunMonotonicClock {
                clock: clock.clone(),
                origin: clock.now_millis(),
            })
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        if clock.is_virtual() {
            // Dry-runs are deterministic, down to the guest's random numbers.
            wasi.secure_random(wasmtime_wasi::Deterministic::new(vec![7; 32]))
                .insecure_random(wasmtime_wasi::Deterministic::new(vec![11; 32]))
                .insecure_random_seed(0x0067_7261_6365);
        }
        HostState {
            wasi: wasi.build(),
            table: {
                // Every WASI handle a guest holds (timers, streams) is an entry here, in host
                // memory: wasmtime's default allows a million. A guest needs a handful.
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_GUEST_RESOURCES);
                table
            },
            timers,
            limiter,
            run,
        }
    }
}

impl HostState {
    /// The table of the guest's resources (WASI's and GRACE's).
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// WASI's wall clock, reading the run clock.
struct RunWallClock(Arc<dyn Clock>);

impl wasmtime_wasi::HostWallClock for RunWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.now_millis())
    }
}

/// WASI's monotonic clock: nanoseconds since the run started, on the run clock. The engine links
/// its own `monotonic-clock` over wasmtime-wasi's (see `wasi_clock`), whose waits also follow the
/// run clock; this one stays for anything else in wasmtime-wasi that reads the clock.
struct RunMonotonicClock {
    clock: Arc<dyn Clock>,
    origin: u64,
}

impl wasmtime_wasi::HostMonotonicClock for RunMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        self.clock
            .now_millis()
            .saturating_sub(self.origin)
            .saturating_mul(1_000_000)
    }
}
