//! The trigger mesh's rules, one behaviour per test, on triggers parsed from real manifest text.

// A panic is how a test fails: unwrapping in the helpers is the point.
#![allow(clippy::unwrap_used)]

use grace_mesh::{Decision, Mesh, PlaybookTriggers, RunKey, Suppression, lock_capabilities};
use grace_model::TriggerEvent;
use grace_model::manifest::{Hold, Manifest};
use serde_json::{Value, json};

const MINUTE: u64 = 60_000;

fn manifest(name: &str, rest: &str) -> Manifest {
    Manifest::parse(&format!(
        "manifest_version = 2\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"x.wasm\"\n{rest}"
    ))
    .unwrap()
}

/// A playbook with the given lock capabilities and `[[triggers]]` tables.
fn playbook(name: &str, locks: &[&str], triggers: &str) -> PlaybookTriggers {
    PlaybookTriggers {
        playbook: name.to_owned(),
        triggers: manifest(name, triggers).triggers,
        locks: locks.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn event(event_type: &str, resource: &str, payload: Value, timestamp: u64) -> TriggerEvent {
    TriggerEvent {
        event_type: event_type.to_owned(),
        source: "prometheus".to_owned(),
        actor: "collector".to_owned(),
        resource: resource.to_owned(),
        payload,
        timestamp,
    }
}

fn latency(resource: &str, value: f64, timestamp: u64) -> TriggerEvent {
    event(
        "metrics.latency",
        resource,
        json!({ "value": value }),
        timestamp,
    )
}

/// `playbook/trigger outcome` per decision, for compact assertions.
fn summary(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .map(|d| {
            let what = match d {
                Decision::Fire { .. } => "fire",
                Decision::Suppressed { reason, .. } => reason.name(),
            };
            format!("{}/{} {what}", d.playbook(), d.trigger())
        })
        .collect()
}

fn one(decisions: Vec<Decision>) -> Decision {
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    decisions.into_iter().next().unwrap()
}

fn run_key(decision: &Decision) -> RunKey {
    match decision {
        Decision::Fire { run, .. } => run.clone(),
        other => panic!("expected a fire, got {other:?}"),
    }
}

fn reason(decision: &Decision) -> Suppression {
    decision
        .suppression()
        .cloned()
        .unwrap_or_else(|| panic!("expected a suppression, got {decision:?}"))
}

const SLOW: &str = r#"
[[triggers]]
event_type = "metrics.latency"
condition = "value > 500"
"#;

#[test]
fn event_type_and_resource_globs_select_the_triggers() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "api-latency",
        &[],
        "[[triggers]]\nevent_type = \"metrics.latency\"\nresource = \"api-*\"\n",
    ));
    mesh.set_playbook(playbook(
        "any-metric",
        &[],
        "[[triggers]]\nevent_type = \"metrics.*\"\n",
    ));
    mesh.set_playbook(playbook(
        "db-anything",
        &[],
        "[[triggers]]\nevent_type = \"*\"\nresource = \"db\"\n",
    ));
    mesh.set_playbook(playbook(
        "containers",
        &[],
        "[[triggers]]\nevent_type = \"container.unhealthy\"\n",
    ));
    assert_eq!(mesh.len(), 4);

    let at = |mesh: &mut Mesh, event_type: &str, resource: &str| {
        summary(&mesh.offer(&event(event_type, resource, json!({}), 0)))
    };
    assert_eq!(
        at(&mut mesh, "metrics.latency", "api-1"),
        ["any-metric/0 fire", "api-latency/0 fire"]
    );
    assert_eq!(
        at(&mut mesh, "metrics.latency", "web"),
        ["any-metric/0 fire"]
    );
    assert_eq!(
        at(&mut mesh, "metrics.cpu", "db"),
        ["any-metric/0 fire", "db-anything/0 fire"]
    );
    assert_eq!(
        at(&mut mesh, "container.unhealthy", "db"),
        ["containers/0 fire", "db-anything/0 fire"]
    );
    assert!(at(&mut mesh, "metrics", "api-1").is_empty());
    assert!(at(&mut mesh, "deploy.done", "web").is_empty());
}

