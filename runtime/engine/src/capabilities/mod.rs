//! One module per WIT interface, each implementing exactly the generated host trait by handing
//! its checks and its provider call to the pipeline ([`crate::pipeline`]).

mod anomaly;
mod clock;
mod config;
mod containers;
mod graph;
mod kubernetes;
mod log;
mod metrics;
mod notify;
mod scaling;
mod wasi_clock;

use grace_executor::{Labels, ident};

use crate::bindings::types::{self, Label};
use crate::host::HostState;
use crate::pipeline::Refusal;

impl types::Host for HostState {}

impl From<grace_executor::IdentError> for Refusal {
    /// A malformed identifier is an invalid argument, refused before any grant is consulted.
    fn from(e: grace_executor::IdentError) -> Self {
        Refusal::Invalid(e.to_string())
    }
}

/// Container labels from the guest, checked by Docker's rules ([`grace_executor::ident`]):
/// keys and values well-formed and bounded, no duplicate keys.
pub(crate) fn labels_from_guest(name: &'static str, labels: Vec<Label>) -> Result<Labels, Refusal> {
    let mut out = Labels::new();
    for Label { key, value } in labels {
        ident::docker_label_key(name, &key)?;
        ident::docker_label_value(name, &value)?;
        if out.insert(key.clone(), value).is_some() {
            return Err(Refusal::Invalid(format!(
                "`{name}` repeats the label `{key}`"
            )));
        }
    }
    Ok(out)
}

/// Labels for the guest.
pub(crate) fn labels_to_guest(labels: Labels) -> Vec<Label> {
    labels
        .into_iter()
        .map(|(key, value)| Label { key, value })
        .collect()
}

/// Labels for the ledger.
pub(crate) fn labels_json(labels: &[Label]) -> serde_json::Value {
    serde_json::Value::Object(
        labels
            .iter()
            .map(|l| (l.key.clone(), crate::pipeline::preview(&l.value)))
            .collect(),
    )
}

/// `resource` described by `labels`: its environment (label `environment` or `env`), tier and
/// owner, and every label as a tag, for the trust core's policies and risk score.
pub(crate) fn described_by(
    mut resource: grace_model::resource::Resource,
    labels: &Labels,
) -> grace_model::resource::Resource {
    let get = |keys: &[&str]| keys.iter().find_map(|k| labels.get(*k).cloned());
    if let Some(environment) = get(&["environment", "env"]) {
        resource = resource.environment(environment);
    }
    if let Some(tier) = get(&["tier"]) {
        resource = resource.tier(tier);
    }
    if let Some(owner) = get(&["owner", "team"]) {
        resource = resource.owner(owner);
    }
    for (k, v) in labels {
        resource = resource.label(k.clone(), v.clone());
    }
    resource
}
