//! The risk score: 0 (harmless) to 100 (as risky as it gets) for one proposed change, the
//! weighted mean of six named factors, each worth 0 to 1 and explained in one line.
//!
//! | factor | 0 | 1 |
//! |---|---|---|
//! | `blast_radius` | disrupts nothing running (scaling out, starting) | takes down every instance (widened by dependents) |
//! | `environment` | `dev` | `prod` (unknown environments count 0.8) |
//! | `magnitude` | capacity unchanged | capacity changed by 100% or more |
//! | `recent_failures` | no failed run recently, the last run here cleared its signal | many: 1 − 0.5ⁿ (failed runs, or runs in a row that did not clear their signal) |
//! | `deployment_recency` | no recent deployment | deployed just now (halves every 30 minutes) |
//! | `signal_confidence` | the detector is certain | the detector is guessing (0.5 with no signal) |
//!
//! Deterministic: the same request and configuration always give the same score. Reads score 0.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::TrustError;
use crate::request::{Change, Request};
use crate::utc::MINUTE_MS;

/// The weight of each factor. Only their ratios matter; a weight of 0 turns a factor off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// Share of the resource the change disrupts.
    pub blast_radius: f64,
    /// How critical the environment is.
    pub environment: f64,
    /// Relative size of a capacity change.
    pub magnitude: f64,
    /// Recent failed runs of the playbook.
    pub recent_failures: f64,
    /// How recently the resource was deployed.
    pub deployment_recency: f64,
    /// Uncertainty of the triggering signal.
    pub signal_confidence: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            blast_radius: 0.30,
            environment: 0.20,
            magnitude: 0.15,
            recent_failures: 0.15,
            deployment_recency: 0.10,
            signal_confidence: 0.10,
        }
    }
}

/// The risk model's configuration (e.g. the `[risk]` table of the trust configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// The factors' weights.
    pub weights: Weights,
    /// Risk of each environment, 0 to 1, by name (compared case-insensitively).
    pub environments: BTreeMap<String, f64>,
    /// Risk of an environment missing from `environments` or not given at all.
    pub unknown_environment: f64,
    /// How much each dependent widens the blast radius: ×(1 + this × dependents).
    pub dependent_amplification: f64,
    /// After how many minutes the risk of a recent deployment halves.
    pub deployment_half_life_minutes: f64,
    /// The `signal_confidence` factor's value when the run has no triggering signal.
    pub unknown_confidence: f64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            weights: Weights::default(),
            environments: [
                ("prod", 1.0),
                ("production", 1.0),
                ("staging", 0.5),
                ("dev", 0.1),
                ("test", 0.1),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            unknown_environment: 0.8,
            dependent_amplification: 0.25,
            deployment_half_life_minutes: 30.0,
            unknown_confidence: 0.5,
        }
    }
}

/// A restart or stop that takes no instance down at once (a rolling restart with surge) still
/// replaces every instance: when the resource is the only healthy upstream of a direct
/// dependent, it counts as disrupting one instance, since if the new ones do not come up that
/// dependent has nothing left.
fn sole_upstream_floor(r: &Request, share: f64, what: String) -> (f64, String) {
    let restarts = matches!(r.change, Change::Restart { .. } | Change::Stop { .. });
    let sole = r
        .resource
        .downstream
        .iter()
        .filter(|d| d.depth == 1 && d.only_healthy_upstream)
        .count();
    if share > 0.0 || !restarts || sole == 0 {
        return (share, what);
    }
    let floor = match r.state.capacity {
        Some(c) if c > 0 => 1.0 / f64::from(c),
        _ => 1.0,
    };
    (
        floor,
        format!(
            "{what}, counted as one instance: every instance is replaced and it is the only healthy upstream of {sole} dependent{}",
            if sole == 1 { "" } else { "s" }
        ),
    )
}

/// Dependents named in a blast-radius explanation at most; the rest are counted.
const NAMED_DEPENDENTS: usize = 5;

