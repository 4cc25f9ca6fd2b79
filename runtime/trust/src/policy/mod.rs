//! Cedar policies: the active, compiled set and how a request is evaluated against it.
//!
//! Cedar's authorizer evaluates every policy of the set it is given, about a microsecond
//! each here, so with a thousand policies a decision would cost a millisecond. The active set
//! is therefore sliced once, when it changes:
//!
//! 1. per action, following `action ==` and `action in [...]` (groups included);
//! 2. then by `principal == ...` and `resource == ...` into four buckets: general, by
//!    principal, by resource, by both;
//! 3. then, in buckets of [`INDEX_FROM`] policies or more, by an index key read from the
//!    `when` clause (`resource.tier == "db"`, `resource.getTag("app") == "web"`, see
//!    [`index`]).
//!
//! A request is evaluated only against what it can match (one bucket of each kind, and in
//! each the unindexed policies and those filed under its own values), with one Cedar
//! evaluator, and from each policy the scope that slicing already guarantees is dropped. The
//! answer is Cedar's: a policy left out has a scope or a conjunct that is false for the
//! request.

pub(crate) mod cedar;
pub(crate) mod index;
pub(crate) mod schema;
pub(crate) mod source;
pub(crate) mod store;

use std::collections::HashMap;

use cedar_policy::{
    ActionConstraint, EntityUid, PolicySet, PrincipalConstraint, ResourceConstraint,
};
use cedar_policy_core::ast;
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;

use crate::action::Action;
use crate::error::PolicyError;
use crate::request::Resource;
use index::Field;
use schema::Names;
use source::Compiled;
pub use source::{Effect, PolicyDecision, PolicyInfo};

/// Buckets smaller than this are evaluated whole: splitting them saves less than it costs.
pub(crate) const INDEX_FROM: usize = 16;

/// Policies (by position in [`Policies::infos`]) of one bucket.
#[derive(Default)]
struct Bucket {
    /// Evaluated for every request reaching the bucket.
    rest: Vec<usize>,
    /// Evaluated only for resources whose field has the value.
    indexed: Vec<(Field, HashMap<String, Vec<usize>>)>,
}

impl Bucket {
    fn new(members: &[usize], keys: &[Option<(Field, String)>]) -> Self {
        let mut b = Bucket::default();
        if members.len() < INDEX_FROM {
            b.rest = members.to_vec();
            return b;
        }
        for &i in members {
            match &keys[i] {
                None => b.rest.push(i),
                Some((field, value)) => {
                    let at = match b.indexed.iter().position(|(f, _)| f == field) {
                        Some(at) => at,
                        None => {
                            b.indexed.push((field.clone(), HashMap::new()));
                            b.indexed.len() - 1
                        }
                    };
                    b.indexed[at].1.entry(value.clone()).or_default().push(i);
                }
            }
        }
        b
    }

    /// The policies a request on `resource` can match.
    fn matching<'a>(&'a self, resource: &'a Resource) -> impl Iterator<Item = usize> + 'a {
        let indexed = self.indexed.iter().flat_map(move |(field, by_value)| {
            let value = match field {
                Field::Attr(attr) => cedar::resource_string(resource, attr),
                Field::Tag(key) => resource.labels.get(key).map(String::as_str),
            };
            value
                .and_then(|v| by_value.get(v))
                .into_iter()
                .flatten()
                .copied()
        });
        self.rest.iter().copied().chain(indexed)
    }
}

/// The buckets of one action.
#[derive(Default)]
struct Slices {
    general: Bucket,
    by_principal: HashMap<EntityUid, Bucket>,
    by_resource: HashMap<EntityUid, Bucket>,
    by_both: HashMap<EntityUid, HashMap<EntityUid, Bucket>>,
}

/// Bucket members while the slices are being built.
#[derive(Default)]
struct Members {
    general: Vec<usize>,
    by_principal: HashMap<EntityUid, Vec<usize>>,
    by_resource: HashMap<EntityUid, Vec<usize>>,
    by_both: HashMap<EntityUid, HashMap<EntityUid, Vec<usize>>>,
}

