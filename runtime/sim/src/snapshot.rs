//! A picture of the simulated fleet at one moment: for printing "the fleet's final state" after
//! a dry-run, and for comparing two runs.

use std::fmt;

use grace_executor::containers::{Container, ContainerState, Health};
use grace_executor::kubernetes::Deployment;
use serde::{Deserialize, Serialize};

use crate::containers::format_labels;

/// The simulated fleet's state at one moment. Every list is sorted by name (deployments by
/// namespace, then name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetSnapshot {
    /// When, in RFC 3339 (UTC).
    pub time: String,
    /// When, in milliseconds since the Unix epoch.
    pub time_millis: u64,
    /// Groups of instances.
    pub groups: Vec<GroupSnapshot>,
    /// Services and their modelled latency.
    pub services: Vec<ServiceSnapshot>,
    /// Containers.
    pub containers: Vec<Container>,
    /// Deployments.
    pub deployments: Vec<Deployment>,
}

/// A group of instances at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// Group name.
    pub name: String,
    /// Smallest capacity the group allows.
    pub min_size: u32,
    /// Largest capacity the group allows.
    pub max_size: u32,
    /// The capacity the group is converging to.
    pub desired_capacity: u32,
    /// Instances in service.
    pub in_service: u32,
    /// Instances launched and still warming up.
    pub pending: u32,
}

/// A service at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    /// Service name.
    pub name: String,
    /// The group serving it.
    pub group: String,
    /// Offered load, in requests per second.
    pub load_rps: f64,
    /// The group's instances in service.
    pub in_service: u32,
    /// What those instances serve, in requests per second.
    pub capacity_rps: f64,
    /// Modelled p95 latency, in milliseconds.
    pub p95_latency_ms: f64,
    /// Load over capacity (1 = full); `None` with no capacity at all.
    pub utilisation: Option<f64>,
}

/// RFC 3339 in UTC, with fractional seconds only when there are any.
pub(crate) fn rfc3339(millis: u64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{millis} ms after the epoch"))
}

impl fmt::Display for FleetSnapshot {
    /// One line for the time, then one per resource:
    ///
    /// ```text
    /// fleet at 2026-01-01T00:01:30Z
    /// group       api-asg      desired 5  in service 3/5  pending 2  (min 2, max 12)
    /// service     api-service  p95 900 ms  utilisation 87%  load 520 rps
    /// container   web-1        running  healthy  app=web,tier=frontend
    /// deployment  shop/cart    replicas 1  ready 1  updated 1
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows: Vec<(&str, String, String)> = Vec::new();
        for g in &self.groups {
            let mut detail = format!(
                "desired {}  in service {}/{}",
                g.desired_capacity, g.in_service, g.desired_capacity
            );
            if g.pending > 0 {
                detail.push_str(&format!("  pending {}", g.pending));
            }
            detail.push_str(&format!("  (min {}, max {})", g.min_size, g.max_size));
            rows.push(("group", g.name.clone(), detail));
        }
        for s in &self.services {
            let utilisation = match s.utilisation {
                Some(u) => format!("{:.0}%", u * 100.0),
                None => "none (no capacity)".to_owned(),
            };
            let saturated = if s.utilisation.is_none_or(|u| u >= 0.95) {
                " (saturated)"
            } else {
                ""
            };
            rows.push((
                "service",
                s.name.clone(),
                format!(
                    "p95 {:.0} ms{saturated}  utilisation {utilisation}  load {} rps",
                    s.p95_latency_ms, s.load_rps
                ),
            ));
        }
        for c in &self.containers {
            let mut detail = state_name(c.state).to_owned();
            if let Some(health) = health_name(c.health) {
                detail.push_str("  ");
                detail.push_str(health);
            }
            if !c.labels.is_empty() {
                detail.push_str("  ");
                detail.push_str(&format_labels(&c.labels));
            }
            rows.push(("container", c.name.clone(), detail));
        }
        for d in &self.deployments {
            let mut detail = format!(
                "replicas {}  ready {}  updated {}",
                d.replicas, d.ready_replicas, d.updated_replicas
            );
            if !d.is_rolled_out() {
                detail.push_str("  (rolling out)");
            }
            rows.push(("deployment", format!("{}/{}", d.namespace, d.name), detail));
        }

        write!(f, "fleet at {}", self.time)?;
        let width = rows
            .iter()
            .map(|(_, name, _)| name.chars().count())
            .max()
            .unwrap_or(0);
        for (kind, name, detail) in rows {
            write!(f, "\n{kind:<10}  {name:<width$}  {detail}")?;
        }
        Ok(())
    }
}

fn state_name(state: ContainerState) -> &'static str {
    match state {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Paused => "paused",
        ContainerState::Restarting => "restarting",
        ContainerState::Exited => "exited",
        ContainerState::Dead => "dead",
    }
}

/// `None` for no health status, which is left out of the line.
fn health_name(health: Health) -> Option<&'static str> {
    match health {
        Health::None => None,
        Health::Starting => Some("starting"),
        Health::Healthy => Some("healthy"),
        Health::Unhealthy => Some("unhealthy"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_fractions_only_when_needed() {
        assert_eq!(rfc3339(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_690_500), "2026-01-01T00:01:30.5Z");
    }
}
