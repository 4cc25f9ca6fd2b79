//! Incidents, and their likely causes (`docs/anomaly.md#incidents-and-causes`).
//!
//! An **incident** is what happens to a resource, or to resources next to each other on the
//! health graph, from the first signal to the signal clearing. Signals are `anomaly` events
//! (a series' alarm, `crate::anomaly`) and firing alerts (`alert.firing`). A signal joins the
//! open incident that holds its resource or a graph neighbour of one of its resources (one step
//! either way); otherwise it opens a new incident; a signal touching several open incidents
//! merges them into the oldest. Each signal starts an episode of its resource and metric (or
//! alert) that lasts until it clears (`anomaly.cleared`: the series is back in the range it was
//! expected in before the alarm; `alert.resolved`). An incident closes when its last episode
//! clears, or when none is going and no signal came for `clear_after`; judged on event time.
//!
//! Every accepted event is stamped with `incident_id` when its resource belongs to an open
//! incident: the trust core, the runs it triggers and the integrations see the same id. The id
//! is made from the first signal (`inc-<time>-<digest>`), and the tracker is rebuilt from the
//! event log at start, so ids are the same after a restart.
//!
//! **Causes.** For an incident, every resource that signalled around it (from
//! `lookback` before it opened) is a candidate, ranked by three measures, each with its reason:
//! - onset: how long before the incident's first resource it went anomalous (earlier is more
//!   likely a cause);
//! - correlation: of its per-minute deviations from what its detector expected with the first
//!   resource's, over the incident;
//! - distance: steps along dependency edges from the first resource to it (upstream is more
//!   likely a cause), when the health graph knows both; otherwise the ranking says so.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use grace_executor::graph::GraphReader;
use grace_graph::{NodeId, Walk};
use grace_model::TriggerEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Open incidents at most; beyond, the oldest is closed.
pub const MAX_OPEN: usize = 1_000;
/// Closed incidents kept.
pub const MAX_CLOSED: usize = 1_000;
/// Signals listed per incident (the rest are counted).
pub const MAX_SIGNALS: usize = 500;
/// Resources per incident.
pub const MAX_RESOURCES: usize = 100;
/// Resources whose score history is kept.
pub const MAX_TRACKED: usize = 10_000;
/// Minutes of score history kept per resource.
const HISTORY_MINUTES: usize = 180;
/// Alarm onsets kept per resource.
const ONSETS: usize = 16;
/// Signals going on at once, at most.
const MAX_EPISODES: usize = 100_000;
/// An incident whose last signal is this old closes, episodes going or not.
const STALE_AFTER: u64 = 86_400_000;
/// How far along dependency edges causes are looked for.
const CAUSE_DEPTH: u32 = 4;
const MINUTE: u64 = 60_000;

/// `[anomaly.incidents]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentConfig {
    /// An incident without a new signal for this long is over (default 15m).
    #[serde(with = "humantime_serde")]
    pub clear_after: Duration,
    /// How long before an incident opened a signal still counts as a candidate cause
    /// (default 30m).
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            clear_after: Duration::from_secs(15 * 60),
            lookback: Duration::from_secs(30 * 60),
        }
    }
}

impl IncidentConfig {
    /// Checks the ranges; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let day = Duration::from_secs(86_400);
        if self.clear_after < Duration::from_secs(1) || self.clear_after > day {
            return Err((
                "incidents.clear_after",
                "must be between 1s and 1 day".to_owned(),
            ));
        }
        if self.lookback > day {
            return Err(("incidents.lookback", "must be at most 1 day".to_owned()));
        }
        Ok(())
    }
}

/// One signal of an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// `anomaly` or `alert.firing`.
    pub event_type: String,
    /// The resource it is about.
    pub resource: String,
    /// Its time (ms).
    pub at: u64,
    /// The anomaly score, for an `anomaly` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The metric or alert name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Its stable id.
    pub id: String,
    /// `open` or `closed`.
    pub state: &'static str,
    /// The first signal's time (ms).
    pub opened_at: u64,
    /// The last signal's time (ms).
    pub last_signal_at: u64,
    /// When it closed (ms), and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<u64>,
    /// Why it closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_because: Option<String>,
    /// The resource of the first signal.
    pub first_resource: String,
    /// Its resources, in the order they joined.
    pub resources: Vec<String>,
    /// Ids of incidents merged into this one (their events keep their ids).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
    /// Graph nodes of its resources (for joining neighbours).
    #[serde(skip)]
    nodes: BTreeSet<NodeId>,
    /// Its signals, oldest first (at most [`MAX_SIGNALS`]).
    pub signals: Vec<Signal>,
    /// Signals in all.
    pub signal_count: u64,
    /// Events stamped with its id.
    pub events: u64,
}

