//! The [`Mesh`]: the loaded triggers, indexed for matching, and the state their decisions depend
//! on (hold windows, cooldowns, dedup keys of active runs, exclusivity locks).

use std::collections::HashMap;
use std::sync::Arc;

use grace_model::TriggerEvent;
use grace_model::grants::Grants;
use grace_model::manifest::{Hold, Manifest, Trigger};
use serde::Serialize;
use serde_json::Value;

use crate::decision::{Decision, RunKey, Suppression};
use crate::pattern::Pattern;
use crate::windows::{TableId, Windows};

/// How many hold windows a mesh keeps by default (see [`Mesh::with_max_windows`]).
pub const DEFAULT_MAX_WINDOWS: usize = 100_000;
/// Cooldown entries are not pruned below this many.
const MIN_COOLDOWN_PRUNE: usize = 1024;
/// Event types whose candidate triggers are remembered; the memo starts over when full.
const MAX_MEMO_EVENT_TYPES: usize = 4096;

/// One playbook's triggers, as the mesh needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaybookTriggers {
    /// The playbook's name.
    pub playbook: String,
    /// Its triggers, in manifest order (decisions name them by index).
    pub triggers: Vec<Trigger>,
    /// The capabilities its runs can change (`scaling`, `containers`, `kubernetes`): a run holds
    /// the lock `capability:resource` for each, for the event's resource, until it finishes.
    pub locks: Vec<String>,
}

impl PlaybookTriggers {
    /// A playbook's triggers and locks, from its manifest (locks by [`lock_capabilities`]).
    pub fn from_manifest(manifest: &Manifest) -> PlaybookTriggers {
        PlaybookTriggers {
            playbook: manifest.name.clone(),
            triggers: manifest.triggers.clone(),
            locks: lock_capabilities(&manifest.grants),
        }
    }
}

/// The capabilities a playbook's grants let it change, sorted: the exclusivity lock of every
/// granted function that changes the world, as its capability descriptor names it
/// ([`grace_model::capability::locks_for`]). Reads (metrics, container logs, listing), the
/// clock and configuration take no lock.
pub fn lock_capabilities(grants: &Grants) -> Vec<String> {
    grace_model::capability::locks_for(grants)
}

/// What the mesh holds, for `/metrics` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MeshStats {
    /// Playbooks loaded.
    pub playbooks: usize,
    /// Triggers loaded.
    pub triggers: usize,
    /// Hold windows open: (trigger, resource) pairs whose condition holds and has not fired yet.
    pub windows: usize,
    /// The cap on `windows`.
    pub max_windows: usize,
    /// Windows dropped because the cap was reached (their holding starts over).
    pub windows_evicted: u64,
    /// (playbook, resource) pairs with a cooldown recorded (expired ones are pruned lazily).
    pub cooldowns: usize,
    /// Dedup keys held by active runs.
    pub dedup_keys: usize,
    /// Exclusivity locks held by active runs.
    pub locks: usize,
    /// Events offered.
    pub events: u64,
    /// Decisions made (one per matching trigger).
    pub decisions: u64,
    /// Decisions that fired.
    pub fired: u64,
}

/// A loaded trigger's identity. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TriggerId(u64);

/// A loaded trigger.
#[derive(Debug)]
pub(crate) struct Slot {
    id: TriggerId,
    pub(crate) playbook: Arc<str>,
    pub(crate) index: usize,
    pub(crate) trigger: Trigger,
    event_type: Pattern,
    resource: Pattern,
    /// `hold_for` converted to what the windows compare, and the trigger's table of windows.
    pub(crate) hold: Option<(HoldRule, TableId)>,
    /// `cooldown` in milliseconds.
    cooldown_ms: Option<u64>,
    /// The playbook's lock capabilities.
    locks: Arc<[String]>,
}

