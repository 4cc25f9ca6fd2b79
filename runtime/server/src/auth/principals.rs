//! Principals: the people and systems behind API requests. Every token belongs to one, and so
//! does every OIDC sign-in; whatever counts people (the two-person rule, and later the
//! dashboard, Slack approvals and compliance rules) counts principals, never tokens.
//!
//! A principal is
//! - **local**: made on this server by an admin (`grace principals create alice`, each creation
//!   an audit entry in the ledger naming the admin) and stored in the data directory's
//!   database (table `server/principals`); its id is `local:<name>`. A local principal is only
//!   as real as the admin who made it says: one admin can make `alice` and `bob` and hold
//!   tokens of both. `docs/security.md` says so;
//! - **oidc**: someone the configured identity provider signed in (see [`super::oidc`]); its id
//!   is `oidc:<issuer>#<sub>`, derived from each verified token and not stored here, so the
//!   identity provider alone decides who exists.
//!
//! `grace init`'s token belongs to the local principal [`LOCAL_ADMIN`], made by `grace init`.
//! Tokens written by versions before principals name none: when the token table is opened, each
//! such token is given the local principal named like the token (created if missing, by
//! `migration`), which is exactly whom the previous version counted, and written back.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use grace_ledger::Database;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// Local principals by id (`local:<name>`): JSON [`Principal`].
pub const PRINCIPALS: TableDefinition<&str, &[u8]> = TableDefinition::new("server/principals");

/// The local principal `grace init` makes and gives its admin token to.
pub const LOCAL_ADMIN: &str = "local-admin";

/// Who created the principals of tokens written before principals existed.
pub const MIGRATION: &str = "migration";

/// Where a principal's identity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// Made on this server by an admin.
    Local,
    /// Signed in by the configured OpenID Connect issuer.
    Oidc,
}

impl PrincipalKind {
    /// As in the API.
    pub fn name(self) -> &'static str {
        match self {
            PrincipalKind::Local => "local",
            PrincipalKind::Oidc => "oidc",
        }
    }
}

/// A person or system that may hold tokens and sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// `local:<name>` or `oidc:<issuer>#<sub>`: what counts as one person.
    pub id: String,
    /// For people: the local name, or the OIDC `name`/`email` claim, else the subject.
    pub display_name: String,
    /// Where the identity comes from.
    pub kind: PrincipalKind,
    /// The OIDC issuer (`oidc` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The OIDC subject (`oidc` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Milliseconds since the epoch (0 for OIDC principals: not stored).
    #[serde(default)]
    pub created_at: u64,
    /// Who made it: a caller's principal id, `grace init` or `migration`.
    #[serde(default)]
    pub created_by: String,
}

impl Principal {
    /// The local principal called `name` (not validated: see [`PrincipalStore::create`]).
    pub fn local(name: &str, display_name: &str, created_by: &str, created_at: u64) -> Principal {
        Principal {
            id: local_id(name),
            display_name: display_name.to_owned(),
            kind: PrincipalKind::Local,
            issuer: None,
            subject: None,
            created_at,
            created_by: created_by.to_owned(),
        }
    }

    /// The principal signed in by `issuer` as `subject`.
    pub fn oidc(issuer: &str, subject: &str, display_name: &str) -> Principal {
        Principal {
            id: format!("oidc:{issuer}#{subject}"),
            display_name: display_name.to_owned(),
            kind: PrincipalKind::Oidc,
            issuer: Some(issuer.to_owned()),
            subject: Some(subject.to_owned()),
            created_at: 0,
            created_by: String::new(),
        }
    }

    /// The local name (`alice` of `local:alice`), if local.
    pub fn local_name(&self) -> Option<&str> {
        self.id.strip_prefix("local:")
    }
}

/// The id of the local principal `name`.
pub fn local_id(name: &str) -> String {
    format!("local:{name}")
}

/// Why the principal table failed or refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrincipalError {
    /// redb reported an error.
    #[error("principal storage error: {0}")]
    Db(String),
    /// A stored record could not be read back.
    #[error("stored principal record is unreadable: {0}")]
    Corrupt(String),
    /// A name or display name is empty, too long or holds other characters than letters,
    /// digits, spaces and `.-_@'`.
    #[error(
        "{field} `{value}` is invalid: use 1 to 64 letters, digits, spaces and `.-_@'` (names are shown to people, so nothing invisible)"
    )]
    BadName {
        /// `name` or `display_name`.
        field: &'static str,
        /// What was given, escaped.
        value: String,
    },
    /// The principal exists already.
    #[error("principal `{0}` exists already")]
    Exists(String),
    /// No such local principal.
    #[error("no local principal `{0}`: create it first with `grace principals create {0}`")]
    NotFound(String),
}

fn db<E: std::fmt::Display>(e: E) -> PrincipalError {
    PrincipalError::Db(e.to_string())
}

/// Whether `name` may name a principal or token: letters, digits, spaces and `.-_@'`, 1 to 64
/// characters, so that two names never look alike through invisible or bidi characters.
pub fn valid_name(name: &str) -> bool {
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '@' | '\'');
    !name.is_empty()
        && name == name.trim()
        && name.chars().count() <= 64
        && name.chars().all(allowed)
}

/// The local principals, with every record in memory (few, and read on every token lookup).
#[derive(Clone)]
pub struct PrincipalStore {
    db: Arc<Database>,
    cache: Arc<RwLock<BTreeMap<String, Principal>>>,
}