impl Incident {
    /// Takes in `other`, an incident of the same neighbourhood.
    fn absorb(&mut self, other: Incident) {
        if other.opened_at < self.opened_at {
            self.opened_at = other.opened_at;
            self.first_resource = other.first_resource;
        }
        self.last_signal_at = self.last_signal_at.max(other.last_signal_at);
        for r in other.resources {
            if !self.resources.contains(&r) && self.resources.len() < MAX_RESOURCES {
                self.resources.push(r);
            }
        }
        self.nodes.extend(other.nodes);
        self.merged.push(other.id);
        self.merged.extend(other.merged);
        self.signals.extend(other.signals);
        self.signals.sort_by_key(|s| s.at);
        self.signals.truncate(MAX_SIGNALS);
        self.signal_count += other.signal_count;
        self.events += other.events;
    }
}

/// A candidate cause, ranked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    /// 1 for the most likely.
    pub rank: usize,
    /// The resource.
    pub resource: String,
    /// Its graph node, when the graph knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The ranking score, 0 to 1.
    pub score: f64,
    /// When it first went anomalous around the incident (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onset: Option<u64>,
    /// Milliseconds before the incident's first resource went anomalous (negative: after).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_ms: Option<i64>,
    /// Correlation of its per-minute deviations with the first resource's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<f64>,
    /// Steps along dependency edges from the first resource (0: itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<u32>,
    /// The path from the first resource, when it is upstream of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// How long before the symptom went anomalous its resource was last deployed, within the
    /// lookback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_ms_before: Option<i64>,
    /// Why, one clause per measure.
    pub reason: String,
}

/// The ranking of an incident's causes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Causes {
    /// The incident.
    pub incident: String,
    /// Whether distances come from the health graph (without one, the ranking is by onset and
    /// correlation over the resources the sources know).
    pub graph: bool,
    /// Candidates, most likely first.
    pub causes: Vec<Cause>,
}

#[derive(Debug, Default)]
struct Tracked {
    /// `(minute, largest deviation in it)`, oldest first.
    minutes: VecDeque<(u64, f64)>,
    /// Alarm onsets `(ms, name)`, oldest first.
    onsets: VecDeque<(u64, Option<String>)>,
    /// Deployments' times (ms), oldest first (`deployment.*` events, from GitHub or anyone).
    deployments: VecDeque<u64>,
}

/// Every incident, and what causes are ranked from.
pub struct Incidents {
    config: IncidentConfig,
    graph: Option<Arc<dyn GraphReader>>,
    open: Vec<Incident>,
    closed: VecDeque<Incident>,
    tracked: HashMap<String, Tracked>,
    /// Signals going on: `(resource, metric or alert name)`, from an alarm or a firing alert to
    /// its clearing or resolution.
    episodes: BTreeSet<(String, String)>,
    /// The latest event time seen: an open incident's causes are looked for up to it.
    now: u64,
}

impl Incidents {
    /// An empty tracker; `graph`, when there is one, joins neighbours and measures distances.
    pub fn new(config: IncidentConfig, graph: Option<Arc<dyn GraphReader>>) -> Incidents {
        Incidents {
            config,
            graph,
            open: Vec::new(),
            closed: VecDeque::new(),
            tracked: HashMap::new(),
            episodes: BTreeSet::new(),
            now: 0,
        }
    }

