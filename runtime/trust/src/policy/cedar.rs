//! A GRACE [`Request`] as Cedar sees it: the principal and resource entities with their
//! attributes and tags, the action entity with its groups, and the context.
//!
//! The attributes are listed once ([`Parts`]) and built two ways:
//!
//! - for decisions, straight into `cedar-policy-core` values: Cedar's public constructors
//!   evaluate every attribute as an expression and recompute the entity hierarchy's
//!   transitive closure, which cost about 15 µs per request here, most of a decision. The
//!   hierarchy is flat (only actions have parents, their groups, which have none), so the
//!   closure is already complete and is not recomputed;
//! - through Cedar's public API validated against the schema, which the tests use to prove
//!   that what decisions build fits the schema, for every action.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use cedar_policy::{Context, Entities, Entity, EntityUid, RestrictedExpression as Expr};
use cedar_policy_core::ast;
use cedar_policy_core::entities::{Entities as CoreEntities, NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use smol_str::SmolStr;

use super::index::STRING_ATTRS;
use super::schema::Names;
use crate::action::ResourceKind;
use crate::guardrails::simulate;
use crate::request::{Change, Principal, Request, Resource};
use crate::utc::Utc;

/// The parts of a Cedar authorization request.
pub(crate) struct CedarRequest {
    pub principal: EntityUid,
    pub resource: EntityUid,
    pub request: cedar_policy::Request,
    pub entities: Entities,
}

/// An attribute, tag or context value.
enum Val<'a> {
    Str(&'a str),
    Long(i64),
    Strs(&'a [String]),
}

type Attrs<'a> = Vec<(&'static str, Val<'a>)>;

/// Everything a Cedar request is made of, before it is built.
struct Parts<'a> {
    principal: EntityUid,
    principal_attrs: Attrs<'a>,
    resource: EntityUid,
    resource_attrs: Attrs<'a>,
    resource_tags: Vec<(&'a str, &'a str)>,
    context: Attrs<'a>,
}

/// 0..1 as a whole percentage.
fn percent(x: f64) -> Option<i64> {
    // Clamped to 0..=100 first, so the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    x.is_finite()
        .then(|| (x.clamp(0.0, 1.0) * 100.0).round() as i64)
}

fn parts<'a>(names: &Names, request: &'a Request, risk_score: u8) -> Result<Parts<'a>, String> {
    if request.resource.kind != request.action.resource_kind() {
        return Err(format!(
            "`{}` acts on a {}, not on a {}",
            request.action,
            request.action.resource_kind().name(),
            request.resource.kind.name()
        ));
    }
    let (principal, principal_attrs) = match &request.principal {
        Principal::Playbook {
            name,
            digest,
            version,
        } => (
            EntityUid::from_type_name_and_id(
                names.playbook.clone(),
                cedar_policy::EntityId::new(name),
            ),
            vec![
                ("name", Val::Str(name)),
                ("digest", Val::Str(digest)),
                ("version", Val::Str(version)),
            ],
        ),
        Principal::User { name, scopes } => (
            EntityUid::from_type_name_and_id(names.user.clone(), cedar_policy::EntityId::new(name)),
            vec![("name", Val::Str(name)), ("scopes", Val::Strs(scopes))],
        ),
    };

    let r = &request.resource;
    let resource = EntityUid::from_type_name_and_id(
        names.resources[r.kind as usize].clone(),
        cedar_policy::EntityId::new(&r.id),
    );
    let resource_attrs = STRING_ATTRS
        .iter()
        .filter_map(|attr| resource_string(r, attr).map(|v| (*attr, Val::Str(v))))
        .collect();
    let resource_tags = if matches!(
        r.kind,
        ResourceKind::Query | ResourceKind::Node | ResourceKind::Channel
    ) {
        Vec::new()
    } else {
        r.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    };

    Ok(Parts {
        principal,
        principal_attrs,
        resource,
        resource_attrs,
        resource_tags,
        context: context(request, risk_score),
    })
}