impl Slot {
    /// Decisions are ordered by playbook name, then trigger index.
    fn order_key(&self) -> (&str, usize) {
        (&self.playbook, self.index)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum HoldRule {
    Millis(u64),
    Events(u32),
}

/// Milliseconds, rounded up: a hold or cooldown is never shorter than written.
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The loaded triggers, indexed by event type.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) playbooks: HashMap<String, Vec<Arc<Slot>>>,
    /// Triggers whose event type has no `*`, by that event type; each list sorted by order key.
    exact: HashMap<String, Vec<Arc<Slot>>>,
    /// Triggers whose event type has a `*`, grouped by pattern; each list sorted by order key.
    wildcard: Vec<(Pattern, Vec<Arc<Slot>>)>,
    /// Memo of [`Index::candidates`] by event type: the exact and wildcard triggers it matches,
    /// merged in decision order. Cleared whenever a playbook changes, and when full.
    memo: HashMap<String, Vec<Arc<Slot>>>,
    triggers: usize,
    next_trigger: u64,
}

impl Index {
    /// Every trigger whose event-type glob matches `event_type`, in decision order.
    fn candidates(&mut self, event_type: &str) -> &[Arc<Slot>] {
        if !self.memo.contains_key(event_type) {
            let mut list: Vec<Arc<Slot>> = self.exact.get(event_type).cloned().unwrap_or_default();
            for (pattern, slots) in &self.wildcard {
                if pattern.matches(event_type) {
                    list.extend(slots.iter().cloned());
                }
            }
            list.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
            if self.memo.len() >= MAX_MEMO_EVENT_TYPES {
                self.memo.clear();
            }
            self.memo.insert(event_type.to_owned(), list);
        }
        self.memo.get(event_type).map_or(&[], Vec::as_slice)
    }

    fn insert(&mut self, slot: Arc<Slot>) {
        let list = match slot.event_type.literal() {
            Some(event_type) => self.exact.entry(event_type.to_owned()).or_default(),
            None => {
                let at = self
                    .wildcard
                    .iter()
                    .position(|(p, _)| *p == slot.event_type)
                    .unwrap_or_else(|| {
                        self.wildcard.push((slot.event_type.clone(), Vec::new()));
                        self.wildcard.len() - 1
                    });
                &mut self.wildcard[at].1
            }
        };
        let at = list.partition_point(|s| s.order_key() < slot.order_key());
        list.insert(at, slot);
        self.triggers += 1;
        self.memo.clear();
    }

    fn remove(&mut self, slot: &Slot) {
        let is_other = |s: &Arc<Slot>| s.id != slot.id;
        match slot.event_type.literal() {
            Some(event_type) => {
                if let Some(list) = self.exact.get_mut(event_type) {
                    list.retain(is_other);
                    if list.is_empty() {
                        self.exact.remove(event_type);
                    }
                }
            }
            None => {
                for (_, list) in &mut self.wildcard {
                    list.retain(is_other);
                }
                self.wildcard.retain(|(_, list)| !list.is_empty());
            }
        }
        self.triggers -= 1;
        self.memo.clear();
    }
}

/// Who holds a lock or a dedup key.
#[derive(Debug, Clone)]
struct Holder {
    run: u64,
    playbook: Arc<str>,
}

/// Everything decisions depend on besides the triggers themselves.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) windows: Windows,
    /// Playbook → resource → the time from which it may fire again.
    pub(crate) cooldowns: HashMap<String, HashMap<String, u64>>,
    pub(crate) cooldown_entries: usize,
    prune_cooldowns_at: usize,
    /// Playbook → dedup key → the run holding it.
    dedup: HashMap<String, HashMap<String, u64>>,
    dedup_entries: usize,
    /// `capability:resource` → the run holding it.
    locks: HashMap<String, Holder>,
    /// Reused to build lock names for lookups without allocating.
    scratch: String,
    /// The latest event timestamp offered, used only to prune expired cooldowns.
    pub(crate) high_water: u64,
    pub(crate) next_run: u64,
    pub(crate) events: u64,
    pub(crate) decisions: u64,
    pub(crate) fired: u64,
}

