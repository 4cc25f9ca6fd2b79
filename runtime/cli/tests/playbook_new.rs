//! `grace playbook new` writes a crate that is its example with only its name changed, that
//! builds for wasm32-wasip2 outside the repository, and that dry-runs on its sample event.
//!
//! The build tests compile each generated crate as a user would, except for where the SDK comes
//! from: the crate depends on the repository at its release tag, and the test patches that git
//! dependency to this checkout's `sdk/` and builds offline (`--config patch…`, `--offline`).
//! Cargo resolves a patched git dependency offline only from a lock file, so the lock is made
//! first with the dependency pointing at the checkout. The four builds share one target
//! directory, so the SDK and its dependencies compile once.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn example(name: &str) -> PathBuf {
    repo().join("playbooks/examples").join(name)
}

fn grace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grace"))
        .args(args)
        .env_remove("GRACE_SERVER")
        .env_remove("GRACE_DATA_DIR")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `grace playbook new NAME --dir <tmp>/NAME` with `args`; the crate's directory.
fn generate(tmp: &Path, name: &str, args: &[&str]) -> PathBuf {
    let dir = tmp.join(name);
    let mut all = vec!["playbook", "new", name, "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = grace(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (template, its example, its sample event in the example, extra arguments)
const TEMPLATES: [(&str, &str, &str, &[&str]); 5] = [
    ("scale", "scale-on-latency", "event.json", &[]),
    ("restart", "restart-unhealthy-container", "event.json", &[]),
    ("k8s", "k8s-scale-deployment", "event.json", &[]),
    ("alert", "scale-on-latency", "alert-event.json", &[]),
    (
        "latency",
        "latency-collector",
        "event.json",
        &["--kind", "collector"],
    ),
];

#[test]
fn each_template_is_its_example_with_only_its_name_and_component_path_changed() {
    let tmp = tempfile::tempdir().unwrap();
    for (template, example_name, sample, extra) in TEMPLATES {
        let mut args = vec!["--template", template];
        args.extend_from_slice(extra);
        let dir = generate(tmp.path(), "my-thing", &args);
        let ex = example(example_name);

        assert_eq!(
            read(&dir.join("src/lib.rs")),
            read(&ex.join("src/lib.rs")).replace(&format!("`{example_name}`"), "`my-thing`"),
            "{template}: src/lib.rs"
        );
        let ours = read(&dir.join("playbook.toml"));
        let theirs = read(&ex.join("playbook.toml"));
        assert_eq!(ours.lines().count(), theirs.lines().count(), "{template}");
        for (a, b) in ours.lines().zip(theirs.lines()) {
            if a != b {
                assert!(
                    (a == "name = \"my-thing\"" && b.starts_with("name = "))
                        || (a == "component = \"target/wasm32-wasip2/release/my_thing.wasm\""
                            && b.starts_with("component = ")),
                    "{template}: playbook.toml differs from the example's beyond name and component: `{a}` / `{b}`"
                );
            }
        }
        let event = ex.join(sample);
        if event.exists() {
            assert_eq!(read(&dir.join("event.json")), read(&event), "{template}");
        } else {
            assert!(!dir.join("event.json").exists(), "{template}");
        }

        // The examples' release profile, and the SDK from the release tag.
        let cargo: toml::Table = read(&dir.join("Cargo.toml")).parse().unwrap();
        let playbooks: toml::Table = read(&repo().join("playbooks/Cargo.toml")).parse().unwrap();
        assert_eq!(
            cargo["profile"]["release"], playbooks["profile"]["release"],
            "{template}"
        );
        assert_eq!(cargo["package"]["name"].as_str(), Some("my-thing"));
        let sdk = &cargo["dependencies"]["grace-sdk"];
        assert_eq!(sdk["git"].as_str(), Some(REPOSITORY), "{template}");
        assert_eq!(
            sdk["tag"].as_str(),
            Some(format!("v{}", env!("CARGO_PKG_VERSION")).as_str()),
            "{template}"
        );
        let readme = read(&dir.join("README.md"));
        assert!(
            readme.contains("cargo build --release --target wasm32-wasip2")
                && readme.contains("grace run . ")
                && readme.contains("--dry-run"),
            "{template}: {readme}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn an_existing_directory_that_is_not_empty_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let out = grace(&["playbook", "new", "taken", "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("`{}` exists and is not empty", dir.display())),
        "{}",
        text(&out)
    );
    assert_eq!(read(&dir.join("notes.txt")), "mine");
    assert!(!dir.join("Cargo.toml").exists());

    // An empty one is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = grace(&["playbook", "new", "empty", "--dir", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_name_that_is_not_a_playbook_and_crate_name_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, problem) in [
        ("Scale_Up", "is not a playbook name"),
        ("9lives", "is not a playbook name"),
        ("ends-", "is not a playbook name"),
        ("fn", "it is a Rust keyword or a reserved crate name"),
        ("grace-sdk", "it is a Rust keyword or a reserved crate name"),
    ] {
        let dir = tmp.path().join("x");
        let out = grace(&["playbook", "new", name, "--dir", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("NAME `{name}`")) && text(&out).contains(problem),
            "{name}: {}",
            text(&out)
        );
        assert!(!dir.exists(), "{name}");
    }
}

#[test]
fn a_template_of_the_other_kind_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x");
    let out = grace(&[
        "playbook",
        "new",
        "x",
        "--kind",
        "collector",
        "--template",
        "scale",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("`scale` makes a playbook, not a collector (pass --kind playbook)"),
        "{}",
        text(&out)
    );
}

/// Builds the crate in `dir` for wasm32-wasip2 against this checkout's SDK, offline, and puts
/// the component where its manifest says.
fn build(dir: &Path, name: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("playbook-new");
    let manifest = read(&dir.join("Cargo.toml"));
    let git = format!(
        "grace-sdk = {{ git = \"{REPOSITORY}\", tag = \"v{}\" }}",
        env!("CARGO_PKG_VERSION")
    );
    assert!(manifest.contains(&git), "{manifest}");
    let sdk = repo().join("sdk");
    // The lock, resolved with the dependency on the checkout (offline: from the local cache).
    std::fs::write(
        dir.join("Cargo.toml"),
        manifest.replace(
            &git,
            &format!("grace-sdk = {{ path = \"{}\" }}", sdk.display()),
        ),
    )
    .unwrap();
    let out = Command::new(&cargo)
        .args(["generate-lockfile", "--offline"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(dir.join("Cargo.toml"), &manifest).unwrap();

    let out = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--offline",
            "--config",
        ])
        .arg(format!(
            "patch.\"{REPOSITORY}\".grace-sdk.path=\"{}\"",
            sdk.display()
        ))
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_NET_OFFLINE", "true")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo build: {}", text(&out));
    let file = format!("{}.wasm", name.replace('-', "_"));
    let built = target.join("wasm32-wasip2/release").join(&file);
    let expected = dir.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&expected).unwrap();
    std::fs::copy(&built, expected.join(&file)).unwrap();
}

