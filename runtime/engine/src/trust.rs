//! The trust seam: after the grants allow a call and before it runs, the trust core decides.
//!
//! Until the trust core (policies, risk scores, approvals, guardrails) lands, [`PassThrough`]
//! allows everything the grants allow. The seam exists so that adding it changes no capability.

use crate::pipeline::Call;

/// What the trust core decided about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustDecision {
    /// Go ahead; the reason is recorded.
    Allow(String),
    /// Refused; the guest receives `denied` with this reason.
    Deny(String),
}

/// Decides whether a call the grants allow may run.
pub trait Trust: Send + Sync {
    /// Decides about a call of `playbook`.
    fn decide(&self, playbook: &str, call: &Call) -> TrustDecision;
}

/// Allows every call the grants allow.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

impl Trust for PassThrough {
    fn decide(&self, _playbook: &str, _call: &Call) -> TrustDecision {
        TrustDecision::Allow("within grants; no trust policy configured".into())
    }
}
