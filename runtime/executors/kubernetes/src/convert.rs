//! From the API's `apps/v1` Deployment to the [`Deployment`] playbooks reason about.

use grace_executor::kubernetes::{Deployment, MAX_IMAGES, Revision};

/// A count from the API as a replica count: absent (the API omits zeros) or negative is 0.
fn count(value: Option<i32>) -> u32 {
    value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

/// The fields of `object` (in `namespace`, called `name`) a playbook sees.
pub(crate) fn deployment(
    namespace: &str,
    name: &str,
    object: &k8s_openapi::api::apps::v1::Deployment,
) -> Deployment {
    let status = object.status.clone().unwrap_or_default();
    Deployment {
        namespace: object
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned()),
        name: object
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| name.to_owned()),
        // The API server defaults `spec.replicas` to 1; only a hand-made object lacks it.
        replicas: object.spec.replicas.map_or(1, |r| count(Some(r))),
        ready_replicas: count(status.ready_replicas),
        updated_replicas: count(status.updated_replicas),
        available_replicas: count(status.available_replicas),
        generation: object
            .metadata
            .generation
            .and_then(|g| u64::try_from(g).ok())
            .unwrap_or(0),
        observed_generation: status
            .observed_generation
            .and_then(|g| u64::try_from(g).ok())
            .unwrap_or(0),
        resource_version: object.metadata.resource_version.clone(),
        restarted_at: object
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(crate::executor::RESTARTED_AT))
            .cloned(),
        template_hash: serde_json::to_value(&object.spec.template)
            .ok()
            .map(|t| grace_executor::kubernetes::template_hash(&t)),
    }
}

/// Outside text kept in a revision: at most this many characters.
const MAX_TEXT: usize = 512;

fn bounded(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// The revision a ReplicaSet is, if it names one (`deployment.kubernetes.io/revision`).
pub(crate) fn revision(rs: &k8s_openapi::api::apps::v1::ReplicaSet) -> Option<Revision> {
    let meta = &rs.metadata;
    let revision = meta
        .annotations
        .as_ref()?
        .get(crate::executor::REVISION)?
        .parse()
        .ok()?;
    let template = rs.spec.template.as_ref();
    let images = template
        .and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .take(MAX_IMAGES)
                .map(|c| bounded(c.image.as_deref().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    Some(Revision {
        revision,
        created_millis: meta
            .creation_timestamp
            .as_ref()
            .and_then(|t| u64::try_from(t.0.as_millisecond()).ok())
            .unwrap_or(0),
        images,
        change_cause: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(CHANGE_CAUSE))
            .map(|c| bounded(c)),
        template_hash: serde_json::to_value(template)
            .map(|t| grace_executor::kubernetes::template_hash(&t))
            .unwrap_or_default(),
    })
}

/// Why a revision was made, as `kubectl rollout history` shows it.
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{
        Deployment as ApiDeployment, DeploymentSpec, DeploymentStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn missing_status_fields_are_zero() {
        let object = ApiDeployment {
            metadata: ObjectMeta {
                name: Some("checkout".to_owned()),
                namespace: Some("shop".to_owned()),
                generation: Some(3),
                ..ObjectMeta::default()
            },
            spec: DeploymentSpec {
                replicas: Some(4),
                ..DeploymentSpec::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                updated_replicas: Some(1),
                ..DeploymentStatus::default()
            }),
        };
        let d = deployment("shop", "checkout", &object);
        assert_eq!(
            (
                d.replicas,
                d.ready_replicas,
                d.updated_replicas,
                d.available_replicas
            ),
            (4, 0, 1, 0)
        );
        assert_eq!((d.generation, d.observed_generation), (3, 2));
        assert!(!d.is_rolled_out());
    }

    #[test]
    fn a_deployment_without_status_is_not_rolled_out() {
        let object = ApiDeployment {
            metadata: ObjectMeta {
                generation: Some(1),
                ..ObjectMeta::default()
            },
            ..ApiDeployment::default()
        };
        let d = deployment("shop", "new", &object);
        assert_eq!((d.namespace.as_str(), d.name.as_str()), ("shop", "new"));
        assert_eq!(d.replicas, 1);
        assert!(!d.is_rolled_out());
    }
}
