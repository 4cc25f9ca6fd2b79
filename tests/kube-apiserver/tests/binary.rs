//! The `grace-kube-testserver` binary: prints its URL first, serves the deployments it was told
//! to seed, and refuses addresses other than loopback.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

/// The child process, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_grace-kube-testserver"))
}

#[tokio::test]
async fn the_binary_prints_its_url_first_and_serves_seeded_deployments() {
    let child = binary()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--step",
            "50ms",
            "--seed",
            "shop/checkout=3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim().to_owned()
    })
    .await
    .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "first line: `{url}`");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let api: Api<Deployment> = Api::namespaced(client, "shop");
    let d = api.get("checkout").await.unwrap();
    assert_eq!(d.spec.replicas, Some(3));
    assert_eq!(d.status.unwrap().ready_replicas, Some(3));
}

#[test]
fn the_binary_refuses_a_non_loopback_address() {
    let output = binary().args(["--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
}

#[test]
fn the_binary_refuses_a_malformed_seed() {
    let output = binary().args(["--seed", "checkout=3"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("namespace/name=replicas"), "{stderr}");
}
