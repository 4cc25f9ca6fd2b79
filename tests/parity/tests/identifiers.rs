//! What the grant check saw is what reaches the server: injected identifiers are refused as
//! `invalid-argument` before any request, and a valid one reaches the server exactly as checked.
//!
//! - through a real guest (`identifier-injector`) and the capability path, against the
//!   Kubernetes test API server, whose request log records each request's method and raw path;
//! - through each real provider directly (defence in depth: the engine is not the only check),
//!   against the test API server for Kubernetes and against a counting endpoint for AWS and the
//!   Docker API, which must see no request at all.

#![allow(clippy::unwrap_used)]

mod common;

use common::{aws_settings, engine, runtime, sdk_config};

use grace_engine::trust::PassThrough;
use std::sync::Arc;
use std::time::Duration;

use grace_engine::{RunEnv, RunStatus, TriggerEvent};
use grace_executor::{
    ContainerExecutor, ExecError, Executors, KubernetesExecutor, Labels, ScalingExecutor,
    SystemClock,
};
use grace_kube_testserver::{ServerConfig, TestServer};
use grace_ledger::{Durability, Ledger};
use grace_testkit::fake_endpoint::{Behaviour, FakeEndpoint};
use grace_testkit::{build_guests, fixture};
use serde_json::json;

/// The Kubernetes provider on `server`.
fn kube(server: &TestServer) -> grace_kubernetes::Kube {
    grace_kubernetes::Kube::for_url(
        server.url(),
        &grace_kubernetes::KubeSettings {
            poll_interval: Duration::from_millis(50),
            ..grace_kubernetes::KubeSettings::default()
        },
    )
    .unwrap()
}

/// The raw paths the server received, in order.
fn paths(server: &TestServer) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Targets a glob grant (`*-canary`, `*-staging`, `checkout*`) accepts as text, each naming
/// something else on the wire, or nothing Kubernetes would accept.
const K8S_ATTACKS: &[(&str, &str)] = &[
    ("shop", "cart#-canary"),
    ("prod/deployments/cart?x=-staging", "checkout"),
    ("shop", "checkout/../cart"),
    ("shop", "cart%23-canary"),
    ("prod%2Fdeployments%2Fcart%3Fx%3D-staging", "checkout"),
    ("shop", "c\u{430}rt-canary"),
    ("shop", "checkout\u{2215}..\u{2215}cart"),
    ("shop", ""),
    ("", "checkout"),
    ("shop", "."),
    ("shop", ".."),
];

#[test]
fn injected_identifiers_from_a_guest_never_reach_the_api_server() {
    build_guests();
    let rt = runtime();
    let server = rt
        .block_on(TestServer::start(ServerConfig {
            step: Duration::from_millis(20),
        }))
        .unwrap();
    server.seed_rolled_out("shop", "checkout", 2);
    // What a successful attack would hit instead.
    server.seed_rolled_out("shop", "cart", 1);
    let kube = Arc::new(rt.block_on(async { kube(&server) }));
    // Scaling and containers are simulated: a call is routed to its provider before its
    // identifiers are checked by that provider's rules, so each capability needs one here.
    let sim = grace_sim::Simulation::new(&grace_sim::Fleet::default_fleet()).executors();
    let executors = Executors {
        kubernetes: grace_executor::Providers::single("kubernetes", kube),
        scaling: sim.scaling,
        containers: sim.containers,
        ..Executors::none(Arc::new(SystemClock))
    };
    let guest = engine().load(&fixture("identifier-injector")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(dir.path().join("grace.redb"), Durability::None).unwrap());
    let event = TriggerEvent {
        event_type: "test.identifiers".into(),
        source: "parity".into(),
        actor: "tests".into(),
        resource: "shop/checkout".into(),
        payload: json!({}),
        timestamp: grace_engine::event::system_now_millis(),
    };
    let report = rt.block_on(engine().run_playbook(
        &guest,
        &event,
        &RunEnv::new(executors, ledger.clone(), Arc::new(PassThrough)),
    ));
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "{:?}\n{}",
        report.failure,
        report.guest_stderr
    );
    rt.block_on(ledger.flush()).unwrap();
    ledger.verify().unwrap();

    // Only the valid call reached the server, at exactly the path of the namespace and name
    // the grant check saw: read the deployment, read and write its scale, read it back.
    let checked = "/apis/apps/v1/namespaces/shop/deployments/checkout";
    let requests = paths(&server);
    assert!(!requests.is_empty());
    for r in &requests {
        let path = r.split_once(' ').unwrap().1;
        assert!(
            path == checked || path == format!("{checked}/scale"),
            "a request went elsewhere than what was checked: {requests:#?}"
        );
    }
    assert!(
        requests.contains(&format!("PUT {checked}/scale")),
        "{requests:#?}"
    );
    assert_eq!(
        server.deployment("shop", "cart").unwrap().spec.replicas,
        Some(1),
        "the deployment an injection would have hit is untouched"
    );
    assert_eq!(
        server.deployment("shop", "checkout").unwrap().spec.replicas,
        Some(3)
    );
    rt.block_on(server.shutdown());
}

