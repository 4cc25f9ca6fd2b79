//! Discovery for the health graph: deployments, the services that select their pods, and the
//! EndpointSlices that say where those pods answer.
//!
//! - A deployment is the workload `service:<namespace>/<name>`; its availability is ready
//!   replicas of desired ones.
//! - A Service belongs to the deployments of its namespace whose pod template carries every
//!   label of its selector (its name is listed in their `k8s_services` attribute); a Service that
//!   selects no deployment (headless, external, a StatefulSet's) is a workload of its own,
//!   available as its ready endpoints.
//! - The addresses of a Service's EndpointSlices (label `kubernetes.io/service-name`) become the
//!   addresses of its workloads, so that a Prometheus target on a pod's IP finds its workload.

use std::collections::{BTreeMap, BTreeSet};

use grace_executor::ExecError;
use grace_graph::{Discovered, Identity, NodeId, Observation, ObservedNode};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, ObjectList};
use serde::de::DeserializeOwned;

use crate::client::Kube;

/// Objects asked for per page.
const PAGE: u32 = 500;

/// The label of an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What discovery keeps of one workload while it reads the three lists.
#[derive(Default)]
struct Workload {
    node: Option<ObservedNode>,
    template: BTreeMap<String, String>,
    services: BTreeSet<String>,
    addresses: BTreeSet<String>,
}

/// The workload among a Service's `owners` an endpoint's address belongs to: the only one, or,
/// when the Service selects several (a stable and a canary deployment), the one whose name the
/// endpoint's pod is named after (`<deployment>-<replicaset hash>-<pod hash>`, the longest
/// such name). `None` when that cannot be told: an address given to the wrong workload would
/// join scrape targets to it.
fn address_owner<'a>(owners: &'a [NodeId], pod: Option<&str>) -> Option<&'a NodeId> {
    match owners {
        [one] => Some(one),
        _ => {
            let pod = pod?;
            owners
                .iter()
                .filter(|id| {
                    let workload = id.key().rsplit_once('/').map_or("", |(_, w)| w);
                    pod.strip_prefix(workload)
                        .is_some_and(|rest| rest.starts_with('-'))
                })
                .max_by_key(|id| id.key().len())
        }
    }
}

