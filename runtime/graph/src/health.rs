//! A node's key performance indicators (the golden signals) and the rule that derives its
//! health from them and from what discovery says of its availability.
//!
//! The rule ([`HealthRule::evaluate`]), the worst finding wins:
//!
//! | finding | health |
//! | --- | --- |
//! | a source reports none of the node's endpoints/instances ready (`0 of N`) | unhealthy |
//! | every member (container, instance, target that is part of it) is unhealthy | unhealthy |
//! | error ratio ≥ `errors.unhealthy` (0.05), p95 latency ≥ `latency_p95_ms.unhealthy` (2000), saturation ≥ `saturation.unhealthy` (0.95) | unhealthy |
//! | some but not all ready, some members unhealthy | degraded |
//! | (`0 of 0` ready, nothing wanted: no finding) | |
//! | error ratio ≥ `errors.degraded` (0.01), p95 ≥ `latency_p95_ms.degraded` (500), saturation ≥ `saturation.degraded` (0.8) | degraded |
//! | at least one fresh signal and none of the above | healthy |
//! | no fresh signal at all | unknown |
//!
//! A KPI is fresh for `fresh_for` (5 minutes) after it was measured; a stale KPI is shown with
//! its age but does not count. Availability counts while its source saw the node within
//! `fresh_for` too: a count from a source that has been down for long says nothing of now.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One of the golden signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kpi {
    /// 95th percentile latency of requests served, milliseconds.
    LatencyP95Ms,
    /// Requests served per second.
    TrafficRps,
    /// Share of requests served that failed, 0 to 1.
    ErrorRatio,
    /// How full the most constrained resource is, 0 to 1.
    Saturation,
}

impl Kpi {
    /// Every KPI.
    pub const ALL: [Kpi; 4] = [
        Kpi::LatencyP95Ms,
        Kpi::TrafficRps,
        Kpi::ErrorRatio,
        Kpi::Saturation,
    ];

    /// Its name in configuration and output.
    pub fn name(self) -> &'static str {
        match self {
            Kpi::LatencyP95Ms => "latency_p95_ms",
            Kpi::TrafficRps => "traffic_rps",
            Kpi::ErrorRatio => "error_ratio",
            Kpi::Saturation => "saturation",
        }
    }

    /// Whether `value` is one this KPI can take: finite, not negative, and at most 1 for
    /// ratios.
    pub fn accepts(self, value: f64) -> bool {
        value.is_finite()
            && value >= 0.0
            && (!matches!(self, Kpi::ErrorRatio | Kpi::Saturation) || value <= 1.0)
    }
}

/// One measured value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    /// The value.
    pub value: f64,
    /// When it was measured (ms since the epoch).
    pub at: u64,
    /// The source that measured it.
    pub source: String,
}

/// A node's golden signals, each as last measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kpis {
    /// p95 latency, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<Measure>,
    /// Requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_rps: Option<Measure>,
    /// Failed share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<Measure>,
    /// Fullness of the most constrained resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturation: Option<Measure>,
}

impl Kpis {
    /// The measure of `kpi`.
    pub fn get(&self, kpi: Kpi) -> Option<&Measure> {
        match kpi {
            Kpi::LatencyP95Ms => self.latency_p95_ms.as_ref(),
            Kpi::TrafficRps => self.traffic_rps.as_ref(),
            Kpi::ErrorRatio => self.error_ratio.as_ref(),
            Kpi::Saturation => self.saturation.as_ref(),
        }
    }

    /// Where `kpi`'s measure is kept.
    pub fn slot(&mut self, kpi: Kpi) -> &mut Option<Measure> {
        match kpi {
            Kpi::LatencyP95Ms => &mut self.latency_p95_ms,
            Kpi::TrafficRps => &mut self.traffic_rps,
            Kpi::ErrorRatio => &mut self.error_ratio,
            Kpi::Saturation => &mut self.saturation,
        }
    }

    /// The value of `kpi` if it was measured within `fresh_for` of `now`.
    pub fn fresh(&self, kpi: Kpi, now: u64, fresh_for: Duration) -> Option<f64> {
        self.get(kpi)
            .filter(|m| now.saturating_sub(m.at) <= millis(fresh_for))
            .map(|m| m.value)
    }
}

/// How many of a node's endpoints or instances are ready, as one source sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Ready (endpoints ready, instances in service and healthy, containers running, targets up).
    pub ready: u32,
    /// All of them.
    pub total: u32,
}

