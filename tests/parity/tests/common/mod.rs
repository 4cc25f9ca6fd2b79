//! What every parity test binary starts from: one engine per process, and a tokio runtime
//! driven the way the CLI drives runs.

use std::sync::OnceLock;

use grace_engine::{Engine, EngineConfig};

/// The process's engine (compiling components once for all its tests).
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| Engine::new(&EngineConfig::default()).unwrap())
        .clone()
}

/// A multi-threaded runtime with two workers.
// Not every test binary drives its own runtime.
#[allow(dead_code)]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
