//! Host-side bindings generated from `wit/`, the single source of truth for both sides.
//!
//! Every import is async (providers do I/O; in simulation the clock is virtual) and trappable:
//! host methods return `wasmtime::Result<Result<T, Error>>`, the outer error stopping the guest
//! (exceeded limits, a broken ledger), the inner one a typed WIT error the guest can handle.

#![allow(missing_docs)]

/// The `playbook` world, which imports every capability.
pub mod playbook {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "playbook",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// The `collector` world, sharing the playbook world's interface types.
pub mod collector {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "collector",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "grace:playbook/types": super::playbook::grace::playbook::types,
            "grace:playbook/log": super::playbook::grace::playbook::log,
            "grace:playbook/clock": super::playbook::grace::playbook::clock,
            "grace:playbook/config": super::playbook::grace::playbook::config,
            "grace:playbook/metrics": super::playbook::grace::playbook::metrics,
        },
    });
}

pub use playbook::grace::playbook::{
    anomaly, clock, config, containers, graph, kubernetes, log, metrics, notify, scaling, types,
};
