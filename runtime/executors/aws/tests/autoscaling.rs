//! `AutoScaling` against a real moto server: the scaling capability's contract, end to end.
//!
//! The tests share one moto server; each works on its own group, named after the test.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use grace_aws::{AutoScaling, AwsSettings};
use grace_executor::scaling::LifecycleState;
use grace_executor::{ExecError, ScalingExecutor};
use grace_testkit::moto::Moto;
use grace_testkit::proxy::{Proxy, Upstream};

/// A group of this test (min 1, max 10, desired 3) on the shared moto, and a provider for it.
struct Fixture {
    scaling: AutoScaling,
    config: SdkConfig,
    group: String,
}

async fn fixture(test: &str) -> Option<Fixture> {
    fixture_with(test, |_| {}).await
}

async fn fixture_with(test: &str, adjust: impl FnOnce(&mut AwsSettings)) -> Option<Fixture> {
    let moto = Moto::shared(test)?;
    let mut settings = common::settings(&moto.endpoint());
    adjust(&mut settings);
    let config = common::sdk_config(&settings).await;
    let group = test.replace('_', "-");
    common::create_group(&config, &group, 1, 10, 3).await;
    Some(Fixture {
        scaling: AutoScaling::new(&config, &settings),
        config,
        group,
    })
}

impl Fixture {
    /// Puts one instance in standby without lowering the desired capacity: Auto Scaling
    /// launches a replacement, and the group never settles by itself (3 of 3 in service, plus
    /// the standby instance). Returns the standby instance's id.
    async fn one_instance_in_standby(&self) -> String {
        let group = self.scaling.describe_group(&self.group).await.unwrap();
        let id = group.instances[0].id.clone();
        aws_sdk_autoscaling::Client::new(&self.config)
            .enter_standby()
            .auto_scaling_group_name(&self.group)
            .instance_ids(&id)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .unwrap();
        id
    }
}

/// A whole HTTP answer saying Auto Scaling is unavailable, in its Query protocol's words:
/// one the SDK's standard retries retry (a `503`, code `ServiceUnavailable`).
fn unavailable() -> Vec<u8> {
    let body = "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>\
                <Message>try again</Message></Error><RequestId>0f7c6f6e-grace-test</RequestId>\
                </ErrorResponse>";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A group of this test (min 1, max 10, desired 3) on the shared moto, a proxy in front of
/// moto, and a provider that goes through the proxy with the SDK's retries on (3 attempts).
async fn behind_proxy(test: &str) -> Option<(Fixture, Proxy)> {
    let direct = fixture(test).await?;
    let moto = Moto::shared(test)?;
    let proxy = Proxy::start(Upstream::Tcp(
        format!("127.0.0.1:{}", moto.port()).parse().unwrap(),
    ));
    let mut settings = common::settings(&proxy.url());
    settings.call_max_attempts = 3;
    let config = common::sdk_config(&settings).await;
    let through = Fixture {
        scaling: AutoScaling::new(&config, &settings),
        ..direct
    };
    Some((through, proxy))
}

#[tokio::test]
async fn a_group_read_answered_unavailable_is_retried_by_the_sdk() {
    let Some((f, proxy)) = behind_proxy("read_answered_unavailable").await else {
        return;
    };
    let describe = "Action=DescribeAutoScalingGroups";
    proxy.replace_answer_after(describe, &unavailable());
    let group = f.scaling.describe_group(&f.group).await.unwrap();
    assert_eq!(group.desired_capacity, 3);
    assert_eq!(proxy.count(describe), 2, "the SDK sent the read again");
}

#[tokio::test]
async fn a_capacity_write_answered_unavailable_is_sent_once_though_the_sdk_retries_reads() {
    let Some((f, proxy)) = behind_proxy("write_answered_unavailable").await else {
        return;
    };
    let update = "Action=UpdateAutoScalingGroup";
    proxy.replace_answer_after(update, &unavailable());
    let result = f.scaling.set_desired_capacity(&f.group, 5).await;
    assert_eq!(
        proxy.count(update),
        1,
        "a retried write that was applied could be answered ResourceContention"
    );
    let e = result.unwrap_err();
    assert!(!e.proves_not_applied(), "{e:?}");
    let direct = aws_sdk_autoscaling::Client::new(&f.config)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&f.group)
        .send()
        .await
        .unwrap();
    assert_eq!(
        direct.auto_scaling_groups()[0].desired_capacity(),
        Some(5),
        "moto made the change whose answer was replaced"
    );
}

#[tokio::test]
async fn describe_group_reports_sizes_and_in_service_instances_sorted_by_id() {
    let Some(f) = fixture("describe_group_reports_sizes").await else {
        return;
    };
    let group = f.scaling.describe_group(&f.group).await.unwrap();
    assert_eq!(group.name, f.group);
    assert_eq!(
        (group.min_size, group.max_size, group.desired_capacity),
        (1, 10, 3)
    );
    assert_eq!(group.instances.len(), 3);
    assert!(group.instances.iter().all(|i| i.id.starts_with("i-")
        && i.lifecycle_state == LifecycleState::InService
        && i.healthy));
    assert!(group.instances.windows(2).all(|w| w[0].id < w[1].id));
    assert!(group.is_settled());
}

