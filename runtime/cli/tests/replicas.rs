//! Several `grace serve` replicas sharing one cluster on a real three-node NATS JetStream
//! cluster (started by the test kit; skipped loudly without `nats-server`, failing under
//! `GRACE_E2E=required`): shards split between live replicas, moved when one is killed, given
//! back when one stops; `/v1/cluster`, `/readyz`, the metrics and `grace cluster status`.

// A panic is how a test fails: unwrapping in the helpers is the point.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Server, component, data_dir, event, manifest};
use grace_testkit::example_manifest;
use grace_testkit::nats::{NatsCluster, cluster_toml};
use grace_testkit::poll_until;
use serde_json::Value;

const SHARDS: usize = 8;

/// A `grace.toml` with `[cluster]` on `nats`: 8 shards, leases of 3 s renewed every 500 ms.
fn cluster_config(dir: &Path, nats: &NatsCluster) -> PathBuf {
    config_file(
        dir,
        "grace.toml",
        &nats.urls(),
        "lease_ttl = \"3s\"\nrenew_every = \"500ms\"\nrequest_timeout = \"1s\"\n",
    )
}

/// `dir/name` holding a `[cluster]` on `urls` with 8 shards and `settings`.
fn config_file(dir: &Path, name: &str, urls: &[String], settings: &str) -> PathBuf {
    let path = dir.join(name);
    let section = cluster_toml(urls, &format!("shards = {SHARDS}\n{settings}"));
    std::fs::write(&path, section).unwrap();
    path
}

fn replica(config: &Path, name: &str) -> (Server, tempfile::TempDir) {
    replica_with_env(config, name, &[])
}

fn replica_with_env(
    config: &Path,
    name: &str,
    env: &[(&str, &str)],
) -> (Server, tempfile::TempDir) {
    let data = data_dir();
    let server = Server::start_with_env(
        data.path(),
        &["--config", config.to_str().unwrap(), "--replica", name],
        env,
    );
    (server, data)
}

fn status(server: &Server) -> Value {
    let (code, body) = server.get("/v1/cluster");
    assert_eq!(code, 200, "{body}");
    body
}

