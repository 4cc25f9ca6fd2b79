//! A full trust decision (guardrails + risk score + Cedar policies) against a bare
//! `cedar_policy::Authorizer::is_authorized` call on the same request, with 1,000 policies.
//!
//! `cargo bench -p grace-trust`. Criterion reports means; the p50/p99 lines come from timing
//! 100,000 calls one by one with `Instant`, after a warm-up (5,000 for the unsliceable mix).
//! Three policy mixes:
//!
//! - `mixed`: what an operator writes: a few general policies (baseline, freeze, approvals by
//!   risk), and per-playbook, per-group and per-deployment policies. Slicing by action,
//!   principal and resource leaves a handful to evaluate.
//! - `tags`: 1,000 policies on the same action distinguished only by a tag condition in
//!   `when` (`resource.getTag("service") == "svc-7"`): the index on such conditions leaves one.
//! - `unsliceable`: 1,000 policies on the same action distinguished only by conditions on the
//!   context: nothing can be sliced away or indexed, every policy is evaluated; the worst
//!   case, where the trust core costs what Cedar costs.
//! - the bare call always gets the whole set of 1,000, which is what Cedar alone would do.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss, missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cedar_policy::Authorizer;
use criterion::{Criterion, criterion_group, criterion_main};
use grace_trust::bench_support::{cedar_parts, evaluate, evaluated, prepare};
use grace_trust::{
    Action, Change, History, Outcome, Principal, Request, Resource, Signal, State, TrustConfig,
    TrustCore,
};

const POLICIES: usize = 1000;
const SAMPLES: usize = 100_000;

/// A realistic mix of 1,000 policies.
fn mixed_policies() -> String {
    let mut p = String::from(
        r#"@id("reads") permit(principal, action in Grace::Action::"read", resource);
@id("freeze") forbid(principal, action in Grace::Action::"change", resource)
  when { resource has tier && resource.tier == "db" && context.weekday == "Fri" && context.hour >= 16 };
@id("two-person") @decision("require_approval") @approvers("2")
  permit(principal, action in Grace::Action::"change", resource) when { context.risk_score > 80 };
@id("no-big-prod-jumps") forbid(principal, action in Grace::Action::"capacity", resource)
  when { context.change_percent > 300 };
@id("users-need-scope") forbid(principal is Grace::User, action in Grace::Action::"change", resource)
  unless { principal.scopes.contains("operate") };
"#,
    );
    let general = 5;
    let per_kind = (POLICIES - general) / 3;
    for i in 0..per_kind {
        writeln!(
            p,
            r#"@id("pb-{i}") permit(principal == Grace::Playbook::"pb-{i}", action in Grace::Action::"change", resource)
  when {{ resource.environment != "prod" || context.risk_score < 70 }};"#
        )
        .unwrap();
    }
    for i in 0..per_kind {
        writeln!(
            p,
            r#"@id("grp-{i}") @decision("require_approval")
  permit(principal, action == Grace::Action::"scaling::SetDesiredCapacity", resource == Grace::Group::"grp-{i}")
  when {{ context.change_delta > 10 }};"#
        )
        .unwrap();
    }
    for i in 0..(POLICIES - general - 2 * per_kind) {
        writeln!(
            p,
            r#"@id("dep-{i}") permit(principal, action in [Grace::Action::"kubernetes::ScaleDeployment", Grace::Action::"kubernetes::RolloutRestart"], resource == Grace::Deployment::"ns-{}/dep-{i}")
  when {{ context.risk_score < 70 }};"#,
            i % 10
        )
        .unwrap();
    }
    p
}

/// 1,000 policies on one action that only a condition on the context tells apart: nothing to
/// slice or index on, every policy is evaluated.
fn unsliceable_policies() -> String {
    let mut p = String::new();
    for i in 0..POLICIES {
        writeln!(
            p,
            r#"@id("r-{i}") permit(principal, action == Grace::Action::"scaling::SetDesiredCapacity", resource)
  when {{ context.risk_score < 90 && context.change_size <= {} }};"#,
            i % 50
        )
        .unwrap();
    }
    p
}

/// 1,000 policies on one action that only a `when` condition tells apart.
fn tag_policies() -> String {
    let mut p = String::new();
    for i in 0..POLICIES {
        writeln!(
            p,
            r#"@id("svc-{i}") permit(principal, action == Grace::Action::"scaling::SetDesiredCapacity", resource)
  when {{ resource.hasTag("service") && resource.getTag("service") == "svc-{i}" && context.risk_score < 90 }};"#
        )
        .unwrap();
    }
    p
}

