//! The fleet file: what the simulated world looks like when the clock starts.
//!
//! A fleet file is TOML with a strict schema: unknown keys are rejected, and every error names
//! the field path it is about (`groups[1].max_size: ...`). Parsing happens in two steps: serde
//! reads the file into `Raw*` structs that mirror it, then [`Fleet::from_toml`] checks the values
//! and builds the validated `*Spec` types the simulation starts from.
//!
//! ```toml
//! start = "2026-01-01T00:00:00Z"   # optional; RFC 3339
//!
//! [[groups]]
//! name = "api-asg"
//! min_size = 2
//! max_size = 12
//! desired_capacity = 3             # optional, default min_size
//! warmup = "90s"                   # optional, default "60s"
//!
//! [[services]]
//! name = "api-service"
//! group = "api-asg"
//! load_rps = 520
//! rps_per_instance = 200
//! base_latency_ms = 120
//!
//! [[containers]]
//! name = "web-1"
//! image = "localhost/busybox:local"
//! labels = { app = "web" }
//! state = "running"                # optional, default running
//! health = "healthy"               # optional, default healthy
//!
//! [[deployments]]
//! namespace = "shop"               # optional, default "default"
//! name = "checkout"
//! replicas = 3
//! rollout = "45s"                  # optional, default "30s"
//!
//! [[series]]
//! query = 'up{job="api"}'
//! labels = { job = "api" }
//! points = [[0, 1.0], [300, 0.0]]  # (seconds after start, value)
//!
//! [[dependencies]]                 # who calls whom, for the health graph
//! from = "web"                     # the caller: `<namespace>/<workload>`, or a bare workload
//!                                  #   name for namespace `default` (here `default/web`)
//! to = "shop/checkout"             # the callee, written the same way
//! rps = 40                         # optional: requests per second along the call, >= 0
//! error_ratio = 0.002              # optional: failed share of them, 0 to 1
//! ```
//!
//! A dependency's `from` and `to` are workloads as the health graph names them
//! (`service:<namespace>/<workload>`): a `[[services]]` entry is `default/<name>`, a deployment
//! `<namespace>/<name>`, containers the workload their labels name (by the graph's identity
//! rules, `default/<app>` for a plain `app` label). They are checked for their form only, not
//! against the rest of the file, since container workloads follow identity rules the file does
//! not hold: a key nothing else names is a workload only the dependency knows, as an external
//! service would be. A service does not depend on itself, and each `from`/`to` pair is listed
//! once. `rps = 0` reports a call whose traffic stopped, which the graph does not keep (as for a
//! mesh edge gone quiet).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use grace_executor::Labels;
use grace_executor::containers::{ContainerState, Health};
use grace_graph::NodeId;
use serde::Deserialize;

use crate::selector::{BuiltinMetric, Selector};

/// The fleet every dry-run uses unless it is given another: `playbooks/fleet.toml`.
const DEFAULT_FLEET: &str = include_str!("../../../playbooks/fleet.toml");

/// Where the virtual clock starts when the fleet file does not say: 2026-01-01T00:00:00Z.
pub const DEFAULT_START_MILLIS: u64 = 1_767_225_600_000;

/// How long a new instance is pending when its group does not say.
const DEFAULT_WARMUP: Duration = Duration::from_secs(60);

/// The namespace of a workload the fleet file names without one: a `[[services]]` entry, a
/// deployment without `namespace`, a bare dependency end.
pub const DEFAULT_NAMESPACE: &str = "default";

/// How long a deployment's rollout takes when it does not say.
const DEFAULT_ROLLOUT: Duration = Duration::from_secs(30);

/// The largest `max_size` a group may have: the simulation keeps every instance in memory.
pub const MAX_GROUP_SIZE: u32 = 10_000;

