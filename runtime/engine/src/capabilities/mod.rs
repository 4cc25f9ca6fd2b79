//! One module per WIT interface, each implementing exactly the generated host trait by handing
//! its checks and its backend call to the pipeline ([`crate::pipeline`]).

mod clock;
mod config;
mod containers;
mod kubernetes;
mod log;
mod metrics;
mod scaling;

use grace_executor::Labels;

use crate::bindings::types::{self, Label};
use crate::host::HostState;
use crate::pipeline::{Refusal, check_text};

impl types::Host for HostState {}

/// Labels from the guest, checked: keys non-empty, texts bounded, no duplicate keys.
pub(crate) fn labels_from_guest(name: &str, labels: Vec<Label>) -> Result<Labels, Refusal> {
    let mut out = Labels::new();
    for Label { key, value } in labels {
        check_text(name, &key)?;
        check_text(name, &value)?;
        if key.is_empty() {
            return Err(Refusal::Invalid(format!(
                "`{name}` has a label with an empty key"
            )));
        }
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
