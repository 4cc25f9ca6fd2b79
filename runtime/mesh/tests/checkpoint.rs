//! A mesh restored from a checkpoint and offered the events after it decides exactly as the
//! mesh that was offered every event: what lets a restarted server replay only its event log's
//! tail.

// A panic is how a test fails: unwrapping in the helpers is the point.
#![allow(clippy::unwrap_used)]

use grace_mesh::{Decision, Mesh, MeshCheckpoint, PlaybookTriggers};
use grace_model::TriggerEvent;
use grace_model::manifest::Manifest;
use serde_json::json;

const SECOND: u64 = 1000;

fn playbook(name: &str, triggers: &str) -> PlaybookTriggers {
    let manifest = Manifest::parse(&format!(
        "manifest_version = 2\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"x.wasm\"\n{triggers}"
    ))
    .unwrap();
    PlaybookTriggers {
        playbook: name.to_owned(),
        triggers: manifest.triggers,
        locks: vec!["scaling".to_owned()],
    }
}

/// Playbooks exercising every piece of saved state: duration and event-count holds, cooldowns,
/// dedup keys, locks.
fn playbooks() -> Vec<PlaybookTriggers> {
    vec![
        playbook(
            "held",
            r#"
[[triggers]]
event_type = "metrics.latency"
condition = "value > 500"
for = "30s"
cooldown = "2m"
"#,
        ),
        playbook(
            "counted",
            r#"
[[triggers]]
event_type = "metrics.*"
resource = "api-*"
condition = "value > 300"
for = "3 events"
dedup_key = "{resource}"
"#,
        ),
        playbook(
            "plain",
            r#"
[[triggers]]
event_type = "metrics.errors"
cooldown = "45s"
"#,
        ),
    ]
}

fn mesh(max_windows: usize) -> Mesh {
    let mut mesh = Mesh::with_max_windows(max_windows);
    for p in playbooks() {
        mesh.set_playbook(p);
    }
    mesh
}

/// A deterministic stream: a few event types over many resources, values on both sides of the
/// conditions, timestamps mostly increasing with some late events.
fn events(n: usize) -> Vec<TriggerEvent> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n as u64)
        .map(|i| {
            let r = next();
            TriggerEvent {
                event_type: ["metrics.latency", "metrics.errors", "metrics.cpu"][(r % 3) as usize]
                    .to_owned(),
                source: "test".to_owned(),
                actor: "test".to_owned(),
                resource: format!(
                    "{}-{}",
                    ["api", "db"][(r >> 8) as usize % 2],
                    (r >> 16) % 12
                ),
                payload: json!({ "value": (r >> 24) % 1000 }),
                timestamp: 1_000 * SECOND + i * SECOND / 2 + ((r >> 40) % 3) * SECOND
                    - if r % 17 == 0 { 20 * SECOND } else { 0 },
            }
        })
        .collect()
}

/// Offers events as a restarted server's warm-up does: each fired run is over at once.
fn offer_all(mesh: &mut Mesh, events: &[TriggerEvent]) -> Vec<Decision> {
    let mut all = Vec::new();
    for e in events {
        for d in mesh.offer(e) {
            if let Decision::Fire { run, .. } = &d {
                mesh.run_finished(run);
            }
            all.push(d);
        }
    }
    all
}

fn round_trip(checkpoint: &MeshCheckpoint) -> MeshCheckpoint {
    serde_json::from_slice(&serde_json::to_vec(checkpoint).unwrap()).unwrap()
}

#[test]
fn a_restored_checkpoint_then_the_tail_decides_like_every_event_from_the_start() {
    let events = events(4000);
    // A small window cap, so that evictions (and the order they follow) matter too.
    for max_windows in [8, 100_000] {
        let mut whole = mesh(max_windows);
        let decisions = offer_all(&mut whole, &events);
        assert!(
            decisions.iter().filter(|d| d.is_fire()).count() > 50,
            "the stream fires too little to test anything"
        );
        for cut in [1, 17, 999, 2500, 3999] {
            let mut before = mesh(max_windows);
            let head = offer_all(&mut before, &events[..cut]);
            let saved = round_trip(&before.checkpoint());

            let mut restored = mesh(max_windows);
            assert!(restored.restore(&saved));
            let tail = offer_all(&mut restored, &events[cut..]);
            assert_eq!(
                tail,
                decisions[head.len()..],
                "decisions after a restore at event {cut} (cap {max_windows})"
            );
            assert_eq!(restored.checkpoint(), whole.checkpoint());
        }
    }
}

#[test]
fn a_checkpoint_saves_open_windows_and_cooldowns() {
    let mut mesh = mesh(100);
    offer_all(&mut mesh, &events(500));
    let saved = mesh.checkpoint();
    assert!(!saved.windows.is_empty(), "{saved:?}");
    assert!(!saved.cooldowns.is_empty(), "{saved:?}");
    assert_eq!(saved.events, 500);
}

#[test]
fn a_window_is_not_restored_to_a_trigger_that_changed() {
    let slow = |hold: &str| {
        playbook(
            "held",
            &format!(
                "[[triggers]]\nevent_type = \"metrics.latency\"\ncondition = \"value > 500\"\nfor = \"{hold}\"\n"
            ),
        )
    };
    let latency = |value: u64, timestamp: u64| TriggerEvent {
        event_type: "metrics.latency".to_owned(),
        source: "test".to_owned(),
        actor: "test".to_owned(),
        resource: "api".to_owned(),
        payload: json!({ "value": value }),
        timestamp,
    };
    let mut before = Mesh::new();
    before.set_playbook(slow("30s"));
    offer_all(&mut before, &[latency(900, 0)]);
    let saved = before.checkpoint();
    assert_eq!(saved.windows.len(), 1);

    // The same trigger: the window holds on, and fires 30 s after it opened.
    let mut same = Mesh::new();
    same.set_playbook(slow("30s"));
    assert!(same.restore(&saved));
    assert!(offer_all(&mut same, &[latency(900, 30 * SECOND)])[0].is_fire());

    // A changed trigger: its holding starts over.
    let mut changed = Mesh::new();
    changed.set_playbook(slow("20s"));
    assert!(changed.restore(&saved));
    assert_eq!(changed.stats().windows, 0);
    assert!(!offer_all(&mut changed, &[latency(900, 30 * SECOND)])[0].is_fire());
}

#[test]
fn run_numbers_go_on_after_a_restore() {
    let mut before = mesh(100);
    let fired = offer_all(&mut before, &events(500));
    let last = fired
        .iter()
        .filter_map(|d| match d {
            Decision::Fire { run, .. } => Some(run.id()),
            Decision::Suppressed { .. } => None,
        })
        .max()
        .unwrap();
    let mut restored = mesh(100);
    restored.restore(&before.checkpoint());
    let next = offer_all(&mut restored, &events(3000)[500..])
        .iter()
        .find_map(|d| match d {
            Decision::Fire { run, .. } => Some(run.id()),
            Decision::Suppressed { .. } => None,
        })
        .unwrap();
    assert_eq!(next, last + 1);
}

#[test]
fn a_checkpoint_of_another_format_restores_nothing() {
    let mut before = mesh(100);
    offer_all(&mut before, &events(500));
    let mut saved = before.checkpoint();
    saved.format += 1;
    let mut restored = mesh(100);
    assert!(!restored.restore(&saved));
    assert_eq!(restored.checkpoint(), mesh(100).checkpoint());
}
