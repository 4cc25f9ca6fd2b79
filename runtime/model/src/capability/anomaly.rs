//! The `anomaly` interface: the host's anomaly scores and forecasts of metric series, read only,
//! granted like metrics queries (the series must be one `[grants.metrics]` grants).

use super::{Effect, Function, Governed, GrantRule, Interface, ResourceKind};

/// The interface and its functions, in WIT order.
pub static INTERFACE: Interface = Interface {
    name: "anomaly",
    functions: &[&SCORE, &FORECAST],
};

/// `anomaly.score`.
pub static SCORE: Function = Function {
    interface: "anomaly",
    name: "score",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "anomaly::Score",
        resource: ResourceKind::Query,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Metrics,
};

/// `anomaly.forecast`.
pub static FORECAST: Function = Function {
    interface: "anomaly",
    name: "forecast",
    effect: Effect::Read,
    governed: Some(Governed {
        cedar_id: "anomaly::Forecast",
        resource: ResourceKind::Query,
        groups: &[],
    }),
    lock: None,
    grant: GrantRule::Metrics,
};
