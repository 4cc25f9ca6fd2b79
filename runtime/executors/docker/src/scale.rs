//! `scale`: making exactly N running containers carry a selector on one engine.
//!
//! The containers carrying the selector are ordered by creation time; the oldest is the
//! *template*.
//!
//! - **Up**: stopped matching containers (`created` or `exited`) are started first, oldest
//!   first; then clones of the template are created and started, named `<base>-<n>` with the
//!   lowest `n` not used by any container on the engine, where `<base>` is the template's name
//!   without a numeric suffix (`web` → `web-1`, `web-1` → `web-2`), as the simulated fleet names
//!   them. Every clone carries [`CLONE_LABEL`] naming its template: the engine's own record that
//!   GRACE made it.
//! - **Down**: running matching containers are stopped, clones before the others and the
//!   newest first. Only clones are then removed, and never with their volumes: a container
//!   people made, and any volume, is left for people to remove. The template is only stopped,
//!   so that scaling to 0 and back up again still has something to clone.
//! - Paused, restarting and dead containers are neither counted as running nor started.
//!
//! The result is the running containers carrying the selector, sorted by name.
//!
//! **What a clone copies** from the template: the image reference, command, entrypoint,
//! environment (except `HOSTNAME`, which the engine sets per container), labels, health check,
//! working directory, user, stop signal, TTY and a disabled network; from the host
//! configuration, the network mode, restart policy, init, and resource limits (CPU shares,
//! quota, period and sets, memory, swap and reservation, process count, block I/O weight, shm
//! size, storage options, cgroup parent).
//!
//! **Every security restriction of the template is kept** (tested field by field): the
//! capabilities it adds and drops, its security options (seccomp, AppArmor, SELinux,
//! `no-new-privileges`), a read-only root filesystem, masked and read-only paths, the user
//! namespace mode, ulimits, the OCI runtime (a sandboxing runtime such as gVisor stays), and
//! private IPC or cgroup namespaces. A clone is never given more than its template had.
//!
//! **What it does not copy**, each making a clone more confined, never less: published and
//! exposed ports (two containers cannot publish the same host port, so a clone of a publishing
//! container is reachable on its network only), volumes, bind mounts and tmpfs mounts (state a
//! replica must not silently share), devices and device cgroup rules, `privileged`, extra
//! groups, sysctls, the host's PID or UTS namespace, hostname, DNS and extra hosts, and the log
//! configuration (the engine's default applies).
//!
//! Scaling is a sequence of engine calls, each with its own time limit; the engine serializes
//! container changes across runs (one resource lock for every container change), so two
//! scales of one service never overshoot each other.

use crate::podman::{self, States};
use std::collections::BTreeSet;
use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use grace_executor::containers::{CLONE_LABEL, Container, ContainerState};
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
    // Once one step changed something, a failure no longer proves the scale was not made.
    let mut made = false;
    let failed = |e: ExecError, made: bool| if made { e.after_change() } else { e };
    if running.len() < target {
        let mut missing = target - running.len();
        let stopped = matching.iter().filter(|i| {
            matches!(
                i.container.state,
                ContainerState::Created | ContainerState::Exited
            )
        });
        for container in stopped.take(missing) {
            docker
                .start_one(&container.container.id)
                .await
                .map_err(|e| failed(e, made))?;
            made = true;
            tracing::info!(container = %container.container.name, "started to scale up");
            missing -= 1;
        }
        if missing > 0 {
            let mut clones = Cloner::new(docker, template)
                .await
                .map_err(|e| failed(e, made))?;
            for _ in 0..missing {
                // A clone may have been created before the step failed.
                clones.create().await.map_err(ExecError::after_change)?;
                made = true;
            }
        }
    } else {
        let surplus = running.len() - target;
        // Clones first, newest first; then the others, newest first.
        let mut victims: Vec<&Inspected> = running.clone();
        victims.reverse();
        victims.sort_by_key(|i| !is_clone(i));
        for victim in victims.into_iter().take(surplus) {
            let c = &victim.container;
            docker.stop_one(&c.id).await.map_err(|e| failed(e, made))?;
            made = true;
            if is_clone(victim) && c.id != template.container.id {
                docker
                    .remove_one(&c.id)
                    .await
                    .map_err(ExecError::after_change)?;
                tracing::info!(container = %c.name, "removed to scale down (a clone GRACE made)");
            } else {
                tracing::info!(container = %c.name, "stopped to scale down (not made by GRACE: kept)");
            }
        }
    }
    let mut now: Vec<Container> = docker
        .list_inspected(selector)
        .await
        .map_err(|e| failed(e, made))?
        .into_iter()
        .map(|i| i.container)
        .filter(|c| c.state == ContainerState::Running)
        .collect();
    now.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(now)
}

