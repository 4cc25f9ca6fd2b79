//! The server's parts working together: the registry's bounded cache of compiled versions, and
//! polled sources reaching the event log through the source supervisor's channel.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use grace_engine::trust::PassThrough;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use grace_engine::{Engine, EngineConfig, RunEnv, TriggerEvent};
use grace_executor::{ExecError, Executors, SystemClock};
use grace_ledger::{Durability, Ledger};
use grace_server::collectors::Collectors;
use grace_server::registry::{Registry, RegistryError};
use grace_server::runs::{RunRecord, RunState};
use grace_server::sources::poll::{Polled, Poller, Schedule};
use grace_server::sources::supervisor::SourceSupervisor;
use grace_server::store::{PlaybookRecord, Store};
use grace_server::supervisor::Supervisor;
use grace_server::triggers::Triggers;
use grace_server::trust::{HostTrust, TrustSettings};
use grace_server::{App, ServeConfig};

/// Waits (at most a minute, so a broken build fails rather than hangs) until `check` holds.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A registry on a fresh data directory, keeping one compiled version beyond the live ones.
fn registry(dir: &tempfile::TempDir) -> (Registry, Engine) {
    let ledger =
        Arc::new(Ledger::open(dir.path().join("grace.redb"), Durability::Immediate).unwrap());
    let store = Store::open(ledger.database()).unwrap();
    let trust = Arc::new(HostTrust::open(ledger.database(), &TrustSettings::default()).unwrap());
    let engine = Engine::new(&EngineConfig::default()).unwrap();
    let config = Arc::new(ServeConfig {
        allow_unsigned_playbooks: true,
        data_dir: dir.path().to_owned(),
        ..ServeConfig::default()
    });
    let (sources, _batches) = SourceSupervisor::new(Arc::new(Supervisor::default()));
    let collectors = Arc::new(Collectors::new(
        engine.clone(),
        RunEnv {
            trust,
            ..RunEnv::new(
                Executors::none(Arc::new(SystemClock)),
                ledger,
                Arc::new(PassThrough),
            )
        },
        config.clone(),
        Arc::default(),
        Arc::new(tokio::sync::Semaphore::new(1)),
        Arc::new(sources),
    ));
    let registry = Registry::new(
        store,
        engine.clone(),
        config,
        Arc::new(Triggers::default()),
        collectors,
    )
    .unwrap()
    .with_retained(1);
    (registry, engine)
}

/// The fixture component `wasm`'s bytes.
fn fixture(wasm: &str) -> Vec<u8> {
    std::fs::read(grace_testkit::components_dir().join(format!("{wasm}.wasm"))).unwrap()
}

/// Uploads version `version` of playbook `p`, built from the fixture component `wasm`.
async fn try_upload(
    registry: &Registry,
    version: &str,
    wasm: &str,
) -> Result<(bool, PlaybookRecord), RegistryError> {
    let manifest = format!(
        "manifest_version = 1\nname = \"p\"\nversion = \"{version}\"\nkind = \"playbook\"\ncomponent = \"{wasm}.wasm\"\n\n[[triggers]]\nevent_type = \"test.*\"\n"
    );
    registry.upload(manifest, fixture(wasm), None, None).await
}

/// Version `version` of playbook `p`, built from the fixture component `wasm`.
async fn upload(registry: &Registry, version: &str, wasm: &str) -> String {
    let (created, record) = try_upload(registry, version, wasm).await.unwrap();
    assert!(created);
    record.active().unwrap().digest.clone()
}

