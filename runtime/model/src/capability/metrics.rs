//! The `metrics` interface: Metric queries (Prometheus, or the simulated fleet's series).

use super::{Effect, Function, Governed, GrantRule, Interface, ResourceKind};

/// The interface and its functions, in WIT order.
pub static INTERFACE: Interface = Interface {
    name: "metrics",
    functions: &[&QUERY, &QUERY_RANGE],
};

/// `metrics.query`.
pub static QUERY: Function = Function {
    interface: "metrics",
    name: "query",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "metrics::Query",
        resource: ResourceKind::Query,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Metrics,
};

/// `metrics.query-range`.
pub static QUERY_RANGE: Function = Function {
    interface: "metrics",
    name: "query-range",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "metrics::QueryRange",
        resource: ResourceKind::Query,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Metrics,
};