/// Why a fleet file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The file could not be read.
    #[error("cannot read the fleet file: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        message: String,
    },
    /// The file is not valid TOML.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A field is missing, unknown, of the wrong type or has a value that does not make sense.
    #[error("{field}: {message}")]
    Invalid {
        /// The field's path, e.g. `groups[1].max_size`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl FleetError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        FleetError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A group of instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// Group name, unique among groups.
    pub name: String,
    /// Smallest capacity the group allows.
    pub min_size: u32,
    /// Largest capacity the group allows.
    pub max_size: u32,
    /// Instances in service when the clock starts.
    pub desired_capacity: u32,
    /// How long a newly launched instance is pending before it is in service.
    pub warmup: Duration,
}

/// A service served by a group, with latency modelled from load over capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// Service name, unique among services.
    pub name: String,
    /// The group whose in-service instances serve it.
    pub group: String,
    /// Offered load, in requests per second.
    pub load_rps: f64,
    /// What one in-service instance serves, in requests per second.
    pub rps_per_instance: f64,
    /// p95 latency at low utilisation, in milliseconds.
    pub base_latency_ms: f64,
}

/// A container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Container name, unique among containers.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Labels.
    pub labels: Labels,
    /// Run state when the clock starts.
    pub state: ContainerState,
    /// Health when the clock starts; `none` means the container has no health check.
    pub health: Health,
}

/// A Kubernetes deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSpec {
    /// Namespace.
    pub namespace: String,
    /// Name, unique within its namespace.
    pub name: String,
    /// Replicas, all ready when the clock starts.
    pub replicas: u32,
    /// How long a rollout (scaling up or a restart) takes to complete.
    pub rollout: Duration,
}

/// A query the simulated metrics provider answers verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    /// The exact query text, e.g. real PromQL.
    pub query: String,
    /// What answers it.
    pub source: SeriesSource,
}

/// What answers a `[[series]]` query.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesSource {
    /// One series following a step function.
    Points {
        /// The series' labels.
        labels: Labels,
        /// `(seconds after start, value)`, strictly increasing in time; each value holds until
        /// the next point. Before the first point the series has no samples.
        points: Vec<(i64, f64)>,
    },
    /// A built-in metric selector, e.g. `service_latency_p95_ms{service="api-service"}`.
    SameAs(String),
}

/// A call from one workload to another, for the health graph: `from` depends on `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencySpec {
    /// The caller, a `service:<namespace>/<workload>` node.
    pub from: NodeId,
    /// The callee, a `service:<namespace>/<workload>` node.
    pub to: NodeId,
    /// Requests per second along the call (finite, not negative), if the file says.
    pub rps: Option<f64>,
    /// Failed share of those requests, 0 to 1, if the file says.
    pub error_ratio: Option<f64>,
}

/// A parsed and validated fleet description: the simulated world when the clock starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    start_millis: u64,
    groups: Vec<GroupSpec>,
    services: Vec<ServiceSpec>,
    containers: Vec<ContainerSpec>,
    deployments: Vec<DeploymentSpec>,
    series: Vec<SeriesSpec>,
    dependencies: Vec<DependencySpec>,
}

impl Fleet {
    /// Parses and validates a fleet file's text.
    pub fn from_toml(text: &str) -> Result<Fleet, FleetError> {
        let raw = parse_raw(text)?;
        raw.validate()
    }

