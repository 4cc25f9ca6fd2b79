//! Shared by the end-to-end tests: SDK configurations that can only reach a local endpoint,
//! and the fixtures they create on moto.
//!
//! Every configuration here has an explicit 127.0.0.1 endpoint and static test credentials,
//! so no test can reach AWS whatever the environment holds.

#![allow(clippy::unwrap_used, dead_code)]

pub mod fake_endpoint;

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_autoscaling::config::Credentials;
use grace_aws::AwsSettings;

/// The region every test uses.
pub const REGION: &str = "us-east-1";

/// Settings for a local endpoint: short timeouts, no SDK retries, fast polls.
pub fn settings(endpoint: &str) -> AwsSettings {
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "tests only talk to a loopback endpoint, not `{endpoint}`"
    );
    AwsSettings {
        region: Some(REGION.to_owned()),
        endpoint_url: Some(endpoint.to_owned()),
        call_timeout: Duration::from_secs(10),
        call_max_attempts: 1,
        wait_delay: Duration::from_millis(200),
        wait_max_attempts: 40,
    }
}

/// The SDK configuration of `settings`, with static test credentials.
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    assert!(
        settings
            .endpoint_url
            .as_deref()
            .is_some_and(|e| e.starts_with("http://127.0.0.1:")),
        "tests only talk to a loopback endpoint"
    );
    let config = settings
        .config_loader()
        .unwrap()
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "grace-tests",
        ))
        .load()
        .await;
    grace_aws::check_region(config).unwrap()
}

/// Creates a launch configuration and the group `name` with these sizes on the endpoint.
pub async fn create_group(config: &SdkConfig, name: &str, min: i32, max: i32, desired: i32) {
    let client = aws_sdk_autoscaling::Client::new(config);
    let launch_configuration = format!("{name}-lc");
    client
        .create_launch_configuration()
        .launch_configuration_name(&launch_configuration)
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    client
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(&launch_configuration)
        .min_size(min)
        .max_size(max)
        .desired_capacity(desired)
        .availability_zones(format!("{REGION}a"))
        .send()
        .await
        .unwrap();
}
