//! `[kubernetes]` settings and [`Kube::connect`]: an explicit kubeconfig and context reach the
//! cluster they name, and what is wrong is said plainly.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use grace_executor::{ExecError, KubernetesExecutor};
use grace_kube_testserver::{ServerConfig, TestServer};
use grace_kubernetes::{ConnectError, Kube, KubeSettings};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GraceToml {
    kubernetes: KubeSettings,
}

fn parse(text: &str) -> Result<KubeSettings, String> {
    toml::from_str::<GraceToml>(text)
        .map(|f| f.kubernetes)
        .map_err(|e| e.to_string())
}

#[test]
fn settings_read_from_a_kubernetes_table() {
    let s = parse(
        r#"
        [kubernetes]
        kubeconfig = "/etc/grace/kubeconfig"
        context = "prod-eu"
        call_timeout = "3s"
        poll_interval = "250ms"
        conflict_retries = 2
        "#,
    )
    .unwrap();
    assert_eq!(
        s.kubeconfig.as_deref(),
        Some(Path::new("/etc/grace/kubeconfig"))
    );
    assert_eq!(s.context.as_deref(), Some("prod-eu"));
    assert_eq!(s.call_timeout, Duration::from_secs(3));
    assert_eq!(s.poll_interval, Duration::from_millis(250));
    assert_eq!(s.conflict_retries, 2);
    assert!(s.validate().is_ok());
}

#[test]
fn an_empty_table_is_the_defaults() {
    let s = parse("[kubernetes]\n").unwrap();
    assert_eq!(s, KubeSettings::default());
    assert_eq!(s.call_timeout, Duration::from_secs(10));
    assert_eq!(s.poll_interval, Duration::from_secs(1));
    assert_eq!(s.conflict_retries, 5);
}

#[test]
fn unknown_keys_and_bad_durations_are_refused() {
    let unknown = parse("[kubernetes]\ntimeout = \"3s\"\n").unwrap_err();
    assert!(unknown.contains("timeout"), "{unknown}");
    let bad = parse("[kubernetes]\ncall_timeout = \"soon\"\n").unwrap_err();
    assert!(bad.contains("\"soon\", expected a duration"), "{bad}");
}

#[test]
fn zero_durations_do_not_validate() {
    let s = KubeSettings {
        poll_interval: Duration::ZERO,
        ..KubeSettings::default()
    };
    assert!(s.validate().unwrap_err().contains("poll_interval"));
}

/// A kubeconfig with two clusters: `test` (the server) and `dead` (nothing listens), the
/// current context being `dead`.
fn kubeconfig(dir: &Path, server: &str) -> std::path::PathBuf {
    let dead = grace_testkit::e2e::free_port();
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
- name: dead
  cluster:
    server: http://127.0.0.1:{dead}
contexts:
- name: test
  context:
    cluster: test
    user: nobody
- name: dead
  context:
    cluster: dead
    user: nobody
current-context: dead
users:
- name: nobody
  user: {{}}
"
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn an_explicit_kubeconfig_and_context_reach_that_cluster() {
    let server = TestServer::start(ServerConfig::default()).await.unwrap();
    server.seed_rolled_out("shop", "checkout", 2);
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), server.url());

    let chosen = KubeSettings {
        kubeconfig: Some(path.clone()),
        context: Some("test".to_owned()),
        call_timeout: Duration::from_secs(3),
        ..KubeSettings::default()
    };
    let kube = Kube::connect(&chosen).await.unwrap();
    assert_eq!(kube.server(), server.url());
    let d = kube.get_deployment("shop", "checkout").await.unwrap();
    assert_eq!(d.ready_replicas, 2);

    // Without a context, the kubeconfig's current one (nothing listens there).
    let current = KubeSettings {
        context: None,
        ..chosen
    };
    let kube = Kube::connect(&current).await.unwrap();
    let err = kube.get_deployment("shop", "checkout").await.unwrap_err();
    assert!(matches!(err, ExecError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_missing_kubeconfig_or_context_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let err = Kube::connect(&KubeSettings {
        kubeconfig: Some(missing.clone()),
        ..KubeSettings::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::Kubeconfig { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let path = kubeconfig(dir.path(), "http://127.0.0.1:1");
    let err = Kube::connect(&KubeSettings {
        kubeconfig: Some(path),
        context: Some("staging".to_owned()),
        ..KubeSettings::default()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("staging"), "{err}");
}

#[tokio::test]
async fn a_url_backend_refuses_kubeconfig_settings_and_bad_urls() {
    let with_context = KubeSettings {
        context: Some("test".to_owned()),
        ..KubeSettings::default()
    };
    assert!(matches!(
        Kube::for_url("http://127.0.0.1:6443", &with_context).unwrap_err(),
        ConnectError::Settings(_)
    ));
    for url in ["127.0.0.1:6443", "ftp://host", "not a url"] {
        let err = Kube::for_url(url, &KubeSettings::default()).unwrap_err();
        assert!(
            matches!(err, ConnectError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
    }
}

#[test]
fn a_url_backend_needs_a_tokio_runtime() {
    let err = Kube::for_url("http://127.0.0.1:6443", &KubeSettings::default()).unwrap_err();
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
}
