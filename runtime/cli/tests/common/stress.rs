//! Support for the crash, load and abuse tests: a client for many requests that reports a
//! killed server as an error instead of panicking, the server's memory from `/proc`, a seeded
//! random generator whose seed is printed so a failure can be replayed, and a signing key for
//! checkpoints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{Server, send, send_raw};

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// The server's resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// A client for many requests from one thread.
    pub fn http(&self) -> Http {
        Http::new(&self.url, &self.token)
    }
}

/// A field of `/proc/<pid>/status`, in KiB (0 when it cannot be read).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A client of one server for one thread: its own runtime and connection pool, and errors
/// (connection refused, reset) as values, since the server may be killed under it.
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// A client of the server at `base`, sending `token` with every request.
    pub fn new(base: &str, token: &str) -> Http {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        Http {
            rt: super::rt(),
            client: reqwest::Client::builder()
                .default_headers(headers)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: base.to_owned(),
        }
    }

    /// `GET path`, the body as JSON (`null` when it is not).
    pub fn get(&self, path: &str) -> reqwest::Result<(u16, Value)> {
        self.rt.block_on(send(
            &self.client,
            reqwest::Method::GET,
            &format!("{}{path}", self.base),
            None,
        ))
    }

    /// `GET path`, the body as text.
    pub fn get_text(&self, path: &str) -> reqwest::Result<(u16, String)> {
        self.rt
            .block_on(send_raw(
                &self.client,
                reqwest::Method::GET,
                &format!("{}{path}", self.base),
                None,
            ))
            .map(|(status, _, text)| (status, text))
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> reqwest::Result<(u16, Value)> {
        self.rt.block_on(send(
            &self.client,
            reqwest::Method::POST,
            &format!("{}{path}", self.base),
            Some((Some("application/json"), body.to_string().into_bytes())),
        ))
    }
}

/// A small seeded generator (SplitMix64): the tests print the seed, and the same seed replays
/// the same choices.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `env` when it is set (to replay a failure), otherwise from the clock; prints
    /// the seed either way.
    pub fn from_env(env: &str) -> Rng {
        let seed = std::env::var(env)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("seed {seed} (replay with {env}={seed})");
        Rng(seed)
    }

    /// Seeded with `seed`.
    pub fn from_seed(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `range`.
    pub fn range(&mut self, range: std::ops::RangeInclusive<u64>) -> u64 {
        range.start() + self.next_u64() % (range.end() - range.start() + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// A checkpoint signing key named `origin` in `dir` (`ledger.key`, `ledger.key.pub`), and a
/// `grace.toml` signing a checkpoint every second with it. Returns the configuration file's path.
pub fn checkpointing_config(dir: &Path, origin: &str) -> PathBuf {
    let key = dir.join("ledger.key");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_grace"))
        .args(["keys", "generate", "--name", origin, "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.join("grace.toml");
    std::fs::write(
        &config,
        format!(
            "checkpoint_key = \"{}\"\ncheckpoint_every = \"1s\"\n",
            key.display()
        ),
    )
    .unwrap();
    config
}

/// `grace` with these arguments; its exit code and output.
pub fn grace(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_grace"))
        .args(args)
        .env_remove("GRACE_SERVER")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// What a load run did, as its clients saw it.
#[derive(Default)]
pub struct LoadReport {
    /// Acknowledged events: seq → the event as sent.
    pub events: std::collections::BTreeMap<u64, Value>,
    /// Resources of acknowledged events that fire a run (one each).
    pub firing: Vec<String>,
    /// Each acknowledged batch's latency, POST to `202`.
    pub latencies: Vec<Duration>,
    /// Batches refused with `429` (retried).
    pub throttled: usize,
    /// Uploads acknowledged.
    pub uploads: usize,
    /// API reads answered.
    pub reads: usize,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Acknowledged events per second.
    pub fn events_per_sec(&self) -> f64 {
        self.events.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile (0..=1) of the acknowledgement latencies.
    pub fn latency(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// The shape of a load run.
#[derive(Clone, Copy)]
pub struct Load {
    /// Threads publishing events, one batch in flight each.
    pub publishers: usize,
    /// Events per batch.
    pub batch: usize,
    /// Percentage of events whose type fires a run of a playbook on `load.fire`.
    pub firing_percent: u64,
    /// How long to publish.
    pub duration: Duration,
    /// Also upload playbook versions (with `upload`) and read runs, ledger entries and events.
    pub with_uploads_and_reads: bool,
}

/// Publishes events from several threads, uploads playbook versions and reads the API, all at
/// once, for `load.duration`; `upload(n)` uploads the `n`th version. `sample` is called every
/// 100 ms from the driving thread (to watch the server's memory).
pub fn drive_load(
    url: &str,
    token: &str,
    load: Load,
    upload: &(dyn Fn(usize) -> bool + Sync),
    sample: &mut dyn FnMut(Duration),
) -> LoadReport {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    let report = Mutex::new(LoadReport::default());
    let stop = AtomicBool::new(false);
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for p in 0..load.publishers {
            let (report, stop) = (&report, &stop);
            scope.spawn(move || {
                let http = Http::new(url, token);
                let mut rng = Rng::from_seed(p as u64 + 1);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let batch: Vec<Value> = (0..load.batch)
                        .map(|_| {
                            n += 1;
                            let firing = rng.chance(load.firing_percent);
                            serde_json::json!({
                                "event_type": if firing { "load.fire" } else { "load.noise" },
                                "source": "load", "actor": format!("publisher-{p}"),
                                "resource": format!("p{p}-e{n}"),
                                "payload": { "value": n },
                            })
                        })
                        .collect();
                    let sent = std::time::Instant::now();
                    let (status, body) = http
                        .post("/v1/events", &Value::Array(batch.clone()))
                        .unwrap_or_else(|e| panic!("publishing: {e}"));
                    let latency = sent.elapsed();
                    let mut r = report.lock().unwrap();
                    match status {
                        202 => {
                            r.latencies.push(latency);
                            let first = body["first_seq"].as_u64().unwrap();
                            for (seq, event) in (first..).zip(batch) {
                                if event["event_type"] == "load.fire" {
                                    r.firing
                                        .push(event["resource"].as_str().unwrap().to_owned());
                                }
                                r.events.insert(seq, event);
                            }
                        }
                        429 => {
                            r.throttled += 1;
                            drop(r);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        _ => panic!("publishing: {status} {body}"),
                    }
                }
            });
        }
        if load.with_uploads_and_reads {
            let (report, stop) = (&report, &stop);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if upload(n) {
                        report.lock().unwrap().uploads += 1;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            scope.spawn(move || {
                let http = Http::new(url, token);
                while !stop.load(Ordering::Relaxed) {
                    for path in [
                        "/v1/runs?limit=100",
                        "/v1/ledger/entries?limit=100",
                        "/v1/events?limit=100",
                        "/v1/ledger/head",
                    ] {
                        let (status, body) = http.get(path).unwrap();
                        assert_eq!(status, 200, "{path}: {body}");
                        report.lock().unwrap().reads += 1;
                    }
                }
            });
        }
        while started.elapsed() < load.duration {
            std::thread::sleep(Duration::from_millis(100));
            sample(started.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
    });
    let mut report = report.into_inner().unwrap();
    report.elapsed = started.elapsed();
    report
}
