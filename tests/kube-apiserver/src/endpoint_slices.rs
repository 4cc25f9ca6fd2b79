//! `discovery.k8s.io/v1` endpoint slices: what the real API server checks on a write, and
//! [`endpoint_slice`], a slice as the endpoint slice controller writes one, for tests.
//!
//! There is no endpoint slice controller here: slices are what tests and clients write, they do
//! not follow services or pods by themselves.
//!
//! Checked (`422`): the name (a DNS subdomain), `addressType` (`IPv4`, `IPv6` or `FQDN`, and
//! immutable), at most 1000 endpoints of 1 to 100 addresses each, every address of the slice's
//! type, at most 100 ports with numbers between 1 and 65535, known protocols and unique names.
//! `metadata.generation` starts at 1 and grows when anything but metadata (labels aside) changes.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::objects::{Collection, Collections, Kind};
use crate::status::ApiError;
use crate::store::{Serials, is_dns_subdomain};

/// The label that ties a slice to its service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One endpoint of an [`endpoint_slice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceEndpoint<'a> {
    /// Its IPv4 address.
    pub address: &'a str,
    /// `conditions.ready` (and `conditions.serving`; never `terminating`).
    pub ready: bool,
    /// The pod behind it: `targetRef` is `{kind: Pod, name, namespace}` when given.
    pub pod: Option<&'a str>,
}

