//! Learning in the trust core: a playbook whose last runs on a resource did not clear their
//! signal needs one person's approval for a change the policies allow, until a run clears it;
//! a forbid, a guardrail or a read are untouched, and the risk score counts the streak.

#![allow(clippy::unwrap_used)]

use grace_trust::{
    Action, Change, FactorKind, History, Learned, Outcome, Principal, Request, Resource, State,
    TrustConfig, TrustCore,
};

/// 2025-06-18T10:00Z, a Wednesday.
const NOW: u64 = 1_750_240_800_000;

fn core(config: &str) -> TrustCore {
    TrustCore::in_memory(TrustConfig::from_toml(config).unwrap()).unwrap()
}

fn learned(streak: u32) -> History {
    History {
        learned: Some(Learned {
            about: "api-service".into(),
            judged: streak + 1,
            cleared: 1,
            not_cleared_streak: streak,
        }),
        ..Default::default()
    }
}

fn scale(history: History) -> Request {
    Request::new(
        Principal::playbook("never-fixes", "sha256:00", "1.0.0"),
        Action::from_cedar_id("scaling::SetDesiredCapacity").unwrap(),
        Resource::group("api-asg").environment("staging"),
        NOW,
    )
    .with_state(State::new(4, 4))
    .with_change(Change::Capacity { to: 5 })
    .with_history(history)
}

fn describe(history: History) -> Request {
    Request::new(
        Principal::playbook("never-fixes", "sha256:00", "1.0.0"),
        Action::from_cedar_id("scaling::DescribeGroup").unwrap(),
        Resource::group("api-asg"),
        NOW,
    )
    .with_history(history)
}

#[test]
fn a_change_needs_approval_once_the_last_runs_in_a_row_did_not_clear_their_signal() {
    let trust = core("");
    assert_eq!(trust.decide(&scale(learned(2))).outcome, Outcome::Allow);
    let decision = trust.decide(&scale(learned(3)));
    assert_eq!(decision.outcome, Outcome::RequireApproval { approvers: 1 });
    assert!(
        decision.reason.starts_with(
            "requires approval by one approver: the last 3 runs of `never-fixes` on `api-service` did not clear their signal"
        ),
        "{}",
        decision.reason
    );
    // Once a run clears its signal, the streak is over.
    assert_eq!(trust.decide(&scale(learned(0))).outcome, Outcome::Allow);
    assert_eq!(
        trust.decide(&describe(learned(9))).outcome,
        Outcome::Allow,
        "reads are never held"
    );
}

#[test]
fn the_learned_rule_only_raises_an_allow_and_can_be_turned_off() {
    let forbidding = core("");
    forbidding
        .policies()
        .add(
            "freeze",
            "@id(\"freeze\") forbid(principal, action, resource);",
            "test",
        )
        .unwrap();
    assert_eq!(
        forbidding.decide(&scale(learned(5))).outcome,
        Outcome::Deny,
        "a forbid still denies"
    );
    let guarded = core("[[guardrail]]\nmax_capacity = 4\n");
    assert_eq!(guarded.decide(&scale(learned(5))).outcome, Outcome::Deny);
    let off = core("[learning]\napproval_after = 0\n");
    assert_eq!(off.decide(&scale(learned(50))).outcome, Outcome::Allow);
    assert!(TrustConfig::from_toml("[learning]\nafter = 3\n").is_err());
}

#[test]
fn the_risk_score_counts_the_runs_in_a_row_that_did_not_clear_once_with_failures() {
    let trust = core("");
    let factor = |history: History| {
        let risk = trust.decide(&scale(history)).risk;
        risk.factors
            .into_iter()
            .find(|f| f.kind == FactorKind::RecentFailures)
            .unwrap()
    };
    let streak = factor(learned(2));
    assert_eq!(streak.value, 0.75);
    assert!(
        streak
            .explanation
            .ends_with("its last 2 runs on `api-service` did not clear their signal"),
        "{}",
        streak.explanation
    );
    // A run that failed and did not clear is one failure, not two.
    let both = factor(History {
        recent_failures: 2,
        ..learned(2)
    });
    assert_eq!(both.value, 0.75);
}
