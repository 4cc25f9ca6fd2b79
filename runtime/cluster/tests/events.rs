//! The cluster's event log against a real three-node JetStream cluster: events deduplicated by
//! content, read per shard in order from a checkpoint moved only by compare-and-set.

// A panic is how a test fails: unwrapping in the helpers is the point.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use grace_cluster::events::EventStream;
use grace_cluster::shards::shard_of;
use grace_cluster::{ClusterError, ClusterSettings, Engine};
use grace_testkit::nats::NatsCluster;

#[tokio::test(flavor = "multi_thread")]
async fn an_event_published_twice_is_stored_once_and_read_in_order_from_the_checkpoint() {
    let Some(nats) = NatsCluster::start("an_event_published_twice", 3) else {
        return;
    };
    let settings = ClusterSettings {
        nats: nats.urls(),
        shards: 4,
        ..ClusterSettings::default()
    };
    let engine = Engine::connect(&settings).await.unwrap();
    let log = EventStream::open(&engine, &settings).await.unwrap();
    // Another replica opening it with the same settings agrees.
    EventStream::open(&Engine::connect(&settings).await.unwrap(), &settings)
        .await
        .unwrap();

    let event = |n: u32| {
        let payload = format!("{{\"n\":{n}}}").into_bytes();
        (
            format!("web-{}", n % 2),
            grace_cluster::events::message_id(&payload),
            payload,
        )
    };
    let first = log.publish((0..6).map(event).collect()).await.unwrap();
    assert!(first.iter().all(|p| !p.duplicate));
    // The same batch again (a publisher retrying on another replica): nothing new.
    let again = log.publish((0..6).map(event).collect()).await.unwrap();
    assert!(again.iter().all(|p| p.duplicate));
    assert_eq!(
        first.iter().map(|p| p.sequence).collect::<Vec<_>>(),
        again.iter().map(|p| p.sequence).collect::<Vec<_>>()
    );

    let shard = shard_of("web-0", 4);
    let (through, revision) = log.checkpoint(shard).await.unwrap();
    assert_eq!((through, revision), (0, 0));
    let mut reader = log.reader(shard, through + 1).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let batch = tokio::time::timeout(Duration::from_secs(10), reader.next_batch(100))
            .await
            .unwrap()
            .unwrap();
        seen.extend(batch);
    }
    let payloads: Vec<String> = seen
        .iter()
        .map(|(_, p)| String::from_utf8(p.clone()).unwrap())
        .collect();
    assert_eq!(payloads, ["{\"n\":0}", "{\"n\":2}", "{\"n\":4}"]);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "in stream order");

    let moved = log.advance(shard, seen[1].0, revision).await.unwrap();
    assert!(matches!(
        log.advance(shard, seen[2].0, revision).await,
        Err(ClusterError::Conflict { .. })
    ));
    log.advance(shard, seen[2].0, moved).await.unwrap();
    assert_eq!(log.checkpoint(shard).await.unwrap().0, seen[2].0);
    // The next owner starts after the checkpoint.
    let mut next = log.reader(shard, seen[1].0 + 1).await.unwrap();
    let batch = next.next_batch(100).await.unwrap();
    assert_eq!(batch[0].0, seen[2].0);

    // What a new owner replays into its mesh: the shard's past up to the checkpoint, the last
    // `max` of it.
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let recent = log.recent(shard, seen[1].0, hour_ago, 10).await.unwrap();
    assert_eq!(recent, seen[..2]);
    let recent = log.recent(shard, seen[2].0, hour_ago, 1).await.unwrap();
    assert_eq!(recent, seen[2..3]);
    assert!(log.recent(shard, 0, hour_ago, 10).await.unwrap().is_empty());
}
