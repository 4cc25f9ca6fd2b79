//! What ingest costs through the real server, over real HTTP, against a parse-only server
//! measured in the same process.
//!
//! `cargo bench -p grace-server --bench ingest`. Plain `main`, no harness.
//!
//! The server is [`grace_server::Server`] in simulation mode on a fresh data directory, served on
//! a multi-threaded tokio runtime with two workers, on an ephemeral loopback port. The baseline
//! is a minimal axum 0.8 server on the same runtime, another loopback port, whose handler only
//! parses the body into `Vec<TriggerEvent>` (`serde_json` + `TriggerEvent::from_value`, as the
//! server's handler does) and answers `202`. The client (reqwest, pooled keep-alive
//! connections) runs on its own single-threaded runtime, with every request body built before
//! the clock starts.
//!
//! 1. Sustained throughput with 1,000 triggers loaded: 100 playbooks (the `echo` fixture)
//!    uploaded over HTTP with 10 triggers each: 900 on exact event types (9 on each of 100
//!    types), 100 on wildcard types (20 patterns), resource globs, conditions such as
//!    `value > 5000 && labels.env == "prod"`, some `for = "3 events"` windows and cooldowns.
//!    The events (200 resources, `value` below 1,000) make every condition false, except one
//!    spike per pass that fires a handful of runs (counted and shown), so the figure is ingest,
//!    durable storage and matching, not thousands of wasm runs. Batches of 1,000 events per
//!    `POST /v1/events` from 4 concurrent client tasks; the clock stops when
//!    `grace_events_matched_total` on `/metrics` has counted every event. The baseline gets the
//!    same batches from the same client.
//! 2. Ingest-to-run-start: one more playbook fires on every `bench.fire` event. Single events,
//!    one at a time, each about a new resource (no cooldown, dedup or lock in the way): the
//!    client posts, awaits the `202`, then polls `GET /v1/runs?resource=R` until the run is
//!    seen started, then waits for it to finish before the next event. Reported: the server's
//!    own `grace_ingest_to_run_start_seconds` histogram (per-round deltas; quantiles
//!    interpolated within its buckets, the share under 5 ms exact since 5 ms is a bound), the
//!    client's POST→202 and POST→run-seen-started times, and the baseline's round trip for the
//!    same single-event POST (interleaved event by event).
//!
//! Authentication is on, as in production: every request carries a bearer token (the baseline
//! gets the same header and ignores it), each accepted batch adds one audit entry to the ledger,
//! and the playbooks are uploaded signed.
//!
//! Shared machines are noisy, so figures come from rounds that interleave GRACE and the
//! baseline (the order alternating from round to round), ratios are taken within a round, and
//! the summary reports medians over rounds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use grace_engine::TriggerEvent;
use grace_server::{ServeConfig, Server};
use serde_json::{Value, json};

/// Throughput rounds (each measures GRACE and the baseline once); fewer if the budget runs out.
const ROUNDS: usize = 9;
/// Throughput rounds always completed.
const MIN_ROUNDS: usize = 3;
/// No new throughput round starts after this much time since the start.
const BUDGET: Duration = Duration::from_secs(45);
/// Events per `POST /v1/events`.
const BATCH: usize = 1_000;
/// Batches per throughput pass.
const BATCHES: usize = 200;
/// Concurrent client tasks posting batches.
const CLIENTS: usize = 4;
const PLAYBOOKS: usize = 100;
const TRIGGERS_PER_PLAYBOOK: usize = 10;
const EVENT_TYPES: usize = 100;
const RESOURCES: usize = 200;
/// Latency rounds, and single events per round.
const LATENCY_ROUNDS: usize = 3;
const LATENCY_EVENTS: usize = 100;
/// The virtual clock's start (the default fleet's); event timestamps go up 1 ms per event.
const START_MILLIS: u64 = 1_767_225_600_000;
/// The target of part 1, events/s matched.
const TARGET_EPS: f64 = 100_000.0;
/// The target of part 2, p99 ingest-to-run-start.
const TARGET_P99: Duration = Duration::from_millis(5);