    /// Reads, parses and validates a fleet file.
    ///
    /// Error messages do not repeat the file's path: the caller names the file once, as in
    /// ``fleet `fleet.toml`: groups[1].max_size: ...``.
    pub fn load(path: &Path) -> Result<Fleet, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|e| FleetError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Fleet::from_toml(&text)
    }

    /// The default fleet, `playbooks/fleet.toml`, compiled in.
    pub fn default_fleet() -> Fleet {
        // The file is part of this crate's build and a test parses it, so this cannot fail at
        // run time unless that test fails first.
        Fleet::from_toml(DEFAULT_FLEET).expect("playbooks/fleet.toml is a valid fleet file")
    }

    /// The text of the default fleet file.
    pub fn default_fleet_toml() -> &'static str {
        DEFAULT_FLEET
    }

    /// Where the virtual clock starts, in milliseconds since the Unix epoch.
    pub fn start_millis(&self) -> u64 {
        self.start_millis
    }

    /// The groups of instances, in file order.
    pub fn groups(&self) -> &[GroupSpec] {
        &self.groups
    }

    /// The services, in file order.
    pub fn services(&self) -> &[ServiceSpec] {
        &self.services
    }

    /// The containers, in file order.
    pub fn containers(&self) -> &[ContainerSpec] {
        &self.containers
    }

    /// The deployments, in file order.
    pub fn deployments(&self) -> &[DeploymentSpec] {
        &self.deployments
    }

    /// The fixed query answers, in file order.
    pub fn series(&self) -> &[SeriesSpec] {
        &self.series
    }

    /// The calls between workloads, in file order.
    pub fn dependencies(&self) -> &[DependencySpec] {
        &self.dependencies
    }
}