impl PrincipalStore {
    /// The table in `database` (created if missing), read into memory.
    pub fn open(database: Arc<Database>) -> Result<PrincipalStore, PrincipalError> {
        let tx = database.begin_write().map_err(db)?;
        tx.open_table(PRINCIPALS).map_err(db)?;
        tx.commit().map_err(db)?;
        let mut cache = BTreeMap::new();
        {
            let tx = database.begin_read().map_err(db)?;
            let table = tx.open_table(PRINCIPALS).map_err(db)?;
            for row in table.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                let p: Principal = serde_json::from_slice(v.value())
                    .map_err(|e| PrincipalError::Corrupt(e.to_string()))?;
                cache.insert(k.value().to_owned(), p);
            }
        }
        Ok(PrincipalStore {
            db: database,
            cache: Arc::new(RwLock::new(cache)),
        })
    }

    /// The local principal `id` (`local:<name>`).
    pub fn get(&self, id: &str) -> Option<Principal> {
        crate::sync::read(&self.cache).get(id).cloned()
    }

    /// Every local principal, by id.
    pub fn list(&self) -> Vec<Principal> {
        crate::sync::read(&self.cache).values().cloned().collect()
    }

    /// Creates the local principal `name` (shown as `display_name`, else `name`), made by
    /// `created_by`. Refused if it exists.
    pub fn create(
        &self,
        name: &str,
        display_name: Option<&str>,
        created_by: &str,
    ) -> Result<Principal, PrincipalError> {
        if !valid_name(name) {
            return Err(PrincipalError::BadName {
                field: "name",
                value: name.escape_debug().to_string(),
            });
        }
        let display = display_name.unwrap_or(name);
        if !valid_name(display) {
            return Err(PrincipalError::BadName {
                field: "display_name",
                value: display.escape_debug().to_string(),
            });
        }
        let p = Principal::local(
            name,
            display,
            created_by,
            grace_engine::event::system_now_millis(),
        );
        if !self.insert_new(&p)? {
            return Err(PrincipalError::Exists(p.id));
        }
        Ok(p)
    }

    /// The local principal `name`, created by `created_by` if missing (`grace init`, migration).
    pub fn ensure(&self, name: &str, created_by: &str) -> Result<Principal, PrincipalError> {
        if let Some(p) = self.get(&local_id(name)) {
            return Ok(p);
        }
        let p = Principal::local(
            name,
            name,
            created_by,
            grace_engine::event::system_now_millis(),
        );
        self.insert_new(&p)?;
        Ok(self.get(&p.id).unwrap_or(p))
    }

    /// Stores `p` unless its id exists; whether it was stored.
    /// Stores `p`, made on another replica of the cluster, unless a principal of its id is here;
    /// whether it was stored. Only local principals are kept.
    pub fn adopt(&self, p: &Principal) -> Result<bool, PrincipalError> {
        if p.kind != PrincipalKind::Local
            || p.local_name()
                .is_none_or(|name| !valid_name(name) || local_id(name) != p.id)
        {
            return Err(PrincipalError::Corrupt(format!(
                "`{}` is not a local principal",
                p.id.escape_debug()
            )));
        }
        self.insert_new(p)
    }

    fn insert_new(&self, p: &Principal) -> Result<bool, PrincipalError> {
        let bytes = serde_json::to_vec(p).map_err(db)?;
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut table = tx.open_table(PRINCIPALS).map_err(db)?;
            if table.get(p.id.as_str()).map_err(db)?.is_some() {
                return Ok(false);
            }
            table.insert(p.id.as_str(), bytes.as_slice()).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        crate::sync::write(&self.cache).insert(p.id.clone(), p.clone());
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn store() -> (tempfile::TempDir, PrincipalStore) {
        let dir = tempfile::tempdir().unwrap();
        let db =
            Database::create(dir.path().join("grace.redb"), grace_ledger::Recovery::Quick).unwrap();
        (dir, PrincipalStore::open(Arc::new(db)).unwrap())
    }

    #[test]
    fn a_local_principal_is_created_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grace.redb");
        {
            let s = PrincipalStore::open(Arc::new(
                Database::create(&path, grace_ledger::Recovery::Quick).unwrap(),
            ))
            .unwrap();
            let p = s
                .create("alice", Some("Alice Liddell"), "local:admin")
                .unwrap();
            assert_eq!(p.id, "local:alice");
            assert_eq!(p.kind, PrincipalKind::Local);
            assert!(matches!(
                s.create("alice", None, "x"),
                Err(PrincipalError::Exists(_))
            ));
        }
        let s = PrincipalStore::open(Arc::new(
            Database::create(&path, grace_ledger::Recovery::Quick).unwrap(),
        ))
        .unwrap();
        let p = s.get("local:alice").unwrap();
        assert_eq!(
            (p.display_name.as_str(), p.created_by.as_str()),
            ("Alice Liddell", "local:admin")
        );
    }

    #[test]
    fn principal_names_allow_nothing_invisible() {
        let (_dir, s) = store();
        for bad in [
            "",
            " alice",
            "ali\u{200B}ce",
            "a\nb",
            "ali\u{202E}ce",
            "a:b",
            "a#b",
        ] {
            assert!(
                matches!(
                    s.create(bad, None, "t"),
                    Err(PrincipalError::BadName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(s.create("Zoë O'Neil", None, "t").is_ok());
    }

    #[test]
    fn ensure_keeps_an_existing_principal() {
        let (_dir, s) = store();
        s.create("ops", Some("Operations"), "local:admin").unwrap();
        let p = s.ensure("ops", MIGRATION).unwrap();
        assert_eq!(p.display_name, "Operations");
        let q = s.ensure("ci", MIGRATION).unwrap();
        assert_eq!(q.created_by, MIGRATION);
    }
}
