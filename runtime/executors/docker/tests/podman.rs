//! The Docker provider against a real engine: Podman's Docker API service
//! (`grace_testkit::podman`), reached through bollard exactly as a Docker Engine would be.
//!
//! Every test starts its own service on a private socket, creates its containers through the
//! Docker API with unique names (`<tag>-…`) and the label `grace.test=<tag>`, and the service's
//! drop removes them. Without Podman the tests are skipped, loudly, unless `GRACE_E2E=required`.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StartContainerOptions};
use grace_docker::{Docker, DockerSettings};
use grace_executor::containers::{CLONE_LABEL, Container, ContainerState, Health};
use grace_executor::{ContainerExecutor, ExecError, Labels};
use grace_testkit::podman::{Podman, TEST_IMAGE};

/// A command that creates the file its health check tests, says so, and exits at once on
/// SIGTERM (a shell as PID 1 would otherwise ignore it until the stop timeout).
const SERVE: &str = "trap 'exit 0' TERM; touch /tmp/healthy; echo started; sleep 100000 & wait";

/// How long the engine may take to reach a state the test waits for.
const SETTLE: Duration = Duration::from_secs(60);

struct Engine {
    podman: Podman,
    /// The provider under test.
    docker: Docker,
    /// A plain client, for setting the scene the way an operator would.
    api: bollard::Docker,
}

async fn engine(test: &str) -> Option<Engine> {
    let podman = Podman::start(test)?;
    let docker = Docker::connect(&DockerSettings {
        host: Some(podman.docker_host()),
        // Generous: a loaded 2-core machine runs several test engines at once.
        call_timeout: Duration::from_secs(60),
        stop_timeout: Duration::from_secs(2),
    })
    .unwrap();
    let api = bollard::Docker::connect_with_unix(
        &podman.docker_host(),
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap()
    .negotiate_version()
    .await
    .unwrap();
    Some(Engine {
        podman,
        docker,
        api,
    })
}

/// What a test container looks like.
struct Spec<'a> {
    name: &'a str,
    labels: &'a [(&'a str, &'a str)],
    script: &'a str,
    healthcheck: bool,
    start: bool,
}

impl Engine {
    /// `<tag>-<suffix>`: unique to this test.
    fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.podman.tag())
    }

    /// `labels` plus `grace.test=<tag>`.
    fn labels(&self, pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain([(Podman::TEST_LABEL.to_owned(), self.podman.tag().to_owned())])
            .collect()
    }

    /// Creates (and maybe starts) a container through the Docker API; returns its id.
    async fn create(&self, spec: Spec<'_>) -> String {
        self.create_with(spec, |_| {}).await
    }

    /// As [`Engine::create`], with the create request adjusted by `adjust` first.
    async fn create_with(
        &self,
        spec: Spec<'_>,
        adjust: impl FnOnce(&mut ContainerCreateBody),
    ) -> String {
        let healthcheck = spec.healthcheck.then(|| HealthConfig {
            test: Some(vec![
                "CMD-SHELL".to_owned(),
                "test -f /tmp/healthy".to_owned(),
            ]),
            interval: Some(1_000_000_000),
            timeout: Some(5_000_000_000),
            retries: Some(1),
            ..Default::default()
        });
        let mut body = ContainerCreateBody {
            image: Some(TEST_IMAGE.to_owned()),
            cmd: Some(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                spec.script.to_owned(),
            ]),
            labels: Some(self.labels(spec.labels).into_iter().collect()),
            healthcheck,
            ..Default::default()
        };
        adjust(&mut body);
        let options = CreateContainerOptionsBuilder::default()
            .name(spec.name)
            .build();
        let id = self
            .api
            .create_container(Some(options), body)
            .await
            .unwrap()
            .id;
        if spec.start {
            self.api
                .start_container(&id, None::<StartContainerOptions>)
                .await
                .unwrap();
        }
        id
    }

    /// Runs the health check (Podman's systemd timer's job, see `grace_testkit::podman`) until
    /// the provider sees `container` with `health`.
    async fn health_becomes(&self, container: &str, health: Health) -> Container {
        eventually(&format!("`{container}` to be {health:?}"), async || {
            self.podman.run_healthcheck(container);
            let c = self.docker.inspect(container).await.unwrap();
            (c.health == health).then_some(c)
        })
        .await
    }
}

