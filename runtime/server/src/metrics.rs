//! GRACE's own metrics, exposed at `/metrics` in the Prometheus text format.
//!
//! A handful of atomics and fixed-bucket histograms: enough to watch the server, no registry
//! crate, nothing allocated on the hot path.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::runs::RunState;

/// A latency histogram with fixed buckets (seconds).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many observations so far, in a bucket or beyond the last.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The upper bounds of the buckets, in seconds.
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// How many observations so far were at most each bound (cumulative, as Prometheus counts
    /// buckets).
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Every metric the server exports.
pub struct Metrics {
    /// Events accepted (durable).
    pub events_accepted: AtomicU64,
    /// Events refused because they were malformed.
    pub events_rejected: AtomicU64,
    /// Events refused because the queue was full.
    pub events_throttled: AtomicU64,
    /// Events matched against the triggers.
    pub events_matched: AtomicU64,
    /// Triggers that fired.
    pub triggers_fired: AtomicU64,
    /// Suppressed matches, by reason.
    pub suppressed: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Runs that reached each state.
    pub run_transitions: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Playbooks the meta-loop paused for a resource (see [`crate::meta`]).
    pub playbooks_paused: AtomicU64,
    /// Runs judged, by verdict (see [`crate::outcomes`]).
    pub run_outcomes: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Host calls made by runs and collector passes.
    pub host_calls: AtomicU64,
    /// Collector passes that succeeded.
    pub collector_passes_ok: AtomicU64,
    /// Collector passes that failed.
    pub collector_passes_failed: AtomicU64,
    /// From an event's acceptance to its run starting.
    pub ingest_to_run_start: Histogram,
    /// Run durations (wall clock).
    pub run_duration: Histogram,
    /// At this start: matched events replayed into the trigger mesh after its checkpoint.
    pub recovery_events_replayed: AtomicU64,
    /// At this start: events accepted before the restart and not yet matched, queued again.
    pub recovery_backlog_events: AtomicU64,
    /// Anomaly scoring of metric samples (`crate::anomaly`).
    pub anomaly: crate::anomaly::AnomalyCounts,
    /// Notification attempts by vendor and result (`delivered`, `retried`, `failed`).
    pub notifications: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
    /// Requests of the integrations' webhooks by source and result (`accepted`, `refused`,
    /// `replayed`, `ignored`).
    pub webhooks: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    /// Counts a notification attempt.
    pub fn notification(&self, vendor: &'static str, result: &'static str) {
        *crate::sync::lock(&self.notifications)
            .entry((vendor, result))
            .or_default() += 1;
    }

    /// Counts a webhook request.
    pub fn webhook(&self, source: &'static str, result: &'static str) {
        *crate::sync::lock(&self.webhooks)
            .entry((source, result))
            .or_default() += 1;
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            events_accepted: AtomicU64::new(0),
            events_rejected: AtomicU64::new(0),
            events_throttled: AtomicU64::new(0),
            events_matched: AtomicU64::new(0),
            triggers_fired: AtomicU64::new(0),
            suppressed: Mutex::default(),
            run_transitions: Mutex::default(),
            run_outcomes: Mutex::default(),
            playbooks_paused: AtomicU64::new(0),
            host_calls: AtomicU64::new(0),
            collector_passes_ok: AtomicU64::new(0),
            collector_passes_failed: AtomicU64::new(0),
            ingest_to_run_start: Histogram::new(LATENCY_BUCKETS),
            run_duration: Histogram::new(LATENCY_BUCKETS),
            recovery_events_replayed: AtomicU64::new(0),
            recovery_backlog_events: AtomicU64::new(0),
            anomaly: crate::anomaly::AnomalyCounts::default(),
            notifications: Mutex::default(),
            webhooks: Mutex::default(),
        }
    }
}

