//! The `metrics` capability against a real Prometheus: a test exporter serves a latency
//! histogram, Prometheus scrapes it, and `grace serve --simulate --prometheus URL` runs the
//! latency collector and `scale-on-latency` on Prometheus' answers, scaling the simulated fleet.
//!
//! Needs the `prometheus` binary (`just test` installs Debian's): without it the test is
//! skipped, loudly, unless `GRACE_E2E=required`.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use grace_testkit::{e2e, e2e::free_port, example, poll_until};
use serde_json::Value;

/// The p95 latency of api-service in milliseconds, from the exporter's histogram.
const P95_QUERY: &str = r#"histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{service="api-service"}[5s])) by (le)) * 1000"#;

/// The `prometheus` binary, if there is one.
fn prometheus_binary() -> Option<PathBuf> {
    e2e::find_binary("prometheus", &["/usr/bin"])
}

/// The binary, or a loud skip (a failure under `GRACE_E2E=required`).
fn prometheus_or_skip(test: &str) -> Option<PathBuf> {
    let binary = prometheus_binary();
    if binary.is_none() {
        e2e::skip(
            test,
            "the `prometheus` binary (/usr/bin/prometheus or on PATH)",
            "install it with `apt-get install prometheus`, or run `just test`",
        );
    }
    binary
}

/// A `/metrics` endpoint serving `http_request_duration_seconds`, a histogram of api-service's
/// requests: 100 requests a second, 10 % of them fast (50 ms), the rest slow (2 s).
fn start_exporter() -> u16 {
    start_exporter_with(|| 0.9)
}