/// A deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The `[[triggers]]` table of trigger `n` (0..1000). No condition is true for an ordinary
/// event (`value` < 1000); the spike (`value` 9500, `env` dev) makes `value > 9000` true.
fn trigger_toml(n: usize) -> String {
    let event_type = if n < 900 {
        format!("metrics.t{:03}", n % EVENT_TYPES)
    } else {
        // 20 patterns, 5 triggers each: `metrics.t0*` .. `metrics.t9*` and `*0` .. `*9`.
        let k = (n - 900) % 20;
        if k < 10 {
            format!("metrics.t{k}*")
        } else {
            format!("*{}", k - 10)
        }
    };
    let resource = match n % 3 {
        0 => "*".to_owned(),
        1 => "svc-1*".to_owned(),
        _ => format!("svc-{}", n % RESOURCES),
    };
    let condition = match n % 5 {
        0 | 1 => r#"value > 5000 && labels.env == "prod""#,
        2 => "value > 9000",
        3 => r#"labels.env in ["prod", "staging"] && value >= 2000"#,
        _ => r#"!(labels.env == "dev") && value > 50000"#,
    };
    let mut t = format!(
        "[[triggers]]\nevent_type = \"{event_type}\"\nresource = \"{resource}\"\ncondition = '{condition}'\n"
    );
    if n % 8 == 2 {
        t.push_str("for = \"3 events\"\n");
    }
    if n.is_multiple_of(4) {
        t.push_str("cooldown = \"10m\"\n");
    }
    t
}

/// Playbook `p`'s manifest: triggers `10p .. 10p + 9`.
fn manifest(p: usize) -> String {
    let tables: String = (p * TRIGGERS_PER_PLAYBOOK..(p + 1) * TRIGGERS_PER_PLAYBOOK)
        .map(trigger_toml)
        .collect();
    format!(
        "manifest_version = 1\nname = \"ingest-{p:03}\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"echo.wasm\"\n{tables}"
    )
}

const FIRE_MANIFEST: &str = "manifest_version = 1\nname = \"bench-fire\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"echo.wasm\"\n[[triggers]]\nevent_type = \"bench.fire\"\n";

/// One pass's request bodies: `BATCHES` arrays of `BATCH` events, timestamps from `*clock`.
/// One event in the middle is the spike, about a resource of its own per pass.
fn batches(rng: &mut Rng, clock: &mut u64, pass: usize) -> Vec<Bytes> {
    (0..BATCHES)
        .map(|b| {
            let mut body = String::with_capacity(BATCH * 200);
            body.push('[');
            for i in 0..BATCH {
                if i > 0 {
                    body.push(',');
                }
                *clock += 1;
                let (event_type, resource, value, env) = if b == BATCHES / 2 && i == 0 {
                    ("metrics.t002".to_owned(), format!("svc-1{pass:02}"), 9500, "dev")
                } else {
                    (
                        format!("metrics.t{:03}", rng.below(EVENT_TYPES)),
                        format!("svc-{}", rng.below(RESOURCES)),
                        rng.below(1000),
                        ["prod", "prod", "staging", "dev"][rng.below(4)],
                    )
                };
                body.push_str(&format!(
                    r#"{{"event_type":"{event_type}","source":"prometheus","actor":"collector","resource":"{resource}","payload":{{"value":{value},"labels":{{"env":"{env}"}}}},"timestamp":{clock}}}"#
                ));
            }
            body.push(']');
            Bytes::from(body)
        })
        .collect()
}

// --- the baseline server -------------------------------------------------------------------

