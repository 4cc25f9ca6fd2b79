//! A `grace serve` child process and HTTP helpers, shared by the end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use grace_testkit::{build_guests, components_dir, poll_until};
use serde_json::{Value, json};

/// A `grace serve` child process.
pub struct Server {
    child: Child,
    /// The server's base URL.
    pub url: String,
}

impl Server {
    /// `grace serve --simulate`.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Server::start_with(true, data, extra)
    }

    /// `grace serve` on the real backends its configuration names (no simulated fleet).
    pub fn start_live(data: &Path, extra: &[&str]) -> Server {
        Server::start_with(false, data, extra)
    }

    /// `grace serve` on real backends, with these environment variables.
    pub fn start_live_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_env(false, data, extra, env)
    }

    fn start_with(simulate: bool, data: &Path, extra: &[&str]) -> Server {
        Server::start_env(simulate, data, extra, &[])
    }

    fn start_env(simulate: bool, data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        build_guests();
        let mut command = Command::new(env!("CARGO_BIN_EXE_grace"));
        command.envs(env.iter().copied());
        command.arg("serve");
        if simulate {
            command.arg("--simulate");
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
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
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(url)) => url,
            Ok(Err(line)) => panic!("grace serve failed to start: {line}"),
            Err(_) => panic!("grace serve did not say where it listens within 60 s"),
        };
        Server { child, url }
    }

    /// SIGKILL: no shutdown, no flushing.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        request(reqwest::Method::GET, &format!("{}{path}", self.url), None)
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

    pub fn upload(&self, manifest: &str, component: Vec<u8>) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .text("manifest", manifest.to_owned())
            .part("component", reqwest::multipart::Part::bytes(component));
        rt().block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}/v1/playbooks", self.url))
                .multipart(form)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
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
            reqwest::get(format!("{}/metrics", self.url))
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
) -> (u16, Value) {
    rt().block_on(async {
        let mut r = reqwest::Client::new().request(method, url);
        if let Some((content_type, body)) = body {
            if let Some(content_type) = content_type {
                r = r.header("content-type", content_type);
            }
            r = r.body(body);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let mut body: Value = r.json().await.unwrap_or(Value::Null);
        if let Some(v) = retry_after {
            body["retry_after_header"] = json!(v);
        }
        (status, body)
    })
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
