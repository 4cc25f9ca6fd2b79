//! Discovery for the health graph: every container the engine has, running or not, and the
//! workloads (Compose services) they make up, as one [`Observation`].
//!
//! One `GET /containers/json?all=true` (the list answer carries names, image, state, labels and
//! networks: no inspect per container), under the call's time limit, mapped like every other
//! call ([`crate::error`]). What the engine answers becomes:
//!
//! | node | attributes | availability | part of |
//! | --- | --- | --- | --- |
//! | `container:<name>` | `image`, `state`, `networks` (names, sorted, comma-joined), `label:<key>` per label | `1/1` running, else `0/1` | the workload its labels name ([`Identity::service`]) |
//! | `service:<namespace>/<workload>` | `compose_project` when its containers carry one | running / all of its containers | |
//!
//! A container's addresses are the IPs it has on its networks, so that a scrape target or a
//! mesh edge naming only an IP finds it ([`grace_graph::Owner::Address`]).
//!
//! At most `max` containers are reported, the first by name; the others are counted in
//! [`Discovered::left_out`]. A workload is reported when one of its reported containers names
//! it, and its availability counts all of its containers the engine listed, left out or not:
//! a bound on the answer's size must not make a half-stopped service look healthy. Containers
//! whose names are not valid node ids are skipped (the engine allows names GRACE's ids do not).

use crate::podman::{self, States};
use std::collections::BTreeMap;

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::ListContainersOptionsBuilder;
use grace_executor::ExecError;
use grace_graph::{Discovered, Identity, MAX_ATTRIBUTES, NodeId, Observation, ObservedNode, Owner};

use crate::Docker;

/// The Compose label naming a container's project.
const COMPOSE_PROJECT: &str = "com.docker.compose.project";

/// The attributes of a container node besides its labels (`image`, `state`, `networks`): the
/// labels get what the graph keeps beyond these, so that a container with many labels keeps
/// its own facts.
const OWN_ATTRIBUTES: usize = 3;

impl Docker {
    /// Every container (running or not) as a node of the health graph, and the workloads
    /// their labels name by `identity`; at most `max` containers, the rest counted in
    /// [`Discovered::left_out`] (see the module documentation).
    pub async fn discover(&self, identity: &Identity, max: usize) -> Result<Discovered, ExecError> {
        let what = "list containers for discovery";
        let engine = self.engine(what).await?;
        let options = ListContainersOptionsBuilder::default().all(true).build();
        let summaries = self
            .call(what, self.settings.call_timeout, async {
                podman::readable(engine.list_containers(Some(options)).await, States::List)
            })
            .await?;
        Ok(observe(summaries, identity, max))
    }
}

/// What the graph needs of one listed container.
struct Listed {
    id: NodeId,
    summary: ContainerSummary,
    labels: BTreeMap<String, String>,
}

/// A workload's containers, as far as seen.
#[derive(Default)]
struct Workload {
    running: u32,
    total: u32,
    compose_project: Option<String>,
    /// Whether one of its containers is reported.
    reported: bool,
}

/// The observation of one list answer (see the module documentation).
fn observe(summaries: Vec<ContainerSummary>, identity: &Identity, max: usize) -> Discovered {
    let mut listed: Vec<Listed> = summaries.into_iter().filter_map(listed).collect();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let mut observation = Observation::default();
    let mut left_out = 0;
    let mut workloads = BTreeMap::<NodeId, Workload>::new();
    for c in listed {
        let running = c.summary.state == Some(ContainerSummaryStateEnum::RUNNING);
        let service = identity.service(&c.labels);
        let reported = observation.nodes.len() < max;
        if let Some(service) = &service {
            let w = workloads.entry(service.clone()).or_default();
            w.running = w.running.saturating_add(u32::from(running));
            w.total = w.total.saturating_add(1);
            w.reported |= reported;
            if w.compose_project.is_none() {
                w.compose_project = c
                    .labels
                    .get(COMPOSE_PROJECT)
                    .filter(|p| !p.is_empty())
                    .cloned();
            }
        }
        if !reported {
            left_out += 1;
            continue;
        }
        let mut node = container_node(c).available(u32::from(running), 1);
        if let Some(service) = service {
            node = node.part_of(Owner::Node(service));
        }
        observation.nodes.push(node);
    }
    for (id, w) in workloads {
        if !w.reported {
            continue;
        }
        let mut node = ObservedNode::new(id).available(w.running, w.total);
        if let Some(project) = w.compose_project {
            node = node.attribute("compose_project", project);
        }
        observation.nodes.push(node);
    }
    Discovered {
        observation,
        left_out,
    }
}

