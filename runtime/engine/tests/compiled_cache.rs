//! The compiled-component cache on disk: a component compiled by one engine is loaded by the
//! next, and a file the cache did not write whole for that component is never loaded.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use grace_engine::{Engine, EngineConfig, RunStatus};

fn engine_caching_in(root: &Path) -> Engine {
    Engine::new(&EngineConfig {
        max_concurrent_runs: 2,
        compiled_cache: Some(root.to_owned()),
        ..EngineConfig::default()
    })
    .unwrap()
}

/// The cache files of an engine's configuration.
fn cached_files(engine: &Engine) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(engine.compiled_cache_dir().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    files.sort();
    files
}

/// Runs `trivial` loaded by `engine`: what was loaded works.
fn trivial_runs(engine: &Engine) {
    let guest = engine.load(&fixture("trivial")).unwrap();
    let world = World::new();
    let report = runtime().block_on(engine.run_playbook(
        &guest,
        &event("test.cache", "api-asg", serde_json::json!({})),
        &world.env,
    ));
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.failure);
}

#[test]
fn a_component_compiled_by_one_engine_is_loaded_from_disk_by_the_next() {
    build_guests();
    let root = tempfile::tempdir().unwrap();
    let first = engine_caching_in(root.path());
    first.load(&fixture("trivial")).unwrap();
    assert_eq!(first.compiled_cache_hits(), 0);
    assert_eq!(cached_files(&first).len(), 1);

    let second = engine_caching_in(root.path());
    trivial_runs(&second);
    assert_eq!(second.compiled_cache_hits(), 1);
}

#[test]
fn a_corrupt_cache_file_is_rejected_and_compiled_again() {
    build_guests();
    let root = tempfile::tempdir().unwrap();
    let first = engine_caching_in(root.path());
    first.load(&fixture("trivial")).unwrap();
    let file = cached_files(&first).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let second = engine_caching_in(root.path());
    trivial_runs(&second);
    assert_eq!(
        second.compiled_cache_hits(),
        0,
        "the corrupt file was loaded"
    );
    // Compiled again, and written again whole: the next engine loads it.
    assert_ne!(std::fs::read(&file).unwrap(), bytes);
    let third = engine_caching_in(root.path());
    third.load(&fixture("trivial")).unwrap();
    assert_eq!(third.compiled_cache_hits(), 1);
}

#[test]
fn a_cache_file_compiled_from_another_component_is_not_loaded() {
    build_guests();
    let root = tempfile::tempdir().unwrap();
    let first = engine_caching_in(root.path());
    first.load(&fixture("echo")).unwrap();
    let echo = cached_files(&first).remove(0);
    first.load(&fixture("trivial")).unwrap();
    // `trivial`'s name, `echo`'s compiled code: a whole, valid artifact, for the wrong component.
    let trivial = cached_files(&first)
        .into_iter()
        .find(|p| *p != echo)
        .unwrap();
    std::fs::copy(&echo, &trivial).unwrap();

    let second = engine_caching_in(root.path());
    trivial_runs(&second);
    assert_eq!(second.compiled_cache_hits(), 0);
}

#[test]
fn a_file_that_is_not_a_cache_file_is_not_loaded() {
    build_guests();
    let root = tempfile::tempdir().unwrap();
    let first = engine_caching_in(root.path());
    first.load(&fixture("trivial")).unwrap();
    let file = cached_files(&first).remove(0);
    // wasmtime's own precompiled format, without GRACE's header.
    let wasm = std::fs::read(components_dir().join("trivial.wasm")).unwrap();
    let config = EngineConfig {
        max_concurrent_runs: 2,
        ..EngineConfig::default()
    };
    let raw = wasmtime::Engine::new(&config.wasmtime_config().unwrap()).unwrap();
    let foreign = raw.precompile_component(&wasm).unwrap();
    std::fs::write(&file, foreign).unwrap();

    let second = engine_caching_in(root.path());
    trivial_runs(&second);
    assert_eq!(second.compiled_cache_hits(), 0);
}

#[cfg(unix)]
#[test]
fn a_cache_directory_others_may_write_to_is_not_used() {
    use std::os::unix::fs::PermissionsExt as _;
    build_guests();
    let root = tempfile::tempdir().unwrap();
    let first = engine_caching_in(root.path());
    let dir = first.compiled_cache_dir().unwrap().to_owned();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();

    let second = engine_caching_in(root.path());
    assert_eq!(second.compiled_cache_dir(), None);
    trivial_runs(&second);
}

