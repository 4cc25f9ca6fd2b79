//! A `grace serve` child process and HTTP helpers, shared by the end-to-end tests.
//!
//! Servers run with real authentication and signed uploads: before the first start on a data
//! directory, `grace init` makes an admin token there (kept in `<data>/.test-credentials/`, with
//! a signing key whose public half is passed as `--trust-root`). [`Server`]'s helpers send the
//! token and sign uploads; [`Server::grace`] is a `grace` command set up to reach the server, and
//! [`client_with_token`] a `reqwest` client that sends a token with every request.

#![allow(dead_code)]

pub mod approvals;
pub mod browser;
pub mod cluster;
pub mod stress;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use grace_testkit::{build_guests, components_dir, poll_until};
use serde_json::{Value, json};

/// A `grace serve` child process.
pub struct Server {
    child: Child,
    /// The server's base URL.
    pub url: String,
    /// An `admin` token of the server (`grace init`'s `local-admin`).
    pub token: String,
    /// The key uploads are signed with: the server's trust root.
    pub signer: grace_ledger::SigningKey,
    /// The `grace init` credentials and key of the data directory.
    pub credentials: Credentials,
}

/// What the harness keeps in a data directory for its servers: a CLI config directory holding
/// the `local-admin` token, and a signing key with its public half.
#[derive(Clone)]
pub struct Credentials {
    /// `GRACE_CONFIG_DIR` of the CLI: `token` inside.
    pub config_dir: PathBuf,
    /// The admin token.
    pub token: String,
    /// The signing key's file.
    pub key_file: PathBuf,
    /// Its public half, the server's `--trust-root`.
    pub trust_root: PathBuf,
    /// The key itself.
    pub signer: grace_ledger::SigningKey,
}

