//! Failover under random kills: three `grace serve` replicas on a real three-node NATS
//! JetStream cluster take a stream of incident events, published to whichever replica is up,
//! while one replica after another is killed (`kill -9`) at random moments and started again.
//!
//! Afterwards: every acknowledged event was matched exactly once (one run, whatever replica
//! ran it), every run finished exactly once, no change was made twice (a change is made again
//! only when the replica taking the run over read the resource back and found it not made),
//! and every replica's ledger verifies.
//!
//! `GRACE_FAILOVER_KILLS` kills (default 4); the seed is printed and `GRACE_FAILOVER_SEED`
//! replays it. Skipped loudly without `nats-server`, failing under `GRACE_E2E=required`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::stress::Rng;
use common::{Server, component, data_dir, event, manifest};
use grace_testkit::nats::{NatsCluster, cluster_toml};
use grace_testkit::poll_until;
use serde_json::Value;

const PLAYBOOK: &str = "failover-scaler";

/// The runs of one event as each replica shows them: (replica, run).
type Seen = Vec<(String, Value)>;

/// Scales `api-asg` up by one for every incident: one change per run.
fn playbook() -> String {
    manifest(
        PLAYBOOK,
        "[[triggers]]\nevent_type = \"test.incident\"\n\n\
         [grants.scaling]\ngroups = [\"api-asg\"]\n\n\
         [config]\ngroups = \"api-asg\"\n\n\
         [limits]\ntimeout = \"30s\"\n",
    )
}

/// A replica: its name, its data directory, and the server while it is up.
struct Replica {
    name: &'static str,
    data: tempfile::TempDir,
    server: Option<Server>,
    /// Started with the test hook: it may stop itself any time, so nothing is asked of it
    /// (a request could wait for ever) until it is killed.
    armed: bool,
}

impl Replica {
    fn start(name: &'static str, config: &Path) -> Replica {
        let mut replica = Replica {
            name,
            data: data_dir(),
            server: None,
            armed: false,
        };
        replica.up(config, None);
        let (code, body) = replica
            .server()
            .upload(&playbook(), component("group_scaler"));
        assert_eq!(code, 201, "{body}");
        replica
    }

    /// Starts the replica; with `pause_at`, it stops itself (`SIGSTOP`) at that point of its
    /// first change (a test hook of debug builds), to be killed there.
    fn up(&mut self, config: &Path, pause_at: Option<&str>) {
        let env: Vec<(&str, &str)> = pause_at
            .map(|at| ("GRACE_TEST_PAUSE_AT", at))
            .into_iter()
            .collect();
        self.armed = pause_at.is_some();
        self.server = Some(Server::start_with_env(
            self.data.path(),
            &["--config", config.to_str().unwrap(), "--replica", self.name],
            &env,
        ));
    }

    /// Up, and not armed with the test hook.
    fn answers(&self) -> bool {
        self.server.is_some() && !self.armed
    }

    /// Armed, and stopped at the hook.
    fn paused(&self) -> bool {
        self.armed && self.server.as_ref().is_some_and(|s| stopped(s.pid()))
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }
}

/// Whether process `pid` is stopped (`T` in `/proc/<pid>/stat`).
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit(") ").next().map(|rest| rest.starts_with('T')))
        .unwrap_or(false)
}

/// The index of the replica holding the shard of `resource`, as a live replica sees it.
fn owner_of(replicas: &[Replica], resource: &str) -> Option<usize> {
    let seer = replicas.iter().find(|r| r.answers())?;
    let shard = grace_cluster::shards::shard_of(resource, 8) as usize;
    let (_, status) = seer.server().get("/v1/cluster");
    let owner = status["holders"][shard]["replica"].as_str()?;
    replicas.iter().position(|r| r.name == owner)
}

fn config(dir: &Path, nats: &NatsCluster) -> PathBuf {
    let path = dir.join("grace.toml");
    std::fs::write(
        &path,
        cluster_toml(
            &nats.urls(),
            "shards = 8\nlease_ttl = \"3s\"\nrenew_every = \"500ms\"\nrequest_timeout = \"1s\"\n",
        ),
    )
    .unwrap();
    path
}

