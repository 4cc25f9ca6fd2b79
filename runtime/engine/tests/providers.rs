//! Several providers of one capability, side by side: configuration routes each resource to
//! one of them, a grant may name the one it expects, and every record of a call names where
//! it went. Two simulated fleets stand in for two clouds here; the same with AWS (moto) beside
//! the simulation is in tests/parity/tests/providers.rs.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use grace_engine::{Guest, RunReport};
use grace_executor::providers::{Route, Routes};
use grace_executor::{Executors, Providers, ScalingExecutor};
use grace_ledger::Verdict;
use grace_sim::{Fleet, Simulation};
use serde_json::json;

/// The `group-scaler` fixture scaling `groups` (comma-separated), with `grant` added to its
/// `[grants.scaling]` table.
fn scaler(groups: &str, grant: &str) -> Guest {
    grace_testkit::build_guests();
    let dir = fixture("group-scaler");
    let text = std::fs::read_to_string(dir.join("playbook.toml")).unwrap();
    let text = text
        .replace("groups = \"api-asg\"", &format!("groups = \"{groups}\""))
        .replace(
            "[grants.scaling]\n",
            &format!("[grants.scaling]\n{grant}\n"),
        );
    let manifest = grace_engine::Manifest::parse(&text).unwrap();
    let bytes = std::fs::read(dir.join(&manifest.component)).unwrap();
    engine().guest(manifest, &bytes, "group-scaler").unwrap()
}

/// `world`'s executors with a second simulated fleet, `sim-eu`, beside `sim` for scaling:
/// `api-*` groups go to `sim-eu`; the rest to `default`, if any.
fn two_fleets(world: &mut World, default: Option<&str>) -> Simulation {
    let eu = Simulation::new(&Fleet::default_fleet());
    let mut scaling: Providers<dyn ScalingExecutor> = Providers::none();
    scaling.insert(
        grace_sim::PROVIDER,
        world
            .sim
            .executors()
            .scaling
            .default_provider()
            .unwrap()
            .executor()
            .clone(),
    );
    scaling.insert(
        "sim-eu",
        eu.executors()
            .scaling
            .default_provider()
            .unwrap()
            .executor()
            .clone(),
    );
    let routes = Routes {
        routes: vec![Route {
            pattern: "api-*".into(),
            provider: "sim-eu".into(),
        }],
        default: default.map(str::to_owned),
    };
    scaling.set_routes(routes).unwrap();
    world.env.executors = Executors {
        scaling,
        ..world.sim.executors()
    };
    eu
}

