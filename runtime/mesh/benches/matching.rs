//! What deciding an event costs, against parsing it, measured in the same process.
//!
//! `cargo bench -p grace-mesh --bench matching`. Plain `main`, no harness.
//!
//! 1,000 triggers over 250 playbooks: 900 with exact event types (9 on each of 100 types) and
//! 100 with wildcard event types (5 on each of 20 patterns; every event type matches two), with
//! resource globs (`*`, `svc-1*`, one exact resource), conditions such as
//! `value > 500 && labels.env == "prod"`, holds (`2m`, `3 events`), cooldowns, dedup keys and
//! exclusivity locks. 1,000,000 events are built up front (200 resources, timestamps 1 ms apart),
//! then offered one by one to a fresh mesh; each fired run finishes 1,000 events later.
//!
//! The baseline is what any ingest does anyway: parsing the same 1,000,000 events from their
//! JSON text, with `serde_json` into a `Value` and with `TriggerEvent::from_json` (which also
//! validates). Shared machines are noisy, so the mesh and the baselines are measured in several
//! rounds, interleaved, with the order alternating; the table shows every round and the medians.

#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, VecDeque};
use std::hint::black_box;
use std::time::{Duration, Instant};

use grace_mesh::{Decision, Mesh, PlaybookTriggers, RunKey};
use grace_model::TriggerEvent;
use grace_model::manifest::Manifest;

const EVENTS: usize = 1_000_000;
const ROUNDS: usize = 3;
const EVENT_TYPES: usize = 100;
const RESOURCES: usize = 200;
const PLAYBOOKS: usize = 250;
const TRIGGERS_PER_PLAYBOOK: usize = 4;
/// A fired run finishes this many events later.
const RUN_LENGTH: usize = 1_000;

/// A deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn event_type(i: usize) -> String {
    format!("metrics.t{i:03}")
}

/// The `[[triggers]]` table of trigger `n` (0..1000).
fn trigger_toml(n: usize, rng: &mut Rng) -> String {
    let event_type = if n < 900 {
        // 9 triggers on each of the 100 event types.
        event_type(n % EVENT_TYPES)
    } else {
        // 20 patterns, 5 triggers each: `metrics.t0*` .. `metrics.t9*` and `*0` .. `*9`.
        let k = (n - 900) % 20;
        if k < 10 {
            format!("metrics.t{k}*")
        } else {
            format!("*{}", k - 10)
        }
    };
    let resource = match n % 3 {
        0 => "*".to_owned(),
        1 => "svc-1*".to_owned(),
        _ => format!("svc-{}", rng.below(RESOURCES)),
    };
    let condition = match n % 5 {
        0 | 1 => r#"value > 500 && labels.env == "prod""#,
        2 => "value > 900",
        3 => r#"labels.env in ["prod", "staging"] && value >= 100"#,
        _ => r#"!(labels.env == "dev") || value > 990"#,
    };
    let mut t = format!(
        "[[triggers]]\nevent_type = \"{event_type}\"\nresource = \"{resource}\"\ncondition = '{condition}'\n"
    );
    match n % 8 {
        0 | 1 => t.push_str("for = \"2m\"\n"),
        2 => t.push_str("for = \"3 events\"\n"),
        _ => {}
    }
    if n.is_multiple_of(4) {
        t.push_str("cooldown = \"10m\"\n");
    }
    if n % 4 == 1 {
        t.push_str("dedup_key = \"{resource}:{labels.env}\"\n");
    }
    t
}

fn playbooks() -> Vec<PlaybookTriggers> {
    let mut rng = Rng(0xC0FF_EE00_D15E_A5E5);
    // Spread trigger numbers over playbooks so that each has a mix.
    let mut by_playbook: Vec<Vec<usize>> = vec![Vec::new(); PLAYBOOKS];
    for n in 0..PLAYBOOKS * TRIGGERS_PER_PLAYBOOK {
        by_playbook[n % PLAYBOOKS].push(n);
    }
    by_playbook
        .into_iter()
        .enumerate()
        .map(|(p, triggers)| {
            let name = format!("playbook-{p:03}");
            let tables: String = triggers.iter().map(|&n| trigger_toml(n, &mut rng)).collect();
            let manifest = Manifest::parse(&format!(
                "manifest_version = 1\nname = \"{name}\"\nversion = \"1.0.0\"\nkind = \"playbook\"\ncomponent = \"x.wasm\"\n{tables}"
            ))
            .unwrap();
            let locks = match p % 3 {
                0 => vec!["scaling".to_owned()],
                1 => vec!["containers".to_owned()],
                _ => Vec::new(),
            };
            PlaybookTriggers {
                playbook: name,
                triggers: manifest.triggers,
                locks,
            }
        })
        .collect()
}

