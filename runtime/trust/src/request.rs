//! What the trust core is asked about: who wants to do what to which resource, the resource's
//! current state, the proposed change, the triggering signal and the playbook's recent history.
//!
//! Everything is plain data (serde), so a request can be built by the engine from a host call,
//! or written by hand as JSON for `grace policy test`.

use serde::{Deserialize, Serialize};

pub use grace_model::resource::{Change, Downstream, Resource, State};

use crate::action::Action;

/// One proposed action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Who acts.
    pub principal: Principal,
    /// What it does.
    pub action: Action,
    /// To what.
    pub resource: Resource,
    /// The resource's state now (what is known of it).
    #[serde(default)]
    pub state: State,
    /// What the action would change.
    #[serde(default)]
    pub change: Change,
    /// The signal that triggered the run, if any.
    #[serde(default)]
    pub signal: Signal,
    /// The playbook's recent history.
    #[serde(default)]
    pub history: History,
    /// When the decision is made, in milliseconds since the Unix epoch (UTC). Freeze windows,
    /// changes per hour and the time in the policy context are all read from it.
    pub at_millis: u64,
}

impl Request {
    /// A request with no known state, no change, no signal and no history: fill in the rest
    /// with the `with_*` methods or the public fields.
    pub fn new(principal: Principal, action: Action, resource: Resource, at_millis: u64) -> Self {
        Request {
            principal,
            action,
            resource,
            state: State::default(),
            change: Change::None,
            signal: Signal::default(),
            history: History::default(),
            at_millis,
        }
    }

    /// Sets the resource's current state.
    #[must_use]
    pub fn with_state(mut self, state: State) -> Self {
        self.state = state;
        self
    }

    /// Sets the proposed change.
    #[must_use]
    pub fn with_change(mut self, change: Change) -> Self {
        self.change = change;
        self
    }

    /// Sets the triggering signal.
    #[must_use]
    pub fn with_signal(mut self, signal: Signal) -> Self {
        self.signal = signal;
        self
    }

    /// Sets the playbook's recent history.
    #[must_use]
    pub fn with_history(mut self, history: History) -> Self {
        self.history = history;
        self
    }
}

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Principal {
    /// A playbook (`Grace::Playbook::"<name>"`).
    Playbook {
        /// Its name.
        name: String,
        /// `sha256:<hex>` of its component.
        #[serde(default)]
        digest: String,
        /// The version its manifest declares (empty when none).
        #[serde(default)]
        version: String,
    },
    /// A person or tool acting through the API (`Grace::User::"<name>"`).
    User {
        /// Its name.
        name: String,
        /// The API scopes it holds.
        #[serde(default)]
        scopes: Vec<String>,
    },
}

impl Principal {
    /// A playbook.
    pub fn playbook(
        name: impl Into<String>,
        digest: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Principal::Playbook {
            name: name.into(),
            digest: digest.into(),
            version: version.into(),
        }
    }

    /// An API user.
    pub fn user(name: impl Into<String>, scopes: impl IntoIterator<Item = String>) -> Self {
        Principal::User {
            name: name.into(),
            scopes: scopes.into_iter().collect(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Principal::Playbook { name, .. } | Principal::User { name, .. } => name,
        }
    }
}

/// The signal that triggered the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// How anomalous the signal is, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_score: Option<f64>,
    /// How confident the detector is that the signal is real, 0 to 1. Low confidence raises
    /// the risk of acting on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The incident the run responds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
}

/// The playbook's and the resource's recent history, as the host knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Failed runs of this playbook in the host's recent window.
    #[serde(default)]
    pub recent_failures: u32,
    /// When the resource was last deployed, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_deployment_millis: Option<u64>,
    /// What the host learnt from this playbook's earlier runs on this resource: whether their
    /// signal cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<Learned>,
}

/// The outcomes of a playbook's recent runs on one resource, judged by whether their triggering
/// signal came back within its bound in time (the host's `outcomes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Learned {
    /// The resource the runs responded to: their triggering events' (which may not be the one
    /// this call acts on: a service's latency, answered by scaling its group).
    pub about: String,
    /// Runs judged (the most recent ones the host keeps).
    pub judged: u32,
    /// Of those, runs whose signal cleared.
    pub cleared: u32,
    /// How many of the most recent judged runs, in a row, did not clear their signal (0 when
    /// the last one did).
    pub not_cleared_streak: u32,
}

impl Learned {
    /// The share of judged runs whose signal cleared, as a percentage, when any was judged.
    pub fn success_percent(&self) -> Option<u32> {
        (self.judged > 0).then(|| {
            let p = u64::from(self.cleared.min(self.judged)) * 100 / u64::from(self.judged);
            u32::try_from(p).unwrap_or(100)
        })
    }
}
