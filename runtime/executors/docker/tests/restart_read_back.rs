//! A container restart whose answer is lost after the engine made it: a proxy in front of
//! Podman's Docker API forwards the request and drops the answer, the call times out, and
//! reading the container back (`reconcile`) compares its id and start time (`State.StartedAt`)
//! with those read just before the restart, both from the engine (no clock of this host is
//! involved), so a retry does not restart it twice, nor restart a container recreated since.
//!
//! Without Podman the tests are skipped, loudly, unless `GRACE_E2E=required`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use grace_docker::{Docker, DockerSettings};
use grace_executor::containers::Change;
use grace_executor::{ContainerExecutor, ExecError, Reconciled};
use grace_testkit::podman::{Podman, TEST_IMAGE};
use grace_testkit::poll_until;
use grace_testkit::proxy::{Proxy, Upstream};

/// Exits at once on SIGTERM, so a restart takes no stop timeout.
const SERVE: &str = "trap 'exit 0' TERM; sleep 100000 & wait";

/// `State.StartedAt` of `name`, as Podman reports it.
fn started_at(podman: &Podman, name: &str) -> String {
    podman
        .podman_ok(&["inspect", "--format", "{{.State.StartedAt}}", name])
        .trim()
        .to_owned()
}

#[tokio::test]
async fn a_restart_made_whose_answer_was_lost_reads_back_as_done_by_its_start_time() {
    let Some(podman) = Podman::start("a_restart_made_whose_answer_was_lost") else {
        return;
    };
    let name = format!("{}-web", podman.tag());
    let label = podman.test_label();
    podman.podman_ok(&[
        "run", "-d", "--name", &name, "--label", &label, TEST_IMAGE, "sh", "-c", SERVE,
    ]);
    let first_start = started_at(&podman, &name);
    let proxy = Proxy::start(Upstream::Unix(podman.socket()));
    let docker = Docker::connect(&DockerSettings {
        host: Some(format!(
            "tcp://{}",
            proxy.url().trim_start_matches("http://")
        )),
        call_timeout: Duration::from_secs(5),
        stop_timeout: Duration::from_secs(2),
    })
    .unwrap();
    let restart = format!("/containers/{name}/restart");

    let before = docker.inspect(&name).await.unwrap();
    let change = Change::Restart {
        id: before.id.clone(),
        container_id: before.id.clone(),
        started_at: before.started_at.clone(),
    };
    assert_eq!(
        docker.reconcile(&change).await.unwrap(),
        Reconciled::NotApplied,
        "not restarted since it was decided"
    );
    proxy.lose_answer_after(&restart);
    let lost = docker.restart(&name).await.unwrap_err();
    assert!(matches!(lost, ExecError::TimedOut(_)), "{lost:?}");
    assert_eq!(proxy.count(&restart), 1);
    let second_start = poll_until("the engine to restart it", Duration::from_secs(60), || {
        let now = started_at(&podman, &name);
        (now != first_start).then_some(now)
    });

    let read = docker.reconcile(&change).await.unwrap();
    let Reconciled::Done(container) = read else {
        panic!("expected done, got {read:?}")
    };
    assert_eq!(container.name, name);
    assert_eq!(proxy.count(&restart), 1, "reading back restarted nothing");
    assert_eq!(started_at(&podman, &name), second_start);

    // A restart decided after that start is not taken for done.
    let later = Change::Restart {
        id: container.id.clone(),
        container_id: container.id.clone(),
        started_at: container.started_at.clone(),
    };
    assert_eq!(
        docker.reconcile(&later).await.unwrap(),
        Reconciled::NotApplied
    );
}

#[tokio::test]
async fn a_restart_of_a_container_recreated_under_its_name_since_is_a_conflict() {
    let Some(podman) = Podman::start("a_restart_of_a_container_recreated") else {
        return;
    };
    let name = format!("{}-web", podman.tag());
    let label = podman.test_label();
    let run = || {
        podman.podman_ok(&[
            "run", "-d", "--name", &name, "--label", &label, TEST_IMAGE, "sh", "-c", SERVE,
        ])
    };
    run();
    let docker = Docker::connect(&DockerSettings {
        host: Some(podman.docker_host()),
        call_timeout: Duration::from_secs(5),
        stop_timeout: Duration::from_secs(2),
    })
    .unwrap();
    let before = docker.inspect(&name).await.unwrap();
    podman.podman_ok(&["rm", "-f", "-t", "0", &name]);
    run();
    let now = docker.inspect(&name).await.unwrap();
    assert_ne!(now.id, before.id);

    let change = Change::Restart {
        id: now.id.clone(),
        container_id: before.id.clone(),
        started_at: before.started_at.clone(),
    };
    let read = docker.reconcile(&change).await.unwrap();
    let Reconciled::Conflict(message) = read else {
        panic!("expected a conflict, got {read:?}")
    };
    assert!(
        message.contains(&before.id) && message.contains(&now.id),
        "{message}"
    );
}
