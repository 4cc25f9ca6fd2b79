//! The containers capability's boundary against a real engine (Podman's Docker API), through
//! the engine with real guests: what a hostile playbook within its manifest can and cannot do.
//! (The same rules on the simulated fleet: `runtime/engine/tests/containers_boundary.rs`.)
//!
//! Podman is installed by `just test`; without it these tests are skipped, loudly, unless
//! `GRACE_E2E=required`.

#![allow(clippy::unwrap_used)]

mod common;

use common::engine;

use grace_engine::trust::PassThrough;
use std::sync::Arc;
use std::time::Duration;

use grace_engine::{Guest, RunEnv, RunReport, RunStatus, TriggerEvent};
use grace_executor::{ContainerExecutor, Executors, Labels, SystemClock};
use grace_ledger::{Durability, Ledger};
use grace_testkit::podman::{Podman, TEST_IMAGE};
use grace_testkit::{build_guests, fixture};
use serde_json::json;

/// The `container-prober` fixture with `config` as its `[config]` table and `labels` as the
/// labels its grant puts in scope.
fn prober(config: &str, labels: &str) -> Guest {
    build_guests();
    let dir = fixture("container-prober");
    let text = std::fs::read_to_string(dir.join("playbook.toml")).unwrap();
    let text = text
        .replace("[config]\n", &format!("[config]\n{config}\n"))
        .replace("labels = { app = \"web\" }", &format!("labels = {labels}"));
    let manifest = grace_engine::Manifest::parse(&text).unwrap();
    let bytes = std::fs::read(dir.join(&manifest.component)).unwrap();
    engine()
        .guest(manifest, &bytes, "container-prober")
        .unwrap()
}

fn event() -> TriggerEvent {
    TriggerEvent {
        event_type: "test.hostile".into(),
        source: "test".into(),
        actor: "tests".into(),
        resource: "web".into(),
        payload: json!({}),
        timestamp: 1_767_225_900_000,
    }
}

/// What the prober reported for each call, in order.
fn results(report: &RunReport) -> Vec<String> {
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "{:?}\n{}",
        report.failure,
        report.guest_stderr
    );
    let outcome = report.outcome.as_ref().expect("an outcome");
    (0..)
        .map_while(|n| outcome.details.get(&format!("call{n}")).cloned())
        .collect()
}

/// Podman and a grace-docker provider on it, with `names` running, labelled `app=web` and
/// the test's tag.
fn engine_with(test: &str, names: &[&str]) -> Option<(Podman, Arc<grace_docker::Docker>)> {
    let podman = Podman::start(test)?;
    for name in names {
        podman.podman_ok(&[
            "run",
            "-d",
            "--name",
            &format!("{}-{name}", podman.tag()),
            "--label",
            "app=web",
            "--label",
            &podman.test_label(),
            TEST_IMAGE,
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 100000 & wait",
        ]);
    }
    let docker = Arc::new(
        grace_docker::Docker::connect(&grace_docker::DockerSettings {
            host: Some(podman.docker_host()),
            call_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(2),
        })
        .unwrap(),
    );
    Some((podman, docker))
}

#[test]
fn concurrent_scales_of_one_service_never_pass_the_granted_max_replicas() {
    let Some((podman, docker)) = engine_with(
        "concurrent_scales_never_pass_max_replicas",
        &["web-a", "web-b", "web-c"],
    ) else {
        return;
    };
    let tag = podman.tag().to_owned();
    let selector = format!("app=web,grace.test={tag}");
    let guest = prober(
        &format!("scale = \"{selector}\"\nreplicas = 5"),
        &format!("{{ app = \"web\", \"grace.test\" = \"{tag}\" }}"),
    );
    // One host: every run holds a clone of the same executors (and so the same locks).
    let executors = Executors {
        clock: Arc::new(SystemClock),
        containers: grace_executor::Providers::single("docker", docker.clone()),
        ..Executors::none(Arc::new(SystemClock))
    };
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(dir.path().join("grace.redb"), Durability::None).unwrap());
    let env = RunEnv::new(executors, ledger.clone(), Arc::new(PassThrough));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();

    // Four runs at once, each asking for 5 (within the grant) of a service at 3.
    let reports: Vec<RunReport> = rt.block_on(async {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let (guest, env) = (guest.clone(), env.clone());
                tokio::spawn(async move { engine().run_playbook(&guest, &event(), &env).await })
            })
            .collect();
        let mut reports = Vec::new();
        for run in runs {
            reports.push(run.await.unwrap());
        }
        reports
    });

    for report in &reports {
        assert_eq!(results(report), ["ok 5 running"]);
    }
    let selector: Labels = [
        ("app".to_owned(), "web".to_owned()),
        ("grace.test".to_owned(), tag),
    ]
    .into();
    let running = rt
        .block_on(docker.list(&selector))
        .unwrap()
        .into_iter()
        .filter(|c| c.state == grace_executor::containers::ContainerState::Running)
        .count();
    assert_eq!(running, 5, "the service went past the granted max_replicas");
    rt.block_on(ledger.flush()).unwrap();
    ledger.verify().unwrap();
}

#[test]
fn a_restart_by_id_prefix_acts_on_the_checked_container_and_refusals_reveal_nothing() {
    let Some((podman, docker)) =
        engine_with("a_restart_by_id_prefix_acts_on_the_checked", &["web"])
    else {
        return;
    };
    let tag = podman.tag().to_owned();
    let db = format!("{tag}-db");
    podman.podman_ok(&[
        "run",
        "-d",
        "--name",
        &db,
        "--label",
        "app=db",
        "--label",
        &podman.test_label(),
        TEST_IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 100000 & wait",
    ]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let web = rt.block_on(docker.inspect(&format!("{tag}-web"))).unwrap();
    let db_id = rt.block_on(docker.inspect(&db)).unwrap().id;
    let references = [
        web.id[..12].to_owned(),
        db.clone(),
        db_id[..12].to_owned(),
        format!("{tag}-nothing"),
    ];
    let guest = prober(
        &format!("restart = \"{}\"", references.join(",")),
        &format!("{{ app = \"web\", \"grace.test\" = \"{tag}\" }}"),
    );
    let executors = Executors {
        clock: Arc::new(SystemClock),
        containers: grace_executor::Providers::single("docker", docker.clone()),
        ..Executors::none(Arc::new(SystemClock))
    };
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(dir.path().join("grace.redb"), Durability::None).unwrap());
    let report = rt.block_on(engine().run_playbook(
        &guest,
        &event(),
        &RunEnv::new(executors, ledger.clone(), Arc::new(PassThrough)),
    ));

    let results = results(&report);
    assert_eq!(results[0], format!("ok {}", web.id), "acted on the full id");
    for (result, reference) in results[1..].iter().zip(&references[1..]) {
        assert_eq!(
            result,
            &format!(
                "denied: container `{reference}` does not exist or is outside this playbook's grant"
            )
        );
    }
    // The refusal of the db container's id prefix names only the reference given (hex, which
    // may itself hold the letters `db`), never the container's name.
    assert!(
        !results[2].contains(&db),
        "the id's name leaked: {}",
        results[2]
    );
}
