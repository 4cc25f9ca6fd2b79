//! GRACE's `scaling` capability on AWS Auto Scaling: [`AutoScaling`] implements
//! [`ScalingExecutor`] with `DescribeAutoScalingGroups` and `UpdateAutoScalingGroup`.
//!
//! Instances are listed sorted by id. Their Auto Scaling lifecycle states map to GRACE's three
//! as follows; what matters is that only `InService` instances count as serving, and that an
//! instance which will not serve again without someone acting on it counts as leaving:
//!
//! | Auto Scaling lifecycle state | GRACE |
//! |---|---|
//! | `Pending`, `Pending:Wait`, `Pending:Proceed`, `Quarantined` | `Pending` (launched, not yet serving) |
//! | `ReplacingRootVolume*`, `RootVolumeReplaced` | `Pending` (being rebuilt, returns to service by itself) |
//! | `Warmed:*`, and states newer than this code | `Pending` (not serving, not known to be leaving) |
//! | `InService` | `InService` |
//! | `Terminating*`, `Terminated`, `Detaching`, `Detached` | `Terminating` (leaving the group) |
//! | `EnteringStandby`, `Standby` | `Terminating` (out of service until someone calls `ExitStandby`) |
//!
//! An instance is healthy when Auto Scaling reports its health status as `Healthy`.
//!
//! AWS instances launch in wall time whatever clock a run uses, so `wait_in_service` waits in
//! wall time.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_autoscaling::types::{
    AutoScalingGroup, Instance as AwsInstance, LifecycleState as AwsState,
};
use grace_executor::scaling::{Group, Instance, LifecycleState};
use grace_executor::{ExecError, ScalingExecutor};
use tokio::time::Instant;

use crate::error::from_sdk_error;
use crate::settings::AwsSettings;

/// The most a last poll before the deadline of `wait_in_service` is given to be answered.
const FINAL_POLL_HEADROOM: Duration = Duration::from_secs(1);

/// Auto Scaling groups in one account and region, as GRACE's scaling provider.
#[derive(Debug, Clone)]
pub struct AutoScaling {
    client: aws_sdk_autoscaling::Client,
    /// The SDK enforces it; kept to say so in errors.
    pub(crate) call_timeout: Duration,
    wait_delay: Duration,
    wait_max_attempts: u32,
}

impl AutoScaling {
    /// A provider calling Auto Scaling with `config` (see [`AwsSettings::load_sdk_config`]),
    /// waiting for groups as `settings` say.
    pub fn new(config: &SdkConfig, settings: &AwsSettings) -> AutoScaling {
        AutoScaling {
            client: aws_sdk_autoscaling::Client::new(config),
            call_timeout: settings.call_timeout,
            wait_delay: settings.wait_delay,
            wait_max_attempts: settings.wait_max_attempts.max(1),
        }
    }

    /// The SDK client, for what GRACE's executor trait does not cover.
    pub fn client(&self) -> &aws_sdk_autoscaling::Client {
        &self.client
    }

    /// Every operation describes the group first: the name is checked here, by AWS's rules
    /// ([`grace_executor::ident::aws_group_name`]), before any request carries it.
    async fn describe(&self, name: &str) -> Result<Group, ExecError> {
        grace_executor::ident::aws_group_name("name", name)?;
        let what = format!("DescribeAutoScalingGroups of group `{name}`");
        let output = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| from_sdk_error(e, &what, self.call_timeout))?;
        // AWS answers an unknown name with an empty list, not an error.
        let group = output
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(name))
            .ok_or_else(|| ExecError::NotFound(format!("auto scaling group `{name}`")))?;
        to_group(name, group)
    }
}

/// GRACE's view of a described group.
fn to_group(name: &str, group: &AutoScalingGroup) -> Result<Group, ExecError> {
    let size = |field: &str, value: Option<i32>| {
        value.and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
            ExecError::Other(format!(
                "AWS described group `{name}` without a valid {field} ({value:?})"
            ))
        })
    };
    let mut instances = group
        .instances()
        .iter()
        .map(|i| to_instance(name, i))
        .collect::<Result<Vec<_>, _>>()?;
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Group {
        name: name.to_owned(),
        min_size: size("MinSize", group.min_size())?,
        max_size: size("MaxSize", group.max_size())?,
        desired_capacity: size("DesiredCapacity", group.desired_capacity())?,
        instances,
    })
}

