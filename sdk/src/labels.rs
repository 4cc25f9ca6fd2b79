//! Conversions between [`Labels`] and the WIT `list<label>`.

use crate::Labels;
use crate::bindings::playbook::grace::playbook::types::Label;

pub(crate) fn from_wit(labels: Vec<Label>) -> Labels {
    labels.into_iter().map(|l| (l.key, l.value)).collect()
}

pub(crate) fn to_wit<K, V>(labels: impl IntoIterator<Item = (K, V)>) -> Vec<Label>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    labels
        .into_iter()
        .map(|(k, v)| Label {
            key: k.as_ref().to_owned(),
            value: v.as_ref().to_owned(),
        })
        .collect()
}
