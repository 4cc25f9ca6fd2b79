//! `grace serve`'s settings in layers: a flag beats its `GRACE_*` variable, which beats
//! `grace.toml`, which beats the default (docs/configuration.md). One test per layer.
//!
//! Each test gives a layer a value the server refuses, different per layer, and reads which
//! one the refusal names: the check runs before anything is opened or bound, so no server
//! starts.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

/// `grace serve` in `dir` (so no stray `grace.toml` is read), with none of the caller's
/// `GRACE_*` variables.
fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grace"));
    command.current_dir(dir).arg("serve").args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GRACE_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied()).output().unwrap()
}

/// The refusal, after checking it is one (exit 2).
fn refusal(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

/// A directory holding a `grace.toml` with `text`.
fn with_file(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("grace.toml"), text).unwrap();
    dir
}

const FILE: &str = "prometheus = \"ftp://from-file\"\n";

#[test]
fn grace_toml_beats_the_defaults() {
    let dir = with_file("queue_capacity = 0\n");
    let e = refusal(&serve(dir.path(), &["--simulate"], &[]));
    assert!(e.contains("queue_capacity: must be within"), "{e}");
}

#[test]
fn an_environment_variable_beats_grace_toml() {
    let dir = with_file(FILE);
    let e = refusal(&serve(
        dir.path(),
        &["--simulate"],
        &[("GRACE_PROMETHEUS", "ftp://from-env")],
    ));
    assert!(e.contains("prometheus: `ftp://from-env`"), "{e}");
}

#[test]
fn a_flag_beats_its_environment_variable() {
    let dir = with_file(FILE);
    let e = refusal(&serve(
        dir.path(),
        &["--simulate", "--prometheus", "ftp://from-flag"],
        &[("GRACE_PROMETHEUS", "ftp://from-env")],
    ));
    assert!(e.contains("prometheus: `ftp://from-flag`"), "{e}");
}

#[test]
fn a_named_file_is_read_instead_of_grace_toml_and_must_exist() {
    let dir = with_file(FILE);
    std::fs::write(dir.path().join("other.toml"), "queue_capacity = 0\n").unwrap();
    let e = refusal(&serve(dir.path(), &["--config", "other.toml"], &[]));
    assert!(e.contains("queue_capacity"), "{e}");
    let e = refusal(&serve(dir.path(), &[], &[("GRACE_CONFIG", "missing.toml")]));
    assert!(e.contains("cannot read `missing.toml`"), "{e}");
}

#[test]
fn an_unknown_key_is_refused_naming_the_key_and_the_file() {
    let dir = with_file("[limits]\nmax_log_byts = 1\n");
    let e = refusal(&serve(dir.path(), &["--simulate"], &[]));
    assert!(
        e.contains("`grace.toml` is not a valid configuration")
            && e.contains("unknown field `max_log_byts`"),
        "{e}"
    );
}

#[test]
fn a_duration_flag_reads_90s_5m_or_1h_30m_as_the_file_does() {
    let dir = with_file(FILE);
    for text in ["90s", "5m", "1h 30m"] {
        // Accepted: the refusal is the file's Prometheus URL, checked after the durations.
        let e = refusal(&serve(
            dir.path(),
            &["--simulate", "--header-read-timeout", text],
            &[("GRACE_BODY_READ_TIMEOUT", text)],
        ));
        assert!(e.contains("prometheus: `ftp://from-file`"), "{text}: {e}");
    }
    // Read as a duration, then refused by the setting's own range.
    let e = refusal(&serve(
        dir.path(),
        &["--simulate", "--header-read-timeout", "50ms"],
        &[],
    ));
    assert!(
        e.contains("header_read_timeout: must be at least 100ms"),
        "{e}"
    );
    let e = refusal(&serve(
        dir.path(),
        &["--simulate", "--event-retention", "soon"],
        &[],
    ));
    assert!(e.contains("--event-retention") && e.contains("soon"), "{e}");
}