/// The trigger mesh: decides, event by event, which playbooks start.
///
/// Pure and deterministic: no I/O, no clock but the events' own timestamps, no iteration over
/// hashed state where order could leak into a decision. The same playbooks and the same events
/// in the same order give the same decisions, so a recorded incident replays exactly.
/// `docs/triggers.md` describes the semantics.
#[derive(Debug)]
pub struct Mesh {
    pub(crate) index: Index,
    pub(crate) state: State,
}

impl Default for Mesh {
    fn default() -> Self {
        Mesh::new()
    }
}

impl Mesh {
    /// An empty mesh keeping at most [`DEFAULT_MAX_WINDOWS`] hold windows.
    pub fn new() -> Mesh {
        Mesh::with_max_windows(DEFAULT_MAX_WINDOWS)
    }

    /// An empty mesh keeping at most `max_windows` hold windows (at least 1); past that, the
    /// least recently updated window is dropped and counted in [`MeshStats::windows_evicted`].
    pub fn with_max_windows(max_windows: usize) -> Mesh {
        Mesh {
            index: Index::default(),
            state: State {
                windows: Windows::new(max_windows),
                cooldowns: HashMap::new(),
                cooldown_entries: 0,
                prune_cooldowns_at: MIN_COOLDOWN_PRUNE,
                dedup: HashMap::new(),
                dedup_entries: 0,
                locks: HashMap::new(),
                scratch: String::new(),
                high_water: 0,
                next_run: 1,
                events: 0,
                decisions: 0,
                fired: 0,
            },
        }
    }

    /// Adds a playbook's triggers, or replaces them (a new version, or enabling it again).
    ///
    /// A replaced trigger that is unchanged (same index, equal `Trigger`) keeps its hold
    /// windows; the windows of changed or dropped triggers are dropped. Cooldowns, dedup keys
    /// and locks belong to the playbook's runs, not to its triggers, and stay.
    pub fn set_playbook(&mut self, p: PlaybookTriggers) {
        let old = self.index.playbooks.remove(&p.playbook).unwrap_or_default();
        for slot in &old {
            self.index.remove(slot);
        }
        let name: Arc<str> = Arc::from(p.playbook.as_str());
        let mut locks = p.locks;
        locks.sort();
        locks.dedup();
        let locks: Arc<[String]> = locks.into();
        let mut kept = Vec::new();
        let mut slots = Vec::with_capacity(p.triggers.len());
        for (index, trigger) in p.triggers.into_iter().enumerate() {
            let (id, hold) = match old.get(index) {
                Some(s) if s.trigger == trigger => {
                    kept.push(s.id);
                    (s.id, s.hold)
                }
                _ => {
                    self.index.next_trigger += 1;
                    let hold = trigger.hold_for.map(|h| {
                        let rule = match h {
                            Hold::Duration(d) => HoldRule::Millis(millis(d)),
                            Hold::Events(n) => HoldRule::Events(n),
                        };
                        (rule, self.state.windows.open())
                    });
                    (TriggerId(self.index.next_trigger), hold)
                }
            };
            let slot = Arc::new(Slot {
                id,
                playbook: name.clone(),
                index,
                event_type: Pattern::new(&trigger.event_type),
                resource: Pattern::new(&trigger.resource),
                hold,
                cooldown_ms: trigger.cooldown.map(millis),
                trigger,
                locks: locks.clone(),
            });
            self.index.insert(slot.clone());
            slots.push(slot);
        }
        for slot in old.iter().filter(|s| !kept.contains(&s.id)) {
            if let Some((_, table)) = slot.hold {
                self.state.windows.close(table);
            }
        }
        self.index.playbooks.insert(p.playbook, slots);
    }

    /// Removes a playbook's triggers (deleted or disabled) and drops their hold windows.
    /// Its active runs keep their locks and dedup keys until [`Mesh::run_finished`], and its
    /// cooldowns stay, so disabling and enabling a playbook does not let it fire early.
    pub fn remove_playbook(&mut self, name: &str) {
        for slot in self.index.playbooks.remove(name).unwrap_or_default() {
            self.index.remove(&slot);
            if let Some((_, table)) = slot.hold {
                self.state.windows.close(table);
            }
        }
    }