/// A slice of the endpoints of `service`, as the endpoint slice controller writes one:
/// `generateName` `<service>-`, the labels `kubernetes.io/service-name: <service>` and
/// `endpointslice.kubernetes.io/managed-by`, `addressType: IPv4`, one address per endpoint with
/// its conditions and pod, and one unnamed TCP `port` (the port of a single-port [`service`]).
///
/// [`service`]: crate::service
pub fn endpoint_slice(
    namespace: &str,
    service: &str,
    endpoints: &[SliceEndpoint<'_>],
    port: u16,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{service}-")),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (SERVICE_NAME_LABEL.to_owned(), service.to_owned()),
                (
                    "endpointslice.kubernetes.io/managed-by".to_owned(),
                    "endpointslice-controller.k8s.io".to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_owned(),
        endpoints: Some(
            endpoints
                .iter()
                .map(|e| Endpoint {
                    addresses: vec![e.address.to_owned()],
                    conditions: Some(EndpointConditions {
                        ready: Some(e.ready),
                        serving: Some(e.ready),
                        terminating: Some(false),
                    }),
                    target_ref: e.pod.map(|pod| ObjectReference {
                        kind: Some("Pod".to_owned()),
                        name: Some(pod.to_owned()),
                        namespace: Some(namespace.to_owned()),
                        ..ObjectReference::default()
                    }),
                    ..Endpoint::default()
                })
                .collect(),
        ),
        ports: Some(vec![EndpointPort {
            name: None,
            port: Some(i32::from(port)),
            protocol: Some("TCP".to_owned()),
            app_protocol: None,
        }]),
    }
}

const ADDRESS_TYPES: [&str; 3] = ["FQDN", "IPv4", "IPv6"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 100;

/// A failed check: the field and the problem.
type Failure = (String, String);

fn is_address(address_type: &str, address: &str) -> bool {
    match address_type {
        "IPv4" => address.parse::<Ipv4Addr>().is_ok(),
        "IPv6" => address.parse::<Ipv6Addr>().is_ok(),
        _ => is_dns_subdomain(address),
    }
}

fn validate_endpoints(address_type: &str, endpoints: &[Endpoint]) -> Result<(), Failure> {
    if endpoints.len() > MAX_ENDPOINTS {
        return Err((
            "endpoints".to_owned(),
            format!(
                "Too many: {}: must have at most {MAX_ENDPOINTS} items",
                endpoints.len()
            ),
        ));
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        let field = format!("endpoints[{i}].addresses");
        match endpoint.addresses.len() {
            0 => {
                return Err((
                    field,
                    "Required value: must contain at least 1 address".to_owned(),
                ));
            }
            n if n > MAX_ADDRESSES => {
                return Err((
                    field,
                    format!("Too many: {n}: must have at most {MAX_ADDRESSES} items"),
                ));
            }
            _ => {}
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            if !is_address(address_type, address) {
                return Err((
                    format!("{field}[{j}]"),
                    format!("Invalid value: \"{address}\": must be a valid {address_type} address"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_ports(ports: &[EndpointPort]) -> Result<(), Failure> {
    if ports.len() > MAX_PORTS {
        return Err((
            "ports".to_owned(),
            format!(
                "Too many: {}: must have at most {MAX_PORTS} items",
                ports.len()
            ),
        ));
    }
    let mut names = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        if let Some(number) = port.port
            && !(1..=65535).contains(&number)
        {
            return Err((
                format!("ports[{i}].port"),
                format!("Invalid value: {number}: must be between 1 and 65535, inclusive"),
            ));
        }
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            return Err((
                format!("ports[{i}].protocol"),
                format!("Unsupported value: \"{protocol}\": supported values: {PROTOCOLS:?}"),
            ));
        }
        let name = port.name.as_deref().unwrap_or_default();
        if names.contains(&name) {
            return Err((
                format!("ports[{i}].name"),
                format!("Duplicate value: \"{name}\""),
            ));
        }
        names.push(name);
    }
    Ok(())
}

/// The checks of the real server's validation that matter to clients of endpoint slices.
fn validate(slice: &EndpointSlice, previous: Option<&EndpointSlice>) -> Result<(), Failure> {
    let name = slice.metadata.name.as_deref().unwrap_or_default();
    if !is_dns_subdomain(name) {
        return Err((
            "metadata.name".to_owned(),
            format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ));
    }
    let address_type = slice.address_type.as_str();
    if let Some(before) = previous
        && before.address_type != address_type
    {
        return Err((
            "addressType".to_owned(),
            format!("Invalid value: \"{address_type}\": field is immutable"),
        ));
    }
    if !ADDRESS_TYPES.contains(&address_type) {
        return Err((
            "addressType".to_owned(),
            format!("Unsupported value: \"{address_type}\": supported values: {ADDRESS_TYPES:?}"),
        ));
    }
    validate_endpoints(address_type, slice.endpoints.as_deref().unwrap_or_default())?;
    validate_ports(slice.ports.as_deref().unwrap_or_default())
}

impl Kind for EndpointSlice {
    const GENERATION: bool = true;
    const RETURNS_DELETED_OBJECT: bool = false;

    fn collection(all: &Collections) -> &Collection<Self> {
        &all.endpoint_slices
    }

    fn collection_mut(all: &mut Collections) -> &mut Collection<Self> {
        &mut all.endpoint_slices
    }

    fn admit(&mut self, previous: Option<&Self>, _serials: &mut Serials) -> Result<(), ApiError> {
        for port in self.ports.iter_mut().flatten() {
            port.protocol.get_or_insert_with(|| "TCP".to_owned());
        }
        validate(self, previous).map_err(|(field, problem)| {
            let name = self.metadata.name.as_deref().unwrap_or_default();
            ApiError::invalid_of::<EndpointSlice>(name, &field, &problem)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn named(slice: EndpointSlice) -> EndpointSlice {
        let mut slice = slice;
        slice.metadata.name = Some("web-abcde".to_owned());
        slice
    }

    #[test]
    fn a_built_slice_is_valid_and_names_its_pods() {
        let endpoints = [
            SliceEndpoint {
                address: "10.0.0.1",
                ready: true,
                pod: Some("web-1"),
            },
            SliceEndpoint {
                address: "10.0.0.2",
                ready: false,
                pod: None,
            },
        ];
        let slice = named(endpoint_slice("shop", "web", &endpoints, 8080));
        assert_eq!(validate(&slice, None), Ok(()));
        let endpoints = slice.endpoints.as_deref().unwrap();
        let target = endpoints[0].target_ref.as_ref().unwrap();
        assert_eq!(
            (
                target.kind.as_deref(),
                target.name.as_deref(),
                target.namespace.as_deref()
            ),
            (Some("Pod"), Some("web-1"), Some("shop"))
        );
        assert!(endpoints[1].target_ref.is_none());
        assert_eq!(endpoints[1].conditions.as_ref().unwrap().ready, Some(false));
    }

    #[test]
    fn addresses_must_be_of_the_slice_type_and_the_type_is_immutable() {
        let bad = SliceEndpoint {
            address: "not-an-ip",
            ready: true,
            pod: None,
        };
        let slice = named(endpoint_slice("shop", "web", &[bad], 80));
        assert_eq!(
            validate(&slice, None).map_err(|e| e.0),
            Err("endpoints[0].addresses[0]".to_owned())
        );
        let good = named(endpoint_slice("shop", "web", &[], 80));
        let mut changed = good.clone();
        changed.address_type = "IPv6".to_owned();
        assert_eq!(
            validate(&changed, Some(&good)).map_err(|e| e.0),
            Err("addressType".to_owned())
        );
    }
}
