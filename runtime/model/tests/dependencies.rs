//! The crate graph points one way: the vocabulary and the trigger matcher build no runtime.
//! These tests ask cargo itself (`cargo tree`), so a dependency added anywhere below either
//! crate, directly or through another crate, fails them.

use std::process::Command;

/// The packages `package` builds (normal dependencies, itself included), by name.
fn dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo tree: {e}"));
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn assert_builds_none_of(package: &str, forbidden: &[&str]) {
    let deps = dependencies(package);
    assert!(
        deps.iter().any(|d| d == package),
        "{package} not in its own tree: {deps:?}"
    );
    let found: Vec<&String> = deps
        .iter()
        .filter(|d| forbidden.iter().any(|f| d.starts_with(f)))
        .collect();
    assert!(found.is_empty(), "{package} builds {found:?}");
}

#[test]
fn the_vocabulary_builds_no_runtime() {
    assert_builds_none_of(
        "grace-model",
        &["wasmtime", "cranelift", "cedar", "redb", "tokio"],
    );
}

#[test]
fn the_trigger_matcher_builds_no_wasm_runtime_and_no_cedar() {
    assert_builds_none_of("grace-mesh", &["wasmtime", "cranelift", "cedar"]);
}

#[test]
fn the_engine_knows_no_cedar() {
    assert_builds_none_of("grace-engine", &["cedar"]);
}

#[test]
fn the_cluster_layer_knows_no_wasm_runtime_cedar_or_redb() {
    // It speaks to the engine (NATS) only: the server plugs it into runs and stores.
    assert_builds_none_of("grace-cluster", &["wasmtime", "cranelift", "cedar", "redb"]);
}
