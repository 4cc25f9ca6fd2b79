//! Discovery for the health graph against a real moto server: groups, instances and the
//! workloads the groups' tags name.
//!
//! The tests share one moto server, and discovery describes every group on it: each test works
//! on groups named after it and looks at those. Without `moto_server` the tests are skipped,
//! loudly, unless `GRACE_E2E=required`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use aws_sdk_autoscaling::types::Tag;
use grace_aws::AutoScaling;
use grace_graph::{
    Availability, Discovered, GraphSettings, HealthGraph, Identity, NodeId, NodeKind, ObservedNode,
    Owner, Walk,
};
use grace_testkit::moto::Moto;

/// A group of this test on the shared moto: min 1, max 10, scaled to 4 instances, one of them
/// set unhealthy, tagged `namespace=<group>`, `app=checkout`.
struct Scene {
    scaling: AutoScaling,
    config: SdkConfig,
    group: String,
    /// The instance set unhealthy.
    unhealthy: String,
}

async fn scene(test: &str) -> Option<Scene> {
    let moto = Moto::shared(test)?;
    let settings = common::settings(&moto.endpoint());
    let config = common::sdk_config(&settings).await;
    let group = test.replace('_', "-");
    common::create_group(&config, &group, 1, 10, 2).await;
    let client = aws_sdk_autoscaling::Client::new(&config);
    let tag = |key: &str, value: &str| {
        Tag::builder()
            .resource_id(&group)
            .resource_type("auto-scaling-group")
            .key(key)
            .value(value)
            .propagate_at_launch(false)
            .build()
    };
    client
        .create_or_update_tags()
        .tags(tag("namespace", &group))
        .tags(tag("app", "checkout"))
        .send()
        .await
        .unwrap();
    client
        .set_desired_capacity()
        .auto_scaling_group_name(&group)
        .desired_capacity(4)
        .send()
        .await
        .unwrap();
    let described = client
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&group)
        .send()
        .await
        .unwrap();
    let instances = described.auto_scaling_groups()[0].instances();
    assert_eq!(instances.len(), 4, "moto launched the capacity at once");
    let unhealthy = instances[0].instance_id().unwrap().to_owned();
    client
        .set_instance_health()
        .instance_id(&unhealthy)
        .health_status("Unhealthy")
        .send()
        .await
        .unwrap();
    Some(Scene {
        scaling: AutoScaling::new(&config, &settings),
        config,
        group,
        unhealthy,
    })
}

impl Scene {
    /// Everything on moto, unbounded in practice.
    async fn discover(&self) -> Discovered {
        self.scaling
            .discover(&Identity::default(), 100_000)
            .await
            .unwrap()
    }

    fn group_id(&self) -> NodeId {
        NodeId::group(&self.group).unwrap()
    }

    fn service(&self) -> NodeId {
        NodeId::service(&self.group, "checkout").unwrap()
    }

    /// This test's group's instances, as discovered.
    fn instances<'a>(&self, found: &'a Discovered) -> Vec<&'a ObservedNode> {
        let group = Owner::Node(self.group_id());
        found
            .observation
            .nodes
            .iter()
            .filter(|n| n.id.kind() == NodeKind::Instance && n.part_of.contains(&group))
            .collect()
    }
}

fn node<'a>(found: &'a Discovered, id: &NodeId) -> &'a ObservedNode {
    found
        .observation
        .node(id)
        .unwrap_or_else(|| panic!("{id} was not discovered: {:#?}", found.observation.nodes))
}

#[tokio::test]
async fn a_group_is_reported_with_its_sizes_tags_and_share_of_serving_instances() {
    let Some(s) = scene("group_reported_with_sizes_tags_and_serving_share").await else {
        return;
    };
    let found = s.discover().await;

    let group = node(&found, &s.group_id());
    assert_eq!(group.attributes["min_size"], "1");
    assert_eq!(group.attributes["max_size"], "10");
    assert_eq!(group.attributes["desired_capacity"], "4");
    assert_eq!(group.attributes["tag:app"], "checkout");
    assert_eq!(group.attributes["tag:namespace"], s.group);
    assert_eq!(
        group.availability,
        Some(Availability { ready: 3, total: 4 }),
        "InService and Healthy, of all"
    );
}