/// The resource's string attribute `attr` as policies see it, `None` when it has none (see
/// the entity types of the schema).
pub(crate) fn resource_string<'a>(r: &'a Resource, attr: &str) -> Option<&'a str> {
    match (r.kind, attr) {
        (ResourceKind::Node, "name") => Some(&r.id),
        (ResourceKind::Node, "namespace") => r.namespace.as_deref(),
        (ResourceKind::Node, _) => None,
        (ResourceKind::Query, "expr") => Some(&r.id),
        (ResourceKind::Query, _) | (_, "expr") => None,
        (ResourceKind::Channel, "name") => Some(&r.id),
        // The vendor is the channel name's prefix (`slack:#ops`), as `grace_model::channel`
        // writes it.
        (ResourceKind::Channel, "vendor") => Some(r.id.split(':').next().unwrap_or_default()),
        (ResourceKind::Channel, _) | (_, "vendor") => None,
        (_, "name") => Some(r.display_name()),
        (_, "environment") => Some(r.environment_or_unknown()),
        (_, "tier") => r.tier.as_deref(),
        (_, "owner") => r.owner.as_deref(),
        (ResourceKind::Container, "image") => r.image.as_deref(),
        (ResourceKind::Deployment, "namespace") => Some(
            r.namespace
                .as_deref()
                .or_else(|| r.id.split_once('/').map(|(ns, _)| ns))
                .unwrap_or(""),
        ),
        _ => None,
    }
}

/// The context (see the `Context` type of the schema).
fn context(request: &Request, risk_score: u8) -> Attrs<'_> {
    let state = request.state;
    let (delta, size): (i64, u32) = match request.change {
        Change::None => (0, 0),
        Change::Capacity { to } => {
            let from = state.capacity.unwrap_or(0);
            (i64::from(to) - i64::from(from), to.abs_diff(from))
        }
        Change::Restart { instances } => (0, instances),
        Change::Stop { instances } => (-i64::from(instances), instances),
        Change::Start { instances } => (i64::from(instances), instances),
    };
    let change_percent = match state.capacity {
        _ if size == 0 => 0,
        Some(c) if c > 0 => (u64::from(size) * 100).div_ceil(u64::from(c)),
        _ => 100,
    };
    let utc = Utc::from_millis(request.at_millis);
    let mut c: Attrs<'_> = Vec::with_capacity(18);
    c.push(("change_delta", Val::Long(delta)));
    c.push(("change_size", Val::Long(size.into())));
    c.push((
        "change_percent",
        Val::Long(i64::try_from(change_percent).unwrap_or(i64::MAX)),
    ));
    if let Some(capacity) = state.capacity {
        c.push(("current_capacity", Val::Long(capacity.into())));
    }
    if matches!(
        request.change,
        Change::Capacity { .. } | Change::Stop { .. } | Change::Start { .. }
    ) && let Some(proposed) = simulate(state, request.change).after.capacity
    {
        c.push(("proposed_capacity", Val::Long(proposed.into())));
    }
    if let Some(h) = state.healthy {
        c.push(("healthy", Val::Long(h.into())));
    }
    c.push(("risk_score", Val::Long(risk_score.into())));
    c.push((
        "recent_failures",
        Val::Long(request.history.recent_failures.into()),
    ));
    let learned = request.history.learned.clone().unwrap_or_default();
    c.push(("judged_runs", Val::Long(learned.judged.into())));
    c.push((
        "not_cleared_streak",
        Val::Long(learned.not_cleared_streak.into()),
    ));
    if let Some(p) = learned.success_percent() {
        c.push(("success_rate", Val::Long(p.into())));
    }
    if let Some(a) = request.signal.anomaly_score.and_then(percent) {
        c.push(("anomaly_score", Val::Long(a)));
    }
    if let Some(conf) = request.signal.confidence.and_then(percent) {
        c.push(("signal_confidence", Val::Long(conf)));
    }
    if let Some(id) = &request.signal.incident_id {
        c.push(("incident_id", Val::Str(id)));
    }
    c.push((
        "timestamp",
        Val::Long(i64::try_from(request.at_millis / 1000).unwrap_or(i64::MAX)),
    ));
    c.push(("hour", Val::Long(utc.hour.into())));
    c.push(("minute", Val::Long(utc.minute.into())));
    c.push(("day_of_week", Val::Long(i64::from(utc.weekday) + 1)));
    c.push(("weekday", Val::Str(utc.weekday_name())));
    c
}

// --- The fast path: core values, no re-evaluation, no closure recomputation -----------------

fn core_value(v: &Val<'_>) -> ast::Value {
    match v {
        Val::Str(s) => ast::Value::from(SmolStr::new(s)),
        Val::Long(n) => ast::Value::from(*n),
        Val::Strs(list) => {
            ast::Value::set(list.iter().map(|s| ast::Value::from(SmolStr::new(s))), None)
        }
    }
}