/// The same histogram, where `slow_share()`, asked at every scrape, says which share of the
/// requests since the last scrape were slow.
fn start_exporter_with(slow_share: impl Fn() -> f64 + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut fast, mut slow, mut last) = (0u64, 0u64, Instant::now());
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // The request line and headers; the body (there is none) is ignored.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let requests = u64::try_from(last.elapsed().as_millis() / 10).unwrap();
            last = Instant::now();
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let slow_now = (requests as f64 * slow_share().clamp(0.0, 1.0)).round() as u64;
            slow += slow_now;
            fast += requests - slow_now;
            let total = fast + slow;
            let labels = r#"service="api-service""#;
            let mut body = String::from(
                "# HELP http_request_duration_seconds Request latency.\n\
                 # TYPE http_request_duration_seconds histogram\n",
            );
            for (le, count) in [
                ("0.1", fast),
                ("0.25", fast),
                ("0.5", fast),
                ("1", fast),
                ("2.5", total),
                ("+Inf", total),
            ] {
                body.push_str(&format!(
                    "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}\n"
                ));
            }
            #[allow(clippy::cast_precision_loss)]
            let sum = fast as f64 * 0.05 + slow as f64 * 2.0;
            body.push_str(&format!(
                "http_request_duration_seconds_sum{{{labels}}} {sum}\n\
                 http_request_duration_seconds_count{{{labels}}} {total}\n"
            ));
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A Prometheus child process scraping the exporter every second; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(binary: &Path, exporter_port: u16) -> Prometheus {
        Prometheus::start_on(binary, exporter_port, free_port())
    }

    fn start_on(binary: &Path, exporter_port: u16, port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: exporter\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{exporter_port}']\n"
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("prometheus.log")).unwrap(),
            ))
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// The value of an instant query with one result, if it has one yet.
    fn query_value(&self, query: &str) -> Option<f64> {
        let body: Value = rt().block_on(async {
            let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", self.url)).unwrap();
            url.query_pairs_mut().append_pair("query", query);
            let r = reqwest::get(url).await.ok()?;
            r.json().await.ok()
        })?;
        let result = body["data"]["result"].as_array()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn scale_on_latency_acts_on_a_real_prometheus() {
    let Some(binary) = prometheus_or_skip("scale_on_latency_acts_on_a_real_prometheus") else {
        return;
    };

    let exporter = start_exporter();
    let mut prometheus = Prometheus::start(&binary, exporter);
    let p95 = poll_until(
        "Prometheus to report api-service's p95 above 500 ms",
        Duration::from_secs(60),
        || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}): {}", prometheus.log());
            }
            prometheus.query_value(P95_QUERY).filter(|v| *v > 500.0)
        },
    );
    eprintln!("Prometheus: p95 = {p95:.1} ms");
    range_queries_answer_a_series_of_samples(&prometheus.url);

    let data = data_dir();
    let server = Server::start(&path_of(&data), &["--prometheus", &prometheus.url]);

    let playbook_manifest = fast_scale_on_latency();
    let (status, body) = server.upload(&playbook_manifest, component("scale_on_latency"));
    assert_eq!(status, 201, "{body}");

    let (_, fleet_before) = server.get("/v1/fleet");
    let before = desired_capacity(&fleet_before, "api-asg");

    let collector = format!(
        "manifest_version = 2\nname = \"prometheus-latency\"\nversion = \"1.0.0\"\n\
         kind = \"collector\"\ncomponent = \"unused.wasm\"\n\
         [schedule]\nevery = \"1s\"\n\
         [config]\nquery = '{P95_QUERY}'\nservice = \"api-service\"\nevent_type = \"metrics.latency\"\n\
         [[grants.metrics.series]]\nmetric = \"http_request_duration_seconds_bucket\"\n\
         labels = {{ service = \"api-service\" }}\n"
    );
    let (status, body) = server.upload(&collector, component("latency_collector"));
    assert_eq!(status, 201, "{body}");

    let run = poll_until("a run of scale-on-latency", Duration::from_secs(60), || {
        server.runs_of("scale-on-latency").into_iter().next()
    });
    let run_id = run["id"].as_str().unwrap();
    let run = server.wait_state(run_id, &["succeeded", "failed", "timed_out", "cancelled"]);
    assert_eq!(run["state"], "succeeded", "{run:#}");
    eprintln!("run: {}", run["outcome"]["summary"]);
    assert_eq!(run["outcome"]["changed"], true, "{run:#}");
    assert_eq!(run["outcome"]["details"]["group"], "api-asg");

    // Every latency the playbook saw came from Prometheus: its histogram's p95 (the simulated
    // fleet's own latency selector would say a few hundred ms at most).
    let queries: Vec<f64> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["interface"] == "metrics" && c["function"] == "query")
        .map(|c| {
            assert_eq!(c["args"]["query"], P95_QUERY, "{c:#}");
            c["result"]["ok"][0]["samples"][0]["value"]
                .as_f64()
                .unwrap_or_else(|| panic!("no value in {c:#}"))
        })
        .collect();
    assert!(
        queries.len() >= 2,
        "a confirmation and a re-measure: {run:#}"
    );
    for value in queries {
        assert!(
            value > 500.0 && (value - p95).abs() / p95 < 0.05,
            "metrics.query answered {value}, Prometheus said {p95}"
        );
    }
    let reported = run["event"]["payload"]["value"].as_f64().unwrap();
    assert!(
        (reported - p95).abs() / p95 < 0.05,
        "the collector's event: {reported}"
    );

    let (_, fleet_after) = server.get("/v1/fleet");
    let after = desired_capacity(&fleet_after, "api-asg");
    assert_eq!(after, before + 2, "{fleet_after:#}");

    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn a_builtin_promql_source_recovers_when_prometheus_comes_up_and_drives_a_playbook() {
    let test = "a_builtin_promql_source_recovers_when_prometheus_comes_up_and_drives_a_playbook";
    let Some(binary) = prometheus_or_skip(test) else {
        return;
    };
    // GRACE starts first, with a source on a Prometheus that is not there yet.
    let prometheus_port = free_port();
    let data = data_dir();
    let config = data.path().join("grace.toml");
    std::fs::write(
        &config,
        format!(
            "prometheus = \"http://127.0.0.1:{prometheus_port}\"\n\
             [[sources.promql]]\nname = \"api-latency\"\nquery = '{P95_QUERY}'\n\
             event_type = \"metrics.latency\"\nresource = \"api-service\"\nevery = \"1s\"\nunhealthy_after = 1\n"
        ),
    )
    .unwrap();
    let server = Server::start(&path_of(&data), &["--config", config.to_str().unwrap()]);
    let (status, body) = server.upload(&fast_scale_on_latency(), component("scale_on_latency"));
    assert_eq!(status, 201, "{body}");
    let down = poll_until("the source to be down", Duration::from_secs(30), || {
        let (_, s) = server.get("/v1/sources/api-latency");
        (s["status"] == "down").then_some(s)
    });
    assert!(
        down["last_error"]
            .as_str()
            .unwrap()
            .starts_with("unavailable"),
        "{down:#}"
    );
    assert!(server.runs_of("scale-on-latency").is_empty());

    // Prometheus comes up: the retries find it, the source publishes, the trigger fires.
    let exporter = start_exporter();
    let mut prometheus = Prometheus::start_on(&binary, exporter, prometheus_port);
    let run = poll_until(
        "a run of scale-on-latency fired by the source",
        Duration::from_secs(90),
        || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}): {}", prometheus.log());
            }
            server.runs_of("scale-on-latency").into_iter().next()
        },
    );
    let run = server.wait_state(
        run["id"].as_str().unwrap(),
        &["succeeded", "failed", "timed_out", "cancelled"],
    );
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let event = &run["event"];
    assert_eq!(
        (&event["source"], &event["actor"], &event["resource"]),
        (
            &Value::from("prometheus"),
            &Value::from("api-latency"),
            &Value::from("api-service")
        ),
        "{event:#}"
    );
    assert_eq!(event["payload"]["query"], P95_QUERY);
    assert!(
        event["payload"]["value"].as_f64().unwrap() > 500.0,
        "{event:#}"
    );

    let (_, up) = server.get("/v1/sources/api-latency");
    assert_eq!(up["status"], "up", "{up:#}");
    assert!(up["events"].as_u64().unwrap() >= 1, "{up:#}");
    assert!(up["failures"].as_u64().unwrap() >= 1, "{up:#}");
    assert_eq!(server.metric("grace_source_up{source=\"api-latency\""), 1.0);
    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");
}

