//! A real `moto_server` (the AWS service emulator) on a free loopback port, for the AWS
//! provider's tests.
//!
//! `moto_server` is looked up on `PATH`, then where pip puts scripts (`~/.local/bin`,
//! `~/.pyenv/shims`); `scripts/install-moto.sh` installs it. Two ways to run it:
//!
//! - [`Moto::start`]: a server of one test, killed when the [`Moto`] drops (for tests that stop
//!   it on purpose);
//! - [`Moto::shared`]: one server for the whole test process, started by the first test asking
//!   and stopped when the process exits, however it exits. Moto takes seconds of CPU to start
//!   and to load each service, so tests that can share one (separate group names and metric
//!   namespaces per test) run several times faster. Its log stays in
//!   `$TMPDIR/grace-e2e/moto-shared-<test binary>.log` until the binary's next run.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::e2e::{self, Process};

/// How to get `moto_server`, for skip messages.
pub const INSTALL_HINT: &str = "run scripts/install-moto.sh (pip install 'moto[server]')";

/// How long moto may take to start listening (it imports a lot of Python, on 2 busy cores).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs moto (`$1`, port `$2`) and stops it when standard input closes, which happens when the
/// test process exits, even by a panic or a signal; exits when moto does.
const WATCHDOG: &str = r#"
exec 3<&0
"$1" -H 127.0.0.1 -p "$2" </dev/null 3<&- &
moto=$!
{ cat <&3 >/dev/null; kill "$moto" 2>/dev/null; } &
exec 3<&-
wait "$moto"
"#;

/// A running `moto_server`.
pub struct Moto {
    port: u16,
    log: PathBuf,
    owner: Owner,
}

enum Owner {
    /// Started by one test: killed on drop.
    Test { _process: Process },
    /// Shared by the test process: the watchdog stops it when `_stdin` closes at exit.
    Process {
        _watchdog: Child,
        _stdin: ChildStdin,
    },
}

impl Moto {
    /// Starts a `moto_server` of this test on 127.0.0.1 and waits until it listens.
    ///
    /// When `moto_server` cannot be found, calls [`e2e::skip`] for `test` and returns `None`
    /// (which fails instead under `GRACE_E2E=required`).
    pub fn start(test: &str) -> Option<Moto> {
        let binary = find_or_skip(test)?;
        let port = e2e::free_port();
        let log = log_path(&format!("moto-{port}.log"));
        let mut command = Command::new(binary);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let mut process = Process::spawn("moto_server", command, &log);
        process.wait_for_port(port, START_TIMEOUT);
        Some(Moto {
            port,
            log,
            owner: Owner::Test { _process: process },
        })
    }

    /// The `moto_server` shared by every test of this process, started on first use.
    ///
    /// Skips like [`Moto::start`] when `moto_server` cannot be found.
    pub fn shared(test: &str) -> Option<&'static Moto> {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        if let Some(moto) = SHARED.get() {
            return Some(moto);
        }
        let binary = find_or_skip(test)?;
        // Concurrent first callers wait for the one that starts it.
        Some(SHARED.get_or_init(|| start_shared(&binary)))
    }

    /// The endpoint URL to give the AWS SDK: `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What it printed so far: one line per request.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Owner::Test { .. } = self.owner {
            if std::thread::panicking() {
                eprintln!("moto_server log kept at {}", self.log.display());
            } else {
                let _ = std::fs::remove_file(&self.log);
            }
        }
    }
}

fn start_shared(binary: &Path) -> Moto {
    let port = e2e::free_port();
    // One log per test binary, overwritten by its next run: kept for a failure's post-mortem
    // (the process is gone when anyone reads it), without piling up.
    let binary_name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "tests".to_owned());
    let log = log_path(&format!("moto-shared-{binary_name}.log"));
    let file = std::fs::File::create(&log)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let err = file
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot clone a file handle: {e}"));
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("moto-watchdog")
        .arg(binary)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("sh does not start moto_server: {e}"));
    let stdin = watchdog
        .stdin
        .take()
        .unwrap_or_else(|| panic!("no pipe to the moto_server watchdog"));
    let what = format!("moto_server to listen on 127.0.0.1:{port}");
    crate::poll_until(&what, START_TIMEOUT, || {
        if let Ok(Some(status)) = watchdog.try_wait() {
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("moto_server exited ({status}):\n{output}");
        }
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });
    Moto {
        port,
        log,
        owner: Owner::Process {
            _watchdog: watchdog,
            _stdin: stdin,
        },
    }
}

fn log_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("grace-e2e");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir.join(name)
}

fn find_or_skip(test: &str) -> Option<PathBuf> {
    let found = find();
    if found.is_none() {
        e2e::skip(test, "moto_server", INSTALL_HINT);
    }
    found
}

/// `moto_server` on `PATH`, else where pip installs scripts.
fn find() -> Option<PathBuf> {
    let home = std::env::var("HOME").unwrap_or_default();
    let local = format!("{home}/.local/bin");
    let pyenv = format!("{home}/.pyenv/shims");
    e2e::find_binary("moto_server", &[])
        .or_else(|| e2e::find_binary("moto_server", &[&local, &pyenv]))
}
