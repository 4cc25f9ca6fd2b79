//! Test support shared by GRACE's crates.
//!
//! Tests run real guests compiled from `playbooks/` for `wasm32-wasip2`. [`build_guests`] builds
//! them once per test process; cargo's own cache makes every build after the first a no-op, and
//! its lock serializes test processes that build at the same time.

pub mod alertmanager;
pub mod chromium;
pub mod cut_proxy;
pub mod e2e;
pub mod fake_endpoint;
pub mod mesh_exporter;
pub mod moto;
pub mod nats;
pub mod oidc_issuer;
pub mod podman;
pub mod prometheus;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The guest workspace.
pub fn playbooks_dir() -> PathBuf {
    repo_root().join("playbooks")
}

/// Where the built components land.
pub fn components_dir() -> PathBuf {
    playbooks_dir().join("target/wasm32-wasip2/release")
}

/// The directory of a fixture guest.
pub fn fixture(name: &str) -> PathBuf {
    playbooks_dir().join("fixtures").join(name)
}

/// The directory of an example guest.
pub fn example(name: &str) -> PathBuf {
    playbooks_dir().join("examples").join(name)
}

/// An example's `playbook.toml` with some lines replaced: each line starting (after
/// indentation) with a `prefix` of `replace` becomes its whole new line. Panics when the file
/// cannot be read.
pub fn example_manifest(name: &str, replace: &[(&str, &str)]) -> String {
    let path = example(name).join("playbook.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            replace
                .iter()
                .find(|(prefix, _)| l.trim_start().starts_with(prefix))
                .map_or(l, |(_, new)| new)
        })
        .collect();
    lines.join("\n")
}

/// Builds every guest for wasm32-wasip2, once per process. Panics with cargo's output when the
/// build fails: a test cannot mean anything without its guests.
pub fn build_guests() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = playbooks_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--release", "--quiet"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .output();
        match output {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "building the guests in {} failed:\n{}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("cargo could not be started to build the guests: {e}"),
        }
    });
}

/// Polls `check` until it returns `Some`, or panics naming `what` after `timeout`.
///
/// For conditions a test cannot await (another process's state, seen over HTTP): it checks
/// often at first and backs off to 50 ms.
pub fn poll_until<T>(
    what: &str,
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}