/// Gauges read at scrape time.
pub struct Gauges {
    /// Events waiting to be matched.
    pub queue_depth: usize,
    /// Queue capacity.
    pub queue_capacity: usize,
    /// Runs by current state.
    pub runs_by_state: Vec<(RunState, u64)>,
    /// Ledger entries.
    pub ledger_entries: u64,
    /// Loaded (enabled) playbooks.
    pub playbooks: usize,
    /// Every source's health.
    pub sources: Vec<crate::sources::health::SourceHealth>,
    /// This replica's view of the cluster, with `[cluster]`.
    pub cluster: Option<grace_cluster::ClusterStatus>,
    /// Dashboards open on their live event stream.
    pub dashboard_streams: usize,
    /// Runs' changes of state dropped from the notifications' outbox, too far behind.
    pub transitions_dropped: u64,
}

/// `grace_cluster_ready`, `grace_shard_owned{shard}` (one series per shard: 1 held here, 0 not),
/// the lease counters and the live replicas, with `[cluster]`.
fn render_cluster(out: &mut String, status: &grace_cluster::ClusterStatus) {
    let family = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    family(
        out,
        "grace_cluster_ready",
        "gauge",
        "Whether this replica takes part in the cluster now (1) or is cut off from it (0).",
        u64::from(status.ready),
    );
    family(
        out,
        "grace_cluster_replicas",
        "gauge",
        "Live replicas of the cluster, as last read.",
        status.replicas.len() as u64,
    );
    let _ = writeln!(
        out,
        "# HELP grace_shard_owned Whether this replica holds the shard's lease (1) or not (0).\n# TYPE grace_shard_owned gauge"
    );
    let owned: std::collections::BTreeSet<u32> = status.owned.iter().map(|o| o.shard).collect();
    for shard in 0..status.shards {
        let _ = writeln!(
            out,
            "grace_shard_owned{{shard=\"{shard}\"}} {}",
            u64::from(owned.contains(&shard))
        );
    }
    let c = &status.counters;
    for (name, help, v) in [
        (
            "grace_lease_renewals_total",
            "Shard leases renewed (fence checks included).",
            c.renewals,
        ),
        (
            "grace_lease_acquisitions_total",
            "Shard leases acquired.",
            c.acquisitions,
        ),
        (
            "grace_lease_takeovers_total",
            "Shard leases acquired from a replica that stopped renewing them.",
            c.takeovers,
        ),
        (
            "grace_lease_losses_total",
            "Shard leases lost (expired or taken).",
            c.losses,
        ),
        (
            "grace_lease_releases_total",
            "Shard leases given back.",
            c.releases,
        ),
        (
            "grace_fence_rejections_total",
            "Fence checks refused before an action.",
            c.fence_rejections,
        ),
        (
            "grace_runs_taken_over_total",
            "Runs taken over off the cluster's run board (their replica died, stopped or lost the shard).",
            c.runs_taken_over,
        ),
        (
            "grace_playbook_installs_refused_total",
            "Playbook versions from the cluster's catalogue this replica refused to install (a signer it does not trust, a component that does not match, over its caps).",
            c.installs_refused,
        ),
    ] {
        family(out, name, "counter", help, v);
    }
}

/// `grace_source_up`, `grace_source_failures_total`, `grace_source_events_total`,
/// `grace_source_stale_samples_total` and `grace_source_last_success_timestamp_seconds`, one
/// series per source.
fn render_sources(out: &mut String, sources: &[crate::sources::health::SourceHealth]) {
    type Field = fn(&crate::sources::health::SourceHealth) -> Option<f64>;
    #[allow(clippy::cast_precision_loss)]
    let families: [(&str, &str, &str, Field); 5] = [
        (
            "grace_source_up",
            "gauge",
            "Whether the source is healthy (1) or down or stale (0).",
            |h| Some(if h.status.is_up() { 1.0 } else { 0.0 }),
        ),
        (
            "grace_source_failures_total",
            "counter",
            "Failed polls or refused pushes.",
            |h| Some(h.failures as f64),
        ),
        (
            "grace_source_events_total",
            "counter",
            "Events published by the source.",
            |h| Some(h.events as f64),
        ),
        (
            "grace_source_stale_samples_total",
            "counter",
            "Samples not published because they were too old or already published.",
            |h| Some(h.stale_samples as f64),
        ),
        (
            "grace_source_last_success_timestamp_seconds",
            "gauge",
            "When the source last answered.",
            |h| h.last_success_at.map(|t| t as f64 / 1000.0),
        ),
    ];
    for (name, kind, help, field) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for h in sources {
            if let Some(v) = field(h) {
                // Source names are `[a-z0-9_-]`: nothing to escape.
                let _ = writeln!(
                    out,
                    "{name}{{source=\"{}\",kind=\"{}\"}} {v}",
                    h.name, h.kind
                );
            }
        }
    }
}

