//! The simulated fleet's saved state restored at startup: only onto the fleet file it was
//! saved from, only if it is a fleet that file could have become, and never larger than its
//! bounds however long the simulation runs.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use grace_executor::ScalingExecutor;
use grace_sim::{Fleet, MAX_GROUP_HISTORY, Restored, SavedState, Simulation};
use serde_json::{Value, json};

fn scaling(sim: &Simulation) -> Arc<dyn ScalingExecutor> {
    sim.executors()
        .scaling
        .default_provider()
        .map(|p| p.executor().clone())
        .unwrap()
}

/// The default fleet's state after one scaling of `api-asg` to 5, as JSON to edit.
async fn saved_after_a_change() -> Value {
    let sim = Simulation::new(&Fleet::default_fleet());
    sim.clock().advance(Duration::from_secs(60));
    scaling(&sim)
        .set_desired_capacity("api-asg", 5)
        .await
        .unwrap();
    serde_json::from_slice(&sim.state().to_bytes()).unwrap()
}

fn restore(state: &Value) -> (Simulation, Restored) {
    let saved = SavedState::from_bytes(&serde_json::to_vec(state).unwrap()).unwrap();
    let sim = Simulation::new(&Fleet::default_fleet());
    let restored = sim.restore(&saved, u64::MAX);
    (sim, restored)
}

fn why(restored: Restored) -> String {
    match restored {
        Restored::ClockOnly { why } => why.join("; "),
        other => panic!("restored {other:?}"),
    }
}

fn desired(sim: &Simulation, group: &str) -> u32 {
    sim.snapshot()
        .groups
        .iter()
        .find(|g| g.name == group)
        .unwrap()
        .desired_capacity
}

#[tokio::test]
async fn a_saved_group_with_a_capacity_above_its_maximum_is_not_restored() {
    let mut state = saved_after_a_change().await;
    let log = state["world"]["groups"][0]["desired_log"]
        .as_array_mut()
        .unwrap();
    log.last_mut().unwrap()[1] = json!(500);
    let (sim, restored) = restore(&state);
    let why = why(restored);
    assert!(
        why.contains("group `api-asg` has a desired capacity of 500, outside its limits 2..=12"),
        "{why}"
    );
    assert_eq!(desired(&sim, "api-asg"), 3, "the fleet file's capacity");
}

#[tokio::test]
async fn a_saved_group_the_fleet_file_does_not_have_is_not_restored() {
    let mut state = saved_after_a_change().await;
    state["world"]["groups"][1]["name"] = json!("ghost-asg");
    let why = why(restore(&state).1);
    assert!(
        why.contains("group `ghost-asg` is not the fleet file's group `batch-asg`"),
        "{why}"
    );
}

#[tokio::test]
async fn a_saved_container_that_is_neither_the_files_nor_a_clone_is_not_restored() {
    let mut state = saved_after_a_change().await;
    let records = state["world"]["containers"]["records"]
        .as_array_mut()
        .unwrap();
    let mut stranger = records[0].clone();
    stranger["container"]["name"] = json!("miner");
    stranger["container"]["id"] = json!("ffffffffffff");
    records.push(stranger);
    let why = why(restore(&state).1);
    assert!(
        why.contains("container `miner` is neither the fleet file's"),
        "{why}"
    );
}

#[tokio::test]
async fn a_saved_deployment_with_more_replicas_than_kubernetes_holds_is_not_restored() {
    let mut state = saved_after_a_change().await;
    state["world"]["deployments"][0]["replicas"] = json!(u32::MAX);
    let why = why(restore(&state).1);
    assert!(why.contains("replicas"), "{why}");
}

#[tokio::test]
async fn a_valid_saved_state_is_restored_whole() {
    let state = saved_after_a_change().await;
    let (sim, restored) = restore(&state);
    assert_eq!(restored, Restored::Everything);
    assert_eq!(desired(&sim, "api-asg"), 5);
}

#[test]
fn a_changed_fleet_file_restores_the_clock_only_and_names_what_differs() {
    let sim = Simulation::new(&Fleet::default_fleet());
    let saved = sim.state();
    let edited = Fleet::default_fleet_toml().replace(
        "name = \"batch-asg\"\nmin_size = 1\nmax_size = 4",
        "name = \"batch-asg\"\nmin_size = 1\nmax_size = 8",
    );
    assert_ne!(edited, Fleet::default_fleet_toml());
    let restarted = Simulation::new(&Fleet::from_toml(&edited).unwrap());
    assert_eq!(
        restarted.restore(&saved, u64::MAX),
        Restored::ClockOnly {
            why: vec!["group `batch-asg` changed".to_owned()]
        }
    );
}

#[tokio::test]
async fn a_group_remembers_a_bounded_history_and_numbers_new_instances_on() {
    let sim = Simulation::new(&Fleet::default_fleet());
    let scaling = scaling(&sim);
    for i in 0..(MAX_GROUP_HISTORY + 200) {
        sim.clock().advance(Duration::from_secs(1));
        let desired = if i % 2 == 0 { 4 } else { 2 };
        scaling
            .set_desired_capacity("api-asg", desired)
            .await
            .unwrap();
    }
    let state: Value = serde_json::from_slice(&sim.state().to_bytes()).unwrap();
    let group = &state["world"]["groups"][0];
    assert!(group["desired_log"].as_array().unwrap().len() <= MAX_GROUP_HISTORY);
    let instances = group["instances"].as_array().unwrap();
    assert!(
        instances.len() <= MAX_GROUP_HISTORY + 12,
        "{}",
        instances.len()
    );
    let ids: std::collections::BTreeSet<&str> = instances
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), instances.len(), "instance ids are never reused");
    // The bounded state restores, and the group is as it was.
    let (restored, how) = restore(&state);
    assert_eq!(how, Restored::Everything);
    assert_eq!(desired(&restored, "api-asg"), desired(&sim, "api-asg"));
}

#[tokio::test]
async fn a_saved_deployment_whose_generation_is_past_kubernetes_int64_is_not_restored() {
    let mut state = saved_after_a_change().await;
    state["world"]["deployments"][0]["generation"] = json!(u64::MAX);
    let why = why(restore(&state).1);
    assert!(why.contains("past Kubernetes' int64"), "{why}");
}

#[tokio::test]
async fn saved_containers_that_repeat_an_id_or_whose_id_counter_is_behind_are_not_restored() {
    let saved = saved_after_a_change().await;

    let mut twice = saved.clone();
    let records = twice["world"]["containers"]["records"]
        .as_array_mut()
        .unwrap();
    let mut copy = records[0].clone();
    copy["container"]["name"] = json!(format!("{}-2", copy["container"]["name"].as_str().unwrap()));
    copy["container"]["labels"]["grace.clone-of"] = records[0]["container"]["name"].clone();
    records.push(copy);
    let why_twice = why(restore(&twice).1);
    assert!(why_twice.contains("appears twice"), "{why_twice}");

    // The next container made would take an id already in use.
    let mut behind = saved;
    behind["world"]["containers"]["created"] = json!(0);
    let why_behind = why(restore(&behind).1);
    assert!(
        why_behind.contains("is behind the ids in use"),
        "{why_behind}"
    );
}
