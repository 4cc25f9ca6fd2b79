//! The actions policies talk about: one per capability function, with the resource kind each
//! acts on and the action groups it belongs to (mirroring `grace.cedarschema`).

use serde::{Deserialize, Serialize};

/// What an action acts on; each kind is a Cedar entity type `Grace::<Kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    /// An Auto Scaling group (`Grace::Group`).
    Group,
    /// One container (`Grace::Container`).
    Container,
    /// The containers a label selector picks (`Grace::Service`).
    Service,
    /// A Kubernetes deployment (`Grace::Deployment`).
    Deployment,
    /// A metrics query (`Grace::Query`).
    Query,
}

impl ResourceKind {
    /// Every kind.
    pub const ALL: [ResourceKind; 5] = [
        ResourceKind::Group,
        ResourceKind::Container,
        ResourceKind::Service,
        ResourceKind::Deployment,
        ResourceKind::Query,
    ];

    /// The lowercase name used in configuration and in change-history keys (`group`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::Group => "group",
            ResourceKind::Container => "container",
            ResourceKind::Service => "service",
            ResourceKind::Deployment => "deployment",
            ResourceKind::Query => "query",
        }
    }

    /// The Cedar entity type, e.g. `Grace::Group`.
    pub fn cedar_type(self) -> &'static str {
        match self {
            ResourceKind::Group => "Grace::Group",
            ResourceKind::Container => "Grace::Container",
            ResourceKind::Service => "Grace::Service",
            ResourceKind::Deployment => "Grace::Deployment",
            ResourceKind::Query => "Grace::Query",
        }
    }
}

/// A capability function, as policies name it: `Grace::Action::"scaling::SetDesiredCapacity"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Action {
    /// `scaling.describe-group`.
    #[serde(rename = "scaling::DescribeGroup")]
    DescribeGroup,
    /// `scaling.set-desired-capacity`.
    #[serde(rename = "scaling::SetDesiredCapacity")]
    SetDesiredCapacity,
    /// `scaling.wait-in-service`.
    #[serde(rename = "scaling::WaitInService")]
    WaitInService,
    /// `containers.list`.
    #[serde(rename = "containers::List")]
    ListContainers,
    /// `containers.logs`.
    #[serde(rename = "containers::Logs")]
    ContainerLogs,
    /// `containers.restart`.
    #[serde(rename = "containers::Restart")]
    RestartContainer,
    /// `containers.start`.
    #[serde(rename = "containers::Start")]
    StartContainer,
    /// `containers.stop`.
    #[serde(rename = "containers::Stop")]
    StopContainer,
    /// `containers.scale`.
    #[serde(rename = "containers::Scale")]
    ScaleContainers,
    /// `kubernetes.get-deployment`.
    #[serde(rename = "kubernetes::GetDeployment")]
    GetDeployment,
    /// `kubernetes.scale-deployment`.
    #[serde(rename = "kubernetes::ScaleDeployment")]
    ScaleDeployment,
    /// `kubernetes.rollout-restart`.
    #[serde(rename = "kubernetes::RolloutRestart")]
    RolloutRestart,
    /// `kubernetes.wait-for-rollout`.
    #[serde(rename = "kubernetes::WaitForRollout")]
    WaitForRollout,
    /// `metrics.query`.
    #[serde(rename = "metrics::Query")]
    Query,
    /// `metrics.query-range`.
    #[serde(rename = "metrics::QueryRange")]
    QueryRange,
}

/// (action, WIT interface, WIT function, Cedar action id, resource kind, change?, groups).
type Row = (
    Action,
    &'static str,
    &'static str,
    &'static str,
    ResourceKind,
    bool,
    &'static [&'static str],
);

