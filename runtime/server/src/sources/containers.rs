//! The built-in containers source: the health of labelled containers, read through the
//! `containers` backend (a Docker-compatible engine, or the simulated fleet), with one
//! `container.unhealthy` event per unhealthy container on every poll.
//!
//! ```toml
//! [[sources.containers]]
//! name = "web-health"
//! selector = { app = "web" }      # containers carrying all of these labels
//! every = "10s"                   # default 60s
//! ```
//!
//! Each event: `event_type` `container.unhealthy` (or `event_type`), `source` `containers`,
//! `actor` the source's name, `resource` the container's name, payload `{id, name, image,
//! labels, state, health}`, timestamp the backend clock's now. A container stays unhealthy
//! until something acts, so it is reported on every poll: triggers' cooldowns and dedup keys
//! decide how often that starts a run.

use super::SettingError;
use std::sync::Arc;
use std::time::Duration;

use grace_engine::TriggerEvent;
use grace_executor::containers::Health;
use grace_executor::{Clock, ContainerExecutor, ExecError, Labels};
use serde::Deserialize;
use serde_json::json;

use super::is_label_name;
use super::poll::{MAX_SERIES, Polled, Poller, Schedule, ScheduleConfig};
use super::promql::check_name;

/// `[[sources.containers]]` in `grace.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ContainersConfig {
    /// Unique among sources; the events' `actor`.
    pub name: String,
    /// Labels every watched container carries (at least one).
    pub selector: Labels,
    /// The events' `event_type` (default `container.unhealthy`).
    pub event_type: Option<String>,
    /// `every = "60s"`.
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// `timeout = "10s"`.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// `unhealthy_after = 2`.
    pub unhealthy_after: Option<u32>,
}

/// A checked containers source.
pub struct ContainersSource {
    name: String,
    selector: Labels,
    event_type: String,
    backend: Arc<dyn ContainerExecutor>,
    clock: Arc<dyn Clock>,
}

impl ContainersConfig {
    /// Checks everything but the backend (errors name the key under `prefix`): the event type
    /// and the schedule.
    pub fn check(&self, prefix: &str) -> Result<(String, Schedule), SettingError> {
        let field =
            |key: &str, message: &str| SettingError::new(format!("{prefix}.{key}"), message);
        if let Some(problem) = check_name(&self.name) {
            return Err(field("name", problem));
        }
        if self.selector.is_empty() {
            return Err(field(
                "selector",
                "name at least one label, e.g. `{ app = \"web\" }`",
            ));
        }
        if let Some(key) = self.selector.keys().find(|k| !valid_label_key(k)) {
            return Err(field(
                "selector",
                &format!("`{key}` is not a container label name"),
            ));
        }
        let event_type = self
            .event_type
            .clone()
            .unwrap_or_else(|| "container.unhealthy".into());
        let probe = TriggerEvent {
            event_type: event_type.clone(),
            source: "containers".into(),
            actor: self.name.clone(),
            resource: self.name.clone(),
            payload: json!({}),
            timestamp: 0,
        };
        if let Err(e) = probe.validate() {
            return Err(field("event_type", &super::event_problem(&e).1));
        }
        let schedule = ScheduleConfig {
            every: self.every,
            timeout: self.timeout,
            unhealthy_after: self.unhealthy_after,
        }
        .schedule(prefix)?;
        Ok((event_type, schedule))
    }
}

