//! Cedar policies as the trust core applies them: a table of requests and the outcome and
//! deciding policies each must get, malformed policies rejected with line and column, schema
//! violations rejected naming the problem, GRACE's annotations checked on load.

#![allow(clippy::unwrap_used)]

use grace_trust::bench_support::validate_against_schema;
use grace_trust::{
    Action, Change, History, Outcome, PolicyError, Principal, Request, Resource, ResourceKind,
    Signal, State, TrustConfig, TrustCore, TrustError,
};
use time::macros::datetime;

/// 2025-06-18 was a Wednesday, 2025-06-20 a Friday.
const WEDNESDAY_2PM: u64 = millis(datetime!(2025-06-18 14:00 UTC));
const FRIDAY_5PM: u64 = millis(datetime!(2025-06-20 17:00 UTC));

const fn millis(t: time::OffsetDateTime) -> u64 {
    (t.unix_timestamp() * 1000) as u64
}

const POLICIES: &str = r#"
@id("reads")
permit(principal, action in Grace::Action::"read", resource);

@id("restart-frontends")
@reason("frontend restarts are routine")
permit(principal is Grace::Playbook, action == Grace::Action::"containers::Restart", resource is Grace::Container)
when { resource has tier && resource.tier == "frontend" };

@id("scale-staging")
permit(principal, action in Grace::Action::"capacity", resource)
when { resource.environment == "staging" };

@id("scale-prod-small")
permit(principal, action in Grace::Action::"capacity", resource)
when { resource.environment == "prod" && context.change_percent <= 50 };

@id("prod-big-needs-approval")
@decision("require_approval")
permit(principal, action in Grace::Action::"capacity", resource)
when { resource.environment == "prod" && context.change_percent > 50 };

@id("two-person-rule")
@decision("require_approval")
@approvers("2")
@reason("risk above 80")
permit(principal, action in Grace::Action::"change", resource)
when { context.risk_score > 80 };

@id("friday-freeze")
@reason("no production change on Friday afternoons")
forbid(principal, action in Grace::Action::"change", resource)
when { resource.environment == "prod" && context.weekday == "Fri" && context.hour >= 16 };

@id("no-experimental")
forbid(principal == Grace::Playbook::"experimental", action in Grace::Action::"change", resource);

@id("db-needs-dba")
forbid(principal, action in Grace::Action::"kubernetes", resource is Grace::Deployment)
when { resource.namespace == "db" }
unless { principal is Grace::User && principal.scopes.contains("dba") };

@id("incident-restarts")
permit(principal, action == Grace::Action::"kubernetes::RolloutRestart", resource)
when { context has incident_id && context has signal_confidence && context.signal_confidence >= 70 };
"#;

fn trust() -> TrustCore {
    let t = TrustCore::in_memory(TrustConfig::default()).unwrap();
    t.policies().add("t", POLICIES, "test").unwrap();
    t
}

fn playbook(name: &str) -> Principal {
    Principal::playbook(name, "sha256:00", "1.0.0")
}

fn scale(group: Resource, from: u32, to: u32, at: u64) -> Request {
    Request::new(
        playbook("autoscale"),
        Action::from_cedar_id("scaling::SetDesiredCapacity").unwrap(),
        group,
        at,
    )
    .with_state(State::new(from, from))
    .with_change(Change::Capacity { to })
}

fn restart(container: Resource, principal: Principal) -> Request {
    Request::new(
        principal,
        Action::from_cedar_id("containers::Restart").unwrap(),
        container,
        WEDNESDAY_2PM,
    )
    .with_state(State::new(3, 3))
    .with_change(Change::Restart { instances: 1 })
}

fn require(approvers: u8) -> Outcome {
    Outcome::RequireApproval { approvers }
}

