//! Dashboard benchmark, in a real headless Chromium (over WebDriver) against `grace serve
//! --simulate` with 1,000 runs in its store:
//!
//! - first contentful paint and page weight (Chromium's performance API) of the overview and of
//!   the runs list, beside the sign-in page measured the same way in the same run (the same
//!   server, the same scripts and styles, no data): the ratio is what the data costs;
//! - the server's resident memory with 20 dashboards open on server-sent events while runs keep
//!   arriving, beside the same load with none open.
//!
//! Needs Chromium (`just test-servers` installs it); exits with a message without it.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::browser::{browser, sign_in};
use common::*;
use grace_testkit::chromium::Chromium;
use serde_json::{Value, json};

const RUNS: usize = 1000;
const DASHBOARDS: usize = 20;
const SAMPLES: usize = 5;

fn main() {
    let Some(chromium) = Chromium::start("bench dashboard") else {
        eprintln!("dashboard bench: no Chromium here (`just test-servers` installs it); skipped");
        return;
    };
    let data = data_dir();
    let server = Server::start(&path_of(&data), &["--queue-capacity", "100000"]);
    let fire = manifest("bench-echo", "[[triggers]]\nevent_type = \"bench.fire\"\n");
    assert_eq!(server.upload(&fire, component("echo")).0, 201);
    let filled = Instant::now();
    publish(&server, 0, RUNS);
    wait_runs(&server, RUNS);
    println!(
        "dashboard: {RUNS} runs stored in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let reader = server.token_with("bench-reader", &["read"]);
    let rt = rt();

    rt.block_on(async {
        let login = measure(&chromium, &server.url, None, "/login").await;
        let overview = measure(&chromium, &server.url, Some(&reader), "/").await;
        let runs = measure(&chromium, &server.url, Some(&reader), "/runs").await;
        println!(
            "dashboard page              FCP median   weight     HTML   transferred (cache warm)"
        );
        for (name, m) in [
            ("sign-in (baseline)", &login),
            ("overview, 1,000 runs", &overview),
            ("runs list, newest 50", &runs),
        ] {
            println!(
                "  {name:<26} {:>7.0} ms {:>7.1} KB {:>6.1} KB {:>8.1} KB",
                m.fcp_ms,
                m.weight as f64 / 1024.0,
                m.html as f64 / 1024.0,
                m.transferred as f64 / 1024.0
            );
        }
        println!(
            "  overview / sign-in: FCP x{:.2}, weight x{:.2}",
            overview.fcp_ms / login.fcp_ms,
            overview.weight as f64 / login.weight as f64
        );
    });

    // Memory: the same stream of runs, with no dashboard open, then with 20.
    let before = server.rss_kib();
    publish(&server, RUNS, 200);
    wait_runs(&server, RUNS + 200);
    let without = server.rss_kib();
    // Twenty browsers, each showing the overview (a page hidden in a background tab closes its
    // stream, so each has its own window, visible). The browsers hold their streams by
    // themselves while the runs arrive.
    // Twenty people (one person holds at most 16 streams).
    let viewers: Vec<String> = (0..DASHBOARDS)
        .map(|i| server.token_with(&format!("viewer-{i}"), &["read"]))
        .collect();
    let clients = rt.block_on(async {
        let mut clients = Vec::new();
        for viewer in &viewers {
            let client = browser(&chromium, true).await;
            sign_in(&client, &server.url, viewer).await;
            clients.push(client);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        clients
    });
    let open = server.rss_kib();
    let streams = server.metric("grace_dashboard_streams");
    publish(&server, RUNS + 200, 200);
    wait_runs(&server, RUNS + 400);
    // Let every page refresh itself after the last change.
    std::thread::sleep(Duration::from_secs(3));
    let after = server.rss_kib();
    rt.block_on(async {
        for client in clients {
            client.close().await.unwrap();
        }
    });
    let with = (open, after, streams);
    println!(
        "dashboard: server RSS {:.1} MB at rest; {:.1} MB after 200 runs with none open; {:.1} MB with {DASHBOARDS} open; {:.1} MB after 200 more runs with them open ({} streams)",
        before as f64 / 1024.0,
        without as f64 / 1024.0,
        with.0 as f64 / 1024.0,
        with.1 as f64 / 1024.0,
        with.2
    );
    // The same 200 runs, with none open and with twenty open: what the dashboards add.
    let grew_without = without.saturating_sub(before);
    let grew_with = with.1.saturating_sub(with.0);
    println!(
        "  200 runs grew the server by {:.1} MB with no dashboard open, {:.1} MB with {DASHBOARDS} open: {:.1} MB more ({:.0} KB per dashboard)",
        grew_without as f64 / 1024.0,
        grew_with as f64 / 1024.0,
        grew_with.saturating_sub(grew_without) as f64 / 1024.0,
        grew_with.saturating_sub(grew_without) as f64 / DASHBOARDS as f64
    );
}

fn publish(server: &Server, from: usize, n: usize) {
    publish_to(&server.url, &server.token, from, n);
}

fn publish_to(url: &str, token: &str, from: usize, n: usize) {
    let client = client_with_token(token);
    let rt = rt();
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(100) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|i| event("bench.fire", &format!("host-{i}"), *i as u64, 1.0))
            .collect();
        let (status, body) = rt
            .block_on(send(
                &client,
                reqwest::Method::POST,
                &format!("{url}/v1/events"),
                Some((
                    Some("application/json"),
                    json!(events).to_string().into_bytes(),
                )),
            ))
            .unwrap();
        assert_eq!(status, 202, "{body}");
    }
}

