//! Guardrails against hostile playbooks: many small steps that add up past a budget or below a
//! minimum, loops of restarts, out-of-hours actions in a freeze window; and the change history
//! surviving a restart of the host.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use grace_trust::{
    Action, Change, Invariant, Outcome, Principal, Request, Resource, State, TrustConfig,
    TrustCore, TrustError,
};
use time::macros::datetime;

const MINUTE: u64 = 60_000;
/// 2025-06-18 was a Wednesday.
const WEDNESDAY_10AM: u64 = millis(datetime!(2025-06-18 10:00 UTC));
const SATURDAY_3AM: u64 = millis(datetime!(2025-06-21 03:00 UTC));

const fn millis(t: time::OffsetDateTime) -> u64 {
    (t.unix_timestamp() * 1000) as u64
}

fn core(guardrails: &str) -> TrustCore {
    TrustCore::in_memory(TrustConfig::from_toml(guardrails).unwrap()).unwrap()
}

fn hostile() -> Principal {
    Principal::playbook("hostile", "sha256:66", "6.6.6")
}

fn web() -> Resource {
    Resource::group("web-prod").environment("prod")
}

fn set_capacity(state: State, to: u32, at: u64) -> Request {
    Request::new(
        hostile(),
        Action::from_cedar_id("scaling::SetDesiredCapacity").unwrap(),
        web(),
        at,
    )
    .with_state(state)
    .with_change(Change::Capacity { to })
}

fn restart(container: &str, state: State, at: u64) -> Request {
    Request::new(
        hostile(),
        Action::from_cedar_id("containers::Restart").unwrap(),
        Resource::container(container).label("app", "web"),
        at,
    )
    .with_state(state)
    .with_change(Change::Restart { instances: 1 })
}

#[test]
fn many_small_steps_cannot_add_up_past_the_capacity_budget() {
    let trust = core(
        r#"
        [[guardrail]]
        name = "web budget"
        match = "web-*"
        max_capacity = 10
        "#,
    );
    let mut capacity = 6;
    let mut at = WEDNESDAY_10AM;
    loop {
        let d = trust.decide(&set_capacity(
            State::new(capacity, capacity),
            capacity + 1,
            at,
        ));
        if d.outcome != Outcome::Allow {
            assert_eq!(capacity, 10, "stopped exactly at the budget");
            let v = d.guardrail.unwrap();
            assert_eq!(v.guardrail, "web budget");
            assert_eq!(
                v.invariant,
                Invariant::MaxCapacity {
                    max: 10,
                    before: Some(10),
                    after: Some(11)
                }
            );
            assert_eq!(
                v.message,
                "guardrail `web budget` max_capacity: `web-prod` would go from 10 to 11 instances, above the budget of 10"
            );
            assert!(d.reason.starts_with(&format!("denied: {}", v.message)));
            break;
        }
        capacity += 1;
        at += MINUTE;
        assert!(capacity <= 10, "the budget was exceeded");
    }
    // One big jump is no different.
    let d = trust.decide(&set_capacity(State::new(6, 6), 50, at));
    assert_eq!(d.outcome, Outcome::Deny);
}

#[test]
fn many_small_steps_cannot_take_a_group_below_min_healthy() {
    let trust = core(
        r#"
        [[guardrail]]
        kind = "group"
        environment = "prod"
        min_healthy = 3
        "#,
    );
    let mut capacity = 6;
    let mut at = WEDNESDAY_10AM;
    while trust
        .decide(&set_capacity(
            State::new(capacity, capacity),
            capacity - 1,
            at,
        ))
        .is_allowed()
    {
        capacity -= 1;
        at += MINUTE;
    }
    assert_eq!(capacity, 3, "scaled in down to the minimum and no further");
    let d = trust.decide(&set_capacity(State::new(3, 3), 2, at));
    let v = d.guardrail.unwrap();
    assert_eq!(
        v.guardrail, "#1",
        "an unnamed guardrail is named by its position"
    );
    assert_eq!(
        v.invariant,
        Invariant::MinHealthy {
            min: 3,
            before: Some(3),
            after: Some(2)
        }
    );
}