impl Kube {
    /// Every object of a kind, page by page, at most `max` (the rest counted, not read).
    async fn list_all<K>(&self, what: &str, max: usize) -> Result<(Vec<K>, usize), ExecError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::all(self.client.clone());
        let mut items = Vec::new();
        let mut left_out = 0usize;
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page: ObjectList<K> = self
                .call(
                    &format!("list {what}"),
                    self.call_timeout,
                    api.list(&params),
                )
                .await?;
            for item in page.items {
                if items.len() < max {
                    items.push(item);
                } else {
                    left_out += 1;
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                // Past the bound, the remaining count is the server's estimate, when it gives one.
                Some(_) if items.len() >= max => {
                    let remaining = page.metadata.remaining_item_count.unwrap_or(0);
                    left_out += usize::try_from(remaining.max(0)).unwrap_or(0);
                    break;
                }
                Some(token) => params = ListParams::default().limit(PAGE).continue_token(&token),
                None => break,
            }
        }
        Ok((items, left_out))
    }

    /// Deployments, Services and EndpointSlices of every namespace, as the graph's nodes; at
    /// most `max` of each kind read. `identity` is not needed to name workloads here (a
    /// deployment is its own workload) and is kept for the signature every provider shares.
    pub async fn discover(
        &self,
        _identity: &Identity,
        max: usize,
    ) -> Result<Discovered, ExecError> {
        let (deployments, mut left_out) = self.list_all::<Deployment>("deployments", max).await?;
        let (services, n) = self.list_all::<Service>("services", max).await?;
        left_out += n;
        let (slices, n) = self
            .list_all::<EndpointSlice>("endpointslices", max)
            .await?;
        left_out += n;

        let mut workloads: BTreeMap<NodeId, Workload> = BTreeMap::new();
        for d in &deployments {
            let (Some(ns), Some(name)) = (&d.metadata.namespace, &d.metadata.name) else {
                continue;
            };
            let Ok(id) = NodeId::service(ns, name) else {
                continue;
            };
            let spec = &d.spec;
            let desired = spec.replicas.unwrap_or(1);
            let ready = d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            let to_u32 = |n: i32| u32::try_from(n.max(0)).unwrap_or(0);
            let mut node = ObservedNode::new(id.clone())
                .attribute("kind", "Deployment")
                .attribute("replicas", desired.to_string())
                .available(to_u32(ready), to_u32(desired));
            let template = spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            if let Some(image) = spec
                .template
                .spec
                .as_ref()
                .and_then(|p| p.containers.first())
                .and_then(|c| c.image.as_ref())
            {
                node = node.attribute("image", image.as_str());
            }
            for (k, v) in &template {
                node = node.attribute(format!("label:{k}"), v.as_str());
            }
            workloads.insert(
                id,
                Workload {
                    node: Some(node),
                    template,
                    ..Workload::default()
                },
            );
        }

        // Each Service: the workloads it selects, by namespace and template labels.
        let mut selects: BTreeMap<(String, String), Vec<NodeId>> = BTreeMap::new();
        for s in &services {
            let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) else {
                continue;
            };
            let selector = s
                .spec
                .as_ref()
                .and_then(|spec| spec.selector.clone())
                .unwrap_or_default();
            let selected: Vec<NodeId> = if selector.is_empty() {
                Vec::new()
            } else {
                workloads
                    .iter()
                    .filter(|(id, w)| {
                        id.namespace() == Some(ns.as_str())
                            && selector.iter().all(|(k, v)| w.template.get(k) == Some(v))
                    })
                    .map(|(id, _)| id.clone())
                    .collect()
            };
            let owners = if selected.is_empty() {
                // A workload of its own (headless, external, a StatefulSet's Service).
                let Ok(id) = NodeId::service(ns, name) else {
                    continue;
                };
                workloads.entry(id.clone()).or_default();
                vec![id]
            } else {
                selected
            };
            for id in &owners {
                if let Some(w) = workloads.get_mut(id) {
                    w.services.insert(name.clone());
                }
            }
            selects.insert((ns.clone(), name.clone()), owners);
        }

        // Each EndpointSlice: addresses for the workloads of its Service, and readiness for a
        // Service that is its own workload.
        let mut endpoints: BTreeMap<NodeId, (u32, u32)> = BTreeMap::new();
        for slice in &slices {
            let Some(ns) = &slice.metadata.namespace else {
                continue;
            };
            let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            let Some(owners) = selects.get(&(ns.clone(), service.clone())) else {
                continue;
            };
            for endpoint in slice.endpoints.iter().flatten() {
                // Absent `ready` means ready (the API's documented default).
                let ready = endpoint
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .unwrap_or(true);
                for id in owners {
                    let counts = endpoints.entry(id.clone()).or_default();
                    counts.0 += u32::from(ready);
                    counts.1 += 1;
                }
                // The address is the pod's: it goes to the one workload the pod belongs to.
                let pod = endpoint
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .and_then(|r| r.name.as_deref());
                if let Some(id) = address_owner(owners, pod)
                    && let Some(w) = workloads.get_mut(id)
                {
                    w.addresses.extend(endpoint.addresses.iter().cloned());
                }
            }
        }

        let mut observation = Observation::default();
        for (id, w) in workloads {
            let mut node = match w.node {
                Some(node) => node,
                None => {
                    let (ready, total) = endpoints.get(&id).copied().unwrap_or((0, 0));
                    ObservedNode::new(id.clone())
                        .attribute("kind", "Service")
                        .available(ready, total)
                }
            };
            if !w.services.is_empty() {
                let names: Vec<&str> = w.services.iter().map(String::as_str).collect();
                node = node.attribute("k8s_services", names.join(","));
            }
            node.addresses = w.addresses.into_iter().collect();
            observation.nodes.push(node);
        }
        Ok(Discovered {
            observation,
            left_out,
        })
    }
}