/// Generates `template` as `name`, builds it, and dry-runs it on its sample event (none for a
/// collector); the run's JSON report.
fn build_and_dry_run(template: &str, name: &str, extra: &[&str]) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["--template", template];
    args.extend_from_slice(extra);
    let dir = generate(tmp.path(), name, &args);
    build(&dir, name);
    let data = tmp.path().join("data");
    let mut run = vec!["run", dir.to_str().unwrap()];
    let event = dir.join("event.json");
    if event.exists() {
        run.extend(["--event", event.to_str().unwrap()]);
    }
    run.extend(["--dry-run", "--json", "--data-dir", data.to_str().unwrap()]);
    let out = grace(&run);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["run"]["status"], "succeeded", "{report}");
    assert_eq!(report["run"]["guest"]["name"], name, "{report}");
    report
}

fn actions(report: &Value) -> Vec<String> {
    report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}.{}",
                a["interface"].as_str().unwrap_or_default(),
                a["function"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn a_new_scale_playbook_builds_and_scales_the_group_in_a_dry_run() {
    let report = build_and_dry_run("scale", "my-scaler", &[]);
    assert_eq!(
        actions(&report),
        ["scaling.set-desired-capacity"],
        "{report}"
    );
}

#[test]
fn a_new_alert_playbook_builds_and_scales_the_group_on_its_alert_in_a_dry_run() {
    let report = build_and_dry_run("alert", "my-alert-scaler", &[]);
    assert_eq!(
        actions(&report),
        ["scaling.set-desired-capacity"],
        "{report}"
    );
}

#[test]
fn a_new_restart_playbook_builds_and_restarts_containers_in_a_dry_run() {
    let report = build_and_dry_run("restart", "my-restarter", &[]);
    let actions = actions(&report);
    assert!(!actions.is_empty(), "{report}");
    assert!(
        actions.iter().all(|a| a == "containers.restart"),
        "{report}"
    );
}

#[test]
fn a_new_k8s_playbook_builds_and_scales_the_deployment_in_a_dry_run() {
    let report = build_and_dry_run("k8s", "my-k8s-scaler", &[]);
    assert_eq!(
        actions(&report),
        ["kubernetes.scale-deployment"],
        "{report}"
    );
    let checkout = &report["fleet"]["after"]["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "checkout")
        .unwrap()["replicas"];
    assert_eq!(checkout, 4, "{report}");
}

#[test]
fn a_new_collector_builds_and_emits_its_events_in_a_dry_run() {
    let report = build_and_dry_run("latency", "my-collector", &["--kind", "collector"]);
    assert!(report.to_string().contains("metrics.latency"), "{report}");
}
