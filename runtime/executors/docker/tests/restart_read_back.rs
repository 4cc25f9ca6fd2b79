//! A container restart whose answer is lost after the engine made it: a proxy in front of
//! Podman's Docker API forwards the request and drops the answer, the call times out, and
//! reading the container back (`reconcile`) compares its start time (`State.StartedAt`) with
//! the moment the restart was decided, so a retry does not restart it twice.
//!
//! Without Podman the tests are skipped, loudly, unless `GRACE_E2E=required`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grace_docker::{Docker, DockerSettings};
use grace_executor::containers::Change;
use grace_executor::{ContainerExecutor, ExecError, Reconciled};
use grace_testkit::podman::{Podman, TEST_IMAGE};
use grace_testkit::poll_until;
use grace_testkit::proxy::{Proxy, Upstream};

/// Exits at once on SIGTERM, so a restart takes no stop timeout.
const SERVE: &str = "trap 'exit 0' TERM; sleep 100000 & wait";

fn now_millis() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

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

    let decided = now_millis();
    let change = Change::Restart {
        id: name.clone(),
        since_millis: decided,
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
        id: name.clone(),
        since_millis: now_millis() + 1,
    };
    assert_eq!(
        docker.reconcile(&later).await.unwrap(),
        Reconciled::NotApplied
    );
}
