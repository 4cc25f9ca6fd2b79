//! What a token may do: four scopes, `admin` implying the other three.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One permission a token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read anything but tokens: playbooks, runs, events, the ledger, sources, metrics.
    Read,
    /// Change what runs: publish events, upload, enable, disable and delete playbooks, cancel
    /// and resume runs.
    Operate,
    /// Approve or deny runs that wait for a human.
    Approve,
    /// Everything, including tokens and policies.
    Admin,
}

impl Scope {
    /// Every scope, weakest first.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Operate, Scope::Approve, Scope::Admin];

    /// The scope's name, as the API and the CLI spell it.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Approve => "approve",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The scopes of one token; serialized as a list of names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// Every scope (what `admin` amounts to).
    pub fn all() -> Scopes {
        Scope::ALL.into_iter().collect()
    }

    /// Whether a request needing `needed` may go ahead: `admin` allows everything.
    pub fn allows(&self, needed: Scope) -> bool {
        self.0.contains(&Scope::Admin) || self.0.contains(&needed)
    }

    /// Whether there is no scope at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes, weakest first.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().collect())
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::name).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn admin_allows_every_scope_and_the_others_only_themselves() {
        let admin: Scopes = [Scope::Admin].into_iter().collect();
        assert!(Scope::ALL.into_iter().all(|s| admin.allows(s)));
        let read: Scopes = [Scope::Read].into_iter().collect();
        assert!(read.allows(Scope::Read));
        assert!(!read.allows(Scope::Operate));
        assert!(!read.allows(Scope::Approve));
        assert!(!read.allows(Scope::Admin));
    }

    #[test]
    fn scopes_are_written_as_a_list_of_names() {
        let s: Scopes = [Scope::Operate, Scope::Read].into_iter().collect();
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"["read","operate"]"#);
        assert_eq!(s.to_string(), "read,operate");
        assert!(serde_json::from_str::<Scopes>(r#"["root"]"#).is_err());
    }
}
