//! GRACE's Cedar schema, parsed once, and the Cedar names built from it once (entity types,
//! action uids and action entities with their groups), so a decision parses nothing.

use std::str::FromStr;
use std::sync::OnceLock;

use std::collections::HashSet;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, Schema};
use cedar_policy_core::ast;

use crate::action::{Action, ResourceKind};

/// The schema's text (`grace.cedarschema`).
pub const SCHEMA_TEXT: &str = include_str!("../grace.cedarschema");

/// Everything Cedar-named that decisions reuse.
pub(crate) struct Names {
    pub schema: Schema,
    pub playbook: EntityTypeName,
    pub user: EntityTypeName,
    /// By [`ResourceKind`] order ([`ResourceKind::ALL`]).
    pub resources: Vec<EntityTypeName>,
    /// By [`Action::index`].
    pub actions: Vec<EntityUid>,
    /// By [`Action::index`]: the action entity, its groups as parents.
    pub core_action_entities: Vec<ast::Entity>,
    /// By [`Action::index`]: the uids of its groups.
    pub action_groups: Vec<Vec<EntityUid>>,
}

static NAMES: OnceLock<Result<Names, String>> = OnceLock::new();

fn action_uid(id: &str) -> Result<EntityUid, String> {
    let ty = EntityTypeName::from_str("Grace::Action").map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

fn build() -> Result<Names, String> {
    let (schema, _warnings) =
        Schema::from_cedarschema_str(SCHEMA_TEXT).map_err(|e| format!("{e:?}"))?;
    let ty = |name: &str| EntityTypeName::from_str(name).map_err(|e| e.to_string());
    let resources = ResourceKind::ALL
        .iter()
        .map(|k| ty(k.cedar_type()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut actions = Vec::new();
    let mut core_action_entities = Vec::new();
    let mut action_groups = Vec::new();
    for a in Action::all() {
        let uid = action_uid(a.cedar_id())?;
        let groups = a
            .groups()
            .iter()
            .map(|g| action_uid(g))
            .collect::<Result<Vec<_>, _>>()?;
        core_action_entities.push(ast::Entity::new_with_attr_partial_value(
            uid.clone().into(),
            [],
            HashSet::new(),
            groups.iter().cloned().map(Into::into).collect(),
            [],
        ));
        actions.push(uid);
        action_groups.push(groups);
    }
    // The static action table and the schema must agree: every action and group exists there.
    let declared: Vec<&EntityUid> = schema.actions().collect();
    for uid in actions.iter().chain(action_groups.iter().flatten()) {
        if !declared.contains(&uid) {
            return Err(format!("action `{uid}` is not declared in the schema"));
        }
    }
    Ok(Names {
        schema,
        playbook: ty("Grace::Playbook")?,
        user: ty("Grace::User")?,
        resources,
        actions,
        core_action_entities,
        action_groups,
    })
}

/// The names, built on first use. The schema is compiled into the crate and checked by its
/// tests, so an error here is a build defect; it is reported, not panicked on.
pub(crate) fn names() -> Result<&'static Names, &'static str> {
    match NAMES.get_or_init(build) {
        Ok(n) => Ok(n),
        Err(e) => Err(e.as_str()),
    }
}

/// GRACE's Cedar schema, e.g. to validate policies or requests with other Cedar tools.
pub fn schema() -> Option<&'static Schema> {
    names().ok().map(|n| &n.schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_parses_and_declares_every_action_and_group() {
        let names = names().unwrap();
        assert_eq!(names.actions.len(), Action::count());
    }

    fn id(uid: &EntityUid) -> String {
        uid.id().unescaped().to_owned()
    }

    /// The Cedar schema's actions are the capability descriptors' (`grace-model`): the same
    /// ids, each applying to its descriptor's resource kind and in its descriptor's groups, and
    /// no action in the schema that no descriptor has.
    #[test]
    fn the_schema_declares_exactly_the_descriptors_actions() {
        let schema = schema().unwrap();
        let entities = schema.action_entities().unwrap();
        let groups: Vec<String> = schema.action_groups().map(id).collect();
        let mut declared = Vec::new();
        for uid in schema.actions() {
            let name = id(uid);
            if groups.contains(&name) {
                continue;
            }
            let Some(action) = Action::from_cedar_id(&name) else {
                panic!("the schema declares `{name}`, which no capability descriptor has");
            };
            let resources: Vec<String> = schema
                .resources_for_action(uid)
                .unwrap()
                .map(ToString::to_string)
                .collect();
            assert_eq!(resources, [action.resource_kind().cedar_type()], "{name}");
            let mut in_groups: Vec<String> = entities.ancestors(uid).unwrap().map(id).collect();
            in_groups.sort();
            let mut expected: Vec<String> =
                action.groups().iter().map(|g| (*g).to_owned()).collect();
            expected.sort();
            assert_eq!(in_groups, expected, "groups of {name}");
            declared.push(name);
        }
        for a in Action::all() {
            assert!(
                declared.iter().any(|d| d == a.cedar_id()),
                "the capability descriptor of `{}.{}` names Cedar action `{}`, which the schema lacks",
                a.interface(),
                a.function_name(),
                a.cedar_id()
            );
        }
        let mut used: Vec<&str> = Action::all_groups();
        used.sort_unstable();
        let mut groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        groups.sort_unstable();
        assert_eq!(groups, used, "action groups");
    }
}