#[test]
fn scaling_in_assumes_the_healthy_instances_are_the_ones_removed() {
    let trust = core("[[guardrail]]\nmin_healthy = 3");
    // 6 desired, only 4 healthy: going to 5 might remove a healthy one, leaving 4: fine.
    assert!(
        trust
            .decide(&set_capacity(State::new(6, 4), 5, WEDNESDAY_10AM))
            .is_allowed()
    );
    // Going to 2 leaves at most 2 healthy.
    assert!(
        !trust
            .decide(&set_capacity(State::new(6, 4), 2, WEDNESDAY_10AM))
            .is_allowed()
    );
}

#[test]
fn restarting_one_container_after_another_cannot_take_the_service_below_min_healthy() {
    let trust = core(
        r#"
        [[guardrail]]
        kind = "container"
        labels = { app = "web" }
        min_healthy = 2
        "#,
    );
    // The engine reports the service's state; restarting containers are not healthy.
    assert!(
        trust
            .decide(&restart("web-1", State::new(3, 3), WEDNESDAY_10AM))
            .is_allowed()
    );
    let d = trust.decide(&restart("web-2", State::new(3, 2), WEDNESDAY_10AM + 1000));
    assert_eq!(d.outcome, Outcome::Deny);
    assert!(
        d.guardrail
            .unwrap()
            .message
            .contains("would go from 2 to 1 healthy instances, below the minimum of 2")
    );
}

#[test]
fn a_loop_of_restarts_hits_max_changes_per_hour() {
    let trust = core(
        r#"
        [[guardrail]]
        name = "restart storm"
        kind = "container"
        max_changes_per_hour = 3
        "#,
    );
    let state = State::new(4, 4);
    let mut at = WEDNESDAY_10AM;
    for _ in 0..3 {
        let r = restart("web-1", state, at);
        assert!(trust.decide(&r).is_allowed());
        trust.record_change(&r.resource, at).unwrap();
        at += 5 * MINUTE;
    }
    let d = trust.decide(&restart("web-1", state, at));
    assert_eq!(d.outcome, Outcome::Deny);
    let v = d.guardrail.unwrap();
    assert_eq!(
        v.invariant,
        Invariant::MaxChangesPerHour { max: 3, count: 3 }
    );
    assert_eq!(
        v.message,
        "guardrail `restart storm` max_changes_per_hour: `web-1` already changed 3 times in the last hour, the maximum is 3"
    );
    // Another container has its own count.
    assert!(trust.decide(&restart("web-2", state, at)).is_allowed());
    // An hour after the first restart, one slot is free again.
    let later = WEDNESDAY_10AM + 60 * MINUTE;
    assert!(trust.decide(&restart("web-1", state, later)).is_allowed());
    assert!(
        !trust
            .decide(&restart("web-1", state, later - 1))
            .is_allowed()
    );
}

#[test]
fn the_change_count_survives_a_restart_of_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.redb");
    let config = r#"
        [[guardrail]]
        kind = "container"
        max_changes_per_hour = 2
    "#;
    let open = || {
        let db =
            Arc::new(grace_ledger::Database::create(&path, grace_ledger::Recovery::Quick).unwrap());
        TrustCore::open(db, TrustConfig::from_toml(config).unwrap()).unwrap()
    };
    let r = restart("web-1", State::new(4, 4), WEDNESDAY_10AM);
    {
        let trust = open();
        trust.record_change(&r.resource, WEDNESDAY_10AM).unwrap();
        trust.record_change(&r.resource, WEDNESDAY_10AM).unwrap();
    }
    let trust = open();
    assert_eq!(
        trust.recent_changes(&r.resource),
        [WEDNESDAY_10AM, WEDNESDAY_10AM],
        "two changes in the same millisecond both count"
    );
    let d = trust.decide(&restart("web-1", State::new(4, 4), WEDNESDAY_10AM + MINUTE));
    assert_eq!(
        d.guardrail.map(|v| v.invariant),
        Some(Invariant::MaxChangesPerHour { max: 2, count: 2 })
    );
}

#[test]
fn old_changes_are_pruned_from_the_history() {
    let trust = core("[[guardrail]]\nmax_changes_per_hour = 5");
    let r = web();
    for i in 0..10 {
        trust
            .record_change(&r, WEDNESDAY_10AM + i * 20 * MINUTE)
            .unwrap();
    }
    assert_eq!(
        trust.recent_changes(&r),
        [
            WEDNESDAY_10AM + 140 * MINUTE,
            WEDNESDAY_10AM + 160 * MINUTE,
            WEDNESDAY_10AM + 180 * MINUTE
        ]
    );
}