impl Members {
    fn add(&mut self, i: usize, policy: &cedar_policy::Policy) {
        let p = match policy.principal_constraint() {
            PrincipalConstraint::Eq(uid) => Some(uid),
            _ => None,
        };
        let r = match policy.resource_constraint() {
            ResourceConstraint::Eq(uid) => Some(uid),
            _ => None,
        };
        match (p, r) {
            (None, None) => self.general.push(i),
            (Some(p), None) => self.by_principal.entry(p).or_default().push(i),
            (None, Some(r)) => self.by_resource.entry(r).or_default().push(i),
            (Some(p), Some(r)) => self
                .by_both
                .entry(p)
                .or_default()
                .entry(r)
                .or_default()
                .push(i),
        }
    }

    fn into_slices(self, keys: &[Option<(Field, String)>]) -> Slices {
        let bucket = |m: Vec<usize>| Bucket::new(&m, keys);
        Slices {
            general: bucket(self.general),
            by_principal: self
                .by_principal
                .into_iter()
                .map(|(k, m)| (k, bucket(m)))
                .collect(),
            by_resource: self
                .by_resource
                .into_iter()
                .map(|(k, m)| (k, bucket(m)))
                .collect(),
            by_both: self
                .by_both
                .into_iter()
                .map(|(p, by_r)| (p, by_r.into_iter().map(|(r, m)| (r, bucket(m))).collect()))
                .collect(),
        }
    }
}

impl Slices {
    /// The policies a request of `principal` on `resource` can match.
    fn matching<'a>(
        &'a self,
        principal: &EntityUid,
        resource_uid: &EntityUid,
        resource: &'a Resource,
    ) -> impl Iterator<Item = usize> + 'a {
        [
            Some(&self.general),
            self.by_principal.get(principal),
            self.by_resource.get(resource_uid),
            self.by_both
                .get(principal)
                .and_then(|m| m.get(resource_uid)),
        ]
        .into_iter()
        .flatten()
        .flat_map(move |b| b.matching(resource))
    }
}

/// What the policies said about one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Evaluation {
    /// Ids of the satisfied forbid policies (and of forbids that failed to evaluate).
    pub forbids: Vec<String>,
    /// Ids of the satisfied permits.
    pub permits: Vec<String>,
    /// Policies that failed to evaluate, with Cedar's message.
    pub errors: Vec<(String, String)>,
    /// How many policies were evaluated.
    pub evaluated: usize,
}

/// The compiled active policies, at one store revision. Immutable: the store swaps in a new
/// one after every change.
pub struct Policies {
    revision: u64,
    infos: Vec<PolicyInfo>,
    /// By position in `infos`: the policy as written (for the bare Cedar comparison).
    written: Vec<cedar_policy::Policy>,
    /// By position in `infos`: the policy as evaluated (guaranteed scope dropped).
    evaluated: Vec<ast::Policy>,
    index: HashMap<String, usize>,
    slices: Vec<Slices>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("revision", &self.revision)
            .field("policies", &self.infos.len())
            .finish_non_exhaustive()
    }
}

impl Policies {
    /// No policies: every request within the grants is allowed (see the crate documentation).
    pub fn empty() -> Self {
        Policies {
            revision: 0,
            infos: Vec::new(),
            written: Vec::new(),
            evaluated: Vec::new(),
            index: HashMap::new(),
            slices: Action::all().map(|_| Slices::default()).collect(),
        }
    }

    /// Compiles policy sets given as `(name, text)`, e.g. to try policies without storing them
    /// (`grace policy test --file`). Each set is checked as [`PolicyStore::add`] checks it.
    ///
    /// [`PolicyStore::add`]: crate::PolicyStore::add
    pub fn compile<'a>(
        sets: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, PolicyError> {
        let mut all = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (name, text) in sets {
            if !seen.insert(name) {
                return Err(PolicyError::Rejected {
                    set: name.to_owned(),
                    problems: vec![crate::Problem {
                        line: 0,
                        column: 0,
                        policy: None,
                        message: "the same policy set name is given twice".into(),
                    }],
                });
            }
            all.extend(source::compile(name, text)?);
        }
        Self::build(0, &all).map_err(|message| PolicyError::Rejected {
            set: String::new(),
            problems: vec![crate::Problem {
                line: 0,
                column: 0,
                policy: None,
                message,
            }],
        })
    }

