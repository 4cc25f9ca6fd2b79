//! Turning one named policy set's text into checked Cedar policies: parse (syntax errors with
//! line and column), GRACE's annotations (`@id`, `@decision`, `@approvers`, `@reason`), then
//! validation against the schema in strict mode (again with line and column).

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Effect as CedarEffect, Policy, PolicyId, PolicySet, ValidationMode, ValidationWarning,
    Validator,
};
use miette::Diagnostic;
use serde::{Deserialize, Serialize};

use super::schema::names;
use crate::error::{PolicyError, Problem};

/// Whether a policy grants or forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// `permit`.
    Permit,
    /// `forbid`.
    Forbid,
}

/// What a policy decides when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum PolicyDecision {
    /// A plain `permit`.
    Allow,
    /// A `permit` annotated `@decision("require_approval")`: allowed once enough people approve.
    RequireApproval {
        /// How many distinct approvers (`@approvers("2")`; 1 when absent).
        approvers: u8,
    },
    /// A `forbid`.
    Deny,
}

/// One loaded policy, as explanations show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// `<set>/<@id>`, or `<set>/policy<n>` (its position from 1) when it has no `@id`.
    pub id: String,
    /// The policy set it belongs to.
    pub set: String,
    /// `permit` or `forbid`.
    pub effect: Effect,
    /// What it decides.
    pub decision: PolicyDecision,
    /// Its `@reason`, if any.
    pub reason: Option<String>,
    /// All its annotations.
    pub annotations: BTreeMap<String, String>,
    /// The line it starts on in its set's text.
    pub line: u32,
    /// Its text.
    pub text: String,
}

/// A policy ready to evaluate: the Cedar policy (under its GRACE id) and what to show of it.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub policy: Policy,
    pub info: PolicyInfo,
}

/// Annotations GRACE gives a meaning to.
const ID: &str = "id";
const DECISION: &str = "decision";
const APPROVERS: &str = "approvers";
const REASON: &str = "reason";
/// The most approvers a policy may ask for.
const MAX_APPROVERS: u8 = 9;

/// Checks a policy set name: 1 to 64 of `a-z 0-9 - _ .`, starting with a letter or digit.
pub(crate) fn check_name(name: &str) -> Result<(), PolicyError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(PolicyError::Name {
            name: name.to_owned(),
            reason: "use 1 to 64 lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit",
        })
    }
}

