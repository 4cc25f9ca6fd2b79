//! Which objects a list or a watch returns (deployments, services, endpoint slices alike: only
//! metadata is looked at): the namespace of the path, `fieldSelector`
//! (`metadata.name` and `metadata.namespace`, with `=`, `==` and `!=`) and `labelSelector` in its
//! equality-based form (`k=v`, `k==v`, `k!=v`, `k`, `!k`). Set-based label selectors (`in`,
//! `notin`) and other fields are refused with `400`, rather than ignored.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// The objects a request selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    namespace: Option<String>,
    fields: Vec<Requirement>,
    labels: Vec<Requirement>,
}

fn split_requirement(term: &str) -> Option<(&str, &str, bool)> {
    if let Some((k, v)) = term.split_once("!=") {
        return Some((k.trim(), v.trim(), false));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Some((k.trim(), v.trim(), true));
    }
    term.split_once('=')
        .map(|(k, v)| (k.trim(), v.trim(), true))
}

fn parse_fields(text: &str) -> Result<Vec<Requirement>, ApiError> {
    let mut out = Vec::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let Some((key, value, equal)) = split_requirement(term) else {
            return Err(ApiError::bad_request(format!(
                "invalid field selector `{term}`: expected `field=value` or `field!=value`"
            )));
        };
        if !matches!(key, "metadata.name" | "metadata.namespace") {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {key}"
            )));
        }
        out.push(if equal {
            Requirement::Equals(key.to_owned(), value.to_owned())
        } else {
            Requirement::NotEquals(key.to_owned(), value.to_owned())
        });
    }
    Ok(out)
}

fn parse_labels(text: &str) -> Result<Vec<Requirement>, ApiError> {
    let mut out = Vec::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if term.contains('(') || term.contains(' ') {
            return Err(ApiError::bad_request(format!(
                "unsupported label selector `{term}`: the test server knows equality-based selectors only"
            )));
        }
        out.push(match split_requirement(term) {
            Some((k, v, true)) => Requirement::Equals(k.to_owned(), v.to_owned()),
            Some((k, v, false)) => Requirement::NotEquals(k.to_owned(), v.to_owned()),
            None => match term.strip_prefix('!') {
                Some(k) => Requirement::NotExists(k.to_owned()),
                None => Requirement::Exists(term.to_owned()),
            },
        });
    }
    Ok(out)
}

fn holds(requirement: &Requirement, lookup: impl Fn(&str) -> Option<String>) -> bool {
    match requirement {
        Requirement::Equals(k, v) => lookup(k).as_deref() == Some(v.as_str()),
        Requirement::NotEquals(k, v) => lookup(k).as_deref() != Some(v.as_str()),
        Requirement::Exists(k) => lookup(k).is_some(),
        Requirement::NotExists(k) => lookup(k).is_none(),
    }
}

impl Filter {
    /// Objects of `namespace` (every namespace when `None`) matching both selectors.
    pub(crate) fn parse(
        namespace: Option<&str>,
        field_selector: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Filter, ApiError> {
        Ok(Filter {
            namespace: namespace.map(str::to_owned),
            fields: field_selector
                .map(parse_fields)
                .transpose()?
                .unwrap_or_default(),
            labels: label_selector
                .map(parse_labels)
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// The objects of `namespace` whose label `key` is `value`.
    pub(crate) fn label_equals(namespace: &str, key: &str, value: &str) -> Filter {
        Filter {
            namespace: Some(namespace.to_owned()),
            fields: Vec::new(),
            labels: vec![Requirement::Equals(key.to_owned(), value.to_owned())],
        }
    }

    /// Whether `deployment` is selected.
    pub(crate) fn matches(&self, deployment: &Deployment) -> bool {
        self.matches_meta(&deployment.metadata)
    }

    /// Whether the object with metadata `meta` is selected.
    pub(crate) fn matches_meta(&self, meta: &ObjectMeta) -> bool {
        if let Some(ns) = &self.namespace
            && meta.namespace.as_deref() != Some(ns.as_str())
        {
            return false;
        }
        let field = |key: &str| match key {
            "metadata.name" => meta.name.clone(),
            "metadata.namespace" => meta.namespace.clone(),
            _ => None,
        };
        let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key).cloned());
        self.fields.iter().all(|r| holds(r, field)) && self.labels.iter().all(|r| holds(r, label))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn labelled(ns: &str, name: &str, labels: &[(&str, &str)]) -> Deployment {
        let mut d = crate::deployment(ns, name, 1);
        d.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        d
    }

    #[test]
    fn field_selector_on_name_selects_one_object() {
        let f = Filter::parse(Some("shop"), Some("metadata.name=checkout"), None).unwrap();
        assert!(f.matches(&labelled("shop", "checkout", &[])));
        assert!(!f.matches(&labelled("shop", "cart", &[])));
        assert!(!f.matches(&labelled("other", "checkout", &[])));
    }

    #[test]
    fn equality_label_selectors_combine_with_and() {
        let f = Filter::parse(None, None, Some("tier=web,!canary,team!=ops")).unwrap();
        assert!(f.matches(&labelled("a", "x", &[("tier", "web")])));
        assert!(!f.matches(&labelled("a", "x", &[("tier", "web"), ("canary", "1")])));
        assert!(!f.matches(&labelled("a", "x", &[("tier", "web"), ("team", "ops")])));
        assert!(!f.matches(&labelled("a", "x", &[("tier", "db")])));
    }

    #[test]
    fn unsupported_selectors_are_refused_not_ignored() {
        assert!(Filter::parse(None, Some("spec.replicas=3"), None).is_err());
        assert!(Filter::parse(None, None, Some("tier in (web,db)")).is_err());
    }
}
