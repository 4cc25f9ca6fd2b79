//! The simulated Docker-compatible engine.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use grace_executor::containers::{ContainerState, Health};
use grace_executor::{ContainerExecutor, ExecError, Labels};
use grace_sim::{Fleet, Simulation};

fn containers() -> Arc<dyn ContainerExecutor> {
    Simulation::new(&Fleet::default_fleet())
        .executors()
        .containers
        .default_provider()
        .map(|p| p.executor().clone())
        .expect("the simulation has a container executor")
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn names(list: &[grace_executor::containers::Container]) -> Vec<&str> {
    list.iter().map(|c| c.name.as_str()).collect()
}

#[tokio::test]
async fn list_returns_containers_carrying_every_selector_label_sorted_by_name() {
    let containers = containers();
    let all = containers.list(&Labels::new()).await.expect("lists");
    assert_eq!(names(&all), ["cache-1", "web-1", "web-2"]);
    let web = containers
        .list(&labels(&[("app", "web"), ("tier", "frontend")]))
        .await
        .expect("lists");
    assert_eq!(names(&web), ["web-1", "web-2"]);
    let none = containers
        .list(&labels(&[("app", "cache"), ("tier", "frontend")]))
        .await
        .expect("lists");
    assert!(none.is_empty());
}

#[tokio::test]
async fn container_ids_are_deterministic_hex() {
    let containers = containers();
    let web1 = containers.inspect("web-1").await.expect("exists");
    assert_eq!(web1.id, "000000000001");
    assert_eq!(
        containers
            .inspect("000000000003")
            .await
            .expect("exists")
            .name,
        "cache-1"
    );
}

#[tokio::test]
async fn restart_makes_an_unhealthy_container_running_and_healthy() {
    let containers = containers();
    let before = containers.inspect("web-1").await.expect("exists");
    assert_eq!(before.health, Health::Unhealthy);
    let after = containers.restart("web-1").await.expect("exists");
    assert_eq!(
        (after.state, after.health),
        (ContainerState::Running, Health::Healthy)
    );
    assert_eq!(after.id, before.id);
    assert_eq!(containers.inspect(&before.id).await.expect("exists"), after);
}

#[tokio::test]
async fn stop_then_start_by_id() {
    let containers = containers();
    let id = containers.inspect("web-2").await.expect("exists").id;
    let stopped = containers.stop(&id).await.expect("exists");
    assert_eq!(
        (stopped.state, stopped.health),
        (ContainerState::Exited, Health::None)
    );
    let started = containers.start(&id).await.expect("exists");
    assert_eq!(
        (started.state, started.health),
        (ContainerState::Running, Health::Healthy)
    );
}

#[tokio::test]
async fn unknown_container_is_not_found() {
    let containers = containers();
    assert!(matches!(
        containers.inspect("web-9").await,
        Err(ExecError::NotFound(_))
    ));
    assert!(matches!(
        containers.restart("web-9").await,
        Err(ExecError::NotFound(_))
    ));
    assert!(matches!(
        containers.start("web-9").await,
        Err(ExecError::NotFound(_))
    ));
    assert!(matches!(
        containers.stop("web-9").await,
        Err(ExecError::NotFound(_))
    ));
}

#[tokio::test]
async fn scale_up_clones_the_first_running_match_under_the_next_free_names() {
    let containers = containers();
    let web = labels(&[("app", "web")]);
    let scaled = containers.scale(&web, 4).await.expect("scales");
    assert_eq!(names(&scaled), ["web-1", "web-2", "web-3", "web-4"]);
    let clone = &scaled[2];
    assert_eq!(clone.image, "localhost/busybox:local");
    assert_eq!(
        clone.labels,
        labels(&[
            ("app", "web"),
            ("grace.clone-of", "web-1"),
            ("tier", "frontend")
        ])
    );
    assert_eq!(
        (clone.state, clone.health),
        (ContainerState::Running, Health::Healthy)
    );
    assert_eq!(clone.id, "000000000004");
}

#[tokio::test]
async fn scale_down_removes_only_clones_and_stops_the_containers_people_made() {
    let containers = containers();
    let web = labels(&[("app", "web")]);
    containers.scale(&web, 4).await.expect("scales");
    let scaled = containers.scale(&web, 1).await.expect("scales");
    assert_eq!(names(&scaled), ["web-1"]);
    // web-3 and web-4 were clones: removed. web-2 came with the fleet: stopped, kept.
    assert_eq!(
        names(&containers.list(&Labels::new()).await.expect("lists")),
        ["cache-1", "web-1", "web-2"]
    );
    assert_eq!(
        containers.inspect("web-2").await.expect("kept").state,
        ContainerState::Exited
    );
}

#[tokio::test]
async fn scale_counts_only_running_containers() {
    let containers = containers();
    let web = labels(&[("app", "web")]);
    containers.stop("web-1").await.expect("exists");
    let scaled = containers.scale(&web, 2).await.expect("scales");
    assert_eq!(names(&scaled), ["web-2", "web-3"]);
    assert_eq!(
        containers.inspect("web-1").await.expect("kept").state,
        ContainerState::Exited
    );
}

#[tokio::test]
async fn scale_with_a_selector_matching_no_container_is_not_found() {
    let containers = containers();
    let error = containers
        .scale(&labels(&[("app", "db")]), 2)
        .await
        .expect_err("nothing to clone");
    assert!(matches!(error, ExecError::NotFound(_)), "{error:?}");
    assert!(error.to_string().contains("`app=db`"), "{error}");
}
