//! The risk score: six named factors, each with its value, weight, contribution and a one-line
//! explanation; deterministic; configurable weights.

#![allow(clippy::unwrap_used)]

use grace_trust::{
    Action, Change, FactorKind, History, Principal, Request, Resource, RiskConfig, RiskModel,
    Signal, State, TrustError, Weights,
};

const NOW: u64 = 1_750_255_200_000;

fn model() -> RiskModel {
    RiskModel::new(RiskConfig::default()).unwrap()
}

fn scale_in(env: &str, from: u32, to: u32) -> Request {
    Request::new(
        Principal::playbook("autoscale", "sha256:01", "1"),
        Action::from_cedar_id("scaling::SetDesiredCapacity").unwrap(),
        Resource::group("web").environment(env),
        NOW,
    )
    .with_state(State::new(from, from))
    .with_change(Change::Capacity { to })
}

fn factor(r: &grace_trust::Risk, kind: FactorKind) -> &grace_trust::Factor {
    r.factors.iter().find(|f| f.kind == kind).unwrap()
}

#[test]
fn every_factor_explains_its_value_in_one_line() {
    let request = scale_in("prod", 8, 4)
        .with_signal(Signal {
            anomaly_score: Some(0.9),
            confidence: Some(0.6),
            incident_id: None,
        })
        .with_history(History {
            recent_failures: 2,
            last_deployment_millis: Some(NOW - 30 * 60_000),
            ..Default::default()
        });
    let risk = model().score(&request);
    let lines: Vec<(FactorKind, f64, &str)> = risk
        .factors
        .iter()
        .map(|f| (f.kind, f.value, f.explanation.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (
                FactorKind::BlastRadius,
                0.5,
                "removes 4 of 8 instances of `web` (50%)"
            ),
            (FactorKind::Environment, 1.0, "environment `prod`"),
            (FactorKind::Magnitude, 0.5, "capacity 8 → 4 (50%)"),
            (
                FactorKind::RecentFailures,
                0.75,
                "2 failed runs of this playbook recently"
            ),
            (
                FactorKind::DeploymentRecency,
                0.5,
                "deployed 30 minutes ago"
            ),
            (
                FactorKind::SignalConfidence,
                0.4,
                "the triggering signal's confidence is 60%"
            ),
        ]
    );
    // 0.3×0.5 + 0.2×1 + 0.15×0.5 + 0.15×0.75 + 0.1×0.5 + 0.1×0.4 = 0.6275
    assert_eq!(risk.score, 63);
    let contributions: f64 = risk.factors.iter().map(|f| f.contribution).sum();
    assert!((contributions - 62.75).abs() < 0.2, "{contributions}");
    assert_eq!(factor(&risk, FactorKind::BlastRadius).contribution, 15.0);
    assert_eq!(factor(&risk, FactorKind::BlastRadius).weight, 0.3);
    assert_eq!(
        risk.to_string(),
        "risk 63/100 (environment +20: environment `prod`; blast_radius +15: removes 4 of 8 instances of `web` (50%); recent_failures +11: 2 failed runs of this playbook recently)"
    );
}

#[test]
fn the_score_is_deterministic() {
    let request = scale_in("staging", 5, 2).with_history(History {
        recent_failures: 1,
        last_deployment_millis: Some(NOW - 7 * 60_000),
        ..Default::default()
    });
    let first = model().score(&request);
    for _ in 0..100 {
        assert_eq!(model().score(&request), first);
    }
    let json = serde_json::to_string(&first).unwrap();
    assert_eq!(
        serde_json::from_str::<grace_trust::Risk>(&json).unwrap(),
        first
    );
}

#[test]
fn production_is_riskier_than_staging_and_staging_than_dev() {
    let m = model();
    let score = |env: &str| m.score(&scale_in(env, 4, 2)).score;
    assert!(score("prod") > score("staging"));
    assert!(score("staging") > score("dev"));
    assert_eq!(
        score("Production"),
        score("prod"),
        "environment names ignore case"
    );
    let unknown = m.score(&scale_in("moon-base", 4, 2));
    assert_eq!(
        factor(&unknown, FactorKind::Environment).explanation,
        "environment `moon-base` has no configured risk"
    );
    assert_eq!(factor(&unknown, FactorKind::Environment).value, 0.8);
}