#[tokio::test]
async fn each_instance_is_reported_part_of_its_group_with_its_state_health_and_zone() {
    let Some(s) = scene("instance_reported_part_of_group_with_state_health_zone").await else {
        return;
    };
    let found = s.discover().await;

    let instances = s.instances(&found);
    assert_eq!(instances.len(), 4, "{:#?}", found.observation.nodes);
    for i in instances {
        assert_eq!(i.attributes["lifecycle_state"], "InService", "{}", i.id);
        assert_eq!(i.attributes["availability_zone"], "us-east-1a", "{}", i.id);
        let healthy = i.id.key() != s.unhealthy;
        assert_eq!(
            i.attributes["health_status"],
            if healthy { "Healthy" } else { "Unhealthy" },
            "{}",
            i.id
        );
        assert_eq!(
            i.availability,
            Some(Availability {
                ready: u32::from(healthy),
                total: 1
            }),
            "{}",
            i.id
        );
    }
}

#[tokio::test]
async fn a_group_whose_tags_name_a_workload_is_part_of_that_service_in_the_graph() {
    let Some(s) = scene("group_tags_naming_a_workload_part_of_service").await else {
        return;
    };
    let found = s.discover().await;
    assert_eq!(
        node(&found, &s.group_id()).part_of,
        [Owner::Node(s.service())]
    );
    node(&found, &s.service());

    let mut graph = HealthGraph::new(GraphSettings::default());
    graph.apply("aws", &found.observation, 1_000_000);
    let reached: BTreeSet<(NodeKind, u32)> = graph
        .walk(&s.service(), Walk::Dependencies, 2, 100)
        .unwrap()
        .into_iter()
        .map(|r| (r.id.kind(), r.depth))
        .collect();
    assert_eq!(
        reached,
        BTreeSet::from([(NodeKind::Group, 1), (NodeKind::Instance, 2)])
    );
    let members = graph
        .walk(&s.group_id(), Walk::Dependencies, 1, 100)
        .unwrap();
    assert_eq!(members.len(), 4, "{members:?}");
}

#[tokio::test]
async fn groups_and_instances_beyond_the_bound_are_counted_not_reported() {
    let Some(s) = scene("groups_and_instances_beyond_the_bound").await else {
        return;
    };
    let found = s.scaling.discover(&Identity::default(), 1).await.unwrap();

    let reported = found
        .observation
        .nodes
        .iter()
        .filter(|n| matches!(n.id.kind(), NodeKind::Group | NodeKind::Instance))
        .count();
    assert_eq!(reported, 1, "{:#?}", found.observation.nodes);
    // This test's group and its 4 instances at least; other tests' may be there too.
    assert!(found.left_out >= 4, "{}", found.left_out);
    assert_eq!(s.discover().await.left_out, 0);
}

#[tokio::test]
async fn groups_on_later_pages_are_discovered() {
    let Some(s) = scene("groups_on_later_pages").await else {
        return;
    };
    // More groups than one page holds (100), empty to keep moto quick.
    let client = aws_sdk_autoscaling::Client::new(&s.config);
    let names: Vec<String> = (0..101).map(|i| format!("{}-{i:03}", s.group)).collect();
    for name in &names {
        client
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_configuration_name(format!("{}-lc", s.group))
            .min_size(0)
            .max_size(1)
            .desired_capacity(0)
            .availability_zones(format!("{}a", common::REGION))
            .send()
            .await
            .unwrap();
    }
    let found = s.discover().await;

    let groups: BTreeSet<&str> = found
        .observation
        .nodes
        .iter()
        .filter(|n| n.id.kind() == NodeKind::Group)
        .map(|n| n.id.key())
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !groups.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "not discovered: {missing:?}");
}
