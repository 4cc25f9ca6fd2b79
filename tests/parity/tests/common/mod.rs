//! What every parity test binary starts from: one engine per process, a tokio runtime driven
//! the way the CLI drives runs, and the AWS settings, SDK configuration and groups of the tests
//! that run against moto (or a fake endpoint).

use std::sync::OnceLock;

use grace_engine::{Engine, EngineConfig};

/// The process's engine (compiling components once for all its tests).
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| Engine::new(&EngineConfig::default()).unwrap())
        .clone()
}

/// A multi-threaded runtime with two workers.
// Not every test binary drives its own runtime.
#[allow(dead_code)]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Settings for the AWS provider at `endpoint` (loopback: moto or a fake endpoint): region
/// `us-east-1`, no SDK retries, waits polling every 200 ms.
// Not every test binary talks to AWS.
#[allow(dead_code)]
pub fn aws_settings(endpoint: String) -> grace_aws::AwsSettings {
    grace_aws::AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint),
        call_max_attempts: 1,
        wait_delay: std::time::Duration::from_millis(200),
        ..grace_aws::AwsSettings::default()
    }
}

/// The SDK configuration of `settings`, with moto's static test credentials (named
/// `provider_name`).
#[allow(dead_code)]
pub async fn sdk_config(
    settings: &grace_aws::AwsSettings,
    provider_name: &'static str,
) -> aws_config::SdkConfig {
    settings
        .config_loader()
        .unwrap()
        .credentials_provider(aws_sdk_autoscaling::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            provider_name,
        ))
        .load()
        .await
}

/// Creates a launch configuration and the group `name` with these sizes.
#[allow(dead_code)]
pub async fn create_group(
    sdk: &aws_config::SdkConfig,
    name: &str,
    min: i32,
    max: i32,
    desired: i32,
) {
    let client = aws_sdk_autoscaling::Client::new(sdk);
    client
        .create_launch_configuration()
        .launch_configuration_name(format!("{name}-lc"))
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    client
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(format!("{name}-lc"))
        .min_size(min)
        .max_size(max)
        .desired_capacity(desired)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();
}
