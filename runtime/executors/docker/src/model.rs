//! From the engine's inspect answers to GRACE's [`Container`], and the checks on what a caller
//! names.
//!
//! Health is read from `State.Health.Status`, which only inspect carries (a list's `Status`
//! string has it on Docker, as "Up 5 minutes (healthy)", but not on Podman). A container that is
//! not running has no health status here, whatever the engine kept from its last run: Docker and
//! Podman leave the last result in place after a stop, which would show a stopped container as
//! `healthy`. This is also what the simulated fleet reports.

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use grace_executor::containers::{Container, ContainerState, Health};
use grace_executor::{ExecError, Labels};

/// Checks that `id` is a container id or name and returns it without a leading `/`.
///
/// Names and ids go into the API's URL paths unescaped (bollard formats them in), so anything
/// but Docker's name alphabet (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, [`grace_executor::ident`]) is
/// refused rather than sent: the engine has already checked it, this is defence in depth.
pub(crate) fn check_reference(id: &str) -> Result<&str, ExecError> {
    let name = id.strip_prefix('/').unwrap_or(id);
    Ok(grace_executor::ident::container_ref("id", name)?)
}

/// A container as the engine described it, with what ordering and cloning need.
#[derive(Debug, Clone)]
pub(crate) struct Inspected {
    /// What GRACE sees.
    pub container: Container,
    /// Creation time in nanoseconds since the epoch (0 when the engine did not say).
    pub created: i128,
    /// The full answer, for cloning.
    pub raw: ContainerInspectResponse,
}

impl Inspected {
    /// Converts an inspect answer; fails only when it has no id.
    pub fn new(raw: ContainerInspectResponse) -> Result<Inspected, ExecError> {
        let id = raw.id.clone().ok_or_else(|| {
            ExecError::Other("the engine described a container without an id".to_owned())
        })?;
        let name = raw
            .name
            .as_deref()
            .map(|n| n.strip_prefix('/').unwrap_or(n).to_owned())
            .unwrap_or_else(|| id.clone());
        let config = raw.config.as_ref();
        let image = config
            .and_then(|c| c.image.clone())
            .or_else(|| raw.image.clone())
            .unwrap_or_default();
        let labels: Labels = config
            .and_then(|c| c.labels.as_ref())
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let state = state(&raw);
        let health = if state == ContainerState::Running {
            raw.state
                .as_ref()
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status)
                .map_or(Health::None, health)
        } else {
            Health::None
        };
        let created = raw.created.as_deref().map_or(0, created_nanos);
        // The engine says `0001-01-01T00:00:00Z` for a container that never started.
        let started_at = raw
            .state
            .as_ref()
            .and_then(|s| s.started_at.clone())
            .filter(|at| time_nanos(at).is_some_and(|n| n > 0));
        Ok(Inspected {
            container: Container {
                id,
                name,
                image,
                labels,
                state,
                health,
                started_at,
            },
            created,
            raw,
        })
    }
}

fn state(raw: &ContainerInspectResponse) -> ContainerState {
    let Some(s) = raw.state.as_ref() else {
        return ContainerState::Dead;
    };
    match s.status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        // Still running until it has stopped.
        Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::STOPPING) => {
            ContainerState::Running
        }
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        // Being removed: already stopped.
        Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::REMOVING) => {
            ContainerState::Exited
        }
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        // No status string: fall back on the flags, most specific first.
        Some(ContainerStateStatusEnum::EMPTY) | None => {
            if s.dead == Some(true) {
                ContainerState::Dead
            } else if s.paused == Some(true) {
                ContainerState::Paused
            } else if s.restarting == Some(true) {
                ContainerState::Restarting
            } else if s.running == Some(true) {
                ContainerState::Running
            } else {
                ContainerState::Exited
            }
        }
    }
}