#[test]
fn out_of_hours_changes_are_refused_in_a_weekend_freeze() {
    let trust = core(
        r#"
        [[guardrail]]
        name = "weekend"
        freeze = ["Fri 16:00-Mon 08:00 UTC"]
        "#,
    );
    let d = trust.decide(&restart("web-1", State::new(3, 3), SATURDAY_3AM));
    assert_eq!(d.outcome, Outcome::Deny);
    let v = d.guardrail.unwrap();
    assert_eq!(
        v.invariant,
        Invariant::Freeze {
            window: "Fri 16:00-Mon 08:00 UTC".into()
        }
    );
    assert_eq!(
        v.message,
        "guardrail `weekend`: `web-1` is frozen (Fri 16:00-Mon 08:00 UTC): no change may run"
    );
    // The same change on a Wednesday morning runs; reads run during the freeze.
    assert!(
        trust
            .decide(&restart("web-1", State::new(3, 3), WEDNESDAY_10AM))
            .is_allowed()
    );
    let read = Request::new(
        hostile(),
        Action::from_cedar_id("scaling::DescribeGroup").unwrap(),
        web(),
        SATURDAY_3AM,
    );
    assert!(trust.decide(&read).is_allowed());
}

#[test]
fn nightly_and_explicit_freeze_windows_hold() {
    let trust = core(
        r#"
        [[guardrail]]
        freeze = ["daily 22:00-06:00", "2025-12-24T00:00:00Z/2025-12-27T00:00:00Z"]
        "#,
    );
    let at = |t: time::OffsetDateTime| millis(t);
    for (when, frozen) in [
        (at(datetime!(2025-06-18 23:30 UTC)), true),
        (at(datetime!(2025-06-19 05:59 UTC)), true),
        (at(datetime!(2025-06-19 06:00 UTC)), false),
        (at(datetime!(2025-12-25 12:00 UTC)), true),
        (at(datetime!(2025-12-27 12:00 UTC)), false),
    ] {
        let d = trust.decide(&set_capacity(State::new(2, 2), 3, when));
        assert_eq!(d.outcome == Outcome::Deny, frozen, "{when}: {}", d.reason);
    }
}

#[test]
fn remediation_is_never_blocked_by_the_invariant_it_repairs() {
    let trust = core(
        r#"
        [[guardrail]]
        min_healthy = 3
        max_capacity = 10
        "#,
    );
    // Below the minimum: scaling out helps.
    assert!(
        trust
            .decide(&set_capacity(State::new(2, 1), 4, WEDNESDAY_10AM))
            .is_allowed()
    );
    // Above the budget: scaling in helps.
    assert!(
        trust
            .decide(&set_capacity(State::new(14, 14), 12, WEDNESDAY_10AM))
            .is_allowed()
    );
    // But restarting while below the minimum makes it worse.
    assert!(
        !trust
            .decide(&restart("web-1", State::new(3, 2), WEDNESDAY_10AM))
            .is_allowed()
    );
}

#[test]
fn unknown_state_fails_closed() {
    let trust = core("[[guardrail]]\nmin_healthy = 1");
    let d = trust.decide(&restart("web-1", State::default(), WEDNESDAY_10AM));
    assert_eq!(d.outcome, Outcome::Deny);
    assert!(
        d.reason
            .contains("the healthy count of `web-1` is unknown, so keeping at least 1 healthy cannot be checked"),
        "{}",
        d.reason
    );
}

#[test]
fn a_rolling_restart_takes_down_a_quarter_of_the_replicas() {
    let trust = core("[[guardrail]]\nkind = \"deployment\"\nmin_healthy = 4");
    let rollout = |replicas: u32| {
        Request::new(
            hostile(),
            Action::from_cedar_id("kubernetes::RolloutRestart").unwrap(),
            Resource::deployment("shop", "web"),
            WEDNESDAY_10AM,
        )
        .with_state(State::new(replicas, replicas))
        .with_change(Change::rolling_restart(replicas))
    };
    assert!(!trust.decide(&rollout(4)).is_allowed(), "4 → 3 available");
    assert!(trust.decide(&rollout(5)).is_allowed(), "5 → 4 available");
    assert!(
        trust.decide(&rollout(3)).is_allowed(),
        "3 replicas: surge only, none down"
    );
}

