//! The Kubernetes test API server that end-to-end tests point `grace` at: on a runtime of its
//! own (it answers while the test's thread waits for a `grace` process), with a kubeconfig
//! naming it and a `grace.toml` acting on it.

use std::path::PathBuf;
use std::time::Duration;

use grace_kube_testserver::{ServerConfig, TestServer};

/// The test API server, the runtime serving it and the directory of its kubeconfig.
pub struct Cluster {
    /// Serves the API server; lives as long as it does.
    pub runtime: tokio::runtime::Runtime,
    /// The API server (seed deployments with `seed_rolled_out`).
    pub server: TestServer,
    /// A kubeconfig whose current context is the server.
    pub kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// An empty API server whose rollouts step every 50 ms.
    pub fn start() -> Cluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime
            .block_on(TestServer::start(ServerConfig {
                step: Duration::from_millis(50),
            }))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
                 clusters:\n- name: test\n  cluster:\n    server: {}\n\
                 contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
                 users:\n- name: test\n  user: {{}}\n",
                server.url()
            ),
        )
        .unwrap();
        Cluster {
            runtime,
            server,
            kubeconfig,
            dir,
        }
    }

    /// Writes a `grace.toml` whose `[kubernetes]` table names this cluster's kubeconfig, then
    /// `extra` lines of that table; returns its path.
    pub fn config(&self, extra: &str) -> PathBuf {
        let config = self.dir.path().join("grace.toml");
        std::fs::write(
            &config,
            format!(
                "[kubernetes]\nkubeconfig = \"{}\"\n{extra}",
                self.kubeconfig.display()
            ),
        )
        .unwrap();
        config
    }

    /// `(spec.replicas, status.readyReplicas)` of deployment `namespace/name`.
    pub fn replicas(&self, namespace: &str, name: &str) -> (i32, i32) {
        let d = self.server.deployment(namespace, name).unwrap();
        let spec = d.spec.replicas.unwrap_or(1);
        let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        (spec, ready)
    }
}