#[tokio::test]
async fn scaling_to_five_then_waiting_brings_five_in_service() {
    let Some(f) = fixture("scaling_to_five_then_waiting").await else {
        return;
    };
    let group = f.scaling.set_desired_capacity(&f.group, 5).await.unwrap();
    assert_eq!(group.desired_capacity, 5);
    let group = f
        .scaling
        .wait_in_service(&f.group, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(group.desired_capacity, 5);
    assert_eq!(group.in_service(), 5);
    assert_eq!(group.instances.len(), 5);
    assert!(group.is_settled());
}

#[tokio::test]
async fn scaling_in_within_range_removes_instances() {
    let Some(f) = fixture("scaling_in_within_range").await else {
        return;
    };
    f.scaling.set_desired_capacity(&f.group, 1).await.unwrap();
    let group = f
        .scaling
        .wait_in_service(&f.group, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((group.desired_capacity, group.in_service()), (1, 1));
    assert_eq!(group.instances.len(), 1);
}

#[tokio::test]
async fn scaling_above_max_is_invalid_and_leaves_the_group_unchanged() {
    let Some(f) = fixture("scaling_above_max_is_invalid").await else {
        return;
    };
    let before = f.scaling.describe_group(&f.group).await.unwrap();
    let e = f
        .scaling
        .set_desired_capacity(&f.group, 11)
        .await
        .unwrap_err();
    let ExecError::InvalidArgument(message) = &e else {
        panic!("not InvalidArgument: {e:?}")
    };
    assert!(message.contains(&format!("`{}`", f.group)), "{message}");
    assert!(message.contains("11"), "{message}");
    assert!(message.contains("1..=10"), "{message}");
    assert_eq!(f.scaling.describe_group(&f.group).await.unwrap(), before);
}

#[tokio::test]
async fn scaling_below_min_is_invalid() {
    let Some(f) = fixture("scaling_below_min_is_invalid").await else {
        return;
    };
    let e = f
        .scaling
        .set_desired_capacity(&f.group, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ExecError::InvalidArgument(m) if m.contains("capacity 0") && m.contains("1..=10")),
        "{e:?}"
    );
    let group = f.scaling.describe_group(&f.group).await.unwrap();
    assert_eq!(group.desired_capacity, 3);
}

#[tokio::test]
async fn a_missing_group_is_not_found_for_every_operation() {
    let Some(f) = fixture("a_missing_group_is_not_found").await else {
        return;
    };
    let not_found = |e: ExecError| matches!(&e, ExecError::NotFound(m) if m.contains("`nope`"));
    assert!(not_found(
        f.scaling.describe_group("nope").await.unwrap_err()
    ));
    assert!(not_found(
        f.scaling.set_desired_capacity("nope", 2).await.unwrap_err()
    ));
    assert!(not_found(
        f.scaling
            .wait_in_service("nope", Duration::from_secs(5))
            .await
            .unwrap_err()
    ));
}

#[tokio::test]
async fn a_standby_instance_counts_as_leaving_service() {
    let Some(f) = fixture("a_standby_instance_counts_as_leaving").await else {
        return;
    };
    let id = f.one_instance_in_standby().await;
    let group = f.scaling.describe_group(&f.group).await.unwrap();
    let standby = group.instances.iter().find(|i| i.id == id).unwrap();
    assert_eq!(standby.lifecycle_state, LifecycleState::Terminating);
    assert_eq!(group.desired_capacity, 3);
    assert_eq!(group.in_service(), 3);
    assert_eq!(group.instances.len(), 4);
    assert!(!group.is_settled());
}

#[tokio::test]
async fn waiting_gives_up_at_the_timeout_naming_instances_in_service() {
    let Some(f) = fixture("waiting_gives_up_at_the_timeout").await else {
        return;
    };
    f.one_instance_in_standby().await;
    let timeout = Duration::from_millis(1_500);
    let started = Instant::now();
    let e = f
        .scaling
        .wait_in_service(&f.group, timeout)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    let ExecError::TimedOut(message) = &e else {
        panic!("not TimedOut: {e:?}")
    };
    assert!(
        message.contains("3 of 3 instances in service and 1 other instance not in service"),
        "{message}"
    );
    assert!(message.contains(&format!("`{}`", f.group)), "{message}");
    // Timers may fire a little late; the wait itself never aims past the deadline.
    let slack = Duration::from_millis(100);
    assert!(
        waited <= timeout + slack,
        "waited {waited:?}, beyond {timeout:?}"
    );
    // It kept polling until shortly before the deadline rather than giving up at once.
    assert!(
        waited >= timeout / 2,
        "gave up after {waited:?} of {timeout:?}"
    );
}

#[tokio::test]
async fn waiting_stops_after_the_most_polls() {
    let Some(f) = fixture_with("waiting_stops_after_the_most_polls", |s| {
        s.wait_delay = Duration::from_millis(100);
        s.wait_max_attempts = 3;
    })
    .await
    else {
        return;
    };
    f.one_instance_in_standby().await;
    let started = Instant::now();
    let e = f
        .scaling
        .wait_in_service(&f.group, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ExecError::TimedOut(m) if m.contains("3 polls")),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_stopped_moto_is_unavailable() {
    // Its own server: this test stops it.
    let Some(moto) = Moto::start("a_stopped_moto_is_unavailable") else {
        return;
    };
    let settings = common::settings(&moto.endpoint());
    let config = common::sdk_config(&settings).await;
    common::create_group(&config, "web", 1, 10, 3).await;
    let scaling = AutoScaling::new(&config, &settings);
    scaling.describe_group("web").await.unwrap();
    drop(moto);
    let e = scaling.describe_group("web").await.unwrap_err();
    assert!(
        matches!(&e, ExecError::Unavailable(m) if m.contains("`web`")),
        "{e:?}"
    );
    assert!(e.is_transient());
    let e = scaling.set_desired_capacity("web", 4).await.unwrap_err();
    assert!(matches!(e, ExecError::Unavailable(_)), "{e:?}");
}