/// A listed container with a name that is a valid node id.
fn listed(summary: ContainerSummary) -> Option<Listed> {
    let name = name(&summary)?;
    let Ok(id) = NodeId::container(name) else {
        tracing::debug!(
            container = name.escape_debug().to_string(),
            "a container name that is no node id is not discovered"
        );
        return None;
    };
    let labels = summary
        .labels
        .as_ref()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Some(Listed {
        id,
        summary,
        labels,
    })
}

/// The container's own name, without the leading `/`. Docker also lists the names it has in
/// other containers' legacy links (`/web/db`); those hold a second `/` and are not its own.
fn name(summary: &ContainerSummary) -> Option<&str> {
    summary
        .names
        .as_deref()?
        .iter()
        .map(|n| n.strip_prefix('/').unwrap_or(n))
        .find(|n| !n.is_empty() && !n.contains('/'))
}

/// The node of a listed container, its availability aside.
fn container_node(c: Listed) -> ObservedNode {
    let Listed {
        id,
        summary,
        labels,
    } = c;
    let networks = summary
        .network_settings
        .and_then(|s| s.networks)
        .unwrap_or_default();
    let mut names: Vec<&str> = networks.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut addresses: Vec<String> = networks
        .values()
        .flat_map(|e| [e.ip_address.as_deref(), e.global_ipv6_address.as_deref()])
        .flatten()
        .filter(|ip| !ip.is_empty())
        .map(str::to_owned)
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let mut node = ObservedNode::new(id).attribute("networks", names.join(","));
    if let Some(image) = summary.image.filter(|i| !i.is_empty()) {
        node = node.attribute("image", image);
    }
    if let Some(state) = summary
        .state
        .filter(|s| *s != ContainerSummaryStateEnum::EMPTY)
    {
        node = node.attribute("state", state.as_ref());
    }
    for (key, value) in labels
        .into_iter()
        .take(MAX_ATTRIBUTES.saturating_sub(OWN_ATTRIBUTES))
    {
        node = node.attribute(format!("label:{key}"), value);
    }
    node.addresses = addresses;
    node
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use bollard::models::{ContainerSummaryNetworkSettings, EndpointSettings};

    use super::*;

    fn summary(
        name: &str,
        state: ContainerSummaryStateEnum,
        labels: &[(&str, &str)],
        networks: &[(&str, &str)],
    ) -> ContainerSummary {
        ContainerSummary {
            id: Some(format!("{name}-id")),
            names: Some(vec![format!("/{name}")]),
            image: Some("localhost/grace-busybox:test".to_owned()),
            state: Some(state),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(
                    networks
                        .iter()
                        .map(|(net, ip)| {
                            (
                                (*net).to_owned(),
                                EndpointSettings {
                                    ip_address: Some((*ip).to_owned()),
                                    ..Default::default()
                                },
                            )
                        })
                        .collect::<HashMap<_, _>>(),
                ),
            }),
            ..Default::default()
        }
    }

    fn compose(service: &str) -> [(&'static str, &str); 2] {
        [
            (COMPOSE_PROJECT, "shop"),
            ("com.docker.compose.service", service),
        ]
    }

    #[test]
    fn the_first_containers_by_name_are_reported_and_the_rest_counted() {
        let found = observe(
            vec![
                summary("c", ContainerSummaryStateEnum::RUNNING, &[], &[]),
                summary("a", ContainerSummaryStateEnum::RUNNING, &[], &[]),
                summary("b", ContainerSummaryStateEnum::EXITED, &[], &[]),
            ],
            &Identity::default(),
            2,
        );
        let ids: Vec<&str> = found
            .observation
            .nodes
            .iter()
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(ids, ["container:a", "container:b"]);
        assert_eq!(found.left_out, 1);
    }

    #[test]
    fn a_workloads_availability_counts_its_containers_left_out_by_the_bound() {
        let found = observe(
            vec![
                summary(
                    "web-1",
                    ContainerSummaryStateEnum::RUNNING,
                    &compose("web"),
                    &[],
                ),
                summary(
                    "web-2",
                    ContainerSummaryStateEnum::EXITED,
                    &compose("web"),
                    &[],
                ),
                summary(
                    "zz-db",
                    ContainerSummaryStateEnum::RUNNING,
                    &compose("db"),
                    &[],
                ),
            ],
            &Identity::default(),
            1,
        );
        let web = NodeId::service("shop", "web").unwrap();
        let nodes = &found.observation.nodes;
        assert_eq!(nodes.len(), 2, "web-1 and its service: {nodes:?}");
        assert_eq!(nodes[0].part_of, [Owner::Node(web.clone())]);
        assert_eq!(nodes[1].id, web);
        assert_eq!(
            nodes[1].availability,
            Some(grace_graph::Availability { ready: 1, total: 2 })
        );
        assert_eq!(nodes[1].attributes["compose_project"], "shop");
        assert_eq!(found.left_out, 2, "web-2 and zz-db");
    }

    #[test]
    fn a_container_answers_on_its_network_ips_and_names_its_networks_sorted() {
        let found = observe(
            vec![summary(
                "web-1",
                ContainerSummaryStateEnum::CREATED,
                &[("tier", "front")],
                &[("front", "10.89.0.5"), ("back", "10.89.1.7"), ("none", "")],
            )],
            &Identity::default(),
            10,
        );
        let node = &found.observation.nodes[0];
        assert_eq!(node.addresses, ["10.89.0.5", "10.89.1.7"]);
        assert_eq!(node.attributes["networks"], "back,front,none");
        assert_eq!(node.attributes["state"], "created");
        assert_eq!(node.attributes["label:tier"], "front");
        assert_eq!(node.attributes["image"], "localhost/grace-busybox:test");
        assert_eq!(
            node.availability,
            Some(grace_graph::Availability { ready: 0, total: 1 })
        );
        assert!(node.part_of.is_empty(), "no workload label");
    }

    #[test]
    fn names_that_are_no_node_ids_and_link_aliases_are_not_discovered() {
        let mut linked = summary("db", ContainerSummaryStateEnum::RUNNING, &[], &[]);
        linked.names = Some(vec!["/web/db".to_owned(), "/db".to_owned()]);
        let mut nameless = summary("x", ContainerSummaryStateEnum::RUNNING, &[], &[]);
        nameless.names = Some(vec!["/".to_owned()]);
        let mut spaced = summary("x", ContainerSummaryStateEnum::RUNNING, &[], &[]);
        spaced.names = Some(vec!["/we b".to_owned()]);
        let found = observe(vec![linked, nameless, spaced], &Identity::default(), 10);
        let ids: Vec<&str> = found
            .observation
            .nodes
            .iter()
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(ids, ["container:db"]);
        assert_eq!(found.left_out, 0);
    }

    #[test]
    fn many_labels_leave_room_for_the_containers_own_attributes() {
        let labels: Vec<(String, String)> = (0..100)
            .map(|i| (format!("k{i:03}"), "v".to_owned()))
            .collect();
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let found = observe(
            vec![summary(
                "web-1",
                ContainerSummaryStateEnum::RUNNING,
                &pairs,
                &[],
            )],
            &Identity::default(),
            10,
        );
        let attributes = &found.observation.nodes[0].attributes;
        assert_eq!(attributes.len(), MAX_ATTRIBUTES);
        for own in ["image", "state", "networks"] {
            assert!(attributes.contains_key(own), "{own}");
        }
    }
}
