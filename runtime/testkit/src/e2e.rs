//! Support for end-to-end tests against real external servers (Prometheus, Alertmanager, moto,
//! Podman's Docker API, the Kubernetes test API server).
//!
//! The policy is the same everywhere: when a server cannot be found the test is skipped with a
//! loud message, unless `GRACE_E2E=required` (as `.ci/run` sets it), where absence fails.
//!
//! A skipped test still counts as passed for cargo, which hides the output of passing tests.
//! So a skip is also appended to the file named by `GRACE_SKIP_LOG` when it is set: `just test`
//! sets it and ends with the number and names of the tests that were skipped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Whether missing external servers are failures (`GRACE_E2E=required`).
pub fn required() -> bool {
    std::env::var("GRACE_E2E").is_ok_and(|v| v == "required")
}

/// Call when `test` cannot run because `what` is missing: panics under `GRACE_E2E=required`,
/// otherwise prints a loud skip message with `how` (how to get it). The caller returns after.
pub fn skip(test: &str, what: &str, how: &str) {
    assert!(
        !required(),
        "GRACE_E2E=required but {what} is missing for {test}: {how}"
    );
    eprintln!(
        "\n*** SKIPPED {test}: {what} is missing ({how}; GRACE_E2E=required makes this a failure) ***\n"
    );
    if let Some(log) = std::env::var_os(SKIP_LOG) {
        record_skip(Path::new(&log), test, what);
    }
}

/// The environment variable naming the file skips are appended to.
pub const SKIP_LOG: &str = "GRACE_SKIP_LOG";

/// Appends `test: what is missing` to `log` as one write, so that test processes running at
/// once (`O_APPEND`, a line far below `PIPE_BUF`) do not interleave their lines. A log that
/// cannot be written fails the test: a skip nobody would hear of is what the log prevents.
fn record_skip(log: &Path, test: &str, what: &str) {
    use std::io::Write;
    let line = format!("{test}: {what} is missing\n");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut file| file.write_all(line.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot record the skip of {test} in {}: {e}", log.display()));
}

/// The first executable called `name` in `extra` directories or on `PATH`.
pub fn find_binary(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    extra
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A loopback port that was free when asked.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// A child process killed (and reaped) on drop, with its output in a log file.
pub struct Process {
    child: Child,
    log: PathBuf,
    name: String,
}

impl Process {
    /// Starts `command` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Process {
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone a file handle: {e}"));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        Process {
            child,
            log: log.to_owned(),
            name: name.to_owned(),
        }
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Panics with its log if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }

    /// Waits until something accepts TCP connections on `127.0.0.1:port`, or panics with the log.
    pub fn wait_for_port(&mut self, port: u16, timeout: Duration) {
        let what = format!("{} to listen on 127.0.0.1:{port}", self.name);
        crate::poll_until(&what, timeout, || {
            self.assert_running();
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        });
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_appended_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skips");
        record_skip(&log, "first_test", "moto_server");
        record_skip(&log, "second_test", "podman");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "first_test: moto_server is missing\nsecond_test: podman is missing\n"
        );
    }
}
