//! Discovery through Prometheus, for the health graph: its scrape targets
//! (`GET /api/v1/targets`), the service-mesh dependency edges and golden signals Istio and
//! Linkerd export, and KPI queries the operator adds.
//!
//! The meshes are read from the metric families their proxies export, by their real names:
//!
//! | mesh | edges (caller → callee) | errors | latency |
//! | --- | --- | --- | --- |
//! | Istio | `istio_requests_total` by `source_workload[_namespace]`, `destination_workload[_namespace]` | `response_code=~"5.."` | `istio_request_duration_milliseconds_bucket` |
//! | Linkerd | `request_total{direction="outbound"}` by `namespace`, `deployment` (or `statefulset`, `daemonset`) and their `dst_*` | `response_total{classification="failure"}` | `response_latency_ms_bucket{direction="inbound"}` |
//!
//! Istio proxies on both ends report the same request (`reporter="source"` and
//! `"destination"`, or `"waypoint"` in ambient mode): rates are taken per reporter and the
//! larger kept, never added; a series with any other `reporter` is not a proxy's and is not
//! read. Whatever Prometheus scrapes is trusted as it is for PromQL sources: a workload that can
//! publish series named like the mesh's can add edges (see `docs/graph.md`).

use std::collections::{BTreeMap, HashMap};

use grace_executor::metrics::Series;
use grace_executor::{ExecError, MetricsExecutor};
use grace_graph::{
    Discovered, Identity, Kpi, NodeId, Observation, ObservedEdge, ObservedKpi, ObservedNode, Owner,
};
use serde::Deserialize;

use crate::PrometheusMetrics;

/// A service mesh whose metrics give dependency edges and golden signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mesh {
    /// Istio's standard metrics.
    Istio,
    /// Linkerd's proxy metrics.
    Linkerd,
}

/// What GRACE reads of one mesh: queries (with `$W` for the rate window) and the labels that
/// name each end.
struct Family {
    /// Requests per second per (caller, callee).
    edge_rate: &'static str,
    /// Failed requests per second per (caller, callee).
    edge_errors: &'static str,
    /// Labels naming the caller: namespace, then workload candidates.
    caller: Ends,
    /// Labels naming the callee.
    callee: Ends,
    /// Requests served per second, per workload (labels: `callee` for Istio, `caller` for
    /// Linkerd's inbound side).
    traffic: &'static str,
    /// Failed requests served per second, per workload.
    errors: &'static str,
    /// p95 latency served, ms, per workload.
    latency: &'static str,
    /// The labels of the per-workload queries.
    served: Ends,
}

#[derive(Clone, Copy)]
struct Ends {
    namespace: &'static str,
    workload: &'static [&'static str],
}

const ISTIO_CALLER: Ends = Ends {
    namespace: "source_workload_namespace",
    workload: &["source_workload"],
};
const ISTIO_CALLEE: Ends = Ends {
    namespace: "destination_workload_namespace",
    workload: &["destination_workload"],
};
const LINKERD_CALLER: Ends = Ends {
    namespace: "namespace",
    workload: &["deployment", "statefulset", "daemonset"],
};
const LINKERD_CALLEE: Ends = Ends {
    namespace: "dst_namespace",
    workload: &["dst_deployment", "dst_statefulset", "dst_daemonset"],
};

const ISTIO: Family = Family {
    edge_rate: "max by (source_workload_namespace, source_workload, destination_workload_namespace, destination_workload) (sum by (source_workload_namespace, source_workload, destination_workload_namespace, destination_workload, reporter) (rate(istio_requests_total{reporter=~\"source|destination|waypoint\"}[$W])))",
    edge_errors: "max by (source_workload_namespace, source_workload, destination_workload_namespace, destination_workload) (sum by (source_workload_namespace, source_workload, destination_workload_namespace, destination_workload, reporter) (rate(istio_requests_total{reporter=~\"source|destination|waypoint\", response_code=~\"5..\"}[$W])))",
    caller: ISTIO_CALLER,
    callee: ISTIO_CALLEE,
    traffic: "max by (destination_workload_namespace, destination_workload) (sum by (destination_workload_namespace, destination_workload, reporter) (rate(istio_requests_total{reporter=~\"source|destination|waypoint\"}[$W])))",
    errors: "max by (destination_workload_namespace, destination_workload) (sum by (destination_workload_namespace, destination_workload, reporter) (rate(istio_requests_total{reporter=~\"source|destination|waypoint\", response_code=~\"5..\"}[$W])))",
    latency: "max by (destination_workload_namespace, destination_workload) (histogram_quantile(0.95, sum by (destination_workload_namespace, destination_workload, reporter, le) (rate(istio_request_duration_milliseconds_bucket{reporter=~\"source|destination|waypoint\"}[$W]))))",
    served: ISTIO_CALLEE,
};