    /// Takes in one accepted event (in acceptance order): a signal opens or joins an incident,
    /// any event of an incident's resource is stamped with its `incident_id` (unless it has
    /// one), scores are kept for ranking.
    pub fn observe(&mut self, event: &mut TriggerEvent) {
        let at = event.timestamp;
        self.now = self.now.max(at);
        self.expire(at);
        let score = event
            .payload
            .get("anomaly_score")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite());
        if let Some(d) = deviation(&event.payload) {
            self.track_score(&event.resource, at, d);
        }
        let kind = event.event_type.as_str();
        if is_deployment(kind) {
            self.track_deployment(&event.resource, at);
        }
        let opens = kind == crate::anomaly::ALARM_EVENT_TYPE || kind == "alert.firing";
        let clears = kind == crate::anomaly::CLEARED_EVENT_TYPE || kind == "alert.resolved";
        if opens || clears {
            let name = signal_name(event);
            // One episode per series (or alert): its resource, name and labels.
            let labels = event
                .payload
                .get("labels")
                .filter(|l| l.is_object())
                .map_or_else(String::new, Value::to_string);
            let episode = (
                event.resource.clone(),
                format!("{}\0{labels}", name.as_deref().unwrap_or("")),
            );
            if opens {
                if kind == crate::anomaly::ALARM_EVENT_TYPE {
                    self.track_onset(&event.resource, at, name.clone());
                }
                if self.episodes.len() < MAX_EPISODES {
                    self.episodes.insert(episode);
                }
                self.signal(Signal {
                    event_type: event.event_type.clone(),
                    resource: event.resource.clone(),
                    at,
                    score,
                    name,
                });
            } else {
                self.episodes.remove(&episode);
                self.cleared(&event.resource, at);
            }
        }
        let Some(i) = self.open_holding(&event.resource) else {
            return;
        };
        let Some(payload) = event.payload.as_object_mut() else {
            return;
        };
        match payload.get("incident_id").and_then(Value::as_str) {
            // Stamped before (an event read back from the log): counted, not stamped again.
            Some(id) if id == self.open[i].id || self.open[i].merged.iter().any(|m| m == id) => {
                self.open[i].events += 1;
            }
            Some(_) => {}
            None => {
                payload.insert("incident_id".into(), json!(self.open[i].id));
                // An event stays within the size every stored event is read back with.
                if event.payload_fits() {
                    self.open[i].events += 1;
                } else if let Some(payload) = event.payload.as_object_mut() {
                    payload.remove("incident_id");
                }
            }
        }
    }

    /// Whether any episode of `incident`'s resources is still going: a look-up per resource in
    /// the episodes (ordered by resource first), not a scan of every episode. It runs for every
    /// event.
    fn ongoing(&self, incident: &Incident) -> bool {
        incident.resources.iter().any(|r| {
            self.episodes
                .range((r.clone(), String::new())..)
                .next()
                .is_some_and(|(resource, _)| resource == r)
        })
    }

    fn node_of(&self, resource: &str) -> Option<NodeId> {
        let facts = self.graph.as_ref()?.facts(resource)?;
        NodeId::parse(facts.get("node")?.as_str()?).ok()
    }

    /// The graph nodes one step from `node`, either way.
    fn neighbours(&self, node: &NodeId) -> Vec<NodeId> {
        let Some(graph) = &self.graph else {
            return Vec::new();
        };
        [Walk::Dependencies, Walk::Dependents]
            .into_iter()
            .flat_map(|w| graph.walk(node, w, 1, 64, &|_| true).unwrap_or_default())
            .map(|(r, _)| r.id)
            .collect()
    }

    /// The open incident holding `resource` itself.
    fn open_holding(&self, resource: &str) -> Option<usize> {
        self.open
            .iter()
            .position(|i| i.resources.iter().any(|r| r == resource))
    }

    fn signal(&mut self, signal: Signal) {
        let node = self.node_of(&signal.resource);
        let near = node
            .as_ref()
            .map(|n| {
                let mut near = self.neighbours(n);
                near.push(n.clone());
                near
            })
            .unwrap_or_default();
        // Every open incident the signal touches: holding its resource or a neighbour of it.
        // Several are merged into the oldest: one incident per neighbourhood.
        let touched: Vec<usize> = (0..self.open.len())
            .filter(|&i| {
                let incident = &self.open[i];
                incident.resources.contains(&signal.resource)
                    || near.iter().any(|n| incident.nodes.contains(n))
            })
            .collect();
        let i = match touched.split_first() {
            Some((&first, rest)) => {
                for &other in rest.iter().rev() {
                    let merged = self.open.remove(other);
                    self.open[first].absorb(merged);
                }
                first
            }
            None => {
                if self.open.len() >= MAX_OPEN {
                    let oldest = self.open.remove(0);
                    self.close(oldest, signal.at, "too many open incidents");
                }
                self.open.push(Incident {
                    id: incident_id(&signal.resource, signal.at),
                    state: "open",
                    opened_at: signal.at,
                    last_signal_at: signal.at,
                    closed_at: None,
                    closed_because: None,
                    first_resource: signal.resource.clone(),
                    resources: Vec::new(),
                    merged: Vec::new(),
                    nodes: BTreeSet::new(),
                    signals: Vec::new(),
                    signal_count: 0,
                    events: 0,
                });
                self.open.len() - 1
            }
        };
        let incident = &mut self.open[i];
        incident.last_signal_at = incident.last_signal_at.max(signal.at);
        if !incident.resources.contains(&signal.resource)
            && incident.resources.len() < MAX_RESOURCES
        {
            incident.resources.push(signal.resource.clone());
            if let Some(n) = node {
                incident.nodes.insert(n);
            }
        }
        incident.signal_count += 1;
        if incident.signals.len() < MAX_SIGNALS {
            incident.signals.push(signal);
        }
    }

    /// A signal of `resource` cleared: its incident's clock restarts, and closes it when every
    /// episode of it is over.
    fn cleared(&mut self, resource: &str, at: u64) {
        let Some(i) = self.open_holding(resource) else {
            return;
        };
        self.open[i].last_signal_at = self.open[i].last_signal_at.max(at);
        if !self.ongoing(&self.open[i]) {
            let done = self.open.remove(i);
            self.close(done, at, "every signal cleared");
        }
    }

    /// Closes the incidents with no episode going whose last signal is `clear_after` before
    /// `now`, and any whose last signal is a day before.
    fn expire(&mut self, now: u64) {
        let clear = u64::try_from(self.config.clear_after.as_millis()).unwrap_or(u64::MAX);
        let mut i = 0;
        while i < self.open.len() {
            let quiet = now.saturating_sub(self.open[i].last_signal_at);
            let why = if quiet > STALE_AFTER {
                Some("no signal for a day")
            } else if quiet > clear && !self.ongoing(&self.open[i]) {
                Some("no new signal within clear_after")
            } else {
                None
            };
            match why {
                Some(why) => {
                    let done = self.open.remove(i);
                    let at = done.last_signal_at.saturating_add(clear);
                    self.close(done, at, why);
                }
                None => i += 1,
            }
        }
    }

    fn close(&mut self, mut incident: Incident, at: u64, why: &str) {
        // Its episodes end with it (a resource is in one open incident at most).
        self.episodes
            .retain(|(resource, _)| !incident.resources.contains(resource));
        incident.state = "closed";
        incident.closed_at = Some(at);
        incident.closed_because = Some(why.to_owned());
        if self.closed.len() >= MAX_CLOSED {
            self.closed.pop_front();
        }
        self.closed.push_back(incident);
    }

    fn tracked(&mut self, resource: &str) -> Option<&mut Tracked> {
        if !self.tracked.contains_key(resource) && self.tracked.len() >= MAX_TRACKED {
            return None;
        }
        Some(self.tracked.entry(resource.to_owned()).or_default())
    }

    fn track_score(&mut self, resource: &str, at: u64, score: f64) {
        let Some(t) = self.tracked(resource) else {
            return;
        };
        let minute = at / MINUTE;
        match t.minutes.back_mut() {
            Some((m, s)) if *m == minute => *s = s.max(score),
            Some((m, _)) if *m > minute => {} // older than kept: out of order, ignored
            _ => {
                if t.minutes.len() >= HISTORY_MINUTES {
                    t.minutes.pop_front();
                }
                t.minutes.push_back((minute, score));
            }
        }
    }

    fn track_onset(&mut self, resource: &str, at: u64, name: Option<String>) {
        let Some(t) = self.tracked(resource) else {
            return;
        };
        if t.onsets.len() >= ONSETS {
            t.onsets.pop_front();
        }
        t.onsets.push_back((at, name));
    }

    fn track_deployment(&mut self, resource: &str, at: u64) {
        let Some(t) = self.tracked(resource) else {
            return;
        };
        if t.deployments.len() >= ONSETS {
            t.deployments.pop_front();
        }
        t.deployments.push_back(at);
    }

    /// Every incident, open ones first (newest first), then closed ones (newest first).
    pub fn list(&self) -> Vec<&Incident> {
        self.open
            .iter()
            .rev()
            .chain(self.closed.iter().rev())
            .collect()
    }

    /// One incident, by its id or the id of one merged into it.
    pub fn get(&self, id: &str) -> Option<&Incident> {
        let mut all = self.open.iter().chain(self.closed.iter());
        all.clone()
            .find(|i| i.id == id)
            .or_else(|| all.find(|i| i.merged.iter().any(|m| m == id)))
    }

    /// Adds to `event` (stamped with its incident's id) the incident's `most` likely causes as
    /// they rank now, `incident_causes: [{ resource, score, reason }]`: what a run fired by
    /// the event reads of them. Left out if it would take the event over the stored size.
    pub fn attach_causes(&self, event: &mut TriggerEvent, most: usize) {
        let Some(id) = event.payload.get("incident_id").and_then(Value::as_str) else {
            return;
        };
        let Some(ranked) = self.causes(id) else {
            return;
        };
        let top: Vec<Value> = ranked
            .causes
            .iter()
            .take(most)
            .map(|c| json!({"resource": c.resource, "score": c.score, "reason": c.reason}))
            .collect();
        let Some(payload) = event.payload.as_object_mut() else {
            return;
        };
        payload.insert("incident_causes".into(), Value::Array(top));
        if !event.payload_fits()
            && let Some(payload) = event.payload.as_object_mut()
        {
            payload.remove("incident_causes");
        }
    }

    /// The incident's candidate causes, ranked.
    pub fn causes(&self, id: &str) -> Option<Causes> {
        let incident = self.get(id)?;
        let lookback = u64::try_from(self.config.lookback.as_millis()).unwrap_or(u64::MAX);
        let from = incident.opened_at.saturating_sub(lookback);
        let until = incident.closed_at.unwrap_or(self.now);
        let symptom = &incident.first_resource;
        let onset_of = |resource: &str| -> Option<u64> {
            self.tracked
                .get(resource)?
                .onsets
                .iter()
                .map(|(at, _)| *at)
                .filter(|at| (from..=until).contains(at))
                .min()
        };
        let symptom_onset = onset_of(symptom).unwrap_or(incident.opened_at);
        // The latest deployment of a resource in the lookback before the symptom went
        // anomalous: a change just made is a suspect, whether or not it alarmed itself.
        let deployed_of = |resource: &str| -> Option<u64> {
            self.tracked
                .get(resource)?
                .deployments
                .iter()
                .copied()
                .filter(|at| (from..=symptom_onset).contains(at))
                .max()
        };
        // Candidates: the incident's resources and whatever else went anomalous, or was
        // deployed, around it.
        let mut candidates: BTreeSet<&str> =
            incident.resources.iter().map(String::as_str).collect();
        for (resource, t) in &self.tracked {
            if t.onsets.iter().any(|(at, _)| (from..=until).contains(at))
                || deployed_of(resource).is_some()
            {
                candidates.insert(resource);
            }
        }
        // Distances along dependencies from the symptom's node.
        let symptom_node = self.node_of(symptom);
        let mut upstream: BTreeMap<NodeId, (u32, NodeId)> = BTreeMap::new();
        if let (Some(graph), Some(node)) = (&self.graph, &symptom_node) {
            for (r, _) in graph
                .walk(node, Walk::Dependencies, CAUSE_DEPTH, 1_000, &|_| true)
                .unwrap_or_default()
            {
                upstream.insert(r.id, (r.depth, r.via));
            }
        }
        let path_to = |node: &NodeId| -> Vec<String> {
            let mut path = vec![node.to_string()];
            let mut at = node.clone();
            while let Some((_, via)) = upstream.get(&at) {
                path.push(via.to_string());
                if Some(via) == symptom_node.as_ref() || path.len() > CAUSE_DEPTH as usize + 1 {
                    break;
                }
                at = via.clone();
            }
            path.reverse();
            path
        };
        let symptom_minutes = self.minutes(symptom, from, until);
        // The nodes of the candidates that alarmed, for telling the deepest upstream apart.
        let alarmed_nodes: Vec<(NodeId, &str)> = candidates
            .iter()
            .filter(|r| onset_of(r).is_some())
            .filter_map(|r| self.node_of(r).map(|n| (n, *r)))
            .collect();
        let mut causes: Vec<Cause> = candidates
            .into_iter()
            .map(|resource| {
                let node = self.node_of(resource);
                let onset = onset_of(resource);
                let lead = onset.map(|o| symptom_onset as i64 - o as i64);
                let correlation = if resource == symptom {
                    Some(1.0)
                } else {
                    correlation(&symptom_minutes, &self.minutes(resource, from, until))
                };
                let (distance, path) = match &node {
                    Some(n) if Some(n) == symptom_node.as_ref() => (Some(0), Vec::new()),
                    Some(n) => match upstream.get(n) {
                        Some((d, _)) => (Some(*d), path_to(n)),
                        None => (None, Vec::new()),
                    },
                    None => (None, Vec::new()),
                };
                // Deepest: none of what it depends on (within reach) alarmed around the incident.
                let deepest = node.as_ref().is_some_and(|n| {
                    !alarmed_nodes
                        .iter()
                        .any(|(other, _)| other != n && path_passes(&upstream, other, n))
                });
                let mut cause = rank_one(
                    resource,
                    symptom,
                    node,
                    onset,
                    lead,
                    correlation,
                    distance,
                    path,
                    self.graph.is_some(),
                    deepest,
                );
                if let Some(at) = deployed_of(resource) {
                    deployed(&mut cause, symptom, symptom_onset.saturating_sub(at));
                }
                cause
            })
            .collect();
        causes.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.onset.cmp(&b.onset))
                .then_with(|| a.resource.cmp(&b.resource))
        });
        for (i, c) in causes.iter_mut().enumerate() {
            c.rank = i + 1;
        }
        Some(Causes {
            incident: incident.id.clone(),
            graph: self.graph.is_some(),
            causes,
        })
    }

    /// A resource's per-minute deviations in `[from, until]`, by minute.
    fn minutes(&self, resource: &str, from: u64, until: u64) -> BTreeMap<u64, f64> {
        self.tracked.get(resource).map_or_else(BTreeMap::new, |t| {
            t.minutes
                .iter()
                .filter(|(m, _)| (from / MINUTE..=until / MINUTE).contains(m))
                .copied()
                .collect()
        })
    }
}

