//! Podman's own container state `stopped` (a container that exited and that Podman has not
//! cleaned up yet) in its Docker API's answers: Podman 4.x lets it through in container lists
//! (podman#28359) and inspect answers (podman#17728), although the Docker API has no such
//! state. It lasts under a second and cannot be produced on demand, so a proxy in front of
//! Podman's Docker API gives the client Podman's real answer with that one field as Podman 4.x
//! sets it while cleaning up. The client must read it as `exited`, as Podman does since it
//! fixed this, instead of failing the whole call (a discovery then saw no container at all).
//!
//! Without Podman the tests are skipped, loudly, unless `GRACE_E2E=required`.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use grace_docker::{Docker, DockerSettings};
use grace_executor::containers::ContainerState;
use grace_executor::{ContainerExecutor, Labels};
use grace_graph::{Availability, Identity, NodeId};
use grace_testkit::podman::{Podman, TEST_IMAGE};
use grace_testkit::proxy::{Proxy, Upstream};
use serde_json::Value;

/// A stopped container of this test's and a client reaching Podman through the proxy.
struct Scene {
    podman: Podman,
    proxy: Proxy,
    docker: Docker,
    name: String,
}

fn scene(test: &str) -> Option<Scene> {
    let podman = Podman::start(test)?;
    let name = format!("{}-web", podman.tag());
    let label = podman.test_label();
    podman.podman_ok(&[
        "run", "-d", "--name", &name, "--label", &label, TEST_IMAGE, "sh", "-c", "exit 0",
    ]);
    podman.podman_ok(&["wait", &name]);
    let proxy = Proxy::start(Upstream::Unix(podman.socket()));
    let docker = Docker::connect(&DockerSettings {
        host: Some(format!(
            "tcp://{}",
            proxy.url().trim_start_matches("http://")
        )),
        call_timeout: Duration::from_secs(60),
        stop_timeout: Duration::from_secs(2),
    })
    .unwrap();
    Some(Scene {
        podman,
        proxy,
        docker,
        name,
    })
}

impl Scene {
    /// Podman's own answer to `GET <path>`, straight from its socket.
    fn answer(&self, path: &str) -> Value {
        let mut socket = UnixStream::connect(self.podman.socket()).unwrap();
        // HTTP/1.0: the answer comes whole, not chunked, and the connection closes after it.
        write!(socket, "GET {path} HTTP/1.0\r\nHost: podman\r\n\r\n").unwrap();
        let mut raw = String::new();
        socket.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        serde_json::from_str(body).unwrap()
    }

    /// Makes the proxy give the next request carrying `text` this answer instead of Podman's.
    fn replace_next(&self, text: &str, body: &Value) {
        let body = body.to_string();
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        );
        self.proxy.replace_answer_after(text, reply.as_bytes());
    }
}

#[tokio::test]
async fn a_list_naming_a_container_podman_is_still_cleaning_up_reads_it_as_exited() {
    let Some(s) = scene("a_list_naming_a_container_podman_is_still_cleaning_up") else {
        return;
    };
    // Connect first, so that the replaced answer is the list's and not the version's.
    s.docker.ping().await.unwrap();
    let mut list = s.answer("/v1.41/containers/json?all=true");
    let ours = list
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["Names"][0] == format!("/{}", s.name))
        .unwrap();
    assert_eq!(ours["State"], "exited", "{ours}");
    ours["State"] = "stopped".into();
    s.replace_next("/containers/json", &list);

    let found = s
        .docker
        .discover(&Identity::default(), 100_000)
        .await
        .unwrap();
    assert!(!s.proxy.is_armed(), "discovery got the replaced answer");
    let node = found
        .observation
        .node(&NodeId::container(&s.name).unwrap())
        .unwrap_or_else(|| panic!("{} was not discovered", s.name));
    assert_eq!(node.attributes["state"], "exited");
    assert_eq!(node.availability, Some(Availability { ready: 0, total: 1 }));
}

#[tokio::test]
async fn an_inspect_answer_naming_it_reads_it_as_exited() {
    let Some(s) = scene("an_inspect_answer_naming_a_container_podman_is_cleaning_up") else {
        return;
    };
    s.docker.ping().await.unwrap();
    let mut inspected = s.answer(&format!("/v1.41/containers/{}/json", s.name));
    assert_eq!(inspected["State"]["Status"], "exited");
    inspected["State"]["Status"] = "stopped".into();
    let path = format!("/containers/{}/json", s.name);
    s.replace_next(&path, &inspected);

    let container = s.docker.inspect(&s.name).await.unwrap();
    assert!(!s.proxy.is_armed(), "inspect got the replaced answer");
    assert_eq!(container.name, s.name);
    assert_eq!(container.state, ContainerState::Exited);

    // And a list by label, which inspects what it lists by id, the same way.
    let label = Labels::from([(Podman::TEST_LABEL.to_owned(), s.podman.tag().to_owned())]);
    let by_id = format!("/containers/{}/json", inspected["Id"].as_str().unwrap());
    s.replace_next(&by_id, &inspected);
    let listed = s.docker.list(&label).await.unwrap();
    assert!(!s.proxy.is_armed(), "list got the replaced answer");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, ContainerState::Exited);
}