fn to_instance(group: &str, instance: &AwsInstance) -> Result<Instance, ExecError> {
    let id = instance.instance_id().ok_or_else(|| {
        ExecError::Other(format!(
            "AWS described an instance of group `{group}` without an id"
        ))
    })?;
    Ok(Instance {
        id: id.to_owned(),
        lifecycle_state: instance
            .lifecycle_state()
            .map_or(LifecycleState::Pending, lifecycle_state),
        healthy: instance
            .health_status()
            .is_some_and(|h| h.eq_ignore_ascii_case("Healthy")),
    })
}

/// Maps an Auto Scaling lifecycle state to GRACE's, by the table of the module comment.
pub(crate) fn lifecycle_state(state: &AwsState) -> LifecycleState {
    match state {
        AwsState::InService => LifecycleState::InService,
        AwsState::Terminating
        | AwsState::TerminatingWait
        | AwsState::TerminatingProceed
        | AwsState::TerminatingRetained
        | AwsState::Terminated
        | AwsState::Detaching
        | AwsState::Detached
        | AwsState::EnteringStandby
        | AwsState::Standby => LifecycleState::Terminating,
        // Pending*, Quarantined, root volume replacement, warm pools, unknown states.
        _ => LifecycleState::Pending,
    }
}

fn timed_out(name: &str, last: Option<&Group>, waited: Duration, polls: u32) -> ExecError {
    let waited = humantime::format_duration(Duration::from_millis(
        u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
    ));
    match last {
        Some(group) => {
            let in_service = group.in_service();
            // Pending, leaving, standby or unhealthy instances also keep a group unsettled.
            let others = group
                .instances
                .len()
                .saturating_sub(usize::try_from(in_service).unwrap_or(usize::MAX));
            let others = match others {
                0 => String::new(),
                1 => " and 1 other instance not in service".to_owned(),
                n => format!(" and {n} other instances not in service"),
            };
            let polls = match polls {
                1 => "1 poll".to_owned(),
                n => format!("{n} polls"),
            };
            ExecError::TimedOut(format!(
                "group `{name}` has {in_service} of {} instances in service{others} after waiting {waited} ({polls})",
                group.desired_capacity,
            ))
        }
        None => ExecError::TimedOut(format!(
            "group `{name}`: AWS did not describe it within {waited}"
        )),
    }
}