impl FromStr for Fleet {
    type Err = FleetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Fleet::from_toml(text)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    // A string, or a TOML datetime for those who leave the quotes off.
    start: Option<toml::Value>,
    #[serde(default)]
    groups: Vec<RawGroup>,
    #[serde(default)]
    services: Vec<RawService>,
    #[serde(default)]
    containers: Vec<RawContainer>,
    #[serde(default)]
    deployments: Vec<RawDeployment>,
    #[serde(default)]
    series: Vec<RawSeries>,
    #[serde(default)]
    dependencies: Vec<RawDependency>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    min_size: u32,
    max_size: u32,
    desired_capacity: Option<u32>,
    warmup: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    group: String,
    load_rps: f64,
    rps_per_instance: f64,
    base_latency_ms: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainer {
    name: String,
    image: String,
    #[serde(default)]
    labels: Labels,
    state: Option<ContainerState>,
    health: Option<Health>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployment {
    namespace: Option<String>,
    name: String,
    replicas: u32,
    rollout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    query: String,
    labels: Option<Labels>,
    points: Option<Vec<(i64, f64)>>,
    same_as: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDependency {
    from: String,
    to: String,
    rps: Option<f64>,
    error_ratio: Option<f64>,
}

fn parse_raw(text: &str) -> Result<RawFleet, FleetError> {
    let syntax = |e: toml::de::Error| {
        let (line, column) = e
            .span()
            .map_or((1, 1), |span| line_and_column(text, span.start));
        FleetError::Syntax {
            line,
            column,
            message: e.message().to_owned(),
        }
    };
    let deserializer = toml::Deserializer::parse(text).map_err(syntax)?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = if e.path().iter().next().is_none() {
            "fleet".to_owned()
        } else {
            e.path().to_string()
        };
        FleetError::invalid(field, e.inner().message())
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl RawFleet {
    fn validate(self) -> Result<Fleet, FleetError> {
        let start_millis = match &self.start {
            None => DEFAULT_START_MILLIS,
            Some(toml::Value::String(s)) => parse_start(s)?,
            Some(toml::Value::Datetime(d)) => parse_start(&d.to_string())?,
            Some(other) => {
                return Err(FleetError::invalid(
                    "start",
                    format!(
                        "expected an RFC 3339 time such as `2026-01-01T00:00:00Z`, found a {}",
                        other.type_str()
                    ),
                ));
            }
        };

        let mut groups = Vec::with_capacity(self.groups.len());
        let mut group_names = BTreeSet::new();
        for (i, g) in self.groups.into_iter().enumerate() {
            let at = |field: &str| format!("groups[{i}].{field}");
            check_name(&at("name"), &g.name)?;
            if !group_names.insert(g.name.clone()) {
                return Err(duplicate(&at("name"), "group", &g.name));
            }
            if g.max_size > MAX_GROUP_SIZE {
                return Err(FleetError::invalid(
                    at("max_size"),
                    format!(
                        "`{}` is above the simulation's limit of {MAX_GROUP_SIZE}",
                        g.max_size
                    ),
                ));
            }
            if g.max_size < g.min_size {
                return Err(FleetError::invalid(
                    at("max_size"),
                    format!("`{}` is below min_size `{}`", g.max_size, g.min_size),
                ));
            }
            let desired_capacity = g.desired_capacity.unwrap_or(g.min_size);
            if desired_capacity < g.min_size {
                return Err(FleetError::invalid(
                    at("desired_capacity"),
                    format!("`{desired_capacity}` is below min_size `{}`", g.min_size),
                ));
            }
            if desired_capacity > g.max_size {
                return Err(FleetError::invalid(
                    at("desired_capacity"),
                    format!("`{desired_capacity}` is above max_size `{}`", g.max_size),
                ));
            }
            let warmup = parse_duration(&at("warmup"), g.warmup.as_deref(), DEFAULT_WARMUP)?;
            groups.push(GroupSpec {
                name: g.name,
                min_size: g.min_size,
                max_size: g.max_size,
                desired_capacity,
                warmup,
            });
        }

        let mut services = Vec::with_capacity(self.services.len());
        let mut service_names = BTreeSet::new();
        for (i, s) in self.services.into_iter().enumerate() {
            let at = |field: &str| format!("services[{i}].{field}");
            check_name(&at("name"), &s.name)?;
            if !service_names.insert(s.name.clone()) {
                return Err(duplicate(&at("name"), "service", &s.name));
            }
            if !group_names.contains(&s.group) {
                return Err(FleetError::invalid(
                    at("group"),
                    format!("no group named `{}`", s.group),
                ));
            }
            check_number(&at("load_rps"), s.load_rps, false)?;
            check_number(&at("rps_per_instance"), s.rps_per_instance, true)?;
            check_number(&at("base_latency_ms"), s.base_latency_ms, true)?;
            services.push(ServiceSpec {
                name: s.name,
                group: s.group,
                load_rps: s.load_rps,
                rps_per_instance: s.rps_per_instance,
                base_latency_ms: s.base_latency_ms,
            });
        }

        let mut containers = Vec::with_capacity(self.containers.len());
        let mut container_names = BTreeSet::new();
        for (i, c) in self.containers.into_iter().enumerate() {
            let at = |field: &str| format!("containers[{i}].{field}");
            check_container_name(&at("name"), &c.name)?;
            if !container_names.insert(c.name.clone()) {
                return Err(duplicate(&at("name"), "container", &c.name));
            }
            if c.image.trim().is_empty() {
                return Err(FleetError::invalid(at("image"), "must not be empty"));
            }
            if c.labels.keys().any(|k| k.is_empty()) {
                return Err(FleetError::invalid(
                    at("labels"),
                    "label keys must not be empty",
                ));
            }
            containers.push(ContainerSpec {
                name: c.name,
                image: c.image,
                labels: c.labels,
                state: c.state.unwrap_or(ContainerState::Running),
                health: c.health.unwrap_or(Health::Healthy),
            });
        }

        let mut deployments = Vec::with_capacity(self.deployments.len());
        let mut deployment_names = BTreeSet::new();
        for (i, d) in self.deployments.into_iter().enumerate() {
            let at = |field: &str| format!("deployments[{i}].{field}");
            let namespace = d.namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
            check_kubernetes_name(&at("namespace"), &namespace)?;
            check_kubernetes_name(&at("name"), &d.name)?;
            if !deployment_names.insert((namespace.clone(), d.name.clone())) {
                return Err(FleetError::invalid(
                    at("name"),
                    format!(
                        "another deployment in namespace `{namespace}` is named `{}`",
                        d.name
                    ),
                ));
            }
            let rollout = parse_duration(&at("rollout"), d.rollout.as_deref(), DEFAULT_ROLLOUT)?;
            deployments.push(DeploymentSpec {
                namespace,
                name: d.name,
                replicas: d.replicas,
                rollout,
            });
        }

        let mut series = Vec::with_capacity(self.series.len());
        let mut queries = BTreeSet::new();
        for (i, s) in self.series.into_iter().enumerate() {
            let at = |field: &str| format!("series[{i}].{field}");
            let query = s.query.trim().to_owned();
            if query.is_empty() {
                return Err(FleetError::invalid(at("query"), "must not be empty"));
            }
            if !queries.insert(query.clone()) {
                return Err(FleetError::invalid(
                    at("query"),
                    format!("another series answers `{query}`"),
                ));
            }
            let source = match (s.same_as, s.labels, s.points) {
                (Some(same_as), None, None) => {
                    check_same_as(&at("same_as"), &same_as)?;
                    SeriesSource::SameAs(same_as)
                }
                (Some(_), _, _) => {
                    return Err(FleetError::invalid(
                        at("same_as"),
                        "a series has either `same_as` or `labels` and `points`, not both",
                    ));
                }
                (None, _, None) => {
                    return Err(FleetError::invalid(
                        at("points"),
                        "missing: a series needs `points` (or `same_as`)",
                    ));
                }
                (None, labels, Some(points)) => {
                    check_points(&at("points"), &points)?;
                    SeriesSource::Points {
                        labels: labels.unwrap_or_default(),
                        points,
                    }
                }
            };
            series.push(SeriesSpec { query, source });
        }

        let mut dependencies = Vec::with_capacity(self.dependencies.len());
        let mut pairs = BTreeSet::new();
        for (i, d) in self.dependencies.into_iter().enumerate() {
            let at = |field: &str| format!("dependencies[{i}].{field}");
            let from = workload(&at("from"), &d.from)?;
            let to = workload(&at("to"), &d.to)?;
            if from == to {
                return Err(FleetError::invalid(
                    at("to"),
                    format!(
                        "`{}` is the caller too: a service does not call itself",
                        d.to
                    ),
                ));
            }
            if let Some(rps) = d.rps {
                check_number(&at("rps"), rps, false)?;
            }
            if let Some(ratio) = d.error_ratio {
                check_number(&at("error_ratio"), ratio, false)?;
                if ratio > 1.0 {
                    return Err(FleetError::invalid(
                        at("error_ratio"),
                        format!("`{ratio}` is above 1: a ratio is 0 to 1"),
                    ));
                }
            }
            if !pairs.insert((from.clone(), to.clone())) {
                return Err(FleetError::invalid(
                    at("to"),
                    format!(
                        "another dependency goes from `{}` to `{}`",
                        from.key(),
                        to.key()
                    ),
                ));
            }
            dependencies.push(DependencySpec {
                from,
                to,
                rps: d.rps,
                error_ratio: d.error_ratio,
            });
        }

        Ok(Fleet {
            start_millis,
            groups,
            services,
            containers,
            deployments,
            series,
            dependencies,
        })
    }
}

fn duplicate(field: &str, kind: &str, name: &str) -> FleetError {
    FleetError::invalid(field, format!("another {kind} is named `{name}`"))
}

fn parse_start(text: &str) -> Result<u64, FleetError> {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            FleetError::invalid(
                "start",
                format!("`{text}` is not an RFC 3339 time such as `2026-01-01T00:00:00Z` ({e})"),
            )
        })?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| FleetError::invalid("start", format!("`{text}` is before 1970")))
}

fn parse_duration(
    field: &str,
    text: Option<&str>,
    default: Duration,
) -> Result<Duration, FleetError> {
    let Some(text) = text else {
        return Ok(default);
    };
    humantime::parse_duration(text).map_err(|e| {
        FleetError::invalid(
            field,
            format!("`{text}` is not a duration such as `90s` or `5m` ({e})"),
        )
    })
}

fn check_name(field: &str, name: &str) -> Result<(), FleetError> {
    if name.trim().is_empty() {
        return Err(FleetError::invalid(field, "must not be empty"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FleetError::invalid(
            field,
            format!("`{name}` contains whitespace"),
        ));
    }
    Ok(())
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn check_container_name(field: &str, name: &str) -> Result<(), FleetError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(FleetError::invalid(
            field,
            format!(
                "`{name}` is not a container name: letters, digits, `_`, `.` and `-`, starting with a letter or digit"
            ),
        ))
    }
}

/// Kubernetes' rule for object names (RFC 1123 subdomains): lowercase letters, digits, `-` and
/// `.`, starting and ending with a letter or digit, at most 253 characters.
fn check_kubernetes_name(field: &str, name: &str) -> Result<(), FleetError> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = name.len() <= 253
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(FleetError::invalid(
            field,
            format!(
                "`{name}` is not a Kubernetes name: lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit"
            ),
        ))
    }
}

