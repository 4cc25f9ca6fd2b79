//! Load benchmark: `grace serve --simulate` (release) on loopback under the load test's driver —
//! publishers sending batches of events, then the same with playbook uploads and API reads at
//! once — against a baseline measured in the same run with the same driver: a parse-only axum
//! handler answering `202` (no storage, no matching), because shared machines are noisy.
//!
//! Prints the events/s held, p50/p99 acknowledgement latency (a batch's POST to its `202`, the
//! events fsynced), the server's peak RSS, and the ratio to the baseline.
//! `GRACE_BENCH_SECS` sets each round's length (default 10).

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::stress::{Load, LoadReport, drive_load};
use common::*;

fn main() {
    let secs: u64 = std::env::var("GRACE_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let events_only = Load {
        publishers: 4,
        batch: 100,
        firing_percent: 1,
        duration: Duration::from_secs(secs),
        with_uploads_and_reads: false,
    };
    let no_upload = |_: usize| false;

    let data = data_dir();
    let server = Server::start(&path_of(&data), &["--queue-capacity", "100000"]);
    let fire = manifest("load-echo", "[[triggers]]\nevent_type = \"load.fire\"\n");
    assert_eq!(server.upload(&fire, component("echo")).0, 201);
    let grace = drive_load(
        &server.url,
        &server.token,
        events_only,
        &no_upload,
        &mut |_| {},
    );

    let baseline = baseline(events_only);

    let echo = component("echo");
    let upload = |n: usize| {
        let m = manifest("load-upload", "[[triggers]]\nevent_type = \"load.never\"\n")
            .replace("version = \"1.0.0\"", &format!("version = \"1.0.{n}\""));
        server.upload(&m, echo.clone()).0 == 201
    };
    let mixed = drive_load(
        &server.url,
        &server.token,
        Load {
            with_uploads_and_reads: true,
            ..events_only
        },
        &upload,
        &mut |_| {},
    );
    let peak_mib = server.peak_rss_kib() as f64 / 1024.0;
    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");

    println!(
        "\nload: {} publishers x {} events per batch, {secs} s per round, loopback",
        events_only.publishers, events_only.batch
    );
    row("GRACE, events only (durable, matched)", &grace);
    row("baseline: parse-only axum handler", &baseline);
    row("GRACE, events + uploads + API reads", &mixed);
    println!(
        "{:<40} {:.2}x the baseline's events/s",
        "GRACE / baseline",
        grace.events_per_sec() / baseline.events_per_sec()
    );
    println!(
        "{:<40} {peak_mib:.0} MiB ({} uploads, {} reads in the mixed round)",
        "GRACE peak RSS (VmHWM)", mixed.uploads, mixed.reads
    );
}

fn row(what: &str, r: &LoadReport) {
    println!(
        "{what:<40} {:>9.0} events/s   ack p50 {:>7.2} ms   p99 {:>7.2} ms   ({} throttled)",
        r.events_per_sec(),
        r.latency(0.5).as_secs_f64() * 1e3,
        r.latency(0.99).as_secs_f64() * 1e3,
        r.throttled
    );
}

/// The same load against a handler that parses the batch and answers `202` with made-up seqs.
fn baseline(load: Load) -> LoadReport {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let next = Arc::new(AtomicU64::new(1));
    let app = axum::Router::new().route(
        "/v1/events",
        axum::routing::post(move |body: axum::body::Bytes| {
            let next = next.clone();
            async move {
                let events: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
                let n = events.len() as u64;
                let first = next.fetch_add(n, Ordering::Relaxed);
                (
                    axum::http::StatusCode::ACCEPTED,
                    axum::Json(serde_json::json!({
                        "accepted": n, "first_seq": first, "last_seq": first + n - 1
                    })),
                )
            }
        }),
    );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, app).await });
    let report = drive_load(&url, "baseline", load, &|_| false, &mut |_| {});
    runtime.shutdown_background();
    report
}