    /// Decides, for every loaded trigger whose event-type and resource globs match `event`,
    /// whether it fires. One decision per matching (playbook, trigger), ordered by playbook name
    /// then trigger index; that order also decides which of two playbooks competing for a lock
    /// on the same event wins.
    pub fn offer(&mut self, event: &TriggerEvent) -> Vec<Decision> {
        self.offer_with(event, None)
    }

    /// [`Mesh::offer`] for an event whose resource the host's health graph described as
    /// `graph` when it stored the event: conditions read it as `event.graph`. The facts come
    /// with the event, not from a graph read now, so that deciding the same stored events again
    /// (after a restart, in a replay) gives the same decisions.
    pub fn offer_with(&mut self, event: &TriggerEvent, graph: Option<&Value>) -> Vec<Decision> {
        let mut decisions = Vec::new();
        self.offer_into(event, graph, &mut decisions, true);
        decisions
    }

    /// Like [`Mesh::offer`], but a trigger whose condition is false is only counted (the return
    /// value), not described: the hot path of a server, where most events match triggers whose
    /// conditions are false, need not allocate a decision for each.
    pub fn offer_counting(
        &mut self,
        event: &TriggerEvent,
        graph: Option<&Value>,
        decisions: &mut Vec<Decision>,
    ) -> u64 {
        self.offer_into(event, graph, decisions, false)
    }

    fn offer_into(
        &mut self,
        event: &TriggerEvent,
        graph: Option<&Value>,
        out: &mut Vec<Decision>,
        describe_false: bool,
    ) -> u64 {
        let Mesh { index, state } = self;
        state.events += 1;
        state.high_water = state.high_water.max(event.timestamp);
        let mut fired: Vec<(&str, usize)> = Vec::new();
        let mut condition_false = 0;
        let mut decided = 0;
        for slot in index
            .candidates(&event.event_type)
            .iter()
            .filter(|slot| slot.resource.matches(&event.resource))
        {
            decided += 1;
            match state.decide(slot, event, graph, &mut fired) {
                Some(decision) => out.push(decision),
                None if describe_false => out.push(Decision::Suppressed {
                    playbook: slot.playbook.to_string(),
                    trigger: slot.index,
                    resource: event.resource.clone(),
                    reason: Suppression::ConditionFalse,
                }),
                None => condition_false += 1,
            }
        }
        state.decisions += decided;
        state.prune_cooldowns_if_needed();
        condition_false
    }

    /// Releases what a fired run holds: its exclusivity locks and its dedup key. Releasing twice,
    /// or with a key from before a restart, releases nothing that a later run holds.
    pub fn run_finished(&mut self, run: &RunKey) {
        let state = &mut self.state;
        for lock in &run.locks {
            if state.locks.get(lock).is_some_and(|h| h.run == run.id) {
                state.locks.remove(lock);
            }
        }
        if let Some(key) = &run.dedup_key
            && let Some(keys) = state.dedup.get_mut(&run.playbook)
            && keys.get(key) == Some(&run.id)
        {
            keys.remove(key);
            state.dedup_entries -= 1;
            if keys.is_empty() {
                state.dedup.remove(&run.playbook);
            }
        }
    }

    /// Makes every later fire's run id larger than `id`: a server that restarts passes the largest
    /// id stored with its runs, so that a resumed run's key can never equal a new run's.
    pub fn continue_ids_after(&mut self, id: u64) {
        self.state.next_run = self.state.next_run.max(id.saturating_add(1));
    }

    /// Takes again what a run that is still active holds (e.g. one resumed after a restart, its
    /// key stored with it). Takes nothing, and says why, when another run holds one of its locks
    /// or its dedup key.
    pub fn resume_run(&mut self, run: &RunKey) -> Result<(), Suppression> {
        let state = &mut self.state;
        if let Some(key) = &run.dedup_key
            && state
                .dedup
                .get(&run.playbook)
                .and_then(|keys| keys.get(key))
                .is_some_and(|holder| *holder != run.id)
        {
            return Err(Suppression::Duplicate {
                dedup_key: key.clone(),
            });
        }
        for lock in &run.locks {
            if let Some(h) = state.locks.get(lock)
                && h.run != run.id
            {
                return Err(Suppression::Busy {
                    lock: lock.clone(),
                    held_by: h.playbook.to_string(),
                });
            }
        }
        let playbook: Arc<str> = Arc::from(run.playbook.as_str());
        state.take(run.id, &playbook, &run.locks, run.dedup_key.as_deref());
        state.next_run = state.next_run.max(run.id.saturating_add(1));
        Ok(())
    }

