//! Discovery for the health graph against a real engine: Podman's Docker API service
//! (`grace_testkit::podman`), as in `podman.rs`.
//!
//! Every test sets the same scene on its own service: a user-defined network `<tag>-net` and
//! two containers of the Compose service `<tag>/web` on it, `<tag>-web-1` running and
//! `<tag>-web-2` stopped. The engine's store is shared with the other tests running at the
//! same time, so discovery sees their containers too: assertions look at this test's own.
//! Without Podman the tests are skipped, loudly, unless `GRACE_E2E=required`.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, StartContainerOptions,
    StopContainerOptionsBuilder,
};
use grace_docker::{Docker, DockerSettings};
use grace_graph::{
    Availability, Discovered, GraphSettings, HealthGraph, Identity, NodeId, NodeKind, ObservedNode,
    Owner, Walk,
};
use grace_testkit::podman::{Podman, TEST_IMAGE};

/// Exits at once on SIGTERM (a shell as PID 1 would otherwise ignore it).
const SERVE: &str = "trap 'exit 0' TERM; sleep 100000 & wait";

/// This test's engine, network and containers. Dropping it removes the network (and with it
/// any container still on it), then the [`Podman`] drop removes the rest.
struct Scene {
    podman: Podman,
    docker: Docker,
    network: String,
    /// The running container's name and its address on the network.
    running: (String, String),
    /// The stopped container's name.
    stopped: String,
}

impl Drop for Scene {
    fn drop(&mut self) {
        let out = self
            .podman
            .podman(&["network", "rm", "--force", &self.network]);
        if !out.status.success() {
            eprintln!(
                "podman could not remove the network {}: {}",
                self.network,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

async fn scene(test: &str) -> Option<Scene> {
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
    let tag = podman.tag().to_owned();
    let network = format!("{tag}-net");
    api.create_network(NetworkCreateRequest {
        name: network.clone(),
        labels: Some([(Podman::TEST_LABEL.to_owned(), tag.clone())].into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut scene = Scene {
        podman,
        docker,
        network,
        running: (format!("{tag}-web-1"), String::new()),
        stopped: format!("{tag}-web-2"),
    };
    for name in [scene.running.0.clone(), scene.stopped.clone()] {
        let body = ContainerCreateBody {
            image: Some(TEST_IMAGE.to_owned()),
            cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), SERVE.to_owned()]),
            labels: Some(
                [
                    ("com.docker.compose.project", tag.as_str()),
                    ("com.docker.compose.service", "web"),
                    (Podman::TEST_LABEL, tag.as_str()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ),
            host_config: Some(HostConfig {
                network_mode: Some(scene.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        api.create_container(Some(options), body).await.unwrap();
        api.start_container(&name, None::<StartContainerOptions>)
            .await
            .unwrap();
    }
    let stop = StopContainerOptionsBuilder::default().t(2).build();
    api.stop_container(&scene.stopped, Some(stop))
        .await
        .unwrap();
    let inspected = api
        .inspect_container(&scene.running.0, None::<InspectContainerOptions>)
        .await
        .unwrap();
    scene.running.1 = inspected
        .network_settings
        .and_then(|s| s.networks)
        .and_then(|n| n.get(&scene.network).cloned())
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| panic!("{} has no address on {}", scene.running.0, scene.network));
    Some(scene)
}

impl Scene {
    /// Everything the engine has, unbounded in practice.
    async fn discover(&self) -> Discovered {
        self.docker
            .discover(&Identity::default(), 100_000)
            .await
            .unwrap()
    }

    fn service(&self) -> NodeId {
        NodeId::service(self.podman.tag(), "web").unwrap()
    }

    fn container(&self, name: &str) -> NodeId {
        NodeId::container(name).unwrap()
    }
}

fn node<'a>(found: &'a Discovered, id: &NodeId) -> &'a ObservedNode {
    found
        .observation
        .node(id)
        .unwrap_or_else(|| panic!("{id} was not discovered: {:#?}", found.observation.nodes))
}

#[tokio::test]
async fn each_container_is_reported_with_its_image_state_networks_and_addresses() {
    let Some(s) = scene("each_container_is_reported_with_its_image_state_networks").await else {
        return;
    };
    let found = s.discover().await;

    let running = node(&found, &s.container(&s.running.0));
    assert_eq!(running.attributes["image"], TEST_IMAGE);
    assert_eq!(running.attributes["state"], "running");
    assert_eq!(running.attributes["networks"], s.network);
    assert_eq!(
        running.attributes["label:com.docker.compose.service"],
        "web"
    );
    assert_eq!(running.addresses, std::slice::from_ref(&s.running.1));
    assert_eq!(
        running.availability,
        Some(Availability { ready: 1, total: 1 })
    );

    let stopped = node(&found, &s.container(&s.stopped));
    assert_eq!(stopped.attributes["state"], "exited");
    assert_eq!(
        stopped.availability,
        Some(Availability { ready: 0, total: 1 })
    );
    assert!(
        stopped.addresses.is_empty(),
        "a stopped container answers on nothing: {:?}",
        stopped.addresses
    );
}

#[tokio::test]
async fn a_compose_service_is_available_as_far_as_its_containers_run() {
    let Some(s) = scene("a_compose_service_is_available_as_far_as_its_containers_run").await else {
        return;
    };
    let found = s.discover().await;

    let service = node(&found, &s.service());
    assert_eq!(
        service.availability,
        Some(Availability { ready: 1, total: 2 })
    );
    assert_eq!(service.attributes["compose_project"], s.podman.tag());
    for name in [&s.running.0, &s.stopped] {
        assert_eq!(
            node(&found, &s.container(name)).part_of,
            [Owner::Node(s.service())],
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_graph_walks_from_a_discovered_service_to_its_containers() {
    let Some(s) = scene("the_graph_walks_from_a_discovered_service_to_its_containers").await else {
        return;
    };
    let found = s.discover().await;
    let mut graph = HealthGraph::new(GraphSettings::default());
    let applied = graph.apply("docker", &found.observation, 1_000_000);
    assert_eq!(applied.unresolved, 0);

    let reached: BTreeSet<NodeId> = graph
        .walk(&s.service(), Walk::Dependencies, 1, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        reached,
        BTreeSet::from([s.container(&s.running.0), s.container(&s.stopped)])
    );
    assert_eq!(
        graph.by_address(&s.running.1),
        Some(&s.container(&s.running.0)),
        "a scrape target naming only the IP finds the container"
    );
}

#[tokio::test]
async fn containers_beyond_the_bound_are_counted_not_reported() {
    let Some(s) = scene("containers_beyond_the_bound_are_counted_not_reported").await else {
        return;
    };
    let found = s.docker.discover(&Identity::default(), 1).await.unwrap();

    let containers = found
        .observation
        .nodes
        .iter()
        .filter(|n| n.id.kind() == NodeKind::Container)
        .count();
    assert_eq!(containers, 1, "{:#?}", found.observation.nodes);
    // This test's two containers at least; other tests' may be there too.
    assert!(found.left_out >= 1, "{}", found.left_out);

    let all = s.discover().await;
    assert_eq!(all.left_out, 0);
    node(&all, &s.container(&s.running.0));
    node(&all, &s.container(&s.stopped));
}
