//! Discovery for the health graph against the test API server (real JSON of deployments,
//! Services and EndpointSlices, kube unmodified).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use grace_graph::{GraphSettings, Health, HealthGraph, Identity, NodeId, Observation, Owner};
use grace_kube_testserver::{ServerConfig, SliceEndpoint, TestServer};
use grace_kubernetes::{Kube, KubeSettings};

async fn cluster() -> (TestServer, Kube) {
    let server = TestServer::start(ServerConfig {
        step: Duration::from_millis(20),
    })
    .await
    .unwrap();
    let settings = KubeSettings {
        call_timeout: Duration::from_secs(5),
        ..KubeSettings::default()
    };
    let kube = Kube::for_url(server.url(), &settings).unwrap();
    (server, kube)
}

fn endpoint(address: &str, ready: bool) -> SliceEndpoint<'_> {
    SliceEndpoint {
        address,
        ready,
        pod: None,
    }
}

fn svc(ns: &str, name: &str) -> NodeId {
    NodeId::service(ns, name).unwrap()
}

#[tokio::test]
async fn deployments_are_workloads_with_their_services_endpoint_addresses() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "checkout", 2);
    server.seed_service("shop", "checkout-svc", &[("app", "checkout")], &[8080]);
    server.seed_endpoint_slice(
        "shop",
        "checkout-svc",
        &[endpoint("10.1.0.5", true), endpoint("10.1.0.6", true)],
        8080,
    );
    let found = kube.discover(&Identity::default(), 100).await.unwrap();
    assert_eq!(found.left_out, 0);
    let checkout = found
        .observation
        .nodes
        .iter()
        .find(|n| n.id == svc("shop", "checkout"))
        .unwrap();
    assert_eq!(checkout.attributes["k8s_services"], "checkout-svc");
    assert_eq!(checkout.attributes["kind"], "Deployment");
    assert_eq!(checkout.addresses, ["10.1.0.5", "10.1.0.6"]);
    let a = checkout.availability.unwrap();
    assert_eq!((a.ready, a.total), (2, 2));
    // The Service selected a deployment: it is not a node of its own.
    assert_eq!(found.observation.nodes.len(), 1);
}

#[tokio::test]
async fn a_service_selecting_no_deployment_is_its_own_workload_available_as_its_ready_endpoints() {
    let (server, kube) = cluster().await;
    server.seed_service("data", "postgres", &[("app", "postgres")], &[5432]);
    server.seed_endpoint_slice(
        "data",
        "postgres",
        &[endpoint("10.2.0.1", true), endpoint("10.2.0.2", false)],
        5432,
    );
    let found = kube.discover(&Identity::default(), 100).await.unwrap();
    let postgres = &found.observation.nodes[0];
    assert_eq!(postgres.id, svc("data", "postgres"));
    let a = postgres.availability.unwrap();
    assert_eq!((a.ready, a.total), (1, 2));
    let mut graph = HealthGraph::new(GraphSettings::default());
    graph.apply("kubernetes", &found.observation, 0);
    assert_eq!(
        graph.health(&postgres.id, 0).unwrap().health,
        Health::Degraded
    );
}

#[tokio::test]
async fn a_scrape_target_on_a_pod_address_joins_the_deployment_in_the_graph() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "cart", 1);
    server.seed_service("shop", "cart", &[("app", "cart")], &[8080]);
    server.seed_endpoint_slice("shop", "cart", &[endpoint("10.3.0.7", true)], 8080);
    let mut graph = HealthGraph::new(GraphSettings::default());
    let found = kube.discover(&Identity::default(), 100).await.unwrap();
    graph.apply("kubernetes", &found.observation, 0);
    let target = NodeId::target("cart", "10.3.0.7:9090").unwrap();
    let targets = Observation {
        nodes: vec![
            grace_graph::ObservedNode::new(target.clone())
                .available(1, 1)
                .part_of(Owner::Address("10.3.0.7".into())),
        ],
        ..Observation::default()
    };
    graph.apply("prometheus-targets", &targets, 0);
    let parts = graph
        .walk(&svc("shop", "cart"), grace_graph::Walk::Dependencies, 1, 10)
        .unwrap();
    assert_eq!(parts[0].id, target);
}

#[tokio::test]
async fn a_deleted_deployment_is_no_longer_reported() {
    let (server, kube) = cluster().await;
    server.seed_rolled_out("shop", "web", 1);
    server.seed_rolled_out("shop", "api", 1);
    let before = kube.discover(&Identity::default(), 100).await.unwrap();
    assert_eq!(before.observation.nodes.len(), 2);
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(kube_client(&server).await, "shop");
    api.delete("api", &Default::default()).await.unwrap();
    let after = kube.discover(&Identity::default(), 100).await.unwrap();
    let ids: Vec<String> = after
        .observation
        .nodes
        .iter()
        .map(|n| n.id.to_string())
        .collect();
    assert_eq!(ids, ["service:shop/web"]);
}

#[tokio::test]
async fn discovery_reads_at_most_its_bound_and_counts_the_rest() {
    let (server, kube) = cluster().await;
    for i in 0..5 {
        server.seed_rolled_out("shop", &format!("w{i}"), 1);
    }
    let found = kube.discover(&Identity::default(), 3).await.unwrap();
    assert_eq!(found.observation.nodes.len(), 3);
    assert_eq!(found.left_out, 2);
}

#[tokio::test]
async fn an_api_server_that_is_down_is_an_error() {
    let (server, kube) = cluster().await;
    drop(server);
    assert!(kube.discover(&Identity::default(), 10).await.is_err());
}

async fn kube_client(server: &TestServer) -> kube::Client {
    let config = kube::Config::new(server.url().parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn a_service_selecting_two_deployments_gives_each_address_to_the_pods_own() {
    let (server, kube) = cluster().await;
    // Stable and canary share `tier=web`; the Service selects both.
    let mut stable = grace_kube_testserver::deployment("shop", "web", 1);
    let mut canary = grace_kube_testserver::deployment("shop", "web-canary", 1);
    for d in [&mut stable, &mut canary] {
        if let Some(labels) = d
            .spec
            .template
            .metadata
            .as_mut()
            .and_then(|m| m.labels.as_mut())
        {
            labels.insert("tier".into(), "web".into());
        }
    }
    server.seed(stable).unwrap();
    server.seed(canary).unwrap();
    server.seed_service("shop", "web", &[("tier", "web")], &[8080]);
    server.seed_endpoint_slice(
        "shop",
        "web",
        &[
            SliceEndpoint {
                address: "10.4.0.1",
                ready: true,
                pod: Some("web-7d9f8b6c5-x2x7q"),
            },
            SliceEndpoint {
                address: "10.4.0.2",
                ready: true,
                pod: Some("web-canary-5c6d7e8f9-abcde"),
            },
            SliceEndpoint {
                address: "10.4.0.3",
                ready: true,
                pod: None,
            },
        ],
        8080,
    );
    let found = kube.discover(&Identity::default(), 100).await.unwrap();
    let addresses = |name: &str| {
        found
            .observation
            .node(&svc("shop", name))
            .unwrap()
            .addresses
            .clone()
    };
    assert_eq!(addresses("web"), ["10.4.0.1"]);
    assert_eq!(addresses("web-canary"), ["10.4.0.2"]);
}