#[test]
fn decisions_are_ordered_by_playbook_then_trigger_whatever_the_load_order() {
    let triggers = "[[triggers]]\nevent_type = \"a.b\"\n[[triggers]]\nevent_type = \"a.*\"\n";
    let mut forward = Mesh::new();
    let mut backward = Mesh::new();
    for name in ["p1", "p2", "p3"] {
        forward.set_playbook(playbook(name, &[], triggers));
    }
    for name in ["p3", "p2", "p1"] {
        backward.set_playbook(playbook(name, &[], triggers));
    }
    let e = event("a.b", "r", json!({}), 0);
    let expected = [
        "p1/0 fire",
        "p1/1 already_fired",
        "p2/0 fire",
        "p2/1 already_fired",
        "p3/0 fire",
        "p3/1 already_fired",
    ];
    assert_eq!(summary(&forward.offer(&e)), expected);
    assert_eq!(summary(&backward.offer(&e)), expected);
}

#[test]
fn a_false_condition_is_suppressed_and_resets_the_hold_window() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "scale",
        &[],
        &format!("{SLOW}for = \"3 events\"\n"),
    ));
    let holding = |d: Decision| match reason(&d) {
        Suppression::Holding { seen_events, .. } => seen_events,
        other => panic!("expected holding, got {other:?}"),
    };
    assert_eq!(holding(one(mesh.offer(&latency("api", 900.0, 1)))), 1);
    assert_eq!(holding(one(mesh.offer(&latency("api", 900.0, 2)))), 2);
    assert_eq!(mesh.stats().windows, 1);
    assert_eq!(
        reason(&one(mesh.offer(&latency("api", 100.0, 3)))),
        Suppression::ConditionFalse
    );
    assert_eq!(mesh.stats().windows, 0);
    assert_eq!(holding(one(mesh.offer(&latency("api", 900.0, 4)))), 1);
    assert_eq!(holding(one(mesh.offer(&latency("api", 900.0, 5)))), 2);
    assert!(one(mesh.offer(&latency("api", 900.0, 6))).is_fire());
}

#[test]
fn a_duration_hold_fires_exactly_when_held_long_enough_and_not_before() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook("scale", &[], &format!("{SLOW}for = \"2m\"\n")));
    let start = 1_000_000;
    for (offset, seen) in [(0, 1), (MINUTE, 2), (2 * MINUTE - 1, 3)] {
        assert_eq!(
            reason(&one(mesh.offer(&latency("api", 900.0, start + offset)))),
            Suppression::Holding {
                since: start,
                needed: Hold::Duration(std::time::Duration::from_secs(120)),
                seen_events: seen,
            }
        );
    }
    assert!(one(mesh.offer(&latency("api", 900.0, start + 2 * MINUTE))).is_fire());
}

#[test]
fn an_event_count_hold_fires_on_the_nth_consecutive_true_event_then_starts_over() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "scale",
        &[],
        &format!("{SLOW}for = \"3 events\"\n"),
    ));
    let outcomes: Vec<String> = (0..7)
        .flat_map(|t| summary(&mesh.offer(&latency("api", 900.0, t))))
        .collect();
    assert_eq!(
        outcomes,
        [
            "scale/0 holding",
            "scale/0 holding",
            "scale/0 fire",
            "scale/0 holding",
            "scale/0 holding",
            "scale/0 fire",
            "scale/0 holding",
        ]
    );
}

#[test]
fn a_false_event_in_the_gap_restarts_a_duration_hold() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook("scale", &[], &format!("{SLOW}for = \"2m\"\n")));
    mesh.offer(&latency("api", 900.0, 0));
    mesh.offer(&latency("api", 100.0, MINUTE));
    let d = one(mesh.offer(&latency("api", 900.0, 90_000)));
    assert!(matches!(
        reason(&d),
        Suppression::Holding { since: 90_000, .. }
    ));
    // Two minutes after the first event, but not after the restart.
    assert!(!one(mesh.offer(&latency("api", 900.0, 2 * MINUTE))).is_fire());
    assert!(!one(mesh.offer(&latency("api", 900.0, 90_000 + 2 * MINUTE - 1))).is_fire());
    assert!(one(mesh.offer(&latency("api", 900.0, 90_000 + 2 * MINUTE))).is_fire());
}