/// How far a scored sample lies from what its detector expected, in robust deviations (the
/// expected range is the centre ± 3 deviations): unlike the score, which is high at an
/// anomaly's onset only, it stays high while the anomaly lasts, so two resources' deviations
/// correlate over an incident.
fn deviation(payload: &Value) -> Option<f64> {
    let value = payload.get("value")?.as_f64()?;
    let expected = payload.get("anomaly")?.get("expected")?;
    let (low, high) = (
        expected.get("low")?.as_f64()?,
        expected.get("high")?.as_f64()?,
    );
    let third = (high - low) / 6.0;
    let d = (value - (low + high) / 2.0).abs() / third;
    (d.is_finite()).then_some(d)
}

/// The metric or alert name of a signal.
fn signal_name(event: &TriggerEvent) -> Option<String> {
    ["metric", "alertname"]
        .iter()
        .find_map(|k| {
            event
                .payload
                .get(k)
                .or_else(|| event.payload.get("labels").and_then(|l| l.get(k)))
                .and_then(Value::as_str)
        })
        .map(|s| s.chars().take(128).collect())
}

/// Whether the walk from the symptom reached `deeper` through `node` (`deeper` is upstream of
/// `node`).
fn path_passes(upstream: &BTreeMap<NodeId, (u32, NodeId)>, deeper: &NodeId, node: &NodeId) -> bool {
    let mut at = deeper;
    for _ in 0..=CAUSE_DEPTH {
        match upstream.get(at) {
            Some((_, via)) if via == node => return true,
            Some((_, via)) => at = via,
            None => return false,
        }
    }
    false
}

