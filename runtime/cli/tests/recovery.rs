//! Autonomous recovery, end to end: `grace serve` on real providers, with no simulated fleet.
//!
//! - an unhealthy container on a Docker-API engine (Podman here) is seen by the containers
//!   source and restarted by `restart-unhealthy-container`, and is healthy again;
//! - a saturated deployment is scaled by `k8s-scale-deployment` through `kube`, against the
//!   Kubernetes test API server, and rolls out;
//! - a playbook asking for more than its grant is denied, that is recorded, nothing changes.
//!
//! Podman is needed for the first (`just test` installs it); without it that test is skipped,
//! loudly, unless `GRACE_E2E=required`. The Kubernetes test API server is ours and always runs.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::cluster::Cluster;
use common::*;
use grace_testkit::podman::{Podman, TEST_IMAGE};
use grace_testkit::{example, example_manifest, poll_until};
use serde_json::{Value, json};

const FINAL: &[&str] = &["succeeded", "failed", "timed_out", "cancelled"];

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("grace.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn the_only_run(server: &Server, playbook: &str) -> Value {
    let run = poll_until(
        &format!("a run of {playbook}"),
        Duration::from_secs(120),
        || server.runs_of(playbook).into_iter().next(),
    );
    server.wait_state(run["id"].as_str().unwrap(), FINAL)
}

fn health(podman: &Podman, container: &str) -> String {
    podman
        .podman_ok(&["inspect", "--format", "{{.State.Health.Status}}", container])
        .trim()
        .to_owned()
}

#[test]
fn an_unhealthy_container_is_restarted_by_grace_and_is_healthy_again() {
    let Some(podman) = Podman::start("an_unhealthy_container_is_restarted_by_grace") else {
        return;
    };
    let tag = podman.tag().to_owned();
    let name = format!("{tag}-web-1");
    let label = podman.test_label();
    // The container is healthy while /tmp/healthy exists; its command creates it at start.
    podman.podman_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "app=web",
        "--label",
        &label,
        "--health-cmd",
        "test -f /tmp/healthy",
        "--health-interval",
        "1s",
        TEST_IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; touch /tmp/healthy; sleep 100000 & wait",
    ]);
    // Podman runs health checks from systemd timers, which this sandbox lacks: they run here,
    // as the timer would, every half second, until the test is over.
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let _ = podman.run_healthcheck(&name);
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            restart_scenario(&podman, &name)
        }));
        done.store(true, Ordering::Relaxed);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
}

fn restart_scenario(podman: &Podman, name: &str) {
    poll_until(
        "the container to be healthy",
        Duration::from_secs(60),
        || (health(podman, name) == "healthy").then_some(()),
    );
    // It starts failing its health check.
    podman.podman_ok(&["exec", name, "rm", "/tmp/healthy"]);
    poll_until(
        "the container to be unhealthy",
        Duration::from_secs(60),
        || (health(podman, name) == "unhealthy").then_some(()),
    );

    let data = data_dir();
    let config = write_config(
        data.path(),
        &format!(
            "[docker]\nhost = \"{}\"\ncall_timeout = \"60s\"\nstop_timeout = \"2s\"\n\n\
             [[sources.containers]]\nname = \"web-health\"\n\
             selector = {{ app = \"web\", \"grace.test\" = \"{}\" }}\nevery = \"1s\"\n",
            podman.docker_host(),
            podman.tag()
        ),
    );
    let server = Server::start_live(&path_of(&data), &["--config", &config]);
    let (_, health_body) = server.get("/healthz");
    assert_eq!(health_body["mode"], "live", "{health_body}");
    assert!(
        health_body["providers"]["containers"]["docker"]
            .as_str()
            .unwrap()
            .starts_with("docker unix://"),
        "{health_body}"
    );
    // The example playbook, looking after this test's containers only.
    let manifest = example_manifest(
        "restart-unhealthy-container",
        &[(
            "selector =",
            &format!("selector = \"app=web,grace.test={}\"", podman.tag()),
        )],
    );
    let (status, body) = server.upload(&manifest, component("restart_unhealthy_container"));
    assert_eq!(status, 201, "{body}");

    let run = the_only_run(&server, "restart-unhealthy-container");
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["event"]["event_type"], "container.unhealthy");
    assert_eq!(run["event"]["resource"], name);
    let restarts: Vec<&Value> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["function"] == "restart" && c["verdict"] == "allowed")
        .collect();
    assert_eq!(restarts.len(), 1, "{run:#}");
    // The playbook restarts by the id the provider listed.
    let id = podman.podman_ok(&["inspect", "--format", "{{.Id}}", name]);
    assert_eq!(restarts[0]["args"]["id"], id.trim());
    assert!(restarts[0]["result"]["ok"].is_object(), "{run:#}");

    poll_until(
        "the container to be healthy again",
        Duration::from_secs(60),
        || (health(podman, name) == "healthy").then_some(()),
    );
    let (_, source) = server.get("/v1/sources/web-health");
    assert_eq!(source["status"], "up", "{source:#}");
    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");
}