#[test]
fn hold_windows_are_per_resource() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "scale",
        &[],
        &format!("{SLOW}for = \"2 events\"\n"),
    ));
    assert!(!one(mesh.offer(&latency("api", 900.0, 0))).is_fire());
    assert!(!one(mesh.offer(&latency("web", 900.0, 1))).is_fire());
    mesh.offer(&latency("web", 100.0, 2));
    assert!(one(mesh.offer(&latency("api", 900.0, 3))).is_fire());
    assert!(!one(mesh.offer(&latency("web", 900.0, 4))).is_fire());
}

#[test]
fn cooldown_suppresses_until_the_boundary_and_allows_at_it() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "scale",
        &[],
        &format!("{SLOW}cooldown = \"10m\"\n"),
    ));
    let fired = one(mesh.offer(&latency("api", 900.0, 1_000)));
    mesh.run_finished(&run_key(&fired));
    let until = 1_000 + 10 * MINUTE;
    assert_eq!(
        reason(&one(mesh.offer(&latency("api", 900.0, until - 1)))),
        Suppression::CoolingDown { until }
    );
    // Another resource is not cooling down.
    assert!(one(mesh.offer(&latency("web", 900.0, until - 1))).is_fire());
    assert!(one(mesh.offer(&latency("api", 900.0, until))).is_fire());
}

#[test]
fn cooldown_is_per_playbook_whichever_trigger_fired() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "scale",
        &[],
        "[[triggers]]\nevent_type = \"metrics.latency\"\ncooldown = \"5m\"\n[[triggers]]\nevent_type = \"metrics.cpu\"\n",
    ));
    mesh.set_playbook(playbook(
        "other",
        &[],
        "[[triggers]]\nevent_type = \"metrics.cpu\"\n",
    ));
    assert!(one(mesh.offer(&latency("api", 1.0, 0))).is_fire());
    assert_eq!(
        summary(&mesh.offer(&event("metrics.cpu", "api", json!({}), MINUTE))),
        ["other/0 fire", "scale/1 cooling_down"]
    );
}

#[test]
fn dedup_suppresses_a_second_run_until_the_first_finishes() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "page",
        &[],
        "[[triggers]]\nevent_type = \"alert.firing\"\ndedup_key = \"{labels.alertname}\"\n",
    ));
    let alert = |resource: &str, name: &str, t| {
        event(
            "alert.firing",
            resource,
            json!({ "labels": { "alertname": name } }),
            t,
        )
    };
    let first = one(mesh.offer(&alert("api", "HighLatency", 0)));
    match &first {
        Decision::Fire { dedup_key, run, .. } => {
            assert_eq!(dedup_key.as_deref(), Some("HighLatency"));
            assert_eq!(run.dedup_key(), Some("HighLatency"));
        }
        other => panic!("expected a fire, got {other:?}"),
    }
    assert_eq!(
        reason(&one(mesh.offer(&alert("web", "HighLatency", 1)))),
        Suppression::Duplicate {
            dedup_key: "HighLatency".into()
        }
    );
    assert!(one(mesh.offer(&alert("web", "DiskFull", 2))).is_fire());
    assert_eq!(mesh.stats().dedup_keys, 2);
    mesh.run_finished(&run_key(&first));
    assert!(one(mesh.offer(&alert("web", "HighLatency", 3))).is_fire());
}