    /// Takes what a run fired by another mesh holds (in a cluster, a run taken over from a
    /// replica that died), under a fresh id of this mesh, and answers the run's key here: ids
    /// are counted per mesh, so the other mesh's could equal one of this one's. Takes nothing,
    /// and says why, while a run of this mesh holds one of its locks or its dedup key.
    pub fn adopt_run(&mut self, run: &RunKey) -> Result<RunKey, Suppression> {
        let state = &mut self.state;
        if let Some(key) = &run.dedup_key
            && state
                .dedup
                .get(&run.playbook)
                .is_some_and(|keys| keys.contains_key(key))
        {
            return Err(Suppression::Duplicate {
                dedup_key: key.clone(),
            });
        }
        if let Some((lock, h)) = run
            .locks
            .iter()
            .find_map(|lock| state.locks.get(lock).map(|h| (lock, h)))
        {
            return Err(Suppression::Busy {
                lock: lock.clone(),
                held_by: h.playbook.to_string(),
            });
        }
        let adopted = RunKey {
            id: state.next_run,
            ..run.clone()
        };
        state.next_run = state.next_run.saturating_add(1);
        let playbook: Arc<str> = Arc::from(run.playbook.as_str());
        state.take(
            adopted.id,
            &playbook,
            &adopted.locks,
            adopted.dedup_key.as_deref(),
        );
        Ok(adopted)
    }

    /// Triggers loaded.
    pub fn len(&self) -> usize {
        self.index.triggers
    }

    /// Whether no trigger is loaded.
    pub fn is_empty(&self) -> bool {
        self.index.triggers == 0
    }

    /// What the mesh holds.
    pub fn stats(&self) -> MeshStats {
        let s = &self.state;
        MeshStats {
            playbooks: self.index.playbooks.len(),
            triggers: self.index.triggers,
            windows: s.windows.len(),
            max_windows: s.windows.max(),
            windows_evicted: s.windows.evicted(),
            cooldowns: s.cooldown_entries,
            dedup_keys: s.dedup_entries,
            locks: s.locks.len(),
            events: s.events,
            decisions: s.decisions,
            fired: s.fired,
        }
    }
}