const LINKERD: Family = Family {
    edge_rate: "sum by (namespace, deployment, statefulset, daemonset, dst_namespace, dst_deployment, dst_statefulset, dst_daemonset) (rate(request_total{direction=\"outbound\"}[$W]))",
    edge_errors: "sum by (namespace, deployment, statefulset, daemonset, dst_namespace, dst_deployment, dst_statefulset, dst_daemonset) (rate(response_total{direction=\"outbound\", classification=\"failure\"}[$W]))",
    caller: LINKERD_CALLER,
    callee: LINKERD_CALLEE,
    traffic: "sum by (namespace, deployment, statefulset, daemonset) (rate(request_total{direction=\"inbound\"}[$W]))",
    errors: "sum by (namespace, deployment, statefulset, daemonset) (rate(response_total{direction=\"inbound\", classification=\"failure\"}[$W]))",
    latency: "histogram_quantile(0.95, sum by (namespace, deployment, statefulset, daemonset, le) (rate(response_latency_ms_bucket{direction=\"inbound\"}[$W])))",
    served: LINKERD_CALLER,
};

impl Mesh {
    /// Its name, the discovery source's.
    pub fn name(self) -> &'static str {
        match self {
            Mesh::Istio => "istio",
            Mesh::Linkerd => "linkerd",
        }
    }

    fn family(self) -> &'static Family {
        match self {
            Mesh::Istio => &ISTIO,
            Mesh::Linkerd => &LINKERD,
        }
    }
}

/// An operator's KPI query: a PromQL expression whose series' labels name a workload by the
/// identity rules (`[[graph.kpi]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiQuery {
    /// The KPI it measures.
    pub kpi: Kpi,
    /// The query.
    pub query: String,
}

/// Whether `window` is a Prometheus duration GRACE puts into a query (`30s`, `5m`, `1h`).
pub fn valid_window(window: &str) -> bool {
    let digits = window.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &window[digits.len()..];
    !digits.is_empty()
        && digits.len() <= 6
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "s" | "m" | "h")
}

/// The service the labels of a mesh series name at one end.
fn end(labels: &BTreeMap<String, String>, ends: Ends) -> Option<NodeId> {
    let workload = ends.workload.iter().find_map(|k| {
        labels
            .get(*k)
            .filter(|v| !v.is_empty() && v.as_str() != "unknown")
    })?;
    let namespace = labels.get(ends.namespace).filter(|v| !v.is_empty())?;
    NodeId::service(namespace, workload).ok()
}

/// One value per series, keyed by what `key` reads from its labels; a series with no sample or
/// a value that is not finite is skipped, and so is a series whose labels name no node.
fn values<K: std::hash::Hash + Eq>(
    series: Vec<Series>,
    key: impl Fn(&BTreeMap<String, String>) -> Option<K>,
) -> HashMap<K, f64> {
    let mut out = HashMap::new();
    for s in series {
        let Some(v) = s.samples.last().map(|p| p.value).filter(|v| v.is_finite()) else {
            continue;
        };
        if let Some(k) = key(&s.labels) {
            out.insert(k, v);
        }
    }
    out
}

impl PrometheusMetrics {
    async fn at(&self, query: &str, window: &str, at: u64) -> Result<Vec<Series>, ExecError> {
        self.query(&query.replace("$W", window), at).await
    }