#[test]
fn two_playbooks_granting_scaling_on_one_resource_never_run_at_once() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook("add-capacity", &["scaling"], SLOW));
    mesh.set_playbook(playbook("shed-load", &["scaling"], SLOW));
    mesh.set_playbook(playbook("restart", &["containers"], SLOW));
    let decisions = mesh.offer(&latency("api", 900.0, 0));
    assert_eq!(
        summary(&decisions),
        ["add-capacity/0 fire", "restart/0 fire", "shed-load/0 busy"]
    );
    assert_eq!(
        reason(&decisions[2]),
        Suppression::Busy {
            lock: "scaling:api".into(),
            held_by: "add-capacity".into()
        }
    );
    assert_eq!(run_key(&decisions[0]).locks(), ["scaling:api"]);
    // The lock is per resource: another resource is free.
    assert_eq!(
        summary(&mesh.offer(&latency("web", 900.0, 1))),
        ["add-capacity/0 fire", "restart/0 fire", "shed-load/0 busy"]
    );
    // While its run is active, add-capacity itself is busy on `api` too.
    assert_eq!(
        summary(&mesh.offer(&latency("api", 900.0, 2))),
        ["add-capacity/0 busy", "restart/0 busy", "shed-load/0 busy"]
    );
    assert_eq!(mesh.stats().locks, 4);
}

#[test]
fn run_finished_releases_the_locks_and_a_stale_key_releases_nothing() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook("add-capacity", &["scaling"], SLOW));
    mesh.set_playbook(playbook("shed-load", &["scaling"], SLOW));
    let first = mesh.offer(&latency("api", 900.0, 0));
    let first_key = run_key(&first[0]);
    mesh.run_finished(&first_key);
    assert_eq!(mesh.stats().locks, 0);

    let second = mesh.offer(&latency("api", 900.0, 1));
    assert_eq!(
        summary(&second),
        ["add-capacity/0 fire", "shed-load/0 busy"]
    );
    // Finishing the first run again must not free the second run's lock.
    mesh.run_finished(&first_key);
    assert_eq!(
        summary(&mesh.offer(&latency("api", 900.0, 2))),
        ["add-capacity/0 busy", "shed-load/0 busy"]
    );
    mesh.run_finished(&run_key(&second[0]));
    assert_eq!(
        summary(&mesh.offer(&latency("api", 900.0, 3))),
        ["add-capacity/0 fire", "shed-load/0 busy"]
    );
}

#[test]
fn remove_playbook_drops_its_triggers_and_windows_but_not_its_runs() {
    let mut mesh = Mesh::new();
    let scale = playbook(
        "scale",
        &["scaling"],
        "[[triggers]]\nevent_type = \"metrics.latency\"\nfor = \"3 events\"\n\
         [[triggers]]\nevent_type = \"metrics.cpu\"\n",
    );
    mesh.set_playbook(scale.clone());
    mesh.set_playbook(playbook("other", &["scaling"], SLOW));
    let running = run_key(&one(mesh.offer(&event("metrics.cpu", "api", json!({}), 0))));
    mesh.offer(&latency("web", 1.0, 1));
    mesh.offer(&latency("web", 1.0, 2));
    assert_eq!(mesh.stats().windows, 1);

    mesh.remove_playbook("scale");
    assert_eq!((mesh.len(), mesh.stats().windows), (1, 0));
    assert!(
        mesh.offer(&event("metrics.cpu", "api", json!({}), 3))
            .is_empty()
    );
    // Its run is still active: its lock still holds other playbooks back.
    assert_eq!(
        summary(&mesh.offer(&latency("api", 900.0, 4))),
        ["other/0 busy"]
    );

    mesh.set_playbook(scale);
    let d = mesh.offer(&latency("web", 1.0, 5));
    assert!(matches!(
        reason(&d[1]),
        Suppression::Holding { seen_events: 1, .. }
    ));
    mesh.run_finished(&running);
    assert_eq!(mesh.stats().locks, 0);
}

#[test]
fn a_new_version_keeps_the_windows_of_unchanged_triggers_only() {
    let mut mesh = Mesh::new();
    let v1 = playbook(
        "scale",
        &[],
        "[[triggers]]\nevent_type = \"metrics.latency\"\nfor = \"3 events\"\n\
         [[triggers]]\nevent_type = \"metrics.latency\"\nfor = \"3 events\"\ncondition = \"value > 0\"\n",
    );
    let v2 = playbook(
        "scale",
        &[],
        "[[triggers]]\nevent_type = \"metrics.latency\"\nfor = \"3 events\"\n\
         [[triggers]]\nevent_type = \"metrics.latency\"\nfor = \"3 events\"\ncondition = \"value > 1\"\n",
    );
    mesh.set_playbook(v1);
    mesh.offer(&latency("api", 5.0, 0));
    mesh.offer(&latency("api", 5.0, 1));
    mesh.set_playbook(v2);
    assert_eq!(mesh.len(), 2);
    assert_eq!(
        summary(&mesh.offer(&latency("api", 5.0, 2))),
        ["scale/0 fire", "scale/1 holding"]
    );
}

