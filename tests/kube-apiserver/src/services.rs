//! Core `v1` services: what the real API server does to one on a write, and [`service`], a valid
//! manifest for tests.
//!
//! Defaults, as the real server applies them: `type: ClusterIP`, `sessionAffinity: None`,
//! `internalTrafficPolicy: Cluster`, and each port's `protocol: TCP` and `targetPort` = `port`.
//! Every type but `ExternalName` gets a cluster IP (the next one of `10.96.0.0/12`, or `None` for
//! a headless service) in `clusterIP` and `clusterIPs`, with `ipFamilies: [IPv4]` and
//! `ipFamilyPolicy: SingleStack`; `NodePort` and `LoadBalancer` services get a node port per port
//! (from `30000-32767`) and `externalTrafficPolicy: Cluster`. The status is the empty
//! `{"loadBalancer": {}}` and only the server writes it. A replace that names no cluster IP keeps
//! the allocated one; one that names another is refused.
//!
//! Checked (`422`): the name (a DNS-1035 label), the type, a cluster IP that is an IPv4 address
//! (or `None`), at least one port (headless and `ExternalName` services aside), port numbers
//! and protocols, port names (required and unique when there are several), `externalName` for
//! `ExternalName` services. Not modelled: dual stack, load balancer addresses, cluster IP and
//! node port collisions, session affinity settings.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    LoadBalancerStatus, Service, ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::objects::{Collection, Collections, Kind};
use crate::status::ApiError;
use crate::store::Serials;