fn health(status: HealthStatusEnum) -> Health {
    match status {
        HealthStatusEnum::STARTING => Health::Starting,
        HealthStatusEnum::HEALTHY => Health::Healthy,
        HealthStatusEnum::UNHEALTHY => Health::Unhealthy,
        HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => Health::None,
    }
}

/// An RFC 3339 time (as the engine writes `State.StartedAt` and `Created`) in nanoseconds
/// since the epoch; `None` when it does not parse.
pub(crate) fn time_nanos(text: &str) -> Option<i128> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp_nanos)
}

/// An RFC 3339 time in nanoseconds since the epoch; 0 when it does not parse.
fn created_nanos(text: &str) -> i128 {
    time_nanos(text).unwrap_or(0)
}

/// Whether `labels` has every label of `selector`.
pub(crate) fn carries(labels: &Labels, selector: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `app=web,tier=frontend`, in key order.
pub(crate) fn format_labels(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bollard::models::{ContainerConfig, ContainerState as EngineState, Health as EngineHealth};

    use super::*;

    fn inspected(status: ContainerStateStatusEnum, health: Option<HealthStatusEnum>) -> Container {
        let raw = ContainerInspectResponse {
            id: Some("03d0d0aa7103".to_owned()),
            name: Some("/web-1".to_owned()),
            image: Some("sha256:bc37".to_owned()),
            created: Some("2026-11-26T07:12:59.728568177Z".to_owned()),
            config: Some(ContainerConfig {
                image: Some("localhost/grace-busybox:test".to_owned()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            }),
            state: Some(EngineState {
                status: Some(status),
                health: health.map(|status| EngineHealth {
                    status: Some(status),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Inspected::new(raw).unwrap().container
    }

    #[test]
    fn an_inspect_answer_becomes_a_container() {
        let c = inspected(
            ContainerStateStatusEnum::RUNNING,
            Some(HealthStatusEnum::UNHEALTHY),
        );
        assert_eq!(
            c,
            Container {
                id: "03d0d0aa7103".to_owned(),
                name: "web-1".to_owned(),
                image: "localhost/grace-busybox:test".to_owned(),
                labels: [("app".to_owned(), "web".to_owned())].into(),
                state: ContainerState::Running,
                health: Health::Unhealthy,
                started_at: None,
            }
        );
        let c = inspected(ContainerStateStatusEnum::RUNNING, None);
        assert_eq!(c.health, Health::None);
    }

    #[test]
    fn a_stopped_container_has_no_health_whatever_the_engine_kept() {
        let c = inspected(
            ContainerStateStatusEnum::EXITED,
            Some(HealthStatusEnum::HEALTHY),
        );
        assert_eq!((c.state, c.health), (ContainerState::Exited, Health::None));
    }

    #[test]
    fn creation_times_keep_their_nanoseconds() {
        // Go trims trailing zeros, so the texts differ in length: compare times, not strings.
        let a = created_nanos("2026-11-26T07:12:59.7Z");
        let b = created_nanos("2026-11-26T07:12:59.72Z");
        assert!(a < b);
        assert_eq!(
            created_nanos("2026-11-26T07:12:59.728568177Z") % 1_000_000_000,
            728_568_177
        );
        assert_eq!(created_nanos("yesterday"), 0);
    }

    #[test]
    fn references_are_ids_or_names_only() {
        assert_eq!(check_reference("web-1"), Ok("web-1"));
        assert_eq!(check_reference("/web_1.a"), Ok("web_1.a"));
        assert_eq!(check_reference("03d0d0aa7103"), Ok("03d0d0aa7103"));
        for bad in [
            "",
            "/",
            "-web",
            "../images/x",
            "web?all=1",
            "a/b",
            "web 1",
            "wéb",
        ] {
            assert!(
                matches!(check_reference(bad), Err(ExecError::InvalidArgument(_))),
                "{bad}"
            );
        }
        assert!(check_reference(&"a".repeat(256)).is_err());
    }
}
