//! Replaying an incident: recorded events against playbooks, in simulation, in virtual time.
//!
//! The same trigger mesh as the server decides what fires; each fired playbook runs against the
//! simulated fleet, and stays active (holding its exclusivity locks and dedup key) until the
//! virtual clock passes the moment it finished, so events that arrived while it ran see it busy
//! exactly as they would have live. Every call is decided by the trust core the caller gives
//! (for a dry run, [`crate::trust::offline::dry_run`]): the policies, guardrails and risk model
//! `grace serve` would apply, with the replayed deployment events weighing on the risk score.

use std::sync::Arc;
use std::time::Duration;

use grace_engine::{Engine, Guest, Kind, RunEnv, RunReport, TriggerEvent};
use grace_executor::Clock;
use grace_ledger::Ledger;
use grace_mesh::{Decision, Mesh, PlaybookTriggers, RunKey};
use grace_sim::{FleetSnapshot, Simulation};

use crate::trust::HostTrust;
use serde::Serialize;

/// What happened to one event.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayStep {
    /// The event.
    pub event: TriggerEvent,
    /// For each matching (playbook, trigger): `fired` or why not.
    pub decisions: Vec<StepDecision>,
}

/// One trigger's decision about one event.
#[derive(Debug, Clone, Serialize)]
pub struct StepDecision {
    /// Playbook name.
    pub playbook: String,
    /// Trigger index in its manifest.
    pub trigger: usize,
    /// `fired`, or the suppression reason.
    pub decision: String,
    /// Details of the suppression, for people.
    pub detail: Option<String>,
    /// The run, when it fired.
    pub run: Option<RunReport>,
}

/// The whole replay.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Event by event.
    pub steps: Vec<ReplayStep>,
    /// The fleet before the first event.
    pub fleet_before: FleetSnapshot,
    /// The fleet after the last run.
    pub fleet_after: FleetSnapshot,
}

/// Replays `events` (sorted by timestamp, stable) against `guests` on `sim`, each call decided
/// by `trust`.
pub async fn replay(
    engine: &Engine,
    guests: &[Guest],
    mut events: Vec<TriggerEvent>,
    sim: &Simulation,
    ledger: Arc<Ledger>,
    trust: Arc<HostTrust>,
) -> ReplayReport {
    let mut mesh = Mesh::new();
    for g in guests.iter().filter(|g| g.manifest.kind == Kind::Playbook) {
        mesh.set_playbook(PlaybookTriggers::from_manifest(&g.manifest));
    }
    events.sort_by_key(|e| e.timestamp);
    let clock = sim.clock();
    let env = RunEnv::new(sim.executors(), ledger, trust.clone());
    let fleet_before = sim.snapshot();
    let mut active: Vec<(u64, RunKey)> = Vec::new();
    let mut steps = Vec::with_capacity(events.len());
    for event in events {
        let now = clock.now_millis();
        if event.timestamp > now {
            clock.advance(Duration::from_millis(event.timestamp - now));
        }
        // Runs that finished (in virtual time) before this event release their locks.
        active.retain(|(finished_at, key)| {
            if *finished_at <= event.timestamp {
                mesh.run_finished(key);
                false
            } else {
                true
            }
        });
        trust.observe(&event);
        let mut decisions = Vec::new();
        // Conditions on `event.graph` read the simulated fleet's graph as it is at the event.
        let facts = env
            .executors
            .graph
            .as_ref()
            .and_then(|g| g.facts(&event.resource));
        for decision in mesh.offer_with(&event, facts.as_ref()) {
            match decision {
                Decision::Fire {
                    playbook,
                    trigger,
                    run: key,
                    ..
                } => {
                    let guest = guests.iter().find(|g| g.manifest.name == playbook);
                    let report = match guest {
                        Some(g) => Some(engine.run_playbook(g, &event, &env).await),
                        None => None,
                    };
                    let finished_at = report.as_ref().map_or(event.timestamp, |r| r.finished_at);
                    active.push((finished_at, key));
                    decisions.push(StepDecision {
                        playbook,
                        trigger,
                        decision: "fired".into(),
                        detail: None,
                        run: report,
                    });
                }
                Decision::Suppressed {
                    playbook,
                    trigger,
                    reason,
                    ..
                } => decisions.push(StepDecision {
                    playbook,
                    trigger,
                    decision: reason.name().into(),
                    detail: Some(reason.to_string()),
                    run: None,
                }),
            }
        }
        steps.push(ReplayStep { event, decisions });
    }
    ReplayReport {
        steps,
        fleet_before,
        fleet_after: sim.snapshot(),
    }
}
