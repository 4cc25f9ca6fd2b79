//! The providers runs act through, built from configuration in one place: the simulation (with
//! `--simulate`, named `sim`, serving every capability), the provider of each kind section
//! (`[aws]` is `aws`, `[docker]` is `docker`, `[kubernetes]` is `kubernetes`, `prometheus = URL`
//! is `prometheus`), and every provider a `[[providers]]` entry defines; then the routes of
//! `[[providers]]` (see [`grace_executor::routing`] for the format and its rules).
//!
//! A kind section's provider takes its capability over from the simulation (it becomes the
//! default), unless an entry says `default = true` for another.

use std::collections::BTreeMap;
use std::sync::Arc;

use grace_executor::routing::{Offered, ProviderConfig, Routing, RoutingError};
use grace_executor::{Capability, Executors};
use grace_sim::Simulation;
use serde::Deserialize;

use crate::app::StartError;
use crate::config::{ConfigError, ServeConfig};
use crate::graph::discovery::Provider as Discoverable;

/// One `[[providers]]` entry, its `[providers.settings]` read by its kind.
pub type ProviderSection = ProviderConfig<toml::Table>;

/// The kinds a `[[providers]]` entry may define, and the capability each serves.
const KINDS: [(&str, Capability); 4] = [
    ("aws", Capability::Scaling),
    ("docker", Capability::Containers),
    ("kubernetes", Capability::Kubernetes),
    ("prometheus", Capability::Metrics),
];

/// `[providers.settings]` of a `prometheus` provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrometheusSettings {
    /// The base URL.
    url: String,
}

/// What [`connect`] built.
pub(crate) struct Connected {
    /// Every provider, routed.
    pub executors: Executors,
    /// Each capability's providers, by name, described for `/healthz`.
    pub descriptions: BTreeMap<&'static str, BTreeMap<String, String>>,
    /// The CloudWatch client of `[aws]`, for CloudWatch sources.
    pub cloudwatch: Option<grace_aws::CloudWatch>,
    /// Every real provider by name, for the health graph's discovery.
    pub discoverable: Vec<(String, Discoverable)>,
}

fn invalid(field: impl Into<String>) -> impl FnOnce(String) -> StartError {
    let field = field.into();
    move |message| routing_error(RoutingError { field, message })
}

fn routing_error(e: RoutingError) -> StartError {
    StartError::Config(ConfigError::Invalid {
        field: "providers",
        message: e.to_string(),
    })
}

/// The settings of entry `index`, read as its kind's.
fn settings<T: serde::de::DeserializeOwned>(
    entry: &ProviderSection,
    index: usize,
) -> Result<T, StartError> {
    let table = entry.settings.clone().unwrap_or_default();
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            invalid(format!("providers[{index}].settings"))(e.to_string())
        })
}

