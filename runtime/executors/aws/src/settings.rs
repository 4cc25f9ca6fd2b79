//! The `[aws]` settings of `grace.toml`, and the SDK configuration built from them.
//!
//! Durations are humantime strings (`"10s"`, `"200ms"`, `"1m 30s"`), as everywhere else in
//! `grace.toml`. Credentials are never settings: they come from the SDK's standard chain
//! (environment, shared profile files, web identity, ECS/EC2 instance metadata), so a secret
//! never lands in a configuration file.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use serde::Deserialize;

/// Default time limit of one AWS call, retries included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default attempts per AWS call (the SDK's standard retry strategy).
pub const DEFAULT_CALL_MAX_ATTEMPTS: u32 = 3;
/// Default pause between two polls while waiting for a group, as the SDK's
/// `group_in_service` waiter.
pub const DEFAULT_WAIT_DELAY: Duration = Duration::from_secs(15);
/// Default number of polls while waiting for a group, as the SDK's `group_in_service` waiter.
pub const DEFAULT_WAIT_MAX_ATTEMPTS: u32 = 40;

/// How GRACE reaches AWS: the `[aws]` table of `grace.toml`.
///
/// ```toml
/// [aws]
/// region = "eu-west-1"          # else AWS_REGION / the profile / instance metadata
/// call_timeout = "10s"          # one call, SDK retries included
/// call_max_attempts = 3         # SDK retries of throttled or failed calls
/// wait_delay = "15s"            # between polls of `wait_in_service`
/// wait_max_attempts = 40        # polls of `wait_in_service`
/// # endpoint_url = "http://127.0.0.1:5000"   # a local endpoint (moto) instead of AWS
/// ```
///
/// Every key is optional; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSettings {
    /// The region (`eu-west-1`); when absent, the standard chain decides (`AWS_REGION`,
    /// the profile, instance metadata).
    pub region: Option<String>,
    /// Send every call to this endpoint instead of AWS's (a local moto server in tests).
    pub endpoint_url: Option<String>,
    /// Time limit of one AWS call, SDK retries included (humantime, default `10s`).
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Attempts per AWS call by the SDK's standard retry strategy, which retries throttling
    /// and transient errors with backoff (default 3; 1 disables SDK retries). The engine's
    /// own retries of transient errors come on top of these.
    pub call_max_attempts: u32,
    /// Pause between two polls of `wait_in_service` (humantime, default `15s`).
    #[serde(with = "humantime_serde")]
    pub wait_delay: Duration,
    /// Most polls of one `wait_in_service` (default 40).
    pub wait_max_attempts: u32,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            region: None,
            endpoint_url: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            call_max_attempts: DEFAULT_CALL_MAX_ATTEMPTS,
            wait_delay: DEFAULT_WAIT_DELAY,
            wait_max_attempts: DEFAULT_WAIT_MAX_ATTEMPTS,
        }
    }
}

/// Why the AWS settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A setting has a value GRACE refuses.
    #[error("aws.{field}: {message}")]
    Invalid {
        /// The setting, as spelled in `grace.toml`.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// Neither the settings nor the standard chain name a region.
    #[error(
        "no AWS region: set `region` in the `[aws]` table, AWS_REGION, or a region in the AWS profile"
    )]
    NoRegion,
}

impl AwsSettings {
    /// Checks every value, naming the first bad setting.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |field, message: &str| {
            Err(SettingsError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        if let Some(region) = &self.region {
            let legal = !region.is_empty()
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !legal {
                return invalid(
                    "region",
                    &format!("`{region}` is not a region name such as `eu-west-1`"),
                );
            }
        }
        if let Some(url) = &self.endpoint_url {
            let host = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
                return invalid(
                    "endpoint_url",
                    &format!("`{url}` is not an http(s) URL with a host"),
                );
            }
        }
        if self.call_timeout.is_zero() {
            return invalid("call_timeout", "must be positive");
        }
        if !(1..=10).contains(&self.call_max_attempts) {
            return invalid("call_max_attempts", "must be within 1..=10");
        }
        if self.wait_delay.is_zero() {
            return invalid("wait_delay", "must be positive");
        }
        if self.wait_max_attempts == 0 {
            return invalid("wait_max_attempts", "must be at least 1");
        }
        Ok(())
    }

    /// The SDK's standard configuration loader with these settings applied: region and
    /// endpoint overrides, the call timeout and the retry attempts.
    ///
    /// Callers may add to it before loading (tests give it static credentials with
    /// `credentials_provider`); [`AwsSettings::load_sdk_config`] loads it as is.
    pub fn config_loader(&self) -> Result<ConfigLoader, SettingsError> {
        self.validate()?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.call_timeout)
            .operation_timeout(self.call_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(self.call_max_attempts));
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Ok(loader)
    }

    /// Loads the SDK configuration: these settings over the standard chain (environment,
    /// profile, instance metadata), which supplies the credentials.
    ///
    /// Fails when the settings are invalid or no region can be found. Credentials are
    /// resolved lazily, at the first call, so missing ones show up there.
    pub async fn load_sdk_config(&self) -> Result<SdkConfig, SettingsError> {
        let config = self.config_loader()?.load().await;
        check_region(config)
    }
}

