//! Shard leases and ownership against a real three-node JetStream cluster on loopback
//! (Debian's nats-server 2.9, started by the test kit; skipped loudly without it, failing under
//! `GRACE_E2E=required`).

// A panic is how a test fails: unwrapping in the helpers is the point.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use grace_cluster::lease::Leases;
use grace_cluster::{Cluster, ClusterError, ClusterSettings, Engine, Fenced, schema};
use grace_testkit::nats::NatsCluster;

fn settings(
    nats: &NatsCluster,
    replica: &str,
    shards: u32,
    lease_ttl: Duration,
) -> ClusterSettings {
    ClusterSettings {
        nats: nats.urls(),
        replica: Some(replica.to_owned()),
        shards,
        lease_ttl,
        renew_every: lease_ttl / 6,
        // The longest a valid configuration allows: half of the lease's trusted part.
        request_timeout: (lease_ttl - lease_ttl / 5) / 2,
        ..ClusterSettings::default()
    }
}

async fn leases(settings: &ClusterSettings, incarnation: &str) -> Leases {
    let engine = Engine::connect(settings).await.unwrap();
    let store = schema::leases(settings).ensure(&engine, 3).await.unwrap();
    Leases::new(
        store,
        settings.replica_name(),
        incarnation.to_owned(),
        settings.lease_ttl,
        settings.margin(),
    )
}