/// A valid file the cache wrote, moved aside: `(its path, where it now is)`.
#[cfg(unix)]
fn valid_file_moved_aside(first: &Engine, aside: &Path) -> (PathBuf, PathBuf) {
    first.load(&fixture("trivial")).unwrap();
    let file = cached_files(first).remove(0);
    let moved = aside.join("elsewhere.cwasm");
    std::fs::rename(&file, &moved).unwrap();
    (file, moved)
}

#[cfg(unix)]
#[test]
fn a_symlink_in_the_cache_is_not_followed_even_to_a_valid_file() {
    build_guests();
    let root = tempfile::tempdir().unwrap();
    let aside = tempfile::tempdir().unwrap();
    let first = engine_caching_in(root.path());
    // Valid bytes, but reached through a link anyone who could place it chose.
    let (file, moved) = valid_file_moved_aside(&first, aside.path());
    std::os::unix::fs::symlink(&moved, &file).unwrap();

    let second = engine_caching_in(root.path());
    trivial_runs(&second);
    assert_eq!(second.compiled_cache_hits(), 0, "the symlink was followed");
}

#[cfg(unix)]
#[test]
fn a_cache_file_others_may_write_to_is_not_loaded() {
    use std::os::unix::fs::PermissionsExt as _;
    build_guests();
    let root = tempfile::tempdir().unwrap();
    let first = engine_caching_in(root.path());
    first.load(&fixture("trivial")).unwrap();
    let file = cached_files(&first).remove(0);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();

    let second = engine_caching_in(root.path());
    trivial_runs(&second);
    assert_eq!(second.compiled_cache_hits(), 0);
}

/// An engine caching in `root` within `max_bytes`.
fn engine_caching_within(root: &Path, max_bytes: u64) -> Engine {
    Engine::new(&EngineConfig {
        max_concurrent_runs: 2,
        compiled_cache: Some(root.to_owned()),
        compiled_cache_max_bytes: max_bytes,
        ..EngineConfig::default()
    })
    .unwrap()
}

/// The cache file name and size of each of `names`, compiled by an unbounded cache.
fn file_and_size(names: &[&str]) -> Vec<(std::ffi::OsString, u64)> {
    names
        .iter()
        .map(|name| {
            let root = tempfile::tempdir().unwrap();
            let engine = engine_caching_in(root.path());
            engine.load(&fixture(name)).unwrap();
            let file = cached_files(&engine).remove(0);
            (
                file.file_name().unwrap().to_owned(),
                std::fs::metadata(&file).unwrap().len(),
            )
        })
        .collect()
}

fn cached_names(engine: &Engine) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = cached_files(engine)
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn past_its_byte_budget_the_cache_evicts_the_least_recently_used_file() {
    build_guests();
    let sizes = file_and_size(&["trivial", "echo", "group-scaler"]);
    let [(trivial, a), (echo, b), (scaler, c)] = [&sizes[0], &sizes[1], &sizes[2]];
    // Room for any two of the three, not for all three.
    let budget = a + b + c - a.min(b).min(c);
    let root = tempfile::tempdir().unwrap();

    let first = engine_caching_within(root.path(), budget);
    first.load(&fixture("trivial")).unwrap();
    first.load(&fixture("echo")).unwrap();
    let mut both = vec![trivial.clone(), echo.clone()];
    both.sort();
    assert_eq!(cached_names(&first), both);

    // `trivial` is used again (loaded from the cache by the next process): `echo` is now the
    // least recently used, and goes when a third component does not fit. (Files are stamped
    // with the kernel's coarse clock, a few ms per tick: the pauses keep the uses apart.)
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = engine_caching_within(root.path(), budget);
    second.load(&fixture("trivial")).unwrap();
    assert_eq!(second.compiled_cache_hits(), 1);
    std::thread::sleep(std::time::Duration::from_millis(20));
    second.load(&fixture("group-scaler")).unwrap();

    let mut kept = vec![trivial.clone(), scaler.clone()];
    kept.sort();
    assert_eq!(cached_names(&second), kept);
    let total: u64 = cached_files(&second)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(total <= budget, "{total} bytes kept, budget {budget}");
}

#[test]
fn a_component_larger_than_the_whole_budget_is_kept_once_written_not_evicted_at_once() {
    build_guests();
    let root = tempfile::tempdir().unwrap();
    // A budget no compiled component fits: the one just written stays (evicting it would
    // compile it again at every load); older ones go.
    let first = engine_caching_within(root.path(), 1);
    first.load(&fixture("trivial")).unwrap();
    first.load(&fixture("echo")).unwrap();
    assert_eq!(cached_files(&first).len(), 1);
    let second = engine_caching_within(root.path(), 1);
    second.load(&fixture("echo")).unwrap();
    assert_eq!(second.compiled_cache_hits(), 1);
}
