//! Terminal injection: a hostile guest (`playbooks/fixtures/terminal-injector`) writes log lines,
//! an outcome, an error and a panic message full of escape sequences, CR/LF and bidi overrides.
//! Whatever `grace` prints about it, to stdout or stderr (its log included), shows them as
//! visible escapes; `--json` stays exact.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Server, component, data_dir};
use grace_engine::text::is_hidden;
use grace_testkit::{build_guests, fixture};
use serde_json::{Value, json};

/// The raw text the fixture puts into everything it writes (its `HOSTILE` constant).
const HOSTILE: &str = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[8mhidden\x1b[0m\r\nFAKE INFO line\u{202e}txt.exe\u{2066}\u{200b}\u{9b}31m\x7f";

/// How that text must be shown.
const SHOWN: &str = "\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\x1b[8mhidden\\x1b[0m\\r\\nFAKE INFO line\\u{202e}txt.exe\\u{2066}\\u{200b}\\u{9b}31m\\x7f";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails if `out` holds a control or invisible formatting character other than a line break, or
/// a line that the guest forged.
fn assert_no_raw_control(what: &str, out: &str) {
    let raw: Vec<char> = out.chars().filter(|&c| c != '\n' && is_hidden(c)).collect();
    assert!(raw.is_empty(), "{what} holds raw {raw:?}:\n{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("FAKE INFO line")),
        "{what} holds a forged line:\n{out}"
    );
}

/// `grace -v run terminal-injector --dry-run` on an event with `payload`.
fn dry_run(data: &Path, payload: Value) -> Output {
    build_guests();
    let event = data.join("event.json");
    std::fs::write(
        &event,
        json!({ "event_type": "test.hostile", "source": "test", "actor": "tests", "resource": "r", "payload": payload, "timestamp": 1_767_225_900_000u64 }).to_string(),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_grace"))
        .arg("-v")
        .arg("run")
        .arg(fixture("terminal-injector"))
        .arg("--event")
        .arg(&event)
        .arg("--dry-run")
        .arg("--data-dir")
        .arg(data)
        .env_remove("GRACE_DATA_DIR")
        .env_remove("GRACE_LOG")
        .output()
        .unwrap()
}

#[test]
fn hostile_guest_outcome_and_log_lines_are_escaped_in_a_dry_run() {
    let data = data_dir();
    let out = dry_run(data.path(), json!({}));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_no_raw_control("stdout", &stdout);
    assert_no_raw_control("stderr", &stderr);
    assert!(
        stdout.contains(&format!("outcome  succeeded (unchanged): outcome {SHOWN}")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{SHOWN} = {SHOWN}")), "{stdout}");
    // The guest's log lines, in the timeline and in the log on stderr.
    assert!(stdout.contains("log \\x1b[2J"), "{stdout}");
    assert!(stderr.contains(&format!("log {SHOWN}")), "{stderr}");
    assert!(stderr.contains("\\nFAKE INFO line"), "{stderr}");
}

#[test]
fn hostile_guest_error_is_escaped_in_a_dry_run() {
    let data = data_dir();
    let out = dry_run(data.path(), json!({ "fail": true }));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_no_raw_control("stdout", &stdout);
    assert_no_raw_control("stderr", &stderr);
    assert!(
        stdout.contains(&format!("(guest-error): error {SHOWN}")),
        "{stdout}"
    );
}

#[test]
fn hostile_guest_panic_message_is_escaped_in_a_dry_run() {
    let data = data_dir();
    let out = dry_run(data.path(), json!({ "panic": true }));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_no_raw_control("stdout", &stdout);
    assert_no_raw_control("stderr", &stderr);
    assert!(stdout.contains("(panic): the guest panicked"), "{stdout}");
    assert!(stdout.contains("panic \\x1b[2J"), "{stdout}");
}

#[test]
fn hostile_guest_text_is_escaped_by_runs_show_runs_list_and_ledger_show() {
    let data = data_dir();
    let mut server = Server::start(data.path(), &[]);
    let manifest =
        std::fs::read_to_string(fixture("terminal-injector").join("playbook.toml")).unwrap();
    let (status, body) = server.upload(&manifest, component("terminal_injector"));
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.post(
        "/v1/events",
        json!([{ "event_type": "test.hostile", "source": "test", "actor": "tests", "resource": "r", "payload": { "fail": true }, "timestamp": 1_767_225_900_000u64 }]),
    );
    assert_eq!(status, 202, "{body}");
    let run = grace_testkit::poll_until(
        "the hostile run",
        std::time::Duration::from_secs(60),
        || server.runs_of("terminal-injector").first().cloned(),
    );
    let run_id = run["id"].as_str().unwrap().to_owned();
    server.wait_state(&run_id, &["failed"]);

    for args in [vec!["runs", "show", run_id.as_str()], vec!["runs", "list"]] {
        let out = server.grace().args(&args).output().unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
        assert_no_raw_control(&format!("{args:?} stdout"), &stdout);
        assert_no_raw_control(&format!("{args:?} stderr"), &stderr);
        assert!(stdout.contains("error \\x1b[2J"), "{args:?}: {stdout}");
    }

    // `--json` is exact: the error comes back as the guest wrote it, in JSON's own escapes.
    let out = server
        .grace()
        .args(["runs", "show", &run_id, "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        shown["failure"]["message"],
        format!("error {HOSTILE}"),
        "{shown}"
    );

    server.kill9();
    let out = Command::new(env!("CARGO_BIN_EXE_grace"))
        .args(["ledger", "show", "--run", &run_id, "--data-dir"])
        .arg(data.path())
        .env_remove("GRACE_DATA_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_no_raw_control("ledger show stdout", &stdout);
    assert_no_raw_control("ledger show stderr", &stderr);
    assert!(stdout.contains("log.log"), "{stdout}");
    assert!(stdout.contains("\\x1b[2J"), "{stdout}");
}