#[test]
fn policy_decisions_follow_the_table() {
    let prod = || Resource::group("web-prod").environment("prod");
    let staging = || Resource::group("web-staging").environment("staging");
    let deployment = |ns: &str| Resource::deployment(ns, "api").environment("prod");
    let risky = scale(prod().dependents(4), 8, 1, WEDNESDAY_2PM).with_history(History {
        recent_failures: 3,
        last_deployment_millis: Some(WEDNESDAY_2PM - 60_000),
        ..Default::default()
    });
    let table: Vec<(&str, Request, Outcome, &[&str])> = vec![
        (
            "reads are permitted",
            Request::new(
                playbook("any"),
                Action::from_cedar_id("scaling::DescribeGroup").unwrap(),
                prod(),
                WEDNESDAY_2PM,
            ),
            Outcome::Allow,
            &["t/reads"],
        ),
        (
            "a playbook may restart a frontend container",
            restart(
                Resource::container("web-1")
                    .tier("frontend")
                    .environment("prod"),
                playbook("heal"),
            ),
            Outcome::Allow,
            &["t/restart-frontends"],
        ),
        (
            "restarting a backend container is not permitted by anything",
            restart(
                Resource::container("api-1").tier("backend"),
                playbook("heal"),
            ),
            Outcome::Deny,
            &[],
        ),
        (
            "a container without a tier is not a frontend",
            restart(Resource::container("api-1"), playbook("heal")),
            Outcome::Deny,
            &[],
        ),
        (
            "users are not playbooks: the frontend permit does not cover them",
            restart(
                Resource::container("web-1").tier("frontend"),
                Principal::user("alice", ["operate".to_owned()]),
            ),
            Outcome::Deny,
            &[],
        ),
        (
            "scaling staging is permitted at any size",
            scale(staging(), 2, 10, WEDNESDAY_2PM),
            Outcome::Allow,
            &["t/scale-staging"],
        ),
        (
            "scaling prod by half is permitted",
            scale(prod(), 4, 6, WEDNESDAY_2PM),
            Outcome::Allow,
            &["t/scale-prod-small"],
        ),
        (
            "doubling prod needs one approver",
            scale(prod(), 4, 8, WEDNESDAY_2PM),
            require(1),
            &["t/prod-big-needs-approval"],
        ),
        (
            "a change riskier than 80 needs two approvers, the most any matching policy asks",
            risky,
            require(2),
            &["t/prod-big-needs-approval", "t/two-person-rule"],
        ),
        (
            "the Friday freeze forbids what another policy permits",
            scale(prod(), 4, 5, FRIDAY_5PM),
            Outcome::Deny,
            &["t/friday-freeze"],
        ),
        (
            "the Friday freeze leaves staging alone",
            scale(staging(), 4, 5, FRIDAY_5PM),
            Outcome::Allow,
            &["t/scale-staging"],
        ),
        (
            "an untrusted playbook may change nothing",
            Request::new(
                playbook("experimental"),
                Action::from_cedar_id("scaling::SetDesiredCapacity").unwrap(),
                staging(),
                WEDNESDAY_2PM,
            )
            .with_state(State::new(2, 2))
            .with_change(Change::Capacity { to: 3 }),
            Outcome::Deny,
            &["t/no-experimental"],
        ),
        (
            "playbooks may not touch the db namespace",
            Request::new(
                playbook("heal"),
                Action::from_cedar_id("kubernetes::GetDeployment").unwrap(),
                deployment("db"),
                WEDNESDAY_2PM,
            ),
            Outcome::Deny,
            &["t/db-needs-dba"],
        ),
        (
            "a dba may read the db namespace",
            Request::new(
                Principal::user("dana", ["dba".to_owned()]),
                Action::from_cedar_id("kubernetes::GetDeployment").unwrap(),
                deployment("db"),
                WEDNESDAY_2PM,
            ),
            Outcome::Allow,
            &["t/reads"],
        ),
        (
            "a rollout restart for a confident incident signal is permitted",
            Request::new(
                playbook("heal"),
                Action::from_cedar_id("kubernetes::RolloutRestart").unwrap(),
                deployment("web"),
                WEDNESDAY_2PM,
            )
            .with_state(State::new(8, 8))
            .with_change(Change::rolling_restart(8))
            .with_signal(Signal {
                anomaly_score: Some(0.9),
                confidence: Some(0.75),
                incident_id: Some("INC-42".into()),
            }),
            Outcome::Allow,
            &["t/incident-restarts"],
        ),
        (
            "a rollout restart on a doubtful signal is not",
            Request::new(
                playbook("heal"),
                Action::from_cedar_id("kubernetes::RolloutRestart").unwrap(),
                deployment("web"),
                WEDNESDAY_2PM,
            )
            .with_state(State::new(8, 8))
            .with_change(Change::rolling_restart(8))
            .with_signal(Signal {
                anomaly_score: Some(0.9),
                confidence: Some(0.4),
                incident_id: Some("INC-42".into()),
            }),
            Outcome::Deny,
            &[],
        ),
    ];
    let trust = trust();
    let mut failures = Vec::new();
    for (name, request, outcome, policies) in table {
        let d = trust.decide(&request);
        if d.outcome != outcome || d.policies != policies {
            failures.push(format!(
                "{name}: expected {outcome:?} by {policies:?}, got {:?} by {:?} ({})",
                d.outcome, d.policies, d.reason
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_reason_names_the_deciding_policy_its_reason_and_the_risk() {
    let d = trust().decide(&scale(
        Resource::group("web-prod").environment("prod"),
        4,
        5,
        FRIDAY_5PM,
    ));
    assert_eq!(d.outcome, Outcome::Deny);
    assert!(
        d.reason.starts_with(
            "denied by policy `t/friday-freeze` (\"no production change on Friday afternoons\")"
        ),
        "{}",
        d.reason
    );
    assert!(
        d.reason.contains(&format!("risk {}/100", d.risk.score)),
        "{}",
        d.reason
    );
    assert!(d.reason.contains("environment `prod`"), "{}", d.reason);
}

#[test]
fn the_default_deny_says_what_nothing_permitted() {
    let d = trust().decide(&restart(Resource::container("api-1"), playbook("heal")));
    assert_eq!(
        d.reason.split(';').next().unwrap(),
        "denied: no policy permits `containers::Restart` on `container/api-1` by playbook `heal` (default deny)"
    );
}

#[test]
fn with_no_policy_loaded_the_grants_decide() {
    let trust = TrustCore::in_memory(TrustConfig::default()).unwrap();
    let d = trust.decide(&restart(Resource::container("api-1"), playbook("heal")));
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(
        d.reason
            .starts_with("allowed: no trust policies are loaded"),
        "{}",
        d.reason
    );
    assert_eq!(d.policy_revision, 0);
}

#[test]
fn a_resource_of_the_wrong_kind_is_denied_rather_than_guessed() {
    let d = trust().decide(&Request::new(
        playbook("heal"),
        Action::from_cedar_id("containers::Restart").unwrap(),
        Resource::group("web"),
        WEDNESDAY_2PM,
    ));
    assert_eq!(d.outcome, Outcome::Deny);
    assert!(
        d.reason
            .contains("`containers::Restart` acts on a container, not on a group"),
        "{}",
        d.reason
    );
}

#[test]
fn explain_shows_the_deciding_policies_in_full() {
    let trust = trust();
    let e = trust.explain(&scale(
        Resource::group("web-prod").environment("prod"),
        4,
        8,
        WEDNESDAY_2PM,
    ));
    assert_eq!(e.decision.outcome, require(1));
    assert_eq!(e.determining.len(), 1);
    let p = &e.determining[0];
    assert_eq!(p.id, "t/prod-big-needs-approval");
    assert_eq!(p.annotations["decision"], "require_approval");
    assert!(p.text.contains("context.change_percent > 50"), "{}", p.text);
    assert_eq!(p.line, 18, "where its annotations start");
    let text = e.to_string();
    for expected in [
        "require approval: scaling::SetDesiredCapacity on group/web-prod",
        "t/prod-big-needs-approval (permit, require approval by 1; line 18 of set `t`)",
        "state: capacity 4 → 8, healthy 4 → 4",
        "blast_radius",
        "signal_confidence",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // Slicing: of the 10 policies, only those whose action scope covers the action are
    // evaluated.
    assert_eq!(e.evaluated, (5, 10));
}

#[test]
fn a_decision_serializes_for_the_ledger_and_the_api() {
    let d = trust().decide(&scale(
        Resource::group("web-prod").environment("prod"),
        4,
        8,
        WEDNESDAY_2PM,
    ));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["outcome"]["kind"], "require_approval");
    assert_eq!(json["outcome"]["approvers"], 1);
    assert_eq!(json["policies"][0], "t/prod-big-needs-approval");
    assert_eq!(json["risk"]["factors"][0]["kind"], "blast_radius");
    let back: grace_trust::Decision = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
}

#[test]
fn a_request_can_be_written_as_json() {
    let request: Request = serde_json::from_value(serde_json::json!({
        "principal": { "kind": "playbook", "name": "heal" },
        "action": "containers::Restart",
        "resource": { "kind": "container", "id": "web-1", "tier": "frontend" },
        "state": { "capacity": 3, "healthy": 3 },
        "change": { "kind": "restart", "instances": 1 },
        "at_millis": WEDNESDAY_2PM,
    }))
    .unwrap();
    assert_eq!(trust().decide(&request).outcome, Outcome::Allow);
}

// --- Rejected policies -------------------------------------------------------------------

fn rejected(text: &str) -> PolicyError {
    let trust = TrustCore::in_memory(TrustConfig::default()).unwrap();
    match trust.policies().add("bad", text, "test") {
        Err(TrustError::Policy(e)) => {
            assert!(trust.policies().list().is_empty(), "nothing is stored");
            assert!(trust.policies().active().is_empty(), "nothing is active");
            e
        }
        other => panic!("expected a rejected policy, got {other:?}"),
    }
}

#[test]
fn a_syntax_error_is_rejected_with_its_line_and_column() {
    let text = "permit(principal, action, resource);\n\
                forbid(principal, action == Grace::Action::\"containers::Restart\" resource);\n";
    let e = rejected(text);
    let PolicyError::Syntax { problems, .. } = &e else {
        panic!("expected a syntax error, got {e}")
    };
    let column = text.lines().nth(1).unwrap().find(" resource").unwrap() + 2;
    assert_eq!(
        (problems[0].line, problems[0].column as usize),
        (2, column),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "policy set `bad` does not parse: line 2, column {column}: "
        )),
        "{e}"
    );
}

#[test]
fn a_missing_semicolon_is_reported_at_the_first_token_that_cannot_follow() {
    let e = rejected("permit(principal, action, resource)\npermit(principal, action, resource);");
    let p = &e.problems()[0];
    assert_eq!((p.line, p.column), (2, 7), "{e}");
    assert_eq!(p.message, "unexpected token `(`");
}

#[test]
fn an_unknown_action_is_rejected_naming_it_and_where_it_is() {
    let e = rejected(
        "@id(\"reboot\")\npermit(principal, action == Grace::Action::\"containers::Reboot\", resource);",
    );
    let PolicyError::Schema { problems, .. } = &e else {
        panic!("expected a schema error, got {e}")
    };
    assert!(
        problems[0]
            .message
            .starts_with("unrecognized action `Grace::Action::\"containers::Reboot\"`"),
        "{e}"
    );
    assert_eq!(problems[0].policy.as_deref(), Some("reboot"));
    // Where the action is named.
    assert_eq!((problems[0].line, problems[0].column), (2, 29), "{e}");
}

#[test]
fn an_unknown_attribute_is_rejected_naming_it() {
    let e = rejected(
        "permit(principal, action, resource is Grace::Group)\n  when { resource.colour == \"blue\" };",
    );
    assert!(matches!(e, PolicyError::Schema { .. }), "{e}");
    assert!(e.to_string().contains("colour"), "{e}");
    assert_eq!(e.problems()[0].line, 2, "{e}");
}

#[test]
fn an_optional_attribute_read_without_has_is_rejected() {
    let e = rejected(
        "permit(principal, action, resource is Grace::Container) when { resource.tier == \"web\" };",
    );
    assert!(matches!(e, PolicyError::Schema { .. }), "{e}");
    assert!(e.to_string().contains("tier"), "{e}");
}

#[test]
fn a_type_error_is_rejected() {
    let e = rejected("permit(principal, action, resource) when { context.risk_score > \"high\" };");
    assert!(matches!(e, PolicyError::Schema { .. }), "{e}");
    assert!(e.to_string().contains("Long"), "{e}");
}

#[test]
fn a_policy_that_can_never_apply_is_rejected() {
    let e = rejected(
        "forbid(principal, action == Grace::Action::\"containers::Restart\", resource is Grace::Group);",
    );
    assert!(matches!(e, PolicyError::Schema { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("unable to find an applicable action"),
        "{e}"
    );
}

#[test]
fn grace_annotations_are_checked_on_load() {
    let cases = [
        (
            "@decision(\"maybe\") permit(principal, action, resource);",
            "unknown `@decision(\"maybe\")`",
        ),
        (
            "@decision(\"require_approval\") @approvers(\"0\") permit(principal, action, resource);",
            "`@approvers(\"0\")` must be a whole number from 1 to 9",
        ),
        (
            "@decision(\"require_approval\") @approvers(\"two\") permit(principal, action, resource);",
            "`@approvers(\"two\")` must be a whole number from 1 to 9",
        ),
        (
            "@approvers(\"2\") permit(principal, action, resource);",
            "`@approvers` only applies with `@decision(\"require_approval\")`",
        ),
        (
            "@decision(\"require_approval\") forbid(principal, action, resource);",
            "on a forbid policy",
        ),
        (
            "@id(\"a\") permit(principal, action, resource);\n@id(\"a\") forbid(principal, action, resource);",
            "two policies have the id `a`",
        ),
        (
            "@id(\"no spaces\") permit(principal, action, resource);",
            "`@id(\"no spaces\")` must be",
        ),
        (
            "permit(principal == ?principal, action, resource);",
            "templates",
        ),
    ];
    for (text, expected) in cases {
        let e = rejected(text);
        assert!(
            matches!(e, PolicyError::Rejected { .. }) && e.to_string().contains(expected),
            "{text}: expected {expected:?}, got {e}"
        );
    }
}

#[test]
fn annotation_problems_point_at_their_policy() {
    let e = rejected(
        "permit(principal, action, resource);\n\n  @decision(\"maybe\")\n  permit(principal, action, resource);",
    );
    assert_eq!(
        (e.problems()[0].line, e.problems()[0].column),
        (3, 3),
        "{e}"
    );
}

#[test]
fn policy_set_names_are_checked() {
    let trust = TrustCore::in_memory(TrustConfig::default()).unwrap();
    for bad in ["", "Ops", "has space", "../etc", &"x".repeat(65)] {
        let e = trust
            .policies()
            .add(bad, grace_trust::BASELINE, "test")
            .unwrap_err();
        assert!(
            matches!(e, TrustError::Policy(PolicyError::Name { .. })),
            "{bad:?}: {e}"
        );
    }
}

// --- The Cedar request matches the schema -------------------------------------------------

#[test]
fn requests_for_every_action_fit_the_schema() {
    for action in Action::all() {
        let resource = match action.resource_kind() {
            ResourceKind::Group => Resource::group("web").environment("prod").tier("web"),
            ResourceKind::Container => Resource::container("c1")
                .image("busybox")
                .owner("team")
                .label("app", "web"),
            ResourceKind::Service => Resource::service([("app", "web"), ("env", "prod")]),
            ResourceKind::Deployment => Resource::deployment("default", "web"),
            ResourceKind::Query => Resource::query("up == 0"),
            ResourceKind::Node => Resource::node("service:shop/web"),
            ResourceKind::Channel => Resource::channel(
                &grace_model::channel::Channel::parse("slack:#ops").expect("a channel"),
            ),
        };
        let change = if action.is_change() {
            Change::Capacity { to: 3 }
        } else {
            Change::None
        };
        for principal in [playbook("p"), Principal::user("u", ["operate".to_owned()])] {
            let request = Request::new(principal, action, resource.clone(), WEDNESDAY_2PM)
                .with_state(State::new(2, 2))
                .with_change(change)
                .with_signal(Signal {
                    anomaly_score: Some(0.5),
                    confidence: Some(0.5),
                    incident_id: Some("INC-1".into()),
                })
                .with_history(History {
                    recent_failures: 2,
                    last_deployment_millis: Some(WEDNESDAY_2PM),
                    // Every learned attribute policies may read, checked against the schema.
                    learned: Some(grace_trust::Learned {
                        about: "web".into(),
                        judged: 4,
                        cleared: 1,
                        not_cleared_streak: 2,
                    }),
                });
            validate_against_schema(&request, 50).unwrap_or_else(|e| panic!("{action}: {e}"));
            validate_against_schema(&Request::new(playbook("p"), action, resource.clone(), 0), 0)
                .unwrap_or_else(|e| panic!("{action} with nothing known: {e}"));
        }
    }
}

#[test]
fn every_capability_function_that_acts_on_a_resource_is_an_action() {
    for f in grace_model::capability::functions() {
        let action = Action::from_call(f.interface, f.name);
        if f.effect == grace_model::capability::Effect::Local {
            assert_eq!(action, None, "{}.{}", f.interface, f.name);
            continue;
        }
        let a = action.unwrap_or_else(|| panic!("{}.{} has no action", f.interface, f.name));
        assert_eq!((a.interface(), a.function_name()), (f.interface, f.name));
        assert_eq!(Action::from_cedar_id(a.cedar_id()), Some(a));
    }
    let changes: Vec<&str> = Action::all()
        .filter(|a| a.is_change())
        .map(Action::function_name)
        .collect();
    assert_eq!(
        changes,
        [
            "set-desired-capacity",
            "restart",
            "start",
            "stop",
            "scale",
            "scale-deployment",
            "rollout-restart",
            "rollout-undo",
            "send"
        ]
    );
    assert_eq!(Action::from_call("containers", "exec"), None);
    assert_eq!(Action::from_call("containers", "inspect"), None);
}

#[test]
fn a_policy_can_forbid_reading_container_logs() {
    let core = TrustCore::in_memory(Default::default()).unwrap();
    let sets = [
        ("base", grace_trust::BASELINE),
        (
            "nologs",
            "@id(\"no-container-logs\")\nforbid (principal, action == Grace::Action::\"containers::Logs\", resource);",
        ),
    ];
    let policies = grace_trust::Policies::compile(sets).unwrap();
    let logs = Request::new(
        playbook("heal"),
        Action::from_call("containers", "logs").unwrap(),
        Resource::container("web-1"),
        WEDNESDAY_2PM,
    );
    let decision = core.decide_with(&policies, &logs);
    assert_eq!(decision.outcome, Outcome::Deny, "{}", decision.reason);
    assert_eq!(decision.policies, ["nologs/no-container-logs"]);
    let list = Request::new(
        playbook("heal"),
        Action::from_cedar_id("containers::List").unwrap(),
        Resource::service([("app", "web")]),
        WEDNESDAY_2PM,
    );
    assert_eq!(core.decide_with(&policies, &list).outcome, Outcome::Allow);
}