/// The credentials of `data`, made on first use: `grace init` there, and a new signing key.
pub fn credentials(data: &Path) -> Credentials {
    let config_dir = data.join(".test-credentials");
    let token_file = config_dir.join("token");
    if !token_file.exists() {
        let out = Command::new(env!("CARGO_BIN_EXE_grace"))
            .args(["init", "--data-dir"])
            .arg(data)
            .env("GRACE_CONFIG_DIR", &config_dir)
            .env_remove("GRACE_TOKEN_FILE")
            .env_remove("GRACE_DATA_DIR")
            .output()
            .expect("grace init runs");
        assert!(
            out.status.success(),
            "grace init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let key_file = config_dir.join("release.key");
    let trust_root = config_dir.join("release.key.pub");
    if !key_file.exists() {
        let key = grace_ledger::generate_key("grace.test/release").unwrap();
        key.save(&key_file).unwrap();
        key.verifier().save(&trust_root).unwrap();
    }
    let signer = grace_ledger::SigningKey::load(&key_file).unwrap();
    Credentials {
        config_dir,
        token,
        key_file,
        trust_root,
        signer,
    }
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

impl Server {
    /// `grace serve --simulate`.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Server::start_with(true, data, extra)
    }

    /// `grace serve --simulate`, with these environment variables.
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_env(true, data, extra, env)
    }

    /// `grace serve` on the real providers its configuration names (no simulated fleet).
    pub fn start_live(data: &Path, extra: &[&str]) -> Server {
        Server::start_with(false, data, extra)
    }

    /// `grace serve` on real providers, with these environment variables.
    pub fn start_live_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_env(false, data, extra, env)
    }

    fn start_with(simulate: bool, data: &Path, extra: &[&str]) -> Server {
        Server::start_env(simulate, data, extra, &[])
    }

    fn start_env(simulate: bool, data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        build_guests();
        let credentials = credentials(data);
        let mut command = Command::new(env!("CARGO_BIN_EXE_grace"));
        command.envs(env.iter().copied());
        command.arg("serve");
        if simulate {
            command.arg("--simulate");
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--trust-root")
            .arg(&credentials.trust_root)
            .args(extra)
            .env_remove("GRACE_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("grace serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(rest) = line.strip_prefix("grace serving on ") {
                    let url = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(Ok(url));
                    sent = true;
                } else if !sent && line.starts_with("error") {
                    let _ = tx.send(Err(line.clone()));
                    sent = true;
                } else if std::env::var_os("GRACE_TEST_SERVER_LOG").is_some() {
                    // For a failing test's post-mortem: the servers' own log on the test's stderr.
                    eprintln!("[server] {line}");
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(url)) => url,
            Ok(Err(line)) => panic!("grace serve failed to start: {line}"),
            Err(_) => panic!("grace serve did not say where it listens within 60 s"),
        };
        Server {
            child,
            url,
            token: credentials.token.clone(),
            signer: credentials.signer.clone(),
            credentials,
        }
    }

    /// A `grace` command that reaches this server (`GRACE_SERVER`) with its admin token
    /// (`GRACE_TOKEN`).
    pub fn grace(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_grace"));
        command
            .env("GRACE_SERVER", &self.url)
            .env("GRACE_TOKEN", &self.token)
            .env_remove("GRACE_TOKEN_FILE")
            .env_remove("GRACE_DATA_DIR");
        command
    }

    /// `grace args` run to its end against this server, as [`Server::grace`] sets it up.
    pub fn grace_with(&self, args: &[&str]) -> Output {
        self.grace().args(args).output().expect("grace runs")
    }

    /// A new token with these scopes (`read`, `operate`, `approve`, `admin`) for a new local
    /// principal called `name`, both made through the API: one person per call.
    pub fn token_with(&self, name: &str, scopes: &[&str]) -> String {
        let (status, body) = self.post("/v1/principals", json!({ "name": name }));
        assert_eq!(status, 201, "{body}");
        self.token_of(name, name, scopes)
    }

    /// Another token, called `name`, of the existing local principal `principal`.
    pub fn token_of(&self, principal: &str, name: &str, scopes: &[&str]) -> String {
        let (status, body) = self.post(
            "/v1/tokens",
            json!({ "name": name, "principal": principal, "scopes": scopes }),
        );
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// The server's exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL: no shutdown, no flushing.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(path, Some(&self.token))
    }

    /// A DELETE with the admin token.
    pub fn delete(&self, path: &str) -> (u16, Value) {
        request(
            reqwest::Method::DELETE,
            &format!("{}{path}", self.url),
            None,
            Some(&self.token),
        )
    }

    /// A GET with this token (none when `None`).
    pub fn get_as(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        request(
            reqwest::Method::GET,
            &format!("{}{path}", self.url),
            None,
            token,
        )
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_as(path, Some("application/json"), body.to_string())
    }

    /// A POST of raw bytes as JSON.
    pub fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        self.post_as(path, Some("application/json"), body)
    }

    /// A POST with this `Content-Type` (none when `None`).
    pub fn post_as(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> (u16, Value) {
        request(
            reqwest::Method::POST,
            &format!("{}{path}", self.url),
            Some((content_type, body.into())),
            Some(&self.token),
        )
    }

    /// An Alertmanager webhook notification.
    pub fn alertmanager(&self, notification: &Value) -> (u16, Value) {
        self.post_as(
            "/v1/sources/alertmanager",
            Some("application/json"),
            notification.to_string(),
        )
    }

    /// The stored events' `event` objects, oldest first.
    pub fn events(&self) -> Vec<Value> {
        let (status, stored) = self.get("/v1/events?limit=10000");
        assert_eq!(status, 200);
        stored
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["event"].clone())
            .collect()
    }

    /// Uploads a playbook signed by the server's trust root.
    pub fn upload(&self, manifest: &str, component: Vec<u8>) -> (u16, Value) {
        self.try_upload(manifest, component)
            .expect("the server closed the connection while the upload was being sent")
    }

    /// As [`Server::upload`], `None` when the connection closed while sending (see
    /// [`Server::try_upload_with`]).
    pub fn try_upload(&self, manifest: &str, component: Vec<u8>) -> Option<(u16, Value)> {
        let signature =
            grace_server::signing::Signature::sign(&self.signer, &component, manifest.as_bytes());
        self.try_upload_with(manifest, component, Some(&signature.to_text()))
    }

    /// Uploads a playbook with this signature file's text (none when `None`).
    pub fn upload_with(
        &self,
        manifest: &str,
        component: Vec<u8>,
        signature: Option<&str>,
    ) -> (u16, Value) {
        self.try_upload_with(manifest, component, signature)
            .expect("the server closed the connection while the upload was being sent")
    }

    /// As [`Server::upload_with`], but `None` when the server closed the connection while the
    /// upload was still being sent: what a server refusing an oversized body as soon as it
    /// passes the limit (without reading the rest) may look like to a client still writing.
    pub fn try_upload_with(
        &self,
        manifest: &str,
        component: Vec<u8>,
        signature: Option<&str>,
    ) -> Option<(u16, Value)> {
        let mut form = reqwest::multipart::Form::new()
            .text("manifest", manifest.to_owned())
            .part("component", reqwest::multipart::Part::bytes(component));
        if let Some(signature) = signature {
            form = form.text("signature", signature.to_owned());
        }
        rt().block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}/v1/playbooks", self.url))
                .bearer_auth(&self.token)
                .multipart(form)
                .send()
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) if e.is_request() => return None,
                Err(e) => panic!("the upload failed: {e}"),
            };
            let status = r.status().as_u16();
            Some((status, r.json().await.unwrap_or(Value::Null)))
        })
    }

    pub fn runs_of(&self, playbook: &str) -> Vec<Value> {
        let (status, runs) = self.get(&format!("/v1/runs?playbook={playbook}"));
        assert_eq!(status, 200);
        runs.as_array().unwrap().clone()
    }

    /// The value of a counter or gauge on `/metrics` (summed over its labels' selection).
    pub fn metric(&self, name: &str) -> f64 {
        let text = rt().block_on(async {
            reqwest::Client::new()
                .get(format!("{}/metrics", self.url))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until the matcher has seen `n` events in all.
    pub fn wait_matched(&self, n: usize) {
        poll_until(
            &format!("{n} events matched"),
            Duration::from_secs(30),
            || (self.metric("grace_events_matched_total") >= n as f64).then_some(()),
        );
    }

    pub fn wait_state(&self, run: &str, states: &[&str]) -> Value {
        poll_until(
            &format!("run {run} to be {states:?}"),
            Duration::from_secs(60),
            || {
                let (_, r) = self.get(&format!("/v1/runs/{run}"));
                states.contains(&r["state"].as_str()?).then_some(r)
            },
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn request(
    method: reqwest::Method,
    url: &str,
    body: Option<(Option<&str>, Vec<u8>)>,
    token: Option<&str>,
) -> (u16, Value) {
    let client = token.map_or_else(reqwest::Client::new, client_with_token);
    rt().block_on(send(&client, method, url, body))
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// One request on `client` (kept alive by callers that send many); an error only when the
/// server cannot be reached or hangs up, as a killed one does (see `stress`).
pub async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<(Option<&str>, Vec<u8>)>,
) -> reqwest::Result<(u16, Value)> {
    let (status, retry_after, text) = send_raw(client, method, url, body).await?;
    let mut body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if let Some(v) = retry_after {
        body["retry_after_header"] = json!(v);
    }
    Ok((status, body))
}

/// One request: the status, the `Retry-After` header and the body as text.
pub async fn send_raw(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<(Option<&str>, Vec<u8>)>,
) -> reqwest::Result<(u16, Option<String>, String)> {
    let mut r = client.request(method, url);
    if let Some((content_type, body)) = body {
        if let Some(content_type) = content_type {
            r = r.header("content-type", content_type);
        }
        r = r.body(body);
    }
    let r = r.send().await?;
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((status, retry_after, r.text().await?))
}

pub fn component(crate_name: &str) -> Vec<u8> {
    build_guests();
    std::fs::read(components_dir().join(format!("{crate_name}.wasm"))).unwrap()
}

/// A manifest for a test playbook with the given triggers, grants and limits.
pub fn manifest(name: &str, extra: &str) -> String {
    format!(
        "manifest_version = 1\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"unused.wasm\"\n{extra}"
    )
}

/// An event at `secs` after the default fleet's start.
pub fn event(event_type: &str, resource: &str, secs: u64, value: f64) -> Value {
    json!({
        "event_type": event_type, "source": "test", "actor": "tests", "resource": resource,
        "payload": { "value": value },
        "timestamp": 1_767_225_600_000u64 + secs * 1000,
    })
}

pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn path_of(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_owned()
}

/// One call to an AWS Query API on moto (`service` as in a credential scope: `autoscaling`,
/// `monitoring`), with a form body; returns the XML answer. Unsigned: moto reads only the
/// service and region from the credential scope.
pub fn moto_query(endpoint: &str, service: &str, version: &str, params: &[(&str, &str)]) -> String {
    rt().block_on(async {
        // A form body, encoded by the URL type (the client is built without its form feature).
        let encoded = reqwest::Url::parse_with_params(
            "http://127.0.0.1/",
            [("Version", version)].iter().chain(params),
        )
        .unwrap();
        let r = reqwest::Client::new()
            .post(endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            )
            .body(encoded.query().unwrap_or_default().to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(status.is_success(), "{params:?}: {status} {body}");
        body
    })
}

/// `grace` with `args`, run to its end (the guests built first), outside any data directory
/// the environment names.
pub fn grace(args: &[&str]) -> Output {
    build_guests();
    Command::new(env!("CARGO_BIN_EXE_grace"))
        .args(args)
        .env_remove("GRACE_DATA_DIR")
        .output()
        .expect("grace runs")
}

/// What a `grace` process printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a `grace` process printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as an argument.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 paths")
}

/// `grace run <example> --event <its event.json> --dry-run --data-dir <data>` and `extra`.
pub fn dry_run(name: &str, data: &Path, extra: &[&str]) -> Output {
    let dir = grace_testkit::example(name);
    let event = dir.join("event.json");
    let mut args = vec![
        "run",
        path(&dir),
        "--event",
        path(&event),
        "--dry-run",
        "--data-dir",
        path(data),
    ];
    args.extend_from_slice(extra);
    grace(&args)
}