fn held_by(server: &Server, replica: &str) -> usize {
    status(server)["holders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["replica"] == replica)
        .count()
}

fn counter(server: &Server, name: &str) -> u64 {
    status(server)["counters"][name].as_u64().unwrap()
}

#[test]
fn replicas_split_the_shards_and_take_over_a_killed_ones() {
    let Some(nats) = NatsCluster::start("replicas_split_the_shards", 3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path(), &nats);
    let (a, _a_data) = replica(&config, "a");
    let (mut b, _b_data) = replica(&config, "b");
    poll_until(
        "a and b to hold 4 shards each",
        Duration::from_secs(30),
        || (held_by(&a, "a") == 4 && held_by(&a, "b") == 4).then_some(()),
    );

    // What operators see.
    for server in [&a, &b] {
        let (code, body) = server.get_as("/readyz", None);
        assert_eq!(
            (code, &body["status"]),
            (200, &Value::from("ready")),
            "{body}"
        );
    }
    let (_, health) = a.get("/healthz");
    assert_eq!(health["cluster"]["replica"], "a");
    assert_eq!(health["cluster"]["ready"], true);
    let out = a.grace_with(&["cluster", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("replica a (ready), 8 shards"), "{text}");
    assert!(text.contains("REPLICA") && text.contains("\nb "), "{text}");
    let out = a.grace_with(&["cluster", "status", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["owned"].as_array().unwrap().len(), 4);
    assert_eq!(a.metric("grace_cluster_ready"), 1.0);
    assert_eq!(a.metric("grace_cluster_replicas"), 2.0);
    let owned_series: f64 = (0..SHARDS)
        .map(|s| a.metric(&format!("grace_shard_owned{{shard=\"{s}\"}}")))
        .sum();
    assert_eq!(owned_series, 4.0);

    // b is killed: its leases expire on the engine and a takes its shards over.
    b.kill9();
    poll_until("a to hold all 8 shards", Duration::from_secs(30), || {
        (held_by(&a, "a") == SHARDS).then_some(())
    });
    assert_eq!(counter(&a, "takeovers"), 4);
    assert_eq!(status(&a)["replicas"].as_array().unwrap().len(), 1);

    // b comes back under its name: the shards are shared again.
    let (b, _b_data2) = replica(&config, "b");
    poll_until(
        "a and b to hold 4 shards each again",
        Duration::from_secs(30),
        || (held_by(&b, "a") == 4 && held_by(&b, "b") == 4).then_some(()),
    );

    // a stops cleanly: it gives its shards back, and b takes them without waiting for them
    // to expire (no takeover).
    let takeovers = counter(&b, "takeovers");
    signal(a.pid(), "-TERM");
    poll_until("b to hold all 8 shards", Duration::from_secs(30), || {
        (held_by(&b, "b") == SHARDS).then_some(())
    });
    assert_eq!(
        counter(&b, "takeovers"),
        takeovers,
        "released, not taken over"
    );
    assert!(counter(&b, "acquisitions") >= 8);
}

#[test]
fn a_replica_cut_off_from_the_engine_is_not_ready_and_a_lone_server_has_no_cluster() {
    let Some(mut nats) = NatsCluster::start("a_replica_cut_off", 1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grace.toml");
    let section = cluster_toml(
        &[nats.url(0)],
        "shards = 2\nengine_replicas = 1\nlease_ttl = \"3s\"\nrenew_every = \"500ms\"\nrequest_timeout = \"1s\"\n",
    );
    std::fs::write(&path, section).unwrap();
    let (a, _data) = replica(&path, "a");
    poll_until("a to be ready", Duration::from_secs(30), || {
        (a.get_as("/readyz", None).0 == 200).then_some(())
    });
    nats.kill(0);
    let body = poll_until("a to be not ready", Duration::from_secs(30), || {
        let (code, body) = a.get_as("/readyz", None);
        (code == 503).then_some(body)
    });
    assert!(
        body["reasons"][0].as_str().unwrap().contains("cluster"),
        "{body}"
    );
    let out = a.grace_with(&["cluster", "status"]);
    assert_eq!(out.status.code(), Some(1), "not ready exits 1");
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT READY"));
    // Liveness is not readiness: the process itself is fine.
    assert_eq!(a.get_as("/healthz", None).0, 200);
    nats.restart(0);
    poll_until("a to be ready again", Duration::from_secs(30), || {
        (a.get_as("/readyz", None).0 == 200).then_some(())
    });

    let lone_data = data_dir();
    let lone = Server::start(lone_data.path(), &[]);
    let (code, body) = lone.get("/v1/cluster");
    assert_eq!(code, 404, "{body}");
    assert!(body["error"].to_string().contains("[cluster]"), "{body}");
    assert_eq!(lone.get_as("/readyz", None).0, 200);
}

/// The resources of the runs of `playbook` on each replica.
fn run_resources(replicas: &[&Server]) -> Vec<Vec<String>> {
    replicas
        .iter()
        .map(|r| {
            r.runs_of("on-incident")
                .iter()
                .map(|run| run["resource"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

/// Which replica holds the shard of `resource`, as `a` sees it.
fn owner_of(a: &Server, resource: &str) -> String {
    let shard = grace_cluster::shards::shard_of(resource, SHARDS as u32) as usize;
    status(a)["holders"][shard]["replica"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn events_published_to_any_replica_are_matched_once_by_their_shards_owner() {
    let Some(nats) = NatsCluster::start("events_published_to_any_replica", 3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path(), &nats);
    let names = ["a", "b", "c"];
    let mut replicas: Vec<(Server, tempfile::TempDir)> =
        names.iter().map(|n| replica(&config, n)).collect();
    let playbook = manifest(
        "on-incident",
        "[[triggers]]\nevent_type = \"test.incident\"\n",
    );
    for (r, _) in &replicas {
        assert_eq!(r.upload(&playbook, component("echo")).0, 201);
    }
    poll_until("every shard held", Duration::from_secs(30), || {
        let s = status(&replicas[0].0);
        (s["holders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| !h.is_null())
            && s["replicas"].as_array().unwrap().len() == 3)
            .then_some(())
    });

    // Each event to one replica, and again to the next one (a publisher retrying elsewhere,
    // an Alertmanager notification sent to two): one run per event, on its shard's owner.
    let resources: Vec<String> = (0..24).map(|i| format!("host-{i}")).collect();
    for (i, resource) in resources.iter().enumerate() {
        let e = event("test.incident", resource, i as u64, 1.0);
        for r in [i % 3, (i + 1) % 3] {
            let (code, body) = replicas[r].0.post("/v1/events", e.clone());
            assert_eq!(code, 202, "{body}");
        }
    }
    let servers: Vec<&Server> = replicas.iter().map(|(s, _)| s).collect();
    let runs = poll_until("a run for each event", Duration::from_secs(60), || {
        let runs = run_resources(&servers);
        (runs.iter().map(Vec::len).sum::<usize>() >= resources.len()).then_some(runs)
    });
    let mut all: Vec<&String> = runs.iter().flatten().collect();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        resources.len(),
        "a run for every event: {runs:?}"
    );
    // And none twice: once the replicas matched every stored event (24 in all), no further
    // run can come.
    poll_until(
        "every stored event matched",
        Duration::from_secs(60),
        || {
            let matched: f64 = servers
                .iter()
                .map(|s| s.metric("grace_events_matched_total"))
                .sum();
            (matched >= resources.len() as f64).then_some(())
        },
    );
    let runs = run_resources(&servers);
    assert_eq!(
        runs.iter().map(Vec::len).sum::<usize>(),
        resources.len(),
        "one run per event: {runs:?}"
    );
    for (i, name) in names.iter().enumerate() {
        for resource in &runs[i] {
            assert_eq!(
                &owner_of(servers[0], resource),
                name,
                "{resource} ran on {name}"
            );
        }
    }

    // c is killed: events of its shards wait in the cluster's log until a and b take them over.
    let dead_shards: Vec<u64> = status(servers[2])["owned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["shard"].as_u64().unwrap())
        .collect();
    replicas[2].0.kill9();
    let later: Vec<String> = (0..24).map(|i| format!("late-{i}")).collect();
    for (i, resource) in later.iter().enumerate() {
        let (code, body) = replicas[i % 2].0.post(
            "/v1/events",
            event("test.incident", resource, 100 + i as u64, 1.0),
        );
        assert_eq!(code, 202, "{body}");
    }
    let survivors = [&replicas[0].0, &replicas[1].0];
    let runs = poll_until(
        "a run for each later event",
        Duration::from_secs(60),
        || {
            let runs: Vec<String> = run_resources(&survivors)
                .into_iter()
                .flatten()
                .filter(|r| r.starts_with("late-"))
                .collect();
            (runs.len() >= later.len()).then_some(runs)
        },
    );
    let mut distinct = runs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), later.len(), "{runs:?}");
    assert_eq!(runs.len(), later.len(), "none twice: {runs:?}");
    assert!(
        later.iter().any(
            |r| dead_shards.contains(&u64::from(grace_cluster::shards::shard_of(
                r,
                SHARDS as u32
            )))
        ),
        "some later events belong to the killed replica's shards"
    );
    drop(replicas);
}

/// Whether process `pid` is stopped (`T` in `/proc/<pid>/stat`).
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit(") ").next().map(|rest| rest.starts_with('T')))
        .unwrap_or(false)
}

fn signal(pid: u32, name: &str) {
    assert!(
        std::process::Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn a_replica_paused_before_a_change_does_not_make_it_once_its_shard_moved() {
    let Some(nats) = NatsCluster::start("a_replica_paused_before_a_change", 3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path(), &nats);
    // a stops itself (SIGSTOP) right after its first fence check passed, before the change
    // (a test hook of debug builds).
    let (mut a, _a_data) =
        replica_with_env(&config, "a", &[("GRACE_TEST_PAUSE_AT", "before-change")]);
    let playbook = example_manifest("restart-unhealthy-container", &[]);
    let wasm = component("restart_unhealthy_container");
    assert_eq!(a.upload(&playbook, wasm.clone()).0, 201);
    poll_until("a to hold every shard", Duration::from_secs(30), || {
        (held_by(&a, "a") == SHARDS).then_some(())
    });
    let (code, body) = a.post("/v1/events", event("container.unhealthy", "web-1", 1, 1.0));
    assert_eq!(code, 202, "{body}");
    let pid = a.pid();
    poll_until(
        "a to stop itself before the change",
        Duration::from_secs(60),
        || stopped(pid).then_some(()),
    );

    // b starts, takes the shards once a's leases expired, and handles the next event about
    // the same container: it restarts it.
    let (b, _b_data) = replica(&config, "b");
    assert_eq!(b.upload(&playbook, wasm).0, 201);
    poll_until("b to hold every shard", Duration::from_secs(30), || {
        (held_by(&b, "b") == SHARDS).then_some(())
    });
    let (code, body) = b.post("/v1/events", event("container.unhealthy", "web-1", 2, 1.0));
    assert_eq!(code, 202, "{body}");
    let b_run = poll_until("b's run to succeed", Duration::from_secs(60), || {
        let runs = b.runs_of("restart-unhealthy-container");
        runs.into_iter().find(|r| r["state"] == "succeeded")
    });
    assert_eq!(b_run["resource"], "web-1");

    // a resumes: its proof expired while it was stopped, so it does not restart the container.
    signal(pid, "-CONT");
    let a_run = poll_until("a's run to end", Duration::from_secs(120), || {
        let runs = a.runs_of("restart-unhealthy-container");
        runs.into_iter().find(|r| {
            ["failed", "succeeded", "cancelled", "timed-out"]
                .contains(&r["state"].as_str().unwrap_or_default())
        })
    });
    assert_eq!(a_run["state"], "failed", "{a_run:#}");
    let (_, a_run) = a.get(&format!("/v1/runs/{}", a_run["id"].as_str().unwrap()));
    assert_eq!(a_run["failure"]["kind"], "fenced", "{a_run:#}");
    let (_, fleet) = a.get("/v1/fleet");
    let web1 = fleet["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web-1")
        .unwrap()
        .clone();
    assert_eq!(web1["health"], "unhealthy", "a made no change: {web1}");
    assert_eq!(a.try_exit(), None);
    // The ledger tells the fenced change apart from the made one.
    let run_id = a_run["id"].as_str().unwrap();
    let (_, entries) = a.get(&format!("/v1/ledger/entries?run={run_id}"));
    let fenced: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result"]["fenced"] == true)
        .collect();
    assert_eq!(fenced.len(), 1, "{entries:#}");
    let (_, entries) = b.get(&format!(
        "/v1/ledger/entries?run={}",
        b_run["id"].as_str().unwrap()
    ));
    let made: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result"]["fence"]["replica"] == "b")
        .collect();
    assert_eq!(
        made.len(),
        1,
        "the change carries b's fencing token: {entries:#}"
    );
    assert!(made[0]["result"]["fence"]["token"].as_u64().unwrap() > 0);
}

#[test]
fn a_replica_partitioned_from_the_engine_stops_taking_part_and_its_shards_move() {
    let Some(nats) = NatsCluster::start("a_replica_partitioned_from_the_engine", 3) else {
        return;
    };
    // a reaches the engine only through a proxy to one node, and keeps to it; b reaches all.
    let proxy = grace_testkit::cut_proxy::CutProxy::start(
        format!("127.0.0.1:{}", nats.client_port(0))
            .parse()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let timing = "lease_ttl = \"3s\"\nrenew_every = \"500ms\"\nrequest_timeout = \"1s\"\n";
    let a_config = config_file(
        dir.path(),
        "a.toml",
        &[proxy.nats_url()],
        &format!("discover_servers = false\n{timing}"),
    );
    let b_config = config_file(dir.path(), "b.toml", &nats.urls(), timing);
    let (a, _a_data) = replica(&a_config, "a");
    let (b, _b_data) = replica(&b_config, "b");
    poll_until(
        "a and b to hold 4 shards each",
        Duration::from_secs(30),
        || (held_by(&b, "a") == 4 && held_by(&b, "b") == 4).then_some(()),
    );

    proxy.cut();
    let body = poll_until("a to be not ready", Duration::from_secs(30), || {
        let (code, body) = a.get_as("/readyz", None);
        (code == 503).then_some(body)
    });
    assert!(
        body["reasons"][0].as_str().unwrap().contains("engine"),
        "{body}"
    );
    // a accepts nothing it could not hand to the cluster.
    let (code, body) = a.post("/v1/events", event("test.incident", "host-1", 1, 1.0));
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    // b takes a's shards once their leases expired; a holds none by its own clock either.
    poll_until("b to hold every shard", Duration::from_secs(30), || {
        (held_by(&b, "b") == SHARDS).then_some(())
    });
    let a_status = status(&a);
    assert!(
        a_status["owned"].as_array().unwrap().is_empty(),
        "{a_status}"
    );
    assert_eq!(a.metric("grace_cluster_ready"), 0.0);

    proxy.heal();
    poll_until(
        "a back and sharing the shards",
        Duration::from_secs(60),
        || {
            (a.get_as("/readyz", None).0 == 200 && held_by(&b, "a") == 4 && held_by(&b, "b") == 4)
                .then_some(())
        },
    );
}

#[test]
fn losing_the_engine_node_that_leads_the_event_log_loses_no_event() {
    let Some(mut nats) = NatsCluster::start("losing_the_engine_node_that_leads", 3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Leases must outlast the engine's election (about 5 s): 10 s here.
    let config = config_file(
        dir.path(),
        "grace.toml",
        &nats.urls(),
        "lease_ttl = \"10s\"\nrenew_every = \"1s\"\nrequest_timeout = \"2s\"\n",
    );
    let (a, _a_data) = replica(&config, "a");
    let (b, _b_data) = replica(&config, "b");
    let playbook = manifest(
        "on-incident",
        "[[triggers]]\nevent_type = \"test.incident\"\n",
    );
    for r in [&a, &b] {
        assert_eq!(r.upload(&playbook, component("echo")).0, 201);
    }
    poll_until(
        "a and b to hold 4 shards each",
        Duration::from_secs(30),
        || (held_by(&a, "a") == 4 && held_by(&a, "b") == 4).then_some(()),
    );
    let leader = nats
        .stream_leader("GRACE_EVENTS")
        .expect("a node leads the event log");
    let resources: Vec<String> = (0..20).map(|i| format!("node-loss-{i}")).collect();
    for (i, resource) in resources.iter().enumerate() {
        if i == 5 {
            nats.kill(leader);
        }
        // During the election publishers get 503 with Retry-After, and retry.
        let target = if i % 2 == 0 { &a } else { &b };
        poll_until("the event to be accepted", Duration::from_secs(30), || {
            let (code, body) = target.post(
                "/v1/events",
                event("test.incident", resource, i as u64, 1.0),
            );
            match code {
                202 => Some(()),
                503 => None,
                _ => panic!("{code} {body}"),
            }
        });
    }
    let runs = poll_until("a run for each event", Duration::from_secs(60), || {
        let runs: Vec<String> = run_resources(&[&a, &b]).into_iter().flatten().collect();
        (runs.len() >= resources.len()).then_some(runs)
    });
    let mut distinct = runs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), resources.len(), "one run each: {runs:?}");
    assert_eq!(runs.len(), resources.len(), "none twice: {runs:?}");
    // No lease was lost: the election is well inside lease_ttl.
    for r in [&a, &b] {
        assert_eq!(counter(r, "losses"), 0, "{}", status(r));
        // Readiness may lag the election by a moment while the replica's connection to the
        // engine settles (seen under a loaded CI machine); it comes back without a lease lost.
        poll_until("the replica ready again", Duration::from_secs(15), || {
            (r.get_as("/readyz", None).0 == 200).then_some(())
        });
    }
}

/// A replica running the restart playbook stops itself at `pause_at` (a test hook of debug
/// builds) and is killed there (`kill -9`); a second replica takes the shards and the run over.
/// Answers the second replica (and its data), the run as it shows it, and the run's ledger
/// entries there.
fn run_taken_over_after_a_kill_at(
    nats: &NatsCluster,
    pause_at: &str,
) -> (Server, tempfile::TempDir, Value, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path(), nats);
    let (mut a, _a_data) = replica_with_env(&config, "a", &[("GRACE_TEST_PAUSE_AT", pause_at)]);
    let playbook = example_manifest("restart-unhealthy-container", &[]);
    let wasm = component("restart_unhealthy_container");
    assert_eq!(a.upload(&playbook, wasm.clone()).0, 201);
    poll_until("a to hold every shard", Duration::from_secs(30), || {
        (held_by(&a, "a") == SHARDS).then_some(())
    });
    let (code, body) = a.post("/v1/events", event("container.unhealthy", "web-1", 1, 1.0));
    assert_eq!(code, 202, "{body}");
    let pid = a.pid();
    poll_until("a to stop itself", Duration::from_secs(60), || {
        stopped(pid).then_some(())
    });
    a.kill9();

    let (b, b_data) = replica(&config, "b");
    assert_eq!(b.upload(&playbook, wasm).0, 201);
    let run = poll_until(
        "b to finish the run a began",
        Duration::from_secs(60),
        || {
            b.runs_of("restart-unhealthy-container")
                .into_iter()
                .find(|r| r["state"] == "succeeded")
        },
    );
    let id = run["id"].as_str().unwrap().to_owned();
    // The event was matched once: its run, and no other.
    assert_eq!(b.runs_of("restart-unhealthy-container").len(), 1);
    assert_eq!(counter(&b, "runs_taken_over"), 1);
    assert_eq!(b.metric("grace_runs_taken_over_total"), 1.0);
    let (_, run) = b.get(&format!("/v1/runs/{id}"));
    let (_, entries) = b.get(&format!("/v1/ledger/entries?run={id}"));
    (b, b_data, run, entries.as_array().unwrap().clone())
}

fn restarts(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| e["function"] == "restart" && e["result"]["ok"].is_object())
        .collect()
}

fn web_1_health(server: &Server) -> Value {
    let (_, fleet) = server.get("/v1/fleet");
    fleet["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web-1")
        .unwrap()["health"]
        .clone()
}

#[test]
fn a_run_whose_replica_was_killed_after_a_change_finishes_elsewhere_without_making_it_again() {
    let Some(nats) = NatsCluster::start("a_run_whose_replica_was_killed_after_a_change", 3) else {
        return;
    };
    let (b, _b_data, run, entries) = run_taken_over_after_a_kill_at(&nats, "after-change");
    assert!(run["attempts"].as_u64().unwrap() >= 2, "{run:#}");
    // The restart a made is replayed from the cluster's journal, not made again by b.
    let restarts = restarts(&entries);
    assert_eq!(restarts.len(), 1, "{entries:#?}");
    assert!(
        restarts[0]["result"]["replayed_from"].is_u64(),
        "{:#}",
        restarts[0]
    );
    assert_eq!(web_1_health(&b), "unhealthy", "b restarted nothing");
}

#[test]
fn a_run_whose_replica_was_killed_before_a_change_reads_it_back_before_making_it() {
    let Some(nats) = NatsCluster::start("a_run_whose_replica_was_killed_before_a_change", 3) else {
        return;
    };
    let (b, _b_data, run, entries) = run_taken_over_after_a_kill_at(&nats, "before-change");
    assert!(run["attempts"].as_u64().unwrap() >= 2, "{run:#}");
    // a's intent is in the journal without an outcome: b reads the container back (here, b's
    // own simulated fleet, where the restart did not happen) and makes the restart under its
    // own fencing token.
    let restarts = restarts(&entries);
    assert_eq!(restarts.len(), 1, "{entries:#?}");
    let made = restarts[0];
    assert_eq!(made["result"]["fence"]["replica"], "b", "{made:#}");
    assert!(made["result"]["journal"].is_u64(), "{made:#}");
    assert!(
        made["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("showed it not made, so it was made now"),
        "{made:#}"
    );
    assert_eq!(web_1_health(&b), "healthy");
}

/// Two replicas splitting the shards, both with production groups whose capacity changes need
/// two people (the policies and the playbook on each: they are not shared yet), and the
/// recorded latency incident published to the first: its run of `scale-on-latency` waits for
/// approval on the replica that owns its shard. Answers the replicas (the one where the run
/// waits first), the run and its approval request.
struct Waiting {
    replicas: Vec<(Server, tempfile::TempDir)>,
    run: String,
    approval: String,
    _dir: tempfile::TempDir,
}

fn a_run_waiting_for_approval(nats: &NatsCluster) -> Waiting {
    use common::approvals::{add_policies, trust_section};
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path(), nats);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&trust_section("approval_ttl = \"10m\""));
    std::fs::write(&config, text).unwrap();
    let mut replicas = vec![replica(&config, "a"), replica(&config, "b")];
    let manifest = example_manifest("scale-on-latency", &[]);
    for (server, data) in &replicas {
        add_policies(server, data.path());
        let (code, body) = server.upload(&manifest, component("scale_on_latency"));
        assert_eq!(code, 201, "{body}");
    }
    poll_until(
        "a and b to split the shards",
        Duration::from_secs(30),
        || {
            let (a, b) = (held_by(&replicas[0].0, "a"), held_by(&replicas[0].0, "b"));
            (a > 0 && b > 0 && a + b == SHARDS).then_some(())
        },
    );
    let incident = grace_testkit::example("../incidents/latency-incident.json");
    let events: Value = serde_json::from_str(&std::fs::read_to_string(incident).unwrap()).unwrap();
    let (code, body) = replicas[0].0.post("/v1/events", events);
    assert_eq!(code, 202, "{body}");
    let (holder, run) = poll_until(
        "a run waiting for approval",
        Duration::from_secs(60),
        || {
            replicas.iter().enumerate().find_map(|(i, (server, _))| {
                let run = server.runs_of("scale-on-latency").into_iter().next()?;
                (run["state"] == "waiting-approval").then_some((i, run))
            })
        },
    );
    replicas.swap(0, holder);
    let run = run["id"].as_str().unwrap().to_owned();
    let (_, shown) = replicas[0].0.get(&format!("/v1/runs/{run}"));
    let approval = shown["approval"].as_str().unwrap().to_owned();
    Waiting {
        replicas,
        run,
        approval,
        _dir: dir,
    }
}

/// `token`'s approval of `approval` on `server`, which leaves it `state`.
fn approve_as(server: &Server, token: &str, approval: &str, state: &str) {
    let (code, body) = common::approvals::vote(server, token, approval, "approve", None);
    assert_eq!((code, &body["state"]), (200, &Value::from(state)), "{body}");
}

/// Waits for `run` to succeed on `server`, having raised `api-asg` above `before`.
fn finished_with_the_change(server: &Server, run: &str, before: u64) {
    let done = server.wait_state(run, &["succeeded", "failed"]);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert!(
        common::approvals::desired(server, "api-asg") > before,
        "the approved change was made"
    );
}

#[test]
fn an_approval_is_listed_and_decided_on_a_replica_other_than_the_one_whose_run_waits() {
    use common::approvals::{approvals, desired, vote};
    let Some(nats) = NatsCluster::start("an_approval_is_listed_and_decided_elsewhere", 3) else {
        return;
    };
    let w = a_run_waiting_for_approval(&nats);
    let (holder, other) = (&w.replicas[0].0, &w.replicas[1].0);
    let before = desired(holder, "api-asg");
    // The replica the run is not on lists the request, with the change and its risk.
    let pending = approvals(other, "pending");
    assert_eq!(pending.len(), 1, "{pending:#?}");
    assert_eq!(pending[0]["id"], w.approval.as_str());
    assert_eq!(pending[0]["action"], "scaling.set-desired-capacity");
    assert!(
        pending[0]["decision"]["risk"].is_object(),
        "{:#}",
        pending[0]
    );

    // Two people vote there: the run waiting on the first replica goes on, and makes the change.
    // Alice's token was made on the replica where the run waits: tokens work on every replica.
    let (alice, bob) = (
        holder.token_with("alice", &["read", "approve"]),
        other.token_with("bob", &["approve"]),
    );
    poll_until(
        "alice's token on the other replica",
        Duration::from_secs(30),
        || (other.get_as("/v1/approvals", Some(&alice)).0 == 200).then_some(()),
    );
    approve_as(other, &alice, &w.approval, "pending");
    let (code, body) = vote(other, &alice, &w.approval, "approve", None);
    assert_eq!(code, 409, "one person, once, whichever replica: {body}");
    approve_as(other, &bob, &w.approval, "approved");
    finished_with_the_change(holder, &w.run, before);
    assert_eq!(
        holder.get(&format!("/v1/approvals/{}", w.approval)).1["state"],
        "approved"
    );

    // Each vote is in the ledger of the replica it was given on, naming the person.
    let (_, entries) = other.get(&format!("/v1/ledger/entries?run={}", w.run));
    let votes: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["interface"] == "approval")
        .collect();
    assert_eq!(votes.len(), 2, "{votes:#?}");
    assert_eq!(
        (&votes[0]["args"]["by"], &votes[1]["args"]["by"]),
        (&Value::from("alice"), &Value::from("bob"))
    );
    assert!(
        other.runs_of("scale-on-latency").is_empty(),
        "the run stayed where it was"
    );

    // Revoked on the other replica: refused on the one that made it too.
    let (_, tokens) = holder.get("/v1/tokens");
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "alice")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, body) = other.delete(&format!("/v1/tokens/{id}"));
    assert_eq!(code, 200, "{body}");
    poll_until(
        "the revocation on every replica",
        Duration::from_secs(30),
        || (holder.get_as("/v1/approvals", Some(&alice)).0 == 401).then_some(()),
    );
}

#[test]
fn a_run_waiting_for_approval_whose_replica_was_killed_keeps_its_request_and_votes() {
    use common::approvals::{approvals, desired};
    let Some(nats) = NatsCluster::start("a_run_waiting_for_approval_whose_replica", 3) else {
        return;
    };
    let mut w = a_run_waiting_for_approval(&nats);
    let other = &w.replicas[1].0;
    let (alice, bob) = (
        other.token_with("alice", &["approve"]),
        other.token_with("bob", &["approve"]),
    );
    approve_as(other, &alice, &w.approval, "pending");
    w.replicas[0].0.kill9();

    // The survivor takes the run over; it asks for the same change, and finds the request
    // with Alice's vote in it rather than asking people again.
    let other = &w.replicas[1].0;
    let before = desired(other, "api-asg");
    let taken = other.wait_state(&w.run, &["waiting-approval"]);
    assert_eq!(taken["approval"], w.approval.as_str(), "{taken:#}");
    let pending = approvals(other, "pending");
    assert_eq!(pending.len(), 1, "{pending:#?}");
    assert_eq!(pending[0]["approved_by"][0]["by"], "alice");
    assert_eq!(counter(other, "runs_taken_over"), 1);

    approve_as(other, &bob, &w.approval, "approved");
    finished_with_the_change(other, &w.run, before);
    assert_eq!(other.runs_of("scale-on-latency").len(), 1);
    let (_, entries) = other.get(&format!("/v1/ledger/entries?run={}&limit=1000", w.run));
    let made = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["function"] == "set-desired-capacity" && e["result"]["ok"].is_object())
        .count();
    assert_eq!(made, 1, "the change, once: {entries:#}");
}

/// `grace ledger verify --cluster` against `server`: its exit code and output.
fn verify_cluster(server: &Server, key: &Path, extra: &[&str]) -> (i32, String) {
    let out = server
        .grace()
        .args(["ledger", "verify", "--cluster", "--key"])
        .arg(key)
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

#[test]
fn every_replicas_ledger_is_verified_through_any_one_and_a_rolled_back_one_is_caught() {
    let Some(nats) = NatsCluster::start("every_replicas_ledger_is_verified", 3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // One checkpoint key for the replicas, signing every second.
    let config = common::stress::checkpointing_config(dir.path(), "grace.test/cluster");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&std::fs::read_to_string(cluster_config(dir.path(), &nats)).unwrap());
    std::fs::write(&config, text).unwrap();
    let key = dir.path().join("ledger.key.pub");
    let (a, _a_data) = replica(&config, "a");
    let (mut b, _b_data) = replica(&config, "b");
    let playbook = example_manifest("restart-unhealthy-container", &[]);
    for r in [&a, &b] {
        assert_eq!(
            r.upload(&playbook, component("restart_unhealthy_container"))
                .0,
            201
        );
    }
    poll_until(
        "a and b to split the shards",
        Duration::from_secs(30),
        || {
            let (x, y) = (held_by(&a, "a"), held_by(&a, "b"));
            (x > 0 && y > 0 && x + y == SHARDS).then_some(())
        },
    );
    for (i, container) in ["web-1", "web-2", "cache-1"].into_iter().enumerate() {
        let (code, body) = a.post(
            "/v1/events",
            event("container.unhealthy", container, i as u64 + 1, 1.0),
        );
        assert_eq!(code, 202, "{body}");
    }
    poll_until("three runs finished", Duration::from_secs(60), || {
        let done = [&a, &b]
            .iter()
            .flat_map(|r| r.runs_of("restart-unhealthy-container"))
            .filter(|r| r["state"] == "succeeded")
            .count();
        (done == 3).then_some(())
    });
    // Both replicas published a checkpoint covering their runs.
    poll_until("both ledgers published", Duration::from_secs(30), || {
        let (_, listed) = a.get("/v1/cluster/ledgers");
        let listed = listed.as_array()?.clone();
        let tree = |r: &Server| r.get("/v1/ledger/tree-head").1["size"].as_u64();
        (listed.len() == 2
            && listed.iter().all(|p| p["checkpoint"].is_string())
            && listed[0]["tree_size"].as_u64() == tree(&a)
            && listed[1]["tree_size"].as_u64() == tree(&b))
        .then_some(())
    });

    // Through either replica: both chains verified, each change once.
    let made: usize = [&a, &b]
        .iter()
        .map(|r| {
            let (_, entries) = r.get("/v1/ledger/entries?limit=1000");
            restarts(entries.as_array().unwrap()).len()
        })
        .sum();
    assert!(made >= 1);
    for through in [&a, &b] {
        let (code, out) = verify_cluster(through, &key, &["--max-age", "1m"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("ledger verified (replica `a` via"), "{out}");
        assert!(out.contains("ledger verified (replica `b` via"), "{out}");
        assert!(out.contains("cluster verified"), "{out}");
        assert!(
            out.contains(&format!("{made} changes made, each once")),
            "{out}"
        );
    }
    // A replica name that could not be a subject is refused before anything is asked.
    let (code, body) = a.get("/v1/cluster/ledgers/a.%3E/tree-head");
    assert_eq!(code, 400, "{body}");

    // b's disk is lost; b comes back under its name with an empty data directory: it does not
    // publish over what it published before, says so in its health, and the audit catches it.
    b.kill9();
    let (b2, _b2_data) = replica(&config, "b");
    poll_until("b's publisher to refuse", Duration::from_secs(30), || {
        let (_, health) = b2.get_as("/healthz", None);
        health.to_string().contains("does not extend").then_some(())
    });
    let (code, out) = verify_cluster(&a, &key, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ledger REWRITTEN (replica `b` via"), "{out}");
    assert!(out.contains("ledger verified (replica `a` via"), "{out}");
    // A replica that does not answer is reported as not read.
    drop(b2);
    let (code, out) = verify_cluster(&a, &key, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("does not answer"), "{out}");
}

/// `replica`'s view of playbook `name`: `None` when it does not have it.
fn playbook_on(replica: &Server, name: &str) -> Option<Value> {
    let (code, body) = replica.get(&format!("/v1/playbooks/{name}"));
    match code {
        200 => Some(body),
        404 => None,
        _ => panic!("{code} {body}"),
    }
}

#[test]
fn a_playbook_uploaded_to_one_replica_runs_on_every_one_that_trusts_its_signer_and_policies_hold_on_all()
 {
    let Some(nats) = NatsCluster::start("a_playbook_uploaded_to_one_replica", 3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path(), &nats);
    let (a, a_data) = replica(&config, "a");
    // b trusts a's release key besides its own; c trusts only its own.
    let a_root = a.credentials.trust_root.to_str().unwrap().to_owned();
    let b_data = data_dir();
    let b = Server::start(
        b_data.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--replica",
            "b",
            "--trust-root",
            &a_root,
        ],
    );
    let name = "restart-unhealthy-container";
    let (code, body) = a.upload(
        &example_manifest(name, &[]),
        component("restart_unhealthy_container"),
    );
    assert_eq!(code, 201, "{body}");
    let on_b = poll_until("b to install a's upload", Duration::from_secs(30), || {
        playbook_on(&b, name)
    });
    let on_a = playbook_on(&a, name).unwrap();
    assert_eq!(on_b["digest"], on_a["digest"]);
    assert_eq!(on_b["active_version"], on_a["active_version"]);
    assert_eq!(
        on_b["signed_by"], on_a["signed_by"],
        "verified on b: {on_b:#}"
    );

    // Events on both replicas' shards: each runs where its shard is, uploaded once.
    poll_until(
        "a and b to split the shards",
        Duration::from_secs(30),
        || {
            let (x, y) = (held_by(&a, "a"), held_by(&a, "b"));
            (x > 0 && y > 0 && x + y == SHARDS).then_some(())
        },
    );
    let containers = ["web-1", "web-2", "cache-1"];
    for (i, container) in containers.into_iter().enumerate() {
        let (code, body) = b.post(
            "/v1/events",
            event("container.unhealthy", container, i as u64 + 1, 1.0),
        );
        assert_eq!(code, 202, "{body}");
    }
    poll_until("a run per event", Duration::from_secs(60), || {
        let done = [&a, &b]
            .iter()
            .flat_map(|r| r.runs_of(name))
            .filter(|r| r["state"] == "succeeded")
            .count();
        (done == containers.len()).then_some(())
    });

    // Disabled on b, disabled on a; enabled on a, enabled on b.
    assert_eq!(
        b.post(&format!("/v1/playbooks/{name}/disable"), Value::Null)
            .0,
        200
    );
    poll_until("a to follow b's disable", Duration::from_secs(30), || {
        (playbook_on(&a, name)?["enabled"] == false).then_some(())
    });
    assert_eq!(
        a.post(&format!("/v1/playbooks/{name}/enable"), Value::Null)
            .0,
        200
    );
    poll_until("b to follow a's enable", Duration::from_secs(30), || {
        (playbook_on(&b, name)?["enabled"] == true).then_some(())
    });

    // c does not trust a's key: it does not install what a uploaded, however it got there.
    let (c, _c_data) = replica(&config, "c");
    // It caught up with the catalogue before it took part: the refusal is counted by then.
    poll_until("c to refuse a's upload", Duration::from_secs(30), || {
        (counter(&c, "installs_refused") >= 1).then_some(())
    });
    assert_eq!(
        c.metric("grace_playbook_installs_refused_total"),
        counter(&c, "installs_refused") as f64
    );
    assert_eq!(
        playbook_on(&c, name),
        None,
        "c installed an untrusted upload"
    );

    // Deleted on a: gone from b.
    let (code, body) = a.delete(&format!("/v1/playbooks/{name}"));
    assert_eq!(code, 204, "{body}");
    poll_until("b to follow a's delete", Duration::from_secs(30), || {
        playbook_on(&b, name).is_none().then_some(())
    });

    // Policy sets added on a hold on b and c (no signature there: the engine is the replicas'
    // own); one removed on c is removed everywhere.
    common::approvals::add_policies(&a, a_data.path());
    let text = |r: &Server, set: &str| {
        let (code, body) = r.get(&format!("/v1/policies/{set}"));
        (code == 200).then(|| body["text"].as_str().unwrap().to_owned())
    };
    let added = text(&a, "approvals").unwrap();
    for r in [&b, &c] {
        poll_until(
            "the policy sets on every replica",
            Duration::from_secs(30),
            || {
                (text(r, "approvals").as_deref() == Some(added.as_str())
                    && text(r, "base").is_some())
                .then_some(())
            },
        );
    }
    let (code, body) = c.delete("/v1/policies/approvals");
    assert_eq!(code, 200, "{body}");
    for r in [&a, &b] {
        poll_until(
            "the removal on every replica",
            Duration::from_secs(30),
            || text(r, "approvals").is_none().then_some(()),
        );
    }
    assert!(text(&a, "base").is_some());
}

#[test]
fn a_resources_changes_count_against_its_guardrail_on_the_replica_its_shard_moves_to() {
    let Some(nats) = NatsCluster::start("a_resources_changes_count_against_its_guardrail", 3)
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path(), &nats);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "[trust]\n[[trust.guardrail]]\nname = \"one restart an hour\"\nkind = \"container\"\nmax_changes_per_hour = 1\n",
    );
    std::fs::write(&config, text).unwrap();
    let name = "restart-unhealthy-container";
    let (mut a, _a_data) = replica(&config, "a");
    assert_eq!(
        a.upload(
            &example_manifest(name, &[]),
            component("restart_unhealthy_container")
        )
        .0,
        201
    );
    poll_until("a to hold every shard", Duration::from_secs(30), || {
        (held_by(&a, "a") == SHARDS).then_some(())
    });
    let (code, body) = a.post("/v1/events", event("container.unhealthy", "web-1", 1, 1.0));
    assert_eq!(code, 202, "{body}");
    let first = poll_until("a's run", Duration::from_secs(60), || {
        a.runs_of(name)
            .into_iter()
            .find(|r| r["state"] == "succeeded")
    });
    let (_, entries) = a.get(&format!(
        "/v1/ledger/entries?run={}",
        first["id"].as_str().unwrap()
    ));
    assert_eq!(
        restarts(entries.as_array().unwrap()).len(),
        1,
        "{entries:#}"
    );

    // a dies; b takes its shards. b's own fleet still shows web-1 unhealthy, and b made no
    // change of it: only the cluster's history knows a restarted it.
    let (b, _b_data) = replica(&config, "b");
    assert_eq!(
        b.upload(
            &example_manifest(name, &[]),
            component("restart_unhealthy_container")
        )
        .0,
        201
    );
    a.kill9();
    poll_until("b to hold every shard", Duration::from_secs(30), || {
        (held_by(&b, "b") == SHARDS).then_some(())
    });
    let (code, body) = b.post("/v1/events", event("container.unhealthy", "web-1", 2, 1.0));
    assert_eq!(code, 202, "{body}");
    let second = poll_until("b's run", Duration::from_secs(60), || {
        b.runs_of(name)
            .into_iter()
            .find(|r| ["succeeded", "failed"].contains(&r["state"].as_str().unwrap_or("")))
    });
    let (_, entries) = b.get(&format!(
        "/v1/ledger/entries?run={}",
        second["id"].as_str().unwrap()
    ));
    let entries = entries.as_array().unwrap();
    assert!(
        restarts(entries).is_empty(),
        "b restarted web-1 again: {entries:#?}"
    );
    let refused = entries
        .iter()
        .find(|e| e["function"] == "restart" && e["decision"]["verdict"] == "denied")
        .unwrap_or_else(|| panic!("no refused restart: {entries:#?}"));
    let why = refused["decision"]["reason"].as_str().unwrap();
    assert!(why.contains("one restart an hour"), "{why}");
}