/// `grace serve` acting on `cluster`.
fn serve_on(cluster: &Cluster, data: &tempfile::TempDir) -> Server {
    let config = write_config(
        data.path(),
        &format!(
            "[kubernetes]\nkubeconfig = \"{}\"\npoll_interval = \"100ms\"\n",
            cluster.kubeconfig.display()
        ),
    );
    Server::start_live(&path_of(data), &["--config", &config])
}

fn saturated(replicas: u32) -> Value {
    json!({
        "event_type": "deployment.saturated", "source": "alertmanager", "actor": "tests",
        "resource": "shop/checkout", "payload": { "replicas": replicas },
    })
}

#[test]
fn a_saturated_deployment_is_scaled_through_kube_and_rolls_out() {
    let cluster = Cluster::start();
    cluster.server.seed_rolled_out("shop", "checkout", 2);
    let data = data_dir();
    let server = serve_on(&cluster, &data);
    let (_, health_body) = server.get("/healthz");
    assert!(
        health_body["providers"]["kubernetes"]["kubernetes"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{health_body}"
    );
    let manifest =
        std::fs::read_to_string(example("k8s-scale-deployment").join("playbook.toml")).unwrap();
    let (status, body) = server.upload(&manifest, component("k8s_scale_deployment"));
    assert_eq!(status, 201, "{body}");

    let (status, body) = server.post("/v1/events", saturated(4));
    assert_eq!(status, 202, "{body}");
    let run = the_only_run(&server, "k8s-scale-deployment");
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(cluster.replicas("shop", "checkout"), (4, 4));
    assert_eq!(run["outcome"]["details"]["ready_replicas"], "4", "{run:#}");
    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");
    drop(server);
    cluster.runtime.block_on(cluster.server.shutdown());
}

#[test]
fn a_playbook_asking_beyond_its_grant_is_denied_recorded_and_changes_nothing() {
    let cluster = Cluster::start();
    cluster.server.seed_rolled_out("shop", "checkout", 2);
    let data = data_dir();
    let server = serve_on(&cluster, &data);
    // The playbook would go to 6; its grant stops at 3.
    let manifest = example_manifest(
        "k8s-scale-deployment",
        &[
            ("max_replicas = 6", "max_replicas = 6"),
            ("max_step =", "max_step = 3"),
        ],
    )
    .replacen(
        "min_replicas = 1\nmax_replicas = 6",
        "min_replicas = 1\nmax_replicas = 3",
        1,
    );
    assert!(manifest.contains("max_replicas = 3"), "{manifest}");
    let (status, body) = server.upload(&manifest, component("k8s_scale_deployment"));
    assert_eq!(status, 201, "{body}");
    let writes_before = cluster.server.resource_version();

    let (status, body) = server.post("/v1/events", saturated(6));
    assert_eq!(status, 202, "{body}");
    let run = the_only_run(&server, "k8s-scale-deployment");
    assert_ne!(run["state"], "succeeded", "{run:#}");
    let denied: Vec<&Value> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "denied")
        .collect();
    assert_eq!(denied.len(), 1, "{run:#}");
    assert_eq!(denied[0]["function"], "scale-deployment");
    assert!(
        denied[0]["reason"].as_str().unwrap().contains('3'),
        "{:#}",
        denied[0]
    );

    // Nothing reached the cluster: no write, same replicas.
    assert_eq!(cluster.replicas("shop", "checkout"), (2, 2));
    assert_eq!(cluster.server.resource_version(), writes_before);
    // The denial is in the ledger, and the ledger verifies.
    let run_id = run["id"].as_str().unwrap();
    let (_, entries) = server.get(&format!("/v1/ledger/entries?run={run_id}"));
    let recorded = entries
        .as_array()
        .unwrap_or_else(|| panic!("{entries}"))
        .iter()
        .any(|e| e["function"] == "scale-deployment" && e["decision"]["verdict"] == "denied");
    assert!(recorded, "{entries:#}");
    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");
    drop(server);
    cluster.runtime.block_on(cluster.server.shutdown());
}