impl Metrics {
    /// Counts `n` suppressed matches with one reason.
    pub fn suppressed_many(&self, reason: &'static str, n: u64) {
        *crate::sync::lock(&self.suppressed)
            .entry(reason)
            .or_default() += n;
    }

    /// Counts a suppressed match.
    pub fn suppressed(&self, reason: &'static str) {
        *crate::sync::lock(&self.suppressed)
            .entry(reason)
            .or_default() += 1;
    }

    /// Counts a collector pass.
    pub fn collector_pass(&self, ok: bool) {
        let counter = if ok {
            &self.collector_passes_ok
        } else {
            &self.collector_passes_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a run reaching a state.
    pub fn transition(&self, state: RunState) {
        *crate::sync::lock(&self.run_transitions)
            .entry(state.name())
            .or_default() += 1;
    }

    /// Counts playbooks paused.
    pub fn playbooks_paused(&self, n: usize) {
        self.playbooks_paused
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts runs judged.
    pub fn runs_judged(&self, verdicts: &[crate::outcomes::Verdict]) {
        let mut counts = crate::sync::lock(&self.run_outcomes);
        for v in verdicts {
            *counts.entry(v.name()).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut out,
            "grace_events_accepted_total",
            "Events accepted and stored.",
            load(&self.events_accepted),
        );
        counter(
            &mut out,
            "grace_events_rejected_total",
            "Events refused as malformed.",
            load(&self.events_rejected),
        );
        counter(
            &mut out,
            "grace_events_throttled_total",
            "Events refused because the queue was full.",
            load(&self.events_throttled),
        );
        counter(
            &mut out,
            "grace_events_matched_total",
            "Events matched against triggers.",
            load(&self.events_matched),
        );
        counter(
            &mut out,
            "grace_triggers_fired_total",
            "Triggers that fired a run.",
            load(&self.triggers_fired),
        );
        let _ = writeln!(
            out,
            "# HELP grace_triggers_suppressed_total Matches that did not fire, by reason.\n# TYPE grace_triggers_suppressed_total counter"
        );
        for (reason, n) in crate::sync::lock(&self.suppressed).iter() {
            let _ = writeln!(
                out,
                "grace_triggers_suppressed_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP grace_run_transitions_total Runs that reached each state.\n# TYPE grace_run_transitions_total counter"
        );
        for (state, n) in crate::sync::lock(&self.run_transitions).iter() {
            let _ = writeln!(out, "grace_run_transitions_total{{state=\"{state}\"}} {n}");
        }
        counter(
            &mut out,
            "grace_playbooks_paused_total",
            "Playbooks the meta-loop paused for a resource (flapping).",
            load(&self.playbooks_paused),
        );
        let _ = writeln!(
            out,
            "# HELP grace_run_outcomes_total Runs judged, by whether their signal cleared.\n# TYPE grace_run_outcomes_total counter"
        );
        for (verdict, n) in crate::sync::lock(&self.run_outcomes).iter() {
            let _ = writeln!(out, "grace_run_outcomes_total{{verdict=\"{verdict}\"}} {n}");
        }
        counter(
            &mut out,
            "grace_host_calls_total",
            "Host calls made by runs and collectors.",
            load(&self.host_calls),
        );
        let _ = writeln!(
            out,
            "# HELP grace_collector_passes_total Collector passes, by result.\n# TYPE grace_collector_passes_total counter"
        );
        for (result, counter) in [
            ("ok", &self.collector_passes_ok),
            ("failed", &self.collector_passes_failed),
        ] {
            let _ = writeln!(
                out,
                "grace_collector_passes_total{{result=\"{result}\"}} {}",
                load(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP grace_anomaly_samples_total Metric samples offered to the anomaly detectors, by fate.\n# TYPE grace_anomaly_samples_total counter"
        );
        for (fate, counter) in [
            ("scored", &self.anomaly.scored),
            ("not_finite", &self.anomaly.not_finite),
            ("out_of_order", &self.anomaly.out_of_order),
            ("future", &self.anomaly.future),
        ] {
            let _ = writeln!(
                out,
                "grace_anomaly_samples_total{{fate=\"{fate}\"}} {}",
                load(counter)
            );
        }
        counter(
            &mut out,
            "grace_anomaly_series_evicted_total",
            "Series dropped, the least recently heard from, to make room beyond max_series.",
            load(&self.anomaly.over_limit),
        );
        counter(
            &mut out,
            "grace_anomaly_alarms_total",
            "`anomaly` events raised.",
            load(&self.anomaly.alarms),
        );
        let _ = writeln!(
            out,
            "# HELP grace_notifications_total Notification attempts, by vendor and result.\n# TYPE grace_notifications_total counter"
        );
        for ((vendor, result), n) in crate::sync::lock(&self.notifications).iter() {
            let _ = writeln!(
                out,
                "grace_notifications_total{{vendor=\"{vendor}\",result=\"{result}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP grace_webhooks_total Requests to the integrations' webhooks, by source and result.\n# TYPE grace_webhooks_total counter"
        );
        for ((source, result), n) in crate::sync::lock(&self.webhooks).iter() {
            let _ = writeln!(
                out,
                "grace_webhooks_total{{source=\"{source}\",result=\"{result}\"}} {n}"
            );
        }
        gauge(
            &mut out,
            "grace_event_queue_depth",
            "Events waiting to be matched.",
            gauges.queue_depth as u64,
        );
        gauge(
            &mut out,
            "grace_event_queue_capacity",
            "Event queue capacity.",
            gauges.queue_capacity as u64,
        );
        let _ = writeln!(
            out,
            "# HELP grace_runs Runs by current state.\n# TYPE grace_runs gauge"
        );
        for (state, n) in &gauges.runs_by_state {
            let _ = writeln!(out, "grace_runs{{state=\"{}\"}} {n}", state.name());
        }
        gauge(
            &mut out,
            "grace_ledger_entries",
            "Entries in the ledger.",
            gauges.ledger_entries,
        );
        gauge(
            &mut out,
            "grace_playbooks_enabled",
            "Enabled playbooks.",
            gauges.playbooks as u64,
        );
        counter(
            &mut out,
            "grace_notify_transitions_dropped_total",
            "Runs' changes of state dropped from the notifications' outbox because 100,000 waited: their notifications were never made.",
            gauges.transitions_dropped,
        );
        gauge(
            &mut out,
            "grace_dashboard_streams",
            "Dashboard pages open on their live event stream.",
            gauges.dashboard_streams as u64,
        );
        gauge(
            &mut out,
            "grace_recovery_events_replayed",
            "At this start: matched events replayed into the trigger mesh after its checkpoint.",
            load(&self.recovery_events_replayed),
        );
        gauge(
            &mut out,
            "grace_recovery_backlog_events",
            "At this start: events accepted before the restart and not yet matched.",
            load(&self.recovery_backlog_events),
        );
        render_sources(&mut out, &gauges.sources);
        if let Some(cluster) = &gauges.cluster {
            render_cluster(&mut out, cluster);
        }
        self.ingest_to_run_start.render(
            &mut out,
            "grace_ingest_to_run_start_seconds",
            "From an event's acceptance to the start of the run it fired.",
        );
        self.run_duration.render(
            &mut out,
            "grace_run_duration_seconds",
            "Wall-clock duration of run attempts.",
        );
        out
    }
}