/// A valid service manifest: TCP `ports`, each to the same port of the pods `selector` selects
/// (no selector when it is empty). A single port is unnamed, as most are; several are named
/// `port-<n>`, since the real server requires names then.
pub fn service(namespace: &str, name: &str, selector: &[(&str, &str)], ports: &[u16]) -> Service {
    let selector: BTreeMap<String, String> = selector
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let named = ports.len() > 1;
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: (!selector.is_empty()).then_some(selector),
            ports: Some(
                ports
                    .iter()
                    .map(|&port| ServicePort {
                        name: named.then(|| format!("port-{port}")),
                        port: i32::from(port),
                        protocol: Some("TCP".to_owned()),
                        target_port: Some(IntOrString::Int(i32::from(port))),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// The cluster IP of `10.96.0.0/12` numbered `serial` (wrapping after a million services).
fn cluster_ip(serial: u64) -> String {
    let n = serial % (1 << 20);
    format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
}

/// A node port of `30000-32767` numbered `serial`.
fn node_port(serial: u64) -> i32 {
    // Below 2768: the conversion cannot fail.
    30000 + i32::try_from(serial % 2768).unwrap_or(0)
}

/// Whether `name` is a DNS-1035 label, as service names must be.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A failed check: the field and the problem.
type Failure = (String, String);

/// The defaults of the spec and the addresses and ports the server allocates; `previous` is the
/// stored spec on a replace, whose allocations are kept (and cannot change).
fn apply_defaults(
    spec: &mut ServiceSpec,
    previous: Option<&ServiceSpec>,
    serials: &mut Serials,
) -> Result<(), Failure> {
    let kind = spec
        .type_
        .get_or_insert_with(|| "ClusterIP".to_owned())
        .clone();
    spec.session_affinity
        .get_or_insert_with(|| "None".to_owned());
    for port in spec.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".to_owned());
        port.target_port.get_or_insert(IntOrString::Int(port.port));
    }
    if kind == "ExternalName" {
        return Ok(());
    }
    spec.internal_traffic_policy
        .get_or_insert_with(|| "Cluster".to_owned());
    let before = previous.and_then(|p| p.cluster_ip.clone());
    match (
        spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty()),
        before,
    ) {
        (None, Some(kept)) => {
            spec.cluster_ip = Some(kept);
            spec.cluster_ips = previous.and_then(|p| p.cluster_ips.clone());
        }
        (None, None) => spec.cluster_ip = Some(cluster_ip(serials.next_serial())),
        (Some(asked), Some(kept)) if asked != kept => {
            return Err((
                "spec.clusterIPs[0]".to_owned(),
                format!("Invalid value: \"{asked}\": may not change once set"),
            ));
        }
        (Some(_), _) => {}
    }
    if spec.cluster_ips.as_ref().is_none_or(Vec::is_empty) {
        spec.cluster_ips = spec.cluster_ip.clone().map(|ip| vec![ip]);
    }
    spec.ip_families
        .get_or_insert_with(|| vec!["IPv4".to_owned()]);
    spec.ip_family_policy
        .get_or_insert_with(|| "SingleStack".to_owned());
    if kind == "NodePort" || kind == "LoadBalancer" {
        spec.external_traffic_policy
            .get_or_insert_with(|| "Cluster".to_owned());
        for port in spec.ports.iter_mut().flatten() {
            let kept = previous
                .and_then(|p| p.ports.as_ref())
                .and_then(|ports| ports.iter().find(|p| p.port == port.port))
                .and_then(|p| p.node_port);
            port.node_port = port
                .node_port
                .or(kept)
                .or_else(|| Some(node_port(serials.next_serial())));
        }
    }
    Ok(())
}

/// The checks of the real server's validation that matter to clients of services: the field and
/// the problem of the first failure.
fn validate(name: &str, spec: &ServiceSpec) -> Result<(), Failure> {
    let fail = |field: &str, problem: String| Err((field.to_owned(), problem));
    if !is_dns_label(name) {
        return fail(
            "metadata.name",
            format!(
                "Invalid value: \"{name}\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"
            ),
        );
    }
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !TYPES.contains(&kind) {
        return fail(
            "spec.type",
            format!("Unsupported value: \"{kind}\": supported values: {TYPES:?}"),
        );
    }
    if kind == "ExternalName" && spec.external_name.as_deref().is_none_or(str::is_empty) {
        return fail("spec.externalName", "Required value".to_owned());
    }
    if let Some(ip) = spec.cluster_ip.as_deref()
        && ip != "None"
        && ip.parse::<Ipv4Addr>().is_err()
    {
        return fail(
            "spec.clusterIPs[0]",
            format!("Invalid value: \"{ip}\": must be a valid IP address"),
        );
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if ports.is_empty() && kind != "ExternalName" && !headless {
        return fail("spec.ports", "Required value".to_owned());
    }
    let mut names = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        if !(1..=65535).contains(&port.port) {
            return fail(
                &format!("spec.ports[{i}].port"),
                format!(
                    "Invalid value: {}: must be between 1 and 65535, inclusive",
                    port.port
                ),
            );
        }
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            return fail(
                &format!("spec.ports[{i}].protocol"),
                format!("Unsupported value: \"{protocol}\": supported values: {PROTOCOLS:?}"),
            );
        }
        let port_name = port.name.as_deref().unwrap_or_default();
        if ports.len() > 1 && port_name.is_empty() {
            return fail(
                &format!("spec.ports[{i}].name"),
                "Required value".to_owned(),
            );
        }
        if !port_name.is_empty() && names.contains(&port_name) {
            return fail(
                &format!("spec.ports[{i}].name"),
                format!("Duplicate value: \"{port_name}\""),
            );
        }
        names.push(port_name);
        if let Some(IntOrString::Int(target)) = port.target_port
            && !(1..=65535).contains(&target)
        {
            return fail(
                &format!("spec.ports[{i}].targetPort"),
                format!("Invalid value: {target}: must be between 1 and 65535, inclusive"),
            );
        }
    }
    Ok(())
}

impl Kind for Service {
    const GENERATION: bool = false;
    const RETURNS_DELETED_OBJECT: bool = true;

    fn collection(all: &Collections) -> &Collection<Self> {
        &all.services
    }

    fn collection_mut(all: &mut Collections) -> &mut Collection<Self> {
        &mut all.services
    }

    fn admit(&mut self, previous: Option<&Self>, serials: &mut Serials) -> Result<(), ApiError> {
        let name = self.metadata.name.clone().unwrap_or_default();
        let invalid =
            |(field, problem): Failure| ApiError::invalid_of::<Service>(&name, &field, &problem);
        // A missing spec is an empty one, as in the real server's types.
        let mut spec = self.spec.take().unwrap_or_default();
        apply_defaults(&mut spec, previous.and_then(|p| p.spec.as_ref()), serials)
            .map_err(invalid)?;
        validate(&name, &spec).map_err(invalid)?;
        self.spec = Some(spec);
        self.status = match previous {
            Some(p) => p.status.clone(),
            None => Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus::default()),
                conditions: None,
            }),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cluster_ips_stay_inside_the_service_range() {
        assert_eq!(cluster_ip(1), "10.96.0.1");
        assert_eq!(cluster_ip(256), "10.96.1.0");
        assert_eq!(cluster_ip((1 << 20) - 1), "10.111.255.255");
        assert!((30000..=32767).contains(&node_port(u64::MAX)));
    }

    #[test]
    fn service_names_are_dns_labels() {
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("1web"));
        assert!(!is_dns_label("web.shop"));
        assert!(!is_dns_label("Web"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }

    #[test]
    fn several_ports_need_names_and_a_service_needs_a_port() {
        let one = service("shop", "web", &[("app", "web")], &[80]);
        assert_eq!(validate("web", &one.spec.unwrap()), Ok(()));
        let mut two = service("shop", "web", &[], &[80, 443]).spec.unwrap();
        assert_eq!(validate("web", &two), Ok(()));
        two.ports.as_mut().unwrap()[0].name = None;
        assert_eq!(
            validate("web", &two).map_err(|e| e.0),
            Err("spec.ports[0].name".to_owned())
        );
        let none = service("shop", "web", &[], &[]).spec.unwrap();
        assert_eq!(
            validate("web", &none).map_err(|e| e.0),
            Err("spec.ports".to_owned())
        );
    }
}