/// A node's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Fresh signals, all within bounds.
    Healthy,
    /// Some signal past its `degraded` bound, or part of it not ready.
    Degraded,
    /// Some signal past its `unhealthy` bound, or nothing of it ready.
    Unhealthy,
    /// No fresh signal.
    Unknown,
}

impl Health {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
        }
    }

    /// How bad it is, for "the worst finding wins" (unknown is not worse than healthy: it only
    /// applies when there is no finding at all).
    fn severity(self) -> u8 {
        match self {
            Health::Unknown => 0,
            Health::Healthy => 1,
            Health::Degraded => 2,
            Health::Unhealthy => 3,
        }
    }
}

/// A node's health and the findings that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The health.
    pub health: Health,
    /// Why, one finding per line (empty for a healthy node).
    pub reasons: Vec<String>,
}

/// Two bounds of one KPI: at or past `degraded` the node is degraded, at or past `unhealthy`
/// it is unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// The degraded bound.
    pub degraded: f64,
    /// The unhealthy bound.
    pub unhealthy: f64,
}

/// `[graph.health]`: the bounds of the health rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthRule {
    /// How long a KPI counts after it was measured.
    #[serde(with = "humantime_serde")]
    pub fresh_for: Duration,
    /// Error ratio bounds.
    pub errors: Bounds,
    /// p95 latency bounds, ms.
    pub latency_p95_ms: Bounds,
    /// Saturation bounds.
    pub saturation: Bounds,
}

impl Default for HealthRule {
    fn default() -> Self {
        HealthRule {
            fresh_for: Duration::from_secs(300),
            errors: Bounds {
                degraded: 0.01,
                unhealthy: 0.05,
            },
            latency_p95_ms: Bounds {
                degraded: 500.0,
                unhealthy: 2000.0,
            },
            saturation: Bounds {
                degraded: 0.8,
                unhealthy: 0.95,
            },
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the rule looks at for one node.
#[derive(Debug, Clone, Copy)]
pub struct Signals<'a> {
    /// The node's KPIs.
    pub kpis: &'a Kpis,
    /// Each source's availability of it.
    pub availability: &'a [(&'a str, Availability)],
    /// Its members' health (members are judged on their own signals only).
    pub members: &'a [Health],
}