/// `query_range` through GRACE's Prometheus provider: one sample per step, oldest first.
fn range_queries_answer_a_series_of_samples(url: &str) {
    use grace_executor::MetricsExecutor;
    let client = grace_prometheus::PrometheusMetrics::new(url).unwrap();
    // The histogram's rate needs a few scrapes before each step has a value.
    let series = poll_until(
        "three steps of p95 history",
        Duration::from_secs(30),
        || {
            let now = grace_engine::event::system_now_millis();
            let series = rt()
                .block_on(client.query_range(P95_QUERY, now - 4_000, now, Duration::from_secs(1)))
                .unwrap();
            (series.first()?.samples.len() >= 3).then_some(series)
        },
    );
    assert_eq!(series.len(), 1, "{series:?}");
    let samples = &series[0].samples;
    assert!(
        samples
            .windows(2)
            .all(|w| w[1].timestamp - w[0].timestamp == 1_000),
        "{samples:?}"
    );
    assert!(samples.iter().all(|s| s.value > 500.0), "{samples:?}");
}

/// One call to moto's Auto Scaling Query API.
fn autoscaling(endpoint: &str, params: &[(&str, &str)]) -> String {
    moto_query(endpoint, "autoscaling", "2011-01-01", params)
}

/// `(desired capacity, instances in service)` of a group, as moto describes it.
fn group_state(endpoint: &str, group: &str) -> (u32, u32) {
    let xml = autoscaling(
        endpoint,
        &[
            ("Action", "DescribeAutoScalingGroups"),
            ("AutoScalingGroupNames.member.1", group),
        ],
    );
    let desired = xml
        .split("<DesiredCapacity>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no DesiredCapacity in {xml}"))
        .parse()
        .unwrap();
    let in_service = u32::try_from(xml.matches("<LifecycleState>InService<").count()).unwrap();
    (desired, in_service)
}

