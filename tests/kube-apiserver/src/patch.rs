//! The three patch formats of `PATCH`, chosen by `Content-Type`, applied to an object's JSON:
//!
//! - `application/merge-patch+json`: JSON merge patch (RFC 7386), complete;
//! - `application/json-patch+json`: JSON patch (RFC 6902), complete (`add`, `remove`, `replace`,
//!   `move`, `copy`, `test`);
//! - `application/strategic-merge-patch+json`: a merge patch in which lists whose elements all
//!   carry a `name` (containers, env, volumes) merge element by element by that name, and
//!   `$patch: delete` / `$patch: replace` work on those elements and on maps. Other directives
//!   (`$retainKeys`, `$deleteFromPrimitiveList`, ...) and lists keyed by anything but `name` are
//!   refused or replaced whole; this is the subset `kubectl rollout restart`, `kubectl scale` and
//!   kube's `Patch::Strategic` with partial objects use.
//!
//! Server-side apply (`application/apply-patch+yaml`) is refused with `415`.

use serde_json::{Map, Value};

use crate::status::ApiError;

/// A patch format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    Strategic,
    Json,
}

impl PatchKind {
    /// The format a `Content-Type` names.
    pub(crate) fn from_content_type(content_type: Option<&str>) -> Result<PatchKind, ApiError> {
        let raw = content_type.unwrap_or("");
        let essence = raw.split(';').next().unwrap_or("").trim();
        match essence {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/json-patch+json" => Ok(PatchKind::Json),
            _ => Err(ApiError::unsupported_media_type(raw)),
        }
    }
}

/// `target` with `body` (a patch of `kind`) applied.
pub(crate) fn apply(kind: PatchKind, target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the patch is not JSON: {e}")))?;
    let mut out = target.clone();
    match kind {
        PatchKind::Merge => merge(&mut out, &patch),
        PatchKind::Strategic => strategic(&mut out, &patch)?,
        PatchKind::Json => {
            let Value::Array(ops) = &patch else {
                return Err(ApiError::bad_request(
                    "a JSON patch must be an array of operations",
                ));
            };
            for op in ops {
                json_patch_op(&mut out, op)?;
            }
        }
    }
    Ok(out)
}

/// RFC 7386.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(existing) = target {
        for (key, value) in fields {
            if value.is_null() {
                existing.remove(key);
            } else {
                merge(existing.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn unsupported_directive(key: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the strategic merge patch directive `{key}` is not supported by the test API server"
    ))
}

fn strategic(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match fields.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replacement = fields.clone();
            replacement.remove("$patch");
            *target = Value::Object(replacement);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => return Err(unsupported_directive(&format!("$patch: {other}"))),
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(existing) = target else {
        return Ok(());
    };
    for (key, value) in fields {
        // kubectl sends the order of merged lists alongside them; order is not modelled here.
        if key.starts_with("$setElementOrder/") {
            continue;
        }
        if key.starts_with('$') {
            return Err(unsupported_directive(key));
        }
        if value.is_null() {
            existing.remove(key);
            continue;
        }
        let slot = existing.entry(key.clone()).or_insert(Value::Null);
        match (slot.as_array_mut(), value.as_array()) {
            (Some(current), Some(patch_items)) if keyed_by_name(current, patch_items) => {
                merge_named_list(current, patch_items)?;
            }
            _ => {
                strategic(slot, value)?;
                if slot.is_null() {
                    existing.remove(key);
                }
            }
        }
    }
    Ok(())
}

fn name_of(item: &Value) -> Option<&str> {
    item.get("name").and_then(Value::as_str)
}

/// Whether both lists are lists of named objects (so they merge by name).
fn keyed_by_name(current: &[Value], patch: &[Value]) -> bool {
    !patch.is_empty() && current.iter().chain(patch).all(|i| name_of(i).is_some())
}

fn merge_named_list(current: &mut Vec<Value>, patch: &[Value]) -> Result<(), ApiError> {
    for item in patch {
        let name = name_of(item).unwrap_or_default().to_owned();
        let position = current
            .iter()
            .position(|c| name_of(c) == Some(name.as_str()));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                current.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut current[i], item)?,
            (None, false) => {
                let mut added = Value::Null;
                strategic(&mut added, item)?;
                current.push(added);
            }
        }
    }
    Ok(())
}

/// The reference tokens of an RFC 6901 JSON pointer.
fn pointer_tokens(pointer: &str) -> Result<Vec<String>, ApiError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(ApiError::bad_request(format!(
            "`{pointer}` is not a JSON pointer"
        )));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn missing(path: &str) -> ApiError {
    ApiError::bad_request(format!("the JSON patch path `{path}` does not exist"))
}