/// `inc-<yyyymmddThhmm>-<8 hex>` from the first signal's resource and time: the same on every
/// replica and after every restart.
fn incident_id(resource: &str, at: u64) -> String {
    let digest = Sha256::digest(format!("{resource}\0{at}").as_bytes());
    let time = std::time::UNIX_EPOCH + Duration::from_millis(at);
    // `2026-01-01T00:05:00Z` → `20260101T0005`.
    let when: String = humantime::format_rfc3339_seconds(time)
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(13)
        .collect();
    format!("inc-{when}-{}", hex::encode(&digest[..4]))
}

/// Pearson correlation of two per-minute series on the minutes both have; `None` with fewer than
/// three shared minutes or no variation.
fn correlation(a: &BTreeMap<u64, f64>, b: &BTreeMap<u64, f64>) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .filter_map(|(m, x)| b.get(m).map(|y| (*x, *y)))
        .collect();
    if pairs.len() < 3 {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = pairs
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x / n, sy + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    let r = sxy / (sxx * syy).sqrt();
    r.is_finite().then_some(r.clamp(-1.0, 1.0))
}

/// One candidate's score and reason: half onset, a quarter correlation, a quarter position on
/// the graph.
#[allow(clippy::too_many_arguments)]
fn rank_one(
    resource: &str,
    symptom: &str,
    node: Option<NodeId>,
    onset: Option<u64>,
    lead: Option<i64>,
    correlation: Option<f64>,
    distance: Option<u32>,
    path: Vec<String>,
    graph: bool,
    deepest: bool,
) -> Cause {
    let itself = resource == symptom;
    // Onset: 0.5 at the symptom's own onset, towards 1 the earlier (5 minutes ≈ 0.73), towards
    // 0 the later; 0 when it never alarmed.
    let onset_part = lead.map_or(0.0, |l| {
        1.0 / (1.0 + (-(l as f64) / (5.0 * MINUTE as f64)).exp())
    });
    // Correlation with the symptom (the symptom's own is 1).
    let corr_part = correlation.map_or(0.0, f64::abs);
    // Position: what the symptom depends on may cause it, most of all an anomalous upstream
    // with no anomalous upstream of its own; the symptom itself is where it shows; what merely
    // depends on the symptom, or is unrelated, is unlikely. Without a graph, neutral.
    let place_part = match (distance, graph) {
        (Some(0), _) => 0.3,
        (Some(_), _) if deepest => 1.0,
        (Some(_), _) => 0.6,
        (None, true) => 0.1,
        (None, false) => 0.3,
    };
    let score = 0.5 * onset_part + 0.25 * corr_part + 0.25 * place_part;
    let mut why = Vec::new();
    why.push(match lead {
        None => "never alarmed around the incident".to_owned(),
        Some(0) if itself => "the incident's first signal".to_owned(),
        Some(l) if l > 0 => format!("anomalous {} before {symptom}", minutes_text(l)),
        Some(l) if l < 0 => format!("anomalous {} after {symptom}", minutes_text(-l)),
        Some(_) => format!("anomalous at the same time as {symptom}"),
    });
    if !itself {
        why.push(match correlation {
            Some(c) => format!("deviations correlate {c:.2} with {symptom}'s"),
            None => "too few shared minutes to correlate".to_owned(),
        });
        why.push(match (distance, graph) {
            (Some(d), _) if !path.is_empty() => format!(
                "{d} step{} upstream of {symptom} ({})",
                if d == 1 { "" } else { "s" },
                path.join(" → ")
            ),
            (Some(_), _) => "the same graph node".to_owned(),
            (None, true) => format!("not upstream of {symptom} on the health graph"),
            (None, false) => "no health graph to measure distance".to_owned(),
        });
    }
    Cause {
        rank: 0,
        resource: resource.to_owned(),
        node: node.map(|n| n.to_string()),
        score: (score * 1_000.0).round() / 1_000.0,
        onset,
        lead_ms: lead,
        correlation: correlation.map(|c| (c * 1_000.0).round() / 1_000.0),
        distance,
        path,
        deployed_ms_before: None,
        reason: why.join("; "),
    }
}

