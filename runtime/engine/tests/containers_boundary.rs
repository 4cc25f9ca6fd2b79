//! The containers capability acts on what it checked (on the simulated fleet; the same against
//! a real engine is in `tests/parity/tests/containers_boundary.rs`):
//!
//! - a reference is resolved once, and the change acts on the resolved container's id;
//! - a refusal names only what the guest wrote, the same for a missing container and one
//!   outside the grant, so refusals cannot be used to list what lies outside it;
//! - a scale is judged by the trust core on the containers' own labels, not on the selector
//!   the guest chose, and a selector spanning environments is refused;
//! - a read of logs is judged on the container found (its name and labels), not on the id or
//!   id prefix the guest wrote;
//! - routing holds for what was resolved: a container whose name routes to another provider than
//!   the one its reference reached is refused, and a label value holding `,` and `=` is not
//!   routed as another selector.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use grace_engine::trust::{Ask, Trust, TrustDecision};
use grace_engine::{Guest, RunReport};
use grace_executor::containers::Container;
use grace_executor::providers::{Route, Routes};
use grace_executor::{ContainerExecutor, ExecError, Executors, Labels, Providers};
use grace_ledger::Verdict;
use grace_sim::Fleet;
use serde_json::json;

/// The `container-prober` fixture with `config` as its `[config]` table.
fn prober(config: &str) -> Guest {
    build_guests();
    let dir = fixture("container-prober");
    let text = std::fs::read_to_string(dir.join("playbook.toml")).unwrap();
    let text = text.replace("[config]\n", &format!("[config]\n{config}\n"));
    let manifest = grace_engine::Manifest::parse(&text).unwrap();
    let bytes = std::fs::read(dir.join(&manifest.component)).unwrap();
    engine()
        .guest(manifest, &bytes, "container-prober")
        .unwrap()
}

fn probe(world: &World, guest: &Guest) -> RunReport {
    world.run(guest, &event("test.hostile", "web", json!({})))
}

/// `sim`'s containers, as its one provider serves them.
fn containers_of(sim: &grace_sim::Simulation) -> Arc<dyn ContainerExecutor> {
    sim.executors()
        .containers
        .default_provider()
        .unwrap()
        .executor()
        .clone()
}

/// The container `reference` names on `sim`.
fn inspect(sim: &grace_sim::Simulation, reference: &str) -> Container {
    runtime()
        .block_on(containers_of(sim).inspect(reference))
        .unwrap()
}

/// Whether `sim` logged a restart of `name`.
fn restarted(sim: &grace_sim::Simulation, name: &str) -> bool {
    let log = runtime()
        .block_on(containers_of(sim).logs(name, 100))
        .unwrap();
    log.iter().any(|l| l.contains("restarted"))
}

/// How many of the run's ledger entries are denials that `which` picks.
fn denials(
    world: &World,
    report: &RunReport,
    which: impl Fn(&grace_ledger::Entry) -> bool,
) -> usize {
    world
        .ledger
        .entries_for_run(&report.run_id)
        .unwrap()
        .into_iter()
        .filter(|e| e.decision.verdict == Verdict::Denied && which(e))
        .count()
}

/// `world`'s trust core replaced by a [`Witness`], returned.
fn witnessed(world: &mut World) -> Arc<Witness> {
    let witness: Arc<Witness> = Arc::default();
    world.env.trust = witness.clone();
    witness
}