fn run_of(version: &str, digest: &str) -> RunRecord {
    serde_json::from_value(serde_json::json!({
        "id": "r", "playbook": "p", "version": version, "digest": digest, "trigger": 0,
        "event_seq": 1, "event": {
            "event_type": "test.x", "source": "t", "actor": "t", "resource": "r",
            "payload": {}, "timestamp": 1
        },
        "resource": "r", "dedup_key": null, "locks": [], "key": null, "state": RunState::Queued,
        "attempts": 0, "created_at": 0, "ingested_at": 0, "started_at": null,
        "finished_at": null, "outcome": null, "failure": null, "approval": null,
        "timeline": [], "attempts_log": []
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_version_pushed_out_of_the_registrys_cache_leaves_the_engines_cache() {
    grace_testkit::build_guests();
    let dir = tempfile::tempdir().unwrap();
    let (registry, engine) = registry(&dir);
    let v1 = upload(&registry, "1.0.0", "trivial").await;
    let v2 = upload(&registry, "2.0.0", "echo").await;
    assert_eq!(
        registry.retained(),
        [v1.as_str()],
        "v1 superseded, kept compiled"
    );
    assert!(engine.is_cached(&v1));
    let v3 = upload(&registry, "3.0.0", "panic").await;
    assert_eq!(
        registry.retained(),
        [v2.as_str()],
        "one superseded version at most"
    );
    assert!(!engine.is_cached(&v1), "v1 evicted from the engine too");
    assert!(engine.is_cached(&v2) && engine.is_cached(&v3));

    // A run of the evicted version still gets it: compiled again, and kept in turn.
    let guest = registry.guest_for(&run_of("1.0.0", &v1)).await.unwrap();
    assert_eq!(guest.component.digest(), v1);
    assert_eq!(registry.retained(), [v1.as_str()]);
    assert!(!engine.is_cached(&v2));
    assert!(engine.is_cached(&v3), "the live version stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_refused_as_another_component_for_a_stored_version_leaves_no_component_cached() {
    grace_testkit::build_guests();
    let dir = tempfile::tempdir().unwrap();
    let (registry, engine) = registry(&dir);
    let live = upload(&registry, "1.0.0", "trivial").await;
    let refused = grace_engine::component::digest(&fixture("echo"));
    let err = try_upload(&registry, "1.0.0", "echo").await.unwrap_err();
    assert!(matches!(err, RegistryError::Immutable { .. }), "{err}");
    assert!(
        !engine.is_cached(&refused),
        "the refused component left the cache"
    );
    assert!(engine.is_cached(&live), "the live version stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_to_a_disabled_playbook_leave_no_component_cached() {
    grace_testkit::build_guests();
    let dir = tempfile::tempdir().unwrap();
    let (registry, engine) = registry(&dir);
    let v1 = upload(&registry, "1.0.0", "trivial").await;
    registry.set_enabled("p", false).await.unwrap();
    assert_eq!(
        registry.retained(),
        [v1.as_str()],
        "v1 disabled, kept compiled"
    );

    let v2 = grace_engine::component::digest(&fixture("echo"));
    let (created, _) = try_upload(&registry, "2.0.0", "echo").await.unwrap();
    assert!(created);
    assert!(
        !engine.is_cached(&v2),
        "a stored version that is not live is not cached"
    );
    let (created, _) = try_upload(&registry, "2.0.0", "echo").await.unwrap();
    assert!(!created, "the same upload again changes nothing");
    assert!(
        !engine.is_cached(&v2),
        "nor is it cached by a repeated upload"
    );
    assert!(engine.is_cached(&v1), "the retained version stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_upload_of_the_live_version_keeps_it_cached() {
    grace_testkit::build_guests();
    let dir = tempfile::tempdir().unwrap();
    let (registry, engine) = registry(&dir);
    let live = upload(&registry, "1.0.0", "trivial").await;
    let (created, _) = try_upload(&registry, "1.0.0", "trivial").await.unwrap();
    assert!(!created);
    assert!(engine.is_cached(&live));
}

/// A source that emits one event per poll, panicking on its first poll.
struct Flaky {
    polls: AtomicU32,
}

#[async_trait::async_trait]
impl Poller for Flaky {
    async fn poll(&self) -> Result<Polled, ExecError> {
        let n = self.polls.fetch_add(1, Ordering::SeqCst);
        assert!(n > 0, "the first poll dies");
        Ok(Polled {
            events: vec![TriggerEvent {
                event_type: "test.polled".into(),
                source: "flaky".into(),
                actor: "flaky".into(),
                resource: "web".into(),
                payload: serde_json::json!({ "n": n }),
                timestamp: 1_000,
            }],
            stale: 0,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_sources_events_reach_the_event_log_after_its_task_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(ServeConfig {
        simulate: true,
        data_dir: dir.path().to_owned(),
        ..ServeConfig::default()
    })
    .await
    .unwrap();
    let schedule = Schedule {
        every: Duration::from_secs(3600),
        ..Schedule::default()
    };
    let flaky = Arc::new(Flaky {
        polls: AtomicU32::new(0),
    });
    app.sources
        .poll("flaky", "test", "t".into(), flaky.clone(), schedule);
    let event = eventually("the polled event is stored", || {
        app.store.events(1, 10).unwrap().into_iter().next()
    })
    .await;
    assert_eq!(event.event.event_type, "test.polled");
    assert_eq!(event.event.actor, "flaky");
    assert_eq!(flaky.polls.load(Ordering::SeqCst), 2, "restarted once");
    let down = app.supervisor.down();
    assert!(down.is_empty(), "up again: {down:?}");
}