fn core_entity(uid: EntityUid, attrs: &Attrs<'_>, tags: &[(&str, &str)]) -> ast::Entity {
    ast::Entity::new_with_attr_partial_value(
        uid.into(),
        attrs
            .iter()
            .map(|(k, v)| (SmolStr::new_static(k), core_value(v).into())),
        HashSet::new(),
        HashSet::new(),
        tags.iter()
            .map(|(k, v)| (SmolStr::new(k), ast::Value::from(SmolStr::new(v)).into())),
    )
}

/// Builds the Cedar request for `request` with `risk_score` in its context, for a decision.
pub(crate) fn build(
    names: &Names,
    request: &Request,
    risk_score: u8,
) -> Result<CedarRequest, String> {
    let parts = parts(names, request, risk_score)?;
    let action = names.actions[request.action.index()].clone();
    let entities = CoreEntities::from_entities(
        [
            core_entity(parts.principal.clone(), &parts.principal_attrs, &[]),
            core_entity(
                parts.resource.clone(),
                &parts.resource_attrs,
                &parts.resource_tags,
            ),
            names.core_action_entities[request.action.index()].clone(),
        ],
        None::<&NoEntitiesSchema>,
        // The hierarchy is flat: action entities list all their groups as parents, and
        // nothing else has parents, so the transitive closure is complete already.
        TCComputation::AssumeAlreadyComputed,
        Extensions::all_available(),
    )
    .map_err(|e| format!("entities: {e}"))?;
    let context: BTreeMap<SmolStr, ast::Value> = parts
        .context
        .iter()
        .map(|(k, v)| (SmolStr::new_static(k), core_value(v)))
        .collect();
    let cedar = cedar_policy::Request::new(
        parts.principal.clone(),
        action,
        parts.resource.clone(),
        Context::from(ast::Context::Value(Arc::new(context))),
        None,
    )
    .map_err(|e| format!("request: {e}"))?;
    Ok(CedarRequest {
        principal: parts.principal,
        resource: parts.resource,
        request: cedar,
        entities: Entities::from(entities),
    })
}

// --- The checked path: Cedar's public API, validated against the schema ---------------------

fn expr(v: &Val<'_>) -> Expr {
    match v {
        Val::Str(s) => Expr::new_string((*s).to_owned()),
        Val::Long(n) => Expr::new_long(*n),
        Val::Strs(list) => Expr::new_set(list.iter().map(|s| Expr::new_string(s.clone()))),
    }
}

fn public_entity(
    uid: EntityUid,
    attrs: &Attrs<'_>,
    tags: &[(&str, &str)],
) -> Result<Entity, String> {
    Entity::new_with_tags(
        uid,
        attrs.iter().map(|(k, v)| ((*k).to_owned(), expr(v))),
        [],
        tags.iter()
            .map(|(k, v)| ((*k).to_owned(), Expr::new_string((*v).to_owned()))),
    )
    .map_err(|e| e.to_string())
}

/// Builds the request through Cedar's public API, validating the entities and the request
/// against the schema; then checks that the fast path builds the very same thing.
pub(crate) fn validate(names: &Names, request: &Request, risk_score: u8) -> Result<(), String> {
    let parts = parts(names, request, risk_score)?;
    let schema = &names.schema;
    let entities = Entities::from_entities(
        [
            public_entity(parts.principal.clone(), &parts.principal_attrs, &[])?,
            public_entity(
                parts.resource.clone(),
                &parts.resource_attrs,
                &parts.resource_tags,
            )?,
        ],
        Some(schema),
    )
    .map_err(|e| format!("entities do not fit the schema: {e}"))?;
    let context = Context::from_pairs(
        parts
            .context
            .iter()
            .map(|(k, v)| ((*k).to_owned(), expr(v))),
    )
    .map_err(|e| format!("context: {e}"))?;
    let action = names.actions[request.action.index()].clone();
    let checked = cedar_policy::Request::new(
        parts.principal.clone(),
        action,
        parts.resource.clone(),
        context,
        Some(schema),
    )
    .map_err(|e| format!("request does not fit the schema: {e}"))?;

    let fast = build(names, request, risk_score)?;
    if fast.request.context() != checked.context() {
        return Err("the fast path builds a different context".into());
    }
    for uid in [
        &parts.principal,
        &parts.resource,
        &names.actions[request.action.index()],
    ] {
        let (a, b) = (fast.entities.get(uid), entities.get(uid));
        match (a, b) {
            (Some(a), Some(b)) if a.deep_eq(b) => {}
            _ => return Err(format!("the fast path builds a different entity `{uid}`")),
        }
    }
    Ok(())
}
