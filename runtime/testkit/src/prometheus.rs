//! A real Prometheus (Debian's `prometheus`, 2.42) on a free loopback port, with a configuration
//! and rule files the test writes.
//!
//! The binary is looked up in `/usr/bin` or on `PATH`; `just test-servers` installs Debian's.
//! Each [`Prometheus`] has its own temporary directory (configuration, rule files, TSDB, log),
//! listens on `127.0.0.1` and is killed when it drops; the directory is removed then, unless the
//! test is failing: then it is kept and its path printed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::e2e::{self, Process};

/// How to get Prometheus, for skip messages.
pub const INSTALL_HINT: &str =
    "install it with `apt-get install prometheus`, or run `just test-servers`";

/// How long Prometheus may take to listen (it replays its write-ahead log first).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Prometheus.
pub struct Prometheus {
    process: Process,
    port: u16,
    dir: Option<tempfile::TempDir>,
}

impl Prometheus {
    /// Starts Prometheus with `config` (its YAML configuration) beside `files` (name, text: rule
    /// files, which `config` names relative to its own directory) on a free loopback port, and
    /// waits until it listens.
    ///
    /// When the binary cannot be found, calls [`e2e::skip`] for `test` and returns `None` (which
    /// fails instead under `GRACE_E2E=required`). Panics, with its log, when it exits at start.
    pub fn start(test: &str, config: &str, files: &[(&str, &str)]) -> Option<Prometheus> {
        let Some(binary) = binary() else {
            e2e::skip(
                test,
                "the `prometheus` binary (/usr/bin/prometheus or on PATH)",
                INSTALL_HINT,
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("grace-prometheus-")
            .tempdir()
            .unwrap_or_else(|e| panic!("no temporary directory for Prometheus: {e}"));
        let config_file = dir.path().join("prometheus.yml");
        for (name, text) in [("prometheus.yml", config)]
            .into_iter()
            .chain(files.iter().copied())
        {
            let path = dir.path().join(name);
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        let port = e2e::free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let mut process = Process::spawn("prometheus", command, &dir.path().join("prometheus.log"));
        process.wait_for_port(port, START_TIMEOUT);
        Some(Prometheus {
            process,
            port,
            dir: Some(dir),
        })
    }

    /// Its base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Panics with its log if it has exited.
    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("Prometheus' files kept at {}", dir.keep().display());
        }
    }
}

/// Where Prometheus is, if anywhere (for tests that only check).
pub fn binary() -> Option<PathBuf> {
    e2e::find_binary("prometheus", &["/usr/bin"])
}