/// A dependency end: `<namespace>/<workload>`, or a bare workload in [`DEFAULT_NAMESPACE`].
fn workload(field: &str, text: &str) -> Result<NodeId, FleetError> {
    if text.trim().is_empty() {
        return Err(FleetError::invalid(field, "must not be empty"));
    }
    let (namespace, name) = text.split_once('/').unwrap_or((DEFAULT_NAMESPACE, text));
    NodeId::service(namespace, name).map_err(|_| {
        FleetError::invalid(
            field,
            format!(
                "`{}` is not a workload: `<namespace>/<workload>`, or a workload alone for namespace `{DEFAULT_NAMESPACE}`, each 1 to 253 letters, digits, `-`, `_` or `.`",
                text.escape_debug()
            ),
        )
    })
}

fn check_number(field: &str, value: f64, positive: bool) -> Result<(), FleetError> {
    if !value.is_finite() {
        return Err(FleetError::invalid(
            field,
            format!("`{value}` is not a finite number"),
        ));
    }
    if positive && value <= 0.0 {
        return Err(FleetError::invalid(
            field,
            format!("`{value}` must be greater than 0"),
        ));
    }
    if value < 0.0 {
        return Err(FleetError::invalid(field, format!("`{value}` is negative")));
    }
    Ok(())
}