fn desired_in(sim: &Simulation, group: &str) -> u64 {
    let snapshot = serde_json::to_value(sim.snapshot()).unwrap();
    snapshot["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == group)
        .unwrap()["desired_capacity"]
        .as_u64()
        .unwrap()
}

/// The recorded results of the run's `scaling` calls on `group`.
fn recorded(world: &World, report: &RunReport, group: &str) -> Vec<grace_ledger::Entry> {
    world
        .ledger
        .entries_for_run(&report.run_id)
        .unwrap()
        .into_iter()
        .filter(|e| e.interface == "scaling" && e.args["group"] == group)
        .collect()
}

#[test]
fn two_providers_of_one_capability_serve_one_run_each_group_reaching_its_own() {
    let mut world = World::new();
    let eu = two_fleets(&mut world, Some(grace_sim::PROVIDER));
    let before = |sim: &Simulation| (desired_in(sim, "api-asg"), desired_in(sim, "batch-asg"));
    let (home, away) = (before(&world.sim), before(&eu));

    let report = world.run(
        &scaler("api-asg,batch-asg", ""),
        &event("test.providers", "x", json!({})),
    );

    assert_eq!(
        results(&report),
        [
            format!("ok api-asg {}", away.0 + 1),
            format!("ok batch-asg {}", home.1 + 1)
        ]
    );
    // api-asg changed on sim-eu only, batch-asg on sim only.
    assert_eq!(before(&eu), (away.0 + 1, away.1));
    assert_eq!(before(&world.sim), (home.0, home.1 + 1));
    world.ledger.verify().unwrap();
}

#[test]
fn every_record_of_a_call_names_the_provider_it_went_to() {
    let mut world = World::new();
    two_fleets(&mut world, Some(grace_sim::PROVIDER));

    let report = world.run(
        &scaler("api-asg,batch-asg", ""),
        &event("test.providers", "x", json!({})),
    );
    results(&report);

    for (group, provider) in [("api-asg", "sim-eu"), ("batch-asg", "sim")] {
        let entries = recorded(&world, &report, group);
        // describe, the change's intent, the change.
        assert_eq!(entries.len(), 3, "{entries:?}");
        for e in entries {
            assert_eq!(e.result["provider"], provider, "{group}: {:?}", e.result);
        }
    }
}

#[test]
fn unmapped_resource_is_refused_with_a_clear_error() {
    let mut world = World::new();
    // Only api-* is routed, and scaling has no default provider.
    let eu = two_fleets(&mut world, None);
    let batch_before = desired_in(&world.sim, "batch-asg");

    let report = world.run(
        &scaler("batch-asg,api-asg", ""),
        &event("test.providers", "x", json!({})),
    );

    let results = results(&report);
    assert_eq!(
        results[0],
        "err denied: no scaling provider serves `batch-asg`: no [[providers]] route of `scaling` matches it and `scaling` has no default provider"
    );
    assert!(results[1].starts_with("ok api-asg"), "{results:?}");
    assert_eq!(desired_in(&world.sim, "batch-asg"), batch_before);
    assert_eq!(desired_in(&eu, "batch-asg"), batch_before);
    let entries = recorded(&world, &report, "batch-asg");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].decision.verdict, Verdict::Denied);
    assert!(entries[0].decision.reason.contains("`batch-asg`"));
}

#[test]
fn a_grant_naming_another_provider_than_the_routing_is_refused_and_recorded() {
    let mut world = World::new();
    let eu = two_fleets(&mut world, Some(grace_sim::PROVIDER));
    let api_before = (
        desired_in(&world.sim, "api-asg"),
        desired_in(&eu, "api-asg"),
    );

    // The grant expects `sim`; the host routes api-asg to `sim-eu`: refused, not rerouted.
    let report = world.run(
        &scaler("api-asg,batch-asg", "provider = \"sim\""),
        &event("test.providers", "x", json!({})),
    );

    let results = results(&report);
    assert_eq!(
        results[0],
        "err denied: the grant names provider `sim`, but this host routes scaling resource `api-asg` to provider `sim-eu`: refused, not rerouted"
    );
    assert!(results[1].starts_with("ok batch-asg"), "{results:?}");
    assert_eq!(
        (
            desired_in(&world.sim, "api-asg"),
            desired_in(&eu, "api-asg")
        ),
        api_before
    );
    let entries = recorded(&world, &report, "api-asg");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].decision.verdict, Verdict::Denied);
    assert_eq!(entries[0].result["provider"], "sim-eu");
    assert!(entries[0].decision.reason.contains("refused, not rerouted"));
}

#[test]
fn a_grant_naming_a_provider_that_is_not_a_name_is_refused_at_load() {
    let dir = fixture("group-scaler");
    let text = std::fs::read_to_string(dir.join("playbook.toml"))
        .unwrap()
        .replace(
            "[grants.scaling]\n",
            "[grants.scaling]\nprovider = \"AWS EU\"\n",
        );
    let e = grace_engine::Manifest::parse(&text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("grants.scaling.provider"), "{e}");
    assert!(e.contains("`AWS EU` is not a provider name"), "{e}");
}

#[test]
fn a_capability_without_a_provider_is_unavailable() {
    let mut world = World::new();
    world.env.executors = Executors {
        scaling: Providers::none(),
        ..world.sim.executors()
    };
    let report = world.run(
        &scaler("api-asg", ""),
        &event("test.providers", "x", json!({})),
    );
    assert_eq!(
        results(&report),
        ["err unavailable: no scaling provider is configured on this host"]
    );
}