/// Polls `check` until it returns `Some`, or panics naming `what` after [`SETTLE`].
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {SETTLE:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

fn names(list: &[Container]) -> Vec<&str> {
    list.iter().map(|c| c.name.as_str()).collect()
}

#[tokio::test]
async fn list_returns_every_container_carrying_all_selector_labels_sorted_by_name() {
    let Some(e) = engine("list_returns_every_container_carrying_all_selector_labels").await else {
        return;
    };
    let (a, b, c) = (e.name("a"), e.name("b"), e.name("c"));
    e.create(Spec {
        name: &b,
        labels: &[("app", "web"), ("tier", "front")],
        script: SERVE,
        healthcheck: false,
        start: true,
    })
    .await;
    e.create(Spec {
        name: &a,
        labels: &[("app", "web"), ("tier", "front")],
        script: SERVE,
        healthcheck: false,
        start: false,
    })
    .await;
    e.create(Spec {
        name: &c,
        labels: &[("app", "web"), ("tier", "back")],
        script: SERVE,
        healthcheck: false,
        start: true,
    })
    .await;

    let front = e
        .docker
        .list(&e.labels(&[("app", "web"), ("tier", "front")]))
        .await
        .unwrap();
    assert_eq!(names(&front), [a.as_str(), b.as_str()]);
    assert_eq!(front[0].state, ContainerState::Created, "stopped ones too");
    assert_eq!(front[1].state, ContainerState::Running);
    assert_eq!(front[1].image, TEST_IMAGE);
    assert_eq!(
        front[1].labels,
        e.labels(&[("app", "web"), ("tier", "front")])
    );
    assert_eq!(front[1].health, Health::None, "no health check");
    let all = e.docker.list(&e.labels(&[])).await.unwrap();
    assert_eq!(names(&all), [a.as_str(), b.as_str(), c.as_str()]);
    let none = e.docker.list(&e.labels(&[("app", "db")])).await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_failing_health_check_is_seen_unhealthy_and_restart_makes_it_healthy_again() {
    let Some(e) =
        engine("a_failing_health_check_is_seen_unhealthy_and_restart_makes_it_healthy").await
    else {
        return;
    };
    let web = e.name("web");
    let id = e
        .create(Spec {
            name: &web,
            labels: &[("app", "web")],
            script: SERVE,
            healthcheck: true,
            start: true,
        })
        .await;
    let healthy = e.health_becomes(&web, Health::Healthy).await;
    assert_eq!(
        (healthy.id.as_str(), healthy.state),
        (id.as_str(), ContainerState::Running)
    );

    // The check tests /tmp/healthy: take it away and the next check fails.
    e.podman.podman_ok(&["exec", &web, "rm", "/tmp/healthy"]);
    e.health_becomes(&web, Health::Unhealthy).await;
    let listed = e.docker.list(&e.labels(&[("app", "web")])).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.health).collect::<Vec<_>>(),
        [Health::Unhealthy],
        "list inspects each container for its health"
    );

    // The command creates /tmp/healthy again when the container starts.
    let restarted = e.docker.restart(&web).await.unwrap();
    assert_eq!(restarted.id, id);
    assert_eq!(restarted.state, ContainerState::Running);
    assert_ne!(
        restarted.health,
        Health::Unhealthy,
        "a restart resets the status"
    );
    e.health_becomes(&web, Health::Healthy).await;
}

#[tokio::test]
async fn stop_then_start_by_name_and_by_id() {
    let Some(e) = engine("stop_then_start_by_name_and_by_id").await else {
        return;
    };
    let web = e.name("web");
    let id = e
        .create(Spec {
            name: &web,
            labels: &[],
            script: SERVE,
            healthcheck: true,
            start: true,
        })
        .await;
    e.health_becomes(&web, Health::Healthy).await;

    let stopped = e.docker.stop(&web).await.unwrap();
    assert_eq!(
        (stopped.id.as_str(), stopped.state, stopped.health),
        (id.as_str(), ContainerState::Exited, Health::None),
        "a stopped container has no health status, whatever the engine kept"
    );
    let again = e.docker.stop(&id).await.unwrap();
    assert_eq!(
        again.state,
        ContainerState::Exited,
        "stopping twice is fine"
    );

    let started = e.docker.start(&id).await.unwrap();
    assert_eq!(
        (started.name.as_str(), started.state),
        (web.as_str(), ContainerState::Running)
    );
    let again = e.docker.start(&web).await.unwrap();
    assert_eq!(
        again.state,
        ContainerState::Running,
        "starting twice is fine"
    );
    assert_eq!(
        e.docker.inspect(&id).await.unwrap(),
        e.docker.inspect(&web).await.unwrap()
    );
}