/// Whether an event type is a deployment (`deployment.created`, `deployment.success`, ...; not
/// `deployment.inactive`, a deployment superseded by a later one).
pub fn is_deployment(event_type: &str) -> bool {
    event_type.starts_with("deployment.") && event_type != "deployment.inactive"
}

/// Adds to `cause` that its resource was deployed `lead_ms` before the symptom went anomalous:
/// a change made just before is weighed like an alarm that came first (the onset part takes
/// the larger of the two), and said.
fn deployed(cause: &mut Cause, symptom: &str, lead_ms: u64) {
    let lead = i64::try_from(lead_ms).unwrap_or(i64::MAX);
    let deploy_part = 1.0 / (1.0 + (-(lead as f64) / (5.0 * MINUTE as f64)).exp());
    let onset_part = cause.lead_ms.map_or(0.0, |l| {
        1.0 / (1.0 + (-(l as f64) / (5.0 * MINUTE as f64)).exp())
    });
    if deploy_part > onset_part {
        cause.score =
            ((cause.score + 0.5 * (deploy_part - onset_part)) * 1_000.0).round() / 1_000.0;
    }
    cause.deployed_ms_before = Some(lead);
    cause.reason = format!(
        "deployed {} before {symptom} went anomalous; {}",
        minutes_text(lead),
        cause.reason
    );
}

