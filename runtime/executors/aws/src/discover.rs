//! Discovery for the health graph: every Auto Scaling group of the account and region, its
//! instances, and the workloads the groups' tags name, as one [`Observation`].
//!
//! `DescribeAutoScalingGroups` without names, every page followed (the SDK's paginator, at most
//! [`MAX_PAGES`] pages), each page under the call's time limit and its failures mapped like
//! every other call ([`crate::error`]). What AWS describes becomes:
//!
//! | node | attributes | availability | part of |
//! | --- | --- | --- | --- |
//! | `group:<name>` | `min_size`, `max_size`, `desired_capacity`, `tag:<key>` per tag | instances `InService` and `Healthy` / all its instances | the workload its tags name ([`Identity::service`], tags read as labels) |
//! | `instance:<id>` | `lifecycle_state`, `health_status`, `availability_zone` | `1/1` when `InService` and `Healthy`, else `0/1` | its group |
//! | `service:<namespace>/<workload>` | | | |
//!
//! At most `max` groups and instances together are reported, in AWS's order (by group name),
//! each group before its instances; the others are counted in [`Discovered::left_out`]. A
//! workload is reported when a reported group names it (workloads do not count against the
//! bound: there are never more of them than groups). A group's availability counts all its
//! instances, reported or not. Groups and instances whose names are not valid node ids are
//! skipped, with their instances.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_autoscaling::types::{AutoScalingGroup, Instance, LifecycleState};
use grace_executor::ExecError;
use grace_graph::{Discovered, Identity, MAX_ATTRIBUTES, NodeId, Observation, ObservedNode, Owner};

use crate::error::from_sdk_error;
use crate::scaling::AutoScaling;

/// Most pages of groups followed: a guard against an endpoint that never stops paging (at
/// [`PAGE_SIZE`] groups a page, far more groups than an account may have).
const MAX_PAGES: usize = 1_000;

/// Groups asked for per page: the most `DescribeAutoScalingGroups` answers.
const PAGE_SIZE: i32 = 100;

/// The attributes of a group node besides its tags (`min_size`, `max_size`,
/// `desired_capacity`): the tags get what the graph keeps beyond these.
const OWN_ATTRIBUTES: usize = 3;

impl AutoScaling {
    /// Every Auto Scaling group and its instances as nodes of the health graph, each group
    /// part of the workload its tags name by `identity`; at most `max` groups and instances,
    /// the rest counted in [`Discovered::left_out`] (see the module documentation).
    pub async fn discover(&self, identity: &Identity, max: usize) -> Result<Discovered, ExecError> {
        let what = "DescribeAutoScalingGroups of every group";
        let mut pages = self
            .client()
            .describe_auto_scaling_groups()
            .max_records(PAGE_SIZE)
            .into_paginator()
            .send();
        let mut found = Found::new(identity, max);
        let mut count = 0;
        while let Some(page) = pages.next().await {
            count += 1;
            if count > MAX_PAGES {
                return Err(ExecError::Other(format!(
                    "{what}: AWS kept paging past {MAX_PAGES} pages"
                )));
            }
            let page = page.map_err(|e| from_sdk_error(e, what, self.call_timeout))?;
            for group in page.auto_scaling_groups() {
                found.group(group);
            }
        }
        Ok(found.finish())
    }
}

/// An observation being built, page by page.
struct Found<'a> {
    identity: &'a Identity,
    max: usize,
    /// Groups and instances reported so far.
    reported: usize,
    observation: Observation,
    left_out: usize,
    services: BTreeSet<NodeId>,
}

impl<'a> Found<'a> {
    fn new(identity: &'a Identity, max: usize) -> Found<'a> {
        Found {
            identity,
            max,
            reported: 0,
            observation: Observation::default(),
            left_out: 0,
            services: BTreeSet::new(),
        }
    }

    /// Adds a group and its instances, as far as the bound allows.
    fn group(&mut self, group: &AutoScalingGroup) {
        let instances = group.instances();
        let Some(id) = group
            .auto_scaling_group_name()
            .and_then(|name| NodeId::group(name).ok())
        else {
            tracing::debug!(
                group = group.auto_scaling_group_name().unwrap_or_default(),
                "a group whose name is no node id is not discovered"
            );
            return;
        };
        if self.reported >= self.max {
            self.left_out = self.left_out.saturating_add(1 + instances.len());
            return;
        }
        self.reported += 1;
        let ready = instances.iter().filter(|i| serving(i)).count();
        let mut node =
            ObservedNode::new(id.clone()).available(count(ready), count(instances.len()));
        for (key, value) in [
            ("min_size", group.min_size()),
            ("max_size", group.max_size()),
            ("desired_capacity", group.desired_capacity()),
        ] {
            if let Some(value) = value {
                node = node.attribute(key, value.to_string());
            }
        }
        let tags: BTreeMap<String, String> = group
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect();
        for (key, value) in tags
            .iter()
            .take(MAX_ATTRIBUTES.saturating_sub(OWN_ATTRIBUTES))
        {
            node = node.attribute(format!("tag:{key}"), value.as_str());
        }
        if let Some(service) = self.identity.service(&tags) {
            node = node.part_of(Owner::Node(service.clone()));
            self.services.insert(service);
        }
        self.observation.nodes.push(node);
        for instance in instances {
            self.instance(&id, instance);
        }
    }

    /// Adds an instance of `group`, if the bound allows.
    fn instance(&mut self, group: &NodeId, instance: &Instance) {
        let Some(id) = instance
            .instance_id()
            .and_then(|i| NodeId::instance(i).ok())
        else {
            tracing::debug!(
                %group,
                instance = instance.instance_id().unwrap_or_default(),
                "an instance whose id is no node id is not discovered"
            );
            return;
        };
        if self.reported >= self.max {
            self.left_out = self.left_out.saturating_add(1);
            return;
        }
        self.reported += 1;
        let mut node = ObservedNode::new(id)
            .available(u32::from(serving(instance)), 1)
            .part_of(Owner::Node(group.clone()));
        for (key, value) in [
            (
                "lifecycle_state",
                instance.lifecycle_state().map(LifecycleState::as_str),
            ),
            ("health_status", instance.health_status()),
            ("availability_zone", instance.availability_zone()),
        ] {
            if let Some(value) = value {
                node = node.attribute(key, value);
            }
        }
        self.observation.nodes.push(node);
    }

    fn finish(mut self) -> Discovered {
        self.observation
            .nodes
            .extend(self.services.into_iter().map(ObservedNode::new));
        Discovered {
            observation: self.observation,
            left_out: self.left_out,
        }
    }
}

/// Whether an instance serves: `InService` and `Healthy`.
fn serving(instance: &Instance) -> bool {
    instance.lifecycle_state() == Some(&LifecycleState::InService)
        && instance
            .health_status()
            .is_some_and(|h| h.eq_ignore_ascii_case("Healthy"))
}

/// A count as an availability takes it.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use aws_sdk_autoscaling::types::TagDescription;
    use grace_graph::Availability;

