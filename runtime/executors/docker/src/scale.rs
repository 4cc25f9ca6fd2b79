//! `scale`: making exactly N running containers carry a selector on one engine.
//!
//! The containers carrying the selector are ordered by creation time; the oldest is the
//! *template*.
//!
//! - **Up**: stopped matching containers (`created` or `exited`) are started first, oldest
//!   first; then clones of the template are created and started, named `<base>-<n>` with the
//!   lowest `n` not used by any container on the engine, where `<base>` is the template's name
//!   without a numeric suffix (`web` → `web-1`, `web-1` → `web-2`), as the simulated fleet names
//!   them.
//! - **Down**: running matching containers are stopped, newest first, and removed (with their
//!   anonymous volumes). The template is only stopped, never removed, so that scaling to 0 and
//!   back up again still has something to clone.
//! - Paused, restarting and dead containers are neither counted as running nor started.
//!
//! The result is the running containers carrying the selector, sorted by name.
//!
//! **What a clone copies** from the template: the image reference, command, entrypoint,
//! environment (except `HOSTNAME`, which the engine sets per container), labels, health check,
//! working directory, user, stop signal and TTY; from the host configuration, the network mode,
//! restart policy, init, and the CPU, memory and process-count limits.
//!
//! **What it does not copy**: published and exposed ports (two containers cannot publish the same
//! host port, so a clone of a publishing container is reachable on its network only), volumes,
//! bind mounts and tmpfs mounts (state a replica must not silently share), devices, capabilities
//! and privileges, hostname, DNS and extra hosts, and the log configuration (the engine's default
//! applies).
//!
//! Scaling is not atomic: it is a sequence of engine calls, each with its own time limit. Two
//! scales of the same selector at once may overshoot; a name taken meanwhile is skipped.

use std::collections::BTreeSet;
use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use grace_executor::containers::{Container, ContainerState};
use grace_executor::{ExecError, Labels};

use crate::Docker;
use crate::model::{Inspected, format_labels};

/// The most replicas one `scale` call may ask for (as in the simulated fleet).
pub const MAX_REPLICAS: u32 = 1_000;

/// How many taken names a clone skips before giving up (names taken by concurrent creators).
const NAME_ATTEMPTS: u32 = 20;

pub(crate) async fn scale(
    docker: &Docker,
    selector: &Labels,
    replicas: u32,
) -> Result<Vec<Container>, ExecError> {
    if replicas > MAX_REPLICAS {
        return Err(ExecError::InvalidArgument(format!(
            "`{replicas}` replicas is more than the limit of {MAX_REPLICAS}"
        )));
    }
    let mut matching = docker.list_inspected(selector).await?;
    matching.sort_by(|a, b| (a.created, &a.container.name).cmp(&(b.created, &b.container.name)));
    let Some(template) = matching.first() else {
        return Err(ExecError::NotFound(format!(
            "no container carries `{}`, so there is none to scale",
            format_labels(selector)
        )));
    };
    let running: Vec<&Inspected> = matching
        .iter()
        .filter(|i| i.container.state == ContainerState::Running)
        .collect();
    let target = usize::try_from(replicas).unwrap_or(usize::MAX);
    if running.len() < target {
        let mut missing = target - running.len();
        let stopped = matching.iter().filter(|i| {
            matches!(
                i.container.state,
                ContainerState::Created | ContainerState::Exited
            )
        });
        for container in stopped.take(missing) {
            docker.start_one(&container.container.id).await?;
            tracing::info!(container = %container.container.name, "started to scale up");
            missing -= 1;
        }
        if missing > 0 {
            let mut clones = Cloner::new(docker, template).await?;
            for _ in 0..missing {
                clones.create().await?;
            }
        }
    } else {
        let surplus = running.len() - target;
        for victim in running.iter().rev().take(surplus) {
            let c = &victim.container;
            docker.stop_one(&c.id).await?;
            if c.id == template.container.id {
                tracing::info!(container = %c.name, "stopped to scale down (kept as the template)");
            } else {
                docker.remove_one(&c.id).await?;
                tracing::info!(container = %c.name, "removed to scale down");
            }
        }
    }
    let mut now: Vec<Container> = docker
        .list_inspected(selector)
        .await?
        .into_iter()
        .map(|i| i.container)
        .filter(|c| c.state == ContainerState::Running)
        .collect();
    now.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(now)
}