#[rustfmt::skip]
const TABLE: [Row; 15] = {
    use Action as A;
    use ResourceKind as R;
    [
        (A::DescribeGroup, "scaling", "describe-group", "scaling::DescribeGroup", R::Group, false, &["read", "scaling"]),
        (A::SetDesiredCapacity, "scaling", "set-desired-capacity", "scaling::SetDesiredCapacity", R::Group, true, &["change", "capacity", "scaling"]),
        (A::WaitInService, "scaling", "wait-in-service", "scaling::WaitInService", R::Group, false, &["read", "scaling"]),
        (A::ListContainers, "containers", "list", "containers::List", R::Service, false, &["read", "containers"]),
        (A::ContainerLogs, "containers", "logs", "containers::Logs", R::Container, false, &["read", "containers"]),
        (A::RestartContainer, "containers", "restart", "containers::Restart", R::Container, true, &["change", "restart", "containers"]),
        (A::StartContainer, "containers", "start", "containers::Start", R::Container, true, &["change", "containers"]),
        (A::StopContainer, "containers", "stop", "containers::Stop", R::Container, true, &["change", "containers"]),
        (A::ScaleContainers, "containers", "scale", "containers::Scale", R::Service, true, &["change", "capacity", "containers"]),
        (A::GetDeployment, "kubernetes", "get-deployment", "kubernetes::GetDeployment", R::Deployment, false, &["read", "kubernetes"]),
        (A::ScaleDeployment, "kubernetes", "scale-deployment", "kubernetes::ScaleDeployment", R::Deployment, true, &["change", "capacity", "kubernetes"]),
        (A::RolloutRestart, "kubernetes", "rollout-restart", "kubernetes::RolloutRestart", R::Deployment, true, &["change", "restart", "kubernetes"]),
        (A::WaitForRollout, "kubernetes", "wait-for-rollout", "kubernetes::WaitForRollout", R::Deployment, false, &["read", "kubernetes"]),
        (A::Query, "metrics", "query", "metrics::Query", R::Query, false, &["read", "metrics"]),
        (A::QueryRange, "metrics", "query-range", "metrics::QueryRange", R::Query, false, &["read", "metrics"]),
    ]
};

impl Action {
    /// Every action, in a fixed order ([`Action::index`]).
    pub const ALL: [Action; 15] = {
        let mut all = [Action::DescribeGroup; 15];
        let mut i = 0;
        while i < 15 {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    fn row(self) -> &'static Row {
        &TABLE[self.index()]
    }

    /// Position in [`Action::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The action of a host call, from its WIT interface and function (`scaling`,
    /// `set-desired-capacity`); `None` for a function the trust core does not know.
    pub fn from_call(interface: &str, function: &str) -> Option<Action> {
        TABLE
            .iter()
            .find(|r| r.1 == interface && r.2 == function)
            .map(|r| r.0)
    }

    /// The action named by its Cedar id, e.g. `containers::Restart`.
    pub fn from_cedar_id(id: &str) -> Option<Action> {
        TABLE.iter().find(|r| r.3 == id).map(|r| r.0)
    }

    /// The WIT interface, e.g. `scaling`.
    pub fn interface(self) -> &'static str {
        self.row().1
    }

    /// The WIT function, e.g. `set-desired-capacity`.
    pub fn function(self) -> &'static str {
        self.row().2
    }

    /// The Cedar action id, e.g. `scaling::SetDesiredCapacity`.
    pub fn cedar_id(self) -> &'static str {
        self.row().3
    }

    /// The kind of resource it acts on.
    pub fn resource_kind(self) -> ResourceKind {
        self.row().4
    }

    /// Whether it changes the world (reads are never checked by guardrails and carry no risk).
    pub fn is_change(self) -> bool {
        self.row().5
    }

    /// The action groups it is in, e.g. `["change", "capacity", "scaling"]`.
    pub fn groups(self) -> &'static [&'static str] {
        self.row().6
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.cedar_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_declaration_order() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.0.index(), i, "{}", row.3);
        }
    }

    #[test]
    fn serde_names_are_the_cedar_ids() {
        for a in Action::ALL {
            let json = serde_json::to_value(a).unwrap_or_default();
            assert_eq!(json, serde_json::Value::String(a.cedar_id().to_owned()));
        }
    }
}
