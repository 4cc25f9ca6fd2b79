//! Engines that are not there or misbehave: failures no real engine produces on demand, so
//! these use a missing socket and hand-made loopback servers.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use grace_docker::{Docker, DockerSettings};
use grace_executor::{ContainerExecutor, ExecError, Labels};
use grace_testkit::fake_endpoint::{Behaviour, FakeEndpoint};

fn docker(host: &str, call_timeout: Duration) -> Docker {
    Docker::connect(&DockerSettings {
        host: Some(host.to_owned()),
        call_timeout,
        ..DockerSettings::default()
    })
    .unwrap()
}

/// A directory of its own under the temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("grace-docker-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn an_absent_engine_socket_is_unavailable_naming_it() {
    let dir = TempDir::new("absent");
    let socket = dir.0.join("docker.sock");
    let docker = docker(
        &format!("unix://{}", socket.display()),
        Duration::from_secs(5),
    );
    let error = docker.list(&Labels::new()).await.unwrap_err();
    let ExecError::Unavailable(message) = &error else {
        panic!("{error:?}");
    };
    assert!(message.contains(&socket.display().to_string()), "{message}");
    assert!(error.is_transient());
    assert!(matches!(
        docker.restart("web-1").await,
        Err(ExecError::Unavailable(m)) if m.contains("restart container `web-1`")
    ));
    assert!(matches!(
        docker.ping().await,
        Err(ExecError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_socket_nobody_listens_on_is_unavailable() {
    let dir = TempDir::new("refused");
    let socket = dir.0.join("docker.sock");
    // Binding creates the socket file; dropping the listener leaves it with no one behind it.
    drop(UnixListener::bind(&socket).unwrap());
    let docker = docker(
        &format!("unix://{}", socket.display()),
        Duration::from_secs(5),
    );
    let error = docker.inspect("web-1").await.unwrap_err();
    assert!(matches!(error, ExecError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn an_engine_that_never_answers_times_out_within_the_call_timeout() {
    let engine = FakeEndpoint::start(Behaviour::Silent);
    let docker = docker(
        &format!("tcp://127.0.0.1:{}", engine.port()),
        Duration::from_millis(500),
    );
    let started = Instant::now();
    let error = docker.inspect("web-1").await.unwrap_err();
    assert!(matches!(error, ExecError::TimedOut(_)), "{error:?}");
    assert!(error.to_string().contains("500ms"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_engine_answering_something_else_than_the_docker_api_is_other() {
    let engine = FakeEndpoint::start(FakeEndpoint::garbage("<html>not an engine</html>"));
    let docker = docker(
        &format!("tcp://127.0.0.1:{}", engine.port()),
        Duration::from_secs(5),
    );
    let error = docker.list(&Labels::new()).await.unwrap_err();
    assert!(matches!(error, ExecError::Other(_)), "{error:?}");
    assert!(!error.is_transient());
}

#[tokio::test]
async fn names_that_are_not_container_references_are_refused_before_any_call() {
    // Nothing listens here: a refusal proves the name was never sent.
    let docker = docker("unix:///nonexistent/docker.sock", Duration::from_secs(1));
    for bad in ["../images/json", "web?force=1", "", "a b"] {
        assert!(
            matches!(docker.stop(bad).await, Err(ExecError::InvalidArgument(_))),
            "{bad}"
        );
    }
}
