//! What the health graph costs at 10,000 nodes and 50,000 edges: a refresh, a walk of
//! dependents to depth 3, memory, and storing it; each against a fair baseline measured in the
//! same process.
//!
//! `cargo bench -p grace-graph --bench graph` (in `just bench`). Plain `main`, no harness.
//!
//! The graph: 10,000 services in 100 namespaces, each calling 5 others (50,000 `calls` edges
//! with rate and error ratio), 3 KPIs per service, all in one observation, as a mesh source
//! reports them every refresh.
//!
//! - **refresh**: applying that observation to the graph that already holds it (the steady
//!   state: every node and edge seen again, aging checked). Baseline: the least any merge of
//!   the same items does, hashing each id into a `HashMap` and updating its entry.
//! - **churn**: the unfavourable case, a refresh where 10 % of the edges are new and 10 % gone
//!   (new edges are inserted, the gone ones age out once `forget_after` has passed).
//! - **cold**: building the graph from nothing.
//! - **walk**: the dependents of a node to depth 3 (about 150 nodes reached), for 1,000 start
//!   nodes. Baseline: a breadth-first walk of the same edges kept as `Vec<Vec<u32>>`.
//! - **memory**: bytes held by the graph, counted by a counting allocator, beside the
//!   observation's own.
//! - **store**: encoding the snapshot as JSON (what `graph.persist_every` writes), and its size.
//!
//! Shared machines are noisy: every case is measured in several rounds, interleaved; the table
//! shows the medians.

#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use grace_graph::{
    GraphSettings, HealthGraph, Kpi, NodeId, Observation, ObservedEdge, ObservedKpi, ObservedNode,
    Walk,
};

const NODES: usize = 10_000;
const CALLS_PER_NODE: usize = 5;
const NAMESPACES: usize = 100;
const ROUNDS: usize = 5;
const WALKS: usize = 1_000;
const MINUTE: u64 = 60_000;

/// Counts bytes held, for the memory figure.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers to the system allocator and only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn held() -> isize {
    HELD.load(Ordering::Relaxed)
}

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

fn id(i: usize) -> NodeId {
    NodeId::service(&format!("ns{:03}", i % NAMESPACES), &format!("svc-{i:05}")).unwrap()
}

/// The callees of every node: 5 distinct others each.
fn callees(seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng(seed);
    (0..NODES)
        .map(|i| {
            let mut out = Vec::with_capacity(CALLS_PER_NODE);
            while out.len() < CALLS_PER_NODE {
                let j = rng.below(NODES);
                if j != i && !out.contains(&j) {
                    out.push(j);
                }
            }
            out
        })
        .collect()
}

fn observation(calls: &[Vec<usize>]) -> Observation {
    let ids: Vec<NodeId> = (0..NODES).map(id).collect();
    let mut o = Observation::default();
    for (i, callees) in calls.iter().enumerate() {
        o.nodes
            .push(ObservedNode::new(ids[i].clone()).available(3, 3));
        for (k, j) in callees.iter().enumerate() {
            o.edges.push(
                ObservedEdge::calls(ids[i].clone(), ids[*j].clone())
                    .traffic(1.0 + k as f64, Some(0.001)),
            );
        }
        for (kpi, value) in [
            (Kpi::TrafficRps, 10.0),
            (Kpi::ErrorRatio, 0.001),
            (Kpi::LatencyP95Ms, 42.0),
        ] {
            o.kpis.push(ObservedKpi {
                node: ids[i].clone(),
                kpi,
                value,
            });
        }
    }
    o
}

fn settings() -> GraphSettings {
    GraphSettings {
        forget_after: std::time::Duration::from_secs(600),
        ..GraphSettings::default()
    }
}

/// The least a merge of the same items does: hash each id, update its entry.
fn baseline_merge(map: &mut HashMap<String, (u64, f64)>, o: &Observation, now: u64) {
    for n in &o.nodes {
        map.entry(n.id.as_str().to_owned()).or_default().0 = now;
    }
    for e in &o.edges {
        let key = format!("{}>{}", e.from, e.to);
        *map.entry(key).or_default() = (now, e.rate_rps.unwrap_or(0.0));
    }
    for k in &o.kpis {
        map.entry(k.node.as_str().to_owned()).or_default().1 = k.value;
    }
}

