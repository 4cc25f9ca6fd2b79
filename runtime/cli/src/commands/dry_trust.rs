//! The trust core of a dry run (`grace run --dry-run`, `grace replay`): the server's own trust
//! adapter (`grace_server::trust`) on a throwaway database, with the policies of `--policies`
//! or of the data directory and the `[trust]` of `--config`, and what it decided, call by call,
//! for people and for `--json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use grace_engine::TimelineEntry;
use grace_engine::text::escape;
use grace_ledger::Verdict;
use grace_server::config::ServeConfig;
use grace_server::trust::HostTrust;
use grace_server::trust::offline::{self, PolicyOrigin};
use serde::Serialize;
use serde_json::Value;

use super::Exit;
use crate::cli::DryTrustArgs;
use crate::render;

/// A dry run's trust core and where its policies and settings came from.
pub struct DryTrust {
    /// The trust core, as `grace serve` runs it.
    pub trust: Arc<HostTrust>,
    /// What it was set up with.
    pub source: TrustSource,
}

/// Where the dry run's policies and `[trust]` settings came from.
#[derive(Debug, Clone, Serialize)]
pub struct TrustSource {
    /// Files, the data directory, or none.
    pub origin: PolicyOrigin,
    /// The policy sets' names.
    pub sets: Vec<String>,
    /// How many policies they hold.
    pub policies: usize,
    /// The `grace.toml` whose `[trust]` applies, if any.
    pub config: Option<PathBuf>,
}

/// The trust core for a dry run: `args.policies` if given, else the sets stored in
/// `data_dir`'s database; `args.config`'s `[trust]`; the simulated fleet's health graph for the
/// blast-radius factor.
pub fn load(
    args: &DryTrustArgs,
    database: &Path,
    graph: Option<Arc<dyn grace_executor::GraphReader>>,
) -> Result<DryTrust, Exit> {
    let settings = match &args.config {
        Some(path) => {
            ServeConfig::read(path)
                .map_err(|e| Exit::Invalid(e.into()))?
                .trust
        }
        None => grace_server::trust::TrustSettings::default(),
    };
    let (origin, sets) = if args.policies.is_empty() {
        let sets =
            offline::stored_policy_sets_at(database).map_err(|e| Exit::Invalid(anyhow!(e)))?;
        let origin = if sets.is_empty() {
            PolicyOrigin::None
        } else {
            PolicyOrigin::DataDir
        };
        (origin, sets)
    } else {
        let sets = offline::policy_files(&args.policies).map_err(|e| Exit::Invalid(anyhow!(e)))?;
        (PolicyOrigin::Files, sets)
    };
    let trust = offline::dry_run(&settings, &sets).map_err(|e| {
        Exit::Invalid(anyhow!(match &args.config {
            Some(path) => format!("`{}` or the policies: {e}", path.display()),
            None => e.to_string(),
        }))
    })?;
    let trust = match graph {
        Some(graph) => trust.with_graph(graph),
        None => trust,
    };
    let policies = trust.core().policies().active().len();
    Ok(DryTrust {
        trust: Arc::new(trust),
        source: TrustSource {
            origin,
            sets: sets.into_iter().map(|(name, _)| name).collect(),
            policies,
            config: args.config.clone(),
        },
    })
}

/// What the trust core decided about one call, as a dry run reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TrustVerdict {
    /// The call's ledger entry.
    pub seq: u64,
    /// `interface.function`.
    pub call: String,
    /// Its arguments, as recorded.
    pub args: Value,
    /// `allowed`, `denied` or `would-wait-for-approval`.
    pub outcome: &'static str,
    /// The deciding policies.
    pub policies: Vec<String>,
    /// The guardrail that denied it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<String>,
    /// How many people would have to approve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvers: Option<u64>,
    /// The risk score, 0 to 100 (0 for reads).
    pub risk: u64,
    /// The verdict in one line: `allowed, risk 23/100`, `denied by policy `a/b``,
    /// `would wait for approval by 2 (policy `a/b`)`.
    pub summary: String,
}