#[tokio::test]
async fn scale_clones_the_oldest_up_and_removes_the_newest_down_to_zero_and_back() {
    let Some(e) = engine("scale_clones_the_oldest_up_and_removes_the_newest_down").await else {
        return;
    };
    let web = e.name("web");
    let selector = e.labels(&[("app", "web")]);
    e.create(Spec {
        name: &web,
        labels: &[("app", "web"), ("tier", "front")],
        script: SERVE,
        healthcheck: true,
        start: true,
    })
    .await;
    let (web1, web2) = (format!("{web}-1"), format!("{web}-2"));

    let up = e.docker.scale(&selector, 3).await.unwrap();
    assert_eq!(names(&up), [web.as_str(), web1.as_str(), web2.as_str()]);
    for c in &up {
        assert_eq!(c.state, ContainerState::Running, "{}", c.name);
        assert_eq!(c.image, TEST_IMAGE, "{}", c.name);
        let mut expected = e.labels(&[("app", "web"), ("tier", "front")]);
        if c.name != web {
            expected.insert(CLONE_LABEL.to_owned(), web.clone());
        }
        assert_eq!(c.labels, expected, "{}", c.name);
    }
    // A clone runs the same command, so its health check passes the same way.
    e.health_becomes(&web2, Health::Healthy).await;

    let down = e.docker.scale(&selector, 1).await.unwrap();
    assert_eq!(names(&down), [web.as_str()], "the newest go first");
    let left = e.docker.list(&selector).await.unwrap();
    assert_eq!(names(&left), [web.as_str()], "and are removed");

    let zero = e.docker.scale(&selector, 0).await.unwrap();
    assert!(zero.is_empty());
    let left = e.docker.list(&selector).await.unwrap();
    assert_eq!(
        left.iter()
            .map(|c| (c.name.as_str(), c.state))
            .collect::<Vec<_>>(),
        [(web.as_str(), ContainerState::Exited)],
        "the template is stopped, not removed"
    );

    let back = e.docker.scale(&selector, 2).await.unwrap();
    assert_eq!(
        names(&back),
        [web.as_str(), web1.as_str()],
        "the stopped template starts before any clone is made"
    );
    assert!(back.iter().all(|c| c.state == ContainerState::Running));
}

#[tokio::test]
async fn scale_down_removes_only_clones_and_keeps_what_people_made_and_every_volume() {
    let Some(e) = engine("scale_down_removes_only_clones").await else {
        return;
    };
    let (web, other) = (e.name("web"), e.name("hand-made"));
    let selector = e.labels(&[("app", "web")]);
    for name in [&web, &other] {
        e.create_with(
            Spec {
                name,
                labels: &[("app", "web")],
                script: SERVE,
                healthcheck: false,
                start: true,
            },
            // An anonymous volume, as an image's VOLUME would make.
            |body| body.volumes = Some(vec!["/data".to_owned()]),
        )
        .await;
    }
    let volume_of = async |name: &str| {
        let inspected = e.api.inspect_container(name, None).await.unwrap();
        let mounts = inspected.mounts.unwrap_or_default();
        mounts
            .into_iter()
            .find(|m| m.destination.as_deref() == Some("/data"))
            .and_then(|m| m.name)
            .expect("an anonymous volume")
    };
    let volumes = [volume_of(&web).await, volume_of(&other).await];

    let up = e.docker.scale(&selector, 4).await.unwrap();
    assert_eq!(up.len(), 4);
    let down = e.docker.scale(&selector, 1).await.unwrap();

    assert_eq!(names(&down), [web.as_str()]);
    let left = e.docker.list(&selector).await.unwrap();
    assert_eq!(
        left.iter()
            .map(|c| (c.name.as_str(), c.state))
            .collect::<Vec<_>>(),
        [
            (other.as_str(), ContainerState::Exited),
            (web.as_str(), ContainerState::Running)
        ],
        "the clones are removed; the container people made is stopped, not removed"
    );
    for volume in &volumes {
        e.api
            .inspect_volume(volume)
            .await
            .unwrap_or_else(|err| panic!("volume `{volume}` was removed: {err}"));
    }
}

