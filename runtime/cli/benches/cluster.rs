//! Cluster benchmark: events accepted and matched by 1, 2 and 3 `grace serve --simulate`
//! replicas (release) sharing a three-node NATS JetStream cluster on loopback, beside one server
//! alone on its redb, measured in the same run with the same driver (publishers sending batches
//! of 100 events, round robin over the replicas); then the takeover time after a `kill -9`: from
//! the kill to the first event of the dead replica's shards matched by the survivor.
//!
//! Durability is not the same, and the output says so: the lone server acknowledges an event once
//! its redb commit is fsynced; a cluster once two of the three NATS nodes stored it (nats-server
//! 2.9 writes it to the file store and syncs every two minutes by default, relying on the copies).
//!
//! `GRACE_BENCH_SECS` sets each round's length (default 10). Skips (printing why) without
//! `nats-server`.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::stress::Http;
use common::*;
use grace_testkit::nats::NatsCluster;
use grace_testkit::poll_until;
use serde_json::{Value, json};

const SHARDS: u32 = 16;
const PUBLISHERS: usize = 6;
const BATCH: usize = 100;

fn main() {
    let secs: u64 = std::env::var("GRACE_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let round = Duration::from_secs(secs);
    let Some(nats) = NatsCluster::start("bench cluster", 3) else {
        eprintln!("cluster benchmark skipped: nats-server is missing");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("grace.toml");
    std::fs::write(
        &config,
        grace_testkit::nats::cluster_toml(&nats.urls(), &format!("shards = {SHARDS}\n")),
    )
    .unwrap();

    println!("== cluster: {PUBLISHERS} publishers, batches of {BATCH}, {secs} s per round");
    let alone_data = data_dir();
    let alone = Server::start(alone_data.path(), &["--queue-capacity", "100000"]);
    let alone_rate = measure("alone (redb)", &[&alone], round);

    let mut replicas: Vec<(Server, tempfile::TempDir)> = Vec::new();
    for n in 1..=3 {
        replicas.push(replica(&config, &format!("r{n}")));
        let servers: Vec<&Server> = replicas.iter().map(|(s, _)| s).collect();
        wait_balanced(&servers);
        let rate = measure(&format!("{n} replica(s)"), &servers, round);
        println!(
            "   ratio to alone: accepted {:.2}x, matched {:.2}x",
            rate.0 / alone_rate.0,
            rate.1 / alone_rate.1
        );
    }

    // Takeover: r3 killed; events of its shards published to r1 at once; the time until the
    // first of them is matched is lease expiry + the survivors' next round + the import's start.
    let dead: Vec<u32> = status(&replicas[2].0)["owned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["shard"].as_u64().unwrap() as u32)
        .collect();
    let resources: Vec<String> = (0..10_000)
        .map(|i| format!("takeover-{i}"))
        .filter(|r| dead.contains(&grace_cluster::shards::shard_of(r, SHARDS)))
        .take(20)
        .collect();
    let (mut dying, _dying_data) = replicas.pop().unwrap();
    let survivors: Vec<&Server> = replicas.iter().map(|(s, _)| s).collect();
    let before = matched(&survivors);
    dying.kill9();
    let killed = Instant::now();
    let http = Http::new(&survivors[0].url, &survivors[0].token);
    let batch: Vec<Value> = resources
        .iter()
        .map(|r| json!({"event_type": "bench.takeover", "source": "bench", "actor": "bench", "resource": r, "payload": {}}))
        .collect();
    let (status_code, body) = http.post("/v1/events", &Value::Array(batch)).unwrap();
    assert_eq!(status_code, 202, "{body}");
    poll_until(
        "the dead replica's shards' events matched",
        Duration::from_secs(120),
        || (matched(&survivors) > before).then_some(()),
    );
    let takeover = killed.elapsed();
    poll_until("all of them matched", Duration::from_secs(120), || {
        (matched(&survivors) >= before + resources.len() as u64).then_some(())
    });
    println!(
        "takeover after kill -9 (lease_ttl 15 s, renew every 3 s): first event of the dead replica's shards matched {:.2} s after the kill; all {} in {:.2} s",
        takeover.as_secs_f64(),
        resources.len(),
        killed.elapsed().as_secs_f64()
    );
    println!(
        "durability: alone = redb commit fsynced; cluster = stored by 2 of 3 NATS nodes (file store, synced every 2 min by default)"
    );
}

fn replica(config: &Path, name: &str) -> (Server, tempfile::TempDir) {
    let data = data_dir();
    let server = Server::start(
        data.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--replica",
            name,
            "--queue-capacity",
            "100000",
        ],
    );
    (server, data)
}

fn status(server: &Server) -> Value {
    let (code, body) = server.get("/v1/cluster");
    assert_eq!(code, 200, "{body}");
    body
}

/// Until every live replica holds its share and every shard is held.
fn wait_balanced(servers: &[&Server]) {
    let share = (SHARDS as usize).div_ceil(servers.len());
    poll_until("the shards to be balanced", Duration::from_secs(60), || {
        let s = status(servers[0]);
        let holders = s["holders"].as_array().unwrap();
        let all_held = holders.iter().all(|h| !h.is_null());
        let balanced = servers.iter().all(|srv| {
            let name = status(srv)["replica"].as_str().unwrap().to_owned();
            let n = holders
                .iter()
                .filter(|h| h["replica"] == name.as_str())
                .count();
            n >= share.saturating_sub(1) && n <= share
        });
        (all_held && balanced).then_some(())
    });
}

fn matched(servers: &[&Server]) -> u64 {
    servers
        .iter()
        .map(|s| s.metric("grace_events_matched_total") as u64)
        .sum()
}

/// Publishes for `round` round robin over `servers`, then waits until every acknowledged event
/// was matched. Prints and returns (accepted/s, matched/s).
fn measure(label: &str, servers: &[&Server], round: Duration) -> (f64, f64) {
    let before = matched(servers);
    let acked = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for p in 0..PUBLISHERS {
            let server = servers[p % servers.len()];
            let (acked, stop) = (&acked, &stop);
            let label = label.to_owned();
            scope.spawn(move || {
                let http = Http::new(&server.url, &server.token);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let batch: Vec<Value> = (0..BATCH)
                        .map(|_| {
                            n += 1;
                            json!({
                                "event_type": "bench.noise", "source": "bench",
                                "actor": format!("publisher-{p}"),
                                "resource": format!("{label}-p{p}-e{n}"),
                                "payload": { "value": n },
                            })
                        })
                        .collect();
                    let (code, body) = http.post("/v1/events", &Value::Array(batch)).unwrap();
                    match code {
                        202 => {
                            acked.fetch_add(BATCH as u64, Ordering::Relaxed);
                        }
                        429 | 503 => std::thread::sleep(Duration::from_millis(10)),
                        _ => panic!("publishing: {code} {body}"),
                    }
                }
            });
        }
        std::thread::sleep(round);
        stop.store(true, Ordering::Relaxed);
    });
    let published_in = started.elapsed();
    let acked = acked.load(Ordering::Relaxed);
    poll_until(
        "every acknowledged event matched",
        Duration::from_secs(600),
        || (matched(servers) >= before + acked).then_some(()),
    );
    let matched_in = started.elapsed();
    let accepted = acked as f64 / published_in.as_secs_f64();
    let matched_rate = acked as f64 / matched_in.as_secs_f64();
    println!(
        "{label}: {acked} events; accepted {accepted:.0} ev/s; all matched {:.2} s after the start ({matched_rate:.0} ev/s)",
        matched_in.as_secs_f64()
    );
    (accepted, matched_rate)
}
