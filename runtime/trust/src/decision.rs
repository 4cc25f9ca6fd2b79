//! What the trust core answers: the outcome, a one-paragraph reason, the risk score with its
//! factors, the deciding policies and the violated guardrail. Serializable: it goes into the
//! ledger entry of the call and out through the API.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::guardrails::Violation;
use crate::risk::Risk;

/// Allow, deny, or wait for people to approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Go ahead.
    Allow,
    /// Refused.
    Deny,
    /// Allowed once `approvers` distinct people approve; denied if they deny or the request
    /// expires.
    RequireApproval {
        /// How many distinct approvers are needed.
        approvers: u8,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Allow => f.write_str("allow"),
            Outcome::Deny => f.write_str("deny"),
            Outcome::RequireApproval { approvers: 1 } => f.write_str("require approval"),
            Outcome::RequireApproval { approvers } => {
                write!(f, "require approval by {approvers} people")
            }
        }
    }
}

/// The trust core's decision about one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What to do.
    pub outcome: Outcome,
    /// Why, in one paragraph: the guardrail or policies that decided, the risk score and its
    /// main factors.
    pub reason: String,
    /// The risk score and every factor.
    pub risk: Risk,
    /// Ids of the policies that determined the outcome (`<set>/<id>`), sorted; empty when a
    /// guardrail, the default deny or the absence of policies decided.
    pub policies: Vec<String>,
    /// The guardrail the action would violate, when one denied it.
    pub guardrail: Option<Violation>,
    /// The policy store revision the decision was made against.
    pub policy_revision: u64,
}

impl Decision {
    /// Whether the action may go ahead now.
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }
}