    /// A mesh's edges (rate over `window`, error ratio) and the golden signals of the
    /// workloads it serves, at `at`; at most `max` edges and `max` workloads.
    pub async fn mesh(
        &self,
        mesh: Mesh,
        window: &str,
        at: u64,
        max: usize,
    ) -> Result<Discovered, ExecError> {
        if !valid_window(window) {
            return Err(ExecError::InvalidArgument(format!(
                "`{}` is not a rate window (e.g. `5m`)",
                window.escape_debug()
            )));
        }
        let f = mesh.family();
        let pair = |l: &BTreeMap<String, String>| Some((end(l, f.caller)?, end(l, f.callee)?));
        let rates = values(self.at(f.edge_rate, window, at).await?, pair);
        let errors = values(self.at(f.edge_errors, window, at).await?, pair);
        let mut observation = Observation::default();
        let mut left_out = 0;
        let mut edges: Vec<_> = rates.into_iter().collect();
        edges.sort_by(|a, b| a.0.cmp(&b.0));
        for ((from, to), rate) in edges {
            if observation.edges.len() >= max {
                left_out += 1;
                continue;
            }
            let ratio = (rate > 0.0).then(|| {
                errors
                    .get(&(from.clone(), to.clone()))
                    .map_or(0.0, |e| (e / rate).clamp(0.0, 1.0))
            });
            observation
                .edges
                .push(ObservedEdge::calls(from, to).traffic(rate, ratio));
        }
        let served = |l: &BTreeMap<String, String>| end(l, f.served);
        let traffic = values(self.at(f.traffic, window, at).await?, served);
        let failed = values(self.at(f.errors, window, at).await?, served);
        let latency = values(self.at(f.latency, window, at).await?, served);
        let mut workloads: Vec<&NodeId> = traffic.keys().chain(latency.keys()).collect();
        workloads.sort();
        workloads.dedup();
        for node in workloads {
            if observation.kpis.len() >= 3 * max {
                left_out += 1;
                continue;
            }
            let mut kpi = |kpi, value| {
                observation.kpis.push(ObservedKpi {
                    node: node.clone(),
                    kpi,
                    value,
                });
            };
            if let Some(rps) = traffic.get(node) {
                kpi(Kpi::TrafficRps, *rps);
                if *rps > 0.0 {
                    let ratio = failed.get(node).map_or(0.0, |e| e / rps);
                    kpi(Kpi::ErrorRatio, ratio.clamp(0.0, 1.0));
                }
            }
            if let Some(ms) = latency.get(node) {
                kpi(Kpi::LatencyP95Ms, *ms);
            }
        }
        Ok(Discovered {
            observation,
            left_out,
        })
    }

    /// The operator's KPI queries at `at`, each series mapped to a workload by `identity`.
    pub async fn kpis(
        &self,
        queries: &[KpiQuery],
        identity: &Identity,
        at: u64,
        max: usize,
    ) -> Result<Discovered, ExecError> {
        let mut observation = Observation::default();
        let mut left_out = 0;
        for q in queries {
            let found = values(self.query(&q.query, at).await?, |l| identity.service(l));
            let mut found: Vec<_> = found.into_iter().collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            for (node, value) in found {
                if observation.kpis.len() >= max {
                    left_out += 1;
                    continue;
                }
                observation.kpis.push(ObservedKpi {
                    node,
                    kpi: q.kpi,
                    value,
                });
            }
        }
        Ok(Discovered {
            observation,
            left_out,
        })
    }