/// Dependents to depth 3 over reversed callee lists, answering what the graph's walk answers:
/// each node reached, with its depth and the node it was reached from, as owned ids.
fn baseline_walk(
    callers: &[Vec<u32>],
    ids: &[NodeId],
    start: usize,
    seen: &mut [bool],
) -> Vec<(NodeId, u32, NodeId)> {
    let mut queue = VecDeque::from([(start as u32, 0u32)]);
    let mut reached = Vec::new();
    let mut marked = vec![start as u32];
    seen[start] = true;
    while let Some((i, d)) = queue.pop_front() {
        if d >= 3 {
            continue;
        }
        for &c in &callers[i as usize] {
            if !seen[c as usize] {
                seen[c as usize] = true;
                marked.push(c);
                reached.push((ids[c as usize].clone(), d + 1, ids[i as usize].clone()));
                queue.push_back((c, d + 1));
            }
        }
    }
    for i in marked {
        seen[i as usize] = false;
    }
    reached
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let calls = callees(0xC0FF_EE00_D15E_A5E5);
    let before_obs = held();
    let steady = observation(&calls);
    let observation_bytes = held() - before_obs;
    // The churn case: 10 % of the nodes call other services than before.
    let mut churned_calls = calls.clone();
    let mut rng = Rng(7);
    for i in (0..NODES).step_by(10) {
        let fresh = callees(rng.next());
        churned_calls[i] = fresh[i].clone();
    }
    let churned = observation(&churned_calls);
    let mut callers: Vec<Vec<u32>> = vec![Vec::new(); NODES];
    for (i, cs) in calls.iter().enumerate() {
        for j in cs {
            callers[*j].push(i as u32);
        }
    }
    let starts: Vec<usize> = {
        let mut rng = Rng(11);
        (0..WALKS).map(|_| rng.below(NODES)).collect()
    };
    let start_ids: Vec<NodeId> = starts.iter().map(|i| id(*i)).collect();
    let all_ids: Vec<NodeId> = (0..NODES).map(id).collect();

    let (mut cold, mut refresh, mut merge, mut churn) = (vec![], vec![], vec![], vec![]);
    let (mut walk, mut walk_base, mut store) = (vec![], vec![], vec![]);
    let (mut graph_bytes, mut snapshot_len, mut reached_total) = (0isize, 0usize, 0usize);
    for round in 0..ROUNDS {
        // Cold build, and the memory it holds.
        let before = held();
        let t = Instant::now();
        let mut graph = HealthGraph::new(settings());
        graph.apply("istio", &steady, 0);
        cold.push(t.elapsed());
        graph_bytes = held() - before;
        assert_eq!(graph.node_count(), NODES);
        assert_eq!(graph.edge_count(), NODES * CALLS_PER_NODE);

        // Steady refresh and its baseline, in alternating order.
        let mut map = HashMap::new();
        baseline_merge(&mut map, &steady, 0);
        let now = MINUTE * (round as u64 + 1);
        let mut measure_refresh = |graph: &mut HealthGraph| {
            let t = Instant::now();
            black_box(graph.apply("istio", &steady, now));
            refresh.push(t.elapsed());
        };
        let mut measure_merge = |map: &mut HashMap<String, (u64, f64)>| {
            let t = Instant::now();
            baseline_merge(map, &steady, now);
            black_box(map.len());
            merge.push(t.elapsed());
        };
        if round % 2 == 0 {
            measure_refresh(&mut graph);
            measure_merge(&mut map);
        } else {
            measure_merge(&mut map);
            measure_refresh(&mut graph);
        }

        // Walks and their baseline.
        let t = Instant::now();
        let mut reached = 0;
        for s in &start_ids {
            reached += graph.walk(s, Walk::Dependents, 3, 10_000).unwrap().len();
        }
        walk.push(t.elapsed());
        reached_total = reached;
        let mut seen = vec![false; NODES];
        let t = Instant::now();
        let mut base_reached = 0;
        for s in &starts {
            base_reached += black_box(baseline_walk(&callers, &all_ids, *s, &mut seen)).len();
        }
        walk_base.push(t.elapsed());
        assert_eq!(reached, base_reached, "both walks reach the same nodes");

        // Storing.
        let t = Instant::now();
        let json = serde_json::to_vec(&graph.snapshot()).unwrap();
        store.push(t.elapsed());
        snapshot_len = json.len();

        // Churn: 10 % of the edges change; the old ones age out 11 minutes on.
        let later = now + 11 * MINUTE;
        let t = Instant::now();
        let applied = graph.apply("istio", &churned, later);
        churn.push(t.elapsed());
        assert!(applied.edges_added > 0 && applied.edges_removed > 0);
    }

    let (cold, refresh, merge, churn) =
        (median(cold), median(refresh), median(merge), median(churn));
    let (walk, walk_base, store) = (median(walk), median(walk_base), median(store));
    println!(
        "health graph: {NODES} nodes, {} edges, {ROUNDS} rounds, medians",
        NODES * CALLS_PER_NODE
    );
    println!("| case | time | baseline | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| refresh (every node and edge seen again) | {:.1} ms | {:.1} ms (HashMap upsert of the same items) | {:.2}× |",
        ms(refresh),
        ms(merge),
        refresh.as_secs_f64() / merge.as_secs_f64()
    );
    println!(
        "| churn refresh (10 % of edges new, 10 % aged out) | {:.1} ms | {:.1} ms (same baseline) | {:.2}× |",
        ms(churn),
        ms(merge),
        churn.as_secs_f64() / merge.as_secs_f64()
    );
    println!("| cold build | {:.1} ms | | |", ms(cold));
    println!(
        "| dependents to depth 3, per walk ({:.0} nodes reached on average) | {:.1} µs | {:.1} µs (BFS over Vec<Vec<u32>>, same owned answer) | {:.2}× |",
        reached_total as f64 / WALKS as f64,
        walk.as_secs_f64() * 1e6 / WALKS as f64,
        walk_base.as_secs_f64() * 1e6 / WALKS as f64,
        walk.as_secs_f64() / walk_base.as_secs_f64()
    );
    println!(
        "| store: encode the snapshot | {:.1} ms | {:.1} MB of JSON | |",
        ms(store),
        snapshot_len as f64 / 1e6
    );
    println!(
        "| memory held by the graph | {:.1} MB | {:.1} MB (the observation itself) | {:.2}× |",
        graph_bytes as f64 / 1e6,
        observation_bytes as f64 / 1e6,
        graph_bytes as f64 / observation_bytes as f64
    );
}