fn event_texts() -> Vec<String> {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let start: u64 = 1_767_225_600_000;
    (0..EVENTS)
        .map(|i| {
            let env = ["prod", "prod", "staging", "dev"][rng.below(4)];
            format!(
                r#"{{"event_type":"{}","source":"prometheus","actor":"collector","resource":"svc-{}","payload":{{"value":{},"labels":{{"env":"{env}"}}}},"timestamp":{}}}"#,
                event_type(rng.below(EVENT_TYPES)),
                rng.below(RESOURCES),
                rng.below(1000),
                start + i as u64,
            )
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    decisions: u64,
    fired: u64,
    reasons: BTreeMap<&'static str, u64>,
}

/// One pass: a fresh mesh, every event offered, runs finished `RUN_LENGTH` events after firing.
fn mesh_pass(playbooks: &[PlaybookTriggers], events: &[TriggerEvent]) -> (Duration, Tally, Mesh) {
    let mut mesh = Mesh::new();
    for p in playbooks {
        mesh.set_playbook(p.clone());
    }
    assert_eq!(mesh.len(), PLAYBOOKS * TRIGGERS_PER_PLAYBOOK);
    let mut tally = Tally::default();
    let mut active: VecDeque<(usize, RunKey)> = VecDeque::new();
    let started = Instant::now();
    for (i, event) in events.iter().enumerate() {
        while active.front().is_some_and(|(at, _)| at + RUN_LENGTH <= i) {
            let (_, key) = active.pop_front().unwrap();
            mesh.run_finished(&key);
        }
        for decision in mesh.offer(event) {
            tally.decisions += 1;
            match decision {
                Decision::Fire { run, .. } => {
                    tally.fired += 1;
                    active.push_back((i, run));
                }
                Decision::Suppressed { reason, .. } => {
                    *tally.reasons.entry(reason.name()).or_default() += 1;
                }
            }
        }
    }
    (started.elapsed(), tally, mesh)
}

fn parse_values(texts: &[String]) -> Duration {
    let started = Instant::now();
    for t in texts {
        black_box(serde_json::from_str::<serde_json::Value>(t).unwrap());
    }
    started.elapsed()
}

fn parse_events(texts: &[String]) -> Duration {
    let started = Instant::now();
    for t in texts {
        black_box(TriggerEvent::from_json(t, 0).unwrap());
    }
    started.elapsed()
}

fn ns_per_event(d: Duration) -> f64 {
    d.as_nanos() as f64 / EVENTS as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let playbooks = playbooks();
    let texts = event_texts();
    let events: Vec<TriggerEvent> = texts
        .iter()
        .map(|t| TriggerEvent::from_json(t, 0).unwrap())
        .collect();
    println!(
        "trigger mesh: {} triggers on {PLAYBOOKS} playbooks (900 exact over {EVENT_TYPES} event types, 100 wildcard over 20 patterns)",
        PLAYBOOKS * TRIGGERS_PER_PLAYBOOK
    );
    println!(
        "{EVENTS} pre-built events over {RESOURCES} resources, 1 ms apart; runs finish {RUN_LENGTH} events after firing\n"
    );
    println!(
        "{:>5} {:>14} {:>14} {:>22} {:>12}",
        "round", "mesh ns/event", "Value ns/event", "from_json ns/event", "mesh/Value"
    );
    let (mut mesh_ns, mut value_ns, mut event_ns, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for round in 0..ROUNDS {
        let (m, v, e);
        if round % 2 == 0 {
            let pass = mesh_pass(&playbooks, &events);
            m = pass.0;
            last = Some((pass.1, pass.2));
            v = parse_values(&texts);
            e = parse_events(&texts);
        } else {
            e = parse_events(&texts);
            v = parse_values(&texts);
            let pass = mesh_pass(&playbooks, &events);
            m = pass.0;
            last = Some((pass.1, pass.2));
        }
        let (m, v, e) = (ns_per_event(m), ns_per_event(v), ns_per_event(e));
        println!(
            "{:>5} {m:>14.0} {v:>14.0} {e:>22.0} {:>12.2}",
            round + 1,
            m / v
        );
        mesh_ns.push(m);
        value_ns.push(v);
        event_ns.push(e);
        ratios.push(m / v);
    }
    let (m, v, e, r) = (
        median(mesh_ns),
        median(value_ns),
        median(event_ns),
        median(ratios),
    );
    println!("{:>5} {m:>14.0} {v:>14.0} {e:>22.0} {r:>12.2}", "med");
    println!();
    println!(
        "mesh:                        {:>10.0} events/s  ({m:.0} ns/event)",
        1e9 / m
    );
    println!(
        "serde_json::Value parse:     {:>10.0} events/s  ({v:.0} ns/event)",
        1e9 / v
    );
    println!(
        "TriggerEvent::from_json:     {:>10.0} events/s  ({e:.0} ns/event)",
        1e9 / e
    );
    println!("mesh / serde_json parse:     {r:.2}x the time");
    if let Some((tally, mesh)) = last {
        let stats = mesh.stats();
        println!();
        println!(
            "per pass: {} decisions ({:.1} per event), {} fired, suppressed: {}",
            tally.decisions,
            tally.decisions as f64 / EVENTS as f64,
            tally.fired,
            tally
                .reasons
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "state at the end: {} windows ({} evicted), {} cooldowns, {} dedup keys, {} locks",
            stats.windows, stats.windows_evicted, stats.cooldowns, stats.dedup_keys, stats.locks
        );
    }
}