/// The trust core's verdicts on a run's changes and refusals (reads it allowed are left out:
/// they carry no risk and a policy that refuses one shows as a refusal).
pub fn verdicts(timeline: &[TimelineEntry]) -> Vec<TrustVerdict> {
    timeline
        .iter()
        .filter(|e| e.change || e.verdict == Verdict::Denied)
        .filter_map(verdict)
        .collect()
}

fn verdict(e: &TimelineEntry) -> Option<TrustVerdict> {
    let t = e.trust.as_ref()?;
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let policies = strings(t.get("policies"));
    let risk = t
        .get("risk")
        .and_then(|r| r.get("score"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let guardrail = t
        .get("guardrail")
        .and_then(|g| g.get("guardrail"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let kind = t
        .get("outcome")
        .and_then(|o| o.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("deny");
    let approvers = t
        .get("outcome")
        .and_then(|o| o.get("approvers"))
        .and_then(Value::as_u64);
    let cited = cite(&policies);
    let risk_text = format!("risk {risk}/100");
    let waiting = e.verdict == Verdict::Denied
        && e.result
            .get("error")
            .and_then(|x| x.get("kind"))
            .and_then(Value::as_str)
            == Some("awaiting-approval");
    let (outcome, summary) = if waiting {
        let n = approvers.unwrap_or(1);
        (
            "would-wait-for-approval",
            format!("would wait for approval by {n} ({cited}), {risk_text}"),
        )
    } else if e.verdict == Verdict::Allowed {
        let by = if policies.is_empty() {
            String::new()
        } else {
            format!(" by {cited}")
        };
        ("allowed", format!("allowed{by}, {risk_text}"))
    } else if let Some(g) = &guardrail {
        ("denied", format!("denied by guardrail `{g}`, {risk_text}"))
    } else if kind == "deny" && !policies.is_empty() {
        ("denied", format!("denied by {cited}, {risk_text}"))
    } else {
        ("denied", format!("denied: {}", e.reason))
    };
    Some(TrustVerdict {
        seq: e.seq,
        call: format!("{}.{}", e.interface, e.function),
        args: e.args.clone(),
        outcome,
        policies,
        guardrail,
        approvers: (outcome == "would-wait-for-approval").then_some(approvers.unwrap_or(1)),
        risk,
        summary,
    })
}

/// `policy `a/b`` or `policies `a/b`, `c/d``.
fn cite(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
    match quoted.len() {
        0 => "no policy".to_owned(),
        1 => format!("policy {}", quoted[0]),
        _ => format!("policies {}", quoted.join(", ")),
    }
}

/// One line saying what the trust core was set up with.
pub fn source_line(s: &TrustSource) -> String {
    let policies = match s.origin {
        PolicyOrigin::None => {
            "no policies loaded: what the grants allow is allowed unless a guardrail stops it, as in `grace serve` with none".to_owned()
        }
        PolicyOrigin::Files => format!(
            "{} policies from --policies ({})",
            s.policies,
            s.sets.join(", ")
        ),
        PolicyOrigin::DataDir => format!(
            "{} policies stored in the data directory ({})",
            s.policies,
            s.sets.join(", ")
        ),
    };
    let config = match &s.config {
        Some(path) => format!("[trust] of `{}`", path.display()),
        None => "default [trust]".to_owned(),
    };
    escape(&format!("{policies}; {config}")).into_owned()
}

/// The `trust` section of a dry run's report: the set-up, then one line per verdict.
pub fn section(out: &mut String, source: &TrustSource, verdicts: &[TrustVerdict]) {
    let _ = writeln!(out, "trust    {}", source_line(source));
    for v in verdicts {
        let _ = writeln!(
            out,
            "         #{:<4} {} {}  {}",
            v.seq,
            escape(&v.call),
            render::args(&v.args),
            escape(&v.summary)
        );
    }
}