#[test]
fn guardrails_only_cover_what_they_match() {
    let trust = core(
        r#"
        [[guardrail]]
        kind = "group"
        match = "db-*"
        environment = "prod"
        freeze = ["Mon 00:00-Sun 23:59"]
        "#,
    );
    let group = |name: &str, env: &str| Resource::group(name).environment(env);
    let change = |r: Resource| {
        Request::new(
            hostile(),
            Action::from_cedar_id("scaling::SetDesiredCapacity").unwrap(),
            r,
            WEDNESDAY_10AM,
        )
        .with_state(State::new(2, 2))
        .with_change(Change::Capacity { to: 3 })
    };
    assert!(!trust.decide(&change(group("db-main", "PROD"))).is_allowed());
    assert!(
        trust
            .decide(&change(group("db-main", "staging")))
            .is_allowed()
    );
    assert!(trust.decide(&change(group("web", "prod"))).is_allowed());
    assert!(
        trust
            .decide(&change(Resource::group("db-main")))
            .is_allowed(),
        "no environment given"
    );
}

#[test]
fn invalid_guardrail_configurations_are_rejected_saying_why() {
    let cases = [
        (
            "[[guardrail]]\nfreeze = [\"Fry 16:00-Mon 08:00\"]",
            "`Fry` is not a weekday",
        ),
        (
            "[[guardrail]]\nmin_healty = 2",
            "unknown field `min_healty`",
        ),
        ("[[guardrail]]\nname = \"x\"", "sets no invariant"),
        (
            "[[guardrail]]\nmax_changes_per_hour = 0",
            "forbids every change",
        ),
        (
            "[[guardrail]]\nname = \"a\"\nmin_healthy = 1\n[[guardrail]]\nname = \"a\"\nmin_healthy = 2",
            "two guardrails are named `a`",
        ),
        ("[risk.weights]\nblast_radius = -1.0", "non-negative"),
    ];
    for (toml, expected) in cases {
        let e = TrustConfig::from_toml(toml)
            .and_then(TrustCore::in_memory)
            .unwrap_err();
        assert!(
            matches!(e, TrustError::Config(_)) && e.to_string().contains(expected),
            "{toml}: expected {expected:?}, got {e}"
        );
    }
}

#[test]
fn guardrails_run_before_policies_and_override_them() {
    let trust = core("[[guardrail]]\nmax_capacity = 5");
    trust
        .policies()
        .add("base", grace_trust::BASELINE, "test")
        .unwrap();
    let d = trust.decide(&set_capacity(State::new(5, 5), 6, WEDNESDAY_10AM));
    assert_eq!(d.outcome, Outcome::Deny);
    assert!(
        d.policies.is_empty(),
        "no policy decided: the guardrail did"
    );
    let d = trust.decide(&set_capacity(State::new(4, 4), 5, WEDNESDAY_10AM));
    assert_eq!(d.policies, ["base/within-grants"]);
    assert!(d.reason.ends_with("; guardrails hold"), "{}", d.reason);
}

fn message(at: u64) -> Request {
    let channel = grace_model::channel::Channel::parse("slack:#ops").unwrap();
    Request::new(
        hostile(),
        Action::from_cedar_id("notify::Send").unwrap(),
        Resource::channel(&channel),
        at,
    )
}

#[test]
fn a_freeze_does_not_silence_messages_and_a_channel_guardrail_paces_them() {
    // A guardrail without a kind guards what runs: messages about it still go out, with no risk.
    let trust = core(
        r#"
        [[guardrail]]
        name = "weekend"
        freeze = ["Fri 16:00-Mon 08:00 UTC"]
        "#,
    );
    let d = trust.decide(&message(SATURDAY_3AM));
    assert!(d.is_allowed(), "{}", d.reason);
    assert_eq!(d.risk.score, 0);
    // One that names channels covers them: three messages an hour to a channel at most.
    let trust = core(
        r#"
        [[guardrail]]
        name = "quiet channels"
        kind = "channel"
        max_changes_per_hour = 3
        "#,
    );
    for i in 0..3 {
        let m = message(WEDNESDAY_10AM + i * MINUTE);
        assert!(trust.decide(&m).is_allowed());
        trust.record_change(&m.resource, m.at_millis).unwrap();
    }
    let d = trust.decide(&message(WEDNESDAY_10AM + 4 * MINUTE));
    assert_eq!(d.outcome, Outcome::Deny, "{}", d.reason);
    assert_eq!(d.guardrail.unwrap().guardrail, "quiet channels");
}