#[test]
fn one_event_fires_a_playbook_at_most_once() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "scale",
        &[],
        "[[triggers]]\nevent_type = \"metrics.latency\"\n[[triggers]]\nevent_type = \"metrics.*\"\n",
    ));
    let d = mesh.offer(&latency("api", 1.0, 0));
    assert_eq!(summary(&d), ["scale/0 fire", "scale/1 already_fired"]);
    assert_eq!(reason(&d[1]), Suppression::AlreadyFired { trigger: 0 });
    assert_eq!(mesh.stats().fired, 1);
}

#[test]
fn out_of_order_events_do_not_move_a_window_back() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook("scale", &[], &format!("{SLOW}for = \"2m\"\n")));
    let start = 10 * MINUTE;
    mesh.offer(&latency("api", 900.0, start));
    // A late true event counts, at the window's own time, and leaves `since` alone.
    assert!(matches!(
        reason(&one(mesh.offer(&latency("api", 900.0, start - 5 * MINUTE)))),
        Suppression::Holding { since, seen_events: 2, .. } if since == start
    ));
    // A late false event from before the window started does not contradict it.
    assert_eq!(
        reason(&one(mesh.offer(&latency("api", 100.0, start - MINUTE)))),
        Suppression::ConditionFalse
    );
    assert_eq!(mesh.stats().windows, 1);
    assert!(one(mesh.offer(&latency("api", 900.0, start + 2 * MINUTE))).is_fire());

    // A late false event from inside a window does reset it.
    mesh.offer(&latency("api", 900.0, start + 3 * MINUTE));
    mesh.offer(&latency("api", 900.0, start + 4 * MINUTE));
    mesh.offer(&latency("api", 100.0, start + 3 * MINUTE + 1));
    assert_eq!(mesh.stats().windows, 0);
}

#[test]
fn out_of_order_events_from_before_a_fire_are_cooling_down() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "scale",
        &[],
        &format!("{SLOW}cooldown = \"10m\"\n"),
    ));
    let fired = one(mesh.offer(&latency("api", 900.0, 5 * MINUTE)));
    mesh.run_finished(&run_key(&fired));
    assert_eq!(
        reason(&one(mesh.offer(&latency("api", 900.0, MINUTE)))),
        Suppression::CoolingDown { until: 15 * MINUTE }
    );
}

#[test]
fn the_window_cap_evicts_the_least_recently_updated_window_and_counts_it() {
    let mut mesh = Mesh::with_max_windows(2);
    mesh.set_playbook(playbook(
        "scale",
        &[],
        &format!("{SLOW}for = \"2 events\"\n"),
    ));
    mesh.offer(&latency("a", 900.0, 0));
    mesh.offer(&latency("b", 900.0, 1));
    mesh.offer(&latency("c", 900.0, 2));
    let stats = mesh.stats();
    assert_eq!(
        (stats.windows, stats.max_windows, stats.windows_evicted),
        (2, 2, 1)
    );
    // `a` was evicted: it starts holding over; `b` kept its window.
    assert!(!one(mesh.offer(&latency("a", 900.0, 3))).is_fire());
    assert!(one(mesh.offer(&latency("c", 900.0, 4))).is_fire());
}