impl Docker {
    /// Removes a stopped container by id (already checked), with its anonymous volumes.
    async fn remove_one(&self, id: &str) -> Result<(), ExecError> {
        let what = format!("remove container `{id}`");
        let engine = self.engine(&what).await?;
        let options = RemoveContainerOptionsBuilder::default().v(true).build();
        self.call(
            &what,
            self.settings.call_timeout,
            engine.remove_container(id, Some(options)),
        )
        .await
    }

    /// The names of every container whose name contains `base` (the engine's name filter).
    async fn names_containing(&self, base: &str) -> Result<BTreeSet<String>, ExecError> {
        let what = format!("list containers named like `{base}`");
        let engine = self.engine(&what).await?;
        let filters = HashMap::from([("name".to_owned(), vec![base.to_owned()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .call(
                &what,
                self.settings.call_timeout,
                engine.list_containers(Some(options)),
            )
            .await?;
        Ok(summaries
            .into_iter()
            .flat_map(|s| s.names.unwrap_or_default())
            .map(|n| n.strip_prefix('/').map(str::to_owned).unwrap_or(n))
            .collect())
    }
}

/// Creates clones of one template under fresh names.
struct Cloner<'a> {
    docker: &'a Docker,
    template: String,
    base: String,
    body: ContainerCreateBody,
    taken: BTreeSet<String>,
    next: u32,
}

impl<'a> Cloner<'a> {
    async fn new(docker: &'a Docker, template: &Inspected) -> Result<Cloner<'a>, ExecError> {
        let base = base_name(&template.container.name).to_owned();
        let taken = docker.names_containing(&base).await?;
        Ok(Cloner {
            docker,
            template: template.container.name.clone(),
            base,
            body: clone_body(&template.raw),
            taken,
            next: 1,
        })
    }

    /// The next name not known to be taken.
    fn next_name(&mut self) -> String {
        loop {
            let name = format!("{}-{}", self.base, self.next);
            self.next += 1;
            if !self.taken.contains(&name) {
                return name;
            }
        }
    }

    /// Creates and starts one clone.
    async fn create(&mut self) -> Result<(), ExecError> {
        let docker = self.docker;
        for _ in 0..NAME_ATTEMPTS {
            let name = self.next_name();
            let what = format!(
                "create container `{name}` as a clone of `{}`",
                self.template
            );
            let engine = docker.engine(&what).await?;
            let options = CreateContainerOptionsBuilder::default().name(&name).build();
            let created = docker
                .call(
                    &what,
                    docker.settings.call_timeout,
                    engine.create_container(Some(options), self.body.clone()),
                )
                .await;
            match created {
                Ok(_) => {}
                // Someone else took the name since the names were listed: try the next one.
                Err(ExecError::Conflict(_)) => {
                    self.taken.insert(name);
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.taken.insert(name.clone());
            if let Err(e) = docker.start_one(&name).await {
                // A clone that cannot start would count as a stopped match forever: remove it.
                if let Err(cleanup) = docker.remove_one(&name).await {
                    tracing::warn!(container = %name, error = %cleanup, "cannot remove a clone that failed to start");
                }
                return Err(e);
            }
            tracing::info!(container = %name, template = %self.template, "cloned to scale up");
            return Ok(());
        }
        Err(ExecError::Conflict(format!(
            "cannot create a clone of `{}`: {NAME_ATTEMPTS} names in a row were taken",
            self.template
        )))
    }
}

/// `web-1` → `web`; names without a numeric suffix are their own base.
fn base_name(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, n))
            if !base.is_empty() && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

/// The create request for a clone of `template` (see the module documentation).
pub(crate) fn clone_body(template: &ContainerInspectResponse) -> ContainerCreateBody {
    let config = template.config.clone().unwrap_or_default();
    let host = template.host_config.clone().unwrap_or_default();
    let env = config.env.map(|env| {
        env.into_iter()
            .filter(|e| !e.starts_with("HOSTNAME="))
            .collect()
    });
    let restart_policy = host.restart_policy.filter(|p| {
        p.name
            .is_some_and(|n| n != bollard::models::RestartPolicyNameEnum::EMPTY)
    });
    ContainerCreateBody {
        image: config.image.or_else(|| template.image.clone()),
        cmd: config.cmd,
        entrypoint: config.entrypoint,
        env,
        labels: config.labels,
        healthcheck: config.healthcheck,
        working_dir: config.working_dir.filter(|d| !d.is_empty()),
        user: config.user.filter(|u| !u.is_empty()),
        stop_signal: config.stop_signal.filter(|s| !s.is_empty()),
        tty: config.tty,
        host_config: Some(HostConfig {
            network_mode: host.network_mode.filter(|m| !m.is_empty()),
            restart_policy,
            init: host.init,
            memory: host.memory.filter(|&m| m > 0),
            nano_cpus: host.nano_cpus.filter(|&n| n > 0),
            cpu_shares: host.cpu_shares.filter(|&s| s > 0),
            cpu_quota: host.cpu_quota.filter(|&q| q > 0),
            cpu_period: host.cpu_period.filter(|&p| p > 0),
            pids_limit: host.pids_limit.filter(|&p| p > 0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{
        ContainerConfig, HealthConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
    };

    use super::*;

    #[test]
    fn base_name_strips_a_numeric_suffix_only() {
        assert_eq!(base_name("web-1"), "web");
        assert_eq!(base_name("web-12"), "web");
        assert_eq!(base_name("web"), "web");
        assert_eq!(base_name("web-a"), "web-a");
        assert_eq!(base_name("-1"), "-1");
    }

    #[test]
    fn a_clone_copies_the_process_and_health_check_but_not_ports_or_mounts() {
        let healthcheck = HealthConfig {
            test: Some(vec![
                "CMD-SHELL".to_owned(),
                "test -f /tmp/healthy".to_owned(),
            ]),
            interval: Some(1_000_000_000),
            ..Default::default()
        };
        let template = ContainerInspectResponse {
            image: Some("sha256:bc37".to_owned()),
            config: Some(ContainerConfig {
                hostname: Some("03d0d0aa7103".to_owned()),
                image: Some("localhost/grace-busybox:test".to_owned()),
                cmd: Some(vec!["httpd".to_owned(), "-f".to_owned()]),
                env: Some(vec![
                    "PATH=/bin".to_owned(),
                    "HOSTNAME=03d0d0aa7103".to_owned(),
                ]),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                healthcheck: Some(healthcheck.clone()),
                exposed_ports: Some(vec!["80/tcp".to_owned()]),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                network_mode: Some("bridge".to_owned()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::ALWAYS),
                    maximum_retry_count: None,
                }),
                binds: Some(vec!["/srv:/srv".to_owned()]),
                port_bindings: Some(
                    [(
                        "80/tcp".to_owned(),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".to_owned()),
                            host_port: Some("8080".to_owned()),
                        }]),
                    )]
                    .into(),
                ),
                memory: Some(64 << 20),
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = clone_body(&template);
        assert_eq!(body.image.as_deref(), Some("localhost/grace-busybox:test"));
        assert_eq!(body.cmd, Some(vec!["httpd".to_owned(), "-f".to_owned()]));
        assert_eq!(body.env, Some(vec!["PATH=/bin".to_owned()]));
        assert_eq!(body.healthcheck, Some(healthcheck));
        assert_eq!(body.hostname, None);
        assert_eq!(body.exposed_ports, None);
        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        assert_eq!(host.memory, Some(64 << 20));
        assert!(host.restart_policy.is_some());
        assert_eq!(host.port_bindings, None);
        assert_eq!(host.binds, None);
    }
}
