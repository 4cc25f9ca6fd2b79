//! A real Alertmanager (Debian's `prometheus-alertmanager`, 0.25) on a free loopback port, for the
//! end-to-end alert tests.
//!
//! The binary is looked up as `prometheus-alertmanager` (Debian's name) in `/usr/bin` or on
//! `PATH`, then as `alertmanager` on `PATH`; `just test-servers` installs Debian's. Each
//! [`Alertmanager`] runs with a configuration the test writes, its own temporary storage, its
//! web API on `127.0.0.1` and clustering off (an empty `--cluster.listen-address`), and is killed
//! when it drops. Its directory (configuration, storage, log) is removed then, unless the test is
//! failing: then it is kept and its path printed, for the post-mortem.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::e2e::{self, Process};

/// How to get Alertmanager, for skip messages.
pub const INSTALL_HINT: &str =
    "install it with `apt-get install prometheus-alertmanager`, or run `just test-servers`";

/// How long Alertmanager may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Alertmanager.
pub struct Alertmanager {
    process: Process,
    port: u16,
    dir: Option<tempfile::TempDir>,
}

impl Alertmanager {
    /// Starts Alertmanager with `config` (its YAML configuration) on a free loopback port and
    /// waits until it listens.
    ///
    /// When the binary cannot be found, calls [`e2e::skip`] for `test` and returns `None` (which
    /// fails instead under `GRACE_E2E=required`). Panics, with its log, when it exits at start
    /// (a configuration it refuses, for one).
    pub fn start(test: &str, config: &str) -> Option<Alertmanager> {
        let Some(binary) = binary() else {
            e2e::skip(
                test,
                "Alertmanager (`prometheus-alertmanager` in /usr/bin or on PATH)",
                INSTALL_HINT,
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("grace-alertmanager-")
            .tempdir()
            .unwrap_or_else(|e| panic!("no temporary directory for Alertmanager: {e}"));
        let config_file = dir.path().join("alertmanager.yml");
        std::fs::write(&config_file, config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_file.display()));
        let port = e2e::free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No gossip with peers: a lone instance, no port beyond the web API's.
            .arg("--cluster.listen-address=")
            .arg("--log.level=debug");
        let mut process = Process::spawn(
            "alertmanager",
            command,
            &dir.path().join("alertmanager.log"),
        );
        process.wait_for_port(port, START_TIMEOUT);
        Some(Alertmanager {
            process,
            port,
            dir: Some(dir),
        })
    }

    /// Its base URL, `http://127.0.0.1:<port>`: give it to Prometheus' `alerting` section.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port its API listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What it logged so far (at debug level: every alert received, every notification sent).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Panics with its log if it has exited.
    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("Alertmanager's files kept at {}", dir.keep().display());
        }
    }
}

/// Debian's `prometheus-alertmanager`, else an `alertmanager` on `PATH`.
fn binary() -> Option<PathBuf> {
    e2e::find_binary("prometheus-alertmanager", &["/usr/bin"])
        .or_else(|| e2e::find_binary("alertmanager", &[]))
}
