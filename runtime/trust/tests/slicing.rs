//! Slicing and indexing change how many policies are evaluated, never the answer: for many
//! generated policies and requests, the trust core's deciding policies are exactly those of a
//! bare `cedar_policy::Authorizer::is_authorized` call on the whole policy set.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;

use cedar_policy::{Authorizer, Decision as CedarDecision};
use grace_trust::bench_support::{cedar_parts, evaluated};
use grace_trust::{
    Action, Change, Outcome, Principal, Request, Resource, State, TrustConfig, TrustCore,
};

/// A small deterministic generator (no external crate, the same sequence on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn policies(rng: &mut Lcg) -> String {
    let mut p = String::from("permit(principal, action in Grace::Action::\"read\", resource);\n");
    for i in 0..400 {
        let line = match rng.next(6) {
            0 => format!(
                r#"permit(principal == Grace::Playbook::"pb-{}", action in Grace::Action::"change", resource) when {{ resource.environment == "{}" }};"#,
                rng.next(8),
                ["prod", "staging", "dev"][rng.next(3) as usize]
            ),
            1 => format!(
                r#"forbid(principal, action == Grace::Action::"containers::Restart", resource) when {{ resource.hasTag("app") && resource.getTag("app") == "app-{}" && context.hour >= {} }};"#,
                rng.next(12),
                rng.next(24)
            ),
            2 => format!(
                r#"permit(principal, action in Grace::Action::"containers", resource) when {{ resource has tier && resource.tier == "t{}" && context.risk_score < {} }};"#,
                rng.next(6),
                rng.next(100)
            ),
            3 => format!(
                r#"permit(principal, action, resource == Grace::Container::"c-{}") when {{ context.change_size <= {} }};"#,
                rng.next(20),
                rng.next(3)
            ),
            4 => format!(
                r#"forbid(principal == Grace::User::"u{}", action in Grace::Action::"change", resource) unless {{ principal.scopes.contains("operate") }};"#,
                rng.next(3)
            ),
            _ => format!(
                r#"@decision("allow") permit(principal is Grace::Playbook, action == Grace::Action::"scaling::SetDesiredCapacity", resource == Grace::Group::"g-{}") when {{ resource.name == "g-{}" || context.change_delta < {} }};"#,
                rng.next(5),
                rng.next(5),
                rng.next(4)
            ),
        };
        writeln!(p, "@id(\"p{i}\")\n{line}").unwrap();
    }
    p
}

fn request(rng: &mut Lcg) -> Request {
    let principal = if rng.next(5) == 0 {
        let scopes = if rng.next(2) == 0 {
            vec!["operate".to_owned()]
        } else {
            vec![]
        };
        Principal::user(format!("u{}", rng.next(3)), scopes)
    } else {
        Principal::playbook(format!("pb-{}", rng.next(8)), "sha256:00", "1")
    };
    let env = ["prod", "staging", "dev"][rng.next(3) as usize];
    let (action, resource, change) = match rng.next(5) {
        0 => (
            Action::from_cedar_id("scaling::SetDesiredCapacity").unwrap(),
            Resource::group(format!("g-{}", rng.next(5))).environment(env),
            Change::Capacity {
                to: rng.next(8) as u32,
            },
        ),
        1 => (
            Action::from_cedar_id("containers::List").unwrap(),
            Resource::service([("app", format!("app-{}", rng.next(12)))]).environment(env),
            Change::None,
        ),
        n => {
            let action = [
                Action::from_cedar_id("containers::Restart").unwrap(),
                Action::from_cedar_id("containers::Stop").unwrap(),
                Action::from_cedar_id("containers::Logs").unwrap(),
            ][n as usize - 2];
            let mut r = Resource::container(format!("c-{}", rng.next(20)))
                .environment(env)
                .label("app", format!("app-{}", rng.next(12)));
            if rng.next(3) > 0 {
                r = r.tier(format!("t{}", rng.next(6)));
            }
            let change = if action.is_change() {
                Change::Restart { instances: 1 }
            } else {
                Change::None
            };
            (action, r, change)
        }
    };
    let at = 1_750_000_000_000 + rng.next(7 * 24) * 3_600_000;
    Request::new(principal, action, resource, at)
        .with_state(State::new(4, 4))
        .with_change(change)
}

#[test]
fn slicing_and_indexing_give_cedars_answer() {
    let mut rng = Lcg(7);
    let trust = TrustCore::in_memory(TrustConfig::default()).unwrap();
    trust
        .policies()
        .add("gen", &policies(&mut rng), "test")
        .unwrap();
    let active = trust.policies().active();
    let authorizer = Authorizer::new();
    let (mut outcomes, mut evaluated_total) = ([0usize; 2], 0);
    for n in 0..1000 {
        let request = request(&mut rng);
        let d = trust.decide(&request);
        let (cedar_request, entities, all) = cedar_parts(&active, &request, d.risk.score).unwrap();
        let bare = authorizer.is_authorized(&cedar_request, &all, &entities);
        assert_eq!(bare.diagnostics().errors().count(), 0);
        let mut reasons: Vec<String> = bare
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        reasons.sort();
        let expected = match bare.decision() {
            CedarDecision::Allow => Outcome::Allow,
            CedarDecision::Deny => Outcome::Deny,
        };
        assert_eq!(
            (d.outcome, &d.policies),
            (expected, &reasons),
            "request {n}: {request:?}\n{}",
            d.reason
        );
        outcomes[usize::from(d.outcome == Outcome::Allow)] += 1;
        evaluated_total += evaluated(&active, &request).unwrap();
    }
    assert!(
        outcomes[0] > 100 && outcomes[1] > 100,
        "both outcomes are exercised: {outcomes:?}"
    );
    assert!(
        evaluated_total / 1000 < 100,
        "slicing evaluates far fewer than the 401 policies: {}",
        evaluated_total / 1000
    );
}
