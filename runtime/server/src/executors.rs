//! The executors runs act through, built from the settings: the simulated fleet's in
//! simulation, with every backend configured in `grace.toml` taking its capability over.
//! [`connect`] is the one entry point.

use std::sync::Arc;

use grace_executor::Executors;
use grace_sim::Simulation;

use crate::config::{ConfigError, ServeConfig};

/// The executors runs act through: the simulated fleet's (in simulation), with every backend
/// configured in `grace.toml` taking its capability over, simulated or not.
pub async fn connect(
    config: &ServeConfig,
    sim: Option<&Simulation>,
) -> Result<Backends, ConfigError> {
    let mut executors = match sim {
        Some(sim) => sim.executors(),
        None => Executors::none(Arc::new(grace_executor::SystemClock)),
    };
    let simulated = if sim.is_some() { "simulated" } else { "none" };
    let mut backends: std::collections::BTreeMap<&'static str, String> =
        ["scaling", "containers", "kubernetes", "metrics"]
            .into_iter()
            .map(|c| (c, simulated.to_owned()))
            .collect();
    let invalid =
        |field: &'static str| move |message: String| ConfigError::Invalid { field, message };
    if let Some(url) = &config.prometheus {
        // Real metrics whatever else is simulated: on a virtual run clock, Prometheus
        // evaluates instant queries at its own now.
        let prometheus = grace_prometheus::PrometheusMetrics::new(url)
            .map_err(invalid("prometheus"))?
            .evaluate_at_server_time(config.simulate)
            .with_max_response_bytes(config.limits.run.max_response_bytes);
        tracing::info!(url = %prometheus.base_url(), "metrics queries go to Prometheus");
        backends.insert("metrics", format!("prometheus {}", prometheus.base_url()));
        executors.metrics = Some(Arc::new(prometheus));
    }
    if let Some(settings) = &config.docker {
        let docker = grace_docker::Docker::connect(settings)
            .map_err(|e| invalid("docker")(e.to_string()))?;
        // Not fatal: the engine may come up later, and calls fail `unavailable` meanwhile.
        if let Err(e) = docker.ping().await {
            tracing::warn!(host = %docker.host(), "the container engine does not answer yet: {e}");
        }
        tracing::info!(host = %docker.host(), "containers act on a Docker-compatible engine");
        backends.insert("containers", format!("docker {}", docker.host()));
        executors.containers = Some(Arc::new(docker));
    }
    if let Some(settings) = &config.kubernetes {
        let kube = grace_kubernetes::Kube::connect(settings)
            .await
            .map_err(|e| invalid("kubernetes")(e.to_string()))?;
        tracing::info!(server = %kube.server(), "kubernetes acts on a cluster");
        backends.insert("kubernetes", format!("kubernetes {}", kube.server()));
        executors.kubernetes = Some(Arc::new(kube));
    }
    let mut cloudwatch = None;
    if let Some(settings) = &config.aws {
        let sdk = settings
            .load_sdk_config()
            .await
            .map_err(|e| invalid("aws")(e.to_string()))?;
        let region = sdk.region().map(ToString::to_string).unwrap_or_default();
        let endpoint = settings
            .endpoint_url
            .clone()
            .unwrap_or_else(|| "the AWS endpoint".into());
        tracing::info!(%region, %endpoint, "scaling acts on AWS Auto Scaling");
        backends.insert("scaling", format!("aws autoscaling {region} ({endpoint})"));
        executors.scaling = Some(Arc::new(grace_aws::AutoScaling::new(&sdk, settings)));
        cloudwatch = Some(grace_aws::CloudWatch::new(&sdk, settings));
    }
    Ok(Backends {
        executors,
        descriptions: backends,
        cloudwatch,
    })
}

/// What [`connect`] connected.
pub struct Backends {
    /// The executors runs act through.
    pub executors: Executors,
    /// What backs each capability, for `/healthz`: `simulated`, `docker unix:///...`, ...
    pub descriptions: std::collections::BTreeMap<&'static str, String>,
    /// The CloudWatch client of `[aws]`, for CloudWatch sources.
    pub cloudwatch: Option<grace_aws::CloudWatch>,
}
