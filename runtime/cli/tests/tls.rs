//! HTTPS end to end: a real `grace serve --tls-cert --tls-key` with a pair made by
//! `grace init --tls`, reached by the CLI (which verifies it) and by raw clients (which do what
//! the CLI would not: speak plain HTTP to it, stall a handshake, hold a connection across a
//! certificate reload).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use grace_testkit::poll_until;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// A TLS pair made by `grace init --tls` in `data`, with the harness's credentials there (the
/// same `GRACE_CONFIG_DIR` as [`credentials`], so its `local-admin` token is the harness's).
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

fn init_tls(data: &Path, extra: &[&str]) -> (Output, Pair) {
    let out = Command::new(env!("CARGO_BIN_EXE_grace"))
        .args(["init", "--tls", "--data-dir"])
        .arg(data)
        .args(extra)
        .env("GRACE_CONFIG_DIR", data.join(".test-credentials"))
        .env_remove("GRACE_TOKEN_FILE")
        .env_remove("GRACE_DATA_DIR")
        .output()
        .unwrap();
    let pair = Pair {
        cert: data.join("tls").join("cert.pem"),
        key: data.join("tls").join("key.pem"),
    };
    (out, pair)
}

fn pair_in(data: &Path) -> Pair {
    let (out, pair) = init_tls(data, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pair
}

/// `grace serve` over HTTPS with `pair`.
fn serve_tls(data: &Path, pair: &Pair, extra: &[&str]) -> Server {
    let mut args = vec![
        "--tls-cert",
        pair.cert.to_str().unwrap(),
        "--tls-key",
        pair.key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = Server::start(data, &args);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    server
}

fn addr(server: &Server) -> &str {
    server.url.trim_start_matches("https://")
}

fn der(cert: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(cert).unwrap()
}

/// A TLS client that trusts each of `certs`.
fn client_config(certs: &[&Path]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(der(cert)).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(grace_server::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to the server, handshake done.
fn connect_tls(server: &Server, config: &Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr(server)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// The certificate the server presented on `tls`.
fn presented(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// `GET /healthz` on a kept-alive connection: the status, with the body read whole so the
/// connection can carry the next request.
fn healthz(tls: &mut Tls) -> u16 {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: grace\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(tls);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Whether the server closed `stream` (rather than the wait running out).
fn closed_by_server(stream: &mut impl Read) -> bool {
    let mut sink = [0u8; 1024];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn grace_init_tls_writes_a_private_pair_and_says_how_to_use_it() {
    let data = data_dir();
    let (out, pair) = init_tls(&path_of(&data), &["--tls-san", "grace.internal"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("--tls-cert") && stdout.contains("--ca-cert"),
        "{stdout}"
    );
    assert!(stdout.contains("grace.internal"), "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for file in [&pair.cert, &pair.key] {
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }
    // A second time does not overwrite it.
    let (again, _) = init_tls(&path_of(&data), &[]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr_of(&again));
    assert!(
        stderr_of(&again).contains("--rotate"),
        "{}",
        stderr_of(&again)
    );
}

#[test]
fn the_cli_reaches_a_tls_server_with_its_ca_cert() {
    let data = data_dir();
    let pair = pair_in(&path_of(&data));
    let server = serve_tls(&path_of(&data), &pair, &[]);
    let out = server
        .grace()
        .arg("--ca-cert")
        .arg(&pair.cert)
        .args(["playbook", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = server
        .grace()
        .env("GRACE_CA_CERT", &pair.cert)
        .args(["tokens", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("local-admin"),
        "the admin token went through: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn without_its_ca_cert_the_cli_refuses_the_server_and_exits_3_saying_what_to_pass() {
    let data = data_dir();
    let pair = pair_in(&path_of(&data));
    let server = serve_tls(&path_of(&data), &pair, &[]);
    let out = server
        .grace()
        .env_remove("GRACE_CA_CERT")
        .args(["playbook", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("not signed by an authority this grace trusts")
            && stderr.contains("--ca-cert"),
        "{stderr}"
    );
    // Another server's certificate is no better.
    let other = data_dir();
    let other_pair = pair_in(&path_of(&other));
    let out = server
        .grace()
        .arg("--ca-cert")
        .arg(&other_pair.cert)
        .args(["playbook", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
}

#[test]
fn plain_http_to_the_tls_port_gets_400_saying_to_use_https() {
    let data = data_dir();
    let pair = pair_in(&path_of(&data));
    let server = serve_tls(&path_of(&data), &pair, &[]);
    let mut tcp = TcpStream::connect(addr(&server)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: grace\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("https://"), "{answer}");
    // The CLI given an `http://` URL says the same.
    let out = server
        .grace()
        .env("GRACE_SERVER", format!("http://{}", addr(&server)))
        .args(["playbook", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("https://"), "{}", stderr_of(&out));
}

#[test]
fn https_to_a_plain_http_server_fails_saying_so() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let out = server
        .grace()
        .env("GRACE_SERVER", server.url.replace("http://", "https://"))
        .args(["playbook", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("is the server serving HTTPS"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_non_loopback_listen_without_tls_is_refused_before_binding() {
    let data = data_dir();
    // 192.0.2.1 (TEST-NET-1) is no address of this host: were the check missing, binding would
    // fail with exit 3 and another message, so nothing is ever bound.
    let out = Command::new(env!("CARGO_BIN_EXE_grace"))
        .args([
            "serve",
            "--simulate",
            "--listen",
            "192.0.2.1:7070",
            "--data-dir",
        ])
        .arg(path_of(&data))
        .env_remove("GRACE_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("listen: `192.0.2.1:7070` is not a loopback address")
            && stderr.contains("--tls-cert")
            && stderr.contains("--insecure-plaintext"),
        "{stderr}"
    );
}

/// A `grace serve --simulate` child whose stderr lines the test reads.
struct Watched {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    url: String,
}

impl Watched {
    fn start(data: &Path, extra: &[&str]) -> Watched {
        let credentials = credentials(data);
        let mut child = Command::new(env!("CARGO_BIN_EXE_grace"))
            .args([
                "serve",
                "--simulate",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data)
            .arg("--trust-root")
            .arg(&credentials.trust_root)
            .args(extra)
            .env_remove("GRACE_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut watched = Watched {
            child,
            lines,
            url: String::new(),
        };
        let serving = watched.line_containing("grace serving on ");
        watched.url = serving
            .trim_start_matches("grace serving on ")
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        watched
    }

    /// The next stderr line containing `text` (within 60 s).
    fn line_containing(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("no stderr line with `{text}`: {e}"),
            }
        }
    }

    fn hup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn insecure_plaintext_is_announced_loudly_at_start() {
    let data = data_dir();
    let server = Watched::start(&path_of(&data), &["--insecure-plaintext"]);
    let warning = server.line_containing("WARNING");
    assert!(
        warning.contains("--insecure-plaintext") && warning.contains("IN CLEAR"),
        "{warning}"
    );
}

#[test]
fn sighup_reloads_the_certificate_while_open_connections_keep_theirs() {
    let data = data_dir();
    let pair = pair_in(&path_of(&data));
    let next_data = data_dir();
    let next = pair_in(&path_of(&next_data));
    let server = serve_tls(&path_of(&data), &pair, &["--header-read-timeout", "60s"]);
    let trust_both = client_config(&[&pair.cert, &next.cert]);
    let (old_cert, new_cert) = (der(&pair.cert), der(&next.cert));

    let mut before = connect_tls(&server, &trust_both);
    assert_eq!(presented(&before), old_cert);
    assert_eq!(healthz(&mut before), 200);

    std::fs::copy(&next.key, &pair.key).unwrap();
    std::fs::copy(&next.cert, &pair.cert).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());

    let mut after = poll_until(
        "a handshake with the new certificate",
        Duration::from_secs(20),
        || {
            let tls = connect_tls(&server, &trust_both);
            (presented(&tls) == new_cert).then_some(tls)
        },
    );
    assert_eq!(healthz(&mut after), 200);
    // The connection opened before is still served, on its own session.
    assert_eq!(healthz(&mut before), 200);
    assert_eq!(presented(&before), old_cert);
}

#[test]
fn a_bad_pair_on_sighup_is_logged_and_the_old_one_kept() {
    let data = data_dir();
    let pair = pair_in(&path_of(&data));
    let next_data = data_dir();
    let next = pair_in(&path_of(&next_data));
    let server = Watched::start(
        &path_of(&data),
        &[
            "--tls-cert",
            pair.cert.to_str().unwrap(),
            "--tls-key",
            pair.key.to_str().unwrap(),
        ],
    );
    let addr = server.url.trim_start_matches("https://").to_owned();
    let trust_both = client_config(&[&pair.cert, &next.cert]);
    let old_cert = der(&pair.cert);
    let check = || {
        let tcp = TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let connection = rustls::ClientConnection::new(trust_both.clone(), name).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, tcp);
        assert_eq!(healthz(&mut tls), 200);
        assert_eq!(
            presented(&tls),
            old_cert,
            "the old certificate is still served"
        );
    };
    // The new certificate without its key.
    let saved_cert = std::fs::read(&pair.cert).unwrap();
    std::fs::copy(&next.cert, &pair.cert).unwrap();
    server.hup();
    let logged = server.line_containing("not reloaded");
    assert!(logged.contains("does not go with"), "{logged}");
    check();
    // The old certificate back, with a key file cut short.
    std::fs::write(&pair.cert, &saved_cert).unwrap();
    std::fs::write(&pair.key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    server.hup();
    let logged = server.line_containing("not reloaded");
    assert!(logged.contains("key.pem"), "{logged}");
    check();
}

#[test]
fn a_client_that_never_finishes_the_tls_handshake_is_cut_off_while_others_are_served() {
    let data = data_dir();
    let pair = pair_in(&path_of(&data));
    let server = serve_tls(&path_of(&data), &pair, &["--header-read-timeout", "1s"]);
    let trust = client_config(&[&pair.cert]);
    // The first bytes of a ClientHello record, and nothing more.
    let mut stalled = TcpStream::connect(addr(&server)).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    // A connection with nothing sent at all.
    let mut silent = TcpStream::connect(addr(&server)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut served = connect_tls(&server, &trust);
    assert_eq!(healthz(&mut served), 200, "others are served meanwhile");
    assert!(
        closed_by_server(&mut stalled),
        "a stalled handshake is closed"
    );
    assert!(
        closed_by_server(&mut silent),
        "a silent connection is closed"
    );
}

#[test]
fn a_client_that_sends_no_request_after_the_handshake_is_cut_off() {
    let data = data_dir();
    let pair = pair_in(&path_of(&data));
    let server = serve_tls(&path_of(&data), &pair, &["--header-read-timeout", "1s"]);
    let trust = client_config(&[&pair.cert]);
    let mut idle = connect_tls(&server, &trust);
    assert!(
        closed_by_server(&mut idle),
        "the header timeout applies over TLS"
    );
}
