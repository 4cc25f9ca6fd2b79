//! Bad guests are refused at load time with errors that say what is wrong.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use grace_engine::{Kind, LoadError, Manifest};

fn manifest(kind: &str) -> Manifest {
    Manifest::parse(&format!(
        "manifest_version = 1\nname = \"t\"\nversion = \"1.0.0\"\nkind = \"{kind}\"\ncomponent = \"t.wasm\"\n"
    ))
    .unwrap()
}

fn built(name: &str) -> Vec<u8> {
    build_guests();
    std::fs::read(components_dir().join(format!("{name}.wasm"))).unwrap()
}

#[test]
fn garbage_bytes_are_not_wasm() {
    let err = engine()
        .guest(manifest("playbook"), b"definitely not wasm", "upload")
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::NotWasm { .. }), "{err}");
    assert_eq!(err.to_string(), "upload is not a WebAssembly file");
}

#[test]
fn a_core_module_is_not_a_component() {
    // The smallest valid core module: magic and version 1.
    let err = engine()
        .guest(manifest("playbook"), b"\0asm\x01\0\0\0", "core.wasm")
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"));
}

#[test]
fn a_truncated_component_does_not_compile() {
    let mut bytes = built("trivial");
    bytes.truncate(bytes.len() / 2);
    let err = engine()
        .guest(manifest("playbook"), &bytes, "half.wasm")
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Compile { .. }), "{err}");
}

#[test]
fn a_collector_component_is_not_a_playbook() {
    let bytes = built("latency_collector");
    let err = engine()
        .guest(manifest("playbook"), &bytes, "c.wasm")
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            LoadError::WrongWorld {
                kind: Kind::Playbook,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("run"), "{err}");
}

#[test]
fn a_playbook_component_is_not_a_collector() {
    let bytes = built("trivial");
    let err = engine()
        .guest(manifest("collector"), &bytes, "p.wasm")
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            LoadError::WrongWorld {
                kind: Kind::Collector,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_same_component_is_compiled_once() {
    let bytes = built("trivial");
    let a = engine().guest(manifest("playbook"), &bytes, "a").unwrap();
    let b = engine().guest(manifest("playbook"), &bytes, "b").unwrap();
    assert_eq!(a.component.digest(), b.component.digest());
    assert!(a.component.digest().starts_with("sha256:"));
}

#[test]
fn a_manifest_pointing_at_a_missing_component_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("playbook.toml"),
        "manifest_version = 1\nname = \"t\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"missing.wasm\"\n",
    )
    .unwrap();
    let err = engine().load(dir.path()).err().unwrap();
    assert!(matches!(err, LoadError::ReadComponent { .. }), "{err}");
    assert!(err.to_string().contains("just build-playbooks"), "{err}");
}

#[test]
fn a_directory_without_a_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = engine().load(dir.path()).err().unwrap();
    assert!(matches!(err, LoadError::NoManifest(_)), "{err}");
}

#[test]
fn every_example_and_fixture_manifest_is_valid() {
    for group in ["examples", "fixtures"] {
        for entry in std::fs::read_dir(playbooks_dir().join(group)).unwrap() {
            let path = entry.unwrap().path().join("playbook.toml");
            if path.exists() {
                Manifest::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
}