    use super::*;

    fn instance(id: &str, state: &str, health: &str) -> Instance {
        Instance::builder()
            .instance_id(id)
            .lifecycle_state(LifecycleState::from(state))
            .health_status(health)
            .availability_zone("us-east-1a")
            .protected_from_scale_in(false)
            .build()
    }

    fn group(name: &str, instances: Vec<Instance>, tags: &[(&str, &str)]) -> AutoScalingGroup {
        let mut g = AutoScalingGroup::builder()
            .auto_scaling_group_name(name)
            .min_size(1)
            .max_size(10)
            .desired_capacity(3)
            .set_instances(Some(instances));
        for (k, v) in tags {
            g = g.tags(TagDescription::builder().key(*k).value(*v).build());
        }
        g.build()
    }

    fn observe(groups: &[AutoScalingGroup], max: usize) -> Discovered {
        let identity = Identity::default();
        let mut found = Found::new(&identity, max);
        for g in groups {
            found.group(g);
        }
        found.finish()
    }

    fn ids(d: &Discovered) -> Vec<&str> {
        d.observation.nodes.iter().map(|n| n.id.as_str()).collect()
    }

    #[test]
    fn a_group_is_available_as_far_as_its_instances_are_in_service_and_healthy() {
        let found = observe(
            &[group(
                "web",
                vec![
                    instance("i-1", "InService", "Healthy"),
                    instance("i-2", "InService", "Unhealthy"),
                    instance("i-3", "Pending", "Healthy"),
                ],
                &[("namespace", "shop"), ("app", "web")],
            )],
            10,
        );
        assert_eq!(
            ids(&found),
            [
                "group:web",
                "instance:i-1",
                "instance:i-2",
                "instance:i-3",
                "service:shop/web"
            ]
        );
        let nodes = &found.observation.nodes;
        assert_eq!(
            nodes[0].availability,
            Some(Availability { ready: 1, total: 3 })
        );
        assert_eq!(
            nodes[0].part_of,
            [Owner::Node(NodeId::service("shop", "web").unwrap())]
        );
        assert_eq!(nodes[0].attributes["desired_capacity"], "3");
        assert_eq!(nodes[0].attributes["tag:app"], "web");
        let available: Vec<_> = nodes[1..4].iter().map(|n| n.availability).collect();
        assert_eq!(
            available,
            [
                Some(Availability { ready: 1, total: 1 }),
                Some(Availability { ready: 0, total: 1 }),
                Some(Availability { ready: 0, total: 1 }),
            ]
        );
        assert_eq!(nodes[2].attributes["health_status"], "Unhealthy");
        assert_eq!(nodes[3].attributes["lifecycle_state"], "Pending");
        assert_eq!(
            nodes[3].part_of,
            [Owner::Node(NodeId::group("web").unwrap())]
        );
    }

    #[test]
    fn groups_and_instances_beyond_the_bound_are_counted_not_reported() {
        let found = observe(
            &[
                group(
                    "a",
                    vec![
                        instance("i-1", "InService", "Healthy"),
                        instance("i-2", "InService", "Healthy"),
                    ],
                    &[],
                ),
                group("b", vec![instance("i-3", "InService", "Healthy")], &[]),
            ],
            2,
        );
        assert_eq!(ids(&found), ["group:a", "instance:i-1"]);
        assert_eq!(found.left_out, 3, "i-2, b and i-3");
        assert_eq!(
            found.observation.nodes[0].availability,
            Some(Availability { ready: 2, total: 2 }),
            "the group counts the instances left out"
        );
    }

    #[test]
    fn a_group_whose_name_is_no_node_id_is_skipped_with_its_instances() {
        let found = observe(
            &[group(
                "bad name",
                vec![instance("i-1", "InService", "Healthy")],
                &[],
            )],
            10,
        );
        assert!(found.observation.is_empty());
        assert_eq!(found.left_out, 0);
    }
}