impl ContainersSource {
    /// Checks `config` (errors name the key under `prefix`) and binds it to the backend.
    pub fn new(
        config: &ContainersConfig,
        backend: Option<Arc<dyn ContainerExecutor>>,
        clock: Arc<dyn Clock>,
        prefix: &str,
    ) -> Result<(ContainersSource, Schedule), SettingError> {
        let (event_type, schedule) = config.check(prefix)?;
        let backend = backend.ok_or_else(|| {
            SettingError::new(
                prefix,
                "no containers backend: configure [docker] in grace.toml, or run with --simulate",
            )
        })?;
        Ok((
            ContainersSource {
                name: config.name.clone(),
                selector: config.selector.clone(),
                event_type,
                backend,
                clock,
            },
            schedule,
        ))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The selector, for `/v1/sources`.
    pub fn target(&self) -> String {
        let labels: Vec<String> = self
            .selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.join(",")
    }
}

/// Docker label keys are free-form; GRACE accepts the usual reverse-DNS style ones.
fn valid_label_key(key: &str) -> bool {
    is_label_name(key)
        || (!key.is_empty()
            && key.len() <= 128
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/')))
}

#[async_trait::async_trait]
impl Poller for ContainersSource {
    async fn poll(&self) -> Result<Polled, ExecError> {
        let containers = self.backend.list(&self.selector).await?;
        if containers.len() > MAX_SERIES {
            return Err(ExecError::InvalidArgument(format!(
                "{} containers carry the selector, more than {MAX_SERIES}: narrow it",
                containers.len()
            )));
        }
        let now = self.clock.now_millis();
        let mut polled = Polled::default();
        for c in containers
            .into_iter()
            .filter(|c| c.health == Health::Unhealthy)
        {
            let event = TriggerEvent {
                event_type: self.event_type.clone(),
                source: "containers".into(),
                actor: self.name.clone(),
                resource: c.name.clone(),
                payload: json!({
                    "id": c.id, "name": c.name, "image": c.image, "labels": c.labels,
                    "state": c.state, "health": c.health,
                }),
                timestamp: now,
            };
            match event.validate() {
                Ok(()) => polled.events.push(event),
                Err(e) => {
                    tracing::warn!(source = %self.name, container = %c.name, "container skipped: {e}")
                }
            }
        }
        Ok(polled)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use grace_sim::{Fleet, Simulation};

    use super::*;

    fn source(
        toml_text: &str,
        sim: &Simulation,
    ) -> Result<(ContainersSource, Schedule), SettingError> {
        let config: ContainersConfig = toml::from_str(toml_text).unwrap();
        let executors = sim.executors();
        ContainersSource::new(&config, executors.containers, executors.clock, "s")
    }

    #[tokio::test]
    async fn each_unhealthy_container_of_the_selector_is_an_event() {
        let sim = Simulation::new(&Fleet::default_fleet());
        let (s, _) = source("name = \"web\"\nselector = { app = \"web\" }", &sim).unwrap();
        let polled = s.poll().await.unwrap();
        // The default fleet: web-1 unhealthy, web-2 healthy, cache-1 not selected.
        let names: Vec<_> = polled.events.iter().map(|e| e.resource.as_str()).collect();
        assert_eq!(names, ["web-1"]);
        let e = &polled.events[0];
        assert_eq!(
            (e.event_type.as_str(), e.source.as_str(), e.actor.as_str()),
            ("container.unhealthy", "containers", "web")
        );
        assert_eq!(e.payload["health"], "unhealthy");
        assert_eq!(e.payload["labels"]["tier"], "frontend");
        assert_eq!(e.timestamp, sim.clock().now_millis());
    }

    #[test]
    fn bad_configurations_are_refused_naming_the_key() {
        let sim = Simulation::new(&Fleet::default_fleet());
        for (text, key) in [
            ("name = \"web\"\nselector = {}", "s.selector"),
            ("name = \"Web\"\nselector = { app = \"web\" }", "s.name"),
            (
                "name = \"web\"\nselector = { \"a b\" = \"web\" }",
                "s.selector",
            ),
            (
                "name = \"web\"\nselector = { app = \"web\" }\nevent_type = \"Bad\"",
                "s.event_type",
            ),
            (
                "name = \"web\"\nselector = { app = \"web\" }\nevery = \"0s\"",
                "s.every",
            ),
        ] {
            let e = source(text, &sim).err().unwrap();
            assert!(e.to_string().starts_with(key), "{text}: {e}");
        }
        let config: ContainersConfig =
            toml::from_str("name = \"web\"\nselector = { app = \"web\" }").unwrap();
        let e = ContainersSource::new(&config, None, sim.clock(), "s")
            .err()
            .unwrap();
        assert!(e.to_string().contains("[docker]"), "{e}");
    }
}