/// Line and column (from 1, in characters) of byte `offset` in `text`.
pub(crate) fn position(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// A problem from a Cedar diagnostic: its first labelled span gives the position.
fn problem(text: &str, d: &dyn Diagnostic, message: String, policy: Option<String>) -> Problem {
    let (line, column) = d
        .labels()
        .and_then(|mut labels| labels.next())
        .map_or((0, 0), |l| position(text, l.offset()));
    let message = match d.help() {
        Some(help) => format!("{message} ({help})"),
        None => message,
    };
    Problem {
        line,
        column,
        policy,
        message,
    }
}

/// Parses and checks the text of policy set `set`.
pub(crate) fn compile(set: &str, text: &str) -> Result<Vec<Compiled>, PolicyError> {
    check_name(set)?;
    let parsed = PolicySet::from_str(text).map_err(|errors| PolicyError::Syntax {
        set: set.to_owned(),
        problems: errors
            .iter()
            .map(|e| problem(text, e, e.to_string(), None))
            .collect(),
    })?;
    let mut problems = Vec::new();
    if let Some(t) = parsed.templates().next() {
        let (line, column) = locate(text, &t.to_string(), 0).0;
        problems.push(Problem {
            line,
            column,
            policy: None,
            message: "templates (policies with `?principal` or `?resource`) are not supported"
                .into(),
        });
    }
    // Cedar numbers the policies `policy0`, `policy1`... in the order they are written.
    let mut policies: Vec<&Policy> = parsed.policies().collect();
    policies.sort_by_key(|p| {
        p.id()
            .to_string()
            .strip_prefix("policy")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    });
    let mut compiled = Vec::with_capacity(policies.len());
    let mut local_ids = HashSet::new();
    let mut search_from = 0;
    for (n, policy) in policies.into_iter().enumerate() {
        let source = policy.to_string();
        let ((line, column), end) = locate(text, &source, search_from);
        search_from = end;
        let at = |message: String| Problem {
            line,
            column,
            policy: None,
            message,
        };
        let annotations: BTreeMap<String, String> = policy
            .annotations()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let local = match annotations.get(ID) {
            Some(id) if valid_id(id) => id.clone(),
            Some(id) => {
                problems.push(at(format!(
                    "`@id(\"{id}\")` must be 1 to 64 letters, digits, `-`, `_`, `.` or `:`"
                )));
                continue;
            }
            None => format!("policy{}", n + 1),
        };
        if !local_ids.insert(local.clone()) {
            problems.push(at(format!(
                "two policies have the id `{local}`; ids must be unique within a policy set"
            )));
            continue;
        }
        let effect = match policy.effect() {
            CedarEffect::Permit => Effect::Permit,
            CedarEffect::Forbid => Effect::Forbid,
        };
        let decision = match decision(effect, &annotations) {
            Ok(d) => d,
            Err(message) => {
                problems.push(Problem {
                    policy: Some(local),
                    ..at(message)
                });
                continue;
            }
        };
        let id = format!("{set}/{local}");
        compiled.push(Compiled {
            policy: policy.new_id(PolicyId::new(&id)),
            info: PolicyInfo {
                id,
                set: set.to_owned(),
                effect,
                decision,
                reason: annotations.get(REASON).cloned(),
                annotations,
                line,
                text: source,
            },
        });
    }
    if !problems.is_empty() {
        return Err(PolicyError::Rejected {
            set: set.to_owned(),
            problems,
        });
    }
    validate(set, text, &compiled)?;
    Ok(compiled)
}

/// Strict validation of the policies against GRACE's schema.
fn validate(set: &str, text: &str, compiled: &[Compiled]) -> Result<(), PolicyError> {
    let names = names().map_err(|e| PolicyError::Schema {
        set: set.to_owned(),
        problems: vec![Problem {
            line: 0,
            column: 0,
            policy: None,
            message: format!("the GRACE schema is unusable: {e}"),
        }],
    })?;
    let rejected = |problems| PolicyError::Schema {
        set: set.to_owned(),
        problems,
    };
    let pset = PolicySet::from_policies(compiled.iter().map(|c| c.policy.clone()))
        .map_err(|e| rejected(vec![problem(text, &e, e.to_string(), None)]))?;
    let result = Validator::new(names.schema.clone()).validate(&pset, ValidationMode::Strict);
    let local = |id: &PolicyId| {
        let id = id.to_string();
        id.strip_prefix(set)
            .and_then(|l| l.strip_prefix('/'))
            .map_or(id.clone(), str::to_owned)
    };
    // Cedar's messages start with `for policy `<id>`, `; the problem names the policy itself.
    let message = |id: &PolicyId, m: String| {
        m.strip_prefix(&format!("for policy `{id}`, "))
            .map_or_else(|| m.clone(), str::to_owned)
    };
    let mut problems: Vec<Problem> = result
        .validation_errors()
        .map(|e| {
            let id = e.policy_id();
            problem(text, e, message(id, e.to_string()), Some(local(id)))
        })
        .collect();
    // Only one such problem per policy, and none for a policy already in error: they follow
    // from the error.
    let mut named: HashSet<PolicyId> = result
        .validation_errors()
        .map(|e| e.policy_id().clone())
        .collect();
    for w in result.validation_warnings() {
        let id = w.policy_id();
        match w {
            ValidationWarning::ImpossiblePolicy(_)
            | ValidationWarning::InvalidActionApplication(_)
                if !named.insert(id.clone()) => {}
            // A policy that can never apply is a mistake, never an intention: a forbid that
            // silently protects nothing is worse than a rejected one.
            ValidationWarning::ImpossiblePolicy(_)
            | ValidationWarning::InvalidActionApplication(_) => problems.push(problem(
                text,
                w,
                message(id, w.to_string()),
                Some(local(id)),
            )),
            _ => tracing::warn!(set, "policy warning: {w}"),
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort_by_key(|p| (p.line, p.column));
    Err(rejected(problems))
}

/// What a policy decides, from its effect and `@decision` / `@approvers` annotations.
fn decision(effect: Effect, a: &BTreeMap<String, String>) -> Result<PolicyDecision, String> {
    let approvers = a.get(APPROVERS);
    let d = match (effect, a.get(DECISION).map(String::as_str)) {
        (Effect::Forbid, None | Some("deny")) => PolicyDecision::Deny,
        (Effect::Forbid, Some(other)) => {
            return Err(format!(
                "`@decision(\"{other}\")` on a forbid policy: a forbid always denies; drop the annotation"
            ));
        }
        (Effect::Permit, None | Some("allow")) => PolicyDecision::Allow,
        (Effect::Permit, Some("require_approval")) => {
            let approvers = match approvers {
                None => 1,
                Some(n) => match n.parse::<u8>() {
                    Ok(n) if (1..=MAX_APPROVERS).contains(&n) => n,
                    _ => {
                        return Err(format!(
                            "`@approvers(\"{n}\")` must be a whole number from 1 to {MAX_APPROVERS}"
                        ));
                    }
                },
            };
            return Ok(PolicyDecision::RequireApproval { approvers });
        }
        (Effect::Permit, Some(other)) => {
            return Err(format!(
                "unknown `@decision(\"{other}\")`: use `allow` or `require_approval` on a permit"
            ));
        }
    };
    if approvers.is_some() {
        return Err("`@approvers` only applies with `@decision(\"require_approval\")`".to_owned());
    }
    Ok(d)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Where `source` (a policy's own text) starts in `text`, searching from `from`: its line and
/// column, and the offset just past it. Cedar hands back each policy's text verbatim.
fn locate(text: &str, source: &str, from: usize) -> ((u32, u32), usize) {
    match text.get(from..).and_then(|rest| rest.find(source)) {
        Some(at) => (position(text, from + at), from + at + source.len()),
        None => ((0, 0), from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, 3), (2, 1));
        assert_eq!(position(text, 8), (3, 1));
        assert_eq!(position(text, 7), (2, 4));
    }
}