/// Refuses a configuration without a region: every AWS call would fail.
pub fn check_region(config: SdkConfig) -> Result<SdkConfig, SettingsError> {
    match config.region() {
        Some(_) => Ok(config),
        None => Err(SettingsError::NoRegion),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(toml_text: &str) -> Result<AwsSettings, String> {
        #[derive(Deserialize)]
        struct File {
            aws: AwsSettings,
        }
        toml::from_str::<File>(toml_text)
            .map(|f| f.aws)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_table_gives_the_sdk_waiter_defaults() {
        let s = parse("[aws]").unwrap();
        assert_eq!(s, AwsSettings::default());
        assert_eq!(s.call_timeout, Duration::from_secs(10));
        assert_eq!(s.wait_delay, Duration::from_secs(15));
        assert_eq!(s.wait_max_attempts, 40);
        assert_eq!(s.call_max_attempts, 3);
        s.validate().unwrap();
    }

    #[test]
    fn durations_are_humantime_strings() {
        let s = parse(
            "[aws]\nregion = \"eu-west-1\"\nendpoint_url = \"http://127.0.0.1:5000\"\n\
             call_timeout = \"2s 500ms\"\nwait_delay = \"200ms\"\nwait_max_attempts = 7",
        )
        .unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.call_timeout, Duration::from_millis(2_500));
        assert_eq!(s.wait_delay, Duration::from_millis(200));
        assert_eq!(s.wait_max_attempts, 7);
        s.validate().unwrap();
        let e = parse("[aws]\ncall_timeout = \"soon\"").unwrap_err();
        assert!(e.contains("\"soon\", expected a duration"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse("[aws]\nsecret_access_key = \"x\"").unwrap_err();
        assert!(e.contains("secret_access_key"), "{e}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let field = |s: AwsSettings| match s.validate() {
            Err(SettingsError::Invalid { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        };
        let base = AwsSettings::default;
        assert_eq!(
            field(AwsSettings {
                region: Some("EU West".into()),
                ..base()
            }),
            "region"
        );
        assert_eq!(
            field(AwsSettings {
                endpoint_url: Some("127.0.0.1:5000".into()),
                ..base()
            }),
            "endpoint_url"
        );
        assert_eq!(
            field(AwsSettings {
                call_timeout: Duration::ZERO,
                ..base()
            }),
            "call_timeout"
        );
        assert_eq!(
            field(AwsSettings {
                call_max_attempts: 0,
                ..base()
            }),
            "call_max_attempts"
        );
        assert_eq!(
            field(AwsSettings {
                wait_delay: Duration::ZERO,
                ..base()
            }),
            "wait_delay"
        );
        assert_eq!(
            field(AwsSettings {
                wait_max_attempts: 0,
                ..base()
            }),
            "wait_max_attempts"
        );
    }

    #[tokio::test]
    async fn region_and_endpoint_overrides_reach_the_sdk_config() {
        let settings = AwsSettings {
            region: Some("eu-west-3".into()),
            endpoint_url: Some("http://127.0.0.1:1".into()),
            call_timeout: Duration::from_millis(750),
            ..AwsSettings::default()
        };
        let config = settings
            .config_loader()
            .unwrap()
            .credentials_provider(aws_sdk_autoscaling::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "unit-test",
            ))
            .load()
            .await;
        let config = check_region(config).unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-3"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:1"));
        let timeouts = config.timeout_config().unwrap();
        assert_eq!(
            timeouts.operation_timeout(),
            Some(Duration::from_millis(750))
        );
        assert_eq!(config.retry_config().unwrap().max_attempts(), 3);
    }
}
