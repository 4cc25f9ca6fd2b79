//! A real NATS JetStream cluster (Debian's `nats-server`, 2.9) of several nodes on loopback, for
//! the tests of GRACE's clustered mode.
//!
//! Each node has its own free client, route and monitoring ports on `127.0.0.1` and its own
//! JetStream store in the cluster's temporary directory. [`NatsCluster::start`] returns once
//! every node answers `/healthz?js-server-only=true`, which (unlike `js-enabled-only`) waits for a
//! JetStream meta leader and for the node to be current with it: streams can be created then.
//! A node can be killed (`SIGKILL`) and started again on the same ports and store, to test what
//! GRACE does when it loses one engine node. Everything is killed on drop; the directory is kept
//! (and its path printed) when the test is failing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::e2e::{self, Process};

/// How to get `nats-server`, for skip messages.
pub const INSTALL_HINT: &str =
    "install it with `apt-get install nats-server`, or run `just test-servers`";

/// How long a fresh cluster may take to elect its JetStream meta leader (0.5 s measured here).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts tried before a test fails (see [`NatsCluster::start`]).
const START_ATTEMPTS: u32 = 3;

/// The ports of one node.
#[derive(Debug, Clone, Copy)]
struct Ports {
    client: u16,
    route: u16,
    http: u16,
}

/// A running JetStream cluster on loopback.
pub struct NatsCluster {
    binary: PathBuf,
    ports: Vec<Ports>,
    nodes: Vec<Option<Process>>,
    dir: Option<tempfile::TempDir>,
}

