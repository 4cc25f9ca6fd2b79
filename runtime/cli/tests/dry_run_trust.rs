//! Dry runs tell the truth about the trust core: `grace run --dry-run` and `grace replay` decide
//! every call with the trust core `grace serve` runs (policies from `--policies` or the data
//! directory, `[trust]` from `--config`) and say, change by change, what it would decide.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod common;

use common::{Server, dry_run, grace, path, stdout};
use grace_testkit::{example, playbooks_dir};
use serde_json::Value;

/// Forbids `containers.logs` everywhere.
const NO_LOGS: &str = "@id(\"no-container-logs\")\n\
    forbid (principal, action == Grace::Action::\"containers::Logs\", resource);\n";

/// The demo's policies and `grace.toml` (`playbooks/trust`).
fn demo_trust(name: &str) -> PathBuf {
    playbooks_dir().join("trust").join(name)
}

/// The baseline and the forbid of `containers.logs`, as files in `dir`.
fn no_logs_files(dir: &Path) -> (PathBuf, PathBuf) {
    let base = dir.join("base.cedar");
    std::fs::write(&base, grace_trust::BASELINE).unwrap();
    let nologs = dir.join("nologs.cedar");
    std::fs::write(&nologs, NO_LOGS).unwrap();
    (base, nologs)
}

#[test]
fn a_dry_run_shows_a_change_that_would_wait_for_approval_by_two_naming_the_policy() {
    let data = tempfile::tempdir().unwrap();
    let (base, production, config) = (
        demo_trust("base.cedar"),
        demo_trust("production.cedar"),
        demo_trust("grace.toml"),
    );
    let args = [
        "--policies",
        path(&base),
        "--policies",
        path(&production),
        "--config",
        path(&config),
    ];
    let out = dry_run("scale-on-latency", data.path(), &args);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the run does not succeed: {text}"
    );
    assert!(text.contains("waiting-approval"), "{text}");
    assert!(
        text.contains(
            "would wait for approval by 2 (policy `production/two-person-prod-capacity`)"
        ),
        "{text}"
    );
    assert!(
        text.contains("policies from --policies (base, production)"),
        "{text}"
    );

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = dry_run("scale-on-latency", data.path(), &json_args);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let decision = &report["trust"]["decisions"][0];
    assert_eq!(decision["call"], "scaling.set-desired-capacity", "{report}");
    assert_eq!(decision["outcome"], "would-wait-for-approval");
    assert_eq!(decision["approvers"], 2);
    assert_eq!(
        decision["policies"][0],
        "production/two-person-prod-capacity"
    );
    assert_eq!(report["trust"]["source"]["origin"], "files");
    assert_eq!(
        report["fleet"]["after"]["groups"][0]["desired_capacity"], 3,
        "nothing changed while it waits"
    );
}

#[test]
fn a_dry_run_shows_a_forbid_policy_refusing_container_logs_and_the_playbook_going_on() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let (base, nologs) = no_logs_files(files.path());
    let out = dry_run(
        "restart-unhealthy-container",
        data.path(),
        &["--policies", path(&base), "--policies", path(&nologs)],
    );
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "the playbook goes on without the logs: {text}"
    );
    assert!(
        text.contains("containers.logs")
            && text.contains("denied by policy `nologs/no-container-logs`"),
        "{text}"
    );
    assert!(text.contains("restarted web-1"), "{text}");
}

#[test]
fn a_dry_run_reads_the_policies_a_server_stored_in_its_data_directory() {
    let data = tempfile::tempdir().unwrap();
    {
        let path = data.path().join("grace.redb");
        let db = grace_ledger::Database::create(path, grace_ledger::Recovery::Quick).unwrap();
        let store = grace_trust::PolicyStore::open(Arc::new(db)).unwrap();
        store.add("base", grace_trust::BASELINE, "admin").unwrap();
        store.add("nologs", NO_LOGS, "admin").unwrap();
    }
    let out = dry_run("restart-unhealthy-container", data.path(), &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("policies stored in the data directory (base, nologs)"),
        "{text}"
    );
    assert!(
        text.contains("denied by policy `nologs/no-container-logs`"),
        "{text}"
    );
}