#[async_trait::async_trait]
impl ScalingExecutor for AutoScaling {
    fn check_group_name<'a>(
        &self,
        argument: &'static str,
        name: &'a str,
    ) -> Result<&'a str, grace_executor::IdentError> {
        grace_executor::ident::aws_group_name(argument, name)
    }

    async fn describe_group(&self, name: &str) -> Result<Group, ExecError> {
        self.describe(name).await
    }

    async fn set_desired_capacity(&self, name: &str, desired: u32) -> Result<Group, ExecError> {
        // Checked against a fresh describe: Auto Scaling refuses such a value too (a
        // ValidationError, mapped to InvalidArgument), but not every endpoint does (moto
        // accepts it), and this message names the range.
        let group = self.describe(name).await?;
        if desired < group.min_size || desired > group.max_size {
            return Err(ExecError::InvalidArgument(format!(
                "desired capacity {desired} for group `{name}` is outside its range {}..={}",
                group.min_size, group.max_size
            )));
        }
        let what =
            format!("UpdateAutoScalingGroup of group `{name}` to desired capacity {desired}");
        let capacity = i32::try_from(desired)
            .map_err(|_| ExecError::InvalidArgument(format!("{what}: {desired} is too large")))?;
        // One attempt only: the SDK's own retry of a write whose first attempt was applied and
        // then lost could be answered with an error (`ResourceContention`,
        // `ScalingActivityInProgress`) that reads as "not made", and the engine would then make
        // the change again without reading the group back. The engine's retry reads it back.
        self.client
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .desired_capacity(capacity)
            .customize()
            .config_override(
                aws_sdk_autoscaling::config::Builder::default()
                    .retry_config(aws_sdk_autoscaling::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| from_sdk_error(e, &what, self.call_timeout))?;
        tracing::info!(
            group = name,
            from = group.desired_capacity,
            to = desired,
            "auto scaling group desired capacity set"
        );
        self.describe(name).await.map_err(ExecError::after_change)
    }

    /// One describe: the desired capacity at the target means done. Auto Scaling has no
    /// precondition to make a redo conditional on what was read before: a group that another
    /// writer moved away from the target after an unknown outcome is set to the target again.
    async fn reconcile(
        &self,
        change: &grace_executor::scaling::Change,
    ) -> Result<grace_executor::Reconciled<Group>, ExecError> {
        let grace_executor::scaling::Change::SetDesiredCapacity { group, .. } = change;
        let read = self.describe(group).await?;
        Ok(grace_executor::scaling::reconcile_read(change, read))
    }

    /// Polls the group every `wait_delay`, at most `wait_max_attempts` times, never past
    /// `timeout`: when less than `wait_delay` remains, one last poll comes up to a second
    /// before the deadline, and a poll still unanswered at the deadline is abandoned. Errors
    /// of a poll end the wait (the SDK has already retried throttling).
    async fn wait_in_service(&self, name: &str, timeout: Duration) -> Result<Group, ExecError> {
        let start = Instant::now();
        let deadline = start
            .checked_add(timeout)
            .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 3600));
        let mut last = None;
        let mut polls = 0;
        let mut final_poll = false;
        loop {
            polls += 1;
            match tokio::time::timeout_at(deadline, self.describe(name)).await {
                Err(_elapsed) => break,
                Ok(described) => {
                    let group = described?;
                    if group.is_settled() {
                        return Ok(group);
                    }
                    tracing::debug!(
                        group = name,
                        in_service = group.in_service(),
                        desired = group.desired_capacity,
                        polls,
                        "waiting for the group to be in service"
                    );
                    last = Some(group);
                }
            }
            if final_poll || polls >= self.wait_max_attempts {
                break;
            }
            let now = Instant::now();
            let remaining = deadline.saturating_duration_since(now);
            if remaining.is_zero() {
                break;
            }
            let next = if remaining > self.wait_delay {
                now + self.wait_delay
            } else {
                // The next regular poll would come too late: poll once more, early enough
                // for the answer to arrive before the deadline.
                final_poll = true;
                deadline - FINAL_POLL_HEADROOM.min(remaining)
            };
            tokio::time::sleep_until(next).await;
        }
        Err(timed_out(name, last.as_ref(), start.elapsed(), polls))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn state(text: &str) -> LifecycleState {
        lifecycle_state(&AwsState::from(text))
    }

    #[test]
    fn only_in_service_serves() {
        assert_eq!(state("InService"), LifecycleState::InService);
    }

    #[test]
    fn launching_and_rebuilding_instances_are_pending() {
        for s in [
            "Pending",
            "Pending:Wait",
            "Pending:Proceed",
            "Quarantined",
            "ReplacingRootVolume",
            "ReplacingRootVolume:Wait",
            "RootVolumeReplaced",
            "Warmed:Running",
            "Warmed:Pending",
            "SomeStateAddedNextYear",
        ] {
            assert_eq!(state(s), LifecycleState::Pending, "{s}");
        }
    }

    #[test]
    fn leaving_and_standby_instances_are_terminating() {
        for s in [
            "Terminating",
            "Terminating:Wait",
            "Terminating:Proceed",
            "Terminating:Retained",
            "Terminated",
            "Detaching",
            "Detached",
            "EnteringStandby",
            "Standby",
        ] {
            assert_eq!(state(s), LifecycleState::Terminating, "{s}");
        }
    }

    fn aws_instance(id: &str, state: &str, health: &str) -> AwsInstance {
        AwsInstance::builder()
            .instance_id(id)
            .lifecycle_state(AwsState::from(state))
            .health_status(health)
            .availability_zone("us-east-1a")
            .protected_from_scale_in(false)
            .build()
    }

    #[test]
    fn a_described_group_lists_instances_by_id_with_health() {
        let aws = AutoScalingGroup::builder()
            .auto_scaling_group_name("web")
            .min_size(1)
            .max_size(10)
            .desired_capacity(3)
            .instances(aws_instance("i-0c", "InService", "Healthy"))
            .instances(aws_instance("i-0a", "Pending", "Healthy"))
            .instances(aws_instance("i-0b", "InService", "Unhealthy"))
            .build();
        let group = to_group("web", &aws).unwrap();
        assert_eq!(
            (group.min_size, group.max_size, group.desired_capacity),
            (1, 10, 3)
        );
        let seen: Vec<_> = group
            .instances
            .iter()
            .map(|i| (i.id.as_str(), i.lifecycle_state, i.healthy))
            .collect();
        assert_eq!(
            seen,
            [
                ("i-0a", LifecycleState::Pending, true),
                ("i-0b", LifecycleState::InService, false),
                ("i-0c", LifecycleState::InService, true),
            ]
        );
        assert_eq!(group.in_service(), 1);
    }

    #[test]
    fn a_group_without_sizes_is_reported_not_guessed() {
        let aws = AutoScalingGroup::builder()
            .auto_scaling_group_name("web")
            .min_size(1)
            .desired_capacity(1)
            .build();
        let e = to_group("web", &aws).unwrap_err();
        assert!(
            matches!(&e, ExecError::Other(m) if m.contains("MaxSize") && m.contains("`web`")),
            "{e:?}"
        );
    }
}