fn minutes_text(ms: i64) -> String {
    let minutes = ms as f64 / MINUTE as f64;
    if minutes < 1.0 {
        format!("{}s", ms / 1_000)
    } else {
        format!("{minutes:.0} min")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_600_000;

    fn event(kind: &str, resource: &str, at: u64, payload: Value) -> TriggerEvent {
        TriggerEvent {
            event_type: kind.to_owned(),
            source: "push".to_owned(),
            actor: "push".to_owned(),
            resource: resource.to_owned(),
            payload,
            timestamp: at,
        }
    }

    fn alarm(resource: &str, at: u64) -> TriggerEvent {
        event(
            "anomaly",
            resource,
            at,
            json!({"metric": "latency_ms", "anomaly_score": 0.95}),
        )
    }

    fn cleared(resource: &str, at: u64) -> TriggerEvent {
        event(
            "anomaly.cleared",
            resource,
            at,
            json!({"metric": "latency_ms"}),
        )
    }

    /// A scored sample `d` robust deviations from the centre of its expected range.
    fn sample(resource: &str, at: u64, d: f64) -> TriggerEvent {
        event(
            "metrics.push",
            resource,
            at,
            json!({"metric": "latency_ms", "value": 100.0 + 10.0 * d, "anomaly_score": 0.1,
                   "anomaly": {"expected": {"low": 70.0, "high": 130.0}}}),
        )
    }

    fn tracker() -> Incidents {
        Incidents::new(IncidentConfig::default(), None)
    }

    #[test]
    fn an_alarm_opens_an_incident_its_resource_s_events_carry_and_its_clearing_closes() {
        let mut t = tracker();
        let mut first = alarm("db", T0);
        t.observe(&mut first);
        let id = first.payload["incident_id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("inc-20260101T0000-"), "{id}");
        let mut later = sample("db", T0 + MINUTE, 4.0);
        t.observe(&mut later);
        assert_eq!(later.payload["incident_id"], json!(id));
        let mut elsewhere = sample("web", T0 + MINUTE, 0.0);
        t.observe(&mut elsewhere);
        assert!(elsewhere.payload.get("incident_id").is_none());

        // Still going an hour later (the episode has not cleared), over when it clears.
        t.observe(&mut sample("db", T0 + 60 * MINUTE, 4.0));
        assert_eq!(t.get(&id).unwrap().state, "open");
        t.observe(&mut cleared("db", T0 + 61 * MINUTE));
        let done = t.get(&id).unwrap();
        assert_eq!(done.state, "closed");
        assert_eq!(done.closed_because.as_deref(), Some("every signal cleared"));
    }

    #[test]
    fn without_a_graph_other_resources_open_their_own_incidents_and_quiet_ones_expire() {
        let mut t = tracker();
        t.observe(&mut alarm("db", T0));
        t.observe(&mut alarm("web", T0 + MINUTE));
        assert_eq!(t.list().len(), 2);
        t.observe(&mut cleared("db", T0 + 2 * MINUTE));
        t.observe(&mut cleared("web", T0 + 2 * MINUTE));
        assert!(t.list().iter().all(|i| i.state == "closed"));

        // A firing alert with no resolution closes after clear_after... only once its episode
        // is over; a signal alone for a day closes in any case.
        let mut t = tracker();
        t.observe(&mut event(
            "alert.firing",
            "api",
            T0,
            json!({"labels": {"alertname": "Down"}}),
        ));
        t.observe(&mut sample("web", T0 + 20 * MINUTE, 0.0));
        assert_eq!(t.list()[0].state, "open");
        t.observe(&mut sample("web", T0 + 25 * 60 * MINUTE, 0.0));
        assert_eq!(
            t.list()[0].closed_because.as_deref(),
            Some("no signal for a day")
        );
    }

    #[test]
    fn causes_without_a_graph_rank_by_onset_and_correlation_and_say_so() {
        let mut t = tracker();
        // `db` deviates from minute 0 and alarms at minute 2; `web` alarms at minute 5 and
        // deviates with it; `cache` alarms later, deviating on its own.
        for m in 0..20u64 {
            let at = T0 + m * MINUTE;
            let d = if m >= 2 { m as f64 } else { 0.0 };
            t.observe(&mut sample("db", at, d));
            t.observe(&mut sample("web", at, if m >= 5 { m as f64 } else { 0.0 }));
            t.observe(&mut sample("cache", at, ((m * 7) % 5) as f64));
            match m {
                2 => t.observe(&mut alarm("db", at)),
                5 => t.observe(&mut alarm("web", at)),
                9 => t.observe(&mut alarm("cache", at)),
                _ => {}
            }
        }
        let db_incident = t
            .list()
            .iter()
            .find(|i| i.first_resource == "db")
            .unwrap()
            .id
            .clone();
        let ranked = t.causes(&db_incident).unwrap();
        assert!(!ranked.graph);
        let order: Vec<&str> = ranked.causes.iter().map(|c| c.resource.as_str()).collect();
        assert_eq!(order, ["db", "web", "cache"], "{ranked:#?}");
        assert!(
            ranked.causes[1].reason.contains("no health graph"),
            "{ranked:#?}"
        );
        assert!(ranked.causes[1].correlation.unwrap() > 0.8);
    }

    #[test]
    fn a_resource_deployed_just_before_the_symptom_is_a_suspect_though_it_never_alarmed() {
        let mut t = tracker();
        // `api` is deployed at minute 1; `web` and `cache` go anomalous at minutes 4 and 6.
        t.observe(&mut event(
            "deployment.success",
            "api",
            T0 + MINUTE,
            json!({ "ref": "main", "sha": "f95f852" }),
        ));
        // An older deployment, outside the lookback (30 minutes), and a superseded one: no suspects.
        t.observe(&mut event(
            "deployment.success",
            "old",
            T0 - 3_600_000,
            json!({}),
        ));
        t.observe(&mut event(
            "deployment.inactive",
            "db",
            T0 + MINUTE,
            json!({}),
        ));
        for m in 2..20u64 {
            let at = T0 + m * MINUTE;
            t.observe(&mut sample("web", at, if m >= 4 { m as f64 } else { 0.0 }));
            t.observe(&mut sample("cache", at, ((m * 7) % 5) as f64));
            match m {
                4 => t.observe(&mut alarm("web", at)),
                6 => t.observe(&mut alarm("cache", at)),
                _ => {}
            }
        }
        let id = t
            .list()
            .iter()
            .find(|i| i.first_resource == "web")
            .unwrap()
            .id
            .clone();
        let ranked = t.causes(&id).unwrap();
        let order: Vec<&str> = ranked.causes.iter().map(|c| c.resource.as_str()).collect();
        // Without a graph: the symptom itself, then what changed just before it, then what
        // alarmed after it; nothing deployed long before, or superseded.
        assert_eq!(order, ["web", "api", "cache"], "{ranked:#?}");
        let api = &ranked.causes[1];
        assert_eq!(api.deployed_ms_before, Some(3 * MINUTE as i64));
        assert!(
            api.reason.starts_with("deployed 3 min before web"),
            "{ranked:#?}"
        );
        assert!(api.score > ranked.causes[2].score);
    }

    #[test]
    fn a_stamp_never_takes_an_event_over_the_size_every_stored_event_is_read_back_with() {
        let mut t = tracker();
        t.observe(&mut alarm("db", T0));
        let pad = "x".repeat(grace_model::event::MAX_PAYLOAD_BYTES - 20);
        let mut big = event("log.line", "db", T0 + MINUTE, json!({ "pad": pad }));
        t.observe(&mut big);
        assert!(big.payload.get("incident_id").is_none());
        assert!(big.validate().is_ok());
    }

    #[test]
    fn the_same_events_make_the_same_incidents() {
        let run = || {
            let mut t = tracker();
            for (r, m) in [("db", 0), ("web", 3), ("db", 40)] {
                t.observe(&mut alarm(r, T0 + m * MINUTE));
            }
            t.list().iter().map(|i| i.id.clone()).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        assert_eq!(run().len(), 2, "db's second alarm joins its open incident");
    }
}