/// Builds the providers and their routes. `sim` is the simulated fleet, in simulation.
pub(crate) async fn connect(
    config: &ServeConfig,
    sim: Option<&Simulation>,
) -> Result<Connected, StartError> {
    let mut executors = match sim {
        Some(sim) => sim.executors(),
        None => Executors::none(Arc::new(grace_executor::SystemClock)),
    };
    let mut descriptions: BTreeMap<&'static str, BTreeMap<String, String>> = Capability::ALL
        .into_iter()
        .map(|c| (c.as_str(), BTreeMap::new()))
        .collect();
    let mut offered = Offered {
        kinds: KINDS.to_vec(),
        ..Offered::default()
    };
    let mut offer = |name: &str, capability: Capability, description: String, default: bool| {
        offered
            .providers
            .entry(name.to_owned())
            .or_default()
            .push(capability);
        if default {
            offered.defaults.insert(capability, name.to_owned());
        }
        if let Some(d) = descriptions.get_mut(capability.as_str()) {
            d.insert(name.to_owned(), description);
        }
    };
    if sim.is_some() {
        for capability in Capability::ALL {
            offer(grace_sim::PROVIDER, capability, "simulated".into(), true);
        }
    }
    let section = |field: &'static str| {
        move |message: String| StartError::Config(ConfigError::Invalid { field, message })
    };
    let mut discoverable = Vec::new();
    if let Some(url) = &config.prometheus {
        let (prometheus, description) = prometheus(config, url).map_err(section("prometheus"))?;
        discoverable.push((
            "prometheus".to_owned(),
            Discoverable::Prometheus(prometheus.clone()),
        ));
        executors.metrics.insert("prometheus", prometheus);
        offer("prometheus", Capability::Metrics, description, true);
    }
    if let Some(settings) = &config.docker {
        let (docker, description) = docker(settings).await.map_err(section("docker"))?;
        discoverable.push(("docker".to_owned(), Discoverable::Docker(docker.clone())));
        executors.containers.insert("docker", docker);
        offer("docker", Capability::Containers, description, true);
    }
    if let Some(settings) = &config.kubernetes {
        let (kube, description) = kubernetes(settings).await.map_err(section("kubernetes"))?;
        discoverable.push((
            "kubernetes".to_owned(),
            Discoverable::Kubernetes(kube.clone()),
        ));
        executors.kubernetes.insert("kubernetes", kube);
        offer("kubernetes", Capability::Kubernetes, description, true);
    }
    let mut cloudwatch = None;
    if let Some(settings) = &config.aws {
        let (scaling, watch, description) = aws(settings).await.map_err(section("aws"))?;
        discoverable.push(("aws".to_owned(), Discoverable::Aws(scaling.clone())));
        executors.scaling.insert("aws", scaling);
        cloudwatch = Some(watch);
        offer("aws", Capability::Scaling, description, true);
    }
    let routing = Routing::compile(&config.providers, &offered).map_err(routing_error)?;
    for defined in &routing.defined {
        let entry = config.providers.get(defined.index).ok_or_else(|| {
            StartError::Config(ConfigError::invalid(
                "providers",
                "a defined provider has no entry",
            ))
        })?;
        let at = format!("providers[{}].settings", defined.index);
        let name = defined.name.as_str();
        let description = match defined.kind.as_str() {
            "aws" => {
                let s: grace_aws::AwsSettings = settings(entry, defined.index)?;
                let (scaling, _, description) = aws(&s).await.map_err(invalid(at))?;
                discoverable.push((name.to_owned(), Discoverable::Aws(scaling.clone())));
                executors.scaling.insert(name, scaling);
                description
            }
            "docker" => {
                let s: grace_docker::DockerSettings = settings(entry, defined.index)?;
                let (docker, description) = docker(&s).await.map_err(invalid(at))?;
                discoverable.push((name.to_owned(), Discoverable::Docker(docker.clone())));
                executors.containers.insert(name, docker);
                description
            }
            "kubernetes" => {
                let s: grace_kubernetes::KubeSettings = settings(entry, defined.index)?;
                let (kube, description) = kubernetes(&s).await.map_err(invalid(at))?;
                discoverable.push((name.to_owned(), Discoverable::Kubernetes(kube.clone())));
                executors.kubernetes.insert(name, kube);
                description
            }
            "prometheus" => {
                let s: PrometheusSettings = settings(entry, defined.index)?;
                let (prometheus, description) = prometheus(config, &s.url).map_err(invalid(at))?;
                discoverable.push((
                    name.to_owned(),
                    Discoverable::Prometheus(prometheus.clone()),
                ));
                executors.metrics.insert(name, prometheus);
                description
            }
            other => {
                return Err(invalid(format!("providers[{}].kind", defined.index))(
                    format!("`{other}` is not a provider kind"),
                ));
            }
        };
        if let Some(d) = descriptions.get_mut(defined.capability.as_str()) {
            d.insert(defined.name.clone(), description);
        }
        tracing::info!(provider = %defined.name, capability = %defined.capability, "provider configured");
    }
    install_routes(&mut executors, routing)?;
    Ok(Connected {
        executors,
        descriptions,
        cloudwatch,
        discoverable,
    })
}

