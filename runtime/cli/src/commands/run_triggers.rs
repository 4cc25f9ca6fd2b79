//! `grace run --event`: which of the playbook's triggers the event satisfies, and why not.
//!
//! The verdict is the trigger mesh's own: a fresh [`Mesh`] holding only this playbook is offered
//! the event, and a trigger holds when the mesh matched its event type and resource and found
//! its condition true (whatever it then decided about `for`, which one event cannot satisfy).
//! The explanation beside it names the glob that did not match, or the condition's inputs as
//! the condition read them ([`grace_engine::condition::Condition::inputs`]). `for` windows,
//! cooldowns and dedup keys depend on other events and runs: they are reported as not
//! evaluated.

use std::fmt::Write as _;

use grace_engine::manifest::Hold;
use grace_engine::text::escape;
use grace_engine::{Manifest, TriggerEvent};
use grace_mesh::{Decision, Mesh, PlaybookTriggers, Suppression};
use serde::Serialize;
use serde_json::Value;

/// What one trigger made of the event.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerCheck {
    /// Its index in the manifest.
    pub index: usize,
    /// Whether event type, resource and condition all hold.
    pub holds: bool,
    /// The trigger's event-type glob, and whether the event's type matches it.
    pub event_type: (String, bool),
    /// The trigger's resource glob, and whether the event's resource matches it.
    pub resource: (String, bool),
    /// The condition, if any, and whether it held (`None`: not evaluated, a glob did not match).
    pub condition: Option<ConditionCheck>,
    /// What a single event cannot tell: `for`, `cooldown`, `dedup_key`.
    pub not_evaluated: Vec<String>,
}

/// A condition and what it read.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionCheck {
    /// The condition's text.
    pub text: String,
    /// Whether it held; `None` when not evaluated.
    pub holds: Option<bool>,
    /// Each path it reads and its value on the event.
    pub inputs: Vec<(String, Value)>,
}

/// Checks each of `manifest`'s triggers on `event`, whose resource the health graph describes
/// as `graph` (`event.graph` in conditions; the simulated fleet's graph in a dry run).
pub fn check(
    manifest: &Manifest,
    event: &TriggerEvent,
    graph: Option<&Value>,
) -> Vec<TriggerCheck> {
    let mut mesh = Mesh::new();
    mesh.set_playbook(PlaybookTriggers::from_manifest(manifest));
    // One decision per trigger whose globs match; a false condition is described too.
    let decisions = mesh.offer_with(event, graph);
    manifest
        .triggers
        .iter()
        .enumerate()
        .map(|(index, t)| {
            let decision = decisions.iter().find(|d| d.trigger() == index);
            let condition_held = decision.map(|d| {
                !matches!(
                    d,
                    Decision::Suppressed {
                        reason: Suppression::ConditionFalse,
                        ..
                    }
                )
            });
            let mut not_evaluated = Vec::new();
            if let Some(hold) = t.hold_for {
                not_evaluated.push(format!("for {}", hold_text(hold)));
            }
            if let Some(c) = t.cooldown {
                not_evaluated.push(format!("cooldown `{}`", humantime::format_duration(c)));
            }
            if let Some(k) = &t.dedup_key {
                not_evaluated.push(format!("dedup_key `{k}`"));
            }
            TriggerCheck {
                index,
                holds: condition_held == Some(true),
                event_type: (
                    t.event_type.to_string(),
                    t.event_type.matches(&event.event_type),
                ),
                resource: (t.resource.to_string(), t.resource.matches(&event.resource)),
                condition: t.condition.as_ref().map(|c| ConditionCheck {
                    text: c.to_string(),
                    holds: condition_held,
                    inputs: c.inputs_with(event, graph),
                }),
                not_evaluated,
            }
        })
        .collect()
}

fn hold_text(hold: Hold) -> String {
    match hold {
        Hold::Duration(d) => format!("`{}`", humantime::format_duration(d)),
        Hold::Events(n) => format!("`{n} events`"),
    }
}

/// The checks for people: one paragraph per trigger.
pub fn section(out: &mut String, checks: &[TriggerCheck], event: &TriggerEvent) {
    if checks.is_empty() {
        let _ = writeln!(out, "triggers none: the playbook has no trigger to check");
    }
    for c in checks {
        let verdict = if c.holds { "holds" } else { "does not hold" };
        let _ = writeln!(out, "trigger  #{} {verdict}", c.index);
        let (glob, ok) = &c.event_type;
        let _ = writeln!(
            out,
            "         event type `{}` {} `{}`",
            escape(&event.event_type),
            if *ok { "matches" } else { "does not match" },
            escape(glob)
        );
        let (glob, ok) = &c.resource;
        let _ = writeln!(
            out,
            "         resource `{}` {} `{}`",
            escape(&event.resource),
            if *ok { "matches" } else { "does not match" },
            escape(glob)
        );
        match &c.condition {
            None => {
                let _ = writeln!(out, "         condition none: every matching event");
            }
            Some(cond) => {
                let result = match cond.holds {
                    Some(true) => "true",
                    Some(false) => "false",
                    None => "not evaluated (the event does not match the trigger)",
                };
                let inputs: Vec<String> = cond
                    .inputs
                    .iter()
                    .map(|(path, v)| format!("{path} = {v}"))
                    .collect();
                let with = if inputs.is_empty() || cond.holds.is_none() {
                    String::new()
                } else {
                    format!(" with {}", inputs.join(", "))
                };
                let _ = writeln!(
                    out,
                    "         condition `{}` is {result}{}",
                    escape(&cond.text),
                    escape(&with)
                );
            }
        }
        if !c.not_evaluated.is_empty() {
            let _ = writeln!(
                out,
                "         not evaluated for a single event: {}",
                escape(&c.not_evaluated.join(", "))
            );
        }
    }
}