fn check_points(field: &str, points: &[(i64, f64)]) -> Result<(), FleetError> {
    if points.is_empty() {
        return Err(FleetError::invalid(field, "must have at least one point"));
    }
    for (i, pair) in points.windows(2).enumerate() {
        if pair[1].0 <= pair[0].0 {
            return Err(FleetError::invalid(
                format!("{field}[{}]", i + 1),
                format!(
                    "time `{}` is not after the previous point's `{}`",
                    pair[1].0, pair[0].0
                ),
            ));
        }
    }
    if let Some(i) = points.iter().position(|(_, v)| !v.is_finite()) {
        return Err(FleetError::invalid(
            format!("{field}[{i}]"),
            format!("`{}` is not a finite number", points[i].1),
        ));
    }
    Ok(())
}

fn check_same_as(field: &str, text: &str) -> Result<(), FleetError> {
    let selector =
        Selector::parse(text).map_err(|e| FleetError::invalid(field, format!("`{text}`: {e}")))?;
    if BuiltinMetric::from_name(&selector.metric).is_none() {
        return Err(FleetError::invalid(
            field,
            format!(
                "unknown metric `{}`; known metrics: {}",
                selector.metric,
                BuiltinMetric::known_names()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[groups]]
name = "api-asg"
min_size = 2
max_size = 12
desired_capacity = 3
"#;

    fn invalid(text: &str) -> (String, String) {
        match Fleet::from_toml(text) {
            Err(FleetError::Invalid { field, message }) => (field, message),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn default_fleet_parses() {
        let fleet = Fleet::from_toml(DEFAULT_FLEET).expect("default fleet parses");
        assert_eq!(fleet, Fleet::default_fleet());
        assert_eq!(fleet.start_millis(), DEFAULT_START_MILLIS);
        let names: Vec<_> = fleet.groups().iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["api-asg", "batch-asg"]);
        assert_eq!(fleet.groups()[0].warmup, Duration::from_secs(90));
        assert_eq!(fleet.services()[0].group, "api-asg");
        assert_eq!(fleet.containers().len(), 3);
        assert_eq!(fleet.deployments().len(), 2);
        assert!(matches!(fleet.series()[0].source, SeriesSource::SameAs(_)));
        let calls: Vec<_> = fleet
            .dependencies()
            .iter()
            .map(|d| (d.from.key(), d.to.key()))
            .collect();
        assert_eq!(
            calls,
            [
                ("default/web", "default/api-service"),
                ("default/api-service", "default/cache"),
                ("shop/checkout", "shop/cart"),
            ]
        );
    }

    #[test]
    fn omitted_fields_take_documented_defaults() {
        let fleet = Fleet::from_toml(
            r#"
[[groups]]
name = "g"
min_size = 2
max_size = 4

[[containers]]
name = "c"
image = "i"

[[deployments]]
name = "d"
replicas = 1
"#,
        )
        .expect("valid");
        assert_eq!(fleet.start_millis(), DEFAULT_START_MILLIS);
        assert_eq!(fleet.groups()[0].desired_capacity, 2);
        assert_eq!(fleet.groups()[0].warmup, DEFAULT_WARMUP);
        assert_eq!(fleet.containers()[0].state, ContainerState::Running);
        assert_eq!(fleet.containers()[0].health, Health::Healthy);
        assert_eq!(fleet.deployments()[0].namespace, "default");
        assert_eq!(fleet.deployments()[0].rollout, DEFAULT_ROLLOUT);
    }

    #[test]
    fn start_is_read_as_rfc3339() {
        let fleet = Fleet::from_toml("start = \"2026-01-01T01:00:00+01:00\"").expect("valid");
        assert_eq!(fleet.start_millis(), DEFAULT_START_MILLIS);
        let fleet = Fleet::from_toml("start = 2026-01-01T00:00:01Z").expect("valid");
        assert_eq!(fleet.start_millis(), DEFAULT_START_MILLIS + 1_000);
        let (field, message) = invalid("start = \"yesterday\"");
        assert_eq!(field, "start");
        assert!(message.contains("`yesterday`"), "{message}");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_path() {
        let (field, message) = invalid(&format!("{MINIMAL}colour = \"red\"\n"));
        assert_eq!(field, "groups[0].colour");
        assert!(message.contains("unknown field `colour`"), "{message}");

        let (field, _) = invalid("flavour = 1\n");
        assert_eq!(field, "flavour");
    }

    #[test]
    fn duplicate_group_name_is_rejected() {
        let (field, message) = invalid(&format!("{MINIMAL}{MINIMAL}"));
        assert_eq!(field, "groups[1].name");
        assert_eq!(message, "another group is named `api-asg`");
    }

    #[test]
    fn duplicate_deployment_name_is_rejected_only_within_a_namespace() {
        let two = |ns2: &str| {
            format!(
                "[[deployments]]\nnamespace = \"shop\"\nname = \"cart\"\nreplicas = 1\n\
                 [[deployments]]\nnamespace = \"{ns2}\"\nname = \"cart\"\nreplicas = 1\n"
            )
        };
        assert!(Fleet::from_toml(&two("other")).is_ok());
        let (field, message) = invalid(&two("shop"));
        assert_eq!(field, "deployments[1].name");
        assert!(message.contains("namespace `shop`"), "{message}");
    }

    #[test]
    fn max_size_below_min_size_is_rejected() {
        let text = format!(
            "{MINIMAL}\n[[groups]]\nname = \"b\"\nmin_size = 5\nmax_size = 3\ndesired_capacity = 4\n"
        );
        let error = Fleet::from_toml(&text).expect_err("invalid");
        assert_eq!(
            error.to_string(),
            "groups[1].max_size: `3` is below min_size `5`"
        );
    }

    #[test]
    fn desired_capacity_outside_the_size_limits_is_rejected() {
        let (field, message) =
            invalid(&MINIMAL.replace("desired_capacity = 3", "desired_capacity = 13"));
        assert_eq!(field, "groups[0].desired_capacity");
        assert_eq!(message, "`13` is above max_size `12`");
    }

    #[test]
    fn service_naming_a_missing_group_is_rejected() {
        let text = format!(
            "{MINIMAL}\n[[services]]\nname = \"s\"\ngroup = \"api\"\nload_rps = 1\nrps_per_instance = 1\nbase_latency_ms = 1\n"
        );
        let error = Fleet::from_toml(&text).expect_err("invalid");
        assert_eq!(error.to_string(), "services[0].group: no group named `api`");
    }

    #[test]
    fn service_with_zero_capacity_per_instance_is_rejected() {
        let text = format!(
            "{MINIMAL}\n[[services]]\nname = \"s\"\ngroup = \"api-asg\"\nload_rps = 1\nrps_per_instance = 0\nbase_latency_ms = 1\n"
        );
        let (field, _) = invalid(&text);
        assert_eq!(field, "services[0].rps_per_instance");
    }

    #[test]
    fn bad_duration_is_rejected_with_its_path() {
        let (field, message) = invalid(&format!("{MINIMAL}warmup = \"ninety\"\n"));
        assert_eq!(field, "groups[0].warmup");
        assert!(
            message.starts_with("`ninety` is not a duration"),
            "{message}"
        );
    }

    #[test]
    fn wrong_type_is_rejected_with_its_path() {
        let (field, message) = invalid(&MINIMAL.replace("max_size = 12", "max_size = \"12\""));
        assert_eq!(field, "groups[0].max_size");
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn unknown_container_state_is_rejected() {
        let (field, message) =
            invalid("[[containers]]\nname = \"c\"\nimage = \"i\"\nstate = \"asleep\"\n");
        assert_eq!(field, "containers[0].state");
        assert!(message.contains("`asleep`"), "{message}");
    }

    #[test]
    fn bad_container_and_deployment_names_are_rejected() {
        let (field, _) = invalid("[[containers]]\nname = \"-web\"\nimage = \"i\"\n");
        assert_eq!(field, "containers[0].name");
        let (field, _) =
            invalid("[[deployments]]\nnamespace = \"Shop\"\nname = \"d\"\nreplicas = 1\n");
        assert_eq!(field, "deployments[0].namespace");
    }

    #[test]
    fn series_points_must_increase_in_time() {
        let (field, message) =
            invalid("[[series]]\nquery = \"up\"\npoints = [[0, 1.0], [0, 2.0]]\n");
        assert_eq!(field, "series[0].points[1]");
        assert!(message.contains("not after"), "{message}");
    }

    #[test]
    fn series_alias_must_name_a_builtin_metric() {
        let (field, message) = invalid("[[series]]\nquery = \"x\"\nsame_as = \"cpu_seconds\"\n");
        assert_eq!(field, "series[0].same_as");
        assert!(
            message.contains("unknown metric `cpu_seconds`"),
            "{message}"
        );
    }

    #[test]
    fn series_alias_and_points_are_exclusive() {
        let (field, _) = invalid(
            "[[series]]\nquery = \"x\"\nsame_as = \"group_in_service\"\npoints = [[0, 1.0]]\n",
        );
        assert_eq!(field, "series[0].same_as");
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let error = Fleet::from_toml("[[groups]]\nname = \n").expect_err("invalid");
        match error {
            FleetError::Syntax { line, .. } => assert_eq!(line, 2),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn load_reads_and_validates_a_file() {
        let dir = std::env::temp_dir().join(format!("grace-sim-fleet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("fleet.toml");
        std::fs::write(&path, MINIMAL).expect("write");
        assert_eq!(
            Fleet::load(&path).expect("valid").groups()[0].name,
            "api-asg"
        );
        std::fs::write(&path, "bogus = 1\n").expect("write");
        let invalid = Fleet::load(&path).expect_err("invalid");
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            invalid.to_string().starts_with("bogus: unknown field"),
            "{invalid}"
        );
        let missing = Fleet::load(&path).expect_err("removed");
        assert!(matches!(missing, FleetError::Read { .. }), "{missing:?}");
    }
}