/// `POST /v1/events` that parses what GRACE parses, the same way, and stores nothing.
async fn parse_only(body: Bytes) -> (StatusCode, Json<Value>) {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": e.to_string() })),
            );
        }
    };
    let items = match value {
        Value::Array(items) => items,
        v @ Value::Object(_) => vec![v],
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "not an event" })),
            );
        }
    };
    let events: Result<Vec<TriggerEvent>, _> = items
        .into_iter()
        .map(|v| TriggerEvent::from_value(v, START_MILLIS))
        .collect();
    match events {
        Ok(events) => (
            StatusCode::ACCEPTED,
            Json(json!({ "accepted": std::hint::black_box(events).len() })),
        ),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

// --- the client ------------------------------------------------------------------------------

/// The client, sending GRACE's API token with every request (the baseline ignores it, so both
/// get the same bytes).
fn client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Posts every body to `url` from `CLIENTS` tasks; the time until the last `202`, and how many
/// `429`s were retried.
async fn blast(client: &reqwest::Client, url: &str, bodies: &Arc<Vec<Bytes>>) -> (Duration, u64) {
    let next = Arc::new(AtomicUsize::new(0));
    let throttled = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, url, bodies, next, throttled) = (
            client.clone(),
            url.to_owned(),
            bodies.clone(),
            next.clone(),
            throttled.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                loop {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    let text = r.bytes().await.unwrap();
                    match status {
                        202 => break,
                        429 => {
                            throttled.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        s => panic!("{url}: {s} {}", String::from_utf8_lossy(&text)),
                    }
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    (started.elapsed(), throttled.load(Ordering::Relaxed))
}

async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    r.text().await.unwrap()
}

/// A counter or gauge on `/metrics`, summed over its labels.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The cumulative buckets of a histogram on `/metrics`: (upper bound in seconds, count).
fn buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect()
}

/// `after - before`, bucket by bucket.
fn bucket_delta(after: &[(f64, u64)], before: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .zip(before)
        .map(|(&(b, a), &(_, c))| (b, a - c))
        .collect()
}

/// The `q` quantile of a cumulative histogram, interpolated linearly within its bucket (in µs).
fn bucket_quantile(cum: &[(f64, u64)], q: f64) -> f64 {
    let total = cum.last().map_or(0, |&(_, n)| n);
    if total == 0 {
        return f64::NAN;
    }
    let target = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(bound, n) in cum {
        if n as f64 >= target {
            if bound.is_infinite() {
                return lower * 1e6;
            }
            let within = (target - below as f64) / (n - below).max(1) as f64;
            return (lower + (bound - lower) * within) * 1e6;
        }
        (lower, below) = (bound, n);
    }
    f64::NAN
}

/// The share of a cumulative histogram at or under `bound` seconds (a bound it has).
fn share_under(cum: &[(f64, u64)], bound: f64) -> f64 {
    let total = cum.last().map_or(0, |&(_, n)| n);
    let n = cum
        .iter()
        .find(|&&(b, _)| (b - bound).abs() < 1e-12)
        .map_or(0, |&(_, n)| n);
    n as f64 / total.max(1) as f64
}

fn median(xs: &[f64]) -> f64 {
    percentile(xs, 0.5)
}

fn percentile(xs: &[f64], q: f64) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
    xs[i.min(xs.len() - 1)]
}