    /// Slices compiled policies (already checked) into the active set.
    pub(crate) fn build(revision: u64, compiled: &[Compiled]) -> Result<Self, String> {
        let names = schema::names()?;
        let keys: Vec<Option<(Field, String)>> =
            compiled.iter().map(|c| index::key(&c.policy)).collect();
        let mut members: Vec<Members> = Action::all().map(|_| Members::default()).collect();
        for (i, c) in compiled.iter().enumerate() {
            for a in Action::all() {
                if applies_to(names, &c.policy.action_constraint(), a) {
                    members[a.index()].add(i, &c.policy);
                }
            }
        }
        let slices = members.into_iter().map(|m| m.into_slices(&keys)).collect();
        let evaluated = compiled
            .iter()
            .map(|c| {
                index::without_guaranteed_scope(&c.policy)
                    .unwrap_or_else(|| c.policy.clone())
                    .as_ref()
                    .clone()
            })
            .collect();
        let infos: Vec<PolicyInfo> = compiled.iter().map(|c| c.info.clone()).collect();
        let index = infos
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        Ok(Policies {
            revision,
            infos,
            written: compiled.iter().map(|c| c.policy.clone()).collect(),
            evaluated,
            index,
            slices,
        })
    }

    /// The store revision these policies are from (0 when compiled outside a store).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// How many policies are active.
    pub fn len(&self) -> usize {
        self.infos.len()
    }

    /// Whether no policy is active.
    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }

    /// Every active policy.
    pub fn iter(&self) -> impl Iterator<Item = &PolicyInfo> {
        self.infos.iter()
    }

    /// One policy by id (`<set>/<id>`).
    pub fn get(&self, id: &str) -> Option<&PolicyInfo> {
        self.index.get(id).map(|&i| &self.infos[i])
    }

    /// How many policies a decision about `request` (built as `cedar`) evaluates.
    pub(crate) fn evaluated_for(
        &self,
        request: &crate::Request,
        cedar: &cedar::CedarRequest,
    ) -> usize {
        self.slices[request.action.index()]
            .matching(&cedar.principal, &cedar.resource, &request.resource)
            .count()
    }

    /// Evaluates `request` (built as `cedar`) against the policies it can match.
    pub(crate) fn evaluate(
        &self,
        request: &crate::Request,
        cedar: &cedar::CedarRequest,
    ) -> Evaluation {
        let mut out = Evaluation::default();
        let evaluator = Evaluator::new(
            cedar.request.as_ref().clone(),
            cedar.entities.as_ref(),
            Extensions::all_available(),
        );
        let candidates = self.slices[request.action.index()].matching(
            &cedar.principal,
            &cedar.resource,
            &request.resource,
        );
        for i in candidates {
            out.evaluated += 1;
            let info = &self.infos[i];
            match evaluator.evaluate(&self.evaluated[i]) {
                Ok(false) => {}
                Ok(true) => match info.effect {
                    Effect::Forbid => out.forbids.push(info.id.clone()),
                    Effect::Permit => out.permits.push(info.id.clone()),
                },
                Err(e) => {
                    // A forbid that cannot be evaluated is taken as matching: failing open
                    // would let an action through that its author meant to forbid.
                    if info.effect == Effect::Forbid {
                        out.forbids.push(info.id.clone());
                    }
                    out.errors.push((info.id.clone(), e.to_string()));
                }
            }
        }
        out.forbids.sort();
        out.permits.sort();
        out.errors.sort();
        out
    }

    /// Every active policy as written, in one Cedar policy set, e.g. to compare with Cedar
    /// alone.
    pub fn to_policy_set(&self) -> PolicySet {
        // Ids are unique across the active set, so this cannot fail.
        PolicySet::from_policies(self.written.iter().cloned()).unwrap_or_default()
    }
}

/// Whether a policy with action scope `constraint` can apply to `action`.
fn applies_to(names: &Names, constraint: &ActionConstraint, action: Action) -> bool {
    let uid = &names.actions[action.index()];
    let groups = &names.action_groups[action.index()];
    match constraint {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => a == uid,
        ActionConstraint::In(list) => list.iter().any(|a| a == uid || groups.contains(a)),
    }
}