#[test]
fn the_kubernetes_provider_refuses_injected_identifiers_before_any_request() {
    let rt = runtime();
    let server = rt
        .block_on(TestServer::start(ServerConfig::default()))
        .unwrap();
    server.seed_rolled_out("shop", "cart", 1);
    let kube = rt.block_on(async { kube(&server) });
    for (namespace, name) in K8S_ATTACKS {
        let scaled = rt.block_on(kube.scale_deployment(namespace, name, 2));
        assert!(
            matches!(&scaled, Err(ExecError::InvalidArgument(_))),
            "{namespace:?}/{name:?}: {scaled:?}"
        );
        let read = rt.block_on(kube.get_deployment(namespace, name));
        assert!(matches!(read, Err(ExecError::InvalidArgument(_))));
        let restarted = rt.block_on(kube.rollout_restart(
            namespace,
            name,
            &grace_executor::kubernetes::restart_stamp(),
        ));
        assert!(matches!(restarted, Err(ExecError::InvalidArgument(_))));
        let waited = rt.block_on(kube.wait_for_rollout(namespace, name, Duration::ZERO));
        assert!(matches!(waited, Err(ExecError::InvalidArgument(_))));
    }
    assert_eq!(
        paths(&server),
        Vec::<String>::new(),
        "nothing reached the server"
    );

    // A valid name reaches it exactly as given.
    rt.block_on(kube.get_deployment("shop", "cart")).unwrap();
    assert_eq!(
        paths(&server),
        ["GET /apis/apps/v1/namespaces/shop/deployments/cart"]
    );
    rt.block_on(server.shutdown());
}

#[test]
fn the_aws_provider_refuses_injected_group_names_before_any_request() {
    let endpoint = FakeEndpoint::start(Behaviour::Silent);
    let rt = runtime();
    let settings = grace_aws::AwsSettings {
        call_timeout: Duration::from_millis(500),
        ..aws_settings(endpoint.endpoint())
    };
    let sdk = rt.block_on(sdk_config(&settings, "identifiers"));
    let aws = grace_aws::AutoScaling::new(&sdk, &settings);
    let long = format!("api-{}", "a".repeat(252));
    for name in [
        "",
        "api-asg\nforged",
        "api-\u{202E}gsa",
        "api\u{0}",
        long.as_str(),
        "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:x:autoScalingGroupName/api-asg",
    ] {
        let described = rt.block_on(aws.describe_group(name));
        assert!(
            matches!(&described, Err(ExecError::InvalidArgument(_))),
            "{name:?}: {described:?}"
        );
        let set = rt.block_on(aws.set_desired_capacity(name, 2));
        assert!(
            matches!(set, Err(ExecError::InvalidArgument(_))),
            "{name:?}"
        );
        let waited = rt.block_on(aws.wait_in_service(name, Duration::from_secs(1)));
        assert!(
            matches!(waited, Err(ExecError::InvalidArgument(_))),
            "{name:?}"
        );
    }
    assert_eq!(endpoint.requests(), 0, "nothing reached the endpoint");
}

#[test]
fn the_docker_provider_refuses_injected_references_and_labels_before_any_request() {
    let endpoint = FakeEndpoint::start(Behaviour::Silent);
    let rt = runtime();
    let docker = rt
        .block_on(async {
            grace_docker::Docker::connect(&grace_docker::DockerSettings {
                host: Some(format!("tcp://127.0.0.1:{}", endpoint.port())),
                call_timeout: Duration::from_millis(500),
                ..grace_docker::DockerSettings::default()
            })
        })
        .unwrap();
    for id in [
        "web-1/../cache-1",
        "web-1?force=1",
        "web-1#x",
        "w\u{435}b-1",
        "",
    ] {
        let inspected = rt.block_on(docker.inspect(id));
        assert!(
            matches!(&inspected, Err(ExecError::InvalidArgument(_))),
            "{id:?}: {inspected:?}"
        );
        for changed in [
            rt.block_on(docker.restart(id)),
            rt.block_on(docker.start(id)),
            rt.block_on(docker.stop(id)),
        ] {
            assert!(
                matches!(changed, Err(ExecError::InvalidArgument(_))),
                "{id:?}"
            );
        }
        let logs = rt.block_on(docker.logs(id, 1));
        assert!(matches!(logs, Err(ExecError::InvalidArgument(_))), "{id:?}");
    }
    for (key, value) in [("app=web", "x"), ("app", "web\n"), ("", "web")] {
        let selector = Labels::from([(key.to_owned(), value.to_owned())]);
        let listed = rt.block_on(docker.list(&selector));
        assert!(
            matches!(&listed, Err(ExecError::InvalidArgument(_))),
            "{key:?}={value:?}: {listed:?}"
        );
        let scaled = rt.block_on(docker.scale(&selector, 1));
        assert!(matches!(scaled, Err(ExecError::InvalidArgument(_))));
    }
    assert_eq!(endpoint.requests(), 0, "nothing reached the endpoint");
}