/// How much what depends on `resource` widens its blast radius, and who that is in words.
///
/// From the health graph (`downstream`): a direct dependent weighs 0.5 plus half its share of
/// the resource's traffic (1 when its traffic is not measured), twice that when the resource is
/// its only healthy upstream; a dependent further down weighs 0.25. Each of the `dependents`
/// configured (`[[trust.resource]]`) weighs 1, and their count is a floor on the graph's weight.
fn dependents_weight(resource: &crate::request::Resource) -> Option<(f64, String)> {
    let configured = resource.dependents;
    if resource.downstream.is_empty() {
        return (configured > 0)
            .then(|| (f64::from(configured), format!("{configured} dependents")));
    }
    let mut weight = 0.0;
    let mut named = Vec::new();
    let direct = resource.downstream.iter().filter(|d| d.depth == 1).count();
    for d in &resource.downstream {
        if d.depth != 1 {
            weight += 0.25;
            continue;
        }
        let share = d.traffic_permille.map(|p| f64::from(p.min(1000)) / 1000.0);
        let base = 0.5 + 0.5 * share.unwrap_or(1.0);
        weight += if d.only_healthy_upstream {
            2.0 * base
        } else {
            base
        };
        if named.len() < NAMED_DEPENDENTS {
            let mut notes = Vec::new();
            if let Some(s) = share {
                notes.push(format!("{:.0}% of the requests", s * 100.0));
            }
            if d.only_healthy_upstream {
                notes.push("its only healthy upstream".to_owned());
            }
            named.push(if notes.is_empty() {
                format!("`{}`", d.id)
            } else {
                format!("`{}` ({})", d.id, notes.join(", "))
            });
        }
    }
    let further = resource.downstream.len() - direct;
    let mut whom = format!(
        "{direct} direct dependent{}: {}",
        if direct == 1 { "" } else { "s" },
        named.join(", ")
    );
    if direct > named.len() {
        whom.push_str(&format!(" and {} more", direct - named.len()));
    }
    if further > 0 {
        whom.push_str(&format!("; {further} further down"));
    }
    // What the operator configured is a floor: discovery may see only part of the callers
    // (a sampled mesh, a bound on a look).
    if f64::from(configured) > weight {
        return Some((
            f64::from(configured),
            format!("{configured} dependents configured ({whom})"),
        ));
    }
    (weight > 0.0).then_some((weight, whom))
}

/// A named risk factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// Share of the resource disrupted, widened by dependents.
    BlastRadius,
    /// The environment's criticality.
    Environment,
    /// Relative size of a capacity change.
    Magnitude,
    /// Recent failed runs of the playbook.
    RecentFailures,
    /// How recently the resource was deployed.
    DeploymentRecency,
    /// Uncertainty of the triggering signal.
    SignalConfidence,
}

impl FactorKind {
    /// Its name, as in the configuration (`blast_radius`...).
    pub fn name(self) -> &'static str {
        match self {
            FactorKind::BlastRadius => "blast_radius",
            FactorKind::Environment => "environment",
            FactorKind::Magnitude => "magnitude",
            FactorKind::RecentFailures => "recent_failures",
            FactorKind::DeploymentRecency => "deployment_recency",
            FactorKind::SignalConfidence => "signal_confidence",
        }
    }
}

/// One factor of a risk score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// Which factor.
    pub kind: FactorKind,
    /// Its value, 0 to 1.
    pub value: f64,
    /// Its share of the score: the configured weight divided by the sum of the weights.
    pub weight: f64,
    /// Points it adds to the score (value × weight × 100).
    pub contribution: f64,
    /// Why it has this value, in one line.
    pub explanation: String,
}

/// A risk score and the factors it is made of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// 0 to 100.
    pub score: u8,
    /// Every factor, in a fixed order (empty for reads).
    pub factors: Vec<Factor>,
}

impl Risk {
    /// The factors that add the most, largest first (those adding nothing left out).
    pub fn top(&self, n: usize) -> Vec<&Factor> {
        let mut f: Vec<&Factor> = self
            .factors
            .iter()
            .filter(|f| f.contribution > 0.0)
            .collect();
        f.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        f.truncate(n);
        f
    }
}

impl fmt::Display for Risk {
    /// `risk 62/100 (blast_radius +24: removes 4 of 8 instances (50%) of `web`; ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "risk {}/100", self.score)?;
        let top = self.top(3);
        if top.is_empty() {
            return Ok(());
        }
        f.write_str(" (")?;
        for (i, factor) in top.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "{} +{:.0}: {}",
                factor.kind.name(),
                factor.contribution,
                factor.explanation
            )?;
        }
        f.write_str(")")
    }
}

/// Scores proposed changes.
#[derive(Debug, Clone)]
pub struct RiskModel {
    config: RiskConfig,
    /// `environments` with lowercase keys.
    environments: BTreeMap<String, f64>,
    /// The weights in factor order, normalised to sum to 1.
    shares: [f64; 6],
}

