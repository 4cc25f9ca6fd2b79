//! GRACE's `scaling` capability on AWS Auto Scaling, and CloudWatch metrics for its collectors.
//!
//! - [`AutoScaling`] implements [`grace_executor::ScalingExecutor`]: the playbook that scaled
//!   the simulated fleet scales a real Auto Scaling group.
//! - [`CloudWatch::get_metric_data`] runs [`MetricQuery`]s (one per `[[sources.cloudwatch]]`
//!   table) for the CloudWatch collector the server schedules.
//! - [`AutoScaling::discover`] reports every group, its instances and the workloads the groups'
//!   tags name to the health graph (`grace_graph`), bounded by the caller.
//!
//! Both are built from one [`aws_config::SdkConfig`], which [`AwsSettings`] (the `[aws]` table
//! of `grace.toml`) loads. Every call is bounded by `call_timeout` (SDK retries included) and
//! its failures map to [`grace_executor::ExecError`]: throttling and unreachable endpoints are
//! `Unavailable`, a missing group is `NotFound`, a scaling activity in progress is `Conflict`,
//! a refused value is `InvalidArgument`, a slow answer is `TimedOut`.
//!
//! # Configuring a real deployment
//!
//! The region comes from `region` in `[aws]`, else from the standard chain (`AWS_REGION`, the
//! profile's `region`, instance metadata). Credentials always come from the standard chain:
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
//! the shared profile files (`AWS_PROFILE`, SSO, `credential_process`), web identity
//! (EKS service accounts), or the ECS task role / EC2 instance profile. Leave `endpoint_url`
//! unset to reach AWS itself.
//!
//! The identity GRACE runs as needs exactly these IAM permissions:
//!
//! ```json
//! {
//!   "Version": "2012-10-17",
//!   "Statement": [{
//!     "Effect": "Allow",
//!     "Action": [
//!       "autoscaling:DescribeAutoScalingGroups",
//!       "autoscaling:UpdateAutoScalingGroup",
//!       "cloudwatch:GetMetricData"
//!     ],
//!     "Resource": "*"
//!   }]
//! }
//! ```
//!
//! `DescribeAutoScalingGroups` and `GetMetricData` do not support resource-level permissions;
//! `UpdateAutoScalingGroup` can be narrowed to the groups GRACE may scale
//! (`arn:aws:autoscaling:<region>:<account>:autoScalingGroup:*:autoScalingGroupName/<name>`).
//!
//! # Testing without AWS
//!
//! The tests run against a local `moto_server` (`scripts/install-moto.sh` installs it), always
//! through an explicit `endpoint_url` on 127.0.0.1 and static test credentials, so they cannot
//! reach AWS. CloudWatch is pinned to the SDK's last Query-protocol release because moto does
//! not speak the newer RPC v2 CBOR protocol (see `Cargo.toml`).

mod cloudwatch;
mod discover;
mod error;
mod query;
mod scaling;
mod settings;

pub use cloudwatch::{CloudWatch, MAX_QUERIES, MetricResult, MetricStatus};
pub use query::{InvalidQuery, MetricQuery, Stat};
pub use scaling::AutoScaling;
pub use settings::{
    AwsSettings, DEFAULT_CALL_MAX_ATTEMPTS, DEFAULT_CALL_TIMEOUT, DEFAULT_WAIT_DELAY,
    DEFAULT_WAIT_MAX_ATTEMPTS, SettingsError, check_region,
};