/// Passes every call to the simulated fleet, and remembers which container each change was
/// made on: the id the capability handed the executor.
struct Observed {
    inner: Arc<dyn ContainerExecutor>,
    acted_on: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl ContainerExecutor for Observed {
    async fn list(&self, selector: &Labels) -> Result<Vec<Container>, ExecError> {
        self.inner.list(selector).await
    }
    async fn inspect(&self, id: &str) -> Result<Container, ExecError> {
        self.inner.inspect(id).await
    }
    async fn restart(&self, id: &str) -> Result<Container, ExecError> {
        self.acted_on.lock().unwrap().push(id.to_owned());
        self.inner.restart(id).await
    }
    async fn start(&self, id: &str) -> Result<Container, ExecError> {
        self.acted_on.lock().unwrap().push(id.to_owned());
        self.inner.start(id).await
    }
    async fn stop(&self, id: &str) -> Result<Container, ExecError> {
        self.acted_on.lock().unwrap().push(id.to_owned());
        self.inner.stop(id).await
    }
    async fn scale(&self, selector: &Labels, replicas: u32) -> Result<Vec<Container>, ExecError> {
        self.inner.scale(selector, replicas).await
    }
    async fn logs(&self, id: &str, tail: u32) -> Result<Vec<String>, ExecError> {
        self.inner.logs(id, tail).await
    }
    async fn reconcile(
        &self,
        change: &grace_executor::containers::Change,
    ) -> Result<grace_executor::Reconciled<Container>, ExecError> {
        self.inner.reconcile(change).await
    }
}

#[test]
fn a_change_acts_on_the_container_the_check_resolved_not_on_the_guests_text() {
    let mut world = World::new();
    let observed = Arc::new(Observed {
        inner: containers_of(&world.sim),
        acted_on: Mutex::default(),
    });
    world.env.executors.containers = Providers::single(grace_sim::PROVIDER, observed.clone());
    let web_2 = runtime().block_on(observed.inspect("web-2")).unwrap().id;

    let report = probe(&world, &prober("restart = \"web-2\""));

    assert_eq!(results(&report), [format!("ok {web_2}")]);
    assert_eq!(*observed.acted_on.lock().unwrap(), [web_2]);
}

#[test]
fn a_refusal_is_the_same_for_a_missing_container_and_one_outside_the_grant() {
    let world = World::new();
    let cache = inspect(&world.sim, "cache-1");
    let references = ["cache-1", cache.id.as_str(), "no-such-container"];

    let report = probe(
        &world,
        &prober(&format!("restart = \"{}\"", references.join(","))),
    );

    let results = results(&report);
    for (result, reference) in results.iter().zip(references) {
        assert_eq!(
            result,
            &format!(
                "denied: container `{reference}` does not exist or is outside this playbook's grant"
            )
        );
    }
    // The guest learned nothing it did not write: not the name behind the id, not the labels.
    assert!(!results[1].contains("cache-1"), "{}", results[1]);
    assert!(results.iter().all(|r| !r.contains("app=cache")));
    // Nothing was restarted, and every refusal is on record.
    assert!(!restarted(&world.sim, "cache-1"));
    assert_eq!(denials(&world, &report, |e| e.function == "restart"), 3);
}

/// Allows everything; remembers how each change's resource, and each read's, was described
/// to it.
#[derive(Default)]
struct Witness {
    resources: Mutex<Vec<grace_model::resource::Resource>>,
    reads: Mutex<Vec<grace_model::resource::Resource>>,
}

#[async_trait::async_trait]
impl Trust for Witness {
    async fn decide(&self, ask: &Ask<'_>) -> TrustDecision {
        if let Some(proposal) = ask.proposal {
            self.resources
                .lock()
                .unwrap()
                .push(proposal.resource.clone());
        } else if let Some(resource) = &ask.call.resource {
            self.reads.lock().unwrap().push(resource.clone());
        }
        TrustDecision::allow("witnessed")
    }
}

fn fleet_of_web(environments: [&str; 2]) -> World {
    let toml = format!(
        r#"
[[containers]]
name = "web-1"
image = "localhost/busybox:local"
labels = {{ app = "web", env = "{}" }}
health = "healthy"

[[containers]]
name = "web-2"
image = "localhost/busybox:local"
labels = {{ app = "web", env = "{}" }}
health = "healthy"
"#,
        environments[0], environments[1]
    );
    World::with_fleet(&Fleet::from_toml(&toml).unwrap())
}

#[test]
fn a_scale_is_judged_by_the_containers_own_environment_not_by_the_selector() {
    let mut world = fleet_of_web(["production", "production"]);
    let witness = witnessed(&mut world);

    // The selector leaves `env` out: the containers it scales are production all the same.
    let report = probe(&world, &prober("scale = \"app=web\"\nreplicas = 3"));

    assert_eq!(results(&report), ["ok 3 running"]);
    let resources = witness.resources.lock().unwrap();
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].environment.as_deref(), Some("production"));
}

#[test]
fn a_selector_spanning_two_environments_is_refused_before_the_trust_core_is_asked() {
    let mut world = fleet_of_web(["production", "staging"]);
    let witness = witnessed(&mut world);

    let report = probe(&world, &prober("scale = \"app=web\"\nreplicas = 3"));

    let results = results(&report);
    assert!(
        results[0].starts_with(
            "invalid argument: the selector spans containers that differ in label `env`"
        ),
        "{}",
        results[0]
    );
    assert!(witness.resources.lock().unwrap().is_empty());
    let snapshot = serde_json::to_value(world.sim.snapshot()).unwrap();
    assert_eq!(snapshot["containers"].as_array().unwrap().len(), 2);
}