/// The parent container of the pointer's target, and the last token.
fn parent_mut<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), ApiError> {
    let mut tokens = pointer_tokens(path)?;
    let Some(last) = tokens.pop() else {
        return Err(ApiError::bad_request(
            "a JSON patch cannot replace the whole object",
        ));
    };
    let mut node = doc;
    for token in &tokens {
        node = match node {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok((node, last))
}

fn get_at(doc: &Value, path: &str) -> Result<Value, ApiError> {
    doc.pointer(path).cloned().ok_or_else(|| missing(path))
}

fn add_at(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| missing(path))?
            };
            items.insert(index, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        Value::Object(map) => map.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(items) => {
            let index = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < items.len())
                .ok_or_else(|| missing(path))?;
            Ok(items.remove(index))
        }
        _ => Err(missing(path)),
    }
}

fn json_patch_op(doc: &mut Value, op: &Value) -> Result<(), ApiError> {
    let field = |name: &str| {
        op.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(format!("a JSON patch operation lacks `{name}`")))
    };
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| ApiError::bad_request("a JSON patch operation lacks `value`"))
    };
    let path = field("path")?;
    match field("op")? {
        "add" => add_at(doc, path, value()?),
        "remove" => remove_at(doc, path).map(|_| ()),
        "replace" => {
            remove_at(doc, path)?;
            add_at(doc, path, value()?)
        }
        "move" => {
            let moved = remove_at(doc, field("from")?)?;
            add_at(doc, path, moved)
        }
        "copy" => {
            let copied = get_at(doc, field("from")?)?;
            add_at(doc, path, copied)
        }
        "test" => {
            if get_at(doc, path)? == value()? {
                Ok(())
            } else {
                Err(ApiError::bad_request(format!(
                    "the JSON patch test of `{path}` failed"
                )))
            }
        }
        other => Err(ApiError::bad_request(format!(
            "unknown JSON patch operation `{other}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn patched(kind: PatchKind, target: Value, patch: Value) -> Value {
        apply(kind, &target, patch.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn merge_patch_sets_nested_fields_and_null_deletes() {
        let out = patched(
            PatchKind::Merge,
            json!({"spec": {"replicas": 2, "paused": true}, "keep": 1}),
            json!({"spec": {"replicas": 5, "paused": null}}),
        );
        assert_eq!(out, json!({"spec": {"replicas": 5}, "keep": 1}));
    }

    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let out = patched(
            PatchKind::Strategic,
            json!({"containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}]}),
            json!({"containers": [{"name": "app", "image": "a:2"}, {"name": "new", "image": "n:1"}]}),
        );
        assert_eq!(
            out,
            json!({"containers": [
                {"name": "app", "image": "a:2"},
                {"name": "side", "image": "s:1"},
                {"name": "new", "image": "n:1"}
            ]})
        );
    }

    #[test]
    fn strategic_patch_deletes_a_named_element() {
        let out = patched(
            PatchKind::Strategic,
            json!({"containers": [{"name": "app"}, {"name": "side"}]}),
            json!({"containers": [{"name": "side", "$patch": "delete"}]}),
        );
        assert_eq!(out, json!({"containers": [{"name": "app"}]}));
    }

    #[test]
    fn strategic_patch_refuses_unknown_directives() {
        let err = apply(
            PatchKind::Strategic,
            &json!({}),
            br#"{"spec": {"$retainKeys": ["a"]}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code().as_u16(), 400);
    }

    #[test]
    fn json_patch_applies_operations_in_order() {
        let out = patched(
            PatchKind::Json,
            json!({"spec": {"replicas": 2}, "list": [1, 3]}),
            json!([
                {"op": "replace", "path": "/spec/replicas", "value": 4},
                {"op": "add", "path": "/list/1", "value": 2},
                {"op": "add", "path": "/list/-", "value": 4},
                {"op": "copy", "from": "/spec/replicas", "path": "/copied"},
                {"op": "test", "path": "/copied", "value": 4},
                {"op": "add", "path": "/a~1b", "value": true}
            ]),
        );
        assert_eq!(
            out,
            json!({"spec": {"replicas": 4}, "list": [1, 2, 3, 4], "copied": 4, "a/b": true})
        );
    }

    #[test]
    fn json_patch_failing_test_is_refused() {
        let err = apply(
            PatchKind::Json,
            &json!({"a": 1}),
            br#"[{"op": "test", "path": "/a", "value": 2}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code().as_u16(), 400);
    }

    #[test]
    fn apply_patches_are_unsupported_media() {
        let err = PatchKind::from_content_type(Some("application/apply-patch+yaml")).unwrap_err();
        assert_eq!(err.code().as_u16(), 415);
    }
}