async fn poll<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_holder_at_a_time_and_each_tenure_has_a_greater_token() {
    let Some(nats) = NatsCluster::start("one_holder_at_a_time", 3) else {
        return;
    };
    let ttl = Duration::from_secs(2);
    let a = leases(&settings(&nats, "a", 4, ttl), "a-1").await;
    let b = leases(&settings(&nats, "b", 4, ttl), "b-1").await;

    let mut held = a.acquire(0).await.unwrap();
    assert!(matches!(
        b.acquire(0).await,
        Err(ClusterError::Conflict { .. })
    ));
    let first_token = held.token();
    a.renew(&mut held).await.unwrap();
    assert_eq!(held.token(), first_token, "a renewal keeps the token");
    assert!(held.revision() > first_token);
    let holder = b.holder(0).await.unwrap().unwrap();
    assert_eq!(
        (holder.value.replica.as_str(), holder.token),
        ("a", first_token)
    );

    // a stops renewing: the engine drops the lease `lease_ttl` after its last write, and
    // not before a stopped trusting it.
    let last_renewal = Instant::now();
    let taken = poll("b to take shard 0", Duration::from_secs(10), async || {
        b.acquire(0).await.ok()
    })
    .await;
    let waited = last_renewal.elapsed();
    assert!(
        taken.token() > held.revision(),
        "a later tenure has a greater token"
    );
    assert!(
        waited >= held.valid_until() - last_renewal,
        "b took the shard {waited:?} after a's renewal, while a still trusted it"
    );
    assert!(!held.valid_at(Instant::now()));
    assert!(
        matches!(a.renew(&mut held).await, Err(ClusterError::Conflict { .. })),
        "the old holder's compare-and-set must lose"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_released_shard_is_free_at_once_and_a_restarted_replica_is_another_holder() {
    let Some(nats) = NatsCluster::start("a_released_shard_is_free", 3) else {
        return;
    };
    let ttl = Duration::from_secs(30);
    let s = settings(&nats, "a", 4, ttl);
    let first = leases(&s, "a-1").await;
    let restarted = leases(&s, "a-2").await;
    let lease = first.acquire(1).await.unwrap();
    assert!(
        matches!(
            restarted.acquire(1).await,
            Err(ClusterError::Conflict { .. })
        ),
        "the same name in a new process must wait for the old lease"
    );
    first.release(lease).await.unwrap();
    let again = restarted.acquire(1).await.unwrap();
    assert!(again.token() > 1);
}

async fn start_replica(settings: &ClusterSettings) -> (Arc<Cluster>, tokio::task::JoinHandle<()>) {
    let cluster = Arc::new(Cluster::start(settings).await.unwrap());
    let task = tokio::spawn({
        let cluster = cluster.clone();
        async move { cluster.run().await }
    });
    (cluster, task)
}

fn owned(cluster: &Cluster) -> usize {
    cluster.status().owned.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_the_shards_and_take_over_those_of_a_stopped_one() {
    let Some(nats) = NatsCluster::start("replicas_share_the_shards", 3) else {
        return;
    };
    let ttl = Duration::from_secs(3);
    let (a, a_task) = start_replica(&settings(&nats, "a", 8, ttl)).await;
    poll(
        "a to hold all 8 shards",
        Duration::from_secs(10),
        async || (owned(&a) == 8).then_some(()),
    )
    .await;
    let (b, _b_task) = start_replica(&settings(&nats, "b", 8, ttl)).await;
    poll(
        "a and b to hold 4 shards each",
        Duration::from_secs(15),
        async || (owned(&a) == 4 && owned(&b) == 4).then_some(()),
    )
    .await;
    assert!(a.ready() && b.ready());
    let status = b.status();
    assert!(status.unowned().is_empty(), "{status:?}");
    assert_eq!(status.replicas.len(), 2);

    // a stops (as if paused): b takes its shards once their leases expire, and a's fence
    // check fails on every one of them.
    let a_shards: Vec<u32> = a.status().owned.iter().map(|o| o.shard).collect();
    let a_token = a.fence(a_shards[0]).await.unwrap();
    a_task.abort();
    let stopped = Instant::now();
    poll(
        "b to hold all 8 shards",
        Duration::from_secs(15),
        async || (owned(&b) == 8).then_some(()),
    )
    .await;
    assert!(stopped.elapsed() >= a.trust_for() - Duration::from_millis(100));
    assert_eq!(
        b.counters()
            .takeovers
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    for shard in a_shards {
        let refused = a.fence(shard).await.unwrap_err();
        assert!(
            matches!(
                refused,
                Fenced::Expired(_) | Fenced::Stale(_) | Fenced::NotOwner(_)
            ),
            "{refused:?}"
        );
        assert!(b.owns(shard).unwrap() > a_token.token);
    }
    assert!(!a.ready(), "a replica whose heartbeat stopped is not ready");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_disagrees_with_the_cluster_is_refused_naming_the_setting() {
    let Some(nats) = NatsCluster::start("a_replica_that_disagrees", 3) else {
        return;
    };
    let ttl = Duration::from_secs(6);
    Cluster::start(&settings(&nats, "a", 8, ttl)).await.unwrap();
    let err = Cluster::start(&settings(&nats, "b", 16, ttl))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cluster.shards") && err.contains("16") && err.contains('8'),
        "{err}"
    );
    let err = Cluster::start(&settings(&nats, "b", 8, ttl * 2))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("KV_grace_leases") && err.contains("lease_ttl"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn losing_one_engine_node_loses_no_lease() {
    let Some(mut nats) = NatsCluster::start("losing_one_engine_node", 3) else {
        return;
    };
    // Above the ~5 s a stream needs to elect a new leader.
    let ttl = Duration::from_secs(12);
    let (a, _task) = start_replica(&settings(&nats, "a", 4, ttl)).await;
    poll("a to hold 4 shards", Duration::from_secs(10), async || {
        (owned(&a) == 4).then_some(())
    })
    .await;
    // Kill the node that leads the lease bucket's stream.
    let leader = nats
        .stream_leader("KV_grace_leases")
        .expect("a node leads the lease bucket");
    nats.kill(leader);
    let renewals = || {
        a.counters()
            .renewals
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = renewals();
    poll(
        "renewals to go on after the election",
        Duration::from_secs(20),
        async || (renewals() >= before + 8).then_some(()),
    )
    .await;
    assert_eq!(
        a.counters()
            .losses
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(owned(&a), 4);
    assert!(a.fence(a.status().owned[0].shard).await.is_ok());
    nats.restart(leader);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_replica_that_never_takes_a_shard_does_not_leave_its_share_unheld() {
    let Some(nats) = NatsCluster::start("a_live_replica_that_never_takes_a_shard", 3) else {
        return;
    };
    let ttl = Duration::from_secs(3);
    // "stuck" writes its heartbeat and nothing else: live, holding no lease.
    let stuck_settings = settings(&nats, "stuck", 8, ttl);
    let engine = Engine::connect(&stuck_settings).await.unwrap();
    let members = schema::replicas(&stuck_settings)
        .ensure(&engine, 3)
        .await
        .unwrap();
    let mut heartbeat = grace_cluster::members::Heartbeat::new(
        members,
        "stuck".into(),
        "stuck-1".into(),
        stuck_settings.request_timeout,
    );
    heartbeat.beat().await.unwrap();
    let beating = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = heartbeat.beat().await;
        }
    });
    let (a, _a_task) = start_replica(&settings(&nats, "a", 8, ttl)).await;
    let (b, _b_task) = start_replica(&settings(&nats, "b", 8, ttl)).await;
    poll(
        "a and b to see three replicas",
        Duration::from_secs(10),
        async || (b.status().replicas.len() == 3).then_some(()),
    )
    .await;
    // Once "stuck" has had the time a replica needs to take its first shard, a and b share
    // all eight between them instead of leaving its three unheld.
    // b's view of the holders follows the leases' watch a moment after a and b hold them: wait
    // for that too, rather than read it once right after.
    poll(
        "a and b to hold every shard between them, as b sees it",
        Duration::from_secs(30),
        async || {
            (owned(&a) + owned(&b) == 8 && owned(&a) == 4 && b.status().unowned().is_empty())
                .then_some(())
        },
    )
    .await;
    beating.abort();
}