/// Stores the baseline and the forbid of `containers.logs` in `data`'s database, as
/// `grace policy add` would, and closes it.
fn store_no_logs(data: &Path) {
    let path = data.join("grace.redb");
    let db = grace_ledger::Database::create(path, grace_ledger::Recovery::Quick).unwrap();
    let store = grace_trust::PolicyStore::open(Arc::new(db)).unwrap();
    store.add("base", grace_trust::BASELINE, "admin").unwrap();
    store.add("nologs", NO_LOGS, "admin").unwrap();
}

/// `grace replay` of the latency incident on `scale-on-latency`, with the policies stored in
/// `data`, as JSON. (A replay, like `grace run --dry-run`, records its calls in a scratch
/// ledger.)
fn replay_with_stored_policies(data: &Path) -> Value {
    let incident = playbooks_dir().join("incidents/latency-incident.json");
    let playbook = example("scale-on-latency");
    let out = grace(&[
        "replay",
        path(&incident),
        "--dry-run",
        "--playbook",
        path(&playbook),
        "--data-dir",
        path(data),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_replay_reading_the_stored_policies_leaves_the_database_byte_for_byte_unchanged() {
    let data = tempfile::tempdir().unwrap();
    store_no_logs(data.path());
    let database = data.path().join("grace.redb");
    let before = std::fs::read(&database).unwrap();
    let report = replay_with_stored_policies(data.path());
    assert_eq!(report["trust"]["source"]["origin"], "data-dir", "{report}");
    assert_eq!(report["trust"]["source"]["sets"][1], "nologs", "{report}");
    assert!(
        std::fs::read(&database).unwrap() == before,
        "the dry run wrote to the server's database"
    );
}

#[test]
fn a_replay_reads_the_stored_policies_while_a_server_holds_the_data_directory() {
    let data = tempfile::tempdir().unwrap();
    // `grace init` makes the server's credentials (and its database) before the policies go in.
    common::credentials(data.path());
    store_no_logs(data.path());
    let _server = Server::start(data.path(), &[]);
    let report = replay_with_stored_policies(data.path());
    assert_eq!(report["trust"]["source"]["origin"], "data-dir", "{report}");
    assert_eq!(report["trust"]["source"]["sets"][0], "base", "{report}");
    assert_eq!(report["trust"]["source"]["sets"][1], "nologs", "{report}");
}

#[test]
fn a_dry_run_with_no_policies_allows_what_the_grants_allow_and_shows_the_risk() {
    let data = tempfile::tempdir().unwrap();
    let out = dry_run("scale-on-latency", data.path(), &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("outcome  succeeded (changed)"), "{text}");
    assert!(text.contains("desired 5  in service 5/5"), "{text}");
    assert!(text.contains("trust    no policies loaded"), "{text}");
    assert!(text.contains("allowed, risk "), "{text}");
}

#[test]
fn a_replay_shows_what_the_trust_core_would_decide() {
    let data = tempfile::tempdir().unwrap();
    let incident = playbooks_dir().join("incidents/latency-incident.json");
    let playbook = example("scale-on-latency");
    let (base, production, config) = (
        demo_trust("base.cedar"),
        demo_trust("production.cedar"),
        demo_trust("grace.toml"),
    );
    let args = [
        "replay",
        path(&incident),
        "--dry-run",
        "--playbook",
        path(&playbook),
        "--data-dir",
        path(data.path()),
        "--policies",
        path(&base),
        "--policies",
        path(&production),
        "--config",
        path(&config),
    ];
    let out = grace(&args);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("FIRED -> run waiting-approval"), "{text}");
    assert!(
        text.contains(
            "would wait for approval by 2 (policy `production/two-person-prod-capacity`)"
        ),
        "{text}"
    );

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = grace(&json_args);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = report["trust"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{report}");
    assert_eq!(runs[0]["playbook"], "scale-on-latency");
    assert_eq!(
        runs[0]["decisions"][0]["outcome"],
        "would-wait-for-approval"
    );
    assert_eq!(report["trust"]["source"]["sets"][1], "production");
}

#[test]
fn a_dry_run_shows_a_guardrail_of_the_config_denying_a_change() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("grace.toml");
    std::fs::write(
        &config,
        "[trust]\n[[trust.guardrail]]\nname = \"api budget\"\nkind = \"group\"\nmatch = \"api-*\"\nmax_capacity = 4\n",
    )
    .unwrap();
    let out = dry_run(
        "scale-on-latency",
        &data.path().join("data"),
        &["--config", path(&config)],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("scaling.set-desired-capacity desired_capacity=5 group=api-asg  denied by guardrail `api budget`"),
        "{text}"
    );
}
