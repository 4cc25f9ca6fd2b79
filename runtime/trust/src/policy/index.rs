//! What a policy's text says about the requests it can match, read once from Cedar's JSON form
//! of the policy, so that a decision evaluates only the policies that can match it:
//!
//! - its scope, which slicing already guarantees (the action, `principal == ...`,
//!   `resource == ...`), is dropped from the copy that is evaluated;
//! - an **index key**: a top-level conjunct of a `when` clause of the form
//!   `resource.<attribute> == "<text>"` or `resource.getTag("<key>") == "<text>"`. A policy
//!   with such a conjunct is satisfied only by resources with that value, so in a large bucket
//!   it is filed under the value and evaluated only for resources that have it.
//!
//! A policy left out this way would have evaluated to false, or (if an earlier conjunct fails,
//! e.g. an overflow) to an error; so only failures of such policies go unseen.

use cedar_policy::Policy;
use serde_json::Value;

/// A resource attribute or tag an index key is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    /// A string attribute (`name`, `environment`, `tier`, `owner`, `image`, `namespace`,
    /// `expr`).
    Attr(&'static str),
    /// A tag (label).
    Tag(String),
}

/// The string attributes resources have (see `grace.cedarschema`).
pub(crate) const STRING_ATTRS: [&str; 8] = [
    "name",
    "environment",
    "tier",
    "owner",
    "image",
    "namespace",
    "expr",
    "vendor",
];

/// The policy as evaluated: scope conditions that slicing guarantees removed. `None` if Cedar
/// cannot round-trip it (then the policy is evaluated as written, which is always correct).
pub(crate) fn without_guaranteed_scope(policy: &Policy) -> Option<Policy> {
    let mut json = policy.to_json().ok()?;
    let any = serde_json::json!({ "op": "All" });
    json["action"] = any.clone();
    for var in ["principal", "resource"] {
        if json[var]["op"] == "==" {
            json[var] = any.clone();
        }
    }
    Policy::from_json(Some(policy.id().clone()), json).ok()
}

/// The index key of a policy, if it has one; the most selective when it has several.
pub(crate) fn key(policy: &Policy) -> Option<(Field, String)> {
    let json = policy.to_json().ok()?;
    let mut found = Vec::new();
    for condition in json["conditions"].as_array()? {
        if condition["kind"] == "when" {
            conjuncts(&condition["body"], &mut found);
        }
    }
    // Environments have few values; names and tags pick out few resources.
    found.into_iter().min_by_key(|(field, _)| match field {
        Field::Attr("environment") => 1,
        _ => 0,
    })
}

/// Collects the index keys among the top-level `&&` conjuncts of `e`.
fn conjuncts(e: &Value, found: &mut Vec<(Field, String)>) {
    if let Some(and) = e.get("&&") {
        conjuncts(&and["left"], found);
        conjuncts(&and["right"], found);
    } else if let Some(eq) = e.get("==") {
        for (a, b) in [(&eq["left"], &eq["right"]), (&eq["right"], &eq["left"])] {
            if let (Some(field), Some(text)) = (resource_field(a), b["Value"].as_str()) {
                found.push((field, text.to_owned()));
            }
        }
    }
}

/// `resource.<string attribute>` or `resource.getTag("<literal>")`.
fn resource_field(e: &Value) -> Option<Field> {
    if let Some(dot) = e.get(".") {
        if dot["left"]["Var"] != "resource" {
            return None;
        }
        let attr = dot["attr"].as_str()?;
        return STRING_ATTRS
            .iter()
            .find(|a| **a == attr)
            .map(|a| Field::Attr(a));
    }
    let tag = e.get("getTag")?;
    if tag["left"]["Var"] != "resource" {
        return None;
    }
    Some(Field::Tag(tag["right"]["Value"].as_str()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::from_str(text).unwrap()
    }

    #[test]
    fn equalities_on_resource_strings_and_tags_are_keys() {
        let p = policy(
            r#"permit(principal, action, resource) when { context.risk_score < 9 && resource.hasTag("svc") && resource.getTag("svc") == "web" };"#,
        );
        assert_eq!(key(&p), Some((Field::Tag("svc".into()), "web".into())));
        let p = policy(
            r#"permit(principal, action, resource) when { "prod" == resource.environment };"#,
        );
        assert_eq!(key(&p), Some((Field::Attr("environment"), "prod".into())));
    }

    #[test]
    fn names_are_preferred_to_environments() {
        let p = policy(
            r#"permit(principal, action, resource) when { resource.environment == "prod" && resource.name == "web" };"#,
        );
        assert_eq!(key(&p), Some((Field::Attr("name"), "web".into())));
    }

    #[test]
    fn only_top_level_conjuncts_of_when_clauses_are_keys() {
        for text in [
            r#"permit(principal, action, resource) when { resource.tier == "db" || context.hour > 3 };"#,
            r#"permit(principal, action, resource) unless { resource.tier == "db" };"#,
            r#"permit(principal, action, resource) when { !(resource.tier == "db") };"#,
            r#"permit(principal, action, resource) when { principal.name == "x" };"#,
            r#"permit(principal, action, resource) when { context.weekday == "Fri" };"#,
        ] {
            assert_eq!(key(&policy(text)), None, "{text}");
        }
    }

    #[test]
    fn guaranteed_scope_is_dropped_and_the_rest_kept() {
        let p = policy(
            r#"permit(principal == Grace::Playbook::"a", action in [Grace::Action::"read"], resource is Grace::Group) when { context.hour > 3 };"#,
        );
        let text = without_guaranteed_scope(&p).unwrap().to_string();
        assert_eq!(
            text,
            "permit(principal, action, resource is Grace::Group) when { context.hour > 3 };"
        );
    }
}
