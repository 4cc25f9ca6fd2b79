//! A real Docker-compatible engine for tests: Podman's Docker API service on a private socket.
//!
//! [`Podman::start`] finds `podman` (else the test is skipped through [`e2e::skip`]), writes the
//! `containers.conf` this sandbox needs (crun cannot handle its hybrid cgroup layout, and
//! Podman's default RLIMIT_NOFILE is above the hard limit), makes sure the test image exists,
//! and starts `podman system service --time=0 unix://<dir>/podman.sock` as an
//! [`e2e::Process`], waiting until the socket answers `/_ping`. Point a Docker client at
//! [`Podman::docker_host`].
//!
//! **Storage.** Every instance uses one storage tree per user under the temp directory
//! (`grace-podman-<uid>/`: `--root`, `--runroot` and `--tmpdir`), separate from the user's own
//! Podman, so tests never see or touch the user's containers and images, and the test image is
//! imported once per machine rather than once per test. Several services (one per test, test
//! processes in parallel) share that tree safely: Podman locks its store for every change, as
//! it does when its CLI and service run side by side. Tests keep apart by labels and names:
//! each instance has a unique [`Podman::tag`]; put it in the names of the containers a test
//! creates and label them `grace.test=<tag>` ([`Podman::TEST_LABEL`]), and dropping the instance
//! removes them (after a failure too), then stops the service.
//!
//! **The test image** `localhost/grace-busybox:test` ([`TEST_IMAGE`]) is a root filesystem with
//! the static `/bin/busybox` (Debian's `busybox-static`) and links for `sh`, `sleep`, `httpd`,
//! `true`, `false`, `cat`, `echo`, `test`, `rm` and `touch`, packed with `tar` and loaded with
//! `podman import` (no registry is reachable). It has no default command: give one.
//!
//! **Health checks.** Podman runs a container's health check from a systemd timer
//! (`podman healthcheck run <id>` every interval). Without systemd, as here, creating such a
//! container only logs "unable to get systemd connection to add healthchecks" and its
//! `State.Health.Status` stays `starting` forever. So tests do the timer's job:
//! [`Podman::run_healthcheck`] runs one check, and the engine records the result exactly as the
//! timer's run would (`healthy`; `unhealthy` after `Retries` failures in a row; a restart
//! resets it to `starting`). Everything read through the Docker API (`State.Health`) is then
//! what a Docker Engine reports; only the schedule is the test's. Podman 4.3 has no other
//! scheduler (no setting runs checks in-process).
//!
//! Install everything with `scripts/install-podman.sh` (`apt-get install -y podman runc
//! busybox-static`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::e2e;

/// The image every test container runs.
pub const TEST_IMAGE: &str = "localhost/grace-busybox:test";

/// What tests need, and how to get it, for skip messages.
const HOW: &str = "run scripts/install-podman.sh (apt-get install -y podman runc busybox-static)";

/// The configuration that works in this sandbox (see the module documentation).
const CONTAINERS_CONF: &str = "\
[containers]
default_ulimits = []
[engine]
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
runtime = \"runc\"
";

/// The busybox applets the test image links.
const APPLETS: &[&str] = &[
    "sh", "sleep", "httpd", "true", "false", "cat", "echo", "test", "rm", "touch",
];

/// How long the service may take to answer its socket (a loaded 2-core machine is slow).
const SERVICE_START: Duration = Duration::from_secs(60);

/// Numbers instances within one test process.
static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// A running Podman Docker API service, stopped on drop after removing the containers labelled
/// with its [`Podman::tag`].
pub struct Podman {
    binary: PathBuf,
    store: PathBuf,
    dir: PathBuf,
    tag: String,
    service: e2e::Process,
}

impl Podman {
    /// The label key whose value is [`Podman::tag`] on the containers a test creates.
    pub const TEST_LABEL: &'static str = "grace.test";