/// Publishes an incident about `resource` to a live replica picked by `rng`, until one accepts
/// it (a replica may answer 503 while the engine moves).
fn publish(replicas: &[Replica], rng: &mut Rng, resource: &str, n: u64) {
    poll_until("the event to be accepted", Duration::from_secs(30), || {
        let live: Vec<&Replica> = replicas.iter().filter(|r| r.answers()).collect();
        let r = live[rng.range(0..=(live.len() as u64 - 1)) as usize];
        let (code, body) = r
            .server()
            .post("/v1/events", event("test.incident", resource, n, 1.0));
        match code {
            202 => Some(()),
            503 => None,
            _ => panic!("{code} {body}"),
        }
    });
}

#[test]
fn every_event_is_matched_and_every_run_finished_once_while_replicas_are_killed() {
    let Some(nats) = NatsCluster::start("failover_under_random_kills", 3) else {
        return;
    };
    let mut rng = Rng::from_env("GRACE_FAILOVER_SEED");
    let kills: u64 = std::env::var("GRACE_FAILOVER_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &nats);
    let mut replicas: Vec<Replica> = ["a", "b", "c"]
        .into_iter()
        .map(|name| Replica::start(name, &config))
        .collect();
    // Killed in the middle of a run from the first round on: a's first change stops it.
    replicas[0].server.take().unwrap().kill9();
    replicas[0].up(&config, Some("after-change"));
    poll_until("the shards to be held", Duration::from_secs(30), || {
        let (_, status) = replicas[1].server().get("/v1/cluster");
        (status["holders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| !h["replica"].is_null())
            && status["holders"].as_array().unwrap().len() == 8)
            .then_some(())
    });

    let mut resources = Vec::new();
    let mut next = 0u64;
    let mut burst = |replicas: &[Replica], rng: &mut Rng, resources: &mut Vec<String>| {
        for _ in 0..rng.range(2..=6) {
            next += 1;
            let resource = format!("host-{next}");
            publish(replicas, rng, &resource, next);
            resources.push(resource);
        }
    };
    let mut at_hook = 0;
    for _ in 0..kills {
        burst(&replicas, &mut rng, &mut resources);
        // Mostly the owner of the last event's shard, soon after: its import, matching or
        // run of that event is likely under way.
        std::thread::sleep(Duration::from_millis(rng.range(0..=300)));
        // A replica stopped at the hook is killed there, in the middle of a run; otherwise
        // mostly the owner of the last event's shard, soon after: its import, matching or
        // run of that event is likely under way.
        let victim = match (
            replicas.iter().position(Replica::paused),
            owner_of(&replicas, resources.last().unwrap()),
        ) {
            (Some(paused), _) => paused,
            (None, Some(owner)) if rng.chance(70) => owner,
            _ => rng.range(0..=2) as usize,
        };
        eprintln!(
            "killing replica {}{}",
            replicas[victim].name,
            if replicas[victim].paused() {
                ", stopped at the hook"
            } else {
                ""
            }
        );
        at_hook += usize::from(replicas[victim].paused());
        replicas[victim].server.take().unwrap().kill9();
        burst(&replicas, &mut rng, &mut resources);
        std::thread::sleep(Duration::from_millis(rng.range(0..=2000)));
        // At most one replica armed at a time, so that two answer.
        let pause_at = ["before-change", "after-change"][rng.range(0..=1) as usize];
        let arm = rng.chance(60) && !replicas.iter().any(|r| r.armed && r.server.is_some());
        replicas[victim].up(&config, arm.then_some(pause_at));
    }
    burst(&replicas, &mut rng, &mut resources);
    // The end: no replica armed, none stopped at the hook.
    for r in &mut replicas {
        if r.armed {
            eprintln!(
                "killing replica {} (armed; stopped: {})",
                r.name,
                r.paused()
            );
            r.server.take().unwrap().kill9();
            r.up(&config, None);
        }
    }

    // Every event's run finished, on some replica.
    let finished = |replicas: &[Replica]| -> BTreeMap<String, Seen> {
        let mut by_resource: BTreeMap<String, Seen> = BTreeMap::new();
        for r in replicas {
            let (_, runs) = r
                .server()
                .get(&format!("/v1/runs?playbook={PLAYBOOK}&limit=10000"));
            for run in runs.as_array().unwrap().clone() {
                by_resource
                    .entry(run["resource"].as_str().unwrap().to_owned())
                    .or_default()
                    .push((r.name.to_owned(), run));
            }
        }
        by_resource
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let runs = loop {
        let runs = finished(&replicas);
        let waiting: Vec<(&String, Option<&Seen>)> = resources
            .iter()
            .filter(|resource| {
                !runs.get(*resource).is_some_and(|seen| {
                    seen.iter().any(|(_, run)| {
                        ["succeeded", "failed", "timed-out"]
                            .contains(&run["state"].as_str().unwrap())
                    })
                })
            })
            .map(|resource| (resource, runs.get(resource)))
            .collect();
        if waiting.is_empty() {
            break runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no finished run after 120 s for: {waiting:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let mut made: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut moved = 0;
    for resource in &resources {
        let seen = &runs[resource];
        // One run per event: a run taken over keeps its id on every replica that had it.
        let ids: BTreeSet<&str> = seen
            .iter()
            .map(|(_, run)| run["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "one run for {resource}: {seen:#?}");
        // Finished on exactly one replica; any other shows it interrupted or stopped by the
        // fence there.
        let ended: Vec<&(String, Value)> = seen
            .iter()
            .filter(|(_, run)| {
                ["succeeded", "failed", "timed-out", "cancelled"]
                    .contains(&run["state"].as_str().unwrap())
            })
            .filter(|(replica, run)| {
                let r = replicas.iter().find(|r| r.name == replica).unwrap();
                let (_, whole) = r
                    .server()
                    .get(&format!("/v1/runs/{}", run["id"].as_str().unwrap()));
                whole["failure"]["kind"] != "fenced"
            })
            .collect();
        assert_eq!(ended.len(), 1, "{resource} finished once: {seen:#?}");
        moved += usize::from(seen.len() > 1);
        let id = ids.into_iter().next().unwrap();
        for r in &replicas {
            let (_, entries) = r.server().get(&format!("/v1/ledger/entries?run={id}"));
            for e in entries.as_array().unwrap() {
                if e["function"] == "set-desired-capacity"
                    && e["result"]["ok"].is_object()
                    && e["result"]["replayed_from"].is_null()
                    && e["result"]["reconciled_from"].is_null()
                {
                    made.entry(id.to_owned()).or_default().push(e.clone());
                }
            }
        }
    }
    // No change twice: a run's change is made again only by a replica that read the group back
    // (its own simulated fleet here) and found it not made.
    for (id, changes) in &made {
        for again in changes.iter().skip(1) {
            assert!(
                again["decision"]["reason"]
                    .as_str()
                    .unwrap()
                    .contains("showed it not made"),
                "run {id} made its change twice: {changes:#?}"
            );
        }
    }
    for r in &replicas {
        let (code, verified) = r.server().get("/v1/ledger/verify");
        assert_eq!(code, 200, "{verified}");
        assert_eq!(verified["ok"], true, "{}: {verified}", r.name);
    }
    // And all the chains together, read through one replica: each consistent with what its
    // replica published to the engine, and no change made twice without a read-back.
    let published = poll_until(
        "every replica's ledger published",
        Duration::from_secs(30),
        || {
            let (_, listed) = replicas[0].server().get("/v1/cluster/ledgers");
            (listed.as_array()?.len() == replicas.len()).then_some(listed)
        },
    );
    let out = replicas[0]
        .server()
        .grace()
        .args(["ledger", "verify", "--cluster"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("cluster verified"),
        "{said}{}\n{published:#}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{} events, {kills} kills ({at_hook} in the middle of a change), {moved} runs seen on \
         two replicas or more: every event matched once, every run finished once",
        resources.len()
    );
}