#[test]
fn dependents_widen_the_blast_radius() {
    let m = model();
    let mut r = scale_in("prod", 8, 6);
    let alone = factor(&m.score(&r), FactorKind::BlastRadius).value;
    r.resource = r.resource.dependents(4);
    let risk = m.score(&r);
    let widened = factor(&risk, FactorKind::BlastRadius);
    assert_eq!((alone, widened.value), (0.25, 0.5));
    assert_eq!(
        widened.explanation,
        "removes 2 of 8 instances of `web` (25%), ×2.00 for 4 dependents"
    );
}

fn downstream(id: &str, permille: Option<u16>, only: bool) -> grace_trust::Downstream {
    grace_trust::Downstream {
        id: id.into(),
        depth: 1,
        traffic_permille: permille,
        health: "healthy".into(),
        only_healthy_upstream: only,
    }
}

#[test]
fn graph_dependents_weigh_by_traffic_share_and_most_when_this_is_their_only_healthy_upstream() {
    let m = model();
    let mut r = scale_in("prod", 8, 6);
    // Two callers with 75 % and 25 % of the traffic, each with another healthy upstream.
    r.resource.downstream = vec![
        downstream("service:shop/a", Some(750), false),
        downstream("service:shop/b", Some(250), false),
    ];
    let shared = factor(&m.score(&r), FactorKind::BlastRadius).value;
    // The same two, for which this group is the only healthy upstream.
    r.resource.downstream = vec![
        downstream("service:shop/a", Some(750), true),
        downstream("service:shop/b", Some(250), true),
    ];
    let risk = m.score(&r);
    let only = factor(&risk, FactorKind::BlastRadius);
    // 0.25 × (1 + 0.25 × (0.875 + 0.625)) and 0.25 × (1 + 0.25 × 2 × 1.5).
    assert_eq!((shared, only.value), (0.344, 0.438));
    assert_eq!(
        only.explanation,
        "removes 2 of 8 instances of `web` (25%), ×1.75 for 2 direct dependents: \
         `service:shop/a` (75% of the requests, its only healthy upstream), \
         `service:shop/b` (25% of the requests, its only healthy upstream)"
    );
}

#[test]
fn configured_dependents_are_a_floor_on_what_the_graph_saw() {
    let m = model();
    let mut r = scale_in("prod", 8, 6);
    r.resource = r.resource.dependents(8);
    let configured = factor(&m.score(&r), FactorKind::BlastRadius).value;
    // The mesh saw one caller only: the eight the operator configured still count.
    r.resource.downstream = vec![downstream("service:shop/a", Some(1000), false)];
    let risk = m.score(&r);
    let both = factor(&risk, FactorKind::BlastRadius);
    assert_eq!(both.value, configured);
    assert!(
        both.explanation
            .contains("8 dependents configured (1 direct dependent: `service:shop/a`"),
        "{}",
        both.explanation
    );
}

#[test]
fn dependents_further_down_count_a_quarter_and_are_counted_not_named() {
    let mut r = scale_in("prod", 8, 6);
    let mut further = downstream("service:shop/gateway", None, false);
    further.depth = 2;
    r.resource.downstream = vec![downstream("service:shop/web", None, false), further];
    let risk = model().score(&r);
    assert_eq!(
        factor(&risk, FactorKind::BlastRadius).explanation,
        "removes 2 of 8 instances of `web` (25%), ×1.31 for 1 direct dependent: `service:shop/web`; 1 further down"
    );
}

#[test]
fn scaling_out_disrupts_nothing_but_a_big_jump_is_a_big_change() {
    let risk = model().score(&scale_in("prod", 2, 10));
    assert_eq!(factor(&risk, FactorKind::BlastRadius).value, 0.0);
    assert_eq!(factor(&risk, FactorKind::Magnitude).value, 1.0);
    assert_eq!(
        factor(&risk, FactorKind::Magnitude).explanation,
        "capacity 2 → 10 (400%)"
    );
}

#[test]
fn a_doubtful_signal_raises_the_risk() {
    let m = model();
    let with = |confidence: Option<f64>| {
        m.score(&scale_in("prod", 4, 3).with_signal(Signal {
            confidence,
            ..Signal::default()
        }))
        .score
    };
    assert!(with(Some(0.1)) > with(None));
    assert!(with(None) > with(Some(0.99)));
}

#[test]
fn a_fresh_deployment_is_riskier_than_an_old_one() {
    let m = model();
    let deployed = |minutes_ago: u64| {
        let r = scale_in("prod", 4, 3).with_history(History {
            recent_failures: 0,
            last_deployment_millis: Some(NOW - minutes_ago * 60_000),
            ..Default::default()
        });
        factor(&m.score(&r), FactorKind::DeploymentRecency).value
    };
    assert_eq!(deployed(0), 1.0);
    assert_eq!(deployed(30), 0.5);
    assert_eq!(deployed(60), 0.25);
    assert!(deployed(24 * 60) < 0.001);
}