#[test]
fn latency_falls_after_grace_scales_a_real_auto_scaling_group() {
    let test = "latency_falls_after_grace_scales_a_real_auto_scaling_group";
    let Some(binary) = prometheus_or_skip(test) else {
        return;
    };
    let Some(moto) = grace_testkit::moto::Moto::start(test) else {
        return;
    };
    let endpoint = moto.endpoint();
    autoscaling(
        &endpoint,
        &[
            ("Action", "CreateLaunchConfiguration"),
            ("LaunchConfigurationName", "api-lc"),
            ("ImageId", "ami-12c6146b"),
            ("InstanceType", "t3.micro"),
        ],
    );
    autoscaling(
        &endpoint,
        &[
            ("Action", "CreateAutoScalingGroup"),
            ("AutoScalingGroupName", "api-asg"),
            ("LaunchConfigurationName", "api-lc"),
            ("MinSize", "1"),
            ("MaxSize", "10"),
            ("DesiredCapacity", "3"),
            ("AvailabilityZones.member.1", "us-east-1a"),
        ],
    );
    assert_eq!(group_state(&endpoint, "api-asg"), (3, 3));

    // The service is slow while fewer than 5 instances serve it, fast from 5 on: its latency
    // follows the capacity moto reports.
    let exporter = {
        let endpoint = endpoint.clone();
        start_exporter_with(move || {
            let (_, in_service) = group_state(&endpoint, "api-asg");
            if in_service >= 5 { 0.0 } else { 0.9 }
        })
    };
    let mut prometheus = Prometheus::start(&binary, exporter);
    poll_until(
        "Prometheus to see p95 above 500 ms",
        Duration::from_secs(60),
        || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}): {}", prometheus.log());
            }
            prometheus.query_value(P95_QUERY).filter(|v| *v > 500.0)
        },
    );

    let data = data_dir();
    let config = data.path().join("grace.toml");
    std::fs::write(
        &config,
        format!(
            "prometheus = \"{}\"\n\n\
             [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n\
             wait_delay = \"200ms\"\nwait_max_attempts = 100\n\n\
             [[sources.promql]]\nname = \"api-latency\"\nquery = '{P95_QUERY}'\n\
             event_type = \"metrics.latency\"\nresource = \"api-service\"\nevery = \"1s\"\n",
            prometheus.url
        ),
    )
    .unwrap();
    // Static test credentials; the instance metadata service (not loopback) is never asked.
    let server = Server::start_live_with_env(
        &path_of(&data),
        &["--config", config.to_str().unwrap()],
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let (_, health) = server.get("/healthz");
    assert!(
        health["providers"]["scaling"]["aws"]
            .as_str()
            .unwrap()
            .starts_with("aws autoscaling us-east-1"),
        "{health}"
    );
    let (status, body) = server.upload(&fast_scale_on_latency(), component("scale_on_latency"));
    assert_eq!(status, 201, "{body}");

    let run = poll_until("a run of scale-on-latency", Duration::from_secs(90), || {
        server.runs_of("scale-on-latency").into_iter().next()
    });
    let run = server.wait_state(
        run["id"].as_str().unwrap(),
        &["succeeded", "failed", "timed_out", "cancelled"],
    );
    assert_eq!(run["state"], "succeeded", "{run:#}");
    eprintln!("run: {}", run["outcome"]["summary"]);
    assert_eq!(run["outcome"]["details"]["to"], "5", "{run:#}");
    assert_eq!(run["outcome"]["details"]["in_service"], "5", "{run:#}");
    assert_eq!(group_state(&endpoint, "api-asg"), (5, 5));

    // Latency returns under the threshold, as Prometheus measures it.
    let after = poll_until("p95 back under 500 ms", Duration::from_secs(60), || {
        prometheus.query_value(P95_QUERY).filter(|v| *v < 500.0)
    });
    eprintln!("p95 after scaling: {after:.0} ms");
    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");
}

/// The example playbook, acting at once rather than after 2 minutes of slow events, and
/// confirming the latency with the exporter's histogram query.
fn fast_scale_on_latency() -> String {
    let example_manifest =
        std::fs::read_to_string(example("scale-on-latency").join("playbook.toml")).unwrap();
    let playbook_manifest: String = example_manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with("for ="))
        .map(|l| {
            if l.trim_start().starts_with("latency_query =") {
                format!("latency_query = '{P95_QUERY}'")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(playbook_manifest, example_manifest);
    playbook_manifest
}

fn desired_capacity(fleet: &Value, group: &str) -> u64 {
    fleet["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == group)
        .unwrap_or_else(|| panic!("no group {group} in {fleet:#}"))["desired_capacity"]
        .as_u64()
        .unwrap()
}