#[test]
fn conditions_and_dedup_keys_see_the_event_fields() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "scale",
        &[],
        "[[triggers]]\nevent_type = \"metrics.*\"\n\
         condition = \"event.source == 'prometheus' && event.type != 'metrics.cpu'\"\n\
         dedup_key = \"{event_type}@{resource}\"\n",
    ));
    match one(mesh.offer(&latency("api", 1.0, 0))) {
        Decision::Fire { dedup_key, .. } => {
            assert_eq!(dedup_key.as_deref(), Some("metrics.latency@api"));
        }
        other => panic!("expected a fire, got {other:?}"),
    }
    assert_eq!(
        reason(&one(mesh.offer(&event("metrics.cpu", "api", json!({}), 1)))),
        Suppression::ConditionFalse
    );
}

#[test]
fn locks_come_from_grants_that_can_change_something() {
    let m = manifest(
        "ops",
        r#"
[grants.scaling]
groups = ["api-*"]
[grants.containers]
labels = { app = "web" }
actions = ["list", "logs"]
[grants.kubernetes]
namespaces = ["shop"]
actions = ["get", "scale"]
[[grants.metrics.series]]
metric = "up"
"#,
    );
    // Listing containers and reading their logs change nothing: no containers lock.
    assert_eq!(lock_capabilities(&m.grants), ["kubernetes", "scaling"]);
    let p = PlaybookTriggers::from_manifest(&m);
    assert_eq!(p.playbook, "ops");
    assert_eq!(p.locks, ["kubernetes", "scaling"]);
    assert!(lock_capabilities(&manifest("quiet", "").grants).is_empty());
}

#[test]
fn a_resumed_run_takes_its_locks_again_in_a_new_mesh() {
    let mut before = Mesh::new();
    before.set_playbook(playbook("add-capacity", &["scaling"], SLOW));
    let key = run_key(&one(before.offer(&latency("api", 900.0, 0))));
    let stored = serde_json::to_string(&key).unwrap();

    let mut after = Mesh::new();
    after.set_playbook(playbook("add-capacity", &["scaling"], SLOW));
    after.set_playbook(playbook("shed-load", &["scaling"], SLOW));
    let key: RunKey = serde_json::from_str(&stored).unwrap();
    after.resume_run(&key).unwrap();
    let d = after.offer(&latency("api", 900.0, 1));
    assert_eq!(summary(&d), ["add-capacity/0 busy", "shed-load/0 busy"]);
    // New runs get ids after the resumed one.
    after.run_finished(&key);
    let d = after.offer(&latency("api", 900.0, 2));
    assert!(run_key(&d[0]).id() > key.id());
    // Resuming a run whose lock is now someone else's takes nothing.
    assert!(matches!(
        after.resume_run(&key),
        Err(Suppression::Busy { .. })
    ));
}

#[test]
fn a_run_taken_over_from_another_mesh_gets_an_id_of_this_one_and_waits_for_its_locks() {
    let mut other = Mesh::new();
    other.set_playbook(playbook("add-capacity", &["scaling"], SLOW));
    let foreign = run_key(&one(other.offer(&latency("api", 900.0, 0))));

    let mut here = Mesh::new();
    here.set_playbook(playbook("add-capacity", &["scaling"], SLOW));
    here.set_playbook(playbook("shed-load", &["scaling"], SLOW));
    // A run of this mesh with the same id as the foreign one holds the lock.
    let own = run_key(&here.offer(&latency("api", 900.0, 1))[0]);
    assert_eq!(own.id(), foreign.id(), "ids are counted per mesh");
    assert!(matches!(
        here.adopt_run(&foreign),
        Err(Suppression::Busy { .. })
    ));
    here.run_finished(&own);
    let adopted = here.adopt_run(&foreign).unwrap();
    assert_ne!(adopted.id(), foreign.id());
    assert!(adopted.id() > own.id());
    let d = here.offer(&latency("api", 900.0, 2));
    assert_eq!(summary(&d), ["add-capacity/0 busy", "shed-load/0 busy"]);
    // Released under the id it got here.
    here.run_finished(&adopted);
    let d = here.offer(&latency("api", 900.0, 3));
    assert!(run_key(&d[0]).id() > adopted.id());
}