/// Microseconds, readably.
fn t(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `a` then `b`, or `b` then `a` when `flip`, so neither always goes first.
async fn pair<A, B>(
    flip: bool,
    a: impl std::future::Future<Output = A>,
    b: impl std::future::Future<Output = B>,
) -> (A, B) {
    if flip {
        let b = b.await;
        (a.await, b)
    } else {
        let a = a.await;
        (a, b.await)
    }
}

/// One throughput round's figures.
struct Round {
    grace_accept_eps: f64,
    grace_matched_eps: f64,
    baseline_eps: f64,
    fired: f64,
    throttled: u64,
}

/// `[storage]` as served by default (quick repair on: two fsyncs per durable commit), or with
/// `GRACE_BENCH_QUICK_REPAIR=off` the trade's other side (one fsync per commit, a restart after
/// a crash that grows with the database), to show what the setting costs.
fn storage_settings() -> grace_server::store::StorageSettings {
    let quick_repair = match std::env::var("GRACE_BENCH_QUICK_REPAIR").as_deref() {
        Err(_) | Ok("on") => true,
        Ok("off") => false,
        Ok(other) => panic!("GRACE_BENCH_QUICK_REPAIR: `{other}` is not `on` or `off`"),
    };
    eprintln!("[storage] quick_repair = {quick_repair}");
    grace_server::store::StorageSettings { quick_repair }
}

fn main() {
    let started = Instant::now();
    grace_testkit::build_guests();
    let echo = std::fs::read(grace_testkit::components_dir().join("echo.wasm")).unwrap();

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("server")
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Real authentication and signed uploads, as in production.
    let key = grace_ledger::generate_key("bench/release").unwrap();
    let (grace, baseline, token) = server_rt.block_on(async {
        let server = Server::bind(ServeConfig {
            simulate: true,
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            queue_capacity: 1_000_000,
            trust_roots: vec![grace_server::signing::TrustRootConfig {
                name: "bench".into(),
                public_key: key.verifier().to_string(),
            }],
            storage: storage_settings(),
            ..ServeConfig::default()
        })
        .await
        .unwrap();
        let token = server
            .app
            .auth
            .tokens
            .create(grace_server::auth::TokenSpec {
                name: "bench".into(),
                principal: server
                    .app
                    .auth
                    .tokens
                    .principals()
                    .ensure("bench", "bench")
                    .unwrap()
                    .id,
                scopes: grace_server::auth::Scopes::all(),
                created_by: "bench".into(),
                expires_at: None,
            })
            .unwrap()
            .secret;
        let grace = format!("http://{}", server.addr);
        let mut s = stopped.clone();
        tokio::spawn(server.serve(async move {
            let _ = s.wait_for(|&v| v).await;
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let baseline = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new().route("/v1/events", post(parse_only));
        let mut s = stopped.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = s.wait_for(|&v| v).await;
                })
                .await
                .unwrap();
        });
        (grace, baseline, token)
    });
    let http = client_rt.block_on(async { client(&token) });

    // Upload the 100 playbooks (1,000 triggers) over HTTP.
    let upload_started = Instant::now();
    client_rt.block_on(async {
        for p in 0..PLAYBOOKS {
            upload(&http, &grace, &key, manifest(p), echo.clone()).await;
        }
    });
    let upload_time = upload_started.elapsed();
    let health: Value =
        serde_json::from_str(&client_rt.block_on(get_text(&http, &format!("{grace}/healthz"))))
            .unwrap();
    assert_eq!(health["playbooks"], PLAYBOOKS as u64);
    println!(
        "GRACE ingest benchmark: server in-process (simulation, 2 tokio workers, fresh data dir), \
         loopback HTTP, client on its own thread; {} cores",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!(
        "setup: {:.1} s ({PLAYBOOKS} playbooks x {TRIGGERS_PER_PLAYBOOK} triggers uploaded over HTTP in {:.1} s)",
        started.elapsed().as_secs_f64(),
        upload_time.as_secs_f64()
    );

    // --- 1. throughput ------------------------------------------------------------------------
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let mut clock = START_MILLIS;
    let events_url = format!("{grace}/v1/events");
    let baseline_url = format!("{baseline}/v1/events");
    let metrics_url = format!("{grace}/metrics");
    // Warm up: connections, allocator, both servers' code.
    {
        let warm = Arc::new(batches(&mut rng, &mut clock, 99)[..10].to_vec());
        client_rt.block_on(async {
            blast(&http, &events_url, &warm).await;
            blast(&http, &baseline_url, &warm).await;
            wait_matched(&http, &metrics_url, 10.0 * BATCH as f64).await;
        });
    }
    println!();
    println!(
        "1. throughput: {BATCHES} batches x {BATCH} events per pass, {CLIENTS} client tasks, \
         {} triggers loaded",
        PLAYBOOKS * TRIGGERS_PER_PLAYBOOK
    );
    println!(
        "{:>5} {:>18} {:>18} {:>18} {:>12} {:>6} {:>5}",
        "round",
        "grace 202s ev/s",
        "grace matched ev/s",
        "baseline ev/s",
        "matched/base",
        "fired",
        "429s"
    );
    let mut rounds: Vec<Round> = Vec::new();
    for r in 0..ROUNDS {
        if r >= MIN_ROUNDS && started.elapsed() > BUDGET {
            break;
        }
        let bodies = Arc::new(batches(&mut rng, &mut clock, r));
        let n = (BATCHES * BATCH) as f64;
        let round = client_rt.block_on(async {
            let before = get_text(&http, &metrics_url).await;
            let matched_before = metric(&before, "grace_events_matched_total");
            let fired_before = metric(&before, "grace_triggers_fired_total");
            let ((accepted, matched, throttled), base) = pair(
                r % 2 == 1,
                async {
                    let start = Instant::now();
                    let (accepted, throttled) = blast(&http, &events_url, &bodies).await;
                    wait_matched(&http, &metrics_url, matched_before + n).await;
                    (accepted, start.elapsed(), throttled)
                },
                async { blast(&http, &baseline_url, &bodies).await.0 },
            )
            .await;
            let after = get_text(&http, &metrics_url).await;
            Round {
                grace_accept_eps: n / accepted.as_secs_f64(),
                grace_matched_eps: n / matched.as_secs_f64(),
                baseline_eps: n / base.as_secs_f64(),
                fired: metric(&after, "grace_triggers_fired_total") - fired_before,
                throttled,
            }
        });
        println!(
            "{:>5} {:>18.0} {:>18.0} {:>18.0} {:>11.2}x {:>6} {:>5}",
            r + 1,
            round.grace_accept_eps,
            round.grace_matched_eps,
            round.baseline_eps,
            round.grace_matched_eps / round.baseline_eps,
            round.fired,
            round.throttled
        );
        rounds.push(round);
    }
    let m = |f: fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let matched = m(|r| r.grace_matched_eps);
    println!(
        "{:>5} {:>18.0} {matched:>18.0} {:>18.0} {:>11.2}x",
        "med",
        m(|r| r.grace_accept_eps),
        m(|r| r.baseline_eps),
        m(|r| r.grace_matched_eps / r.baseline_eps),
    );
    let ingest_metrics = client_rt.block_on(get_text(&http, &metrics_url));
    println!(
        "fired per pass: {} runs (of {} events); suppressed in all: {}",
        m(|r| r.fired),
        BATCHES * BATCH,
        ingest_metrics
            .lines()
            .filter_map(|l| l.strip_prefix("grace_triggers_suppressed_total{reason=\""))
            .map(|l| l.replace("\"}", ""))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // --- 2. latency ---------------------------------------------------------------------------
    client_rt.block_on(upload(
        &http,
        &grace,
        &key,
        FIRE_MANIFEST.to_owned(),
        echo.clone(),
    ));
    let name = "grace_ingest_to_run_start_seconds";
    println!();
    println!(
        "2. ingest-to-run-start: {LATENCY_ROUNDS} rounds x {LATENCY_EVENTS} single events (`bench.fire`, \
         a new resource each), one at a time; {} triggers loaded",
        PLAYBOOKS * TRIGGERS_PER_PLAYBOOK + 1
    );
    println!(
        "{:>5} {:>22} {:>22} {:>22} {:>22} {:>9} {:>10}",
        "round",
        "server hist p50/p99",
        "client POST->202",
        "client POST->started",
        "baseline POST->202",
        "polls/ev",
        "poll p50"
    );
    let mut hist_all: Vec<(f64, u64)> = Vec::new();
    let (mut acks, mut starts, mut bases) = (Vec::new(), Vec::new(), Vec::new());
    let mut round_figures = Vec::new();
    for r in 0..LATENCY_ROUNDS {
        let (hist, ack, start, base, polls) = client_rt.block_on(async {
            let before = buckets(&get_text(&http, &metrics_url).await, name);
            let (mut ack, mut start, mut base) = (Vec::new(), Vec::new(), Vec::new());
            let mut polls = Vec::new();
            for i in 0..LATENCY_EVENTS {
                clock += 1;
                let resource = format!("fire-{r}-{i}");
                let body = Bytes::from(format!(
                    r#"{{"event_type":"bench.fire","source":"bench","actor":"bench","resource":"{resource}","payload":{{"value":1}},"timestamp":{clock}}}"#
                ));
                let ((a, s, p), b) = pair(
                    (r + i) % 2 == 1,
                    fire_one(&http, &grace, &body, &resource),
                    async {
                        let t0 = Instant::now();
                        post_one(&http, &baseline_url, &body).await;
                        micros(t0.elapsed())
                    },
                )
                .await;
                ack.push(a);
                start.push(s);
                base.push(b);
                polls.extend(p);
            }
            let after = buckets(&get_text(&http, &metrics_url).await, name);
            (bucket_delta(&after, &before), ack, start, base, polls)
        });
        if hist_all.is_empty() {
            hist_all = hist.clone();
        } else {
            for (a, &(_, n)) in hist_all.iter_mut().zip(&hist) {
                a.1 += n;
            }
        }
        let figures = (
            bucket_quantile(&hist, 0.5),
            bucket_quantile(&hist, 0.99),
            median(&ack),
            median(&start),
            median(&base),
        );
        println!(
            "{:>5} {:>22} {:>22} {:>22} {:>22} {:>9.1} {:>10}",
            r + 1,
            format!("{} / {}", t(figures.0), t(figures.1)),
            format!("{} / {}", t(median(&ack)), t(percentile(&ack, 0.99))),
            format!("{} / {}", t(median(&start)), t(percentile(&start, 0.99))),
            format!("{} / {}", t(median(&base)), t(percentile(&base, 0.99))),
            polls.len() as f64 / LATENCY_EVENTS as f64,
            t(median(&polls)),
        );
        round_figures.push(figures);
        acks.extend(ack);
        starts.extend(start);
        bases.extend(base);
    }
    let p99_server = bucket_quantile(&hist_all, 0.99);
    println!(
        "{:>5} {:>22} {:>22} {:>22} {:>22}",
        "all",
        format!("{} / {}", t(bucket_quantile(&hist_all, 0.5)), t(p99_server)),
        format!("{} / {}", t(median(&acks)), t(percentile(&acks, 0.99))),
        format!("{} / {}", t(median(&starts)), t(percentile(&starts, 0.99))),
        format!("{} / {}", t(median(&bases)), t(percentile(&bases, 0.99))),
    );
    let under = share_under(&hist_all, TARGET_P99.as_secs_f64());
    println!(
        "server histogram: {} observations, {:.1}% at or under 5 ms (exact: a bucket bound); \
         quantiles interpolated within buckets (bounds 0.5, 1, 2.5, 5, 10, 25 ms)",
        hist_all.last().map_or(0, |&(_, n)| n),
        under * 100.0
    );
    let ratio = median(&round_figures.iter().map(|f| f.3 / f.4).collect::<Vec<_>>());

    // --- summary ------------------------------------------------------------------------------
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!();
    println!(
        "summary ({} throughput rounds, {LATENCY_ROUNDS} latency rounds, medians over rounds, {:.0} s in all)",
        rounds.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "events matched/s, 1,000 triggers     grace {:>9.0} ev/s   parse-only axum {:>9.0} ev/s   ratio {:.2}x   (target >= {TARGET_EPS:.0}: {})",
        matched,
        m(|r| r.baseline_eps),
        m(|r| r.grace_matched_eps / r.baseline_eps),
        verdict(matched >= TARGET_EPS)
    );
    println!(
        "ingest-to-run-start p99 (server)     grace {:>12}   (target < 5 ms: {}; {:.1}% <= 5 ms)",
        t(p99_server),
        verdict(under >= 0.99),
        under * 100.0
    );
    println!(
        "POST->run seen started (client)      grace {:>12}   parse-only POST->202 {:>9}   ratio {:.1}x   (p50; p99 {} vs {})",
        t(median(&starts)),
        t(median(&bases)),
        ratio,
        t(percentile(&starts, 0.99)),
        t(percentile(&bases, 0.99)),
    );
    let _ = stop.send(true);
    server_rt.shutdown_timeout(Duration::from_secs(5));
    drop(dir);
}

async fn upload(
    client: &reqwest::Client,
    url: &str,
    key: &grace_ledger::SigningKey,
    manifest: String,
    component: Vec<u8>,
) {
    let signature =
        grace_server::signing::Signature::sign(key, &component, manifest.as_bytes()).to_text();
    let form = reqwest::multipart::Form::new()
        .text("manifest", manifest)
        .part("component", reqwest::multipart::Part::bytes(component))
        .text("signature", signature);
    let r = client
        .post(format!("{url}/v1/playbooks"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert!(status == 201 || status == 200, "upload: {status} {text}");
}

/// Polls `/metrics` until the matcher has counted `n` events in all.
async fn wait_matched(client: &reqwest::Client, url: &str, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if metric(&get_text(client, url).await, "grace_events_matched_total") >= n {
            return;
        }
        assert!(Instant::now() < deadline, "events were not matched in time");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn post_one(client: &reqwest::Client, url: &str, body: &Bytes) {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.bytes().await.unwrap();
    assert_eq!(status, 202, "{url}: {}", String::from_utf8_lossy(&text));
}

/// Posts one `bench.fire` event; (POST→202 µs, POST→run seen started µs, each poll's µs), after
/// the run has finished.
async fn fire_one(
    client: &reqwest::Client,
    grace: &str,
    body: &Bytes,
    resource: &str,
) -> (f64, f64, Vec<f64>) {
    let runs_url = format!("{grace}/v1/runs?resource={resource}&limit=1");
    let t0 = Instant::now();
    post_one(client, &format!("{grace}/v1/events"), body).await;
    let ack = micros(t0.elapsed());
    let mut polls = Vec::new();
    let mut started = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let poll = Instant::now();
        let text = get_text(client, &runs_url).await;
        polls.push(micros(poll.elapsed()));
        let runs: Value = serde_json::from_str(&text).unwrap();
        let state = runs[0]["state"].as_str().unwrap_or("none").to_owned();
        if started.is_none() && !matches!(state.as_str(), "none" | "queued") {
            started = Some(micros(t0.elapsed()));
        }
        match state.as_str() {
            "succeeded" => break,
            "none" | "queued" | "running" => {}
            other => panic!("the run of {resource} ended {other}"),
        }
        assert!(Instant::now() < deadline, "no run for {resource}");
        if started.is_some() {
            // Seen started: wait for the end without hammering the server.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    (ack, started.unwrap(), polls)
}
