//! The `grace` binary, as a user runs it: dry-runs, exit codes, error messages, the ledger.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::cluster::Cluster;
use common::{dry_run, grace, path, stderr, stdout};
use grace_testkit::{build_guests, example, fixture};
use redb::ReadableTable;
use serde_json::Value;

#[test]
fn dry_run_prints_the_timeline_the_action_and_the_fleet() {
    let data = tempfile::tempdir().unwrap();
    let out = dry_run("scale-on-latency", data.path(), &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("scaling.set-desired-capacity"), "{text}");
    assert!(text.contains("<- action"), "{text}");
    assert!(text.contains("outcome  succeeded (changed)"), "{text}");
    assert!(text.contains("desired 5  in service 5/5"), "{text}");
}

#[test]
fn dry_run_json_lists_the_actions_and_the_final_fleet() {
    let data = tempfile::tempdir().unwrap();
    let out = dry_run("scale-on-latency", data.path(), &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["mode"], "dry-run");
    assert_eq!(report["run"]["status"], "succeeded");
    let actions = report["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["function"], "set-desired-capacity");
    assert_eq!(actions[0]["args"]["desired_capacity"], 5);
    let group = &report["fleet"]["after"]["groups"][0];
    assert_eq!(group["name"], "api-asg");
    assert_eq!(group["desired_capacity"], 5);
    assert_eq!(
        report["fleet"]["before"]["groups"][0]["desired_capacity"],
        3
    );
}

#[test]
fn the_same_dry_run_twice_gives_the_same_actions_and_fleet() {
    let data = tempfile::tempdir().unwrap();
    let runs: Vec<Value> = (0..2)
        .map(|_| {
            let out = dry_run("scale-on-latency", data.path(), &["--json"]);
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect();
    assert_eq!(runs[0]["actions"].as_array().unwrap().len(), 1);
    let strip = |v: &Value| {
        let mut actions = v["actions"].clone();
        for a in actions.as_array_mut().unwrap() {
            // Both depend on the run, not on what it did: the ledger position and the
            // idempotency key (made from the run's id).
            a.as_object_mut().unwrap().remove("seq");
            a["result"]
                .as_object_mut()
                .unwrap()
                .remove("idempotency_key");
        }
        (actions, v["fleet"].clone(), v["run"]["outcome"].clone())
    };
    assert_eq!(strip(&runs[0]), strip(&runs[1]));
}

#[test]
fn every_example_dry_runs_successfully() {
    let data = tempfile::tempdir().unwrap();
    for name in [
        "scale-on-latency",
        "restart-unhealthy-container",
        "k8s-scale-deployment",
        "rollback-on-latency",
    ] {
        let out = dry_run(name, data.path(), &[]);
        assert!(
            out.status.success(),
            "{name}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
    }
    let collector = example("latency-collector");
    let out = grace(&[
        "run",
        path(&collector),
        "--dry-run",
        "--data-dir",
        path(data.path()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("metrics.latency on `api-service`"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_failed_run_exits_1_and_says_why() {
    let data = tempfile::tempdir().unwrap();
    let event = example("scale-on-latency").join("event.json");
    let out = grace(&[
        "run",
        path(&fixture("ungranted-call")),
        "--event",
        path(&event),
        // Its trigger is `test.*`: run on the example's event anyway.
        "--force",
        "--dry-run",
        "--data-dir",
        path(data.path()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("DENIED"), "{text}");
    assert!(text.contains("`kubernetes` is not granted"), "{text}");
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad_event = dir.path().join("event.json");
    std::fs::write(
        &bad_event,
        r#"{"event_type":"","source":"s","actor":"a","resource":"r"}"#,
    )
    .unwrap();
    let bad_fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &bad_fleet,
        "[[groups]]\nname = \"g\"\nmin_size = 5\nmax_size = 1\n",
    )
    .unwrap();
    let playbook = example("scale-on-latency");
    let good_event = playbook.join("event.json");
    let data_dir = path(data.path());

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "run",
                path(&playbook),
                "--event",
                path(&bad_event),
                "--dry-run",
                "--data-dir",
                data_dir,
            ],
            "event_type",
        ),
        (
            vec![
                "run",
                path(&playbook),
                "--event",
                path(&good_event),
                "--data-dir",
                data_dir,
            ],
            "--dry-run",
        ),
        (
            vec![
                "run",
                path(&playbook),
                "--event",
                path(&good_event),
                "--dry-run",
                "--fleet",
                path(&bad_fleet),
                "--data-dir",
                data_dir,
            ],
            "max_size",
        ),
        (
            vec![
                "run",
                path(dir.path()),
                "--event",
                path(&good_event),
                "--dry-run",
                "--data-dir",
                data_dir,
            ],
            "playbook.toml",
        ),
        (
            vec!["run", path(&playbook), "--dry-run", "--data-dir", data_dir],
            "--event",
        ),
    ];
    for (args, needle) in cases {
        let out = grace(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: expected `{needle}` in: {}",
            stderr(&out)
        );
    }
}

/// A real `grace run` of `k8s-scale-deployment` on the Kubernetes test API server, recorded in
/// `data`'s ledger (a dry run writes nothing into the data directory).
fn real_run(data: &Path) -> Output {
    let cluster = Cluster::start();
    cluster.server.seed_rolled_out("shop", "checkout", 2);
    let config = cluster.config("");
    let playbook = example("k8s-scale-deployment");
    let out = grace(&[
        "run",
        path(&playbook),
        "--event",
        path(&playbook.join("event.json")),
        "--config",
        path(&config),
        "--data-dir",
        path(data),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    out
}

#[test]
fn ledger_show_and_verify_read_what_the_run_recorded() {
    let data = tempfile::tempdir().unwrap();
    real_run(data.path());
    let d = path(data.path());

    let out = grace(&["ledger", "verify", "--data-dir", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ledger ok: 10 entries"),
        "{}",
        stdout(&out)
    );

    let out = grace(&["ledger", "show", "--json", "--data-dir", d]);
    let entries: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        entries.len(),
        10,
        "run start and end, 7 host calls and the intent of the one change"
    );
    assert_eq!(entries[0]["interface"], "run");
    assert_eq!(entries[0]["function"], "started");
    assert!(
        entries
            .iter()
            .any(|e| e["function"] == "scale-deployment" && e["decision"]["verdict"] == "allowed")
    );
}

#[test]
fn ledger_verify_exits_1_naming_a_modified_entry() {
    let data = tempfile::tempdir().unwrap();
    real_run(data.path());
    let file = data.path().join("grace.redb");
    {
        let db = redb::Database::open(&file).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(grace_ledger::tables::ENTRIES).unwrap();
            let mut bytes = table.get(7).unwrap().unwrap().value().to_vec();
            let at = bytes.len() / 2;
            bytes[at] ^= 0x01;
            table.insert(7, bytes.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    let out = grace(&["ledger", "verify", "--data-dir", path(data.path())]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("entry 7"), "{}", stdout(&out));
}

#[test]
fn ledger_commands_without_a_ledger_exit_2() {
    let data = tempfile::tempdir().unwrap();
    let out = grace(&["ledger", "verify", "--data-dir", path(data.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no ledger"), "{}", stderr(&out));
}

/// `grace` with `args` and no server settings from the environment; no guests needed.
fn grace_client(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grace"))
        .args(args)
        .env_remove("GRACE_SERVER")
        .env_remove("GRACE_DATA_DIR")
        .output()
        .expect("grace runs")
}

#[test]
fn client_commands_without_a_server_exit_3_asking_whether_grace_serve_runs() {
    // Port 9 (discard) on loopback: nothing listens there, so the connection is refused.
    let server = "http://127.0.0.1:9";
    for args in [
        vec!["runs", "list", "--server", server],
        vec!["playbook", "list", "--server", server],
        vec!["ledger", "verify", "--server", server],
    ] {
        let out = grace_client(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(
                "cannot reach the GRACE server at http://127.0.0.1:9: is `grace serve` running?"
            ),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn client_commands_refuse_bad_input_before_reaching_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"event_type\":\"a\",\"source\":\"s\",\"actor\":\"x\",\"resource\":\"r\"}\n{\"event_type\":\"a\",\"source\":\"\",\"actor\":\"x\",\"resource\":\"r\"}\n",
    )
    .unwrap();
    let server = "http://127.0.0.1:9";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["events", "publish", path(&events), "--server", server],
            "event 2 (line 2)",
        ),
        (
            vec!["playbook", "upload", path(dir.path()), "--server", server],
            "playbook.toml",
        ),
        (
            vec!["runs", "list", "--server", "localhost:7070"],
            "--server",
        ),
        (vec!["runs", "list", "--state", "done"], "done"),
    ];
    for (args, needle) in cases {
        let out = grace_client(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: expected `{needle}` in: {}",
            stderr(&out)
        );
    }
}

#[test]
fn replay_shows_what_fired_and_what_was_suppressed() {
    let incident = grace_testkit::playbooks_dir().join("incidents/latency-incident.json");
    let playbook = example("scale-on-latency");
    let out = grace(&[
        "replay",
        path(&incident),
        "--dry-run",
        "--playbook",
        path(&playbook),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert_eq!(text.matches("FIRED").count(), 1, "{text}");
    assert!(
        text.contains("action   scaling.set-desired-capacity desired_capacity=5 group=api-asg"),
        "{text}"
    );
    assert!(text.contains("cooling down until"), "{text}");
    assert!(text.contains("1 run(s) fired"), "{text}");

    let out = grace(&[
        "replay",
        path(&incident),
        "--dry-run",
        "--playbook",
        path(&playbook),
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["steps"].as_array().unwrap().len(), 12);
    assert_eq!(report["fleet_after"]["groups"][0]["desired_capacity"], 5);
}

#[test]
fn a_signed_checkpoint_verifies_later_and_a_foreign_one_does_not() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("ledger.key");
    let pubkey = keys.path().join("ledger.key.pub");
    let out = grace(&[
        "keys",
        "generate",
        "--name",
        "grace.test/ledger",
        "--out",
        path(&key),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = grace(&["keys", "generate", "--name", "x", "--out", path(&key)]);
    assert_eq!(again.status.code(), Some(2), "a key is never overwritten");

    real_run(data.path());
    let checkpoint = keys.path().join("checkpoint.txt");
    let d = path(data.path());
    let out = grace(&[
        "ledger",
        "checkpoint",
        "--key",
        path(&key),
        "--out",
        path(&checkpoint),
        "--data-dir",
        d,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("grace.test/ledger\n"),
        "{}",
        stdout(&out)
    );

    // More runs later: the ledger still extends what was signed.
    real_run(data.path());
    let verify = |key: &Path| {
        grace(&[
            "ledger",
            "verify",
            "--checkpoint",
            path(&checkpoint),
            "--key",
            path(key),
            "--data-dir",
            d,
        ])
    };
    let out = verify(&pubkey);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("consistent with the checkpoint"),
        "{}",
        stdout(&out)
    );

    // A checkpoint checked with someone else's key is refused.
    let other = keys.path().join("other.key");
    assert!(
        grace(&[
            "keys",
            "generate",
            "--name",
            "grace.test/ledger",
            "--out",
            path(&other)
        ])
        .status
        .success()
    );
    let out = verify(&keys.path().join("other.key.pub"));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("NOT SIGNED"), "{}", stdout(&out));

    // Every entry has an inclusion proof, checked before it is printed.
    let out = grace(&["ledger", "proof", "3", "--json", "--data-dir", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let proof: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(proof["seq"], 3);
    assert!(!proof["path"].as_array().unwrap().is_empty(), "{proof}");
    let out = grace(&["ledger", "proof", "100000", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn policy_test_explains_the_decision_and_refuses_bad_policies_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    std::fs::write(
        &request,
        r#"{ "principal": { "kind": "playbook", "name": "scale-on-latency" },
             "action": "scaling::SetDesiredCapacity",
             "resource": { "kind": "group", "id": "api-asg", "environment": "prod" },
             "state": { "capacity": 3, "healthy": 3 },
             "change": { "kind": "capacity", "to": 5 },
             "at_millis": 1767225900000 }"#,
    )
    .unwrap();
    let ops = dir.path().join("ops.cedar");
    std::fs::write(
        &ops,
        "@id(\"scale\")\npermit(principal, action in Grace::Action::\"capacity\", resource);\n\n\
         @id(\"big-prod-changes-need-two\")\n@decision(\"require_approval\")\n@approvers(\"2\")\n\
         permit(principal, action in Grace::Action::\"capacity\", resource)\n\
         when { resource.environment == \"prod\" && context.change_percent > 50 };\n",
    )
    .unwrap();
    let test = |extra: &[&str]| {
        let mut args = vec!["policy", "test", "--request", path(&request)];
        args.extend_from_slice(extra);
        grace(&args)
    };

    let out = test(&["--policies", path(&ops)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("require approval by 2 people"), "{text}");
    assert!(text.contains("ops/big-prod-changes-need-two"), "{text}");
    assert!(text.contains("risk 35/100"), "{text}");

    let out = test(&["--policies", path(&ops), "--json"]);
    let decision: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        decision["policies"][0], "ops/big-prod-changes-need-two",
        "{decision}"
    );

    let out = test(&[]);
    assert_eq!(out.status.code(), Some(0), "no policy: the grants decide");

    let bad = dir.path().join("bad.cedar");
    std::fs::write(&bad, "permit(principal, action resource);\n").unwrap();
    let out = test(&["--policies", path(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("line 1, column 26"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_reader_that_went_away_ends_the_command_quietly_with_success() {
    build_guests();
    let data = tempfile::tempdir().unwrap();
    let dir = example("scale-on-latency");
    // stdout is a pipe whose reader is already gone: the first write fails with a broken pipe,
    // as in `grace run … | head -1` once head has its line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_grace"))
        .args([
            "run",
            path(&dir),
            "--event",
            path(&dir.join("event.json")),
            "--dry-run",
            "--data-dir",
            path(data.path()),
        ])
        .env_remove("GRACE_DATA_DIR")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