fn unit(name: &str, v: f64) -> Result<(), TrustError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(TrustError::Config(format!(
            "risk `{name}` must be between 0 and 1, not {v}"
        )))
    }
}

impl RiskModel {
    /// A model with `config`, checked: weights finite, not negative, not all zero; risks
    /// between 0 and 1; a positive half-life.
    pub fn new(config: RiskConfig) -> Result<Self, TrustError> {
        let w = &config.weights;
        let weights = [
            ("blast_radius", w.blast_radius),
            ("environment", w.environment),
            ("magnitude", w.magnitude),
            ("recent_failures", w.recent_failures),
            ("deployment_recency", w.deployment_recency),
            ("signal_confidence", w.signal_confidence),
        ];
        for (name, v) in weights {
            if !v.is_finite() || v < 0.0 {
                return Err(TrustError::Config(format!(
                    "risk weight `{name}` must be a non-negative number, not {v}"
                )));
            }
        }
        let sum: f64 = weights.iter().map(|(_, v)| v).sum();
        if sum <= 0.0 {
            return Err(TrustError::Config(
                "risk weights are all 0: at least one factor must count".into(),
            ));
        }
        for (name, v) in &config.environments {
            unit(&format!("environments.{name}"), *v)?;
        }
        unit("unknown_environment", config.unknown_environment)?;
        unit("unknown_confidence", config.unknown_confidence)?;
        if !config.dependent_amplification.is_finite() || config.dependent_amplification < 0.0 {
            return Err(TrustError::Config(format!(
                "risk `dependent_amplification` must be a non-negative number, not {}",
                config.dependent_amplification
            )));
        }
        if !config.deployment_half_life_minutes.is_finite()
            || config.deployment_half_life_minutes <= 0.0
        {
            return Err(TrustError::Config(format!(
                "risk `deployment_half_life_minutes` must be positive, not {}",
                config.deployment_half_life_minutes
            )));
        }
        let shares = weights.map(|(_, v)| v / sum);
        let environments = config
            .environments
            .iter()
            .map(|(k, v)| (k.to_lowercase(), *v))
            .collect();
        Ok(RiskModel {
            config,
            environments,
            shares,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RiskConfig {
        &self.config
    }

    /// The risk of `request`: 0 with no factors for a read.
    pub fn score(&self, request: &Request) -> Risk {
        // The factors describe a change to something running (what it takes down, where, how
        // much); a message to a channel changes nothing running, like a read.
        if !request.action.is_change() || !request.resource.kind.has_state() {
            return Risk::default();
        }
        let raw = [
            self.blast_radius(request),
            self.environment(request),
            magnitude(request),
            recent_failures(request),
            self.deployment_recency(request),
            self.signal_confidence(request),
        ];
        const KINDS: [FactorKind; 6] = [
            FactorKind::BlastRadius,
            FactorKind::Environment,
            FactorKind::Magnitude,
            FactorKind::RecentFailures,
            FactorKind::DeploymentRecency,
            FactorKind::SignalConfidence,
        ];
        let mut total = 0.0;
        let mut factors = Vec::with_capacity(6);
        for ((kind, (value, explanation)), share) in KINDS.into_iter().zip(raw).zip(self.shares) {
            let value = value.clamp(0.0, 1.0);
            let contribution = value * share * 100.0;
            total += contribution;
            factors.push(Factor {
                kind,
                value: round(value, 1000.0),
                weight: round(share, 1000.0),
                contribution: round(contribution, 10.0),
                explanation,
            });
        }
        Risk {
            // Clamped to 0..=100 first, so the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            score: total.round().clamp(0.0, 100.0) as u8,
            factors,
        }
    }

    fn blast_radius(&self, r: &Request) -> (f64, String) {
        let name = r.resource.display_name();
        let capacity = r.state.capacity;
        let (share, what) = match (r.change, capacity) {
            (Change::Capacity { to }, Some(c)) if to < c => (
                f64::from(c - to) / f64::from(c),
                format!("removes {} of {c} instances of `{name}`", c - to),
            ),
            (Change::Capacity { .. }, Some(_)) => (
                0.0,
                format!("adds capacity to `{name}`: disrupts nothing running"),
            ),
            (Change::Capacity { to }, None) => (
                0.5,
                format!("sets `{name}` to {to} with its current capacity unknown"),
            ),
            (Change::Restart { instances } | Change::Stop { instances }, Some(c)) if c > 0 => {
                let verb = if matches!(r.change, Change::Stop { .. }) {
                    "stops"
                } else {
                    "restarts"
                };
                (
                    (f64::from(instances) / f64::from(c)).min(1.0),
                    format!("{verb} {instances} of {c} instances of `{name}` at once"),
                )
            }
            (Change::Restart { instances } | Change::Stop { instances }, _) => (
                if instances == 0 { 0.0 } else { 1.0 },
                format!("takes down `{name}` with no other instance known to serve"),
            ),
            (Change::Start { .. }, _) => {
                (0.0, format!("starts `{name}`: disrupts nothing running"))
            }
            (Change::None, _) => (0.0, "changes nothing".to_owned()),
        };
        let (share, what) = sole_upstream_floor(r, share, what);
        match dependents_weight(&r.resource) {
            Some((weight, whom)) if share > 0.0 => {
                let factor = 1.0 + self.config.dependent_amplification * weight;
                (
                    share * factor,
                    format!("{what} ({:.0}%), ×{factor:.2} for {whom}", share * 100.0),
                )
            }
            _ => (share, format!("{what} ({:.0}%)", share * 100.0)),
        }
    }

    fn environment(&self, r: &Request) -> (f64, String) {
        match &r.resource.environment {
            Some(env) => match self.environments.get(&env.to_lowercase()) {
                Some(v) => (*v, format!("environment `{env}`")),
                None => (
                    self.config.unknown_environment,
                    format!("environment `{env}` has no configured risk"),
                ),
            },
            None => (
                self.config.unknown_environment,
                "environment unknown".to_owned(),
            ),
        }
    }

    fn deployment_recency(&self, r: &Request) -> (f64, String) {
        match r.history.last_deployment_millis {
            None => (0.0, "no recent deployment known".to_owned()),
            Some(at) => {
                #[allow(clippy::cast_precision_loss)]
                let minutes = r.at_millis.saturating_sub(at) as f64 / MINUTE_MS as f64;
                let value = 0.5f64.powf(minutes / self.config.deployment_half_life_minutes);
                (value, format!("deployed {minutes:.0} minutes ago"))
            }
        }
    }

    /// The signal's own `confidence` when it has one; otherwise its anomaly score (GRACE's
    /// detectors score every metric sample: how far outside its series' habits it lies).
    fn signal_confidence(&self, r: &Request) -> (f64, String) {
        match (r.signal.confidence, r.signal.anomaly_score) {
            (Some(c), _) if c.is_finite() => {
                let c = c.clamp(0.0, 1.0);
                (
                    1.0 - c,
                    format!("the triggering signal's confidence is {:.0}%", c * 100.0),
                )
            }
            (_, Some(a)) if a.is_finite() => {
                let a = a.clamp(0.0, 1.0);
                (
                    1.0 - a,
                    format!("the triggering event's anomaly score is {:.0}%", a * 100.0),
                )
            }
            _ => (
                self.config.unknown_confidence,
                "no triggering signal confidence".to_owned(),
            ),
        }
    }
}

fn magnitude(r: &Request) -> (f64, String) {
    match (r.change, r.state.capacity) {
        (Change::Capacity { to }, Some(c)) => {
            let delta = to.abs_diff(c);
            let relative = f64::from(delta) / f64::from(c.max(1));
            (
                relative.min(1.0),
                format!("capacity {c} → {to} ({:.0}%)", relative * 100.0),
            )
        }
        (Change::Capacity { to }, None) => (1.0, format!("capacity ? → {to} (current unknown)")),
        _ => (0.0, "capacity unchanged".to_owned()),
    }
}

/// Learned failure: the larger of the playbook's failed runs in the host's recent window and
/// the runs of it on this resource, in a row, that did not clear their signal (a run can be
/// both, and counts once). A run that clears its signal ends the streak.
fn recent_failures(r: &Request) -> (f64, String) {
    let failed = r.history.recent_failures;
    let learned = r.history.learned.as_ref();
    let streak = learned.map_or(0, |l| l.not_cleared_streak);
    let n = failed.max(streak);
    let value = 1.0 - 0.5f64.powi(i32::try_from(n).unwrap_or(i32::MAX));
    let runs = |n: u32| if n == 1 { "run" } else { "runs" };
    let mut why = format!("{failed} failed {} of this playbook recently", runs(failed));
    if streak > 0 {
        why.push_str(&format!(
            "; its last {streak} {} on `{}` did not clear their signal",
            runs(streak),
            learned.map_or("", |l| l.about.as_str())
        ));
    }
    (value, why)
}

fn round(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}
