//! A bounded load on loopback — events from several publishers, playbook uploads and API reads,
//! all at once, for a few seconds — loses nothing and keeps the server's memory bounded.
//!
//! No timing is asserted (the machine is shared and noisy): `just bench` measures throughput
//! (`cargo bench -p grace --bench load`).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::stress::{Load, drive_load};
use common::*;
use grace_testkit::poll_until;

/// Far above what the server needs here (about 100 MiB); a leak or an unbounded buffer under
/// this load would cross it.
const PEAK_RSS_BOUND_KIB: u64 = 768 * 1024;

#[test]
fn a_bounded_mixed_load_loses_nothing_and_memory_stays_bounded() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &["--queue-capacity", "20000"]);
    let fire = manifest("load-echo", "[[triggers]]\nevent_type = \"load.fire\"\n");
    assert_eq!(server.upload(&fire, component("echo")).0, 201);
    let echo = component("echo");
    let upload = |n: usize| {
        let m = manifest("load-upload", "[[triggers]]\nevent_type = \"load.never\"\n")
            .replace("version = \"1.0.0\"", &format!("version = \"1.0.{n}\""));
        server.upload(&m, echo.clone()).0 == 201
    };
    let load = Load {
        publishers: 3,
        batch: 50,
        firing_percent: 2,
        duration: Duration::from_secs(6),
        with_uploads_and_reads: true,
    };
    let (mut first_half, mut second_half) = (0, 0);
    let report = drive_load(&server.url, &server.token, load, &upload, &mut |at| {
        let rss = server.rss_kib();
        if at < load.duration / 2 {
            first_half = first_half.max(rss);
        } else {
            second_half = second_half.max(rss);
        }
    });
    let peak = server.peak_rss_kib();
    eprintln!(
        "load: {} events acknowledged ({:.0}/s), {} batches throttled, {} uploads, {} reads; \
         RSS max {} KiB in the first half, {} KiB in the second; peak {} KiB",
        report.events.len(),
        report.events_per_sec(),
        report.throttled,
        report.uploads,
        report.reads,
        first_half,
        second_half,
        peak
    );
    assert!(report.events.len() > 1000 && report.uploads > 0 && report.reads > 0);
    assert!(peak < PEAK_RSS_BOUND_KIB, "peak RSS {peak} KiB");
    assert!(
        second_half < first_half + first_half / 2 + 32 * 1024,
        "memory kept growing: {first_half} KiB, then {second_half} KiB"
    );

    // Nothing lost: every acknowledged event stored as sent, every firing one ran once.
    let mut stored = 0;
    let mut from = 1;
    loop {
        let (_, page) = server.get(&format!("/v1/events?from={from}&limit=10000"));
        let page = page.as_array().unwrap();
        let Some(last) = page.last() else { break };
        from = last["seq"].as_u64().unwrap() + 1;
        for e in page {
            let seq = e["seq"].as_u64().unwrap();
            if let Some(sent) = report.events.get(&seq) {
                assert_eq!(e["event"]["resource"], sent["resource"], "event {seq}");
                stored += 1;
            }
        }
    }
    assert_eq!(stored, report.events.len(), "acknowledged events lost");
    poll_until(
        "a run for every firing event",
        Duration::from_secs(120),
        || {
            let (_, runs) = server.get("/v1/runs?playbook=load-echo&limit=10000");
            let resources: BTreeSet<String> = runs
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["resource"].as_str().unwrap().to_owned())
                .collect();
            (resources.len() == report.firing.len()
                && report.firing.iter().all(|r| resources.contains(r)))
            .then_some(())
        },
    );
    let (_, verify) = server.get("/v1/ledger/verify");
    assert_eq!(verify["ok"], true, "{verify}");
}