#[test]
fn a_selector_spanning_containers_that_differ_in_any_label_is_refused() {
    // A policy may read any label (`resource.hasTag("pci")`): judging the plain container's
    // labels would let the scale clone the `pci` one unseen.
    let toml = r#"
[[containers]]
name = "web-1"
image = "localhost/busybox:local"
labels = { app = "web", pci = "true" }
health = "healthy"

[[containers]]
name = "web-2"
image = "localhost/busybox:local"
labels = { app = "web" }
health = "healthy"
"#;
    let mut world = World::with_fleet(&Fleet::from_toml(toml).unwrap());
    let witness = witnessed(&mut world);

    let report = probe(&world, &prober("scale = \"app=web\"\nreplicas = 3"));

    assert_eq!(
        results(&report),
        [
            "invalid argument: the selector spans containers that differ in label `pci` (`true` and none); narrow it to containers labelled alike"
        ]
    );
    assert!(witness.resources.lock().unwrap().is_empty());
}

#[test]
fn a_scale_above_the_granted_max_replicas_is_denied() {
    let world = World::new();
    let report = probe(&world, &prober("scale = \"app=web\"\nreplicas = 6"));
    assert_eq!(
        results(&report),
        ["denied: 6 replicas is above the granted max_replicas 5"]
    );
}

#[test]
fn logs_read_by_an_id_prefix_are_judged_on_the_container_found() {
    let mut world = World::new();
    let witness = witnessed(&mut world);
    let web_1 = inspect(&world.sim, "web-1");
    let prefix = &web_1.id[..12];

    let report = probe(&world, &prober(&format!("logs = \"{prefix}\"")));

    assert!(
        results(&report)[0].starts_with("ok "),
        "{:?}",
        results(&report)
    );
    let reads = witness.reads.lock().unwrap();
    assert_eq!(reads.len(), 1, "{reads:?}");
    // Named as a policy names it, with the labels a policy reads, not the guest's prefix.
    assert_eq!(reads[0].id, "web-1");
    assert_eq!(reads[0].name, "web-1");
    assert_eq!(reads[0].image.as_deref(), Some("localhost/busybox:local"));
    assert_eq!(reads[0].labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(reads[0].tier.as_deref(), Some("frontend"));
}

/// `world`'s executors with a second simulated fleet, `sim-eu`, beside `sim` for containers:
/// resources matching `pattern` go to `sim-eu`, the rest to `sim`.
fn two_engines(world: &mut World, pattern: &str) -> grace_sim::Simulation {
    let eu = grace_sim::Simulation::new(&Fleet::default_fleet());
    let mut containers: Providers<dyn ContainerExecutor> = Providers::none();
    containers.insert(grace_sim::PROVIDER, containers_of(&world.sim));
    containers.insert("sim-eu", containers_of(&eu));
    containers
        .set_routes(Routes {
            routes: vec![Route {
                pattern: pattern.into(),
                provider: "sim-eu".into(),
            }],
            default: Some(grace_sim::PROVIDER.into()),
        })
        .unwrap();
    world.env.executors = Executors {
        containers,
        ..world.sim.executors()
    };
    eu
}

#[test]
fn a_container_whose_name_routes_to_another_provider_than_its_reference_is_refused() {
    let mut world = World::new();
    // Names `web-*` belong to `sim-eu`; an id routes to `sim`, which holds a `web-1` too.
    let eu = two_engines(&mut world, "web-*");
    let web_1 = inspect(&world.sim, "web-1");

    let report = probe(
        &world,
        &prober(&format!(
            "restart = \"{}\"\nlogs = \"{}\"",
            web_1.id, web_1.id
        )),
    );

    let refusal = format!(
        "denied: container `{}` was found on provider `sim`, but its name routes to provider `sim-eu`",
        web_1.id
    );
    assert_eq!(results(&report), [refusal.clone(), refusal]);
    // Neither engine restarted anything, and both refusals are on record.
    for sim in [&world.sim, &eu] {
        assert!(!restarted(sim, "web-1"));
    }
    assert_eq!(denials(&world, &report, |e| e.interface == "containers"), 2);
}

#[test]
fn a_label_value_holding_separators_is_not_routed_as_another_selector() {
    let mut world = World::new();
    // The operator sends `{app: web, env: prod}` to `sim-eu`.
    two_engines(&mut world, "app=web,env=prod");

    // One label, `app`, whose value reads like two.
    let report = probe(&world, &prober("list-app = \"web,env=prod\""));

    assert_eq!(results(&report), ["ok 0 listed"]);
    let list = world
        .ledger
        .entries_for_run(&report.run_id)
        .unwrap()
        .into_iter()
        .find(|e| e.function == "list")
        .unwrap();
    assert_eq!(
        list.result["provider"],
        grace_sim::PROVIDER,
        "{:?}",
        list.result
    );
}