#[test]
fn decisions_serialize_for_the_api() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "scale",
        &["scaling"],
        &format!("{SLOW}for = \"2m\"\n"),
    ));
    let d = one(mesh.offer(&latency("api", 900.0, 7)));
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({
            "decision": "suppressed", "playbook": "scale", "trigger": 0, "resource": "api",
            "reason": { "reason": "holding", "since": 7, "needed": "2m", "seen_events": 1 },
        })
    );
    assert_eq!(
        reason(&d).to_string(),
        "the condition has held since 1970-01-01T00:00:00.007Z (1 event); `for` asks 2m"
    );
    let d = one(mesh.offer(&latency("api", 900.0, 7 + 2 * MINUTE)));
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({
            "decision": "fire", "playbook": "scale", "trigger": 0, "resource": "api",
            "dedup_key": null,
            "run": { "id": 1, "playbook": "scale", "resource": "api", "locks": ["scaling:api"], "dedup_key": null },
        })
    );
}

/// A deterministic xorshift64* generator: the same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Offers `events` to a fresh mesh (playbooks loaded in `order`), finishing each run 3 events
/// after it fired; returns every decision.
fn replay(order: &[usize], events: &[TriggerEvent]) -> Vec<Decision> {
    let playbooks = [
        playbook(
            "add-capacity",
            &["scaling"],
            &format!("{SLOW}for = \"2m\"\ncooldown = \"5m\"\n"),
        ),
        playbook(
            "shed-load",
            &["scaling"],
            &format!("{SLOW}for = \"3 events\"\n"),
        ),
        playbook(
            "page",
            &[],
            "[[triggers]]\nevent_type = \"metrics.*\"\ncondition = \"value > 800\"\ndedup_key = \"{resource}\"\n",
        ),
        playbook(
            "restart",
            &["containers"],
            "[[triggers]]\nevent_type = \"container.unhealthy\"\nresource = \"api-*\"\n",
        ),
    ];
    let mut mesh = Mesh::with_max_windows(4);
    for &i in order {
        mesh.set_playbook(playbooks[i].clone());
    }
    let mut all = Vec::new();
    let mut active: Vec<(usize, RunKey)> = Vec::new();
    for (n, e) in events.iter().enumerate() {
        active.retain(|(at, key)| {
            let done = n >= at + 3;
            if done {
                mesh.run_finished(key);
            }
            !done
        });
        for d in mesh.offer(e) {
            if let Decision::Fire { run, .. } = &d {
                active.push((n, run.clone()));
            }
            all.push(d);
        }
    }
    all
}

#[test]
fn replaying_the_same_events_gives_the_same_decisions() {
    let mut rng = Rng(0x5EED);
    let mut t = 0;
    let events: Vec<TriggerEvent> = (0..3_000)
        .map(|_| {
            // Mostly forward in time, sometimes late.
            t += rng.below(20_000);
            let timestamp = t.saturating_sub(if rng.below(10) == 0 { 60_000 } else { 0 });
            let resource = ["api-1", "api-2", "web", "db", "api-3"][rng.below(5) as usize];
            let event_type =
                ["metrics.latency", "metrics.cpu", "container.unhealthy"][rng.below(3) as usize];
            event(
                event_type,
                resource,
                json!({ "value": rng.below(1000) }),
                timestamp,
            )
        })
        .collect();
    let first = replay(&[0, 1, 2, 3], &events);
    let again = replay(&[0, 1, 2, 3], &events);
    let shuffled = replay(&[3, 1, 0, 2], &events);
    assert_eq!(first, again);
    assert_eq!(first, shuffled);
    // The sequence exercises every rule.
    let fires = first.iter().filter(|d| d.is_fire()).count();
    assert!(fires > 50, "{fires}");
    for name in [
        "condition_false",
        "holding",
        "cooling_down",
        "duplicate",
        "busy",
    ] {
        assert!(
            first
                .iter()
                .any(|d| d.suppression().is_some_and(|s| s.name() == name)),
            "no `{name}` in the replay"
        );
    }
}