#[test]
fn restarting_a_lone_container_takes_all_of_it_down() {
    let r = Request::new(
        Principal::playbook("heal", "", ""),
        Action::from_cedar_id("containers::Restart").unwrap(),
        Resource::container("db-1").environment("prod"),
        NOW,
    )
    .with_change(Change::Restart { instances: 1 });
    let risk = model().score(&r);
    let blast = factor(&risk, FactorKind::BlastRadius);
    assert_eq!(blast.value, 1.0);
    assert_eq!(
        blast.explanation,
        "takes down `db-1` with no other instance known to serve (100%)"
    );
}

#[test]
fn reads_carry_no_risk() {
    let r = Request::new(
        Principal::playbook("look", "", ""),
        Action::from_cedar_id("metrics::Query").unwrap(),
        Resource::query("up == 0"),
        NOW,
    );
    let risk = model().score(&r);
    assert_eq!((risk.score, risk.factors.len()), (0, 0));
}

#[test]
fn weights_decide_what_counts() {
    let only_environment = RiskModel::new(RiskConfig {
        weights: Weights {
            blast_radius: 0.0,
            environment: 3.0,
            magnitude: 0.0,
            recent_failures: 0.0,
            deployment_recency: 0.0,
            signal_confidence: 0.0,
        },
        ..RiskConfig::default()
    })
    .unwrap();
    assert_eq!(only_environment.score(&scale_in("prod", 8, 1)).score, 100);
    assert_eq!(only_environment.score(&scale_in("dev", 8, 1)).score, 10);
}

#[test]
fn the_risk_configuration_reads_from_toml_with_defaults() {
    let config: RiskConfig = toml::from_str(
        r#"
        unknown_environment = 1.0
        [weights]
        blast_radius = 0.5
        [environments]
        prod = 1.0
        canary = 0.7
        "#,
    )
    .unwrap();
    assert_eq!(config.weights.blast_radius, 0.5);
    assert_eq!(
        config.weights.environment, 0.2,
        "unset weights keep their default"
    );
    let m = RiskModel::new(config).unwrap();
    assert_eq!(
        factor(&m.score(&scale_in("canary", 4, 3)), FactorKind::Environment).value,
        0.7
    );
}

#[test]
fn invalid_risk_configurations_are_rejected() {
    let zero = Weights {
        blast_radius: 0.0,
        environment: 0.0,
        magnitude: 0.0,
        recent_failures: 0.0,
        deployment_recency: 0.0,
        signal_confidence: 0.0,
    };
    let cases = [
        (
            RiskConfig {
                weights: zero,
                ..RiskConfig::default()
            },
            "risk weights are all 0",
        ),
        (
            RiskConfig {
                unknown_environment: 1.5,
                ..RiskConfig::default()
            },
            "`unknown_environment` must be between 0 and 1",
        ),
        (
            RiskConfig {
                deployment_half_life_minutes: 0.0,
                ..RiskConfig::default()
            },
            "`deployment_half_life_minutes` must be positive",
        ),
        (
            RiskConfig {
                weights: Weights {
                    magnitude: f64::NAN,
                    ..Weights::default()
                },
                ..RiskConfig::default()
            },
            "risk weight `magnitude`",
        ),
    ];
    for (config, expected) in cases {
        let e = RiskModel::new(config).unwrap_err();
        assert!(
            matches!(e, TrustError::Config(_)) && e.to_string().contains(expected),
            "expected {expected:?}, got {e}"
        );
    }
}

#[test]
fn without_its_own_confidence_a_signal_is_as_confident_as_its_anomaly_score() {
    let with = |anomaly_score, confidence| {
        let r = model().score(&scale_in("prod", 8, 6).with_signal(Signal {
            anomaly_score,
            confidence,
            incident_id: None,
        }));
        let f = factor(&r, FactorKind::SignalConfidence);
        (f.value, f.explanation.clone())
    };
    let (value, why) = with(Some(0.9), None);
    assert!((value - 0.1).abs() < 1e-9);
    assert_eq!(why, "the triggering event's anomaly score is 90%");
    // The signal's own confidence comes first.
    assert_eq!(
        with(Some(0.9), Some(0.3)).1,
        "the triggering signal's confidence is 30%"
    );
    assert_eq!(with(None, None).0, 0.5);
}