impl HealthRule {
    /// Checks the bounds; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (name, b, max) in [
            ("errors", self.errors, 1.0),
            ("latency_p95_ms", self.latency_p95_ms, f64::MAX),
            ("saturation", self.saturation, 1.0),
        ] {
            if !(b.degraded.is_finite() && b.unhealthy.is_finite())
                || b.degraded <= 0.0
                || b.degraded > b.unhealthy
                || b.unhealthy > max
            {
                return Err(format!(
                    "graph.health.{name}: need 0 < degraded <= unhealthy{}",
                    if max == 1.0 { " <= 1" } else { "" }
                ));
            }
        }
        if self.fresh_for.is_zero() {
            return Err("graph.health.fresh_for: must be more than 0".into());
        }
        Ok(())
    }

    /// The health of a node with these signals at `now`.
    pub fn evaluate(&self, signals: Signals<'_>, now: u64) -> HealthReport {
        let mut worst = Health::Unknown;
        let mut reasons = Vec::new();
        let mut find = |h: Health, why: String, reasons: &mut Vec<String>| {
            if h.severity() > worst.severity() {
                worst = h;
            }
            if matches!(h, Health::Degraded | Health::Unhealthy) {
                reasons.push(why);
            }
        };
        for (source, a) in signals.availability {
            // Nothing wanted (a deployment scaled to 0, a Service without endpoints): no
            // finding either way.
            if a.total == 0 {
                continue;
            }
            let h = if a.ready == 0 {
                Health::Unhealthy
            } else if a.ready < a.total {
                Health::Degraded
            } else {
                Health::Healthy
            };
            find(
                h,
                format!("{} of {} ready ({source})", a.ready, a.total),
                &mut reasons,
            );
        }
        if !signals.members.is_empty() {
            let bad = signals
                .members
                .iter()
                .filter(|h| **h == Health::Unhealthy)
                .count();
            let n = signals.members.len();
            let h = if bad == n {
                Health::Unhealthy
            } else if bad > 0 {
                Health::Degraded
            } else if signals.members.iter().all(|h| *h == Health::Unknown) {
                Health::Unknown
            } else {
                Health::Healthy
            };
            find(h, format!("{bad} of {n} members unhealthy"), &mut reasons);
        }
        for (kpi, bounds, unit) in [
            (Kpi::ErrorRatio, self.errors, ""),
            (Kpi::LatencyP95Ms, self.latency_p95_ms, " ms"),
            (Kpi::Saturation, self.saturation, ""),
        ] {
            let Some(v) = signals.kpis.fresh(kpi, now, self.fresh_for) else {
                continue;
            };
            let h = if v >= bounds.unhealthy {
                Health::Unhealthy
            } else if v >= bounds.degraded {
                Health::Degraded
            } else {
                Health::Healthy
            };
            let bound = if h == Health::Unhealthy {
                bounds.unhealthy
            } else {
                bounds.degraded
            };
            find(
                h,
                format!("{} {v:.3}{unit} ≥ {bound}{unit}", kpi.name()),
                &mut reasons,
            );
        }
        // Traffic alone says the node answers, nothing about how well.
        if signals
            .kpis
            .fresh(Kpi::TrafficRps, now, self.fresh_for)
            .is_some()
        {
            find(Health::Healthy, String::new(), &mut reasons);
        }
        HealthReport {
            health: worst,
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(value: f64, at: u64) -> Option<Measure> {
        Some(Measure {
            value,
            at,
            source: "istio".into(),
        })
    }

    fn eval(
        kpis: &Kpis,
        availability: &[(&str, Availability)],
        members: &[Health],
    ) -> HealthReport {
        HealthRule::default().evaluate(
            Signals {
                kpis,
                availability,
                members,
            },
            1_000_000,
        )
    }

    #[test]
    fn a_node_with_no_fresh_signal_is_unknown() {
        let stale = Kpis {
            error_ratio: measure(0.5, 1),
            ..Kpis::default()
        };
        assert_eq!(eval(&stale, &[], &[]).health, Health::Unknown);
    }

    #[test]
    fn the_worst_finding_wins_and_is_named() {
        let kpis = Kpis {
            error_ratio: measure(0.02, 999_000),
            latency_p95_ms: measure(2500.0, 999_000),
            traffic_rps: measure(10.0, 999_000),
            ..Kpis::default()
        };
        let r = eval(&kpis, &[], &[]);
        assert_eq!(r.health, Health::Unhealthy);
        assert!(
            r.reasons
                .iter()
                .any(|s| s.starts_with("latency_p95_ms 2500")),
            "{r:?}"
        );
        assert!(
            r.reasons.iter().any(|s| s.starts_with("error_ratio 0.020")),
            "{r:?}"
        );
    }

    #[test]
    fn availability_and_members_count_like_kpis() {
        let none = Kpis::default();
        let zero = [("kubernetes", Availability { ready: 0, total: 3 })];
        assert_eq!(eval(&none, &zero, &[]).health, Health::Unhealthy);
        let some = [("kubernetes", Availability { ready: 2, total: 3 })];
        assert_eq!(eval(&none, &some, &[]).health, Health::Degraded);
        let all = [("kubernetes", Availability { ready: 3, total: 3 })];
        assert_eq!(eval(&none, &all, &[]).health, Health::Healthy);
        assert_eq!(
            eval(&none, &[], &[Health::Unhealthy, Health::Unhealthy]).health,
            Health::Unhealthy
        );
        assert_eq!(
            eval(&none, &[], &[Health::Healthy, Health::Unhealthy]).health,
            Health::Degraded
        );
        assert_eq!(eval(&none, &[], &[Health::Unknown]).health, Health::Unknown);
    }

    #[test]
    fn ratios_above_one_and_non_finite_values_are_not_kpis() {
        assert!(!Kpi::ErrorRatio.accepts(1.5));
        assert!(!Kpi::LatencyP95Ms.accepts(f64::NAN));
        assert!(!Kpi::TrafficRps.accepts(-1.0));
        assert!(Kpi::LatencyP95Ms.accepts(12_000.0));
    }

    #[test]
    fn bounds_out_of_order_are_refused_naming_the_key() {
        let mut rule = HealthRule::default();
        rule.errors.degraded = 0.5;
        rule.errors.unhealthy = 0.1;
        assert!(rule.validate().unwrap_err().contains("graph.health.errors"));
    }
}