    /// Starts a service for `test`, or returns `None` after [`e2e::skip`] when Podman, runc or
    /// busybox is missing. Panics, with the service's log, if it does not come up.
    pub fn start(test: &str) -> Option<Podman> {
        let Some(binary) = e2e::find_binary("podman", &["/usr/bin"]) else {
            e2e::skip(test, "podman", HOW);
            return None;
        };
        if e2e::find_binary("runc", &["/usr/sbin", "/usr/bin"]).is_none() {
            e2e::skip(test, "runc", HOW);
            return None;
        }
        let Some(busybox) = busybox() else {
            e2e::skip(test, "a static busybox (/bin/busybox)", HOW);
            return None;
        };
        let store = store_dir();
        std::fs::create_dir_all(&store)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", store.display()));
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let tag = format!("t{}n{n}", std::process::id());
        write_atomically(
            &store.join("containers.conf"),
            CONTAINERS_CONF.as_bytes(),
            &tag,
        );
        let dir = store.join(format!("svc-{tag}"));
        // A leftover of an earlier process with the same pid: nothing in it is worth keeping.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let socket = dir.join("podman.sock");
        // sockaddr_un holds 108 bytes with the terminating NUL.
        assert!(
            socket.as_os_str().len() < 108,
            "the socket path {} is too long for a Unix socket; set TMPDIR to a shorter directory",
            socket.display()
        );

        let mut command = Command::new(&binary);
        command
            .env("CONTAINERS_CONF", store.join("containers.conf"))
            .args(store_args(&store))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()));
        let mut service =
            e2e::Process::spawn("podman system service", command, &dir.join("service.log"));
        crate::poll_until(
            &format!("podman system service to answer on {}", socket.display()),
            SERVICE_START,
            || {
                service.assert_running();
                pings(&socket).then_some(())
            },
        );
        let podman = Podman {
            binary,
            store,
            dir,
            tag,
            service,
        };
        podman.ensure_image(&busybox);
        Some(podman)
    }

    /// `unix://<socket>`, for `DOCKER_HOST` or a client's host setting.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The service's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("podman.sock")
    }

    /// Unique to this instance (`t<pid>n<k>`): for container names and the
    /// [`Podman::TEST_LABEL`] label. Put it first in names (`<tag>-web`), so that a name does
    /// not end in `-<number>` unless a test means it to.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `grace.test=<tag>`, as `podman --filter label=` and Docker's label filter take it.
    pub fn test_label(&self) -> String {
        format!("{}={}", Self::TEST_LABEL, self.tag)
    }

    /// What the service printed so far.
    pub fn log(&self) -> String {
        self.service.log()
    }

    /// Runs the `podman` CLI on the same store and configuration as the service.
    pub fn podman(&self, args: &[&str]) -> Output {
        podman_command(&self.binary, &self.store)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("podman {args:?} does not start: {e}"))
    }

    /// Like [`Podman::podman`], panicking with its stderr unless it succeeds; returns stdout.
    pub fn podman_ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `container`'s health check once, as Podman's systemd timer would: `Some(true)` when
    /// it passed, `Some(false)` when it failed, `None` when it could not run (no health check,
    /// container not running).
    pub fn run_healthcheck(&self, container: &str) -> Option<bool> {
        match self
            .podman(&["healthcheck", "run", container])
            .status
            .code()
        {
            Some(0) => Some(true),
            Some(1) => Some(false),
            _ => None,
        }
    }

    /// Imports [`TEST_IMAGE`] unless the store has it, once per store: a lock file keeps
    /// concurrent test processes from importing it twice.
    fn ensure_image(&self, busybox: &Path) {
        static CHECKED: OnceLock<()> = OnceLock::new();
        CHECKED.get_or_init(|| {
            let lock_path = self.store.join("image.lock");
            let lock = std::fs::File::create(&lock_path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
            lock.lock()
                .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
            if self
                .podman(&["image", "exists", TEST_IMAGE])
                .status
                .success()
            {
                return;
            }
            let build = self.store.join(format!("image-build-{}", self.tag));
            let _ = std::fs::remove_dir_all(&build);
            let rootfs = build.join("rootfs");
            for sub in ["bin", "tmp", "etc"] {
                std::fs::create_dir_all(rootfs.join(sub))
                    .unwrap_or_else(|e| panic!("cannot create the test image's /{sub}: {e}"));
            }
            std::fs::copy(busybox, rootfs.join("bin/busybox"))
                .unwrap_or_else(|e| panic!("cannot copy {}: {e}", busybox.display()));
            for applet in APPLETS {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
                    .unwrap_or_else(|e| panic!("cannot link /bin/{applet}: {e}"));
            }
            // /tmp must be writable by anyone, as on any Unix.
            let status = Command::new("chmod")
                .arg("1777")
                .arg(rootfs.join("tmp"))
                .status();
            assert!(status.is_ok_and(|s| s.success()), "chmod 1777 /tmp failed");
            let tar = build.join("rootfs.tar");
            let status = Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "tar could not pack the test image's root filesystem"
            );
            let tar_path = tar.to_string_lossy().into_owned();
            self.podman_ok(&["import", "--quiet", &tar_path, TEST_IMAGE]);
            let _ = std::fs::remove_dir_all(&build);
        });
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let label = format!("label={}", self.test_label());
        let out = self.podman(&[
            "rm",
            "--force",
            "--volumes",
            "--time",
            "0",
            "--filter",
            &label,
        ]);
        if !out.status.success() {
            eprintln!(
                "podman could not remove the containers labelled {label}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The service is killed when `service` drops, after this.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `podman` with the shared store's flags and configuration.
fn podman_command(binary: &Path, store: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env("CONTAINERS_CONF", store.join("containers.conf"))
        .args(store_args(store));
    command
}

/// The global flags that select the shared test store.
fn store_args(store: &Path) -> Vec<String> {
    let path = |sub: &str| store.join(sub).to_string_lossy().into_owned();
    vec![
        "--root".to_owned(),
        path("root"),
        "--runroot".to_owned(),
        path("runroot"),
        "--tmpdir".to_owned(),
        path("libpod"),
    ]
}

/// `<temp dir>/grace-podman-<uid>`: one store per user.
fn store_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    std::env::temp_dir().join(format!("grace-podman-{uid}"))
}

/// The static busybox the test image is made of.
fn busybox() -> Option<PathBuf> {
    let debian = PathBuf::from("/bin/busybox");
    if debian.is_file() {
        return Some(debian);
    }
    e2e::find_binary("busybox", &[])
}

/// Whether something answers `GET /_ping` with `OK` on `socket`.
fn pings(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.ends_with("OK")
}

/// Writes `path` through a temporary file named after the unique `tag` and a rename, so a
/// concurrent reader never sees it half written and concurrent writers never share a file.
fn write_atomically(path: &Path, contents: &[u8], tag: &str) {
    let temp = path.with_extension(format!("tmp-{tag}"));
    std::fs::write(&temp, contents)
        .and_then(|()| std::fs::rename(&temp, path))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