#[test]
fn a_late_event_completing_a_hold_fires_at_the_windows_time() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook(
        "scale",
        &[],
        &format!("{SLOW}for = \"2 events\"\ncooldown = \"10m\"\n"),
    ));
    mesh.offer(&latency("api", 900.0, 30 * MINUTE));
    // Late, but the second true event: the trigger fires at the window's clock (30m), so its
    // cooldown runs from there, not from the late timestamp.
    assert!(one(mesh.offer(&latency("api", 900.0, MINUTE))).is_fire());
    // The hold starts over after the fire; once it holds again, the cooldown applies.
    mesh.offer(&latency("api", 900.0, 38 * MINUTE));
    assert_eq!(
        reason(&one(mesh.offer(&latency("api", 900.0, 39 * MINUTE)))),
        Suppression::CoolingDown { until: 40 * MINUTE }
    );
}

#[test]
fn matching_stays_right_across_thousands_of_distinct_event_types() {
    let mut mesh = Mesh::new();
    mesh.set_playbook(playbook("any", &[], "[[triggers]]\nevent_type = \"x.*\"\n"));
    mesh.set_playbook(playbook(
        "seven",
        &[],
        "[[triggers]]\nevent_type = \"*7\"\n",
    ));
    // More event types than the mesh remembers candidate lists for, twice over.
    for round in 0..2 {
        for i in 0..10_000u64 {
            let d = mesh.offer(&event(
                &format!("x.{i}"),
                "r",
                json!({}),
                round * 10_000 + i,
            ));
            let expected = if i % 10 == 7 { 2 } else { 1 };
            assert_eq!(d.len(), expected, "x.{i}");
        }
    }
    mesh.remove_playbook("seven");
    assert_eq!(mesh.offer(&event("x.7", "r", json!({}), 0)).len(), 1);
}

#[test]
fn the_mesh_and_its_decisions_can_cross_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Mesh>();
    shareable::<Decision>();
    shareable::<RunKey>();
}

#[test]
fn ids_continue_after_those_of_an_earlier_process() {
    let mut mesh = grace_mesh::Mesh::new();
    mesh.continue_ids_after(41);
    mesh.set_playbook(grace_mesh::PlaybookTriggers {
        playbook: "p".into(),
        triggers: grace_model::Manifest::parse(
            "manifest_version = 1\nname = \"p\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"p.wasm\"\n[[triggers]]\nevent_type = \"e\"\n",
        )
        .unwrap()
        .triggers,
        locks: vec!["scaling".into()],
    });
    let event = grace_model::TriggerEvent::from_json(
        r#"{"event_type":"e","source":"s","actor":"a","resource":"r","timestamp":1}"#,
        0,
    )
    .unwrap();
    let fired = mesh.offer(&event);
    match &fired[0] {
        grace_mesh::Decision::Fire { run, .. } => assert_eq!(run.id(), 42),
        other => panic!("expected a fire, got {other:?}"),
    }
}

#[test]
fn offer_counting_counts_false_conditions_and_returns_the_rest() {
    let manifest = grace_model::Manifest::parse(
        "manifest_version = 1\nname = \"p\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"p.wasm\"\n\
         [[triggers]]\nevent_type = \"e\"\ncondition = \"value > 5\"\n[[triggers]]\nevent_type = \"e\"\ncondition = \"value > 0\"\n",
    )
    .unwrap();
    let mut counting = grace_mesh::Mesh::new();
    counting.set_playbook(grace_mesh::PlaybookTriggers::from_manifest(&manifest));
    let mut describing = grace_mesh::Mesh::new();
    describing.set_playbook(grace_mesh::PlaybookTriggers::from_manifest(&manifest));
    let event = grace_model::TriggerEvent::from_json(
        r#"{"event_type":"e","source":"s","actor":"a","resource":"r","payload":{"value":1},"timestamp":1}"#,
        0,
    )
    .unwrap();
    let mut decisions = Vec::new();
    let condition_false = counting.offer_counting(&event, None, &mut decisions);
    let all = describing.offer(&event);
    assert_eq!(condition_false, 1);
    assert_eq!(all.len(), 2);
    assert_eq!(decisions.len(), 1);
    assert_eq!(
        decisions[0], all[1],
        "the rest is decided exactly as `offer` decides it"
    );
}
