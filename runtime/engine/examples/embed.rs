//! The smallest complete GRACE host: an engine, a simulated fleet, a ledger, one playbook run.
//!
//! ```sh
//! just build-playbooks
//! cargo run -p grace-engine --example embed
//! ```

use grace_engine::trust::PassThrough;
use std::sync::Arc;

use grace_engine::{Engine, EngineConfig, RunEnv, TriggerEvent};
use grace_ledger::{Durability, Ledger};
use grace_sim::{Fleet, Simulation};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Compiling a component is the slow part; the engine caches it by digest.
    let engine = Engine::new(&EngineConfig::default())?;
    let playbook = engine.load(std::path::Path::new("playbooks/examples/scale-on-latency"))?;

    // The default fleet: api-service behind api-asg, p95 latency ~900 ms.
    let sim = Simulation::new(&Fleet::default_fleet());
    let dir = tempfile::tempdir()?;
    let ledger = Arc::new(Ledger::open(
        dir.path().join("grace.redb"),
        Durability::Immediate,
    )?);

    let event = TriggerEvent::from_json(
        r#"{"event_type": "metrics.latency", "source": "example", "actor": "embed",
            "resource": "api-service", "payload": {"value": 912.0}}"#,
        0,
    )?;
    let report = engine
        .run_playbook(
            &playbook,
            &event,
            &RunEnv::new(sim.executors(), ledger.clone(), Arc::new(PassThrough)),
        )
        .await;
    // The run's `finished` record is submitted when the run returns; wait for it.
    ledger.flush().await?;

    println!(
        "{}: {:?}",
        report.status,
        report.outcome.as_ref().map(|o| &o.summary)
    );
    for action in report.actions() {
        println!(
            "action: {}.{} {}",
            action.interface, action.function, action.args
        );
    }
    println!("{}", sim.snapshot());
    println!("ledger: {:?}", ledger.verify()?);
    Ok(())
}