/// The providers of `config` for one run outside the server (`grace run`): the real ones
/// only, routed as `grace serve` routes them, and each capability's described.
pub async fn connect_for_one_run(
    config: &ServeConfig,
) -> Result<(Executors, BTreeMap<&'static str, BTreeMap<String, String>>), StartError> {
    if !config.has_providers() {
        return Err(StartError::NoProviders);
    }
    let connected = connect(config, None).await?;
    Ok((connected.executors, connected.descriptions))
}

/// Gives each capability its routes, resolved with the project's one glob.
fn install_routes(executors: &mut Executors, mut routing: Routing) -> Result<(), StartError> {
    let mut take = |c: Capability| routing.routes.remove(&c).unwrap_or_default();
    let unknown = |e: grace_executor::providers::UnknownProvider| {
        StartError::Config(ConfigError::invalid("providers", e.to_string()))
    };
    executors
        .scaling
        .set_routes(take(Capability::Scaling))
        .map_err(unknown)?;
    executors
        .containers
        .set_routes(take(Capability::Containers))
        .map_err(unknown)?;
    executors
        .kubernetes
        .set_routes(take(Capability::Kubernetes))
        .map_err(unknown)?;
    executors
        .metrics
        .set_routes(take(Capability::Metrics))
        .map_err(unknown)?;
    Ok(())
}

type Built<T> = (Arc<T>, String);

fn prometheus(
    config: &ServeConfig,
    url: &str,
) -> Result<Built<grace_prometheus::PrometheusMetrics>, String> {
    // Real metrics whatever else is simulated: on a virtual run clock, Prometheus evaluates
    // instant queries at its own now.
    let prometheus = grace_prometheus::PrometheusMetrics::new(url)?
        .evaluate_at_server_time(config.simulate)
        .with_max_response_bytes(config.limits.run.max_response_bytes);
    tracing::info!(url = %prometheus.base_url(), "metrics queries go to Prometheus");
    let description = format!("prometheus {}", prometheus.base_url());
    Ok((Arc::new(prometheus), description))
}

async fn docker(
    settings: &grace_docker::DockerSettings,
) -> Result<Built<grace_docker::Docker>, String> {
    let docker = grace_docker::Docker::connect(settings).map_err(|e| e.to_string())?;
    // Not fatal: the engine may come up later, and calls fail `unavailable` meanwhile.
    if let Err(e) = docker.ping().await {
        tracing::warn!(host = %docker.host(), "the container engine does not answer yet: {e}");
    }
    tracing::info!(host = %docker.host(), "containers act on a Docker-compatible engine");
    let description = format!("docker {}", docker.host());
    Ok((Arc::new(docker), description))
}

async fn kubernetes(
    settings: &grace_kubernetes::KubeSettings,
) -> Result<Built<grace_kubernetes::Kube>, String> {
    let kube = grace_kubernetes::Kube::connect(settings)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(server = %kube.server(), "kubernetes acts on a cluster");
    let description = format!("kubernetes {}", kube.server());
    Ok((Arc::new(kube), description))
}

async fn aws(
    settings: &grace_aws::AwsSettings,
) -> Result<(Arc<grace_aws::AutoScaling>, grace_aws::CloudWatch, String), String> {
    settings.validate().map_err(|e| e.to_string())?;
    let sdk = settings
        .load_sdk_config()
        .await
        .map_err(|e| e.to_string())?;
    let region = sdk.region().map(ToString::to_string).unwrap_or_default();
    let endpoint = settings
        .endpoint_url
        .clone()
        .unwrap_or_else(|| "the AWS endpoint".into());
    tracing::info!(%region, %endpoint, "scaling acts on AWS Auto Scaling");
    let description = format!("aws autoscaling {region} ({endpoint})");
    Ok((
        Arc::new(grace_aws::AutoScaling::new(&sdk, settings)),
        grace_aws::CloudWatch::new(&sdk, settings),
        description,
    ))
}