impl Docker {
    /// Removes a stopped container by id (already checked), leaving its volumes: a volume may
    /// hold data nobody asked GRACE to delete.
    async fn remove_one(&self, id: &str) -> Result<(), ExecError> {
        let what = format!("remove container `{id}`");
        let engine = self.engine(&what).await?;
        let options = RemoveContainerOptionsBuilder::default().v(false).build();
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
            .call(&what, self.settings.call_timeout, async {
                podman::readable(engine.list_containers(Some(options)).await, States::List)
            })
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

/// Whether GRACE created the container (to scale up): only those are ever removed.
fn is_clone(container: &Inspected) -> bool {
    container.container.labels.contains_key(CLONE_LABEL)
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
    let template_name = template
        .name
        .as_deref()
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !n.is_empty())
        .or(template.id.as_deref())
        .unwrap_or_default()
        .to_owned();
    let mut labels = config.labels.unwrap_or_default();
    labels.insert(CLONE_LABEL.to_owned(), template_name);
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let nonempty_list = |l: Option<Vec<String>>| l.filter(|l| !l.is_empty());
    // Namespaces are copied only when private: a shared or host namespace is a relaxation the
    // engine's default (private) undoes, and "container:<id>" would join another container.
    let private = |mode: Option<String>| mode.filter(|m| m == "private" || m == "none");
    ContainerCreateBody {
        image: config.image.or_else(|| template.image.clone()),
        cmd: config.cmd,
        entrypoint: config.entrypoint,
        env,
        labels: Some(labels),
        healthcheck: config.healthcheck,
        working_dir: nonempty(config.working_dir),
        user: nonempty(config.user),
        stop_signal: nonempty(config.stop_signal),
        tty: config.tty,
        network_disabled: config.network_disabled.filter(|&d| d),
        host_config: Some(HostConfig {
            // Joining another container's network namespace is not copied, as for IPC.
            network_mode: nonempty(host.network_mode).filter(|m| !m.starts_with("container:")),
            restart_policy,
            init: host.init,
            // Resource limits.
            memory: host.memory.filter(|&m| m > 0),
            memory_swap: host.memory_swap.filter(|&m| m != 0),
            memory_reservation: host.memory_reservation.filter(|&m| m > 0),
            nano_cpus: host.nano_cpus.filter(|&n| n > 0),
            cpu_shares: host.cpu_shares.filter(|&s| s > 0),
            cpu_quota: host.cpu_quota.filter(|&q| q > 0),
            cpu_period: host.cpu_period.filter(|&p| p > 0),
            cpuset_cpus: nonempty(host.cpuset_cpus),
            cpuset_mems: nonempty(host.cpuset_mems),
            pids_limit: host.pids_limit.filter(|&p| p > 0),
            blkio_weight: host.blkio_weight.filter(|&w| w > 0),
            shm_size: host.shm_size.filter(|&s| s > 0),
            storage_opt: host.storage_opt.filter(|o| !o.is_empty()),
            cgroup_parent: nonempty(host.cgroup_parent),
            // Security restrictions: every one is kept.
            cap_add: nonempty_list(host.cap_add),
            cap_drop: nonempty_list(host.cap_drop),
            security_opt: nonempty_list(host.security_opt),
            readonly_rootfs: host.readonly_rootfs.filter(|&r| r),
            masked_paths: host.masked_paths,
            readonly_paths: host.readonly_paths,
            userns_mode: nonempty(host.userns_mode),
            ulimits: host.ulimits.filter(|u| !u.is_empty()),
            runtime: nonempty(host.runtime),
            ipc_mode: private(host.ipc_mode),
            cgroupns_mode: host
                .cgroupns_mode
                .filter(|m| *m == bollard::models::HostConfigCgroupnsModeEnum::PRIVATE),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{
        ContainerConfig, DeviceMapping, HealthConfig, HostConfigCgroupnsModeEnum, PortBinding,
        ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
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

    /// A template as locked down as an operator would make one.
    fn restricted_template() -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("4f1c".repeat(16)),
            name: Some("/web".to_owned()),
            config: Some(ContainerConfig {
                image: Some("localhost/grace-busybox:test".to_owned()),
                user: Some("1000:1000".to_owned()),
                network_disabled: Some(true),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                cap_add: Some(vec!["NET_BIND_SERVICE".to_owned()]),
                cap_drop: Some(vec!["ALL".to_owned()]),
                security_opt: Some(vec![
                    "no-new-privileges".to_owned(),
                    "seccomp=/etc/grace/seccomp.json".to_owned(),
                    "apparmor=grace-web".to_owned(),
                ]),
                readonly_rootfs: Some(true),
                masked_paths: Some(vec!["/proc/kcore".to_owned()]),
                readonly_paths: Some(vec!["/proc/sys".to_owned()]),
                userns_mode: Some("keep-id".to_owned()),
                ulimits: Some(vec![ResourcesUlimits {
                    name: Some("nofile".to_owned()),
                    soft: Some(256),
                    hard: Some(512),
                }]),
                runtime: Some("runsc".to_owned()),
                ipc_mode: Some("private".to_owned()),
                cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
                pids_limit: Some(64),
                memory: Some(32 << 20),
                memory_swap: Some(32 << 20),
                memory_reservation: Some(16 << 20),
                cpuset_cpus: Some("0".to_owned()),
                blkio_weight: Some(100),
                shm_size: Some(1 << 20),
                cgroup_parent: Some("/grace.slice".to_owned()),
                // Relaxations a clone must not inherit.
                privileged: Some(true),
                pid_mode: Some("host".to_owned()),
                uts_mode: Some("host".to_owned()),
                group_add: Some(vec!["docker".to_owned()]),
                devices: Some(vec![DeviceMapping {
                    path_on_host: Some("/dev/kvm".to_owned()),
                    path_in_container: Some("/dev/kvm".to_owned()),
                    cgroup_permissions: Some("rwm".to_owned()),
                }]),
                sysctls: Some([("net.ipv4.ip_forward".to_owned(), "1".to_owned())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_clone_keeps_every_security_restriction_of_its_template() {
        let template = restricted_template();
        let t = template.host_config.clone().unwrap_or_default();
        let body = clone_body(&template);
        assert_eq!(body.user.as_deref(), Some("1000:1000"), "user");
        assert_eq!(body.network_disabled, Some(true), "network_disabled");
        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.cap_add, t.cap_add, "cap_add");
        assert_eq!(host.cap_drop, t.cap_drop, "cap_drop");
        assert_eq!(host.security_opt, t.security_opt, "security_opt");
        assert_eq!(host.readonly_rootfs, Some(true), "readonly_rootfs");
        assert_eq!(host.masked_paths, t.masked_paths, "masked_paths");
        assert_eq!(host.readonly_paths, t.readonly_paths, "readonly_paths");
        assert_eq!(host.userns_mode, t.userns_mode, "userns_mode");
        assert_eq!(host.ulimits, t.ulimits, "ulimits");
        assert_eq!(host.runtime, t.runtime, "runtime");
        assert_eq!(host.ipc_mode, t.ipc_mode, "ipc_mode");
        assert_eq!(host.cgroupns_mode, t.cgroupns_mode, "cgroupns_mode");
        assert_eq!(host.pids_limit, t.pids_limit, "pids_limit");
        assert_eq!(host.memory, t.memory, "memory");
        assert_eq!(host.memory_swap, t.memory_swap, "memory_swap");
        assert_eq!(
            host.memory_reservation, t.memory_reservation,
            "memory_reservation"
        );
        assert_eq!(host.cpuset_cpus, t.cpuset_cpus, "cpuset_cpus");
        assert_eq!(host.blkio_weight, t.blkio_weight, "blkio_weight");
        assert_eq!(host.shm_size, t.shm_size, "shm_size");
        assert_eq!(host.cgroup_parent, t.cgroup_parent, "cgroup_parent");
    }

    #[test]
    fn a_clone_inherits_no_relaxation_of_its_template() {
        let host = clone_body(&restricted_template())
            .host_config
            .unwrap_or_default();
        assert_eq!(host.privileged, None, "privileged");
        assert_eq!(host.pid_mode, None, "pid_mode");
        assert_eq!(host.uts_mode, None, "uts_mode");
        assert_eq!(host.group_add, None, "group_add");
        assert_eq!(host.devices, None, "devices");
        assert_eq!(host.sysctls, None, "sysctls");
        let shared_ipc = ContainerInspectResponse {
            host_config: Some(HostConfig {
                ipc_mode: Some("host".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let host = clone_body(&shared_ipc).host_config.unwrap_or_default();
        assert_eq!(host.ipc_mode, None, "a host IPC namespace is not joined");
    }

    #[test]
    fn a_clone_is_labelled_with_its_template_so_only_clones_are_ever_removed() {
        let body = clone_body(&restricted_template());
        let labels = body.labels.unwrap_or_default();
        assert_eq!(labels.get(CLONE_LABEL).map(String::as_str), Some("web"));
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    }
}