impl State {
    /// The checks, in order: condition → hold window → one fire per playbook per event →
    /// cooldown → dedup → locks; then the fire takes the locks, the dedup key and the cooldown.
    fn decide<'a>(
        &mut self,
        slot: &'a Slot,
        event: &TriggerEvent,
        graph: Option<&Value>,
        fired: &mut Vec<(&'a str, usize)>,
    ) -> Option<Decision> {
        let resource = event.resource.as_str();
        let suppressed = |reason| {
            Some(Decision::Suppressed {
                playbook: slot.playbook.to_string(),
                trigger: slot.index,
                resource: resource.to_owned(),
                reason,
            })
        };
        let holds = slot
            .trigger
            .condition
            .as_ref()
            .is_none_or(|c| c.eval_with(event, graph));
        if !holds {
            // A false event resets the window, unless it is older than the window's start: then
            // it does not contradict "true on every event since `since`".
            if let Some((_, table)) = slot.hold {
                self.windows
                    .remove_if(table, resource, |w| event.timestamp >= w.since);
            }
            // The caller describes (or only counts) a false condition: no allocation here.
            return None;
        }
        // The time of this decision: the event's, or the window's clock, which never goes back.
        let mut now = event.timestamp;
        if let (Some((rule, table)), Some(needed)) = (slot.hold, slot.trigger.hold_for) {
            let span = self.windows.observe(table, resource, event.timestamp);
            now = span.latest;
            let held = match rule {
                HoldRule::Millis(ms) => span.latest - span.since >= ms,
                HoldRule::Events(n) => span.seen >= n,
            };
            if !held {
                return suppressed(Suppression::Holding {
                    since: span.since,
                    needed,
                    seen_events: span.seen,
                });
            }
        }
        if let Some(&(_, trigger)) = fired.iter().find(|(p, _)| *p == &*slot.playbook) {
            return suppressed(Suppression::AlreadyFired { trigger });
        }
        if let Some(&until) = self
            .cooldowns
            .get(&*slot.playbook)
            .and_then(|by_resource| by_resource.get(resource))
            && now < until
        {
            return suppressed(Suppression::CoolingDown { until });
        }
        let dedup_key = slot.trigger.dedup_key.as_ref().map(|t| t.render(event));
        if let Some(key) = &dedup_key
            && self
                .dedup
                .get(&*slot.playbook)
                .is_some_and(|keys| keys.contains_key(key))
        {
            return suppressed(Suppression::Duplicate {
                dedup_key: key.clone(),
            });
        }
        for capability in slot.locks.iter() {
            self.scratch.clear();
            self.scratch.push_str(capability);
            self.scratch.push(':');
            self.scratch.push_str(resource);
            if let Some(holder) = self.locks.get(self.scratch.as_str()) {
                return suppressed(Suppression::Busy {
                    lock: self.scratch.clone(),
                    held_by: holder.playbook.to_string(),
                });
            }
        }
        let locks: Vec<String> = slot
            .locks
            .iter()
            .map(|capability| format!("{capability}:{resource}"))
            .collect();

        let run = self.next_run;
        self.next_run += 1;
        self.fired += 1;
        self.take(run, &slot.playbook, &locks, dedup_key.as_deref());
        if let Some(ms) = slot.cooldown_ms {
            let until = now.saturating_add(ms);
            let by_resource = self.cooldowns.entry(slot.playbook.to_string()).or_default();
            match by_resource.get_mut(resource) {
                Some(existing) => *existing = (*existing).max(until),
                None => {
                    by_resource.insert(resource.to_owned(), until);
                    self.cooldown_entries += 1;
                }
            }
        }
        if let Some((_, table)) = slot.hold {
            self.windows.remove_if(table, resource, |_| true);
        }
        fired.push((&*slot.playbook, slot.index));
        Some(Decision::Fire {
            playbook: slot.playbook.to_string(),
            trigger: slot.index,
            resource: resource.to_owned(),
            dedup_key: dedup_key.clone(),
            run: RunKey {
                id: run,
                playbook: slot.playbook.to_string(),
                resource: resource.to_owned(),
                locks,
                dedup_key,
            },
        })
    }

    /// Records `run` as the holder of `locks` and `dedup_key`.
    fn take(&mut self, run: u64, playbook: &Arc<str>, locks: &[String], dedup_key: Option<&str>) {
        for lock in locks {
            self.locks.insert(
                lock.clone(),
                Holder {
                    run,
                    playbook: playbook.clone(),
                },
            );
        }
        if let Some(key) = dedup_key {
            let keys = self.dedup.entry(playbook.to_string()).or_default();
            if keys.insert(key.to_owned(), run).is_none() {
                self.dedup_entries += 1;
            }
        }
    }

    /// Drops cooldowns that ended before the latest event offered, once there are many. An event
    /// arriving later than that, with a timestamp inside a pruned cooldown, is not held back by
    /// it: a bounded table is worth that much leniency towards very late events.
    pub(crate) fn prune_cooldowns_if_needed(&mut self) {
        if self.cooldown_entries <= self.prune_cooldowns_at {
            return;
        }
        let now = self.high_water;
        let mut entries = 0;
        self.cooldowns.retain(|_, by_resource| {
            by_resource.retain(|_, until| *until > now);
            entries += by_resource.len();
            !by_resource.is_empty()
        });
        self.cooldown_entries = entries;
        self.prune_cooldowns_at = (2 * entries).max(MIN_COOLDOWN_PRUNE);
    }
}