fn wait_runs(server: &Server, n: usize) {
    grace_testkit::poll_until("the runs", Duration::from_secs(300), || {
        let (_, runs) = server.get("/v1/runs?state=succeeded&limit=10000");
        (runs.as_array().map_or(0, Vec::len) >= n).then_some(())
    });
}

struct Measured {
    fcp_ms: f64,
    /// Every byte the page is made of (HTML, scripts, styles), decoded.
    weight: u64,
    html: u64,
    /// The bytes that crossed the network (with the browser's cache).
    transferred: u64,
}

/// The median first contentful paint of `path` over [`SAMPLES`] fresh browsers (nothing
/// cached), and its weight.
async fn measure(chromium: &Chromium, url: &str, token: Option<&str>, path: &str) -> Measured {
    let mut fcps = Vec::new();
    let (mut weight, mut html, mut transferred) = (0, 0, 0);
    for _ in 0..SAMPLES {
        let client = browser(chromium, true).await;
        // Every page is measured in a browser that has been here before (the sign-in page
        // loads the same scripts and styles, which it then revalidates: `304`), as a person's
        // browser has.
        client.goto(&format!("{url}/login")).await.unwrap();
        if let Some(token) = token {
            sign_in(&client, url, token).await;
        }
        client.goto(&format!("{url}{path}")).await.unwrap();
        let script = "const done = arguments[0];
            const read = () => {
              const fcp = performance.getEntriesByName('first-contentful-paint')[0];
              if (!fcp) { return setTimeout(read, 50); }
              const nav = performance.getEntriesByType('navigation')[0];
              const files = performance.getEntriesByType('resource')
                .filter(r => !r.name.includes('/ui/stream'));
              const sum = (f) => files.reduce((n, r) => n + (f(r) || 0), 0);
              done({
                fcp: fcp.startTime,
                html: nav.decodedBodySize,
                weight: nav.decodedBodySize + sum(r => r.decodedBodySize),
                transferred: nav.transferSize + sum(r => r.transferSize),
              });
            };
            read();";
        let m = client.execute_async(script, vec![]).await.unwrap();
        fcps.push(m["fcp"].as_f64().unwrap());
        weight = m["weight"].as_u64().unwrap();
        html = m["html"].as_u64().unwrap();
        transferred = m["transferred"].as_u64().unwrap();
        client.close().await.unwrap();
    }
    fcps.sort_by(f64::total_cmp);
    Measured {
        fcp_ms: fcps[fcps.len() / 2],
        weight,
        html,
        transferred,
    }
}