#[tokio::test]
async fn a_clone_keeps_every_security_restriction_of_its_template_on_a_real_engine() {
    let Some(e) = engine("a_clone_keeps_every_security_restriction").await else {
        return;
    };
    let web = e.name("web");
    let selector = e.labels(&[("app", "locked")]);
    e.create_with(
        Spec {
            name: &web,
            labels: &[("app", "locked")],
            script: SERVE,
            healthcheck: false,
            start: true,
        },
        // What this sandbox's runc can apply (it may not set rlimits, so ulimits and a user
        // are covered by the unit test `a_clone_keeps_every_security_restriction_of_its_template`).
        |body| {
            body.host_config = Some(HostConfig {
                cap_drop: Some(vec!["ALL".to_owned()]),
                cap_add: Some(vec!["CHOWN".to_owned()]),
                readonly_rootfs: Some(true),
                security_opt: Some(vec!["no-new-privileges".to_owned()]),
                ..Default::default()
            });
        },
    )
    .await;

    let up = e.docker.scale(&selector, 2).await.unwrap();
    let clone = up.iter().find(|c| c.name != web).expect("a clone");

    let inspect = async |name: &str| {
        let i = e.api.inspect_container(name, None).await.unwrap();
        (
            i.config.unwrap_or_default(),
            i.host_config.unwrap_or_default(),
        )
    };
    let (t_config, t) = inspect(&web).await;
    let (c_config, c) = inspect(&clone.name).await;
    // Compared as the engine reports them, so its own normalisation cannot hide a difference.
    assert_eq!(c_config.user, t_config.user, "user");
    assert_eq!(
        c_config.labels.unwrap_or_default().get(CLONE_LABEL),
        Some(&web)
    );
    assert_eq!(c.cap_drop, t.cap_drop, "cap_drop");
    assert_eq!(c.cap_add, t.cap_add, "cap_add");
    assert_eq!(c.readonly_rootfs, Some(true), "readonly_rootfs");
    assert_eq!(c.security_opt, t.security_opt, "security_opt");
    assert_eq!(c.ulimits, t.ulimits, "ulimits");
    assert_eq!(c.pids_limit, t.pids_limit, "pids_limit");
    assert_eq!(c.memory, t.memory, "memory");
    assert_eq!(c.privileged, Some(false), "privileged");
}

#[tokio::test]
async fn scale_with_a_selector_matching_nothing_is_not_found() {
    let Some(e) = engine("scale_with_a_selector_matching_nothing_is_not_found").await else {
        return;
    };
    let error = e
        .docker
        .scale(&e.labels(&[("app", "db")]), 2)
        .await
        .unwrap_err();
    assert!(matches!(error, ExecError::NotFound(_)), "{error:?}");
    assert!(error.to_string().contains("app=db"), "{error}");
}

#[tokio::test]
async fn a_missing_container_is_not_found_naming_it_and_the_operation() {
    let Some(e) = engine("a_missing_container_is_not_found_naming_it").await else {
        return;
    };
    let ghost = e.name("ghost");
    let d = &e.docker;
    let results = [
        ("inspect", d.inspect(&ghost).await.map(|_| ())),
        ("restart", d.restart(&ghost).await.map(|_| ())),
        ("start", d.start(&ghost).await.map(|_| ())),
        ("stop", d.stop(&ghost).await.map(|_| ())),
        ("logs", d.logs(&ghost, 5).await.map(|_| ())),
    ];
    for (operation, result) in results {
        let Err(ExecError::NotFound(message)) = result else {
            panic!("{operation}: {result:?}");
        };
        assert!(message.contains(&format!("`{ghost}`")), "{message}");
        assert!(message.contains(operation), "{message}");
    }
}

#[tokio::test]
async fn logs_tail_is_the_last_lines_of_stdout_and_stderr_oldest_first() {
    let Some(e) = engine("logs_tail_is_the_last_lines_of_stdout_and_stderr").await else {
        return;
    };
    let talker = e.name("talker");
    // Pauses between lines: stdout and stderr are separate pipes, so only time orders them.
    let script = "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; sleep 0.2; \
                  echo four >&2; trap 'exit 0' TERM; sleep 100000 & wait";
    e.create(Spec {
        name: &talker,
        labels: &[],
        script,
        healthcheck: false,
        start: true,
    })
    .await;
    let all = eventually("all four lines", async || {
        let lines = e.docker.logs(&talker, 10).await.unwrap();
        (lines.len() == 4).then_some(lines)
    })
    .await;
    assert_eq!(all, ["one", "two", "three", "four"]);
    assert_eq!(
        e.docker.logs(&talker, 3).await.unwrap(),
        ["two", "three", "four"]
    );
    assert!(e.docker.logs(&talker, 0).await.unwrap().is_empty());
    assert!(matches!(
        e.docker.logs(&talker, grace_docker::MAX_TAIL + 1).await,
        Err(ExecError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn ping_and_version_answer() {
    let Some(e) = engine("ping_and_version_answer").await else {
        return;
    };
    e.docker.ping().await.unwrap();
    let version = e.docker.version().await.unwrap();
    assert!(!version.version.is_empty());
    assert!(version.api_version.starts_with("1."), "{version:?}");
}