impl NatsCluster {
    /// Starts a cluster of `size` nodes and waits until each one is a current member of the
    /// JetStream meta group.
    ///
    /// When the binary cannot be found, calls [`e2e::skip`] for `test` and returns `None` (which
    /// fails instead under `GRACE_E2E=required`). Panics, with the logs, when a node exits at
    /// start or the cluster does not become ready.
    pub fn start(test: &str, size: usize) -> Option<NatsCluster> {
        let Some(binary) = binary() else {
            e2e::skip(
                test,
                "NATS (`nats-server` in /usr/sbin, /usr/bin or on PATH)",
                INSTALL_HINT,
            );
            return None;
        };
        // Ports are picked free, then bound by nats-server: another test may take one in
        // between. A cluster whose node could not bind starts again on other ports.
        for attempt in 1..=START_ATTEMPTS {
            let mut cluster = NatsCluster::configure(binary.clone(), size);
            match cluster.boot() {
                Ok(()) => return Some(cluster),
                Err(log) if attempt < START_ATTEMPTS && log.contains("address already in use") => {
                    eprintln!("NATS test cluster: a port was taken meanwhile, starting again");
                }
                Err(log) => panic!("the NATS test cluster does not start:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn configure(binary: PathBuf, size: usize) -> NatsCluster {
        let dir = tempfile::Builder::new()
            .prefix("grace-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("no temporary directory for NATS: {e}"));
        let ports: Vec<Ports> = (0..size)
            .map(|_| Ports {
                client: e2e::free_port(),
                route: e2e::free_port(),
                http: e2e::free_port(),
            })
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{}", p.route))
            .collect();
        for (i, p) in ports.iter().enumerate() {
            let config = node_config(i, *p, &routes, &dir.path().join(format!("n{i}")));
            let file = dir.path().join(format!("n{i}.conf"));
            std::fs::write(&file, config)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        }
        NatsCluster {
            binary,
            ports,
            nodes: (0..size).map(|_| None).collect(),
            dir: Some(dir),
        }
    }

    /// Starts every node and waits until each is current; the log of a node that exited
    /// otherwise.
    fn boot(&mut self) -> Result<(), String> {
        for i in 0..self.ports.len() {
            self.spawn(i);
        }
        for i in 0..self.ports.len() {
            let http = self.ports[i].http;
            let deadline = std::time::Instant::now() + START_TIMEOUT;
            loop {
                if self.nodes[i].as_mut().is_some_and(Process::has_exited) {
                    return Err(self.log(i));
                }
                if let Some((200, _)) = http_get(http, "/healthz?js-server-only=true") {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(format!(
                        "node n{i} not current after {START_TIMEOUT:?}:\n{}",
                        self.log(i)
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The client URLs of the nodes, `nats://127.0.0.1:<port>`, in node order.
    pub fn urls(&self) -> Vec<String> {
        (0..self.ports.len()).map(|i| self.url(i)).collect()
    }

    /// The client URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.ports[i].client)
    }

    /// The client port of node `i` (what a cutting proxy forwards to).
    pub fn client_port(&self, i: usize) -> u16 {
        self.ports[i].client
    }

    /// Kills node `i` with `SIGKILL` (and reaps it): its store stays for [`NatsCluster::restart`].
    pub fn kill(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    /// Starts node `i` again on its ports and store, and waits until it is current again.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        self.spawn(i);
        self.wait_ready(i);
    }

    /// What node `i` logged so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir().join(format!("n{i}.log"))).unwrap_or_default()
    }

    /// The JetStream monitoring report of node `i` (`/jsz`, JSON text): which node leads the
    /// meta group, for a test that kills a leader.
    pub fn jsz(&self, i: usize) -> Option<String> {
        http_get(self.ports[i].http, "/jsz?accounts=true&streams=true").map(|(_, body)| body)
    }

    /// The index of the node leading `stream`, as the running nodes' `/jsz` report it.
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        (0..self.ports.len())
            .filter(|i| self.nodes[*i].is_some())
            .filter_map(|i| self.jsz(i))
            .filter_map(|jsz| serde_json::from_str::<serde_json::Value>(&jsz).ok())
            .find_map(|json| {
                json["account_details"]
                    .as_array()?
                    .iter()
                    .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
                    .find(|s| s["name"] == stream)?["cluster"]["leader"]
                    .as_str()?
                    .strip_prefix('n')?
                    .parse()
                    .ok()
            })
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    fn spawn(&mut self, i: usize) {
        let mut command = Command::new(&self.binary);
        command.arg("-c").arg(self.dir().join(format!("n{i}.conf")));
        let process = Process::spawn(
            &format!("nats-server n{i}"),
            command,
            &self.dir().join(format!("n{i}.log")),
        );
        self.nodes[i] = Some(process);
    }

    fn wait_ready(&mut self, i: usize) {
        let http = self.ports[i].http;
        let what = format!("NATS node n{i} to be a current JetStream member");
        let node = self.nodes[i].as_mut().expect("node started");
        crate::poll_until(&what, START_TIMEOUT, || {
            node.assert_running();
            match http_get(http, "/healthz?js-server-only=true") {
                Some((200, _)) => Some(()),
                _ => None,
            }
        });
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("NATS cluster's files kept at {}", dir.keep().display());
        }
    }
}

/// A `[cluster]` section of `grace.toml` on `urls`, followed by `settings` (more keys of the
/// section, one per line).
pub fn cluster_toml(urls: &[String], settings: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!("[cluster]\nnats = [{}]\n{settings}", urls.join(", "))
}

/// The configuration of node `i`: client, route and monitoring ports on loopback only, a
/// JetStream store of its own (its limit is accounting: the event log reserves its `max_bytes`
/// there), and every node (itself included, which NATS ignores) as a route.
/// A single node runs without a cluster block: a JetStream cluster of one never elects a meta
/// leader.
fn node_config(i: usize, ports: Ports, routes: &[String], store: &Path) -> String {
    let mut config = format!(
        "server_name: n{i}\n\
         listen: 127.0.0.1:{client}\n\
         http: 127.0.0.1:{http}\n\
         jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 64MB\n  max_file_store: 16GB\n}}\n",
        client = ports.client,
        http = ports.http,
        store = store.display(),
    );
    if routes.len() > 1 {
        config.push_str(&format!(
            "cluster {{\n  name: grace-test\n  listen: 127.0.0.1:{route}\n  routes: [\n    {routes}\n  ]\n}}\n",
            route = ports.route,
            routes = routes.join("\n    "),
        ));
    }
    config
}

/// A plain HTTP/1.0 GET on the loopback monitoring port: the status and the body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Debian's `nats-server` (in `/usr/sbin`), else one on `PATH`.
fn binary() -> Option<PathBuf> {
    e2e::find_binary("nats-server", &["/usr/sbin", "/usr/bin"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_config_lists_every_route_and_binds_loopback_only() {
        let routes = vec![
            "nats-route://127.0.0.1:1".to_owned(),
            "nats-route://127.0.0.1:2".to_owned(),
        ];
        let config = node_config(
            1,
            Ports {
                client: 10,
                route: 2,
                http: 30,
            },
            &routes,
            Path::new("/tmp/x/n1"),
        );
        assert!(config.contains("server_name: n1\n"));
        assert!(config.contains("listen: 127.0.0.1:10\n"));
        assert!(config.contains("http: 127.0.0.1:30\n"));
        assert!(config.contains("listen: 127.0.0.1:2\n"));
        assert!(config.contains("nats-route://127.0.0.1:1\n    nats-route://127.0.0.1:2"));
        assert!(config.contains("store_dir: \"/tmp/x/n1\""));
        let alone = node_config(
            0,
            Ports {
                client: 10,
                route: 2,
                http: 30,
            },
            &routes[..1],
            Path::new("/tmp/x/n0"),
        );
        assert!(!alone.contains("cluster"), "{alone}");
    }
}