    /// The active scrape targets: each a `target:<job>/<instance>` node, up or down, part of
    /// the workload its labels name by `identity`, or else of whatever node answers on its
    /// host's address; at most `max`.
    pub async fn targets(&self, identity: &Identity, max: usize) -> Result<Discovered, ExecError> {
        let mut url = self
            .base_url
            .join("api/v1/targets")
            .map_err(|e| ExecError::Other(format!("cannot build the Prometheus URL: {e}")))?;
        url.query_pairs_mut().append_pair("state", "active");
        let response = self
            .client
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let body = self.read_capped(response).await?;
        let targets = decode_targets(status, &body)?;
        let mut observation = Observation::default();
        let mut left_out = 0;
        for t in targets {
            if observation.nodes.len() >= max {
                left_out += 1;
                continue;
            }
            let (Some(job), Some(instance)) = (t.labels.get("job"), t.labels.get("instance"))
            else {
                continue;
            };
            let Ok(id) = NodeId::target(job, instance) else {
                continue;
            };
            let mut node = ObservedNode::new(id)
                .attribute("job", job.as_str())
                .attribute("scrape_url", t.scrape_url.as_str());
            if !t.last_error.is_empty() {
                node = node.attribute("last_error", t.last_error.as_str());
            }
            let up = match t.health.as_str() {
                "up" => Some(true),
                "down" => Some(false),
                _ => None,
            };
            if let Some(up) = up {
                node = node.available(u32::from(up), 1);
            }
            match identity.service(&t.labels) {
                // The service's availability follows from its members' (the health rule).
                Some(service) => node = node.part_of(Owner::Node(service)),
                None => {
                    if let Some(host) = host_of(instance) {
                        node = node.part_of(Owner::Address(host.to_owned()));
                    }
                }
            }
            observation.nodes.push(node);
        }
        Ok(Discovered {
            observation,
            left_out,
        })
    }
}

/// The host of `host:port` (`[v6]:port` too).
fn host_of(instance: &str) -> Option<&str> {
    if let Some(rest) = instance.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h);
    }
    instance.rsplit_once(':').map(|(h, _)| h).or(Some(instance))
}

#[derive(Debug, Deserialize)]
struct TargetsEnvelope {
    status: String,
    #[serde(default)]
    data: Option<TargetsData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetsData {
    active_targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    scrape_url: String,
    #[serde(default)]
    last_error: String,
    health: String,
}

/// Decodes an answer of `/api/v1/targets`.
fn decode_targets(status: u16, body: &[u8]) -> Result<Vec<Target>, ExecError> {
    let envelope: TargetsEnvelope = serde_json::from_slice(body).map_err(|e| {
        if status >= 500 {
            ExecError::Unavailable(format!("Prometheus answered {status}"))
        } else {
            ExecError::Other(format!(
                "Prometheus' targets answer ({status}) is not what its API documents: {e}"
            ))
        }
    })?;
    if envelope.status != "success" {
        return Err(ExecError::Other(format!(
            "Prometheus refused to list its targets: {}",
            envelope.error.unwrap_or_default()
        )));
    }
    envelope
        .data
        .map(|d| d.active_targets)
        .ok_or_else(|| ExecError::Other("Prometheus' targets answer has no `data`".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_prometheus_durations_and_nothing_else() {
        for ok in ["30s", "5m", "1h", "120s"] {
            assert!(valid_window(ok), "{ok}");
        }
        for bad in ["", "5", "m", "5m]) or vector(1", "5d", "1.5m", "5m5s"] {
            assert!(!valid_window(bad), "{bad}");
        }
    }

    #[test]
    fn a_mesh_end_needs_a_namespace_and_a_known_workload() {
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        let l = labels(&[("namespace", "shop"), ("statefulset", "db")]);
        assert_eq!(
            end(&l, LINKERD_CALLER),
            Some(NodeId::service("shop", "db").unwrap())
        );
        let unknown = labels(&[
            ("source_workload_namespace", "shop"),
            ("source_workload", "unknown"),
        ]);
        assert_eq!(end(&unknown, ISTIO_CALLER), None);
    }

    #[test]
    fn garbage_from_the_targets_api_is_an_error_not_an_empty_list() {
        assert!(decode_targets(200, b"<html>").is_err());
        assert!(decode_targets(200, br#"{"status":"success"}"#).is_err());
        assert!(decode_targets(502, b"bad gateway").is_err());
        let ok = br#"{"status":"success","data":{"activeTargets":[{"labels":{"job":"node","instance":"127.0.0.1:9100"},"scrapeUrl":"http://127.0.0.1:9100/metrics","lastError":"","health":"up"}],"droppedTargets":[]}}"#;
        assert_eq!(decode_targets(200, ok).unwrap().len(), 1);
    }

    #[test]
    fn hosts_are_read_from_instances() {
        assert_eq!(host_of("10.0.0.5:9100"), Some("10.0.0.5"));
        assert_eq!(host_of("[::1]:9100"), Some("::1"));
        assert_eq!(host_of("web"), Some("web"));
    }
}