fn trust(policies: &str) -> TrustCore {
    let config = TrustConfig::from_toml(
        r#"
        [[guardrail]]
        name = "web groups"
        kind = "group"
        match = "grp-*"
        min_healthy = 2
        max_changes_per_hour = 10
        max_capacity = 40
        freeze = ["2020-01-01T00:00:00Z/2020-01-02T00:00:00Z", "Sat 00:00-Sun 00:00"]
        "#,
    )
    .unwrap();
    let t = TrustCore::in_memory(config).unwrap();
    t.policies().add("bench", policies, "bench").unwrap();
    assert_eq!(t.policies().active().len(), POLICIES);
    t
}

/// Playbook `pb-7` scales group `grp-7` (prod, tagged `service=svc-500`) from 6 to 8 on a
/// Wednesday, on a fairly confident signal, with one recent failure.
fn request() -> Request {
    let at = 1_750_255_200_000; // 2025-06-18T14:00:00Z, a Wednesday
    Request::new(
        Principal::playbook("pb-7", "sha256:3c5d", "1.0.0"),
        Action::from_cedar_id("scaling::SetDesiredCapacity").unwrap(),
        Resource::group("grp-7")
            .environment("prod")
            .tier("web")
            .owner("payments")
            .label("service", "svc-500")
            .dependents(2),
        at,
    )
    .with_state(State::new(6, 6))
    .with_change(Change::Capacity { to: 8 })
    .with_signal(Signal {
        anomaly_score: Some(0.7),
        confidence: Some(0.8),
        incident_id: Some("INC-1234".into()),
    })
    .with_history(History {
        recent_failures: 1,
        last_deployment_millis: Some(at - 45 * 60_000),
        ..Default::default()
    })
}

/// p50 and p99 of `f` over `samples` calls, after a warm-up.
fn percentiles(samples: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..samples / 10 {
        f();
    }
    let mut t = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        f();
        t.push(start.elapsed());
    }
    t.sort_unstable();
    (t[samples / 2], t[samples * 99 / 100])
}

fn compare(c: &mut Criterion, mix: &str, policies: &str) {
    let trust = trust(policies);
    let request = request();
    let decision = trust.decide(&request);
    assert_ne!(decision.outcome, Outcome::Deny, "{}", decision.reason);
    let active = trust.policies().active();
    let (cedar_request, entities, all) =
        cedar_parts(&active, &request, decision.risk.score).unwrap();
    let authorizer = Authorizer::new();
    let bare = authorizer.is_authorized(&cedar_request, &all, &entities);
    assert_eq!(
        bare.decision(),
        cedar_policy::Decision::Allow,
        "the bare call sees the same request"
    );
    let sliced = evaluated(&active, &request).unwrap();
    // Fewer samples where every policy is evaluated (a millisecond each), so the run stays
    // within minutes.
    let samples = if sliced > 100 { SAMPLES / 20 } else { SAMPLES };

    let mut group = c.benchmark_group(mix);
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("full decision", |b| {
        b.iter(|| black_box(trust.decide(black_box(&request))));
    });
    group.bench_function("bare is_authorized (1,000 policies)", |b| {
        b.iter(|| black_box(authorizer.is_authorized(&cedar_request, &all, &entities)));
    });
    group.finish();

    let (full50, full99) = percentiles(samples, || {
        black_box(trust.decide(black_box(&request)));
    });
    let (bare50, bare99) = percentiles(samples, || {
        black_box(authorizer.is_authorized(&cedar_request, &all, &entities));
    });
    let model = trust.risk_model();
    let (risk50, _) = percentiles(samples, || {
        black_box(model.score(black_box(&request)));
    });
    let (prepare50, _) = percentiles(samples, || {
        black_box(prepare(black_box(&request), 40).unwrap());
    });
    let prepared = prepare(&request, decision.risk.score).unwrap();
    let (evaluate50, _) = percentiles(samples, || {
        black_box(evaluate(&active, black_box(&request), &prepared));
    });
    println!();
    println!(
        "{mix}: stages p50: risk score {risk50:.2?}, Cedar request {prepare50:.2?}, policy evaluation {evaluate50:.2?}"
    );
    println!(
        "{mix}: {POLICIES} policies, {sliced} evaluated by the full decision after slicing; {samples} samples"
    );
    println!("  full decision           p50 {full50:>10.2?}  p99 {full99:>10.2?}");
    println!("  bare is_authorized      p50 {bare50:>10.2?}  p99 {bare99:>10.2?}");
    println!(
        "  ratio full/bare         p50 {:>10.2}  p99 {:>10.2}",
        full50.as_secs_f64() / bare50.as_secs_f64(),
        full99.as_secs_f64() / bare99.as_secs_f64()
    );
    println!(
        "  target p99 < 50 µs: {}",
        if full99 < Duration::from_micros(50) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!();
}

fn benches(c: &mut Criterion) {
    compare(c, "mixed", &mixed_policies());
    compare(c, "tags", &tag_policies());
    compare(c, "unsliceable", &unsliceable_policies());
}

criterion_group!(decide, benches);
criterion_main!(decide);
